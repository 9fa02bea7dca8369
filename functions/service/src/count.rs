//! The desired count a Create starts with and what an Update does to it (pure).
//!
//! Autoscaling owns the count once it runs, so an Update sends `desiredCount` only when the
//! template says something new about it: its own DesiredCount changed, the first image arrived,
//! or autoscaling was removed. A Create starts at the autoscaling minimum when that is higher, so
//! the first deployment already runs the tasks autoscaling would insist on (copilot #4442).

use crate::properties::ServiceProperties;

/// What an Update sends as `desiredCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountChange {
    /// Nothing: autoscaling (or the last deploy) chose the count.
    Keep,
    /// Exactly this count.
    Set(i32),
    /// This count, moved into the scalable target's range when one is registered.
    Clamped(i32),
}

fn count(value: i64) -> i32 {
    i32::try_from(value.max(0)).unwrap_or(i32::MAX)
}

/// The count a new service starts with (0 while its image is not pushed).
pub fn initial(props: &ServiceProperties, awaiting_image: bool) -> i32 {
    if awaiting_image {
        return 0;
    }
    count(
        props
            .desired_count
            .max(props.auto_scaling_min_capacity.unwrap_or(0)),
    )
}

/// What an Update does to the count. `first_image`: the service ran no task while it waited for
/// its image, which is now pushed (the scalable target still holds it at 0..0 until the scaling
/// resource updates next, so the count is set as a Create would).
pub fn on_update(
    old: &ServiceProperties,
    new: &ServiceProperties,
    first_image: bool,
) -> CountChange {
    if first_image {
        return CountChange::Set(initial(new, false));
    }
    if old.auto_scaling_min_capacity.is_some() && new.auto_scaling_min_capacity.is_none() {
        // Autoscaling removed: the template's count is the count again (copilot #1619).
        return CountChange::Set(count(new.desired_count));
    }
    if old.desired_count != new.desired_count {
        return CountChange::Clamped(count(new.desired_count));
    }
    CountChange::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    fn props(desired: i64, min: Option<i64>) -> ServiceProperties {
        let mut raw = json!({"Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1",
                             "Subnets": "subnet-1", "DesiredCount": desired.to_string()});
        if let Some(min) = min {
            raw["AutoScalingMinCapacity"] = json!(min.to_string());
        }
        parse(&raw).unwrap()
    }

    #[test]
    fn a_new_service_starts_at_the_autoscaling_minimum_when_it_is_higher() {
        assert_eq!(initial(&props(1, Some(3)), false), 3);
        assert_eq!(initial(&props(5, Some(3)), false), 5);
        assert_eq!(initial(&props(2, None), false), 2);
        assert_eq!(
            initial(&props(2, Some(3)), true),
            0,
            "no task before the image"
        );
    }

    #[test]
    fn removing_autoscaling_returns_the_service_to_the_templates_count() {
        assert_eq!(
            on_update(&props(1, Some(3)), &props(1, None), false),
            CountChange::Set(1)
        );
    }

    #[test]
    fn a_changed_template_count_is_clamped_and_an_unchanged_one_leaves_autoscaling_alone() {
        assert_eq!(
            on_update(&props(1, Some(3)), &props(2, Some(3)), false),
            CountChange::Clamped(2)
        );
        assert_eq!(
            on_update(&props(1, Some(3)), &props(1, Some(4)), false),
            CountChange::Keep
        );
        assert_eq!(
            on_update(&props(1, None), &props(1, None), false),
            CountChange::Keep
        );
        // Adding autoscaling: the scaling resource moves the count into its range.
        assert_eq!(
            on_update(&props(1, None), &props(1, Some(3)), false),
            CountChange::Keep
        );
    }

    #[test]
    fn the_first_image_starts_the_tasks_a_create_would() {
        assert_eq!(
            on_update(&props(1, Some(3)), &props(1, Some(3)), true),
            CountChange::Set(3)
        );
    }
}

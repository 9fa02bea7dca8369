//! Tag keys more than one provider function reads (one home for each).

/// On an ECS service made by `Custom::FargateService`: the template's `DesiredCount`. When
/// `Custom::ServiceScaling` is removed, its Delete returns the service to this count (autoscaling
/// no longer owns it).
pub const TEMPLATE_DESIRED_COUNT: &str = "custom-resource:desired-count";

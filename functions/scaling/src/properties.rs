//! Properties of `Custom::ServiceScaling` (see README.md for the contract table).

use custom_resource::{de, Properties, PropertyError};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Metrics a target-tracking policy can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Metric {
    #[serde(rename = "CPUUtilization")]
    Cpu,
    #[serde(rename = "MemoryUtilization")]
    Memory,
    #[serde(rename = "ALBRequestCountPerTarget")]
    AlbRequests,
}

impl Metric {
    /// Used in the policy name.
    pub fn slug(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::AlbRequests => "alb-requests",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetTracking {
    pub metric: Metric,
    #[serde(deserialize_with = "de::number")]
    pub target_value: f64,
    /// Required for ALBRequestCountPerTarget (the ResourceLabel is derived from it).
    #[serde(default)]
    pub target_group_arn: Option<String>,
    #[serde(default = "five_minutes", deserialize_with = "de::number")]
    pub scale_in_cooldown: i32,
    #[serde(default = "five_minutes", deserialize_with = "de::number")]
    pub scale_out_cooldown: i32,
    #[serde(default, deserialize_with = "de::boolean")]
    pub disable_scale_in: bool,
}

fn five_minutes() -> i32 {
    300
}
fn seventy_five() -> f64 {
    75.0
}
fn twenty_five() -> f64 {
    25.0
}
fn one() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingProperties {
    /// Required. Cluster name or ARN. Replacement.
    pub cluster: String,
    /// Required. Replacement.
    pub service_name: String,
    /// Required. 0 ≤ MinCapacity ≤ MaxCapacity ≤ 5000. In place.
    #[serde(deserialize_with = "de::number")]
    pub min_capacity: i32,
    #[serde(deserialize_with = "de::number")]
    pub max_capacity: i32,
    /// Default 75. 1..100, above ScaleInCpuThreshold.
    #[serde(default = "seventy_five", deserialize_with = "de::number")]
    pub scale_out_cpu_threshold: f64,
    /// Default 25. 0..99.
    #[serde(default = "twenty_five", deserialize_with = "de::number")]
    pub scale_in_cpu_threshold: f64,
    /// Default 1: tasks added per scale-out step.
    #[serde(default = "one", deserialize_with = "de::number")]
    pub scale_out_adjustment: i32,
    /// Default 1: tasks removed per scale-in step.
    #[serde(default = "one", deserialize_with = "de::number")]
    pub scale_in_adjustment: i32,
    #[serde(default = "five_minutes", deserialize_with = "de::number")]
    pub scale_out_cooldown: i32,
    #[serde(default = "five_minutes", deserialize_with = "de::number")]
    pub scale_in_cooldown: i32,
    /// Default 1.
    #[serde(default = "one", deserialize_with = "de::number")]
    pub evaluation_periods: i32,
    /// Default 300; 60 or a multiple of 60.
    #[serde(default = "five_minutes", deserialize_with = "de::number")]
    pub period_seconds: i32,
    #[serde(default)]
    pub target_tracking: Vec<TargetTracking>,
}

impl ScalingProperties {
    pub fn needs_replacement(&self, new: &ScalingProperties) -> bool {
        self.cluster != new.cluster || self.service_name != new.service_name
    }

    pub fn cluster_name(&self) -> &str {
        custom_resource::ecs::cluster_name(&self.cluster)
    }

    /// Application Auto Scaling's id for the service: `service/<cluster>/<service>`.
    pub fn resource_id(&self) -> String {
        custom_resource::ecs::scalable_target_id(&self.cluster, &self.service_name)
    }

    /// Deterministic names (alarms and policies) from cluster and service.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{}-{suffix}", self.cluster_name(), self.service_name)
    }
}

impl Properties for ScalingProperties {
    fn validate(&self) -> Result<(), PropertyError> {
        if self.cluster.trim().is_empty() {
            return Err(PropertyError::new(
                "Cluster",
                "must be a cluster name or ARN",
            ));
        }
        if self.service_name.trim().is_empty() || self.service_name.contains('/') {
            return Err(PropertyError::new(
                "ServiceName",
                "must be the service's name (not its ARN)",
            ));
        }
        if !(0..=5000).contains(&self.min_capacity) {
            return Err(PropertyError::new(
                "MinCapacity",
                format!("must be 0 to 5000 (got {})", self.min_capacity),
            ));
        }
        if !(0..=5000).contains(&self.max_capacity) {
            return Err(PropertyError::new(
                "MaxCapacity",
                format!("must be 0 to 5000 (got {})", self.max_capacity),
            ));
        }
        if self.min_capacity > self.max_capacity {
            return Err(PropertyError::new(
                "MinCapacity",
                format!(
                    "{} is above MaxCapacity {}; lower MinCapacity or raise MaxCapacity",
                    self.min_capacity, self.max_capacity
                ),
            ));
        }
        if !(1.0..=100.0).contains(&self.scale_out_cpu_threshold) {
            return Err(PropertyError::new(
                "ScaleOutCpuThreshold",
                "must be 1 to 100 (percent CPU)",
            ));
        }
        if !(0.0..=99.0).contains(&self.scale_in_cpu_threshold) {
            return Err(PropertyError::new(
                "ScaleInCpuThreshold",
                "must be 0 to 99 (percent CPU)",
            ));
        }
        if self.scale_out_cpu_threshold <= self.scale_in_cpu_threshold {
            return Err(PropertyError::new(
                "ScaleOutCpuThreshold",
                format!(
                    "{} must be above ScaleInCpuThreshold {} or the service would scale out and in at once",
                    self.scale_out_cpu_threshold, self.scale_in_cpu_threshold
                ),
            ));
        }
        self.validate_steps()?;
        self.validate_target_tracking()
    }
}

impl ScalingProperties {
    /// Adjustments, cooldowns and the alarm's evaluation window.
    fn validate_steps(&self) -> Result<(), PropertyError> {
        for (name, value) in [
            ("ScaleOutAdjustment", self.scale_out_adjustment),
            ("ScaleInAdjustment", self.scale_in_adjustment),
        ] {
            if value < 1 {
                return Err(PropertyError::new(
                    name,
                    format!("must be at least 1 task (got {value})"),
                ));
            }
        }
        for (name, value) in [
            ("ScaleOutCooldown", self.scale_out_cooldown),
            ("ScaleInCooldown", self.scale_in_cooldown),
        ] {
            if !(0..=86_400).contains(&value) {
                return Err(PropertyError::new(
                    name,
                    format!("must be 0 to 86400 seconds (got {value})"),
                ));
            }
        }
        if self.evaluation_periods < 1 {
            return Err(PropertyError::new(
                "EvaluationPeriods",
                "must be at least 1",
            ));
        }
        if self.period_seconds < 60 || self.period_seconds % 60 != 0 {
            return Err(PropertyError::new(
                "PeriodSeconds",
                format!(
                    "must be 60 or a multiple of 60 (got {})",
                    self.period_seconds
                ),
            ));
        }
        if i64::from(self.period_seconds) * i64::from(self.evaluation_periods) > 86_400 {
            return Err(PropertyError::new(
                "EvaluationPeriods",
                "EvaluationPeriods × PeriodSeconds must not exceed one day (86400 s)",
            ));
        }
        Ok(())
    }

    fn validate_target_tracking(&self) -> Result<(), PropertyError> {
        let mut metrics = BTreeSet::new();
        for (index, tracking) in self.target_tracking.iter().enumerate() {
            let at = |field: &str| format!("TargetTracking[{index}].{field}");
            if !metrics.insert(tracking.metric) {
                return Err(PropertyError::new(
                    at("Metric"),
                    "each metric may appear once",
                ));
            }
            let upper = if tracking.metric == Metric::AlbRequests {
                f64::MAX
            } else {
                100.0
            };
            if !(tracking.target_value > 0.0 && tracking.target_value <= upper) {
                return Err(PropertyError::new(
                    at("TargetValue"),
                    "must be above 0 (and at most 100 for a utilization metric)",
                ));
            }
            match (&tracking.metric, &tracking.target_group_arn) {
                (Metric::AlbRequests, None) => {
                    return Err(PropertyError::new(at("TargetGroupArn"), "is required for ALBRequestCountPerTarget: the target group whose requests per target to track"))
                }
                (Metric::AlbRequests, Some(arn)) if !arn.starts_with("arn:") => {
                    return Err(PropertyError::new(at("TargetGroupArn"), "must be a target group ARN"))
                }
                (Metric::Cpu | Metric::Memory, Some(_)) => {
                    return Err(PropertyError::new(at("TargetGroupArn"), "only applies to ALBRequestCountPerTarget; remove it"))
                }
                _ => {}
            }
            for (field, value) in [
                ("ScaleInCooldown", tracking.scale_in_cooldown),
                ("ScaleOutCooldown", tracking.scale_out_cooldown),
            ] {
                if !(0..=86_400).contains(&value) {
                    return Err(PropertyError::new(at(field), "must be 0 to 86400 seconds"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut value =
            json!({"Cluster": "app", "ServiceName": "web", "MinCapacity": "1", "MaxCapacity": "4"});
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        value
    }

    fn error(extra: serde_json::Value) -> PropertyError {
        parse::<ScalingProperties>(&with(extra)).unwrap_err()
    }

    #[test]
    fn defaults_and_string_numbers() {
        let p: ScalingProperties = parse(&with(json!({"ScaleOutCpuThreshold": "80.5", "TargetTracking": [{"Metric": "MemoryUtilization", "TargetValue": "70", "DisableScaleIn": "true"}]}))).unwrap();
        assert_eq!((p.min_capacity, p.max_capacity), (1, 4));
        assert_eq!(p.scale_out_cpu_threshold, 80.5);
        assert_eq!(p.scale_in_cpu_threshold, 25.0);
        assert_eq!((p.period_seconds, p.evaluation_periods), (300, 1));
        assert!(p.target_tracking[0].disable_scale_in);
        assert_eq!(p.resource_id(), "service/app/web");
        assert_eq!(p.name("cpu-high"), "app-web-cpu-high");
    }

    #[test]
    fn bad_input_names_the_property() {
        assert_eq!(error(json!({"MinCapacity": 5})).property, "MinCapacity");
        assert_eq!(error(json!({"MaxCapacity": 6000})).property, "MaxCapacity");
        assert_eq!(
            error(json!({"ScaleOutCpuThreshold": 20})).property,
            "ScaleOutCpuThreshold"
        );
        assert_eq!(
            error(json!({"ScaleInAdjustment": 0})).property,
            "ScaleInAdjustment"
        );
        assert_eq!(
            error(json!({"PeriodSeconds": 90})).property,
            "PeriodSeconds"
        );
        assert_eq!(error(json!({"TargetTracking": [{"Metric": "ALBRequestCountPerTarget", "TargetValue": 100}]})).property, "TargetTracking[0].TargetGroupArn");
        assert_eq!(
            error(json!({"TargetTracking": [{"Metric": "Requests", "TargetValue": 100}]})).property,
            "TargetTracking[0].Metric"
        );
        assert!(error(json!({"MinCapacty": 1}))
            .message
            .contains("did you mean MinCapacity?"));
    }

    #[test]
    fn cluster_arns_give_the_cluster_name() {
        let p: ScalingProperties = parse(&with(
            json!({"Cluster": "arn:aws:ecs:us-east-1:1:cluster/prod"}),
        ))
        .unwrap();
        assert_eq!(p.resource_id(), "service/prod/web");
    }
}

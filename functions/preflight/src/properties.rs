//! Properties of `Custom::EnvironmentPreflight` (see README.md for the contract table).
//!
//! The names are the root stack's parameter names, so an error names the parameter to fix.
//! CloudFormation `Rules` cannot compare numbers; these checks can, and they run before any
//! other resource of the environment is created or updated (everything depends on this one).

use custom_resource::ecs::{BASE_MAX, WEIGHT_MAX};
use custom_resource::{de, Properties, PropertyError};
use serde::Deserialize;
use std::collections::BTreeSet;

/// How many SSM parameters the service template can inject (service.yaml has one
/// `InjectSecretN` condition per name): more are refused instead of silently dropped.
pub const MAX_SECRET_NAMES: usize = 5;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreflightProperties {
    /// Required. 0..1000; not both weights 0. In place.
    #[serde(deserialize_with = "de::number")]
    pub fargate_weight: i64,
    /// Required. 0..1000. In place.
    #[serde(deserialize_with = "de::number")]
    pub fargate_spot_weight: i64,
    /// Default 0. In place.
    #[serde(default, deserialize_with = "de::number")]
    pub fargate_base: i64,
    /// Required. 0 ≤ DesiredCount ≤ MaxCount; below MinCount the service starts at MinCount. In place.
    #[serde(deserialize_with = "de::number")]
    pub desired_count: i64,
    #[serde(deserialize_with = "de::number")]
    pub min_count: i64,
    #[serde(deserialize_with = "de::number")]
    pub max_count: i64,
    /// Required. ScaleInCpuThreshold < ScaleOutCpuThreshold. In place.
    #[serde(deserialize_with = "de::number")]
    pub scale_out_cpu_threshold: f64,
    #[serde(deserialize_with = "de::number")]
    pub scale_in_cpu_threshold: f64,
    /// Default none; at most [`MAX_SECRET_NAMES`], each an SSM name part. In place.
    #[serde(default, deserialize_with = "de::string_list")]
    pub secret_names: Vec<String>,
    /// Required. Fixed once deployed (a change is refused, see [`fixed_settings`]).
    pub vpc_cidr: String,
    /// Required. 2..6 (an ALB needs two zones). Fixed once deployed.
    #[serde(deserialize_with = "de::number")]
    pub availability_zone_count: i64,
    /// Required. 1..65535. Fixed once deployed.
    #[serde(deserialize_with = "de::number")]
    pub app_port: i64,
    /// Default true: create the ECS service-linked role when the account has none. Never deleted.
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub create_ecs_service_linked_role: bool,
}

/// The settings an environment cannot change in place, in the order they are encoded in the
/// physical id: (parameter, value).
pub fn fixed_settings(p: &PreflightProperties) -> Vec<(&'static str, String)> {
    vec![
        ("VpcCidr", p.vpc_cidr.clone()),
        (
            "AvailabilityZoneCount",
            p.availability_zone_count.to_string(),
        ),
        ("AppPort", p.app_port.to_string()),
    ]
}

impl Properties for PreflightProperties {
    fn validate(&self) -> Result<(), PropertyError> {
        for (name, value) in [
            ("FargateWeight", self.fargate_weight),
            ("FargateSpotWeight", self.fargate_spot_weight),
        ] {
            if !(0..=WEIGHT_MAX).contains(&value) {
                return Err(PropertyError::new(
                    name,
                    format!("must be 0 to {WEIGHT_MAX} (got {value})"),
                ));
            }
        }
        if self.fargate_weight == 0 && self.fargate_spot_weight == 0 {
            return Err(PropertyError::new(
                "FargateWeight",
                "FargateWeight and FargateSpotWeight are both 0, so ECS could place no task; give at least one of them a weight above 0 (e.g. FargateWeight=1)",
            ));
        }
        if !(0..=BASE_MAX).contains(&self.fargate_base) {
            return Err(PropertyError::new(
                "FargateBase",
                format!("must be 0 to {BASE_MAX}"),
            ));
        }
        self.validate_counts()?;
        if self.scale_in_cpu_threshold >= self.scale_out_cpu_threshold {
            return Err(PropertyError::new(
                "ScaleInCpuThreshold",
                format!(
                    "ScaleInCpuThreshold {} must be below ScaleOutCpuThreshold {}, or the service would scale out and in at once",
                    self.scale_in_cpu_threshold, self.scale_out_cpu_threshold
                ),
            ));
        }
        self.validate_secret_names()?;
        if !(2..=6).contains(&self.availability_zone_count) {
            return Err(PropertyError::new(
                "AvailabilityZoneCount",
                format!("must be 2 to 6 (got {}): an Application Load Balancer needs subnets in at least two zones", self.availability_zone_count),
            ));
        }
        if !(1..=65535).contains(&self.app_port) {
            return Err(PropertyError::new("AppPort", "must be 1 to 65535"));
        }
        if self.vpc_cidr.trim().is_empty() {
            return Err(PropertyError::new(
                "VpcCidr",
                "must be an IPv4 CIDR block such as 10.0.0.0/16",
            ));
        }
        Ok(())
    }
}

impl PreflightProperties {
    fn validate_counts(&self) -> Result<(), PropertyError> {
        if self.min_count < 0 || self.max_count > 5000 {
            return Err(PropertyError::new(
                "MinCount",
                "MinCount and MaxCount must be 0 to 5000",
            ));
        }
        if self.min_count > self.max_count {
            return Err(PropertyError::new(
                "MinCount",
                format!(
                    "MinCount {} is above MaxCount {}; lower MinCount or raise MaxCount",
                    self.min_count, self.max_count
                ),
            ));
        }
        // Below MinCount is fine: the service starts at MinCount (Custom::FargateService's
        // AutoScalingMinCapacity), and returns to DesiredCount if autoscaling is removed.
        if self.desired_count < 0 || self.desired_count > self.max_count {
            return Err(PropertyError::new(
                "DesiredCount",
                format!(
                    "DesiredCount {} is outside [0, MaxCount {}]; autoscaling would move it down to MaxCount at once: lower it or raise MaxCount",
                    self.desired_count, self.max_count
                ),
            ));
        }
        Ok(())
    }

    fn validate_secret_names(&self) -> Result<(), PropertyError> {
        if self.secret_names.len() > MAX_SECRET_NAMES {
            return Err(PropertyError::new(
                "SecretNames",
                format!(
                    "has {} names ({}); at most {MAX_SECRET_NAMES} are injected, so none would be dropped silently: keep {MAX_SECRET_NAMES} or put several values in one parameter",
                    self.secret_names.len(),
                    self.secret_names.join(", ")
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, name) in self.secret_names.iter().enumerate() {
            let valid = name.len() <= 255
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(PropertyError::new(
                    format!("SecretNames[{index}]"),
                    format!("{name:?} is not a valid name: use letters, digits, '_', '.' and '-' (the parameter is read from /<app>/<env>/{name})"),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(PropertyError::new(
                    format!("SecretNames[{index}]"),
                    format!("{name} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::{json, Value};

    /// The root stack's defaults, stringified as CloudFormation sends them.
    fn defaults() -> Value {
        json!({
            "FargateWeight": "1", "FargateSpotWeight": "0", "FargateBase": "0",
            "DesiredCount": "1", "MinCount": "1", "MaxCount": "4",
            "ScaleOutCpuThreshold": "75", "ScaleInCpuThreshold": "25",
            "SecretNames": "", "VpcCidr": "10.0.0.0/16", "AvailabilityZoneCount": "2", "AppPort": "8080",
        })
    }

    fn with(changes: Value) -> Value {
        let mut all = defaults();
        for (key, value) in changes.as_object().unwrap() {
            all[key] = value.clone();
        }
        all
    }

    fn refusal(changes: Value) -> PropertyError {
        parse::<PreflightProperties>(&with(changes)).unwrap_err()
    }

    #[test]
    fn the_root_defaults_pass_and_strings_parse_as_numbers() {
        let p: PreflightProperties = parse(&defaults()).unwrap();
        assert_eq!((p.min_count, p.desired_count, p.max_count), (1, 1, 4));
        assert!(p.secret_names.is_empty());
        assert!(p.create_ecs_service_linked_role);
    }

    #[test]
    fn both_weights_zero_is_refused_naming_the_weights() {
        let e = refusal(json!({"FargateWeight": "0", "FargateSpotWeight": "0"}));
        assert_eq!(e.property, "FargateWeight");
        assert!(e.message.contains("FargateSpotWeight"), "{e}");
    }

    #[test]
    fn min_above_max_and_desired_outside_the_range_are_refused() {
        let e = refusal(json!({"MinCount": "5", "MaxCount": "4", "DesiredCount": "5"}));
        assert_eq!(e.property, "MinCount");
        let e = refusal(json!({"DesiredCount": "6"}));
        assert_eq!(e.property, "DesiredCount");
        assert!(e.message.contains("[0, MaxCount 4]"), "{e}");
        let e = refusal(json!({"DesiredCount": "-1"}));
        assert_eq!(e.property, "DesiredCount");
    }

    #[test]
    fn a_desired_count_below_the_minimum_is_accepted_the_service_starts_at_the_minimum() {
        let p: PreflightProperties =
            parse(&with(json!({"MinCount": "3", "DesiredCount": "1"}))).unwrap();
        assert_eq!((p.min_count, p.desired_count), (3, 1));
    }

    #[test]
    fn a_scale_in_threshold_at_or_above_scale_out_is_refused() {
        let e = refusal(json!({"ScaleInCpuThreshold": "75"}));
        assert_eq!(e.property, "ScaleInCpuThreshold");
    }

    #[test]
    fn six_secret_names_are_refused_rather_than_one_dropped() {
        let e = refusal(json!({"SecretNames": "A,B,C,D,E,F"}));
        assert_eq!(e.property, "SecretNames");
        assert!(e.message.contains("has 6 names"), "{e}");
        assert!(parse::<PreflightProperties>(&with(json!({"SecretNames": "A,B,C,D,E"}))).is_ok());
        assert_eq!(
            refusal(json!({"SecretNames": "A,A"})).property,
            "SecretNames[1]"
        );
        assert_eq!(
            refusal(json!({"SecretNames": "A,B/C"})).property,
            "SecretNames[1]"
        );
    }

    #[test]
    fn one_zone_is_refused_because_a_load_balancer_needs_two() {
        let e = refusal(json!({"AvailabilityZoneCount": "1"}));
        assert_eq!(e.property, "AvailabilityZoneCount");
        assert!(e.message.contains("two zones"), "{e}");
    }
}

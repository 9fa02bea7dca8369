//! Properties of `Custom::FargateService` (see README.md for the contract table).

use custom_resource::ecs::{BASE_MAX, WEIGHT_MAX};
use custom_resource::{de, Properties, PropertyError};
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StrategyItem {
    pub capacity_provider: String,
    /// Relative share of tasks after Base is met (0..1000; AWS's default 0).
    #[serde(default, deserialize_with = "de::number")]
    pub weight: i32,
    /// Tasks placed on this provider first (0..100000; at most one item may set it).
    #[serde(default, deserialize_with = "de::number")]
    pub base: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    #[serde(deserialize_with = "de::number")]
    pub container_port: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CircuitBreaker {
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub enable: bool,
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub rollback: bool,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            enable: true,
            rollback: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum AssignPublicIp {
    #[serde(rename = "ENABLED")]
    Enabled,
    #[default]
    #[serde(rename = "DISABLED")]
    Disabled,
}

impl AssignPublicIp {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignPublicIp::Enabled => "ENABLED",
            AssignPublicIp::Disabled => "DISABLED",
        }
    }
}

pub use custom_resource::properties::Tag;

fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}
fn latest() -> String {
    "LATEST".into()
}
fn half_hour() -> i64 {
    1800
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceProperties {
    /// Required. Cluster name or ARN. Replacement.
    pub cluster: String,
    /// Required. 1-255 letters, digits, - and _. Replacement.
    pub service_name: String,
    /// Required. family, family:revision or ARN. In place.
    pub task_definition: String,
    /// Default 1, ≥ 0. Applied on Update only when this template value changed.
    #[serde(default = "one", deserialize_with = "de::number")]
    pub desired_count: i64,
    /// Default: the cluster's default strategy. In place, with a forced new deployment.
    #[serde(default)]
    pub capacity_provider_strategy: Vec<StrategyItem>,
    /// Required. List or comma-joined string. In place.
    #[serde(deserialize_with = "de::string_list")]
    pub subnets: Vec<String>,
    /// Default []. In place.
    #[serde(default, deserialize_with = "de::string_list")]
    pub security_groups: Vec<String>,
    /// Default DISABLED. In place.
    #[serde(default)]
    pub assign_public_ip: AssignPublicIp,
    /// Default []. In place.
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancer>,
    /// Default none. 0..2147483647, only with LoadBalancers. In place.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub health_check_grace_period_seconds: Option<i32>,
    /// Default {Enable: true, Rollback: true}. In place.
    #[serde(default)]
    pub deployment_circuit_breaker: CircuitBreaker,
    /// Default false. In place.
    #[serde(default, deserialize_with = "de::boolean")]
    pub enable_execute_command: bool,
    /// Default false. Whether `spot-fallback` manages the service: an Update keeps a fallback in
    /// progress on top of a new strategy; with false, an Update ends one it left (the template's
    /// strategy again, its state tag removed). In place.
    #[serde(default, deserialize_with = "de::boolean")]
    pub spot_fallback: bool,
    /// Default LATEST. In place.
    #[serde(default = "latest")]
    pub platform_version: String,
    /// Default true. In place.
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub wait_for_steady_state: bool,
    /// Default true. While waiting, answer FAILED at the first sign of a cause waiting cannot fix
    /// (failfast.rs); false waits until ECS decides (the circuit breaker's rollback finished) or
    /// SteadyStateTimeoutSeconds. In place.
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub fail_fast: bool,
    /// Default 1800, 60..3500. In place.
    #[serde(default = "half_hour", deserialize_with = "de::number")]
    pub steady_state_timeout_seconds: i64,
    /// Default []. In place.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Default none. The customer-managed KMS key of the SecureString parameters the task
    /// definition injects: preflight checks the execution role may `kms:Decrypt` with it. In place.
    #[serde(default)]
    pub secrets_kms_key_arn: Option<String>,
    /// Default none, ≥ 0. The minimum of the autoscaling that manages the count (the
    /// Custom::ServiceScaling MinCapacity): a Create starts max(DesiredCount, this) tasks, and an
    /// Update that removes it (autoscaling removed) returns the service to DesiredCount. In place.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub auto_scaling_min_capacity: Option<i64>,
}

impl ServiceProperties {
    pub fn needs_replacement(&self, new: &ServiceProperties) -> bool {
        self.cluster != new.cluster || self.service_name != new.service_name
    }

    /// The cluster's name (the part after `cluster/` in an ARN).
    pub fn cluster_name(&self) -> &str {
        custom_resource::ecs::cluster_name(&self.cluster)
    }

    /// "FARGATE:1:0,FARGATE_SPOT:3:0"
    pub fn strategy_text(strategy: &[StrategyItem]) -> String {
        custom_resource::ecs::strategy_text(strategy.iter().map(|i| {
            (
                i.capacity_provider.as_str(),
                i64::from(i.weight),
                i64::from(i.base),
            )
        }))
    }
}

impl Properties for ServiceProperties {
    fn validate(&self) -> Result<(), PropertyError> {
        if self.cluster.trim().is_empty() {
            return Err(PropertyError::new(
                "Cluster",
                "must be a cluster name or ARN",
            ));
        }
        let name_ok = (1..=255).contains(&self.service_name.len())
            && self
                .service_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(PropertyError::new(
                "ServiceName",
                format!("{:?} is not a valid ECS service name: use 1-255 letters, digits, hyphens and underscores", self.service_name),
            ));
        }
        if self.task_definition.trim().is_empty() {
            return Err(PropertyError::new(
                "TaskDefinition",
                "must be family, family:revision or a task definition ARN",
            ));
        }
        if self.desired_count < 0 {
            return Err(PropertyError::new(
                "DesiredCount",
                format!("must be 0 or more (got {})", self.desired_count),
            ));
        }
        if let Some(min) = self.auto_scaling_min_capacity.filter(|min| *min < 0) {
            return Err(PropertyError::new(
                "AutoScalingMinCapacity",
                format!("must be 0 or more (got {min}); set it to the autoscaling MinCapacity, or leave it out without autoscaling"),
            ));
        }
        self.validate_strategy()?;
        self.validate_network()?;
        self.validate_load_balancers()?;
        if !(60..=3500).contains(&self.steady_state_timeout_seconds) {
            return Err(PropertyError::new("SteadyStateTimeoutSeconds", format!("must be 60 to 3500 (got {}); it must end before CloudFormation's 3600 s ServiceTimeout", self.steady_state_timeout_seconds)));
        }
        if let Some(key) = self
            .secrets_kms_key_arn
            .as_deref()
            .filter(|k| !k.is_empty())
        {
            let parts: Vec<&str> = key.split(':').collect();
            let is_key = parts.len() == 6
                && parts[0] == "arn"
                && parts[2] == "kms"
                && parts[5].starts_with("key/");
            if !is_key {
                return Err(PropertyError::new(
                    "SecretsKmsKeyArn",
                    format!("{key:?} is not a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>); leave it empty for the aws/ssm key"),
                ));
            }
        }
        validate_tags(&self.tags)
    }
}

impl ServiceProperties {
    fn validate_strategy(&self) -> Result<(), PropertyError> {
        let strategy = &self.capacity_provider_strategy;
        if strategy.len() > 20 {
            return Err(PropertyError::new(
                "CapacityProviderStrategy",
                format!("has {} items; ECS allows at most 20", strategy.len()),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, item) in strategy.iter().enumerate() {
            let at = |field: &str| format!("CapacityProviderStrategy[{index}].{field}");
            if item.capacity_provider.trim().is_empty() {
                return Err(PropertyError::new(
                    at("CapacityProvider"),
                    "must name a capacity provider, e.g. FARGATE or FARGATE_SPOT",
                ));
            }
            if !seen.insert(item.capacity_provider.as_str()) {
                return Err(PropertyError::new(
                    at("CapacityProvider"),
                    format!("{} is listed twice", item.capacity_provider),
                ));
            }
            if !(0..=WEIGHT_MAX).contains(&i64::from(item.weight)) {
                return Err(PropertyError::new(
                    at("Weight"),
                    format!("must be 0 to {WEIGHT_MAX} (got {})", item.weight),
                ));
            }
            if !(0..=BASE_MAX).contains(&i64::from(item.base)) {
                return Err(PropertyError::new(
                    at("Base"),
                    format!("must be 0 to {BASE_MAX} (got {})", item.base),
                ));
            }
        }
        if !strategy.is_empty() && strategy.iter().all(|i| i.weight == 0) {
            return Err(PropertyError::new(
                "CapacityProviderStrategy",
                "every Weight is 0; give at least one provider a Weight above 0 (e.g. FARGATE 1)",
            ));
        }
        let based: Vec<&str> = strategy
            .iter()
            .filter(|i| i.base > 0)
            .map(|i| i.capacity_provider.as_str())
            .collect();
        if based.len() > 1 {
            return Err(PropertyError::new(
                "CapacityProviderStrategy",
                format!(
                    "Base is set on {} ({}); ECS allows a Base on one provider only",
                    based.len(),
                    based.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn validate_network(&self) -> Result<(), PropertyError> {
        if self.subnets.is_empty() || self.subnets.len() > 16 {
            return Err(PropertyError::new(
                "Subnets",
                format!("needs 1 to 16 subnet ids (got {})", self.subnets.len()),
            ));
        }
        if self.security_groups.len() > 5 {
            return Err(PropertyError::new(
                "SecurityGroups",
                format!(
                    "at most 5 security groups (got {})",
                    self.security_groups.len()
                ),
            ));
        }
        Ok(())
    }

    fn validate_load_balancers(&self) -> Result<(), PropertyError> {
        for (index, lb) in self.load_balancers.iter().enumerate() {
            if !lb.target_group_arn.starts_with("arn:") {
                return Err(PropertyError::new(
                    format!("LoadBalancers[{index}].TargetGroupArn"),
                    "must be a target group ARN",
                ));
            }
            if !(1..=65535).contains(&lb.container_port) {
                return Err(PropertyError::new(
                    format!("LoadBalancers[{index}].ContainerPort"),
                    "must be 1 to 65535",
                ));
            }
            if lb.container_name.is_empty() {
                return Err(PropertyError::new(
                    format!("LoadBalancers[{index}].ContainerName"),
                    "must name the container that receives traffic",
                ));
            }
        }
        if let Some(grace) = self.health_check_grace_period_seconds {
            if !(0..=2_147_483_647).contains(&grace) {
                return Err(PropertyError::new(
                    "HealthCheckGracePeriodSeconds",
                    "must be 0 to 2147483647",
                ));
            }
            if self.load_balancers.is_empty() {
                return Err(PropertyError::new(
                    "HealthCheckGracePeriodSeconds",
                    "only applies with LoadBalancers; remove it or add a load balancer",
                ));
            }
        }
        Ok(())
    }
}

fn validate_tags(tags: &[Tag]) -> Result<(), PropertyError> {
    custom_resource::properties::check_tags(
        tags,
        43,
        "ECS allows 50; this resource and spot-fallback write up to 7 of their own",
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({"Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1", "Subnets": "subnet-1,subnet-2"})
    }

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut value = base();
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        value
    }

    fn error(extra: serde_json::Value) -> PropertyError {
        parse::<ServiceProperties>(&with(extra)).unwrap_err()
    }

    #[test]
    fn cloudformation_strings_parse_into_typed_values_with_defaults() {
        let p: ServiceProperties = parse(&with(json!({
            "DesiredCount": "3",
            "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": "1", "Base": "1"}, {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}],
            "WaitForSteadyState": "false",
            "DeploymentCircuitBreaker": {"Rollback": "false"}
        }))).unwrap();
        assert_eq!(p.desired_count, 3);
        assert_eq!(p.subnets, ["subnet-1", "subnet-2"]);
        assert_eq!(
            ServiceProperties::strategy_text(&p.capacity_provider_strategy),
            "FARGATE:1:1,FARGATE_SPOT:3:0"
        );
        assert!(!p.wait_for_steady_state);
        assert_eq!(
            p.deployment_circuit_breaker,
            CircuitBreaker {
                enable: true,
                rollback: false
            }
        );
        assert_eq!(p.assign_public_ip, AssignPublicIp::Disabled);
        assert_eq!(p.platform_version, "LATEST");
        assert_eq!(p.steady_state_timeout_seconds, 1800);
    }

    #[test]
    fn bad_strategies_name_the_property() {
        let e = error(
            json!({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 0}, {"CapacityProvider": "FARGATE_SPOT", "Weight": "0"}]}),
        );
        assert_eq!(e.property, "CapacityProviderStrategy");
        assert!(e.message.contains("every Weight is 0"));
        let e = error(
            json!({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1, "Base": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 1, "Base": 2}]}),
        );
        assert!(e.message.contains("Base on one provider only"));
        let e = error(
            json!({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": -1}]}),
        );
        assert_eq!(e.property, "CapacityProviderStrategy[0].Weight");
        let items: Vec<_> = (0..21)
            .map(|i| json!({"CapacityProvider": format!("p{i}"), "Weight": 1}))
            .collect();
        assert!(error(json!({"CapacityProviderStrategy": items}))
            .message
            .contains("at most 20"));
    }

    #[test]
    fn other_bad_input_names_the_property() {
        assert_eq!(
            error(json!({"DesiredCount": "-1"})).property,
            "DesiredCount"
        );
        assert_eq!(
            error(json!({"ServiceName": "web app"})).property,
            "ServiceName"
        );
        assert_eq!(
            error(json!({"SteadyStateTimeoutSeconds": 4000})).property,
            "SteadyStateTimeoutSeconds"
        );
        assert_eq!(
            error(json!({"AssignPublicIp": "MAYBE"})).property,
            "AssignPublicIp"
        );
        assert_eq!(
            error(json!({"HealthCheckGracePeriodSeconds": 30})).property,
            "HealthCheckGracePeriodSeconds"
        );
        let e = error(json!({"DesiredCuont": 2}));
        assert!(
            e.message.contains("did you mean DesiredCount?"),
            "{}",
            e.message
        );
        let e = parse::<ServiceProperties>(
            &json!({"Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1"}),
        )
        .unwrap_err();
        assert_eq!(e.property, "Subnets");
    }

    #[test]
    fn only_cluster_and_service_name_force_replacement() {
        let a: ServiceProperties = parse(&base()).unwrap();
        let b: ServiceProperties = parse(&with(json!({"TaskDefinition": "web:2", "DesiredCount": 4, "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]}))).unwrap();
        assert!(!a.needs_replacement(&b));
        let c: ServiceProperties = parse(&with(json!({"ServiceName": "api"}))).unwrap();
        assert!(a.needs_replacement(&c));
        let d: ServiceProperties = parse(&with(
            json!({"Cluster": "arn:aws:ecs:us-east-1:1:cluster/other"}),
        ))
        .unwrap();
        assert!(a.needs_replacement(&d));
        assert_eq!(d.cluster_name(), "other");
    }
}

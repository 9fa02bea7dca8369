//! ECS identifiers more than one provider function builds (one home for each).

/// A capacity-provider strategy item's weight is 0 to this (ECS API Reference,
/// CapacityProviderStrategyItem: "weight ... Valid Range: Minimum value of 0. Maximum value of
/// 1000"); the templates' MaxValue and stackctl.WEIGHT_MAX are checked equal by
/// tests/test_templates.py.
pub const WEIGHT_MAX: i64 = 1000;
/// And its base 0 to this ("base ... Maximum value of 100000"); same check.
pub const BASE_MAX: i64 = 100_000;

/// A cluster's name from its name or ARN (the part after `cluster/`).
pub fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit('/').next().unwrap_or(cluster)
}

/// Application Auto Scaling's resource id for a service's desired count:
/// `service/<cluster name>/<service name>`.
pub fn scalable_target_id(cluster: &str, service_name: &str) -> String {
    format!("service/{}/{service_name}", cluster_name(cluster))
}

/// A capacity provider strategy as the provider functions show it (Data, logs, messages):
/// `FARGATE:1:0,FARGATE_SPOT:3:0` (provider:weight:base, in strategy order).
pub fn strategy_text<'a>(items: impl IntoIterator<Item = (&'a str, i64, i64)>) -> String {
    items
        .into_iter()
        .map(|(provider, weight, base)| format!("{provider}:{weight}:{base}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of a service's tag `key` (DescribeServices with `include: TAGS`).
pub fn tag_of<'a>(service: &'a aws_sdk_ecs::types::Service, key: &str) -> Option<&'a str> {
    service
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// An ECS tag.
pub fn tag(key: &str, value: &str) -> aws_sdk_ecs::types::Tag {
    aws_sdk_ecs::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strategy_reads_provider_weight_base_in_order() {
        assert_eq!(
            strategy_text([("FARGATE", 1, 0), ("FARGATE_SPOT", 3, 0)]),
            "FARGATE:1:0,FARGATE_SPOT:3:0"
        );
        assert_eq!(strategy_text([]), "");
    }

    #[test]
    fn the_scalable_target_id_takes_the_clusters_name_from_a_name_or_an_arn() {
        assert_eq!(scalable_target_id("app", "web"), "service/app/web");
        assert_eq!(
            scalable_target_id("arn:aws:ecs:us-east-1:123456789012:cluster/app", "web"),
            "service/app/web"
        );
    }
}

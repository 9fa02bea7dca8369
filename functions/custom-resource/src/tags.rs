//! Tag keys the provider functions write on what they create (one home for each). Every key
//! starts with [`PREFIX`], which user tags may not use.

/// The prefix of every tag key this provider writes; refused in user `Tags`.
pub const PREFIX: &str = "custom-resource:";

/// Ownership: the stack, logical id and request that made a resource (a redelivered Create finds
/// what it made by them; nothing is adopted without them).
pub const STACK_ID: &str = "custom-resource:stack-id";
pub const LOGICAL_ID: &str = "custom-resource:logical-id";
pub const REQUEST_ID: &str = "custom-resource:request-id";

/// On an ECS service made by `Custom::FargateService`: the template's `DesiredCount`. When
/// `Custom::ServiceScaling` is removed, its Delete returns the service to this count (autoscaling
/// no longer owns it).
pub const TEMPLATE_DESIRED_COUNT: &str = "custom-resource:desired-count";

/// On an ECS service made by `Custom::FargateService`: the template's capacity-provider strategy
/// (`fallback::strategy_tag`), which `spot-fallback` returns to after a fallback.
pub const TEMPLATE_STRATEGY: &str = "custom-resource:template-strategy";

/// On an ECS service `spot-fallback` has shifted towards FARGATE: its state (`fallback::State`).
/// `Custom::FargateService` applies it to a new template strategy on Update.
pub const SPOT_FALLBACK: &str = "custom-resource:spot-fallback";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_reserved_prefix() {
        for key in [
            STACK_ID,
            LOGICAL_ID,
            REQUEST_ID,
            TEMPLATE_DESIRED_COUNT,
            TEMPLATE_STRATEGY,
            SPOT_FALLBACK,
        ] {
            assert!(key.starts_with(PREFIX), "{key}");
        }
    }
}

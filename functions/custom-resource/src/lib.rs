//! # custom-resource
//!
//! The one crate in this workspace that speaks CloudFormation's custom-resource protocol. A
//! resource implements [`Resource`] over a typed [`Properties`] struct; [`run`] does the rest:
//!
//! - decodes the event (aws_lambda_events' CloudFormation types), parses and validates properties
//!   (scalars as strings or JSON, unknown names rejected with the closest known name);
//! - answers **exactly once** on every path: success, handler error, panic, bad properties and the
//!   Lambda deadline (FAILED a safety margin before it, unless the wait was handed on);
//! - PUTs the answer with retries, always within 4096 bytes;
//! - answers a failed Create with a marker physical id, and succeeds the rollback Delete for it
//!   without calling the resource;
//! - keeps the physical id on Update unless the resource declares a replacement;
//! - polls pending operations (≤ 5 s) and hands them to a new invocation before the deadline.
//!
//! See `docs/architecture.md` at the repository root for the invariants and where each is tested.

pub mod config;
pub mod de;
pub mod deliver;
pub mod ecs;
pub mod error;
pub mod fallback;
pub mod handover;
pub mod http;
pub mod properties;
pub mod provider;
pub mod resource;
pub mod response;
pub mod rounds;
pub mod tags;

pub use config::{epoch_ms, Settings};
pub use error::{AwsError, Error};
pub use properties::{Properties, PropertyError};
pub use provider::{Handled, Invocation, Provider};
pub use resource::{Completion, Context, Outcome, PhysicalId, Request, RequestType, Resource};

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per AWS call (the SDK's default is 3): enough to ride out a burst of throttling or
/// 5xx answers, which AWS expects clients to retry (docs/reliability.md).
pub const SDK_MAX_ATTEMPTS: u32 = 8;
/// First and longest wait between attempts; the SDK jitters each wait. Worst case for one call:
/// 1 + 2 + 4 + 8 + 16 + 20 + 20 = 71 s, inside every function's timeout and operation budget.
pub const SDK_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const SDK_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The one retry policy of every SDK client: standard mode (jittered exponential backoff) with
/// [`SDK_MAX_ATTEMPTS`]; its quota is lifted by [`retry_partition`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(SDK_INITIAL_BACKOFF)
        .with_max_backoff(SDK_MAX_BACKOFF)
}

/// The retry partition of every client: no client-side retry quota. The SDK's quota (a token
/// bucket shared by all clients of a process, which loses tokens for good on every request retried
/// twice) exists to fail fast when a service is down for everyone; a custom resource that fails
/// fast fails the user's stack. Each call stays bounded by [`SDK_MAX_ATTEMPTS`] and each operation
/// by its budget. (Measured: after a few network lifecycles at 35% throttling the default quota
/// was empty and a single 500 failed a Delete.)
pub fn retry_partition() -> aws_sdk_lambda::config::retry::RetryPartition {
    use aws_sdk_lambda::config::retry::{RetryPartition, TokenBucket};
    RetryPartition::custom("custom-resource")
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// An SDK client with the one retry policy: `custom_resource::client!(aws_sdk_ec2, &config)`
/// ([`sdk_config`]'s attempts and backoff, [`retry_partition`]'s quota).
#[macro_export]
macro_rules! client {
    ($sdk:ident, $config:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .retry_partition($crate::retry_partition())
                .build(),
        )
    };
}

/// The SDK configuration every provider function builds its clients from: the environment's
/// region, credentials and endpoints, with [`retry_config`]. Build clients with [`client!`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(retry_config())
        .load()
        .await
}

/// The HTTP client every SDK client uses ([`http::SdkHttpClient`]: the one HTTP and TLS stack
/// linked). Tests that build an SDK config by hand pass it too.
pub fn http_client() -> aws_sdk_lambda::config::SharedHttpClient {
    http::SdkHttpClient::shared()
}

/// Structured JSON logs on stdout. Level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default
/// info); `LOG_FORMAT=text` switches to human-readable lines for local runs.
pub fn init_tracing() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|level| level.to_lowercase()))
        .unwrap_or_else(|_| "info".to_owned());
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `info`, or per target as in `info,custom_resource=debug` (no regex-based filters).
    let filter: Targets = level
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer().with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let text = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("text"));
    let _ = if text {
        registry.with(layer.without_time()).try_init()
    } else {
        registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    };
}

/// Runs `resource` behind the Lambda Runtime API until the process is stopped.
///
/// `sdk_config` provides the Lambda client used to hand long waits on to a new invocation (and
/// the DynamoDB client that claims hand-overs, when `CUSTOM_RESOURCE_HANDOVER_TABLE` is set).
///
/// Run with the single argument `--property-names`, the binary prints the JSON list of the
/// resource's property names and exits (used to check templates, which cfn-lint cannot see into).
pub async fn run<R: Resource>(
    resource: R,
    sdk_config: &aws_config::SdkConfig,
) -> Result<(), lambda_runtime::Error> {
    if std::env::args().nth(1).as_deref() == Some("--property-names") {
        let names = properties::field_names::<R::Properties>().unwrap_or_default();
        println!("{}", serde_json::to_string(names)?);
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let claims = settings
        .handover_table
        .clone()
        .map(|table| handover::ClaimTable {
            dynamodb: client!(aws_sdk_dynamodb, sdk_config),
            table,
        });
    let provider = Arc::new(Provider::new(
        resource,
        deliver::HttpDelivery::new()?,
        handover::LambdaHandOver::new(client!(aws_sdk_lambda, sdk_config), claims),
        settings,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let provider = Arc::clone(&provider);
        async move {
            let invocation = Invocation::from_deadline_ms(
                event.context.deadline,
                event.context.invoked_function_arn.clone(),
                event.context.request_id.clone(),
            );
            // Always Ok: returning an error would make Lambda retry an event already answered.
            let summary = match provider.handle(event.payload, invocation).await {
                Handled::Answered { answer, delivered } => json!({
                    "Status": answer.status(),
                    "PhysicalResourceId": answer.physical_id,
                    "Delivered": delivered,
                }),
                Handled::HandedOver { invocation } => json!({ "HandedOverTo": invocation }),
                Handled::Refused => json!({ "Status": "NOT_ANSWERED" }),
                Handled::Duplicate => json!({ "Status": "DUPLICATE_HAND_OVER" }),
            };
            Ok::<Value, lambda_runtime::Error>(summary)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_retries_eight_times_with_backoff_capped_at_twenty_seconds() {
        let retry = retry_config();
        assert_eq!(retry.max_attempts(), 8);
        assert_eq!(retry.initial_backoff(), Duration::from_secs(1));
        assert_eq!(retry.max_backoff(), Duration::from_secs(20));
        let waits: u64 = (0..SDK_MAX_ATTEMPTS - 1)
            .map(|n| (SDK_INITIAL_BACKOFF.as_secs() << n).min(SDK_MAX_BACKOFF.as_secs()))
            .sum();
        assert_eq!(waits, 71, "worst case per call, before jitter");
    }
}

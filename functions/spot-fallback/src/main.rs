//! `spot-fallback`: the EventBridge target that moves one service's tasks from FARGATE_SPOT to
//! FARGATE while Spot cannot place them, and back after a quiet period. Thin on purpose: tracing,
//! settings, the client once, run. See README.md.

mod decide;
mod error;
mod event;
mod service;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let settings = service::Settings::from_env()?;
    let config = custom_resource::sdk_config().await;
    let ecs = custom_resource::client!(aws_sdk_ecs, &config);
    let managed = service::Managed::new(ecs, settings);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let managed = &managed;
        async move { managed.handle(event.payload).await }
    }))
    .await
}

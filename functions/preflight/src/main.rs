//! `preflight`: the Lambda behind `Custom::EnvironmentPreflight`. Thin on purpose: tracing,
//! config, clients once, run. See README.md for the contract.

mod error;
mod properties;
mod resource;

use aws_config::BehaviorVersion;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let resource = resource::EnvironmentPreflight::new(aws_sdk_iam::Client::new(&config));
    custom_resource::run(resource, &config).await
}

//! `preflight`: the Lambda behind `Custom::EnvironmentPreflight`. Thin on purpose: tracing,
//! config, clients once, run. See README.md for the contract.

mod error;
mod properties;
mod resource;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let resource =
        resource::EnvironmentPreflight::new(custom_resource::client!(aws_sdk_iam, &config));
    custom_resource::run(resource, &config).await
}

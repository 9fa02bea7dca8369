//! `network`: the Lambda behind `Custom::Network`. Thin on purpose: tracing, config, one EC2
//! client, run. The resource lives in `resource.rs`; see README.md for its contract.

mod apply;
mod error;
mod layout;
mod plan;
mod properties;
mod resource;
mod state;
mod zones;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let network = resource::Network::new(custom_resource::client!(aws_sdk_ec2, &config));
    custom_resource::run(network, &config).await
}

//! `network`: the Lambda behind `Custom::Network`. Thin on purpose: tracing, config, one EC2
//! client, run. The resource lives in `resource.rs`; see README.md for its contract.

mod error;
mod layout;
mod properties;
mod resource;
mod state;
mod zones;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let network = resource::Network::new(aws_sdk_ec2::Client::new(&config));
    custom_resource::run(network, &config).await
}

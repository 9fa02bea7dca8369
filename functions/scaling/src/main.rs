//! `scaling`: the Lambda behind `Custom::ServiceScaling`. Thin on purpose: tracing, config,
//! clients once, run. See README.md for the contract.

mod error;
mod properties;
mod resource;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let clients = resource::Clients {
        scaling: aws_sdk_applicationautoscaling::Client::new(&config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        ecs: aws_sdk_ecs::Client::new(&config),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
    };
    custom_resource::run(resource::ServiceScaling::new(clients), &config).await
}

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
        scaling: custom_resource::client!(aws_sdk_applicationautoscaling, &config),
        cloudwatch: custom_resource::client!(aws_sdk_cloudwatch, &config),
        ecs: custom_resource::client!(aws_sdk_ecs, &config),
        elb: custom_resource::client!(aws_sdk_elasticloadbalancingv2, &config),
    };
    custom_resource::run(resource::ServiceScaling::new(clients), &config).await
}

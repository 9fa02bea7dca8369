//! `service`: the Lambda behind `Custom::FargateService`. Thin on purpose: tracing, config,
//! clients once, run. See README.md for the contract.

mod error;
mod preflight;
mod properties;
mod resource;
mod steady;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let clients = resource::Clients {
        ecs: aws_sdk_ecs::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
        scaling: aws_sdk_applicationautoscaling::Client::new(&config),
        ecr: aws_sdk_ecr::Client::new(&config),
    };
    custom_resource::run(resource::FargateService::new(clients), &config).await
}

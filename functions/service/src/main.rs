//! `service`: the Lambda behind `Custom::FargateService`. Thin on purpose: tracing, config,
//! clients once, run. See README.md for the contract.

mod clients;
mod count;
mod error;
mod failfast;
mod preflight;
mod properties;
mod resource;
mod steady;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    custom_resource::init_tracing();
    let config = custom_resource::sdk_config().await;
    let clients = clients::Clients {
        ecs: custom_resource::client!(aws_sdk_ecs, &config),
        iam: custom_resource::client!(aws_sdk_iam, &config),
        ssm: custom_resource::client!(aws_sdk_ssm, &config),
        elb: custom_resource::client!(aws_sdk_elasticloadbalancingv2, &config),
        scaling: custom_resource::client!(aws_sdk_applicationautoscaling, &config),
        ecr: custom_resource::client!(aws_sdk_ecr, &config),
    };
    custom_resource::run(resource::FargateService::new(clients), &config).await
}

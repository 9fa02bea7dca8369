//! The AWS clients `Custom::FargateService` uses, built once in `main.rs` (its own module, so the
//! preflight checks and the resource share it without importing each other).

pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub scaling: aws_sdk_applicationautoscaling::Client,
    pub ecr: aws_sdk_ecr::Client,
}

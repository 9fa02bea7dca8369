//! Exactly what UpdateService sends on the wire for each in-place property change: the request
//! goes through the real SDK client (serialization, signing) and an interceptor (the SDK's own
//! `Intercept` hook) records the HTTP request just before transmission, then stops the call, so
//! nothing leaves the process. The pytest scenarios check the same changes against moto; this
//! checks the bytes, which moto would accept even with fields it ignores.

use super::*;
use aws_sdk_ecs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use custom_resource::properties::parse;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The X-Amz-Target header and JSON body of the one request a client sent.
#[derive(Debug, Default, Clone)]
struct Captured(Arc<Mutex<Option<(String, Value)>>>);

impl Intercept for Captured {
    fn name(&self) -> &'static str {
        "Captured"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let body = serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
        *self.0.lock().unwrap() = Some((target.to_owned(), body));
        Err("captured: not sent".into())
    }
}

/// The wire request for `new` replacing `old` (None: no UpdateService at all).
async fn sent(old: Value, new: Value, fallback: FallbackPlan) -> Option<(String, Value)> {
    let captured = Captured::default();
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
        .interceptor(captured.clone())
        .http_client(custom_resource::http_client())
        .build();
    let request = aws_sdk_ecs::Client::from_conf(config)
        .update_service()
        .cluster("app")
        .service("web");
    let (request, changed) =
        in_place_changes(request, &props(old), &props(new), false, fallback).unwrap();
    if changed.is_empty() {
        return None;
    }
    assert!(
        request.send().await.is_err(),
        "the interceptor stops the call"
    );
    let wire = captured.0.lock().unwrap().take();
    assert!(wire.is_some(), "the request reached the transmit stage");
    wire
}

fn props(extra: Value) -> ServiceProperties {
    let mut raw = json!({"Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1",
                         "Subnets": "subnet-1,subnet-2",
                         "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": "1"}]});
    for (key, value) in extra.as_object().unwrap() {
        raw[key] = value.clone();
    }
    parse(&raw).unwrap()
}

const KEEP: FallbackPlan = FallbackPlan::Keep(FallbackState::Normal);

#[tokio::test]
async fn a_new_mix_sends_the_strategy_and_a_forced_deployment_and_nothing_else() {
    let (target, body) = sent(
        json!({}),
        json!({"CapacityProviderStrategy": [
            {"CapacityProvider": "FARGATE", "Weight": 1, "Base": "1"},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}]}),
        KEEP,
    )
    .await
    .unwrap();
    assert_eq!(target, "AmazonEC2ContainerServiceV20141113.UpdateService");
    assert_eq!(
        body,
        json!({"cluster": "app", "service": "web", "forceNewDeployment": true,
               "capacityProviderStrategy": [
                   {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                   {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]})
    );
}

#[tokio::test]
async fn a_new_mix_during_a_spot_fallback_carries_the_fallbacks_base() {
    let engaged = FallbackPlan::Keep(FallbackState::Fallback {
        base: 4,
        attempts: 0,
        retry_at: 0,
    });
    let (_, body) = sent(
        json!({}),
        json!({"CapacityProviderStrategy": [
            {"CapacityProvider": "FARGATE", "Weight": "2"},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": "2"}]}),
        engaged,
    )
    .await
    .unwrap();
    assert_eq!(
        body["capacityProviderStrategy"],
        json!([{"capacityProvider": "FARGATE", "weight": 2, "base": 4},
               {"capacityProvider": "FARGATE_SPOT", "weight": 2, "base": 0}])
    );
}

#[tokio::test]
async fn new_subnets_send_the_whole_network_configuration_without_a_new_deployment() {
    let (_, body) = sent(
        json!({}),
        json!({"Subnets": ["subnet-3"], "SecurityGroups": "sg-1", "AssignPublicIp": "ENABLED"}),
        KEEP,
    )
    .await
    .unwrap();
    assert_eq!(
        body,
        json!({"cluster": "app", "service": "web", "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-3"], "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED"}}})
    );
}

#[tokio::test]
async fn each_other_in_place_property_sends_only_its_own_field() {
    let lb = json!([{"TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/1",
                     "ContainerName": "web", "ContainerPort": "8080"}]);
    let cases = [
        (
            json!({"LoadBalancers": lb}),
            json!({"loadBalancers": [{"targetGroupArn": lb[0]["TargetGroupArn"], "containerName": "web", "containerPort": 8080}]}),
        ),
        (
            json!({"LoadBalancers": lb, "HealthCheckGracePeriodSeconds": "60"}),
            json!({"loadBalancers": [{"targetGroupArn": lb[0]["TargetGroupArn"], "containerName": "web", "containerPort": 8080}],
                   "healthCheckGracePeriodSeconds": 60}),
        ),
        (
            json!({"DeploymentCircuitBreaker": {"Enable": "true", "Rollback": "false"}}),
            // The whole configuration: UpdateService replaces it, so the percentages go along.
            json!({"deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true, "rollback": false},
                                               "maximumPercent": 200, "minimumHealthyPercent": 100}}),
        ),
        (
            json!({"EnableExecuteCommand": "true"}),
            json!({"enableExecuteCommand": true}),
        ),
        (
            json!({"PlatformVersion": "1.4.0"}),
            json!({"platformVersion": "1.4.0"}),
        ),
    ];
    for (change, fields) in cases {
        let (_, mut body) = sent(json!({}), change.clone(), KEEP).await.unwrap();
        let body = body.as_object_mut().unwrap();
        assert_eq!(body.remove("cluster"), Some(json!("app")));
        assert_eq!(body.remove("service"), Some(json!("web")));
        assert_eq!(
            Value::Object(body.clone()),
            fields,
            "{change}: only its fields"
        );
    }
}

#[tokio::test]
async fn the_same_properties_as_strings_or_numbers_send_no_update() {
    let numbers = json!({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}],
                         "EnableExecuteCommand": false});
    let strings = json!({"CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": "1"}],
                         "EnableExecuteCommand": "false"});
    assert!(sent(numbers, strings, KEEP).await.is_none());
}

#[tokio::test]
async fn turning_spot_fallback_off_during_a_fallback_sends_the_templates_mix_again() {
    let mix = json!({"CapacityProviderStrategy": [
        {"CapacityProvider": "FARGATE", "Weight": "1"},
        {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}]});
    let (_, body) = sent(mix.clone(), mix, FallbackPlan::End).await.unwrap();
    assert_eq!(
        body,
        json!({"cluster": "app", "service": "web", "forceNewDeployment": true,
               "capacityProviderStrategy": [
                   {"capacityProvider": "FARGATE", "weight": 1, "base": 0},
                   {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]})
    );
}

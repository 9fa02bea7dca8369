//! Create, update and delete for `Custom::ServiceScaling`.
//!
//! Every call here is an upsert or an idempotent delete, so a redelivered or retried request
//! simply converges; nothing waits, so `resume` is never reached.

use crate::error::ScalingError;
use crate::properties::{Metric, ScalingProperties, TargetTracking};
use aws_sdk_applicationautoscaling::error::ProvideErrorMetadata;
use aws_sdk_applicationautoscaling::types::{
    AdjustmentType, MetricAggregationType, MetricType, PolicyType, PredefinedMetricSpecification,
    ScalableDimension, ServiceNamespace, StepAdjustment, StepScalingPolicyConfiguration,
    TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_ecs::types::{Service, ServiceField};
use custom_resource::rounds::all_settled;
use custom_resource::tags::TEMPLATE_DESIRED_COUNT;
use custom_resource::{Completion, Context, Outcome, Request, Resource};
use serde_json::Value;
use std::collections::BTreeSet;
use tracing::info;

pub struct Clients {
    pub scaling: aws_sdk_applicationautoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
}

pub struct ServiceScaling {
    c: Clients,
}

/// Which way a step policy and its alarm scale.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    Out,
    In,
}

impl Direction {
    fn policy_name(self, p: &ScalingProperties) -> String {
        p.name(match self {
            Direction::Out => "cpu-scale-out",
            Direction::In => "cpu-scale-in",
        })
    }
    fn alarm_name(self, p: &ScalingProperties) -> String {
        p.name(match self {
            Direction::Out => "cpu-high",
            Direction::In => "cpu-low",
        })
    }
}

/// The scale-out step starts at the threshold (lower bound 0 under a `>=` alarm); the scale-in step
/// ends at it (upper bound 0 under a `<` alarm). Bounds are relative to the alarm threshold: an
/// upper bound of 0 on scale-out would match no breach ("No step adjustment found").
fn step(direction: Direction, p: &ScalingProperties) -> Result<StepAdjustment, ScalingError> {
    let builder = StepAdjustment::builder();
    let builder = match direction {
        Direction::Out => builder
            .metric_interval_lower_bound(0.0)
            .scaling_adjustment(p.scale_out_adjustment),
        Direction::In => builder
            .metric_interval_upper_bound(0.0)
            .scaling_adjustment(-p.scale_in_adjustment),
    };
    builder.build().map_err(|_| ScalingError::Missing {
        operation: "StepAdjustment",
        field: "ScalingAdjustment",
    })
}

fn tracking_policy_name(p: &ScalingProperties, metric: Metric) -> String {
    p.name(&format!("target-{}", metric.slug()))
}

/// `app/<load-balancer>/<id>/targetgroup/<target-group>/<id>` from the two ARNs.
pub fn resource_label(load_balancer_arn: &str, target_group_arn: &str) -> Option<String> {
    let lb = load_balancer_arn.split_once(":loadbalancer/")?.1;
    let tg = target_group_arn.rsplit_once(':')?.1;
    tg.starts_with("targetgroup/").then(|| format!("{lb}/{tg}"))
}

/// AWS answers ObjectNotFoundException; moto answers ValidationException "No scaling policy
/// found" / "No scalable target found".
fn is_not_found<E: ProvideErrorMetadata>(
    error: &aws_sdk_applicationautoscaling::error::SdkError<E>,
) -> bool {
    let Some(service) = error.as_service_error() else {
        return false;
    };
    service.code() == Some("ObjectNotFoundException")
        || (service.code() == Some("ValidationException")
            && service.message().is_some_and(|m| {
                m.starts_with("No scaling policy found")
                    || m.starts_with("No scalable target found")
            }))
}

impl ServiceScaling {
    pub fn new(c: Clients) -> Self {
        Self { c }
    }

    async fn label_for(
        &self,
        index: usize,
        tracking: &TargetTracking,
    ) -> Result<Option<String>, ScalingError> {
        let Some(arn) = tracking
            .target_group_arn
            .as_deref()
            .filter(|_| tracking.metric == Metric::AlbRequests)
        else {
            return Ok(None);
        };
        let property = format!("TargetTracking[{index}].TargetGroupArn");
        let answer = self
            .c
            .elb
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .map_err(|e| ScalingError::Property {
                property: property.clone(),
                message: format!(
                    "target group {arn} could not be read ({}); create it or fix the ARN",
                    e.code().unwrap_or("error")
                ),
            })?;
        let balancer = answer
            .target_groups()
            .first()
            .and_then(|g| g.load_balancer_arns().first())
            .ok_or_else(|| ScalingError::Property {
                property: property.clone(),
                message: format!("target group {arn} is not attached to a load balancer yet; add a listener rule that forwards to it (and order it before this resource)"),
            })?;
        resource_label(balancer, arn)
            .map(Some)
            .ok_or(ScalingError::Property {
                property,
                message: format!("cannot derive the ResourceLabel from {balancer} and {arn}"),
            })
    }

    /// The service, when it and its cluster exist and it is ACTIVE (with its tags).
    async fn active_service(&self, p: &ScalingProperties) -> Result<Option<Service>, ScalingError> {
        let services = match self
            .c
            .ecs
            .describe_services()
            .cluster(&p.cluster)
            .services(&p.service_name)
            .include(ServiceField::Tags)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.code() == Some("ClusterNotFoundException") => return Ok(None),
            Err(e) => return Err(ScalingError::aws("DescribeServices")(e)),
        };
        Ok(services
            .services()
            .iter()
            .find(|s| s.status() == Some("ACTIVE"))
            .cloned())
    }

    async fn set_desired_count(
        &self,
        p: &ScalingProperties,
        count: i32,
    ) -> Result<(), ScalingError> {
        self.c
            .ecs
            .update_service()
            .cluster(&p.cluster)
            .service(&p.service_name)
            .desired_count(count)
            .send()
            .await
            .map_err(ScalingError::aws("UpdateService"))?;
        Ok(())
    }

    /// Keeps the service's desired count inside [min, max] right away (Application Auto Scaling
    /// would only correct it at its next activity).
    async fn clamp_desired(&self, p: &ScalingProperties) -> Result<(), ScalingError> {
        let Some(service) = self.active_service(p).await? else {
            return Ok(());
        };
        let desired = service.desired_count();
        let clamped = desired.clamp(p.min_capacity, p.max_capacity);
        if clamped != desired {
            info!(
                desired,
                clamped, "moving the service's desired count into the new range"
            );
            self.set_desired_count(p, clamped).await?;
        }
        Ok(())
    }

    async fn put_step_policy(
        &self,
        direction: Direction,
        p: &ScalingProperties,
    ) -> Result<String, ScalingError> {
        let cooldown = match direction {
            Direction::Out => p.scale_out_cooldown,
            Direction::In => p.scale_in_cooldown,
        };
        let configuration = StepScalingPolicyConfiguration::builder()
            .adjustment_type(AdjustmentType::ChangeInCapacity)
            .cooldown(cooldown)
            .metric_aggregation_type(MetricAggregationType::Average)
            .step_adjustments(step(direction, p)?)
            .build();
        let answer = self
            .c
            .scaling
            .put_scaling_policy()
            .policy_name(direction.policy_name(p))
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(p.resource_id())
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_type(PolicyType::StepScaling)
            .step_scaling_policy_configuration(configuration)
            .send()
            .await
            .map_err(ScalingError::aws("PutScalingPolicy"))?;
        Ok(answer.policy_arn().to_owned())
    }

    async fn put_tracking_policy(
        &self,
        p: &ScalingProperties,
        tracking: &TargetTracking,
        label: Option<String>,
    ) -> Result<String, ScalingError> {
        let metric = match tracking.metric {
            Metric::Cpu => MetricType::EcsServiceAverageCpuUtilization,
            Metric::Memory => MetricType::EcsServiceAverageMemoryUtilization,
            Metric::AlbRequests => MetricType::AlbRequestCountPerTarget,
        };
        let specification = PredefinedMetricSpecification::builder()
            .predefined_metric_type(metric)
            .set_resource_label(label)
            .build()
            .map_err(|_| ScalingError::Missing {
                operation: "PredefinedMetricSpecification",
                field: "PredefinedMetricType",
            })?;
        let configuration = TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(tracking.target_value)
            .predefined_metric_specification(specification)
            .scale_in_cooldown(tracking.scale_in_cooldown)
            .scale_out_cooldown(tracking.scale_out_cooldown)
            .disable_scale_in(tracking.disable_scale_in)
            .build()
            .map_err(|_| ScalingError::Missing {
                operation: "TargetTrackingScalingPolicyConfiguration",
                field: "TargetValue",
            })?;
        let answer = self
            .c
            .scaling
            .put_scaling_policy()
            .policy_name(tracking_policy_name(p, tracking.metric))
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(p.resource_id())
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(configuration)
            .send()
            .await
            .map_err(ScalingError::aws("PutScalingPolicy"))?;
        Ok(answer.policy_arn().to_owned())
    }

    async fn delete_policy(&self, resource_id: &str, name: &str) -> Result<(), ScalingError> {
        match self
            .c
            .scaling
            .delete_scaling_policy()
            .policy_name(name)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(resource_id)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(ScalingError::aws("DeleteScalingPolicy")(e)),
        }
    }

    async fn put_alarm(
        &self,
        direction: Direction,
        p: &ScalingProperties,
        policy_arn: &str,
    ) -> Result<(), ScalingError> {
        let (threshold, operator, description) = match direction {
            Direction::Out => (
                p.scale_out_cpu_threshold,
                ComparisonOperator::GreaterThanOrEqualToThreshold,
                format!(
                    "Scale {} out by {} when average CPU >= {}%",
                    p.service_name, p.scale_out_adjustment, p.scale_out_cpu_threshold
                ),
            ),
            Direction::In => (
                p.scale_in_cpu_threshold,
                ComparisonOperator::LessThanThreshold,
                format!(
                    "Scale {} in by {} when average CPU < {}%",
                    p.service_name, p.scale_in_adjustment, p.scale_in_cpu_threshold
                ),
            ),
        };
        self.c
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(direction.alarm_name(p))
            .alarm_description(description)
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .dimensions(
                Dimension::builder()
                    .name("ClusterName")
                    .value(p.cluster_name())
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("ServiceName")
                    .value(&p.service_name)
                    .build(),
            )
            .statistic(Statistic::Average)
            .period(p.period_seconds)
            .evaluation_periods(p.evaluation_periods)
            .threshold(threshold)
            .comparison_operator(operator)
            .alarm_actions(policy_arn)
            .send()
            .await
            .map_err(ScalingError::aws("PutMetricAlarm"))?;
        Ok(())
    }

    /// Round 1 of [`Self::apply`]: the scalable target, the ALB resource labels (one per
    /// target-tracking policy) and, on update, the desired-count clamp.
    async fn register_round(
        &self,
        p: &ScalingProperties,
        old: Option<&ScalingProperties>,
    ) -> Result<Vec<Option<String>>, ScalingError> {
        let register = async {
            self.c
                .scaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(p.resource_id())
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .min_capacity(p.min_capacity)
                .max_capacity(p.max_capacity)
                .send()
                .await
                .map_err(ScalingError::aws("RegisterScalableTarget"))
        };
        let labels = all_settled(
            p.target_tracking
                .iter()
                .enumerate()
                .map(|(i, t)| self.label_for(i, t)),
        );
        let clamp = async {
            if old.is_some() {
                self.clamp_desired(p).await
            } else {
                Ok(())
            }
        };
        // join!, not try_join!: a failed call must not leave the others in flight (rounds.rs).
        let (registered, labels, clamped) = futures::join!(register, labels, clamp);
        let (_, labels, ()) = (registered?, labels?, clamped?);
        Ok(labels)
    }

    /// Makes the target, policies and alarms match `p` (create and update alike).
    async fn apply(
        &self,
        p: &ScalingProperties,
        old: Option<&ScalingProperties>,
    ) -> Result<Completion, ScalingError> {
        let labels = self.register_round(p, old).await?;

        // Round 2: every policy at once; target-tracking policies no longer listed are removed.
        let kept: BTreeSet<Metric> = p.target_tracking.iter().map(|t| t.metric).collect();
        let removed: Vec<String> = old
            .map(|o| {
                o.target_tracking
                    .iter()
                    .filter(|t| !kept.contains(&t.metric))
                    .map(|t| tracking_policy_name(p, t.metric))
                    .collect()
            })
            .unwrap_or_default();
        let resource_id = p.resource_id();
        let (out_arn, in_arn, tracking_arns, removed) = futures::join!(
            self.put_step_policy(Direction::Out, p),
            self.put_step_policy(Direction::In, p),
            all_settled(
                p.target_tracking
                    .iter()
                    .zip(labels)
                    .map(|(t, label)| self.put_tracking_policy(p, t, label))
            ),
            async {
                all_settled(
                    removed
                        .iter()
                        .map(|name| self.delete_policy(&resource_id, name)),
                )
                .await
                .map(|_| ())
            },
        );
        let (out_arn, in_arn, tracking_arns, ()) = (out_arn?, in_arn?, tracking_arns?, removed?);

        // Round 3: the alarms that trigger the step policies.
        let (out_alarm, in_alarm) = futures::join!(
            self.put_alarm(Direction::Out, p, &out_arn),
            self.put_alarm(Direction::In, p, &in_arn)
        );
        out_alarm?;
        in_alarm?;

        Ok(Completion::created(&resource_id)
            .data("ResourceId", &resource_id)
            .data("ScaleOutPolicyArn", out_arn)
            .data("ScaleInPolicyArn", in_arn)
            .data("ScaleOutAlarmName", Direction::Out.alarm_name(p))
            .data("ScaleInAlarmName", Direction::In.alarm_name(p))
            .data("TargetTrackingPolicyArns", tracking_arns.join(",")))
    }

    async fn remove(&self, resource_id: &str, p: &ScalingProperties) -> Result<(), ScalingError> {
        // Round 1: alarms (deleting unknown names succeeds) and the policies on the target.
        let alarms = async {
            self.c
                .cloudwatch
                .delete_alarms()
                .alarm_names(Direction::Out.alarm_name(p))
                .alarm_names(Direction::In.alarm_name(p))
                .send()
                .await
                .map_err(ScalingError::aws("DeleteAlarms"))
        };
        let policies = async {
            self.c
                .scaling
                .describe_scaling_policies()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(resource_id)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .send()
                .await
                .map_err(ScalingError::aws("DescribeScalingPolicies"))
        };
        let (alarms, policies) = futures::join!(alarms, policies);
        let (_, policies) = (alarms?, policies?);
        let names: BTreeSet<String> = policies
            .scaling_policies()
            .iter()
            .map(|s| s.policy_name().to_owned())
            .collect();
        // Round 2: every policy on the target, explicitly (deregistering does not remove them
        // everywhere: moto keeps them).
        all_settled(
            names
                .iter()
                .map(|name| self.delete_policy(resource_id, name)),
        )
        .await?;
        // Round 3: the scalable target.
        match self
            .c
            .scaling
            .deregister_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(resource_id)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(ScalingError::aws("DeregisterScalableTarget")(e)),
        }
        // Round 4: autoscaling no longer owns the count; the template's is the count again.
        self.restore_template_count(p).await
    }

    /// Sets the service back to the DesiredCount its template gave it (the tag
    /// Custom::FargateService keeps), when it has one and runs another count.
    async fn restore_template_count(&self, p: &ScalingProperties) -> Result<(), ScalingError> {
        let Some(service) = self.active_service(p).await? else {
            return Ok(());
        };
        let template = service
            .tags()
            .iter()
            .find(|t| t.key() == Some(TEMPLATE_DESIRED_COUNT))
            .and_then(|t| t.value())
            .and_then(|v| v.parse::<i32>().ok());
        let Some(count) = template.filter(|count| *count != service.desired_count()) else {
            return Ok(());
        };
        info!(
            from = service.desired_count(),
            to = count,
            "autoscaling removed: returning the service to its template's DesiredCount"
        );
        self.set_desired_count(p, count).await
    }
}

impl Resource for ServiceScaling {
    type Properties = ScalingProperties;
    type Error = ScalingError;

    fn is_not_found(&self, error: &ScalingError) -> bool {
        error.code() == Some("ObjectNotFoundException")
    }

    async fn create(&self, _ctx: &Context, p: &ScalingProperties) -> Result<Outcome, ScalingError> {
        Ok(self.apply(p, None).await?.into())
    }

    async fn update(
        &self,
        _ctx: &Context,
        physical_id: &str,
        old: &ScalingProperties,
        new: &ScalingProperties,
    ) -> Result<Outcome, ScalingError> {
        if old.needs_replacement(new) {
            info!(old = physical_id, "Cluster or ServiceName changed: scaling the new service; the old one is cleaned up by its Delete");
            let mut done = self.apply(new, None).await?;
            done.physical_id = custom_resource::PhysicalId::Replaced(new.resource_id());
            return Ok(done.into());
        }
        let mut done = self.apply(new, Some(old)).await?;
        done.physical_id = custom_resource::PhysicalId::Unchanged;
        Ok(done.into())
    }

    async fn delete(
        &self,
        _ctx: &Context,
        physical_id: &str,
        p: &ScalingProperties,
    ) -> Result<Outcome, ScalingError> {
        self.remove(physical_id, p).await?;
        Ok(Completion::unchanged().into())
    }

    async fn resume(
        &self,
        _ctx: &Context,
        _request: &Request<ScalingProperties>,
        _progress: &Value,
    ) -> Result<Outcome, ScalingError> {
        // Nothing here returns Pending; answer clearly rather than loop if that ever changes.
        Err(ScalingError::Missing {
            operation: "resume",
            field: "pending step (this resource never waits)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    fn props() -> ScalingProperties {
        parse(&json!({"Cluster": "app", "ServiceName": "web", "MinCapacity": 1, "MaxCapacity": 4, "ScaleOutAdjustment": 2, "ScaleInAdjustment": "3"})).unwrap()
    }

    #[test]
    fn scale_out_steps_start_at_the_threshold_and_scale_in_steps_end_at_it() {
        let out = step(Direction::Out, &props()).unwrap();
        assert_eq!(out.metric_interval_lower_bound(), Some(0.0));
        assert_eq!(out.metric_interval_upper_bound(), None);
        assert_eq!(out.scaling_adjustment(), 2);
        let inward = step(Direction::In, &props()).unwrap();
        assert_eq!(inward.metric_interval_upper_bound(), Some(0.0));
        assert_eq!(inward.metric_interval_lower_bound(), None);
        assert_eq!(inward.scaling_adjustment(), -3);
    }

    #[test]
    fn names_are_derived_from_cluster_and_service() {
        let p = props();
        assert_eq!(Direction::Out.alarm_name(&p), "app-web-cpu-high");
        assert_eq!(Direction::In.policy_name(&p), "app-web-cpu-scale-in");
        assert_eq!(
            tracking_policy_name(&p, Metric::AlbRequests),
            "app-web-target-alb-requests"
        );
    }

    #[test]
    fn the_alb_resource_label_joins_the_load_balancer_and_target_group_suffixes() {
        assert_eq!(
            resource_label(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web-alb/50dc6c495c0c9188",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/943f017f100becff"
            )
            .as_deref(),
            Some("app/web-alb/50dc6c495c0c9188/targetgroup/web/943f017f100becff")
        );
        assert_eq!(resource_label("nonsense", "also"), None);
    }
}

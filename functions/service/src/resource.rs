//! Create, update, delete and resume for `Custom::FargateService`.

use crate::clients::Clients;
use crate::count::{self, CountChange};
use crate::error::ServiceError;
use crate::failfast;
use crate::preflight::{self, Checked};
use crate::properties::{ServiceProperties, StrategyItem};
use crate::steady::{assess, recent_events, Steadiness};
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::operation::create_service::builders::CreateServiceFluentBuilder;
use aws_sdk_ecs::operation::update_service::builders::UpdateServiceFluentBuilder;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentController, DeploymentControllerType, DesiredStatus,
    LaunchType, LoadBalancer, NetworkConfiguration, PropagateTags, Service, ServiceField, Tag,
    Task,
};
use custom_resource::ecs::{self, tag_of};
use custom_resource::fallback::{self, State as FallbackState};
use custom_resource::tags::{SPOT_FALLBACK, TEMPLATE_DESIRED_COUNT, TEMPLATE_STRATEGY};
use custom_resource::{Completion, Context, Outcome, PhysicalId, Request, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tracing::info;

use custom_resource::tags::{
    LOGICAL_ID as TAG_LOGICAL, REQUEST_ID as TAG_REQUEST, STACK_ID as TAG_STACK,
};
/// Set while the service runs no task because its image is not pushed yet ("repo:tag").
const TAG_AWAITING_IMAGE: &str = "custom-resource:awaiting-image";

/// What a deploy does about task-definition images that are not in ECR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePlan {
    /// Every image can be pulled.
    Ready,
    /// A new service (or one still waiting for its first image): run no task yet and say what
    /// to push. Tasks could only fail with CannotPullContainerError.
    Await(String),
    /// A service that already runs would be broken by this change: fail before touching it.
    Refuse(String),
}

/// Decides from the missing images, whether this is a Create and whether the service is
/// still waiting for its first image.
pub fn image_plan(missing: &[String], creating: bool, awaiting: bool) -> ImagePlan {
    if missing.is_empty() {
        return ImagePlan::Ready;
    }
    let listed = missing.join(", ");
    if creating || awaiting {
        ImagePlan::Await(listed)
    } else {
        ImagePlan::Refuse(format!(
            "image {listed} is not in ECR, so no task could start (CannotPullContainerError): push it (docker push <RepositoryUri>:<tag>) and deploy again, or deploy a tag that exists. The running service was left untouched"
        ))
    }
}

pub struct FargateService {
    clients: Clients,
}

/// Saved between checks of a wait.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Progress {
    service_arn: String,
    cluster: String,
    /// Steady-state deadline (ms since the epoch); 0 while deleting.
    wait_until_ms: u64,
    strategy: String,
    cluster_arn: String,
    /// `FailFast`: answer FAILED at the first fatal sign (failfast.rs), or only once ECS has
    /// decided. A wait saved before the property existed fails fast.
    #[serde(default = "fail_fast_default")]
    fail_fast: bool,
}

fn fail_fast_default() -> bool {
    true
}

fn now_ms() -> u64 {
    custom_resource::epoch_ms(SystemTime::now())
}

fn strategy_items(items: &[StrategyItem]) -> Vec<CapacityProviderStrategyItem> {
    items
        .iter()
        .filter_map(|i| {
            CapacityProviderStrategyItem::builder()
                .capacity_provider(&i.capacity_provider)
                .weight(i.weight)
                .base(i.base)
                .build()
                .ok()
        })
        .collect()
}

/// The template's strategy in the shared form (`custom_resource::fallback`): the properties', or
/// the cluster's default when they give none.
fn template_strategy(props: &ServiceProperties, checked: &Checked) -> Vec<fallback::Item> {
    if props.capacity_provider_strategy.is_empty() {
        return fallback::parse_strategy(&checked.default_strategy).unwrap_or_default();
    }
    props
        .capacity_provider_strategy
        .iter()
        .map(|i| fallback::Item::new(&i.capacity_provider, i64::from(i.weight), i64::from(i.base)))
        .collect()
}

/// The strategy an Update sends: the template's, with a Spot fallback in progress applied on top
/// (it stays until `spot-fallback` sees Spot recover).
fn applied_strategy(new: &[StrategyItem], state: FallbackState) -> Vec<StrategyItem> {
    let template: Vec<fallback::Item> = new
        .iter()
        .map(|i| fallback::Item::new(&i.capacity_provider, i64::from(i.weight), i64::from(i.base)))
        .collect();
    state
        .strategy(&template)
        .into_iter()
        .map(|i| StrategyItem {
            capacity_provider: i.provider,
            // A fallback's base is at most the desired count, an i32 in ECS.
            weight: i32::try_from(i.weight).unwrap_or(i32::MAX),
            base: i32::try_from(i.base).unwrap_or(i32::MAX),
        })
        .collect()
}

fn network(props: &ServiceProperties) -> Option<NetworkConfiguration> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(props.subnets.clone()))
        // Always sent, even empty: moto (and older tooling) expect the key.
        .set_security_groups(Some(props.security_groups.clone()))
        .assign_public_ip(AssignPublicIp::from(props.assign_public_ip.as_str()))
        .build()
        .ok()?;
    Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    )
}

fn load_balancers(props: &ServiceProperties) -> Vec<LoadBalancer> {
    props
        .load_balancers
        .iter()
        .map(|lb| {
            LoadBalancer::builder()
                .target_group_arn(&lb.target_group_arn)
                .container_name(&lb.container_name)
                .container_port(lb.container_port)
                .build()
        })
        .collect()
}

fn deployment_configuration(props: &ServiceProperties) -> Option<DeploymentConfiguration> {
    // Always Some; Option only to fit the builder's set_ method.
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(props.deployment_circuit_breaker.enable)
        .rollback(props.deployment_circuit_breaker.rollback)
        .build();
    Some(
        DeploymentConfiguration::builder()
            .deployment_circuit_breaker(breaker)
            .maximum_percent(200)
            .minimum_healthy_percent(100)
            .build(),
    )
}

fn user_tags(props: &ServiceProperties) -> BTreeMap<String, String> {
    props
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// The CreateService request: ownership tags, the template's count (or none before the image),
/// its strategy (or launch type FARGATE when neither it nor the cluster has one), a client token.
fn create_request(
    request: CreateServiceFluentBuilder,
    ctx: &Context,
    props: &ServiceProperties,
    checked: &Checked,
) -> CreateServiceFluentBuilder {
    let mut tags = vec![
        ecs::tag(TAG_REQUEST, &ctx.request_id),
        ecs::tag(TAG_STACK, &ctx.stack_id),
        ecs::tag(TAG_LOGICAL, &ctx.logical_resource_id),
        ecs::tag(TEMPLATE_DESIRED_COUNT, &props.desired_count.to_string()),
        ecs::tag(
            TEMPLATE_STRATEGY,
            &fallback::strategy_tag(&template_strategy(props, checked)),
        ),
    ];
    let awaiting = image_plan(&checked.missing_images, true, false);
    if let ImagePlan::Await(images) = &awaiting {
        info!(images = %images, "image not pushed yet: creating the service with no task");
        tags.push(ecs::tag(TAG_AWAITING_IMAGE, images));
    }
    let desired = count::initial(props, matches!(awaiting, ImagePlan::Await(_)));
    tags.extend(props.tags.iter().map(|t| ecs::tag(&t.key, &t.value)));
    let mut request = request
        .cluster(&props.cluster)
        .service_name(&props.service_name)
        .task_definition(&props.task_definition)
        .desired_count(desired)
        .platform_version(&props.platform_version)
        .set_network_configuration(network(props))
        .set_deployment_configuration(deployment_configuration(props))
        .set_deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::Ecs)
                .build()
                .ok(),
        )
        .enable_execute_command(props.enable_execute_command)
        .propagate_tags(PropagateTags::Service)
        .enable_ecs_managed_tags(true)
        .set_tags(Some(tags))
        // A duplicate delivery of this request cannot create a second service.
        .client_token(ctx.idempotency_token(36));
    if !props.capacity_provider_strategy.is_empty() {
        request = request.set_capacity_provider_strategy(Some(strategy_items(
            &props.capacity_provider_strategy,
        )));
    } else if checked.default_strategy.is_empty() {
        request = request.launch_type(LaunchType::Fargate);
    }
    if !props.load_balancers.is_empty() {
        request = request
            .set_load_balancers(Some(load_balancers(props)))
            .set_health_check_grace_period_seconds(props.health_check_grace_period_seconds);
    }
    request
}

/// What an Update does about a Spot fallback the service is in (its `custom-resource:spot-fallback`
/// tag): keep it on top of the new strategy while `spot-fallback` manages the service, end it
/// (send the template's strategy, remove the tag) once the template turned the function off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackPlan {
    Keep(FallbackState),
    End,
}

impl FallbackPlan {
    fn of(tag: Option<&str>, managed: bool) -> Self {
        match (tag, managed) {
            (None, _) => FallbackPlan::Keep(FallbackState::Normal),
            (Some(_), false) => FallbackPlan::End,
            (Some(text), true) => FallbackPlan::Keep(FallbackState::parse(Some(text)).unwrap_or_else(|problem| {
                tracing::warn!(%problem, "unreadable spot-fallback tag: the template's strategy applies");
                FallbackState::Normal
            })),
        }
    }
}

/// The settings an Update changes in place on top of `request`, and their property names. A
/// strategy change forces a new deployment (a new mix only takes effect with one), and keeps a
/// Spot fallback in progress on top of the new mix, or ends it (`fallback`).
fn in_place_changes(
    mut request: UpdateServiceFluentBuilder,
    old: &ServiceProperties,
    new: &ServiceProperties,
    no_default_strategy: bool,
    fallback: FallbackPlan,
) -> Result<(UpdateServiceFluentBuilder, Vec<&'static str>), ServiceError> {
    let mut changed = Vec::new();
    let state = match fallback {
        FallbackPlan::Keep(state) => state,
        FallbackPlan::End => FallbackState::Normal,
    };
    if old.capacity_provider_strategy != new.capacity_provider_strategy
        || (fallback == FallbackPlan::End && !new.capacity_provider_strategy.is_empty())
    {
        if new.capacity_provider_strategy.is_empty() && no_default_strategy {
            return Err(ServiceError::property(
                "CapacityProviderStrategy",
                format!("cannot be removed: cluster {} has no default capacity provider strategy to fall back to; keep a strategy or give the cluster a default", new.cluster_name()),
            ));
        }
        // A new mix only takes effect with a new deployment.
        request = request
            .set_capacity_provider_strategy(Some(strategy_items(&applied_strategy(
                &new.capacity_provider_strategy,
                state,
            ))))
            .force_new_deployment(true);
        changed.push("CapacityProviderStrategy");
    }
    if (&old.subnets, &old.security_groups, old.assign_public_ip)
        != (&new.subnets, &new.security_groups, new.assign_public_ip)
    {
        request = request.set_network_configuration(network(new));
        changed.push("NetworkConfiguration");
    }
    if old.load_balancers != new.load_balancers {
        request = request.set_load_balancers(Some(load_balancers(new)));
        changed.push("LoadBalancers");
    }
    if old.health_check_grace_period_seconds != new.health_check_grace_period_seconds {
        request = request.set_health_check_grace_period_seconds(Some(
            new.health_check_grace_period_seconds.unwrap_or(0),
        ));
        changed.push("HealthCheckGracePeriodSeconds");
    }
    if old.deployment_circuit_breaker != new.deployment_circuit_breaker {
        request = request.set_deployment_configuration(deployment_configuration(new));
        changed.push("DeploymentCircuitBreaker");
    }
    if old.enable_execute_command != new.enable_execute_command {
        request = request.enable_execute_command(new.enable_execute_command);
        changed.push("EnableExecuteCommand");
    }
    if old.platform_version != new.platform_version {
        request = request.platform_version(&new.platform_version);
        changed.push("PlatformVersion");
    }
    Ok((request, changed))
}

impl FargateService {
    pub fn new(clients: Clients) -> Self {
        Self { clients }
    }

    /// The service by name or ARN, or None when it (or its cluster) does not exist.
    async fn describe(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<Service>, ServiceError> {
        match self
            .clients
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(ServiceField::Tags)
            .send()
            .await
        {
            Ok(answer) => Ok(answer.services().first().cloned()),
            Err(e) if e.code() == Some("ClusterNotFoundException") => Ok(None),
            Err(e) => Err(ServiceError::aws("DescribeServices")(e)),
        }
    }

    fn data(
        &self,
        service: &Service,
        strategy: &str,
        cluster_arn: &str,
        completion: Completion,
    ) -> Completion {
        completion
            .data(
                "AwaitingImage",
                tag_of(service, TAG_AWAITING_IMAGE).unwrap_or_default(),
            )
            .data("ServiceArn", service.service_arn().unwrap_or_default())
            .data("ServiceName", service.service_name().unwrap_or_default())
            .data("ClusterArn", service.cluster_arn().unwrap_or(cluster_arn))
            .data("CapacityProviderStrategy", strategy)
            .data("DesiredCount", service.desired_count().to_string())
    }

    fn strategy_text(props: &ServiceProperties, checked: &Checked) -> String {
        if props.capacity_provider_strategy.is_empty() {
            checked.default_strategy.clone()
        } else {
            ServiceProperties::strategy_text(&props.capacity_provider_strategy)
        }
    }

    /// After a change: wait for steady state when asked, else finish now.
    fn settle(
        &self,
        props: &ServiceProperties,
        service: &Service,
        checked: &Checked,
        completion: Completion,
    ) -> Outcome {
        let strategy = Self::strategy_text(props, checked);
        // A service waiting for its image runs no task: there is nothing to wait for.
        if !props.wait_for_steady_state || tag_of(service, TAG_AWAITING_IMAGE).is_some() {
            return self
                .data(service, &strategy, &checked.cluster_arn, completion)
                .into();
        }
        let arn = service.service_arn().unwrap_or_default().to_owned();
        let replacement = matches!(completion.physical_id, PhysicalId::Replaced(_));
        let pending = Outcome::pending(
            format!(
                "service {} to reach steady state",
                service.service_name().unwrap_or_default()
            ),
            Progress {
                service_arn: arn.clone(),
                cluster: props.cluster.clone(),
                wait_until_ms: now_ms() + props.steady_state_timeout_seconds as u64 * 1000,
                strategy,
                cluster_arn: checked.cluster_arn.clone(),
                fail_fast: props.fail_fast,
            },
        );
        // How the operation completes is decided here, once: the library finishes a Create or a
        // replacement with this id after the wait, across hand-overs.
        if replacement {
            pending.replacing(arn)
        } else {
            pending.with_physical_id(arn)
        }
    }

    async fn create_service(
        &self,
        ctx: &Context,
        props: &ServiceProperties,
    ) -> Result<(Service, Checked), ServiceError> {
        // The checks and the existence read need no answer of each other: one round. The checks'
        // error comes first (it names the property to fix).
        let (checked, existing) = tokio::join!(
            preflight::run(&self.clients, props),
            self.describe(&props.cluster, &props.service_name)
        );
        let checked = checked?;
        if let Some(existing) = existing? {
            match existing.status() {
                Some("ACTIVE") if tag_of(&existing, TAG_REQUEST) == Some(ctx.request_id.as_str()) => {
                    info!(service = existing.service_arn().unwrap_or_default(), "redelivered request: adopting the service it already created");
                    return Ok((existing, checked));
                }
                Some("ACTIVE") => {
                    return Err(ServiceError::property(
                        "ServiceName",
                        format!("service {} already exists in cluster {} and was not created by this resource; choose another ServiceName", props.service_name, props.cluster_name()),
                    ))
                }
                Some("DRAINING") => {
                    return Err(ServiceError::property(
                        "ServiceName",
                        format!("service {} in cluster {} is still draining after a deletion; retry in a few minutes or choose another ServiceName", props.service_name, props.cluster_name()),
                    ))
                }
                _ => {}
            }
        }
        let request = create_request(self.clients.ecs.create_service(), ctx, props, &checked);
        let created = request
            .send()
            .await
            .map_err(ServiceError::aws("CreateService"))?;
        let service = created.service().cloned().ok_or(ServiceError::Missing {
            operation: "CreateService",
            field: "service",
        })?;
        info!(
            service = service.service_arn().unwrap_or_default(),
            "created"
        );
        Ok((service, checked))
    }

    /// Application Auto Scaling's min/max for the service, if it is registered.
    async fn scalable_range(
        &self,
        props: &ServiceProperties,
    ) -> Result<Option<(i32, i32)>, ServiceError> {
        let resource_id =
            custom_resource::ecs::scalable_target_id(&props.cluster, &props.service_name);
        let answer = self
            .clients
            .scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_ids(resource_id)
            .send()
            .await
            .map_err(ServiceError::aws("DescribeScalableTargets"))?;
        Ok(answer
            .scalable_targets()
            .first()
            .map(|t| (t.min_capacity(), t.max_capacity())))
    }

    /// The `desiredCount` an Update sends, if any: a clamped change goes into the scalable
    /// target's range when one is registered.
    async fn desired_for(
        &self,
        props: &ServiceProperties,
        change: CountChange,
    ) -> Result<Option<i32>, ServiceError> {
        let desired = match change {
            CountChange::Keep => return Ok(None),
            CountChange::Set(desired) => desired,
            CountChange::Clamped(desired) => match self.scalable_range(props).await? {
                Some((min, max)) => {
                    let clamped = desired.clamp(min, max.max(min));
                    if clamped != desired {
                        info!(
                            requested = desired,
                            applied = clamped,
                            min,
                            max,
                            "DesiredCount clamped into the scalable target's range"
                        );
                    }
                    clamped
                }
                None => desired,
            },
        };
        Ok(Some(desired))
    }

    /// The service an Update changes, which must still exist.
    async fn active(&self, cluster: &str, physical_id: &str) -> Result<Service, ServiceError> {
        self.describe(cluster, physical_id)
            .await?
            .filter(|s| s.status() == Some("ACTIVE"))
            .ok_or_else(|| {
                ServiceError::from(custom_resource::AwsError::new(
                    "DescribeServices",
                    "ServiceNotFoundException",
                    format!("service {physical_id} no longer exists (deleted outside CloudFormation); remove it from the template and add it back to recreate it"),
                ))
            })
    }

    async fn update_in_place(
        &self,
        physical_id: &str,
        old: &ServiceProperties,
        new: &ServiceProperties,
    ) -> Result<Outcome, ServiceError> {
        // As in create_service: the checks beside the read of the service, their error first.
        let (checked, current) = tokio::join!(
            preflight::run(&self.clients, new),
            self.active(&new.cluster, physical_id)
        );
        let (checked, current) = (checked?, current?);
        let awaiting = tag_of(&current, TAG_AWAITING_IMAGE).is_some();
        let recorded = (
            tag_of(&current, TEMPLATE_DESIRED_COUNT).map(str::to_owned),
            tag_of(&current, TEMPLATE_STRATEGY).map(str::to_owned),
        );
        let fallback = FallbackPlan::of(tag_of(&current, SPOT_FALLBACK), new.spot_fallback);
        let plan = image_plan(&checked.missing_images, false, awaiting);
        if let ImagePlan::Refuse(reason) = &plan {
            return Err(ServiceError::property(
                "TaskDefinition",
                format!("{}: {reason}", new.task_definition),
            ));
        }
        let mut request = self
            .clients
            .ecs
            .update_service()
            .cluster(&new.cluster)
            .service(physical_id);
        let mut changed: Vec<&str> = Vec::new();
        if old.task_definition != new.task_definition {
            request = request.task_definition(&new.task_definition);
            changed.push("TaskDefinition");
        }
        // The first image arrived: start the tasks the template asks for.
        let first_image = awaiting && plan == ImagePlan::Ready;
        let change = if matches!(plan, ImagePlan::Await(_)) {
            info!("image still not pushed: the service keeps running no task");
            CountChange::Keep
        } else {
            count::on_update(old, new, first_image)
        };
        if let Some(desired) = self.desired_for(new, change).await? {
            request = request.desired_count(desired);
            changed.push("DesiredCount");
        }
        let (request, more) = in_place_changes(
            request,
            old,
            new,
            checked.default_strategy.is_empty(),
            fallback,
        )?;
        changed.extend(more);
        let service = if changed.is_empty() {
            info!("no service setting changed: no UpdateService call");
            current
        } else {
            info!(changed = %changed.join(","), "UpdateService");
            let updated = request
                .send()
                .await
                .map_err(ServiceError::aws("UpdateService"))?;
            updated.service().cloned().ok_or(ServiceError::Missing {
                operation: "UpdateService",
                field: "service",
            })?
        };
        self.retag(physical_id, old, new).await?;
        self.record_template(physical_id, recorded, new, &checked, fallback)
            .await?;
        let service = self.mark_awaiting(physical_id, service, &plan).await?;
        Ok(self.settle(new, &service, &checked, Completion::unchanged()))
    }

    /// Keeps the awaiting-image tag in step with the plan; returns the service as tagged now.
    async fn mark_awaiting(
        &self,
        arn: &str,
        mut service: Service,
        plan: &ImagePlan,
    ) -> Result<Service, ServiceError> {
        let now = tag_of(&service, TAG_AWAITING_IMAGE).map(str::to_owned);
        let wanted = match plan {
            ImagePlan::Await(images) => Some(images.clone()),
            _ => None,
        };
        if now == wanted {
            return Ok(service);
        }
        let mut tags: Vec<Tag> = service
            .tags()
            .iter()
            .filter(|t| t.key() != Some(TAG_AWAITING_IMAGE))
            .cloned()
            .collect();
        match &wanted {
            Some(images) => {
                self.clients
                    .ecs
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(ecs::tag(TAG_AWAITING_IMAGE, images))
                    .send()
                    .await
                    .map_err(ServiceError::aws("TagResource"))?;
                tags.push(ecs::tag(TAG_AWAITING_IMAGE, images));
            }
            None => {
                self.clients
                    .ecs
                    .untag_resource()
                    .resource_arn(arn)
                    .tag_keys(TAG_AWAITING_IMAGE)
                    .send()
                    .await
                    .map_err(ServiceError::aws("UntagResource"))?;
            }
        }
        service.tags = Some(tags);
        Ok(service)
    }

    /// Keeps the template's DesiredCount (for the scaling resource's Delete) and strategy (for
    /// `spot-fallback`'s return) on the service, in one TagResource when either changed; removes
    /// the state of a fallback the template ended.
    async fn record_template(
        &self,
        arn: &str,
        (count, strategy): (Option<String>, Option<String>),
        props: &ServiceProperties,
        checked: &Checked,
        fallback: FallbackPlan,
    ) -> Result<(), ServiceError> {
        if fallback == FallbackPlan::End {
            info!("spot fallback turned off: the template's strategy again, its state tag removed");
            self.clients
                .ecs
                .untag_resource()
                .resource_arn(arn)
                .tag_keys(SPOT_FALLBACK)
                .send()
                .await
                .map_err(ServiceError::aws("UntagResource"))?;
        }
        let wanted = [
            (
                TEMPLATE_DESIRED_COUNT,
                props.desired_count.to_string(),
                count,
            ),
            (
                TEMPLATE_STRATEGY,
                fallback::strategy_tag(&template_strategy(props, checked)),
                strategy,
            ),
        ];
        let changed: Vec<Tag> = wanted
            .iter()
            .filter(|(_, value, recorded)| recorded.as_deref() != Some(value.as_str()))
            .map(|(key, value, _)| ecs::tag(key, value))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        self.clients
            .ecs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(changed))
            .send()
            .await
            .map_err(ServiceError::aws("TagResource"))?;
        Ok(())
    }

    async fn retag(
        &self,
        arn: &str,
        old: &ServiceProperties,
        new: &ServiceProperties,
    ) -> Result<(), ServiceError> {
        let (before, after) = (user_tags(old), user_tags(new));
        let removed: Vec<String> = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
        let set: Vec<Tag> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, v)| ecs::tag(k, v))
            .collect();
        if !set.is_empty() {
            self.clients
                .ecs
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(ServiceError::aws("TagResource"))?;
        }
        if !removed.is_empty() {
            self.clients
                .ecs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(ServiceError::aws("UntagResource"))?;
        }
        Ok(())
    }

    async fn remove(&self, cluster: &str, physical_id: &str) -> Result<Outcome, ServiceError> {
        let Some(service) = self.describe(cluster, physical_id).await? else {
            return Ok(Completion::unchanged().into());
        };
        match service.status() {
            Some("INACTIVE") | None => return Ok(Completion::unchanged().into()),
            Some("ACTIVE") => {
                if service.desired_count() > 0 {
                    // Scale to zero first so tasks stop before the service goes away.
                    match self
                        .clients
                        .ecs
                        .update_service()
                        .cluster(cluster)
                        .service(physical_id)
                        .desired_count(0)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.code() == Some("ServiceNotFoundException") => {
                            return Ok(Completion::unchanged().into())
                        }
                        Err(e) => return Err(ServiceError::aws("UpdateService")(e)),
                    }
                }
                let deleted = match self
                    .clients
                    .ecs
                    .delete_service()
                    .cluster(cluster)
                    .service(physical_id)
                    .force(true)
                    .send()
                    .await
                {
                    Ok(answer) => answer,
                    Err(e)
                        if matches!(
                            e.code(),
                            Some("ServiceNotFoundException" | "ClusterNotFoundException")
                        ) =>
                    {
                        return Ok(Completion::unchanged().into())
                    }
                    Err(e) => return Err(ServiceError::aws("DeleteService")(e)),
                };
                if deleted.service().and_then(|s| s.status()) == Some("INACTIVE") {
                    return Ok(Completion::unchanged().into());
                }
            }
            _ => {}
        }
        Ok(Outcome::pending(
            format!(
                "service {} to drain and become INACTIVE",
                service.service_name().unwrap_or(physical_id)
            ),
            Progress {
                service_arn: physical_id.to_owned(),
                cluster: cluster.to_owned(),
                wait_until_ms: 0,
                strategy: String::new(),
                cluster_arn: String::new(),
                fail_fast: true,
            },
        ))
    }

    /// The service's stopped tasks as ECS lists them (the newest hundred; ECS keeps a stopped
    /// task visible for at least an hour), for `failfast` to read why they stopped.
    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &Service,
    ) -> Result<Vec<Task>, ServiceError> {
        let listed = self
            .clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service.service_name().unwrap_or_default())
            .desired_status(DesiredStatus::Stopped)
            .max_results(100)
            .send()
            .await
            .map_err(ServiceError::aws("ListTasks"))?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(ServiceError::aws("DescribeTasks"))?;
        Ok(described.tasks().to_vec())
    }

    async fn check_steady(
        &self,
        saved: Progress,
        completion: Completion,
    ) -> Result<Outcome, ServiceError> {
        let Some(service) = self.describe(&saved.cluster, &saved.service_arn).await? else {
            return Err(ServiceError::Deployment(format!(
                "service {} disappeared while waiting for steady state",
                saved.service_arn
            )));
        };
        match assess(&service) {
            Steadiness::Steady => Ok(self
                .data(&service, &saved.strategy, &saved.cluster_arn, completion)
                .into()),
            Steadiness::Failed(message) => Err(ServiceError::Deployment(format!(
                "{message}; {}",
                recent_events(&service, 5)
            ))),
            Steadiness::Waiting(message) => {
                if saved.fail_fast {
                    let stopped = self.stopped_tasks(&saved.cluster, &service).await?;
                    if let Some(fatal) = failfast::fatal_cause(&service, &stopped) {
                        return Err(ServiceError::Deployment(
                            fatal.message(service.service_name().unwrap_or_default()),
                        ));
                    }
                }
                if now_ms() >= saved.wait_until_ms {
                    return Err(ServiceError::Timeout(format!(
                        "{} did not reach steady state within SteadyStateTimeoutSeconds: still waiting for {message}; {}",
                        service.service_name().unwrap_or_default(),
                        recent_events(&service, 5)
                    )));
                }
                let events = recent_events(&service, 3);
                Ok(Outcome::pending(format!("{message}; {events}"), saved))
            }
        }
    }
}

impl Resource for FargateService {
    type Properties = ServiceProperties;
    type Error = ServiceError;

    /// SteadyStateTimeoutSeconds is at most 3500 s; answer before the 3600 s ServiceTimeout.
    fn timeout(&self) -> Duration {
        Duration::from_secs(3560)
    }

    fn is_not_found(&self, error: &ServiceError) -> bool {
        matches!(
            error.code(),
            Some("ServiceNotFoundException" | "ClusterNotFoundException")
        )
    }

    async fn create(
        &self,
        ctx: &Context,
        props: &ServiceProperties,
    ) -> Result<Outcome, ServiceError> {
        let (service, checked) = self.create_service(ctx, props).await?;
        let arn = service.service_arn().unwrap_or_default().to_owned();
        Ok(self.settle(props, &service, &checked, Completion::created(arn)))
    }

    async fn update(
        &self,
        ctx: &Context,
        physical_id: &str,
        old: &ServiceProperties,
        new: &ServiceProperties,
    ) -> Result<Outcome, ServiceError> {
        if old.needs_replacement(new) {
            info!(
                old = physical_id,
                "Cluster or ServiceName changed: creating a replacement service"
            );
            let (service, checked) = self.create_service(ctx, new).await?;
            let arn = service.service_arn().unwrap_or_default().to_owned();
            return Ok(self.settle(new, &service, &checked, Completion::replaced(arn)));
        }
        self.update_in_place(physical_id, old, new).await
    }

    async fn delete(
        &self,
        _ctx: &Context,
        physical_id: &str,
        props: &ServiceProperties,
    ) -> Result<Outcome, ServiceError> {
        self.remove(&props.cluster, physical_id).await
    }

    async fn resume(
        &self,
        _ctx: &Context,
        request: &Request<ServiceProperties>,
        progress: &Value,
    ) -> Result<Outcome, ServiceError> {
        let saved: Progress =
            serde_json::from_value(progress.clone()).map_err(|_| ServiceError::Missing {
                operation: "resume",
                field: "saved progress",
            })?;
        match request {
            Request::Delete {
                physical_id,
                properties,
            } => self.remove(&properties.cluster, physical_id).await,
            // How a Create or a replacement completes (its new service's id) was declared when it
            // went pending; the library applies it.
            Request::Create { .. } | Request::Update { .. } => {
                self.check_steady(saved, Completion::unchanged()).await
            }
        }
    }
}

#[cfg(test)]
mod update_requests;

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    /// The strategy an UpdateService request carries, as (provider, weight, base).
    fn strategy_sent(request: &UpdateServiceFluentBuilder) -> Vec<(String, i32, i32)> {
        request
            .as_input()
            .get_capacity_provider_strategy()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|i| (i.capacity_provider().to_owned(), i.weight(), i.base()))
            .collect()
    }

    fn update_request() -> UpdateServiceFluentBuilder {
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .http_client(custom_resource::http_client())
            .build();
        aws_sdk_ecs::Client::from_conf(config).update_service()
    }

    fn service_props(extra: Value) -> ServiceProperties {
        let mut raw = json!({"Cluster": "app", "ServiceName": "web", "TaskDefinition": "web:1",
                             "Subnets": "subnet-1,subnet-2",
                             "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": "1"}]});
        for (key, value) in extra.as_object().unwrap() {
            raw[key] = value.clone();
        }
        parse(&raw).unwrap()
    }

    #[test]
    fn a_strategy_change_sends_the_new_mix_with_a_forced_new_deployment_and_nothing_else() {
        let old = service_props(json!({}));
        let new = service_props(json!({"CapacityProviderStrategy": [
            {"CapacityProvider": "FARGATE", "Weight": "1", "Base": "1"},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}]}));
        let (request, changed) = in_place_changes(
            update_request(),
            &old,
            &new,
            false,
            FallbackPlan::Keep(FallbackState::Normal),
        )
        .unwrap();
        assert_eq!(changed, vec!["CapacityProviderStrategy"]);
        let sent = strategy_sent(&request);
        let input = request.as_input();
        assert_eq!(input.get_force_new_deployment(), &Some(true));
        assert_eq!(
            sent,
            vec![("FARGATE".into(), 1, 1), ("FARGATE_SPOT".into(), 3, 0)]
        );
        assert!(input.get_network_configuration().is_none());
        assert!(input.get_desired_count().is_none());
    }

    #[test]
    fn a_strategy_change_during_a_spot_fallback_sends_the_new_mix_with_the_fallback_on_top() {
        let old = service_props(json!({}));
        let new = service_props(json!({"CapacityProviderStrategy": [
            {"CapacityProvider": "FARGATE", "Weight": "1"},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}]}));
        let engaged = FallbackState::Fallback {
            base: 4,
            attempts: 0,
            retry_at: 0,
        };
        let (request, changed) = in_place_changes(
            update_request(),
            &old,
            &new,
            false,
            FallbackPlan::Keep(engaged),
        )
        .unwrap();
        assert_eq!(changed, vec!["CapacityProviderStrategy"]);
        assert_eq!(
            strategy_sent(&request),
            vec![("FARGATE".into(), 1, 4), ("FARGATE_SPOT".into(), 3, 0)]
        );
        // Unchanged properties leave the fallback's strategy alone.
        let (request, changed) = in_place_changes(
            update_request(),
            &new,
            &new,
            false,
            FallbackPlan::Keep(engaged),
        )
        .unwrap();
        assert!(changed.is_empty());
        assert!(request
            .as_input()
            .get_capacity_provider_strategy()
            .is_none());
    }

    #[test]
    fn an_update_after_spot_fallback_is_turned_off_sends_the_template_strategy_again() {
        let props = service_props(json!({"CapacityProviderStrategy": [
            {"CapacityProvider": "FARGATE", "Weight": "1"},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": "3"}]}));
        let tag = Some("fallback base=4 attempts=0 retry-at=0");
        assert_eq!(FallbackPlan::of(tag, false), FallbackPlan::End);
        assert_eq!(
            FallbackPlan::of(None, false),
            FallbackPlan::Keep(FallbackState::Normal)
        );
        let (request, changed) =
            in_place_changes(update_request(), &props, &props, false, FallbackPlan::End).unwrap();
        assert_eq!(changed, vec!["CapacityProviderStrategy"]);
        assert_eq!(
            strategy_sent(&request),
            vec![("FARGATE".into(), 1, 0), ("FARGATE_SPOT".into(), 3, 0)]
        );
    }

    #[test]
    fn unchanged_properties_send_nothing() {
        let props = service_props(json!({}));
        let (request, changed) = in_place_changes(
            update_request(),
            &props,
            &props,
            false,
            FallbackPlan::Keep(FallbackState::Normal),
        )
        .unwrap();
        assert!(changed.is_empty());
        assert!(request.as_input().get_force_new_deployment().is_none());
    }

    #[test]
    fn network_and_platform_changes_send_only_those() {
        let old = service_props(json!({}));
        let new = service_props(json!({"Subnets": "subnet-3", "PlatformVersion": "1.4.0"}));
        let (request, changed) = in_place_changes(
            update_request(),
            &old,
            &new,
            false,
            FallbackPlan::Keep(FallbackState::Normal),
        )
        .unwrap();
        assert_eq!(changed, vec!["NetworkConfiguration", "PlatformVersion"]);
        let input = request.as_input();
        let subnets = input
            .get_network_configuration()
            .as_ref()
            .and_then(|n| n.awsvpc_configuration())
            .map(|a| a.subnets().to_vec());
        assert_eq!(subnets, Some(vec!["subnet-3".to_owned()]));
        assert_eq!(input.get_platform_version().as_deref(), Some("1.4.0"));
        assert!(input.get_capacity_provider_strategy().is_none());
    }

    #[test]
    fn removing_the_strategy_without_a_cluster_default_is_refused_naming_it() {
        let old = service_props(json!({}));
        let new = service_props(json!({"CapacityProviderStrategy": []}));
        let Err(error) = in_place_changes(
            update_request(),
            &old,
            &new,
            true,
            FallbackPlan::Keep(FallbackState::Normal),
        ) else {
            panic!("accepted");
        };
        assert!(
            error
                .to_string()
                .contains("invalid property CapacityProviderStrategy"),
            "{error}"
        );
    }

    #[test]
    fn a_new_service_without_its_image_waits_for_it_with_no_task() {
        let missing = vec!["shop-dev:v1".to_owned()];
        assert_eq!(
            image_plan(&missing, true, false),
            ImagePlan::Await("shop-dev:v1".into())
        );
        assert_eq!(
            image_plan(&missing, false, true),
            ImagePlan::Await("shop-dev:v1".into())
        );
    }

    #[test]
    fn a_running_service_is_not_touched_when_the_new_image_is_missing() {
        let plan = image_plan(&["shop-dev:v2".to_owned()], false, false);
        let ImagePlan::Refuse(reason) = plan else {
            panic!("{plan:?}")
        };
        assert!(
            reason.contains("shop-dev:v2") && reason.contains("left untouched"),
            "{reason}"
        );
    }

    #[test]
    fn pushed_images_are_ready_whatever_the_service_did_before() {
        assert_eq!(image_plan(&[], true, false), ImagePlan::Ready);
        assert_eq!(image_plan(&[], false, true), ImagePlan::Ready);
    }
}

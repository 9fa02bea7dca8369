//! Checks that fail fast, name the culprit and create nothing (except the ECS service-linked
//! role, which ECS itself would create and which a service cannot run without).

use crate::clients::Clients;
use crate::error::ServiceError;
use crate::properties::ServiceProperties;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Compatibility, NetworkMode};
use aws_sdk_iam::types::PolicyEvaluationDecisionType;
use tracing::{info, warn};

pub const ECS_SERVICE_LINKED_ROLE: &str = "AWSServiceRoleForECS";
/// Attempts for checks that are skipped when they cannot run (the policy simulation).
const OPTIONAL_CHECK_ATTEMPTS: u32 = 2;

/// What the checks learned, used by create/update.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub cluster_arn: String,
    /// The cluster's default strategy as "FARGATE:1:0,…" (empty when it has none).
    pub default_strategy: String,
    /// ECR images of the task definition that are not in their repository ("repo:tag").
    pub missing_images: Vec<String>,
}

/// An image in an ECR registry: `<account>.dkr.ecr.<region>.<suffix>/<repository>(:<tag>|@<digest>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub registry: String,
    pub region: String,
    pub repository: String,
    /// A tag, or None when the image is pinned by digest.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl EcrImage {
    /// Parses an image reference; None for images outside ECR private registries (Docker Hub,
    /// public.ecr.aws, ...), which ECS pulls without us being able to check them here.
    pub fn parse(image: &str) -> Option<Self> {
        let (host, path) = image.split_once('/')?;
        let mut labels = host.split('.');
        let registry = labels.next()?;
        if labels.next()? != "dkr" || labels.next()? != "ecr" {
            return None;
        }
        let region = labels.next()?.to_owned();
        if registry.len() != 12 || !registry.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let (repository, tag, digest) = if let Some((repo, digest)) = path.split_once('@') {
            (repo, None, Some(digest.to_owned()))
        } else {
            // A ':' after the last '/' separates the tag; none means ECS pulls `latest`.
            match path.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned()), None),
                _ => (path, Some("latest".to_owned()), None),
            }
        };
        Some(Self {
            registry: registry.to_owned(),
            region,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// "repository:tag" or "repository@digest", as a person would push it.
    pub fn reference(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.repository),
            (None, Some(digest)) => format!("{}@{digest}", self.repository),
            (None, None) => self.repository.clone(),
        }
    }
}

/// An SSM parameter a container's secret reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef {
    pub container: String,
    pub secret: String,
    pub value_from: String,
}

/// `arn:<partition>:ssm:<region>:<account>:parameter/<name>` for a name, using the task
/// definition's ARN for partition, region and account. ARNs pass through.
pub fn parameter_arn(value_from: &str, task_definition_arn: &str) -> String {
    if value_from.starts_with("arn:") {
        return value_from.to_owned();
    }
    let parts: Vec<&str> = task_definition_arn.split(':').collect();
    let (partition, region, account) = match parts.as_slice() {
        ["arn", partition, _, region, account, ..] => (*partition, *region, *account),
        _ => ("aws", "", ""),
    };
    format!(
        "arn:{partition}:ssm:{region}:{account}:parameter/{}",
        value_from.trim_start_matches('/')
    )
}

/// SSM references only (Secrets Manager ARNs are left to ECS: no Secrets Manager client here).
pub fn is_ssm(value_from: &str) -> bool {
    !value_from.starts_with("arn:") || value_from.split(':').nth(2) == Some("ssm")
}

pub async fn run(c: &Clients, props: &ServiceProperties) -> Result<Checked, ServiceError> {
    // Round 1: cluster, task definition, target groups and the service-linked role, at once.
    let cluster = c.ecs.describe_clusters().clusters(&props.cluster).send();
    let task_definition = c
        .ecs
        .describe_task_definition()
        .task_definition(&props.task_definition)
        .send();
    let role = c.iam.get_role().role_name(ECS_SERVICE_LINKED_ROLE).send();
    let groups = futures::future::join_all(props.load_balancers.iter().map(|lb| {
        c.elb
            .describe_target_groups()
            .target_group_arns(&lb.target_group_arn)
            .send()
    }));
    let (cluster, task_definition, role, groups) =
        futures::join!(cluster, task_definition, role, groups);

    let cluster = cluster.map_err(ServiceError::aws("DescribeClusters"))?;
    let mut checked = check_cluster(&cluster, props)?;
    let task_definition = task_definition.map_err(|e| {
        ServiceError::property(
            "TaskDefinition",
            format!(
                "{} could not be read ({}: {}); register it first or fix the family:revision",
                props.task_definition,
                e.code().unwrap_or("error"),
                e.message().unwrap_or("not found")
            ),
        )
    })?;
    let definition = check_task_definition(&task_definition, props)?;
    check_target_groups(props, groups)?;

    // Round 2: images are in ECR, secrets exist and the execution role may read them; the
    // service-linked role.
    let task_definition_arn = definition.task_definition_arn().unwrap_or_default();
    let secrets = ssm_secrets(definition);
    let images: Vec<EcrImage> = definition
        .container_definitions()
        .iter()
        .filter_map(|cd| cd.image())
        .filter_map(EcrImage::parse)
        .collect();
    let role_missing = matches!(&role, Err(e) if e.code() == Some("NoSuchEntity"));
    if let Err(e) = &role {
        if !role_missing {
            warn!(error = %custom_resource::error::chain(e), "could not check the ECS service-linked role; continuing");
        }
    }
    let execution_role = definition.execution_role_arn();
    let kms_key = props
        .secrets_kms_key_arn
        .as_deref()
        .filter(|k| !k.is_empty());
    let (absent, missing, denied, created) = futures::join!(
        missing_images(c, &images),
        missing_parameters(c, &secrets),
        denied_secrets(c, execution_role, &secrets, task_definition_arn, kms_key),
        create_service_linked_role(c, role_missing),
    );
    created?;
    checked.missing_images = absent?;
    check_secrets(props, &secrets, &missing?, execution_role, denied)?;
    Ok(checked)
}

/// The cluster is ACTIVE and has every capacity provider the strategy names.
fn check_cluster(
    answer: &aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput,
    props: &ServiceProperties,
) -> Result<Checked, ServiceError> {
    let Some(found) = answer
        .clusters()
        .iter()
        .find(|cl| cl.status() == Some("ACTIVE"))
    else {
        return Err(ServiceError::property(
            "Cluster",
            format!("cluster {} does not exist or is not ACTIVE in this account and region; create it first or fix the name", props.cluster),
        ));
    };
    let providers = found.capacity_providers();
    for (index, item) in props.capacity_provider_strategy.iter().enumerate() {
        if !providers.contains(&item.capacity_provider) {
            return Err(ServiceError::property(
                format!("CapacityProviderStrategy[{index}].CapacityProvider"),
                format!(
                    "cluster {} has no capacity provider {} (it has: {}); add it with PutClusterCapacityProviders or use one it has",
                    props.cluster_name(),
                    item.capacity_provider,
                    if providers.is_empty() { "none".to_owned() } else { providers.join(", ") }
                ),
            ));
        }
    }
    let default_strategy = custom_resource::ecs::strategy_text(
        found.default_capacity_provider_strategy().iter().map(|i| {
            (
                i.capacity_provider(),
                i64::from(i.weight()),
                i64::from(i.base()),
            )
        }),
    );
    Ok(Checked {
        cluster_arn: found.cluster_arn().unwrap_or_default().to_owned(),
        default_strategy,
        missing_images: Vec::new(),
    })
}

/// The task definition is Fargate-compatible, `awsvpc`, and has the containers the load
/// balancers name.
fn check_task_definition<'a>(
    answer: &'a aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput,
    props: &ServiceProperties,
) -> Result<&'a aws_sdk_ecs::types::TaskDefinition, ServiceError> {
    let Some(definition) = answer.task_definition() else {
        return Err(ServiceError::Missing {
            operation: "DescribeTaskDefinition",
            field: "taskDefinition",
        });
    };
    let compat = definition.requires_compatibilities();
    if !compat.is_empty() && !compat.contains(&Compatibility::Fargate) {
        return Err(ServiceError::property(
            "TaskDefinition",
            format!("{} is not Fargate-compatible (RequiresCompatibilities has no FARGATE); register it with FARGATE", props.task_definition),
        ));
    }
    if let Some(mode) = definition
        .network_mode()
        .filter(|m| **m != NetworkMode::Awsvpc)
    {
        return Err(ServiceError::property(
            "TaskDefinition",
            format!(
                "{} uses network mode {}; Fargate needs awsvpc",
                props.task_definition,
                mode.as_str()
            ),
        ));
    }
    let containers: Vec<&str> = definition
        .container_definitions()
        .iter()
        .filter_map(|cd| cd.name())
        .collect();
    for (index, lb) in props.load_balancers.iter().enumerate() {
        if !containers.contains(&lb.container_name.as_str()) {
            return Err(ServiceError::property(
                format!("LoadBalancers[{index}].ContainerName"),
                format!(
                    "{} has no container {} (containers: {})",
                    props.task_definition,
                    lb.container_name,
                    containers.join(", ")
                ),
            ));
        }
    }
    Ok(definition)
}

/// The SSM parameters the task definition injects as secrets.
fn ssm_secrets(definition: &aws_sdk_ecs::types::TaskDefinition) -> Vec<SecretRef> {
    definition
        .container_definitions()
        .iter()
        .flat_map(|cd| {
            cd.secrets().iter().map(move |s| SecretRef {
                container: cd.name().unwrap_or_default().to_owned(),
                secret: s.name().to_owned(),
                value_from: s.value_from().to_owned(),
            })
        })
        .filter(|s| is_ssm(&s.value_from))
        .collect()
}

/// Target groups exist and route to IPs (what awsvpc tasks register as).
fn check_target_groups<E: ProvideErrorMetadata>(
    props: &ServiceProperties,
    groups: Vec<Result<aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput, E>>,
) -> Result<(), ServiceError> {
    for (index, (lb, answer)) in props.load_balancers.iter().zip(groups).enumerate() {
        let property = format!("LoadBalancers[{index}].TargetGroupArn");
        let answer = answer.map_err(|e| {
            ServiceError::property(
                property.clone(),
                format!(
                    "target group {} does not exist ({}); create it or fix the ARN",
                    lb.target_group_arn,
                    e.code().unwrap_or("error")
                ),
            )
        })?;
        let Some(group) = answer.target_groups().first() else {
            return Err(ServiceError::property(
                property,
                format!("target group {} does not exist", lb.target_group_arn),
            ));
        };
        let kind = group
            .target_type()
            .map(|t| t.as_str())
            .unwrap_or("instance");
        if kind != "ip" {
            return Err(ServiceError::property(
                property,
                format!("target group {} has target type {kind}; Fargate tasks register by IP: create the target group with TargetType ip", lb.target_group_arn),
            ));
        }
    }
    Ok(())
}

/// Creates the ECS service-linked role when the account lacks it (as ECS itself would).
async fn create_service_linked_role(c: &Clients, missing: bool) -> Result<(), ServiceError> {
    if !missing {
        return Ok(());
    }
    match c
        .iam
        .create_service_linked_role()
        .aws_service_name("ecs.amazonaws.com")
        .send()
        .await
    {
        Ok(_) => {
            info!("created the ECS service-linked role");
            Ok(())
        }
        // Made meanwhile by someone else: fine.
        Err(e) if matches!(e.code(), Some("InvalidInput" | "EntityAlreadyExists")) => Ok(()),
        Err(e) => Err(ServiceError::aws("CreateServiceLinkedRole")(e)),
    }
}

/// Every injected SSM parameter exists and the execution role may read them all.
fn check_secrets(
    props: &ServiceProperties,
    secrets: &[SecretRef],
    missing: &[SecretRef],
    execution_role: Option<&str>,
    denied: Result<Vec<String>, ServiceError>,
) -> Result<(), ServiceError> {
    if !missing.is_empty() {
        let listed: Vec<String> = missing
            .iter()
            .map(|s| {
                format!(
                    "{} (container {}, secret {})",
                    s.value_from, s.container, s.secret
                )
            })
            .collect();
        return Err(ServiceError::property(
            "TaskDefinition",
            format!(
                "{} injects SSM parameters that do not exist: {}. Create them (aws ssm put-parameter --type SecureString) or fix valueFrom; tasks would otherwise fail to start",
                props.task_definition,
                listed.join(", ")
            ),
        ));
    }
    if !secrets.is_empty() && execution_role.is_none() {
        return Err(ServiceError::property(
            "TaskDefinition",
            format!("{} injects secrets but has no executionRoleArn; ECS needs an execution role allowed ssm:GetParameters on them", props.task_definition),
        ));
    }
    let denied = denied?;
    if !denied.is_empty() {
        return Err(ServiceError::property(
            "TaskDefinition",
            format!(
                "the execution role {} may not inject the secrets: {} denied; allow those actions on those resources (cluster.yaml grants kms:Decrypt when SecretsKmsKeyArn is set)",
                execution_role.unwrap_or_default(),
                denied.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Images whose tag or digest is not in their ECR repository (a missing repository counts as
/// missing images: nothing could be pulled from it).
async fn missing_images(c: &Clients, images: &[EcrImage]) -> Result<Vec<String>, ServiceError> {
    let answers = futures::future::join_all(images.iter().map(|image| {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .set_image_tag(image.tag.clone())
            .set_image_digest(image.digest.clone())
            .build();
        c.ecr
            .describe_images()
            .registry_id(&image.registry)
            .repository_name(&image.repository)
            .image_ids(id)
            .send()
    }))
    .await;
    let mut missing = Vec::new();
    for (image, answer) in images.iter().zip(answers) {
        match answer {
            Ok(found) if !found.image_details().is_empty() => {}
            Ok(_) => missing.push(image.reference()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("ImageNotFoundException" | "RepositoryNotFoundException")
                ) =>
            {
                missing.push(image.reference())
            }
            Err(e) => return Err(ServiceError::aws("DescribeImages")(e)),
        }
    }
    Ok(missing)
}

async fn missing_parameters(
    c: &Clients,
    secrets: &[SecretRef],
) -> Result<Vec<SecretRef>, ServiceError> {
    let mut names: Vec<&str> = secrets.iter().map(|s| s.value_from.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let batches = futures::future::try_join_all(names.chunks(10).map(|batch| async move {
        c.ssm
            .get_parameters()
            .set_names(Some(batch.iter().map(|n| (*n).to_owned()).collect()))
            .send()
            .await
            .map_err(ServiceError::aws("GetParameters"))
    }))
    .await?;
    let invalid: Vec<String> = batches
        .iter()
        .flat_map(|b| b.invalid_parameters().iter().cloned())
        .collect();
    Ok(secrets
        .iter()
        .filter(|s| invalid.contains(&s.value_from))
        .cloned()
        .collect())
}

/// What the execution role may not do to inject the secrets, by IAM policy simulation: read the
/// parameters (`ssm:GetParameters`) and, with a customer-managed key, decrypt them
/// (`kms:Decrypt`). A simulation that cannot run (our own role lacks
/// iam:SimulatePrincipalPolicy, or the emulator lacks the API) is logged and skipped: it must not
/// block a deployment that may be fine.
async fn denied_secrets(
    c: &Clients,
    execution_role: Option<&str>,
    secrets: &[SecretRef],
    task_definition_arn: &str,
    kms_key: Option<&str>,
) -> Result<Vec<String>, ServiceError> {
    let Some(role) = execution_role else {
        return Ok(Vec::new());
    };
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let mut arns: Vec<String> = secrets
        .iter()
        .map(|s| parameter_arn(&s.value_from, task_definition_arn))
        .collect();
    arns.sort();
    arns.dedup();
    let mut checks = vec![("ssm:GetParameters", arns)];
    if let Some(key) = kms_key {
        checks.push(("kms:Decrypt", vec![key.to_owned()]));
    }
    let mut denied = Vec::new();
    for (action, resources) in checks {
        match c
            .iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .action_names(action)
            .set_resource_arns(Some(resources))
            .customize()
            // An optional check: two attempts, not the full retry policy's eight.
            .config_override(aws_sdk_iam::config::Builder::default().retry_config(
                custom_resource::retry_config().with_max_attempts(OPTIONAL_CHECK_ATTEMPTS),
            ))
            .send()
            .await
        {
            Ok(result) => denied.extend(
                result
                    .evaluation_results()
                    .iter()
                    .filter(|r| r.eval_decision() != &PolicyEvaluationDecisionType::Allowed)
                    .map(|r| format!("{action} on {}", r.eval_resource_name().unwrap_or("?"))),
            ),
            Err(e) => {
                warn!(
                    error = %format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("simulation unavailable")),
                    role,
                    action,
                    "could not simulate the execution role's access to its secrets; skipping that check"
                );
            }
        }
    }
    Ok(denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_become_arns_in_the_task_definitions_partition_region_and_account() {
        let td = "arn:aws-cn:ecs:cn-north-1:123456789012:task-definition/web:3";
        assert_eq!(
            parameter_arn("/app/dev/db", td),
            "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/app/dev/db"
        );
        assert_eq!(
            parameter_arn("plain", td),
            "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/plain"
        );
        let arn = "arn:aws:ssm:us-east-1:1:parameter/x";
        assert_eq!(parameter_arn(arn, td), arn);
    }

    #[test]
    fn ecr_images_are_recognised_with_their_tag_or_digest() {
        let image =
            EcrImage::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop-dev:v1").unwrap();
        assert_eq!(
            (
                image.registry.as_str(),
                image.region.as_str(),
                image.repository.as_str()
            ),
            ("123456789012", "eu-west-1", "shop-dev")
        );
        assert_eq!(image.reference(), "shop-dev:v1");
        let untagged =
            EcrImage::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/web").unwrap();
        assert_eq!(untagged.reference(), "team/web:latest");
        let pinned =
            EcrImage::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:abc").unwrap();
        assert_eq!(
            (pinned.tag, pinned.digest.as_deref()),
            (None, Some("sha256:abc"))
        );
    }

    #[test]
    fn images_outside_private_ecr_are_not_checked() {
        assert_eq!(EcrImage::parse("public.ecr.aws/nginx/nginx:1.27"), None);
        assert_eq!(EcrImage::parse("nginx:latest"), None);
        assert_eq!(EcrImage::parse("ghcr.io/org/app:1"), None);
        assert_eq!(EcrImage::parse("localhost:5000/app:1"), None);
    }

    #[test]
    fn secrets_manager_references_are_not_ssm() {
        assert!(is_ssm("/app/dev/db"));
        assert!(is_ssm("arn:aws:ssm:us-east-1:1:parameter/x"));
        assert!(!is_ssm(
            "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf"
        ));
    }
}

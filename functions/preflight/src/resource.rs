//! Create, update, delete and resume for `Custom::EnvironmentPreflight`.
//!
//! What to do is decided by pure functions ([`physical_id`], [`refused_change`],
//! [`role_step`]); the resource only makes the IAM calls they ask for.

use crate::error::PreflightError;
use crate::properties::{fixed_settings, PreflightProperties};
use aws_sdk_iam::error::ProvideErrorMetadata;
use custom_resource::{epoch_ms, Completion, Context, Outcome, Request, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::SystemTime;
use tracing::info;

/// The role ECS needs before a cluster with capacity providers can be created. A fresh account
/// has none until the console or a first cluster makes it; CloudFormation's `AWS::ECS::Cluster`
/// then fails ("Unable to assume the service linked role").
pub const ECS_SERVICE_LINKED_ROLE: &str = "AWSServiceRoleForECS";
pub const ECS_SERVICE: &str = "ecs.amazonaws.com";
/// IAM is eventually consistent: a role just created may not be assumable by ECS yet.
pub const ROLE_PROPAGATION_MS: u64 = 10_000;
const ID_PREFIX: &str = "environment-preflight";
const PROPAGATING: &str = "the new ECS service-linked role to propagate in IAM";

/// The Data every finished operation returns.
fn finished(completion: Completion) -> Outcome {
    completion
        .data("EcsServiceLinkedRole", ECS_SERVICE_LINKED_ROLE)
        .into()
}

/// The physical id carries the fixed settings the environment was deployed with, so an Update
/// compares against what was *deployed*, not against OldResourceProperties: a rollback Update
/// (back to the deployed values) then always passes.
pub fn physical_id(p: &PreflightProperties) -> String {
    let settings: Vec<String> = fixed_settings(p)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!("{ID_PREFIX}:{}", settings.join(";"))
}

/// Why an Update must be refused before anything changes, or None.
pub fn refused_change(physical_id: &str, new: &PreflightProperties) -> Option<String> {
    let deployed = physical_id.strip_prefix(ID_PREFIX)?.strip_prefix(':')?;
    let deployed: Vec<(&str, &str)> = deployed
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let changes: Vec<String> = fixed_settings(new)
        .into_iter()
        .filter_map(|(name, value)| {
            let (_, was) = deployed.iter().find(|(n, _)| *n == name)?;
            (*was != value).then(|| format!("{name} {was} -> {value}"))
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    Some(format!(
        "refused before any change: {}. VpcCidr, AvailabilityZoneCount and AppPort are fixed once an environment is deployed (changing them would replace the VPC, subnets or target group under the running service). Set them back to the deployed values; to move, deploy a new environment (another EnvironmentName) with the new values, switch traffic to it, then delete this one.",
        changes.join(", ")
    ))
}

/// What to do about the ECS service-linked role, from what GetRole answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleStep {
    /// It exists (or we were told not to manage it): nothing to do.
    Nothing,
    /// Missing: create it, then give IAM time to propagate it.
    Create,
}

pub fn role_step(wanted: bool, get_role_code: Option<&str>) -> Result<RoleStep, String> {
    match (wanted, get_role_code) {
        (false, _) | (true, None) => Ok(RoleStep::Nothing),
        (true, Some("NoSuchEntity")) => Ok(RoleStep::Create),
        (true, Some(other)) => Err(other.to_owned()),
    }
}

/// Saved while IAM propagates a role just created.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Progress {
    ready_at_ms: u64,
}

pub struct EnvironmentPreflight {
    iam: aws_sdk_iam::Client,
}

impl EnvironmentPreflight {
    pub fn new(iam: aws_sdk_iam::Client) -> Self {
        Self { iam }
    }

    /// Makes sure the role exists; true when this call created it.
    async fn ensure_role(&self, p: &PreflightProperties) -> Result<bool, PreflightError> {
        let found = self
            .iam
            .get_role()
            .role_name(ECS_SERVICE_LINKED_ROLE)
            .send()
            .await;
        let wanted = p.create_ecs_service_linked_role;
        let step = match found {
            Ok(_) => RoleStep::Nothing,
            Err(e) => match role_step(wanted, Some(e.code().unwrap_or("error"))) {
                Ok(step) => step,
                Err(_) => return Err(PreflightError::aws("GetRole")(e)),
            },
        };
        match step {
            RoleStep::Nothing => Ok(false),
            RoleStep::Create => {
                match self
                    .iam
                    .create_service_linked_role()
                    .aws_service_name(ECS_SERVICE)
                    .description("Created by Custom::EnvironmentPreflight for ECS capacity providers; shared by the account, never deleted by the stack.")
                    .send()
                    .await
                {
                    Ok(_) => {
                        info!(role = ECS_SERVICE_LINKED_ROLE, "created the ECS service-linked role");
                        Ok(true)
                    }
                    // Created meanwhile by someone else ("has been taken in this account").
                    Err(e) if e.code() == Some("InvalidInput") => Ok(false),
                    Err(e) => Err(PreflightError::aws("CreateServiceLinkedRole")(e)),
                }
            }
        }
    }

    async fn check(
        &self,
        p: &PreflightProperties,
        completion: Completion,
    ) -> Result<Outcome, PreflightError> {
        if self.ensure_role(p).await? {
            return Ok(Outcome::pending(
                PROPAGATING,
                Progress {
                    ready_at_ms: epoch_ms(SystemTime::now()) + ROLE_PROPAGATION_MS,
                },
            ));
        }
        Ok(finished(completion))
    }
}

impl Resource for EnvironmentPreflight {
    type Properties = PreflightProperties;
    type Error = PreflightError;

    async fn create(
        &self,
        _ctx: &Context,
        p: &PreflightProperties,
    ) -> Result<Outcome, PreflightError> {
        let id = physical_id(p);
        Ok(self
            .check(p, Completion::created(&id))
            .await?
            .with_physical_id(id))
    }

    async fn update(
        &self,
        _ctx: &Context,
        physical_id: &str,
        _old: &PreflightProperties,
        new: &PreflightProperties,
    ) -> Result<Outcome, PreflightError> {
        if let Some(reason) = refused_change(physical_id, new) {
            return Err(PreflightError::Refused(reason));
        }
        self.check(new, Completion::unchanged()).await
    }

    /// The service-linked role is the account's, shared with every cluster: never deleted here.
    async fn delete(
        &self,
        _ctx: &Context,
        _physical_id: &str,
        _p: &PreflightProperties,
    ) -> Result<Outcome, PreflightError> {
        Ok(Completion::unchanged().into())
    }

    async fn resume(
        &self,
        _ctx: &Context,
        request: &Request<PreflightProperties>,
        progress: &Value,
    ) -> Result<Outcome, PreflightError> {
        let progress: Progress = serde_json::from_value(progress.clone())
            .map_err(|e| PreflightError::Progress(e.to_string()))?;
        if epoch_ms(SystemTime::now()) < progress.ready_at_ms {
            return Ok(Outcome::pending(PROPAGATING, progress));
        }
        let completion = match request {
            Request::Create { properties } => Completion::created(physical_id(properties)),
            _ => Completion::unchanged(),
        };
        Ok(finished(completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custom_resource::properties::parse;
    use serde_json::json;

    fn props(cidr: &str, zones: &str, port: &str) -> PreflightProperties {
        parse(&json!({
            "FargateWeight": "1", "FargateSpotWeight": "3", "DesiredCount": "1", "MinCount": "1",
            "MaxCount": "4", "ScaleOutCpuThreshold": "75", "ScaleInCpuThreshold": "25",
            "VpcCidr": cidr, "AvailabilityZoneCount": zones, "AppPort": port,
        }))
        .unwrap()
    }

    #[test]
    fn the_physical_id_records_the_deployed_fixed_settings() {
        assert_eq!(
            physical_id(&props("10.0.0.0/16", "2", "8080")),
            "environment-preflight:VpcCidr=10.0.0.0/16;AvailabilityZoneCount=2;AppPort=8080"
        );
    }

    #[test]
    fn changing_a_fixed_setting_is_refused_naming_old_and_new_values() {
        let id = physical_id(&props("10.0.0.0/16", "2", "8080"));
        let reason = refused_change(&id, &props("10.1.0.0/16", "3", "8080")).unwrap();
        assert!(
            reason.contains("VpcCidr 10.0.0.0/16 -> 10.1.0.0/16"),
            "{reason}"
        );
        assert!(reason.contains("AvailabilityZoneCount 2 -> 3"), "{reason}");
        assert!(!reason.contains("AppPort 8080"), "{reason}");
        assert!(reason.contains("deploy a new environment"), "{reason}");
        let reason = refused_change(&id, &props("10.0.0.0/16", "2", "9090")).unwrap();
        assert!(reason.contains("AppPort 8080 -> 9090"), "{reason}");
    }

    #[test]
    fn a_rollback_to_the_deployed_values_and_other_changes_pass() {
        let id = physical_id(&props("10.0.0.0/16", "2", "8080"));
        assert_eq!(
            refused_change(&id, &props("10.0.0.0/16", "2", "8080")),
            None
        );
        // An id this resource did not write refuses nothing.
        assert_eq!(
            refused_change(
                "custom-resource:create-failed:1",
                &props("10.9.0.0/16", "2", "1")
            ),
            None
        );
    }

    #[test]
    fn the_role_is_created_only_when_iam_says_it_does_not_exist() {
        assert_eq!(role_step(true, None), Ok(RoleStep::Nothing));
        assert_eq!(role_step(true, Some("NoSuchEntity")), Ok(RoleStep::Create));
        assert_eq!(
            role_step(false, Some("NoSuchEntity")),
            Ok(RoleStep::Nothing)
        );
        assert_eq!(
            role_step(true, Some("AccessDenied")),
            Err("AccessDenied".to_owned())
        );
    }
}

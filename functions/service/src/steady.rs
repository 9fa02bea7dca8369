//! Is the service in steady state? (pure, so every branch is tested without AWS)
//!
//! Steady = the PRIMARY deployment's rollout is COMPLETED, it is the only deployment, and the
//! service runs as many tasks as it wants. Failed = a deployment's rollout FAILED or the circuit
//! breaker is rolling back.

use aws_sdk_ecs::types::{DeploymentRolloutState, Service};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steadiness {
    Steady,
    Waiting(String),
    Failed(String),
}

pub fn assess(service: &Service) -> Steadiness {
    let name = service.service_name().unwrap_or("the service");
    if let Some(status) = service.status().filter(|s| *s != "ACTIVE") {
        return Steadiness::Failed(format!("service {name} is {status}"));
    }
    let deployments = service.deployments();
    if let Some(failed) = deployments
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        return Steadiness::Failed(format!(
            "deployment {} of service {name} failed: {}",
            failed.id().unwrap_or("?"),
            failed.rollout_state_reason().unwrap_or("no reason given")
        ));
    }
    let Some(primary) = deployments.iter().find(|d| d.status() == Some("PRIMARY")) else {
        return Steadiness::Waiting(format!("service {name} to start its deployment"));
    };
    let reason = primary.rollout_state_reason().unwrap_or("");
    if reason.contains("circuit breaker") && reason.contains("rolling back") {
        return Steadiness::Failed(format!("service {name}: {reason}"));
    }
    let (running, desired) = (service.running_count(), service.desired_count());
    let rollout = primary
        .rollout_state()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|| "state unknown".into());
    if primary.rollout_state() == Some(&DeploymentRolloutState::Completed)
        && running == desired
        && deployments.len() == 1
    {
        return Steadiness::Steady;
    }
    Steadiness::Waiting(format!(
        "service {name} to reach steady state (deployment {} {rollout}, {running} of {desired} tasks running, {} deployment(s))",
        primary.id().unwrap_or("?"),
        deployments.len()
    ))
}

/// The newest service events, newest first, for a failure reason ("no service events yet").
pub fn recent_events(service: &Service, max: usize) -> String {
    let mut events: Vec<_> = service.events().iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.created_at().map(|t| t.secs())));
    let quoted: Vec<String> = events
        .iter()
        .take(max)
        .filter_map(|e| e.message())
        .map(|m| format!("\"{m}\""))
        .collect();
    if quoted.is_empty() {
        "no service events yet".into()
    } else {
        format!("last service events: {}", quoted.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::primitives::DateTime;
    use aws_sdk_ecs::types::{Deployment, ServiceEvent};

    fn deployment(status: &str, rollout: DeploymentRolloutState, reason: &str) -> Deployment {
        Deployment::builder()
            .id(format!("ecs-svc/{status}"))
            .status(status)
            .rollout_state(rollout)
            .rollout_state_reason(reason)
            .build()
    }

    fn service(deployments: Vec<Deployment>, running: i32, desired: i32) -> Service {
        Service::builder()
            .service_name("web")
            .status("ACTIVE")
            .set_deployments(Some(deployments))
            .running_count(running)
            .desired_count(desired)
            .build()
    }

    #[test]
    fn a_completed_single_deployment_running_all_tasks_is_steady() {
        let s = service(
            vec![deployment(
                "PRIMARY",
                DeploymentRolloutState::Completed,
                "done",
            )],
            2,
            2,
        );
        assert_eq!(assess(&s), Steadiness::Steady);
    }

    #[test]
    fn tasks_still_starting_or_an_old_deployment_draining_is_waiting() {
        let s = service(
            vec![deployment(
                "PRIMARY",
                DeploymentRolloutState::InProgress,
                "",
            )],
            1,
            2,
        );
        let Steadiness::Waiting(message) = assess(&s) else {
            panic!()
        };
        assert!(
            message.contains("IN_PROGRESS, 1 of 2 tasks running"),
            "{message}"
        );
        let s = service(
            vec![
                deployment("PRIMARY", DeploymentRolloutState::Completed, ""),
                deployment("ACTIVE", DeploymentRolloutState::Completed, ""),
            ],
            2,
            2,
        );
        assert!(matches!(assess(&s), Steadiness::Waiting(_)));
    }

    #[test]
    fn a_failed_rollout_or_a_circuit_breaker_rollback_is_a_failure() {
        let s = service(
            vec![
                deployment(
                    "PRIMARY",
                    DeploymentRolloutState::InProgress,
                    "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1",
                ),
                deployment(
                    "ACTIVE",
                    DeploymentRolloutState::Failed,
                    "ECS deployment circuit breaker: tasks failed to start.",
                ),
            ],
            0,
            2,
        );
        let Steadiness::Failed(message) = assess(&s) else {
            panic!()
        };
        assert!(message.contains("tasks failed to start"), "{message}");
        let s = service(
            vec![deployment(
                "PRIMARY",
                DeploymentRolloutState::InProgress,
                "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1",
            )],
            0,
            2,
        );
        assert!(matches!(assess(&s), Steadiness::Failed(_)));
    }

    #[test]
    fn an_inactive_service_is_a_failure() {
        let s = Service::builder()
            .service_name("web")
            .status("DRAINING")
            .build();
        assert_eq!(
            assess(&s),
            Steadiness::Failed("service web is DRAINING".into())
        );
    }

    #[test]
    fn events_are_quoted_newest_first() {
        let event = |secs: i64, message: &str| {
            ServiceEvent::builder()
                .created_at(DateTime::from_secs(secs))
                .message(message)
                .build()
        };
        let s = Service::builder()
            .events(event(1, "(service web) has started 1 tasks"))
            .events(event(
                3,
                "(service web) is unable to consistently start tasks",
            ))
            .build();
        assert_eq!(
            recent_events(&s, 5),
            "last service events: \"(service web) is unable to consistently start tasks\"; \"(service web) has started 1 tasks\""
        );
        assert_eq!(
            recent_events(&Service::builder().build(), 5),
            "no service events yet"
        );
    }
}

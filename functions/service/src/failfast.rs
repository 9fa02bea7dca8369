//! Can the deployment being waited for still succeed? (pure, so every cause is tested without AWS)
//!
//! ECS's circuit breaker fails a deployment only after several failed launches (at least 3, each
//! with its own pull retries: many minutes on AWS), and never when it is switched off or when no
//! task can be placed at all; CloudFormation then waits for `SteadyStateTimeoutSeconds`. This reads
//! what ECS reports about the PRIMARY deployment (its stopped tasks' `stopCode`/`stoppedReason`,
//! the service's placement events) and names a cause waiting cannot fix at its first sign, or at
//! its Nth for causes one more attempt can clear, quoting the task that showed it and what to do.
//! Everything else (a Spot interruption, a scale-in, one crash) keeps waiting.

use aws_sdk_ecs::types::{Deployment, Service, Task};

/// Tasks of the deployment whose essential container exited before a crash loop is fatal.
pub const CRASH_LOOP_TASKS: usize = 2;
/// Tasks of the deployment stopped by failing health checks before that is fatal.
pub const HEALTH_CHECK_TASKS: usize = 3;
/// Placement attempts that found no capacity, with no task of the deployment running.
pub const CAPACITY_EVENTS: usize = 2;

/// A cause the deployment cannot recover from, in ECS's words, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// What ECS reported, quoted.
    pub cause: String,
    /// The task that showed it (its id), when a task did.
    pub task: Option<String>,
    /// How many tasks (or placement attempts) showed it.
    pub seen: usize,
    pub advice: &'static str,
}

impl Fatal {
    pub fn message(&self, service: &str) -> String {
        let shown = match &self.task {
            Some(task) if self.seen > 1 => format!("task {task} and {} more", self.seen - 1),
            Some(task) => format!("task {task}"),
            None => format!("{} placement attempts", self.seen),
        };
        format!(
            "the deployment of service {service} cannot succeed: {shown} reported \"{}\". {}",
            self.cause, self.advice
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    ImagePull,
    ImagePullRetryable,
    Initialization,
    EssentialExited,
    HealthChecks,
}

impl Cause {
    /// Tasks that must show the cause before it is fatal.
    fn threshold(self) -> usize {
        match self {
            Cause::ImagePull | Cause::Initialization => 1,
            Cause::ImagePullRetryable | Cause::EssentialExited => CRASH_LOOP_TASKS,
            Cause::HealthChecks => HEALTH_CHECK_TASKS,
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Cause::ImagePull | Cause::ImagePullRetryable => "Push the image (or fix its tag or digest in the task definition), let the task execution role pull it (ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer), and give the subnets a route to the registry (NAT gateway or ECR VPC endpoints).",
            Cause::Initialization => "Check that every secret the task definition names exists, that the task execution role may read it (ssm:GetParameters, secretsmanager:GetSecretValue, kms:Decrypt for its key) and write logs, and that the subnets reach SSM, Secrets Manager and CloudWatch Logs (NAT gateway or VPC endpoints).",
            Cause::EssentialExited => "The container starts and exits: read its logs (the task definition's log configuration), fix the command, environment or image, and deploy again.",
            Cause::HealthChecks => "The tasks start but never pass their health checks: check the health check path and port, the container's listening port, the security groups between load balancer and tasks, and HealthCheckGracePeriodSeconds.",
        }
    }
}

/// Permanent pull failures: waiting for another attempt cannot make them pass.
const PERMANENT_PULL: &[&str] = &[
    "not found",
    "manifest unknown",
    "denied",
    "unauthorized",
    "forbidden",
    "403",
    "401",
    "invalid reference",
];

fn cause_of(task: &Task) -> Option<(Cause, String)> {
    let reason = task.stopped_reason().unwrap_or_default();
    if reason.contains("CannotPullContainerError") {
        let lower = reason.to_ascii_lowercase();
        let permanent = PERMANENT_PULL.iter().any(|text| lower.contains(text));
        let cause = if permanent {
            Cause::ImagePull
        } else {
            Cause::ImagePullRetryable
        };
        return Some((cause, reason.to_owned()));
    }
    if reason.contains("ResourceInitializationError") {
        return Some((Cause::Initialization, reason.to_owned()));
    }
    if reason.contains("failed ELB health checks")
        || reason.contains("failed container health checks")
    {
        return Some((Cause::HealthChecks, reason.to_owned()));
    }
    if task.stop_code().map(|code| code.as_str()) == Some("EssentialContainerExited") {
        let exits: Vec<String> = task
            .containers()
            .iter()
            .filter(|c| c.exit_code().is_some_and(|code| code != 0))
            .map(|c| {
                let mut exit = format!(
                    "container {} exited with code {}",
                    c.name().unwrap_or("?"),
                    c.exit_code().unwrap_or_default()
                );
                if let Some(why) = c.reason().filter(|why| !why.is_empty()) {
                    exit.push_str(&format!(" ({why})"));
                }
                exit
            })
            .collect();
        let text = if exits.is_empty() {
            reason.to_owned()
        } else {
            format!("{reason}: {}", exits.join(", "))
        };
        return Some((Cause::EssentialExited, text));
    }
    None
}

fn primary(service: &Service) -> Option<&Deployment> {
    service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
}

fn task_id(task: &Task) -> String {
    let arn = task.task_arn().unwrap_or("?");
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

/// The first cause, among `stopped` (the service's stopped tasks, any order) and the service's
/// events, that the PRIMARY deployment cannot recover from; None while it still can.
pub fn fatal_cause(service: &Service, stopped: &[Task]) -> Option<Fatal> {
    let primary = primary(service)?;
    let deployment = primary.id()?;
    let mut ours: Vec<&Task> = stopped
        .iter()
        .filter(|task| task.started_by() == Some(deployment))
        .collect();
    // Oldest first: the task quoted is the first that showed the cause.
    ours.sort_by_key(|task| task.stopped_at().map(|at| (at.secs(), at.subsec_nanos())));
    let mut seen: Vec<(Cause, String, String, usize)> = Vec::new();
    for task in ours {
        let Some((cause, text)) = cause_of(task) else {
            continue;
        };
        match seen.iter_mut().find(|(known, ..)| *known == cause) {
            Some(entry) => entry.3 += 1,
            None => seen.push((cause, text, task_id(task), 1)),
        }
    }
    if let Some((cause, text, task, count)) = seen
        .into_iter()
        .find(|(cause, .., count)| *count >= cause.threshold())
    {
        return Some(Fatal {
            cause: text,
            task: Some(task),
            seen: count,
            advice: cause.advice(),
        });
    }
    no_capacity(service, primary)
}

/// Placement failed for lack of capacity on every attempt since the deployment began, and none
/// of its tasks runs: no provider of its strategy has room (a Spot-only strategy without Spot
/// capacity, or subnets only in zones without Fargate).
fn no_capacity(service: &Service, primary: &Deployment) -> Option<Fatal> {
    if primary.running_count() > 0 {
        return None;
    }
    let since = primary.created_at().map(|at| at.secs()).unwrap_or(i64::MIN);
    let attempts: Vec<&str> = service
        .events()
        .iter()
        .filter(|e| e.created_at().is_none_or(|at| at.secs() >= since))
        .filter_map(|e| e.message())
        .filter(|m| {
            m.contains("unable to place a task")
                && m.to_ascii_lowercase().contains("capacity is unavailable")
        })
        .collect();
    if attempts.len() < CAPACITY_EVENTS {
        return None;
    }
    // Events are newest first; quote the newest.
    Some(Fatal {
        cause: attempts[0].to_owned(),
        task: None,
        seen: attempts.len(),
        advice: "No capacity provider of the service's strategy can place its tasks. Add FARGATE to the strategy (a base of 1 keeps one on-demand task), give the service subnets in more Availability Zones, or deploy again later.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::primitives::DateTime;
    use aws_sdk_ecs::types::{Container, ServiceEvent, TaskStopCode};

    const DEPLOYMENT: &str = "ecs-svc/1234567890";

    fn service(running: i32, events: &[(i64, &str)]) -> Service {
        let mut builder = Service::builder()
            .service_name("web")
            .status("ACTIVE")
            .deployments(
                Deployment::builder()
                    .id(DEPLOYMENT)
                    .status("PRIMARY")
                    .running_count(running)
                    .created_at(DateTime::from_secs(100))
                    .build(),
            );
        for (at, message) in events {
            builder = builder.events(
                ServiceEvent::builder()
                    .created_at(DateTime::from_secs(*at))
                    .message(*message)
                    .build(),
            );
        }
        builder.build()
    }

    fn stopped(id: &str, at: i64, code: &str, reason: &str) -> Task {
        Task::builder()
            .task_arn(format!("arn:aws:ecs:us-east-1:123456789012:task/app/{id}"))
            .started_by(DEPLOYMENT)
            .stop_code(TaskStopCode::from(code))
            .stopped_reason(reason)
            .stopped_at(DateTime::from_secs(at))
            .build()
    }

    fn exited(id: &str, at: i64, exit_code: i32) -> Task {
        let mut task = stopped(
            id,
            at,
            "EssentialContainerExited",
            "Essential container in task exited",
        );
        task.containers = Some(vec![Container::builder()
            .name("web")
            .exit_code(exit_code)
            .reason("")
            .build()]);
        task
    }

    const PULL: &str = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref 123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2: not found";

    #[test]
    fn an_image_that_is_not_there_is_fatal_at_the_first_task_quoting_it() {
        let fatal = fatal_cause(
            &service(0, &[]),
            &[stopped("t1", 200, "TaskFailedToStart", PULL)],
        )
        .unwrap();
        assert_eq!(fatal.task.as_deref(), Some("t1"));
        let message = fatal.message("web");
        assert!(
            message.contains("task t1 reported \"CannotPullContainerError"),
            "{message}"
        );
        assert!(message.contains("Push the image"), "{message}");
    }

    #[test]
    fn a_pull_that_may_pass_next_time_is_fatal_only_when_it_repeats() {
        let timeout = "CannotPullContainerError: ref pull has been retried 5 time(s): failed to copy: httpReadSeeker: failed open: i/o timeout";
        let one = [stopped("t1", 200, "TaskFailedToStart", timeout)];
        assert_eq!(fatal_cause(&service(0, &[]), &one), None);
        let two = [
            one[0].clone(),
            stopped("t2", 230, "TaskFailedToStart", timeout),
        ];
        let fatal = fatal_cause(&service(0, &[]), &two).unwrap();
        assert_eq!((fatal.task.as_deref(), fatal.seen), (Some("t1"), 2));
    }

    #[test]
    fn a_secret_the_task_cannot_read_is_fatal_at_the_first_task() {
        let reason = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secrets from ssm: AccessDeniedException";
        let fatal = fatal_cause(
            &service(0, &[]),
            &[stopped("t9", 300, "TaskFailedToStart", reason)],
        )
        .unwrap();
        assert!(fatal.cause.contains("unable to retrieve secrets from ssm"));
        assert!(fatal.advice.contains("ssm:GetParameters"));
    }

    #[test]
    fn a_container_that_exits_at_once_is_fatal_when_a_second_task_does_the_same() {
        assert_eq!(fatal_cause(&service(0, &[]), &[exited("t1", 200, 1)]), None);
        let fatal = fatal_cause(
            &service(0, &[]),
            &[exited("t2", 260, 1), exited("t1", 200, 1)],
        )
        .unwrap();
        assert_eq!(
            fatal.task.as_deref(),
            Some("t1"),
            "the first task to show it is quoted"
        );
        assert!(
            fatal.cause.contains("container web exited with code 1"),
            "{}",
            fatal.cause
        );
        assert!(fatal.message("web").contains("task t1 and 1 more"));
    }

    #[test]
    fn failing_health_checks_are_fatal_at_the_third_task() {
        let reason = "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc)";
        let tasks: Vec<Task> = (0..3)
            .map(|i| {
                stopped(
                    &format!("t{i}"),
                    200 + i,
                    "ServiceSchedulerInitiated",
                    reason,
                )
            })
            .collect();
        assert_eq!(fatal_cause(&service(1, &[]), &tasks[..2]), None);
        assert!(fatal_cause(&service(1, &[]), &tasks).is_some());
    }

    #[test]
    fn spot_interruptions_scale_ins_and_other_deployments_tasks_keep_waiting() {
        let mut old = stopped("t0", 50, "TaskFailedToStart", PULL);
        old.started_by = Some("ecs-svc/older".into());
        let tasks = [
            old,
            stopped(
                "t1",
                200,
                "SpotInterruption",
                "Your Spot Task was interrupted.",
            ),
            stopped(
                "t2",
                210,
                "ServiceSchedulerInitiated",
                "Scaling activity initiated by (deployment ecs-svc/1234567890)",
            ),
            exited("t3", 220, 0),
        ];
        assert_eq!(fatal_cause(&service(1, &[]), &tasks), None);
    }

    #[test]
    fn no_capacity_on_repeated_attempts_with_nothing_running_is_fatal() {
        let full = "(service web) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone.";
        assert_eq!(fatal_cause(&service(0, &[(150, full)]), &[]), None);
        // Events are listed newest first.
        let fatal = fatal_cause(&service(0, &[(160, full), (150, full)]), &[]).unwrap();
        assert_eq!((fatal.task.as_deref(), fatal.seen), (None, 2));
        assert!(fatal
            .message("web")
            .contains("2 placement attempts reported"));
        // Some tasks run (on-demand placed, Spot short): not fatal here.
        assert_eq!(
            fatal_cause(&service(1, &[(160, full), (150, full)]), &[]),
            None
        );
        // Events from before this deployment do not count.
        assert_eq!(
            fatal_cause(&service(0, &[(90, full), (80, full)]), &[]),
            None
        );
    }
}

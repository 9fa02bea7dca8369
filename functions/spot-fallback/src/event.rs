//! What an EventBridge event means for the managed service (pure). The events (ECS Developer
//! Guide, "Amazon ECS events"): `ECS Service Action` with eventName
//! `SERVICE_TASK_PLACEMENT_FAILURE` naming the FARGATE_SPOT capacity provider; `ECS Task State
//! Change` with stopCode `SpotInterruption`; and the rule's `Scheduled Event` (a tick). Each only
//! triggers a look at the service: what to do is decided from what DescribeServices shows, so a
//! duplicate or late event changes nothing.

use crate::decide::Signal;
use aws_sdk_ecs::primitives::{DateTime, DateTimeFormat};
use custom_resource::fallback::SPOT;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "detail-type", default)]
    pub detail_type: String,
    /// When the event happened (RFC 3339): the clock of every decision, so a replayed event
    /// decides as it would have then.
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub detail: Value,
}

/// What an event asks for, or why it is ignored.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Signal(Signal, &'static str),
    Ignored(String),
}

/// The event's time in epoch seconds (`fallback`: the clock now, when it has none).
pub fn epoch_seconds(envelope: &Envelope, fallback: i64) -> i64 {
    envelope
        .time
        .as_deref()
        .and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok())
        .map_or(fallback, |t| t.secs())
}

fn text<'a>(detail: &'a Value, key: &str) -> &'a str {
    detail.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `arn:...:cluster/<name>` or a bare name, against the managed cluster.
fn is_cluster(arn: &str, cluster: &str) -> bool {
    custom_resource::ecs::cluster_name(arn) == cluster
}

/// A service ARN `arn:...:service/<cluster>/<name>` (or the older `service/<name>`).
fn is_service(arn: &str, cluster: &str, service: &str) -> bool {
    let path = arn.split_once(":service/").map_or("", |(_, p)| p);
    path == format!("{cluster}/{service}") || path == service
}

pub fn classify(envelope: &Envelope, cluster: &str, service: &str) -> Seen {
    let detail = &envelope.detail;
    match envelope.detail_type.as_str() {
        "Scheduled Event" => Seen::Signal(Signal::Tick, "scheduled check"),
        "ECS Service Action" => {
            if text(detail, "eventName") != "SERVICE_TASK_PLACEMENT_FAILURE" {
                return Seen::Ignored(format!("service action {}", text(detail, "eventName")));
            }
            if !envelope
                .resources
                .iter()
                .any(|r| is_service(r, cluster, service))
            {
                return Seen::Ignored(format!(
                    "placement failure of another service: {:?}",
                    envelope.resources
                ));
            }
            let spot = detail
                .get("capacityProviderArns")
                .and_then(Value::as_array)
                .is_some_and(|arns| {
                    arns.iter()
                        .filter_map(Value::as_str)
                        .any(|a| a.rsplit('/').next() == Some(SPOT))
                });
            if spot {
                Seen::Signal(Signal::SpotShort, "FARGATE_SPOT could not place a task")
            } else {
                Seen::Ignored("placement failure on a provider other than FARGATE_SPOT".into())
            }
        }
        "ECS Task State Change" => {
            let ours = is_cluster(text(detail, "clusterArn"), cluster)
                && text(detail, "group") == format!("service:{service}");
            if !ours {
                return Seen::Ignored(format!(
                    "task of {} in {}",
                    text(detail, "group"),
                    text(detail, "clusterArn")
                ));
            }
            if text(detail, "stopCode") == "SpotInterruption" {
                Seen::Signal(Signal::SpotShort, "a Spot task was interrupted")
            } else {
                Seen::Ignored(format!(
                    "task state change, stopCode {:?}",
                    text(detail, "stopCode")
                ))
            }
        }
        other => Seen::Ignored(format!("detail-type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/app-dev/web";
    const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/app-dev";

    fn envelope(value: Value) -> Envelope {
        serde_json::from_value(value).unwrap()
    }

    fn placement_failure(provider: &str, service_arn: &str) -> Envelope {
        envelope(json!({
            "version": "0", "id": "e1", "source": "aws.ecs", "detail-type": "ECS Service Action",
            "account": "123456789012", "time": "2026-12-02T18:00:00Z", "region": "us-east-1",
            "resources": [service_arn],
            "detail": {"eventType": "ERROR", "eventName": "SERVICE_TASK_PLACEMENT_FAILURE",
                       "clusterArn": CLUSTER_ARN, "reason": "RESOURCE:FARGATE",
                       "capacityProviderArns": [format!("arn:aws:ecs:us-east-1:123456789012:capacity-provider/{provider}")]}
        }))
    }

    fn task_stopped(stop_code: &str, group: &str) -> Envelope {
        envelope(json!({
            "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "time": "2026-12-02T18:00:00Z", "resources": ["arn:aws:ecs:us-east-1:123456789012:task/app-dev/abc"],
            "detail": {"clusterArn": CLUSTER_ARN, "group": group, "lastStatus": "STOPPED",
                       "stopCode": stop_code, "capacityProviderName": "FARGATE_SPOT"}
        }))
    }

    #[test]
    fn a_spot_placement_failure_of_the_managed_service_is_a_spot_shortfall() {
        let seen = classify(
            &placement_failure("FARGATE_SPOT", SERVICE_ARN),
            "app-dev",
            "web",
        );
        assert!(matches!(seen, Seen::Signal(Signal::SpotShort, _)));
    }

    #[test]
    fn placement_failures_elsewhere_or_on_fargate_are_ignored() {
        let other = "arn:aws:ecs:us-east-1:123456789012:service/app-dev/api";
        assert!(matches!(
            classify(&placement_failure("FARGATE_SPOT", other), "app-dev", "web"),
            Seen::Ignored(_)
        ));
        assert!(matches!(
            classify(&placement_failure("FARGATE", SERVICE_ARN), "app-dev", "web"),
            Seen::Ignored(_)
        ));
    }

    #[test]
    fn a_spot_interruption_of_one_of_its_tasks_is_a_spot_shortfall_and_other_stops_are_not() {
        let seen = classify(
            &task_stopped("SpotInterruption", "service:web"),
            "app-dev",
            "web",
        );
        assert!(matches!(seen, Seen::Signal(Signal::SpotShort, _)));
        assert!(matches!(
            classify(
                &task_stopped("UserInitiated", "service:web"),
                "app-dev",
                "web"
            ),
            Seen::Ignored(_)
        ));
        assert!(matches!(
            classify(
                &task_stopped("SpotInterruption", "service:api"),
                "app-dev",
                "web"
            ),
            Seen::Ignored(_)
        ));
    }

    #[test]
    fn a_scheduled_event_is_a_tick_and_its_time_is_the_clock() {
        let tick = envelope(
            json!({"detail-type": "Scheduled Event", "time": "2026-12-02T18:00:00Z", "detail": {}}),
        );
        assert_eq!(
            classify(&tick, "app-dev", "web"),
            Seen::Signal(Signal::Tick, "scheduled check")
        );
        assert_eq!(epoch_seconds(&tick, 0), 1_796_234_400);
        let untimed = envelope(json!({"detail-type": "Scheduled Event"}));
        assert_eq!(epoch_seconds(&untimed, 42), 42);
    }
}

//! What the task knows about itself: the ECS task metadata endpoint v4 (Fargate platform 1.4.0+:
//! `${ECS_CONTAINER_METADATA_URI_V4}` for the container, `/task` for the task), and the capacity
//! provider, which that endpoint does not report, from `ecs:DescribeTasks` on the task itself.
//! Anything missing stays `None` and is shown as "unknown": the page never fails for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// What the page shows about the task. `None`: not known (yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskInfo {
    pub task_arn: Option<String>,
    pub cluster: Option<String>,
    pub availability_zone: Option<String>,
    pub launch_type: Option<String>,
    pub image: Option<String>,
    pub capacity_provider: Option<String>,
    /// Why the capacity provider is unknown (e.g. the task role lacks ecs:DescribeTasks).
    pub capacity_provider_error: Option<String>,
}

impl TaskInfo {
    /// From the task metadata (`/task`) and the container metadata documents.
    pub fn from_metadata(task: &Value, container: &Value) -> Self {
        let text = |doc: &Value, key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            task_arn: text(task, "TaskARN"),
            cluster: text(task, "Cluster"),
            availability_zone: text(task, "AvailabilityZone"),
            launch_type: text(task, "LaunchType"),
            image: text(container, "Image"),
            ..Self::default()
        }
    }

    /// The last part of the task ARN (`arn:...:task/<cluster>/<id>` or the old `task/<id>`).
    pub fn task_id(&self) -> Option<&str> {
        self.task_arn.as_deref()?.rsplit('/').next()
    }
}

/// The tag of an image reference (`repo:tag`, `repo@sha256:...` gives the digest's first 12).
pub fn image_tag(image: &str) -> Option<String> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest.chars().take(19).collect());
    }
    let last = image.rsplit('/').next()?;
    last.split_once(':').map(|(_, tag)| tag.to_owned())
}

/// The capacity provider's name from a DescribeTasks answer's task (`capacityProviderName`).
pub fn capacity_provider_of(task: &aws_sdk_ecs::types::Task) -> Option<String> {
    task.capacity_provider_name().map(str::to_owned)
}

/// Reads both metadata documents (2 s each).
pub async fn fetch(uri: &str) -> Result<TaskInfo, String> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let container = get_json(&client, uri).await?;
    let task = get_json(&client, &format!("{uri}/task")).await?;
    Ok(TaskInfo::from_metadata(&task, &container))
}

async fn get_json(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<Value, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let exchange = async {
        let response = client.get(uri).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&body.to_bytes()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| "timed out after 2 s".to_owned())?
        .map_err(|e| format!("GET {url}: {e}"))
}

/// `ecs:DescribeTasks` on this task: its capacity provider, or why it is unknown.
pub async fn capacity_provider(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
) -> Result<Option<String>, String> {
    let answer = ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(task_arn)
        .send()
        .await
        .map_err(|e| {
            let e = aws_sdk_ecs::error::DisplayErrorContext(e);
            format!("ecs:DescribeTasks failed ({e}); the task role needs ecs:DescribeTasks on this cluster's tasks")
        })?;
    Ok(answer.tasks().first().and_then(capacity_provider_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fargate_task_metadata_gives_the_task_zone_and_launch_type() {
        let task = json!({"Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
                          "TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/prod/0a1b2c3d4e5f",
                          "AvailabilityZone": "us-east-1b", "LaunchType": "FARGATE"});
        let container = json!({"Name": "app", "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:3f2a1b9"});
        let info = TaskInfo::from_metadata(&task, &container);
        assert_eq!(info.task_id(), Some("0a1b2c3d4e5f"));
        assert_eq!(info.availability_zone.as_deref(), Some("us-east-1b"));
        assert_eq!(info.launch_type.as_deref(), Some("FARGATE"));
        assert_eq!(
            image_tag(info.image.as_deref().unwrap()).as_deref(),
            Some("3f2a1b9")
        );
        assert_eq!(
            info.capacity_provider, None,
            "v4 metadata has no capacity provider"
        );
    }

    #[test]
    fn missing_metadata_fields_stay_unknown() {
        let info = TaskInfo::from_metadata(&json!({"TaskARN": ""}), &json!({}));
        assert_eq!(info, TaskInfo::default());
        assert_eq!(info.task_id(), None);
    }

    #[test]
    fn image_tags_of_registries_with_ports_and_digests() {
        assert_eq!(image_tag("localhost:5000/app").as_deref(), None);
        assert_eq!(image_tag("localhost:5000/app:v2").as_deref(), Some("v2"));
        assert_eq!(
            image_tag("app@sha256:0123456789abcdef0123").as_deref(),
            Some("sha256:0123456789ab")
        );
    }
}

//! The page: what answered this request. Pure functions of a [`Snapshot`], so tests see exactly
//! what a user sees. Secret values never reach a snapshot: only whether each name is set.

use crate::metadata::{image_tag, TaskInfo};
use serde_json::{json, Value};

/// Everything one answer shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub info: TaskInfo,
    pub hostname: Option<String>,
    /// (name, present) for each expected secret, in the order EXPECTED_SECRETS lists them.
    pub secrets: Vec<(String, bool)>,
    pub fallback_image_tag: Option<String>,
    pub uptime_s: u64,
    pub requests: u64,
}

const UNKNOWN: &str = "unknown";

impl Snapshot {
    fn image_tag(&self) -> Option<String> {
        self.info
            .image
            .as_deref()
            .and_then(image_tag)
            .or_else(|| self.fallback_image_tag.clone())
    }

    pub fn json(&self) -> Value {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| UNKNOWN.to_owned());
        let secrets: serde_json::Map<String, Value> = self
            .secrets
            .iter()
            .map(|(name, present)| (name.clone(), Value::Bool(*present)))
            .collect();
        json!({
            "task_id": self.info.task_id().unwrap_or(UNKNOWN),
            "task_arn": or_unknown(&self.info.task_arn),
            "hostname": or_unknown(&self.hostname),
            "availability_zone": or_unknown(&self.info.availability_zone),
            "launch_type": or_unknown(&self.info.launch_type),
            "capacity_provider": or_unknown(&self.info.capacity_provider),
            "capacity_provider_error": self.info.capacity_provider_error,
            "image": or_unknown(&self.info.image),
            "image_tag": self.image_tag().unwrap_or_else(|| UNKNOWN.to_owned()),
            "secrets": secrets,
            "uptime_s": self.uptime_s,
            "requests": self.requests,
        })
    }

    pub fn html(&self) -> String {
        let doc = self.json();
        let row = |label: &str, key: &str| {
            let value = doc.get(key).and_then(Value::as_str).unwrap_or(UNKNOWN);
            format!("<tr><th>{label}</th><td>{}</td></tr>\n", escape(value))
        };
        let mut rows = String::new();
        for (label, key) in [
            ("Task", "task_id"),
            ("Host", "hostname"),
            ("Availability Zone", "availability_zone"),
            ("Launch type", "launch_type"),
            ("Capacity provider", "capacity_provider"),
            ("Image tag", "image_tag"),
        ] {
            rows.push_str(&row(label, key));
        }
        for (name, present) in &self.secrets {
            let state = if *present { "present" } else { "MISSING" };
            rows.push_str(&format!(
                "<tr><th>Secret {}</th><td>{state}</td></tr>\n",
                escape(name)
            ));
        }
        rows.push_str(&format!(
            "<tr><th>Uptime</th><td>{} s</td></tr>\n<tr><th>Requests</th><td>{}</td></tr>\n",
            self.uptime_s, self.requests
        ));
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body><h1>{title}</h1>\n<table>\n{rows}</table>\n\
             <p>Reload: the load balancer spreads requests across the service's tasks. \
             JSON: <a href=\"/?format=json\">/?format=json</a></p></body></html>\n",
            title = escape(&format!("Task {}", self.info.task_id().unwrap_or(UNKNOWN))),
        )
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            info: TaskInfo {
                task_arn: Some("arn:aws:ecs:us-east-1:123456789012:task/prod/abc123".into()),
                availability_zone: Some("us-east-1a".into()),
                launch_type: Some("FARGATE".into()),
                capacity_provider: Some("FARGATE_SPOT".into()),
                image: Some("repo/app:v7".into()),
                ..TaskInfo::default()
            },
            hostname: Some("ip-10-0-1-5<b>".into()),
            secrets: vec![("DB_PASSWORD".into(), true), ("API_KEY".into(), false)],
            fallback_image_tag: None,
            uptime_s: 12,
            requests: 3,
        }
    }

    #[test]
    fn the_json_names_the_task_zone_provider_and_which_secrets_are_set() {
        let doc = snapshot().json();
        assert_eq!(doc["task_id"], "abc123");
        assert_eq!(doc["capacity_provider"], "FARGATE_SPOT");
        assert_eq!(doc["image_tag"], "v7");
        assert_eq!(
            doc["secrets"],
            json!({"DB_PASSWORD": true, "API_KEY": false})
        );
    }

    #[test]
    fn unknown_metadata_reads_unknown_not_an_error() {
        let doc = Snapshot {
            info: TaskInfo::default(),
            ..snapshot()
        }
        .json();
        assert_eq!(doc["task_id"], "unknown");
        assert_eq!(doc["capacity_provider"], "unknown");
        assert_eq!(doc["image_tag"], "unknown");
    }

    #[test]
    fn the_html_escapes_what_it_shows() {
        let html = snapshot().html();
        assert!(
            html.contains("ip-10-0-1-5&lt;b&gt;")
                && html.contains("Secret API_KEY</th><td>MISSING")
        );
        assert!(html.contains("FARGATE_SPOT"));
    }
}

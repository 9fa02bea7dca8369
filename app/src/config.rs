//! The app's settings, all from the environment the task definition gives the container.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not {expected}; {fix}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
        fix: &'static str,
    },
}

/// How the app runs. Every field has a default, so a bare `docker run` works.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `BIND_ADDRESS` (default 0.0.0.0) and `PORT` (default 8080, the task definition's
    /// containerPort).
    pub listen: SocketAddr,
    /// `DRAIN_SECONDS` (default 5): after SIGTERM, how long /health answers 503 while requests
    /// are still served, so the load balancer stops sending before the listener closes.
    pub drain: Duration,
    /// `SHUTDOWN_GRACE_SECONDS` (default 15): then how long in-flight requests may take.
    /// drain + grace must stay under the container's stopTimeout (the templates: 30 s).
    pub grace: Duration,
    /// `EXPECTED_SECRETS`: the names of the environment variables the task definition fills
    /// from SSM (comma-separated). The page says which are present, never their values.
    pub expected_secrets: Vec<String>,
    /// `ECS_CONTAINER_METADATA_URI_V4`, set by Fargate (platform 1.4.0+); None outside ECS.
    pub metadata_uri: Option<String>,
    /// `IMAGE_TAG`: shown when the metadata has no image (e.g. run outside ECS).
    pub image_tag: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any variable lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bind: IpAddr = parse(
            &get,
            "BIND_ADDRESS",
            "0.0.0.0",
            "an IP address",
            "use e.g. 0.0.0.0",
        )?;
        let port: u16 = parse(
            &get,
            "PORT",
            "8080",
            "a TCP port",
            "use 1-65535, the containerPort",
        )?;
        let drain: u64 = parse(&get, "DRAIN_SECONDS", "5", "whole seconds", "use e.g. 5")?;
        let grace: u64 = parse(
            &get,
            "SHUTDOWN_GRACE_SECONDS",
            "15",
            "whole seconds",
            "use e.g. 15",
        )?;
        let expected_secrets = get("EXPECTED_SECRETS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            listen: SocketAddr::new(bind, port),
            drain: Duration::from_secs(drain),
            grace: Duration::from_secs(grace),
            expected_secrets,
            metadata_uri: get("ECS_CONTAINER_METADATA_URI_V4").filter(|uri| !uri.is_empty()),
            image_tag: get("IMAGE_TAG").filter(|tag| !tag.is_empty()),
        })
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    expected: &'static str,
    fix: &'static str,
) -> Result<T, ConfigError> {
    let value = get(name).unwrap_or_else(|| default.to_owned());
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        value,
        expected,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn an_empty_environment_listens_on_8080_with_no_expected_secrets() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
        assert!(s.expected_secrets.is_empty() && s.metadata_uri.is_none());
        assert_eq!((s.drain.as_secs(), s.grace.as_secs()), (5, 15));
    }

    #[test]
    fn expected_secrets_are_a_trimmed_comma_list() {
        let s = settings(&[("EXPECTED_SECRETS", " DB_PASSWORD, ,API_KEY ")]).unwrap();
        assert_eq!(s.expected_secrets, ["DB_PASSWORD", "API_KEY"]);
    }

    #[test]
    fn a_bad_port_names_the_variable_and_the_fix() {
        let error = settings(&[("PORT", "http")]).unwrap_err().to_string();
        assert!(
            error.contains("PORT=\"http\"") && error.contains("containerPort"),
            "{error}"
        );
    }
}

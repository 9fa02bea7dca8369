//! Settings read once from the environment at start-up.

use crate::deliver::UrlPolicy;
use crate::error::Error;
use std::time::Duration;

/// The longest wait between two checks of a pending operation.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How the library runs. Every field has a production default; tests shorten them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Wait between checks of a pending operation (`CUSTOM_RESOURCE_POLL_INTERVAL_MS`, ≤ 5000).
    pub poll_interval: Duration,
    /// Answer (or hand over) this long before the Lambda deadline
    /// (`CUSTOM_RESOURCE_SAFETY_MARGIN_MS`). Capped at a quarter of the invocation's time.
    pub safety_margin: Duration,
    /// Replaces the resource's own operation budget (`CUSTOM_RESOURCE_TIMEOUT_SECONDS`).
    pub timeout_override: Option<Duration>,
    /// Where answers may be sent (`RESPONSE_URL_ALLOWED_PREFIXES`).
    pub url_policy: UrlPolicy,
    /// The DynamoDB table that claims hand-overs, so a duplicated delivery answers once
    /// (`CUSTOM_RESOURCE_HANDOVER_TABLE`; none: duplicates are not detected).
    pub handover_table: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: MAX_POLL_INTERVAL,
            safety_margin: Duration::from_secs(10),
            timeout_override: None,
            url_policy: UrlPolicy::AmazonS3,
            handover_table: None,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let defaults = Self::default();
        let millis = |name: &'static str| -> Result<Option<u64>, Error> {
            match lookup(name) {
                None => Ok(None),
                Some(value) if value.trim().is_empty() => Ok(None),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| Error::Setting {
                        name,
                        value,
                        message: "expected a whole number".into(),
                    }),
            }
        };
        let poll_interval = millis("CUSTOM_RESOURCE_POLL_INTERVAL_MS")?
            .map(Duration::from_millis)
            .unwrap_or(defaults.poll_interval);
        if poll_interval > MAX_POLL_INTERVAL || poll_interval.is_zero() {
            return Err(Error::Setting {
                name: "CUSTOM_RESOURCE_POLL_INTERVAL_MS",
                value: poll_interval.as_millis().to_string(),
                message: "must be between 1 and 5000".into(),
            });
        }
        Ok(Self {
            poll_interval,
            safety_margin: millis("CUSTOM_RESOURCE_SAFETY_MARGIN_MS")?
                .map(Duration::from_millis)
                .unwrap_or(defaults.safety_margin),
            timeout_override: millis("CUSTOM_RESOURCE_TIMEOUT_SECONDS")?.map(Duration::from_secs),
            url_policy: UrlPolicy::from_setting(lookup("RESPONSE_URL_ALLOWED_PREFIXES").as_deref()),
            handover_table: lookup("CUSTOM_RESOURCE_HANDOVER_TABLE")
                .map(|table| table.trim().to_owned())
                .filter(|table| !table.is_empty()),
        })
    }
}

/// Milliseconds since the Unix epoch (0 for times before it): the unit saved in progress.
pub fn epoch_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_poll_every_five_seconds_and_keep_ten_seconds_in_hand() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.poll_interval, Duration::from_secs(5));
        assert_eq!(settings.safety_margin, Duration::from_secs(10));
        assert_eq!(settings.url_policy, UrlPolicy::AmazonS3);
    }

    #[test]
    fn a_poll_interval_above_five_seconds_is_refused() {
        let error = Settings::from_lookup(|name| {
            (name == "CUSTOM_RESOURCE_POLL_INTERVAL_MS").then(|| "6000".to_owned())
        })
        .unwrap_err();
        assert!(error
            .to_string()
            .contains("CUSTOM_RESOURCE_POLL_INTERVAL_MS"));
    }

    #[test]
    fn a_malformed_number_names_the_variable() {
        let error = Settings::from_lookup(|name| {
            (name == "CUSTOM_RESOURCE_SAFETY_MARGIN_MS").then(|| "soon".to_owned())
        })
        .unwrap_err();
        assert!(error
            .to_string()
            .contains("CUSTOM_RESOURCE_SAFETY_MARGIN_MS=\"soon\""));
    }
}

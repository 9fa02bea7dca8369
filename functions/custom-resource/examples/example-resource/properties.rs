//! Properties of `Custom::ExampleParameter`.

use custom_resource::{de, Properties, PropertyError};
use serde::Deserialize;

/// Which request a test knob applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum On {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterProperties {
    /// Required. SSM parameter name. Changing it forces replacement.
    pub name: String,
    /// Required, secret (never logged; returned as NoEcho Data). Stored as a SecureString.
    pub value: String,
    /// Optional. In place.
    #[serde(default)]
    pub description: Option<String>,

    // Test knobs: they let the harness drive every protocol path through a real binary.
    /// Return an error from this request type.
    #[serde(default)]
    pub fail_on: Option<On>,
    /// Panic in this request type.
    #[serde(default)]
    pub panic_on: Option<On>,
    /// Sleep this long inside the handler (a hung API call); ignores the deadline on purpose.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub hang_seconds: Option<u64>,
    /// After Create/Update, report "pending" until this many seconds have passed.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub wait_seconds: Option<u64>,
    /// Add a `Padding` attribute of this many bytes to Data.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub data_bytes: Option<usize>,
    /// Kill the process (no answer) the first time a request runs, recording that in this file:
    /// Lambda's retry of the same event then answers.
    #[serde(default)]
    pub crash_once: Option<String>,
    /// Pad the FailOn error message to this many bytes.
    #[serde(default, deserialize_with = "de::opt_number")]
    pub reason_bytes: Option<usize>,
}

impl Properties for ParameterProperties {
    const SECRET: &'static [&'static str] = &["Value"];

    fn validate(&self) -> Result<(), PropertyError> {
        let name = self.name.as_str();
        if name.is_empty() || name.len() > 1011 {
            return Err(PropertyError::new("Name", "must be 1 to 1011 characters"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
        {
            return Err(PropertyError::new(
                "Name",
                format!("contains {bad:?}; use only letters, digits and _ . - /"),
            ));
        }
        if name.contains('/') && !name.starts_with('/') {
            return Err(PropertyError::new(
                "Name",
                "a hierarchical name must start with /, e.g. /demo/setting",
            ));
        }
        let lower = name.trim_start_matches('/').to_ascii_lowercase();
        if lower.starts_with("aws") || lower.starts_with("ssm") {
            return Err(PropertyError::new(
                "Name",
                "must not start with aws or ssm (reserved by AWS); choose another prefix",
            ));
        }
        if self.value.is_empty() {
            return Err(PropertyError::new("Value", "must not be empty"));
        }
        Ok(())
    }
}

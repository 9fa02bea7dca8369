//! Errors of `spot-fallback`. An error fails the invocation: Lambda retries the event twice, then
//! puts it on the dead-letter queue (the template's DeadLetterConfig).

use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FallbackError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// The function's environment is incomplete (the template sets it).
    #[error("environment variable {name}: {message}")]
    Config { name: &'static str, message: String },

    /// The service is gone or its tags cannot be read.
    #[error("{0}")]
    Service(String),
}

custom_resource::aws_error_helpers!(FallbackError);

/// What Lambda records for a failed invocation (and the dead-letter queue keeps).
impl From<FallbackError> for lambda_runtime::Diagnostic {
    fn from(error: FallbackError) -> Self {
        let kind = match &error {
            FallbackError::Aws(_) => "AwsError",
            FallbackError::Config { .. } => "ConfigError",
            FallbackError::Service(_) => "ServiceError",
        };
        lambda_runtime::Diagnostic {
            error_type: kind.into(),
            error_message: error.to_string(),
        }
    }
}

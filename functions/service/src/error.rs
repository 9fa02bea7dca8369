//! Errors of `Custom::FargateService`.

use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// A property is well-formed but wrong for this account (missing secret, unknown provider…).
    #[error("invalid property {property}: {message}")]
    Property { property: String, message: String },

    /// The deployment failed or was rolled back by the circuit breaker.
    #[error("{0}")]
    Deployment(String),

    /// Steady state was not reached within SteadyStateTimeoutSeconds.
    #[error("{0}")]
    Timeout(String),

    /// An AWS answer lacked a field it always has.
    #[error("{operation}: the response had no {field}")]
    Missing {
        operation: &'static str,
        field: &'static str,
    },
}

custom_resource::aws_error_helpers!(ServiceError, code);

impl ServiceError {
    pub fn property(property: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Property {
            property: property.into(),
            message: message.into(),
        }
    }
}

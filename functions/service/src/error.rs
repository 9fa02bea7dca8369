//! Errors of `Custom::FargateService`.

// SdkError and ProvideErrorMetadata are the same types in every SDK crate.
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error("{operation}: {code}: {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
    },

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

impl ServiceError {
    pub fn aws<E>(operation: &'static str) -> impl FnOnce(SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        move |error| ServiceError::Aws {
            operation,
            code: error.code().unwrap_or("Unknown").to_owned(),
            message: error
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| custom_resource::error::chain(&error)),
        }
    }

    pub fn property(property: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Property {
            property: property.into(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ServiceError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

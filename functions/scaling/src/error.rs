//! Errors of `Custom::ServiceScaling`.

// SdkError and ProvideErrorMetadata are the same types in every SDK crate.
use aws_sdk_applicationautoscaling::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScalingError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error("{operation}: {code}: {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
    },

    /// A property is well-formed but wrong for this account (e.g. a target group without a
    /// load balancer).
    #[error("invalid property {property}: {message}")]
    Property { property: String, message: String },

    /// An AWS answer lacked a field it always has.
    #[error("{operation}: the response had no {field}")]
    Missing {
        operation: &'static str,
        field: &'static str,
    },
}

impl ScalingError {
    pub fn aws<E>(operation: &'static str) -> impl FnOnce(SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        move |error| ScalingError::Aws {
            operation,
            code: error.code().unwrap_or("Unknown").to_owned(),
            message: error
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| custom_resource::error::chain(&error)),
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ScalingError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

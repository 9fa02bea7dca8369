//! Errors of `Custom::ServiceScaling`.

// SdkError and ProvideErrorMetadata are the same types in every SDK crate.
use aws_sdk_applicationautoscaling::error::{ProvideErrorMetadata, SdkError};
use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScalingError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),

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
    pub fn aws<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        move |error| AwsError::of(operation)(error).into()
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Aws(error) => Some(&error.code),
            _ => None,
        }
    }
}

//! Errors of `Custom::EnvironmentPreflight`.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreflightError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// A change the environment cannot take in place; says what to do instead.
    #[error("{0}")]
    Refused(String),

    /// A saved wait could not be read back.
    #[error("resume: {0}")]
    Progress(String),
}

impl PreflightError {
    pub fn aws<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        move |error| AwsError::of(operation)(error).into()
    }
}

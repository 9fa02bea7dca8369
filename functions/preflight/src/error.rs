//! Errors of `Custom::EnvironmentPreflight`.

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

custom_resource::aws_error_helpers!(PreflightError);

//! Errors of the example resource.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExampleError {
    /// An AWS call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The parameter exists and another request made it.
    #[error("SSM parameter {name} already exists and was not created by this resource; choose another Name or delete the parameter")]
    NameTaken { name: String },
    /// A test knob asked for this failure.
    #[error("{0}")]
    Asked(String),
}

impl ExampleError {
    pub fn aws<E>(operation: &'static str, error: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsError::of(operation)(error).into()
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Aws(error) => Some(&error.code),
            _ => None,
        }
    }
}

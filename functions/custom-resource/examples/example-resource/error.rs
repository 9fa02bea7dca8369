//! Errors of the example resource.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExampleError {
    /// An SSM call failed; keeps the operation, code and message.
    #[error("{operation}: {code}: {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
    },
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
        let code = error.code().unwrap_or("Unknown").to_owned();
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| custom_resource::error::chain(&error));
        ExampleError::Aws {
            operation,
            code,
            message,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ExampleError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

//! The library's one error type.

// The same types in every SDK crate; re-exported for `aws_error_helpers!`.
pub use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

/// What can go wrong inside the protocol layer (never inside a handler: handlers have their own
/// error types, rendered into the FAILED reason with their source chain).
#[derive(Debug, Error)]
pub enum Error {
    /// The event is not a CloudFormation custom-resource request.
    #[error("the event is not a CloudFormation custom-resource request: {0}")]
    Event(String),

    /// The response could not be delivered to the pre-signed URL.
    #[error(
        "could not deliver the response to CloudFormation after {attempts} attempt(s): {message}"
    )]
    Delivery { attempts: u32, message: String },

    /// The response URL is not on the allow-list.
    #[error("refused to answer to {url}: it is not allowed by RESPONSE_URL_ALLOWED_PREFIXES ({policy}); set that variable to a comma-separated list of allowed URL prefixes")]
    UrlRefused { url: String, policy: String },

    /// Handing a long wait on to a new invocation failed.
    #[error("could not continue the wait in a new invocation of {function}: {message}")]
    HandOver { function: String, message: String },

    /// The hand-over claim table could not be read or written.
    #[error("could not claim the hand-over in CUSTOM_RESOURCE_HANDOVER_TABLE: {0}")]
    Claim(AwsError),

    /// A setting in the environment is malformed.
    #[error("environment variable {name}={value:?} is invalid: {message}")]
    Setting {
        name: &'static str,
        value: String,
        message: String,
    },
}

/// Renders an error and its whole source chain on one line ("a: b: c"), skipping sources whose
/// text is already contained in the previous message (SDK errors repeat themselves).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// A failed AWS SDK call, as every resource reports it: "operation: code: message".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            code: code.into(),
            message: message.into(),
        }
    }

    /// For `map_err`: `.map_err(AwsError::of("CreateVpc"))`. Works for every SDK crate's errors
    /// (they share `SdkError` and `ProvideErrorMetadata`).
    pub fn of<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        move |error| {
            let code = error.code().unwrap_or("Unknown").to_owned();
            let message = error
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| chain(&error));
            Self {
                operation,
                code,
                message,
            }
        }
    }
}
/// The AWS half of every provider crate's error enum (one home), for an enum with an
/// `Aws(#[from] AwsError)` variant: `Enum::aws(operation)` for `map_err` on any SDK call (keeps
/// the operation, AWS error code and message) and, with `code`, `Enum::code()` (the AWS error code,
/// `None` for the crate's own variants). An enum whose code needs more arms writes `code` itself.
#[macro_export]
macro_rules! aws_error_helpers {
    ($error:ident) => {
        impl $error {
            /// For `map_err`: `.map_err(Self::aws("CreateVpc"))`.
            pub fn aws<E, R>(
                operation: &'static str,
            ) -> impl FnOnce($crate::error::SdkError<E, R>) -> Self
            where
                E: $crate::error::ProvideErrorMetadata + std::error::Error + 'static,
                R: std::fmt::Debug + 'static,
            {
                move |error| $crate::AwsError::of(operation)(error).into()
            }
        }
    };
    ($error:ident, code) => {
        $crate::aws_error_helpers!($error);
        impl $error {
            /// The AWS error code of a failed call; `None` for the crate's own errors.
            pub fn code(&self) -> Option<&str> {
                match self {
                    Self::Aws(error) => Some(&error.code),
                    _ => None,
                }
            }
        }
    };
}

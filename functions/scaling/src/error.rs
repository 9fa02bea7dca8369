//! Errors of `Custom::ServiceScaling`.

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

custom_resource::aws_error_helpers!(ScalingError, code);

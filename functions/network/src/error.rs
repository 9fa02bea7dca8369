//! Errors of `Custom::Network`.

use custom_resource::AwsError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetworkError {
    /// An EC2 call failed; keeps the operation, the AWS error code and message.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// A property is valid on its own but not in this account or region.
    #[error("invalid property {property}: {message}")]
    Property {
        property: &'static str,
        message: String,
    },

    /// Delete found things in the VPC that this resource did not create.
    #[error("cannot delete VPC {vpc_id}: it still holds {blockers}. Delete them (or the resources that own them, e.g. services, load balancers, Lambda functions in the VPC) first, then retry the stack deletion")]
    Blocked { vpc_id: String, blockers: String },

    /// A Create failed after making the VPC: the FAILED answer carries the VPC id so the rollback
    /// Delete removes everything in it.
    #[error("{cause}")]
    AfterVpc {
        vpc_id: String,
        cause: Box<NetworkError>,
    },

    /// A NAT gateway this operation made ended `failed` (EC2 keeps it visible for about an hour,
    /// without its address); a retry with the same token would only return it again.
    #[error("NAT gateway {nat_id} in {az} failed: {code}: {message}. Fix the cause (for InsufficientFreeAddressesInSubnet, free addresses in the public subnet; otherwise see \"Troubleshoot NAT gateways\" in the Amazon VPC guide) and retry the stack operation; a failed NAT gateway costs nothing and EC2 removes it")]
    NatFailed {
        nat_id: String,
        az: String,
        code: String,
        message: String,
    },

    /// EC2 answered without a field it always sends.
    #[error("{operation}: the response had no {field}")]
    Missing {
        operation: &'static str,
        field: &'static str,
    },
}

custom_resource::aws_error_helpers!(NetworkError);

impl NetworkError {
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Aws(error) => Some(&error.code),
            Self::AfterVpc { cause, .. } => cause.code(),
            _ => None,
        }
    }
}

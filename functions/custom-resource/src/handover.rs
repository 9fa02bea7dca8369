//! Handing a long wait on to a new asynchronous invocation of the same function.

use crate::error::Error;
use std::future::Future;

/// Starts a new asynchronous invocation of `function` with `payload`. The Lambda implementation
/// is [`LambdaHandOver`]; tests substitute a recorder.
pub trait HandOver: Send + Sync + 'static {
    fn hand_over(
        &self,
        function: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// `lambda:InvokeFunction` with `InvocationType=Event` (needs that permission on the function
/// itself).
#[derive(Debug, Clone)]
pub struct LambdaHandOver {
    client: aws_sdk_lambda::Client,
}

impl LambdaHandOver {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl HandOver for LambdaHandOver {
    async fn hand_over(&self, function: &str, payload: Vec<u8>) -> Result<(), Error> {
        use aws_sdk_lambda::error::ProvideErrorMetadata;
        let result = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await;
        match result {
            Ok(output) if output.status_code() == 202 => Ok(()),
            Ok(output) => Err(Error::HandOver {
                function: function.to_owned(),
                message: format!(
                    "Invoke answered status {} instead of 202",
                    output.status_code()
                ),
            }),
            Err(error) => Err(Error::HandOver {
                function: function.to_owned(),
                message: format!(
                    "Invoke: {}: {}",
                    error.code().unwrap_or("error"),
                    error
                        .message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| crate::error::chain(&error))
                ),
            }),
        }
    }
}

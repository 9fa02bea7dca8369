//! Handing a long wait on to a new asynchronous invocation of the same function, and making sure
//! each hand-over is acted on once.
//!
//! Lambda delivers an asynchronous invocation at least once: a hand-over can arrive twice, and
//! both copies would poll and answer. The copy that acts first claims the hand-over with a
//! conditional write to a DynamoDB table (`CUSTOM_RESOURCE_HANDOVER_TABLE`): a second copy finds
//! the claim and stops without answering. A claim records the claiming invocation's Lambda request
//! id and holds until its deadline: Lambda's own retry of an invocation that crashed (same request
//! id) takes the claim over at once, any other copy once the deadline has passed (the claimer is
//! gone); a finished invocation marks its claim done, which no copy takes over. Claims expire (DynamoDB TTL) after [`CLAIM_TTL`], well past Lambda's
//! longest event age (6 hours). docs/reliability.md gives the cost and permissions.

use crate::error::{AwsError, Error};
use std::future::Future;
use std::time::Duration;

/// How long a claim is kept (DynamoDB TTL attribute `ExpiresAt`).
pub const CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);

/// Whether this invocation may act on a hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First to claim it (or taking over a lapsed lease): act, then [`HandOver::finish`].
    Won,
    /// Another copy holds or finished it: stop, answer nothing.
    Duplicate,
    /// No claim table is configured: act (duplicates are not detected).
    Unchecked,
}

/// Starts a new asynchronous invocation of `function` with `payload`, and claims a delivered
/// hand-over. The Lambda implementation is [`LambdaHandOver`]; tests substitute a recorder.
pub trait HandOver: Send + Sync + 'static {
    fn hand_over(
        &self,
        function: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Claims hand-over `key` for the invocation with Lambda request id `claimer` until
    /// `lease_until_ms` (its deadline, in milliseconds since the epoch).
    fn claim(
        &self,
        _key: &str,
        _claimer: &str,
        _lease_until_ms: u64,
    ) -> impl Future<Output = Result<Claim, Error>> + Send {
        async { Ok(Claim::Unchecked) }
    }

    /// Marks a won claim done: no later copy may act on it.
    fn finish(&self, _key: &str) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
}

/// `lambda:InvokeFunction` with `InvocationType=Event` (needs that permission on the function
/// itself); claims in DynamoDB (`dynamodb:PutItem` and `dynamodb:UpdateItem` on the table) when a
/// table is configured.
#[derive(Debug, Clone)]
pub struct LambdaHandOver {
    client: aws_sdk_lambda::Client,
    claims: Option<ClaimTable>,
}

/// Where hand-overs are claimed.
#[derive(Debug, Clone)]
pub struct ClaimTable {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl LambdaHandOver {
    pub fn new(client: aws_sdk_lambda::Client, claims: Option<ClaimTable>) -> Self {
        Self { client, claims }
    }
}

/// The claim table's attributes: `Claim` (string, the partition key), `State`, `LeaseUntilMs`,
/// `Claimer` (Lambda request id), `ExpiresAt` (TTL, seconds since the epoch).
pub mod attribute {
    pub const KEY: &str = "Claim";
    pub const STATE: &str = "State";
    pub const LEASE: &str = "LeaseUntilMs";
    pub const CLAIMER: &str = "Claimer";
    pub const EXPIRES: &str = "ExpiresAt";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
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

    async fn claim(&self, key: &str, claimer: &str, lease_until_ms: u64) -> Result<Claim, Error> {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        let Some(claims) = &self.claims else {
            return Ok(Claim::Unchecked);
        };
        let now_ms = crate::config::epoch_ms(std::time::SystemTime::now());
        let expires = now_ms / 1000 + CLAIM_TTL.as_secs();
        let result = claims
            .dynamodb
            .put_item()
            .table_name(&claims.table)
            .item(attribute::KEY, S(key.to_owned()))
            .item(attribute::STATE, S(attribute::RUNNING.to_owned()))
            .item(attribute::LEASE, N(lease_until_ms.to_string()))
            .item(attribute::CLAIMER, S(claimer.to_owned()))
            .item(attribute::EXPIRES, N(expires.to_string()))
            .condition_expression(
                "attribute_not_exists(#key) OR (#state = :running AND (#lease < :now OR #claimer = :claimer))",
            )
            .expression_attribute_names("#key", attribute::KEY)
            .expression_attribute_names("#state", attribute::STATE)
            .expression_attribute_names("#lease", attribute::LEASE)
            .expression_attribute_names("#claimer", attribute::CLAIMER)
            .expression_attribute_values(":claimer", S(claimer.to_owned()))
            .expression_attribute_values(":running", S(attribute::RUNNING.to_owned()))
            .expression_attribute_values(":now", N(now_ms.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Won),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Claim::Duplicate)
            }
            Err(error) => Err(Error::Claim(AwsError::of("PutItem")(error))),
        }
    }

    async fn finish(&self, key: &str) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::AttributeValue::S;
        let Some(claims) = &self.claims else {
            return Ok(());
        };
        claims
            .dynamodb
            .update_item()
            .table_name(&claims.table)
            .key(attribute::KEY, S(key.to_owned()))
            .update_expression("SET #state = :done")
            .expression_attribute_names("#state", attribute::STATE)
            .expression_attribute_values(":done", S(attribute::DONE.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| Error::Claim(AwsError::of("UpdateItem")(error)))
    }
}

//! What a resource implements: create, update, delete and (for long operations) resume.

use crate::properties::Properties;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// Default budget for one operation, waits included: below CloudFormation's default
/// `ServiceTimeout` of 3600 s so the answer always arrives before the stack gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3300);

/// A custom resource. Handlers never see HTTP, response URLs, retries or deadlines: they return an
/// [`Outcome`] or an error and the library answers CloudFormation exactly once.
pub trait Resource: Send + Sync + 'static {
    type Properties: Properties;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Budget for one operation including waits handed on to later invocations. A
    /// `ServiceTimeout` property lowers it; `CUSTOM_RESOURCE_TIMEOUT_SECONDS` overrides it.
    fn timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }

    /// True when the error means "the thing is already gone": a Delete that fails this way is a
    /// success.
    fn is_not_found(&self, _error: &Self::Error) -> bool {
        false
    }

    /// The id of what a failed Create had already made, when the error knows it: the FAILED
    /// answer then carries it, so CloudFormation's rollback Delete removes what was made instead
    /// of a no-op on the create-failed marker.
    fn made_before_failing(&self, _error: &Self::Error) -> Option<String> {
        None
    }

    /// True when every step re-reads what exists and does only what is missing, so a step cut
    /// off at the Lambda deadline can simply run again in a new invocation (instead of answering
    /// FAILED): a slow round of AWS calls (throttling, long backoff) then costs time, not the
    /// stack operation.
    fn steps_rerun_safely(&self) -> bool {
        false
    }

    /// Create the resource. Must be idempotent for a repeated `ctx.request_id`.
    fn create(
        &self,
        ctx: &Context,
        properties: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// Update in place ([`Completion::unchanged`]) or replace ([`Completion::replaced`]); never
    /// delete the old resource here, CloudFormation sends a Delete for it during cleanup.
    fn update(
        &self,
        ctx: &Context,
        physical_id: &str,
        old: &Self::Properties,
        new: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// Delete everything the resource created, in dependency order.
    fn delete(
        &self,
        ctx: &Context,
        physical_id: &str,
        properties: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;

    /// Check again on an operation that returned [`Outcome::Pending`], with the progress it saved.
    /// Called at most every poll interval (≤ 5 s), possibly in a later invocation of the function.
    fn resume(
        &self,
        ctx: &Context,
        request: &Request<Self::Properties>,
        progress: &Value,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;
}

/// The operation being resumed.
#[derive(Debug, Clone)]
pub enum Request<P> {
    Create { properties: P },
    Update { physical_id: String, old: P, new: P },
    Delete { physical_id: String, properties: P },
}

/// Create, Update or Delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

impl std::fmt::Display for RequestType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestType::Create => "Create",
            RequestType::Update => "Update",
            RequestType::Delete => "Delete",
        })
    }
}

/// What a handler knows about the request it serves.
#[derive(Debug, Clone)]
pub struct Context {
    pub request_type: RequestType,
    /// CloudFormation's RequestId: the same on every delivery of one request.
    pub request_id: String,
    pub stack_id: String,
    pub logical_resource_id: String,
    pub resource_type: String,
    /// When the first invocation for this request started (survives hand-overs).
    pub started_at: SystemTime,
    /// How many invocations this request has used so far (1 on the first).
    pub invocation: u32,
}

impl Context {
    /// The stack name, read from the stack id (`arn:...:stack/<name>/<uuid>`).
    pub fn stack_name(&self) -> &str {
        self.stack_id
            .split('/')
            .nth(1)
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.stack_id)
    }

    /// A client token derived from the RequestId, at most `max_len` characters of `[A-Za-z0-9-]`,
    /// so a duplicate delivery of one request cannot create a second resource.
    pub fn idempotency_token(&self, max_len: usize) -> String {
        let cleaned: String = self
            .request_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        cleaned.chars().take(max_len).collect()
    }

    /// Time since the first invocation for this request started.
    pub fn elapsed(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.started_at)
            .unwrap_or_default()
    }
}

/// The result of one handler step.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Finished: answer SUCCESS.
    Done(Completion),
    /// Not finished: call [`Resource::resume`] again later with this progress.
    Pending(Pending),
}

impl Outcome {
    /// Not finished yet. `waiting_for` says what (quoted if the operation times out); `progress`
    /// is handed back to [`Resource::resume`], possibly in another invocation, so it must be JSON.
    pub fn pending(waiting_for: impl Into<String>, progress: impl Serialize) -> Self {
        Outcome::Pending(Pending {
            waiting_for: waiting_for.into(),
            progress: serde_json::to_value(progress).unwrap_or(Value::Null),
            physical_id: None,
            replacement: false,
        })
    }
}

impl From<Completion> for Outcome {
    fn from(completion: Completion) -> Self {
        Outcome::Done(completion)
    }
}

/// An unfinished operation.
#[derive(Debug, Clone)]
pub struct Pending {
    pub waiting_for: String,
    pub progress: Value,
    /// The physical id once something exists: a Create that times out answers FAILED with it,
    /// so the rollback Delete removes what was made; when the operation finishes, a Create (or a
    /// replacement) answers with it.
    pub physical_id: Option<String>,
    /// This Update made a new resource (`physical_id`): it completes as a replacement whatever
    /// the resource's final `Completion` says, so `resume` need not decide it again.
    pub replacement: bool,
}

impl Pending {
    pub fn with_physical_id(mut self, id: impl Into<String>) -> Self {
        self.physical_id = Some(id.into());
        self
    }
}

impl Outcome {
    /// Attaches the physical id to a pending outcome (no-op when done).
    pub fn with_physical_id(self, id: impl Into<String>) -> Self {
        match self {
            Outcome::Pending(pending) => Outcome::Pending(pending.with_physical_id(id)),
            done => done,
        }
    }

    /// A pending Update that made a new resource `id`: the operation completes as its
    /// replacement (decided here, once; carried across hand-overs).
    pub fn replacing(self, id: impl Into<String>) -> Self {
        match self {
            Outcome::Pending(pending) => Outcome::Pending(Pending {
                replacement: true,
                ..pending.with_physical_id(id)
            }),
            done => done,
        }
    }
}

/// How the physical id changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhysicalId {
    /// Keep the event's id (Update in place, Delete).
    Unchanged,
    /// The id of a new resource (Create).
    New(String),
    /// Update made a new resource: CloudFormation will Delete the old id during cleanup.
    Replaced(String),
}

/// A finished operation: the physical id and the attributes (`Fn::GetAtt`) to return.
#[derive(Debug, Clone)]
pub struct Completion {
    pub physical_id: PhysicalId,
    pub data: BTreeMap<String, String>,
    /// Data keys whose values are secret: the response sets NoEcho.
    pub secret_keys: Vec<String>,
}

impl Completion {
    /// A Create finished with this physical id.
    pub fn created(physical_id: impl Into<String>) -> Self {
        Self::with_id(PhysicalId::New(physical_id.into()))
    }

    /// An Update in place or a Delete finished; the physical id stays.
    pub fn unchanged() -> Self {
        Self::with_id(PhysicalId::Unchanged)
    }

    /// An Update replaced the resource with a new one.
    pub fn replaced(new_physical_id: impl Into<String>) -> Self {
        Self::with_id(PhysicalId::Replaced(new_physical_id.into()))
    }

    fn with_id(physical_id: PhysicalId) -> Self {
        Self {
            physical_id,
            data: BTreeMap::new(),
            secret_keys: Vec::new(),
        }
    }

    /// Adds an attribute readable with `Fn::GetAtt`.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Adds a secret attribute: the response sets NoEcho so stack events mask it.
    pub fn secret_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.secret_keys.push(key.clone());
        self.data.insert(key, value.into());
        self
    }
}

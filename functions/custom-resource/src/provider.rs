//! The protocol driver: one event in, exactly one answer out (or one hand-over).
//!
//! Every path through [`Provider::handle`] ends in one of three ways: a single PUT to the response
//! URL, a single hand-over to a new invocation that will answer instead, or (when the event has no
//! usable ResponseURL) no answer at all because there is nowhere to send one. See
//! `docs/architecture.md` for the invariants and the tests that hold them.

use crate::config::{epoch_ms, Settings};
use crate::deliver::Deliver;
use crate::error::{chain, Error};
use crate::handover::{Claim, HandOver};
use crate::properties::{self, Properties};
use crate::resource::{
    Completion, Context, Outcome, Pending, PhysicalId, Request, RequestType, Resource,
};
use crate::response::{self, Answer, Ids};
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::{error, info, warn, Instrument};

/// The longest a claim-table call may take before the invocation goes on without it.
const CLAIM_CALL_LIMIT: Duration = Duration::from_secs(10);

/// The time this invocation has from `started` to its deadline.
fn invocation_time(invocation: &Invocation, started: Instant) -> Duration {
    invocation.deadline.saturating_duration_since(started)
}

/// Top-level key the library adds to an event it hands on to a new invocation.
pub const CONTINUATION_KEY: &str = "CustomResourceContinuation";

/// State carried from one invocation to the next during a long operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Continuation {
    /// The resource's saved progress, given back to `resume`.
    pub progress: Value,
    /// Number of the invocation this continuation starts (2 for the first hand-over).
    pub invocation: u32,
    /// When the first invocation started, in milliseconds since the epoch.
    pub started_at_ms: u64,
    /// What the operation was waiting for.
    pub waiting_for: String,
    /// The physical id, once the resource reported one.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    /// The last step was cut off at the deadline before it reported progress: start the
    /// operation again (resources whose steps re-run safely only).
    #[serde(default)]
    pub restart: bool,
    /// The Update made a new resource (`physical_resource_id`): it completes as a replacement.
    #[serde(default)]
    pub replacement: bool,
}

/// The Lambda invocation serving the event.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When Lambda will stop the function.
    pub deadline: Instant,
    /// This function's ARN (used to hand a long wait on to a new invocation of itself).
    pub function_arn: String,
    /// Lambda's request id: the same for Lambda's own retries of one invocation.
    pub request_id: String,
}

impl Invocation {
    /// From the runtime's deadline in milliseconds since the epoch (0 or past: assume the
    /// 15-minute maximum rather than answering at once).
    pub fn from_deadline_ms(deadline_ms: u64, function_arn: String, request_id: String) -> Self {
        let now_ms = epoch_ms(SystemTime::now());
        let remaining = if deadline_ms > now_ms {
            Duration::from_millis(deadline_ms - now_ms)
        } else {
            Duration::from_secs(900)
        };
        Self {
            deadline: Instant::now() + remaining,
            function_arn,
            request_id,
        }
    }
}

/// How an event was handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// One answer was sent (or its delivery failed after retries: `delivered` says which).
    Answered { answer: Answer, delivered: bool },
    /// The operation continues in a new invocation, which will answer.
    HandedOver { invocation: u32 },
    /// The event has no ResponseURL, or one off the allow-list: nothing was done, nothing sent.
    Refused,
    /// A second delivery of a hand-over another invocation claimed: nothing done, nothing sent.
    Duplicate,
}

/// The protocol driver for one resource.
pub struct Provider<R, D, H> {
    resource: Arc<R>,
    deliver: D,
    hand_over: H,
    settings: Settings,
}

enum Step {
    Start,
    Resume(Value),
}

/// This invocation's clock, computed once: when it started, the margin kept before the Lambda
/// deadline, when the answer must be decided by, and when retries of its PUT must stop.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    started: Instant,
    margin: Duration,
    answer_by: Instant,
    give_up_at: Instant,
}

impl Deadlines {
    fn new(invocation: &Invocation, started: Instant, safety_margin: Duration) -> Self {
        let margin = safety_margin.min(invocation_time(invocation, started) / 4);
        Self {
            started,
            margin,
            answer_by: invocation.deadline - margin,
            // Retries of the PUT may use the margin, but not the last 200 ms.
            give_up_at: invocation.deadline - margin.min(Duration::from_millis(200)),
        }
    }
}

/// One operation while this invocation drives it.
struct Run {
    ctx: Context,
    /// The event's physical id (Update, Delete).
    physical_id: Option<String>,
    budget: Duration,
    /// When the operation's budget (ServiceTimeout or the resource's default) runs out.
    op_deadline: Instant,
    deadlines: Deadlines,
    /// What a failure answers with: the event's id, or for Create the id the resource reported
    /// while pending, or the create-failed marker.
    failure_id: String,
    /// The physical id a pending operation reported, carried across hand-overs.
    reported_id: Option<String>,
    /// A pending Update declared it made a new resource (`reported_id`).
    replacement: bool,
    /// The last progress reported and what it waits for: what a step cut off at the deadline
    /// hands over (none yet: start again).
    last_progress: Option<(Value, String)>,
}

impl Run {
    /// The completion as the operation declared it while pending: a Create, or an Update that
    /// made a new resource, finishes with the id it reported, whatever the final step returns.
    fn as_declared(&self, mut completion: Completion) -> Completion {
        match (self.ctx.request_type, &self.reported_id) {
            (RequestType::Update, Some(id)) if self.replacement => {
                completion.physical_id = PhysicalId::Replaced(id.clone());
            }
            (RequestType::Create, Some(id)) if completion.physical_id == PhysicalId::Unchanged => {
                completion.physical_id = PhysicalId::New(id.clone());
            }
            _ => {}
        }
        completion
    }

    fn failed(&self, reason: String) -> Decision {
        Decision::Answer(Answer::failed(self.failure_id.clone(), reason))
    }

    fn timed_out(&self, what: &str) -> Decision {
        self.failed(format!(
            "{} timed out after {} s (budget {} s, from ServiceTimeout or the resource's default): {what}",
            self.ctx.request_type,
            self.ctx.elapsed().as_secs(),
            self.budget.as_secs()
        ))
    }

    /// What the next invocation needs to go on.
    fn carry(&self, progress: Value, waiting_for: String, restart: bool) -> Continuation {
        Continuation {
            progress,
            invocation: self.ctx.invocation.saturating_add(1),
            started_at_ms: epoch_ms(self.ctx.started_at),
            waiting_for,
            physical_resource_id: self.reported_id.clone(),
            restart,
            replacement: self.replacement,
        }
    }
}

/// What the event asks for, its properties still raw. An Update always carries its old
/// properties: there is no way to make one without them.
enum Asked {
    Create {
        raw: Value,
    },
    Update {
        physical_id: String,
        raw: Value,
        raw_old: Value,
    },
    Delete {
        physical_id: String,
        raw: Value,
    },
}

impl Asked {
    /// Decodes the event once; a malformed one gets the FAILED answer it deserves.
    fn decode(event: &Value, ids: &Ids) -> Result<(Asked, String), Answer> {
        // For the FAILED answer to a malformed event: its own id, or the create-failed marker.
        let failure_id = event
            .get("PhysicalResourceId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| response::create_failed_id(&ids.request_id));
        let request: CloudFormationCustomResourceRequest<Value, Value> =
            serde_json::from_value(event.clone()).map_err(|problem| {
                Answer::failed(failure_id, Error::Event(problem.to_string()).to_string())
            })?;
        Ok(match request {
            CloudFormationCustomResourceRequest::Create(create) => (
                Asked::Create {
                    raw: create.resource_properties,
                },
                create.resource_type,
            ),
            CloudFormationCustomResourceRequest::Update(update) => (
                Asked::Update {
                    physical_id: update.physical_resource_id,
                    raw: update.resource_properties,
                    raw_old: update.old_resource_properties,
                },
                update.resource_type,
            ),
            CloudFormationCustomResourceRequest::Delete(delete) => (
                Asked::Delete {
                    physical_id: delete.physical_resource_id,
                    raw: delete.resource_properties,
                },
                delete.resource_type,
            ),
            _ => {
                return Err(Answer::failed(
                    response::create_failed_id(&ids.request_id),
                    "unsupported RequestType: expected Create, Update or Delete",
                ))
            }
        })
    }

    fn request_type(&self) -> RequestType {
        match self {
            Asked::Create { .. } => RequestType::Create,
            Asked::Update { .. } => RequestType::Update,
            Asked::Delete { .. } => RequestType::Delete,
        }
    }

    fn physical_id(&self) -> Option<&str> {
        match self {
            Asked::Create { .. } => None,
            Asked::Update { physical_id, .. } | Asked::Delete { physical_id, .. } => {
                Some(physical_id)
            }
        }
    }

    fn raw(&self) -> &Value {
        match self {
            Asked::Create { raw } | Asked::Update { raw, .. } | Asked::Delete { raw, .. } => raw,
        }
    }

    /// The typed request, or the FAILED reason naming the property that does not parse.
    fn parse<P: Properties>(self) -> Result<Request<P>, String> {
        let parse =
            |raw: &Value| properties::parse::<P>(raw).map_err(|problem| problem.to_string());
        Ok(match self {
            Asked::Create { raw } => Request::Create {
                properties: parse(&raw)?,
            },
            Asked::Update {
                physical_id,
                raw,
                raw_old,
            } => {
                let new = parse(&raw)?;
                let old = parse(&raw_old).map_err(|problem| {
                    format!("OldResourceProperties: {problem} (the previous properties no longer parse)")
                })?;
                Request::Update {
                    physical_id,
                    old,
                    new,
                }
            }
            Asked::Delete { physical_id, raw } => Request::Delete {
                physical_id,
                properties: parse(&raw)?,
            },
        })
    }
}

enum StepResult<E> {
    Finished(Result<Outcome, E>),
    Panicked(String),
    DeadlineReached,
}

/// The event, read in one pass: whom an answer is for (its ids, read even from a malformed
/// event), where it goes, the continuation a hand-over carried, and the request itself (or the
/// FAILED answer a malformed one gets).
struct Envelope {
    /// The event as delivered, less the continuation: what a hand-over sends on.
    event: Value,
    ids: Ids,
    url: Option<String>,
    continuation: Option<Continuation>,
    asked: Result<(Asked, String), Answer>,
}

impl Envelope {
    fn read(mut event: Value) -> Self {
        let continuation = event
            .as_object_mut()
            .and_then(|map| map.remove(CONTINUATION_KEY))
            .and_then(|value| serde_json::from_value(value).ok());
        let ids = Ids {
            request_id: text(&event, "RequestId"),
            stack_id: text(&event, "StackId"),
            logical_resource_id: text(&event, "LogicalResourceId"),
        };
        let url = event
            .get("ResponseURL")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let asked = Asked::decode(&event, &ids);
        Envelope {
            event,
            ids,
            url,
            continuation,
            asked,
        }
    }
}

impl<R: Resource, D: Deliver, H: HandOver> Provider<R, D, H> {
    pub fn new(resource: R, deliver: D, hand_over: H, settings: Settings) -> Self {
        Self {
            resource: Arc::new(resource),
            deliver,
            hand_over,
            settings,
        }
    }

    /// Handles one event. Never panics on any input; the answer (if any) has been sent when this
    /// returns.
    pub async fn handle(&self, event: Value, invocation: Invocation) -> Handled {
        let request_type = text(&event, "RequestType");
        let span = tracing::info_span!(
            "custom_resource",
            request_type = %request_type,
            logical_id = %text(&event, "LogicalResourceId"),
            request_id = %text(&event, "RequestId"),
            physical_id = %text(&event, "PhysicalResourceId"),
            resource_type = %text(&event, "ResourceType"),
        );
        self.handle_inner(Envelope::read(event), invocation)
            .instrument(span)
            .await
    }

    async fn handle_inner(&self, envelope: Envelope, invocation: Invocation) -> Handled {
        let started = Instant::now();
        let Some(url) = envelope.url.clone() else {
            error!(outcome = "UNANSWERABLE", "the event has no ResponseURL, so no answer can be sent; is this function invoked by something other than CloudFormation?");
            return Handled::Refused;
        };
        if !self.settings.url_policy.allows(&url) {
            let refusal = Error::UrlRefused {
                url: url.clone(),
                policy: self.settings.url_policy.describe(),
            };
            error!(outcome = "REFUSED", error = %refusal, "response URL refused; nothing done, nothing sent");
            return Handled::Refused;
        }
        let claimed = match &envelope.continuation {
            Some(carried) => match self
                .claim(&envelope.ids, carried, &invocation, started)
                .await
            {
                Some(key) => Some(key),
                None => return Handled::Duplicate,
            },
            None => None,
        };
        let handled = self
            .decide_and_send(envelope, &url, &invocation, started)
            .await;
        if let Some(Some(key)) = claimed {
            let left = invocation
                .deadline
                .saturating_duration_since(Instant::now());
            let finished =
                tokio::time::timeout(left.min(CLAIM_CALL_LIMIT), self.hand_over.finish(&key));
            match finished.await {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => warn!(error = %problem, "could not mark the hand-over claim done; a late duplicate delivery could act on it again"),
                Err(_) => warn!("marking the hand-over claim done took too long; a late duplicate delivery could act on it again"),
            }
        }
        handled
    }

    /// Claims a delivered hand-over. `None`: a duplicate, stop. `Some(None)`: act, nothing to
    /// finish (no claim table, or it failed: acting risks a second answer, not answering hangs
    /// the stack). `Some(Some(key))`: act, then finish `key`.
    async fn claim(
        &self,
        ids: &Ids,
        carried: &Continuation,
        invocation: &Invocation,
        started: Instant,
    ) -> Option<Option<String>> {
        let key = format!(
            "{}|{}|{}|{}",
            ids.stack_id, ids.logical_resource_id, ids.request_id, carried.invocation
        );
        let lease_ms = invocation
            .deadline
            .saturating_duration_since(started)
            .as_millis() as u64;
        let lease_until_ms = epoch_ms(SystemTime::now()) + lease_ms;
        // Bounded: a claim table that does not answer must not cost the invocation its answer.
        let limit = (invocation_time(invocation, started) / 5).min(CLAIM_CALL_LIMIT);
        let claimed = tokio::time::timeout(
            limit,
            self.hand_over
                .claim(&key, &invocation.request_id, lease_until_ms),
        );
        match claimed.await.unwrap_or_else(|_| {
            Err(Error::Claim(crate::error::AwsError::new(
                "PutItem",
                "Timeout",
                format!("no answer within {} ms", limit.as_millis()),
            )))
        }) {
            Ok(Claim::Won) => Some(Some(key)),
            Ok(Claim::Unchecked) => Some(None),
            Ok(Claim::Duplicate) => {
                warn!(outcome = "DUPLICATE", invocation = carried.invocation, "a second delivery of a hand-over that another invocation claimed: nothing done, nothing sent");
                None
            }
            Err(problem) => {
                warn!(error = %problem, "could not claim the hand-over; continuing (a duplicate delivery, if any, could answer twice)");
                Some(None)
            }
        }
    }

    async fn decide_and_send(
        &self,
        envelope: Envelope,
        url: &str,
        invocation: &Invocation,
        started: Instant,
    ) -> Handled {
        let Envelope {
            event,
            ids,
            continuation,
            asked,
            ..
        } = envelope;
        let deadlines = Deadlines::new(invocation, started, self.settings.safety_margin);
        let answer = match self
            .decide(&event, asked, &ids, continuation, invocation, &deadlines)
            .await
        {
            Decision::Answer(answer) => answer,
            Decision::HandedOver(invocation) => {
                info!(
                    outcome = "HANDED_OVER",
                    next_invocation = invocation,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "still waiting; continued in a new invocation, which will answer"
                );
                return Handled::HandedOver { invocation };
            }
        };
        self.send(url, &ids, answer, &deadlines).await
    }

    async fn send(&self, url: &str, ids: &Ids, answer: Answer, deadlines: &Deadlines) -> Handled {
        let (started, give_up_at) = (deadlines.started, deadlines.give_up_at);
        let (body, sent) = response::render(&answer, ids);
        let body_bytes = body.len();
        match self.deliver.deliver(url, body, give_up_at).await {
            Ok(attempts) => {
                info!(
                    outcome = sent.status(),
                    physical_id = %sent.physical_id,
                    reason = sent.reason.as_deref().unwrap_or(""),
                    body_bytes,
                    attempts,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "answered CloudFormation"
                );
                Handled::Answered {
                    answer: sent,
                    delivered: true,
                }
            }
            Err(failure) => {
                error!(
                    outcome = sent.status(),
                    physical_id = %sent.physical_id,
                    error = %failure,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "could not deliver the answer to CloudFormation"
                );
                Handled::Answered {
                    answer: sent,
                    delivered: false,
                }
            }
        }
    }

    async fn decide(
        &self,
        event: &Value,
        asked: Result<(Asked, String), Answer>,
        ids: &Ids,
        continuation: Option<Continuation>,
        invocation: &Invocation,
        deadlines: &Deadlines,
    ) -> Decision {
        let (asked, resource_type) = match asked {
            Ok(decoded) => decoded,
            Err(answer) => return Decision::Answer(answer),
        };
        let request_type = asked.request_type();
        tracing::debug!(properties = %properties::redacted(asked.raw(), R::Properties::SECRET), "request");

        // What a failure answers with: the event's id, or for Create the id the resource reported
        // while pending, or the create-failed marker.
        let failure_id = asked
            .physical_id()
            .map(str::to_owned)
            .or_else(|| {
                continuation
                    .as_ref()
                    .and_then(|c| c.physical_resource_id.clone())
            })
            .unwrap_or_else(|| response::create_failed_id(&ids.request_id));
        let failed =
            |id: &str, reason: String| Decision::Answer(Answer::failed(id.to_owned(), reason));

        if let Some(id) = asked
            .physical_id()
            .filter(|id| request_type == RequestType::Delete && response::is_create_failed_id(id))
        {
            info!(
                "Delete of a resource whose Create failed: nothing was created, nothing to delete"
            );
            return Decision::Answer(Answer::success(id.to_owned(), Default::default(), false));
        }
        let physical_id = asked.physical_id().map(str::to_owned);
        let budget = self.budget(asked.raw());
        let request = match asked.parse::<R::Properties>() {
            Ok(request) => Arc::new(request),
            Err(reason) => return failed(&failure_id, reason),
        };

        let started_at = continuation
            .as_ref()
            .map(|c| UNIX_EPOCH + Duration::from_millis(c.started_at_ms))
            .unwrap_or_else(SystemTime::now);
        let ctx = Context {
            request_type,
            request_id: ids.request_id.clone(),
            stack_id: ids.stack_id.clone(),
            logical_resource_id: ids.logical_resource_id.clone(),
            resource_type,
            started_at,
            invocation: continuation.as_ref().map(|c| c.invocation).unwrap_or(1),
        };
        let op_deadline = deadlines.started + budget.saturating_sub(ctx.elapsed());
        let step = match &continuation {
            Some(carried) if !carried.restart => Step::Resume(carried.progress.clone()),
            _ => Step::Start,
        };
        let run = Run {
            replacement: continuation.as_ref().is_some_and(|c| c.replacement),
            reported_id: continuation.and_then(|c| c.physical_resource_id),
            ctx,
            physical_id,
            budget,
            op_deadline,
            deadlines: *deadlines,
            failure_id,
            last_progress: None,
        };
        self.drive(event, invocation, &request, run, step).await
    }

    /// Runs steps until the operation is done, fails, or continues in a new invocation.
    async fn drive(
        &self,
        event: &Value,
        invocation: &Invocation,
        request: &Arc<Request<R::Properties>>,
        mut run: Run,
        mut step: Step,
    ) -> Decision {
        loop {
            let cutoff = run.deadlines.answer_by.min(run.op_deadline);
            let result = self.run_step(&run.ctx, request, step, cutoff).await;
            let outcome = match self.finished(event, invocation, &mut run, result).await {
                Ok(outcome) => outcome,
                Err(decision) => return decision,
            };
            match outcome {
                Outcome::Done(completion) => {
                    return self.completed(
                        run.ctx.request_type,
                        run.physical_id.as_deref(),
                        run.as_declared(completion),
                    );
                }
                Outcome::Pending(pending) => {
                    match self.wait(event, invocation, &mut run, pending).await {
                        Ok(next) => step = next,
                        Err(decision) => return decision,
                    }
                }
            }
        }
    }

    /// The outcome of a step that finished, or the decision for one that failed, panicked or
    /// was cut off at the deadline.
    async fn finished(
        &self,
        event: &Value,
        invocation: &Invocation,
        run: &mut Run,
        result: StepResult<R::Error>,
    ) -> Result<Outcome, Decision> {
        let request_type = run.ctx.request_type;
        match result {
            StepResult::Finished(Ok(outcome)) => Ok(outcome),
            StepResult::Finished(Err(problem)) => {
                if request_type == RequestType::Delete && self.resource.is_not_found(&problem) {
                    info!(error = %chain(&problem), "already gone: Delete succeeds");
                    return Err(Decision::Answer(Answer::success(
                        run.failure_id.clone(),
                        Default::default(),
                        false,
                    )));
                }
                if request_type == RequestType::Create {
                    if let Some(made) = self.resource.made_before_failing(&problem) {
                        run.failure_id = made;
                    }
                }
                Err(run.failed(format!("{request_type} failed: {}", chain(&problem))))
            }
            StepResult::Panicked(message) => {
                error!(panic = %message, "the handler panicked");
                Err(run.failed(format!("{request_type} failed: the handler panicked: {message}. This is a bug in the resource provider; the function's logs have the backtrace")))
            }
            StepResult::DeadlineReached if Instant::now() >= run.op_deadline => {
                let what = match &run.last_progress {
                    Some((_, waiting_for)) => format!("still waiting for {waiting_for}"),
                    None => "a step was still running".to_owned(),
                };
                Err(run.timed_out(&what))
            }
            StepResult::DeadlineReached if self.resource.steps_rerun_safely() => {
                let (progress, waiting_for) = run.last_progress.clone().unwrap_or_else(|| {
                    (
                        Value::Null,
                        format!("the {request_type} step cut off at the deadline"),
                    )
                });
                warn!(waiting_for = %waiting_for, "the step was still running near the deadline; it runs again in a new invocation");
                let restart = progress.is_null();
                let carried = run.carry(progress, waiting_for, restart);
                Err(self
                    .continue_in_next(event, invocation, carried, request_type, &run.failure_id)
                    .await)
            }
            StepResult::DeadlineReached => {
                let timeout = invocation
                    .deadline
                    .saturating_duration_since(run.deadlines.started);
                Err(run.failed(format!(
                    "{request_type} timed out: the handler was still running {:.1} s before the Lambda deadline (this invocation had {:.1} s), so it was stopped to answer in time. Raise the function's Timeout, or check what the handler waits on",
                    run.deadlines.margin.as_secs_f64(),
                    timeout.as_secs_f64()
                )))
            }
        }
    }

    /// After a pending outcome: the next step after one poll interval, or a hand-over when the
    /// next check would not fit in this invocation, or FAILED when the budget is spent.
    async fn wait(
        &self,
        event: &Value,
        invocation: &Invocation,
        run: &mut Run,
        pending: Pending,
    ) -> Result<Step, Decision> {
        run.replacement |= pending.replacement;
        if let Some(id) = &pending.physical_id {
            run.reported_id = Some(id.clone());
            if run.ctx.request_type == RequestType::Create {
                run.failure_id = id.clone();
            }
        }
        let now = Instant::now();
        if now >= run.op_deadline {
            return Err(run.timed_out(&format!("still waiting for {}", pending.waiting_for)));
        }
        let next_check = (now + self.settings.poll_interval).min(run.op_deadline);
        // Hand over unless the next check and one more step fit before answer_by.
        if next_check + run.deadlines.margin >= run.deadlines.answer_by {
            let carried = run.carry(pending.progress, pending.waiting_for, false);
            let request_type = run.ctx.request_type;
            return Err(self
                .continue_in_next(event, invocation, carried, request_type, &run.failure_id)
                .await);
        }
        info!(waiting_for = %pending.waiting_for, "pending; checking again");
        run.last_progress = Some((pending.progress.clone(), pending.waiting_for));
        tokio::time::sleep_until(next_check).await;
        Ok(Step::Resume(pending.progress))
    }

    /// Hands the operation on to a new invocation carrying `carried` (FAILED if Lambda refuses).
    async fn continue_in_next(
        &self,
        event: &Value,
        invocation: &Invocation,
        carried: Continuation,
        request_type: RequestType,
        failure_id: &str,
    ) -> Decision {
        let next = carried.invocation;
        let waiting_for = carried.waiting_for.clone();
        if next == u32::MAX {
            // Only a forged continuation gets here; numbering must not wrap (claims key on it).
            return Decision::Answer(Answer::failed(
                failure_id.to_owned(),
                format!("{request_type} failed while waiting for {waiting_for}: the continuation's invocation number is at its limit ({next}); the event was not sent by this provider"),
            ));
        }
        let mut payload = event.clone();
        if let Some(map) = payload.as_object_mut() {
            map.insert(
                CONTINUATION_KEY.to_owned(),
                serde_json::to_value(&carried).unwrap_or(Value::Null),
            );
        }
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        match self.hand_over.hand_over(&invocation.function_arn, bytes).await {
            Ok(()) => Decision::HandedOver(next),
            Err(problem) => Decision::Answer(Answer::failed(
                failure_id.to_owned(),
                format!("{request_type} failed while waiting for {waiting_for}: {problem}. Allow the function lambda:InvokeFunction on itself"),
            )),
        }
    }

    fn budget(&self, raw: &Value) -> Duration {
        let mut budget = self
            .settings
            .timeout_override
            .unwrap_or_else(|| self.resource.timeout());
        let service_timeout = raw.get("ServiceTimeout").and_then(|value| match value {
            Value::String(text) => text.trim().parse::<u64>().ok(),
            other => other.as_u64(),
        });
        if let Some(seconds) = service_timeout {
            // Answer before CloudFormation stops waiting: keep a tenth in hand, 2 to 30 s.
            let keep = (seconds / 10).clamp(2, 30);
            budget = budget.min(Duration::from_secs(seconds.saturating_sub(keep).max(1)));
        }
        budget
    }

    async fn run_step(
        &self,
        ctx: &Context,
        request: &Arc<Request<R::Properties>>,
        step: Step,
        answer_by: Instant,
    ) -> StepResult<R::Error> {
        let resource = Arc::clone(&self.resource);
        let ctx = ctx.clone();
        let request = Arc::clone(request);
        // A spawned task turns a panic into a JoinError instead of unwinding through us; it
        // carries the request's span so the handler's own logs name the request.
        let span = tracing::Span::current();
        let task = tokio::spawn(
            async move {
                match step {
                    Step::Start => match &*request {
                        Request::Create { properties } => resource.create(&ctx, properties).await,
                        Request::Update {
                            physical_id,
                            old,
                            new,
                        } => resource.update(&ctx, physical_id, old, new).await,
                        Request::Delete {
                            physical_id,
                            properties,
                        } => resource.delete(&ctx, physical_id, properties).await,
                    },
                    Step::Resume(progress) => resource.resume(&ctx, &request, &progress).await,
                }
            }
            .instrument(span),
        );
        let abort = task.abort_handle();
        tokio::select! {
            joined = task => match joined {
                Ok(result) => StepResult::Finished(result),
                Err(join) if join.is_panic() => StepResult::Panicked(panic_message(join.into_panic())),
                Err(join) => StepResult::Panicked(format!("the handler task ended abnormally: {join}")),
            },
            _ = tokio::time::sleep_until(answer_by) => {
                abort.abort();
                StepResult::DeadlineReached
            }
        }
    }

    fn completed(
        &self,
        request_type: RequestType,
        event_id: Option<&str>,
        completion: Completion,
    ) -> Decision {
        let no_echo = !completion.secret_keys.is_empty();
        let physical_id = match (request_type, completion.physical_id, event_id) {
            (RequestType::Create, PhysicalId::New(id) | PhysicalId::Replaced(id), _) => id,
            (RequestType::Create, PhysicalId::Unchanged, _) => {
                return Decision::Answer(Answer::failed(
                    crate::response::MISSING_PHYSICAL_ID.into(),
                    "Create finished without a physical id; this is a bug in the resource (return Completion::created)",
                ))
            }
            (RequestType::Update, PhysicalId::Replaced(new), Some(old)) if new != old => {
                warn!(old_physical_id = %old, new_physical_id = %new, "replacement: CloudFormation will delete the old resource during cleanup");
                new
            }
            (_, PhysicalId::New(new), Some(old)) if new != old => {
                warn!(returned = %new, kept = %old, "the resource returned a new physical id without declaring a replacement; keeping the event's id");
                old.to_owned()
            }
            (_, _, Some(old)) => old.to_owned(),
            (_, PhysicalId::New(id) | PhysicalId::Replaced(id), None) => id,
            (_, PhysicalId::Unchanged, None) => String::new(),
        };
        Decision::Answer(Answer::success(physical_id, completion.data, no_echo))
    }
}

enum Decision {
    Answer(Answer),
    HandedOver(u32),
}

fn text(event: &Value, key: &str) -> String {
    event
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update_event() -> Value {
        json!({
            "RequestType": "Update", "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1", "RequestId": "r-1",
            "LogicalResourceId": "Thing", "PhysicalResourceId": "thing-1", "ResourceType": "Custom::Thing",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", "Size": "2"},
            "OldResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", "Size": "1"},
        })
    }

    #[test]
    fn one_pass_reads_the_ids_the_url_the_continuation_and_the_request() {
        let mut event = update_event();
        event[CONTINUATION_KEY] = json!({"Invocation": 2, "StartedAtMs": 5, "Progress": {"step": 1},
                                         "WaitingFor": "steady state", "Restart": false});
        let envelope = Envelope::read(event);
        assert_eq!(envelope.ids.request_id, "r-1");
        assert_eq!(envelope.ids.logical_resource_id, "Thing");
        assert!(envelope
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")));
        let Ok((
            Asked::Update {
                physical_id,
                raw,
                raw_old,
            },
            resource_type,
        )) = envelope.asked
        else {
            panic!("an Update with its old properties decodes as one");
        };
        assert_eq!(
            (physical_id.as_str(), resource_type.as_str()),
            ("thing-1", "Custom::Thing")
        );
        assert_eq!(
            (raw["Size"].as_str(), raw_old["Size"].as_str()),
            (Some("2"), Some("1"))
        );
        let carried = envelope
            .continuation
            .expect("the hand-over's continuation is read");
        assert_eq!(
            (carried.invocation, carried.waiting_for.as_str()),
            (2, "steady state")
        );
    }

    #[test]
    fn an_update_without_old_properties_cannot_be_decoded_and_its_answer_keeps_the_id() {
        let mut event = update_event();
        event
            .as_object_mut()
            .unwrap()
            .remove("OldResourceProperties");
        let envelope = Envelope::read(event);
        let Err(answer) = envelope.asked else {
            panic!("an Update without OldResourceProperties must not decode");
        };
        let (body, sent) = response::render(&answer, &envelope.ids);
        assert_eq!(sent.physical_id, "thing-1");
        assert!(
            String::from_utf8_lossy(&body).contains("OldResourceProperties"),
            "{body:?}"
        );
    }

    #[test]
    fn an_event_without_a_response_url_is_read_with_no_url() {
        let mut event = update_event();
        event.as_object_mut().unwrap().remove("ResponseURL");
        assert!(Envelope::read(event).url.is_none());
    }
}

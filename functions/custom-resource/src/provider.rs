//! The protocol engine: one event in, exactly one answer out (or one hand-over).
//!
//! Every path through [`Provider::handle`] ends in one of three ways: a single PUT to the response
//! URL, a single hand-over to a new invocation that will answer instead, or (when the event has no
//! usable ResponseURL) no answer at all because there is nowhere to send one. See
//! `docs/architecture.md` for the invariants and the tests that hold them.

use crate::config::Settings;
use crate::deliver::Deliver;
use crate::error::{chain, Error};
use crate::handover::{Claim, HandOver};
use crate::properties::{self, Properties};
use crate::resource::{Completion, Context, Outcome, PhysicalId, Request, RequestType, Resource};
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

/// The protocol engine for one resource.
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

enum StepResult<E> {
    Finished(Result<Outcome, E>),
    Panicked(String),
    DeadlineReached,
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
        self.handle_inner(event, invocation).instrument(span).await
    }

    async fn handle_inner(&self, mut event: Value, invocation: Invocation) -> Handled {
        let started = Instant::now();
        let continuation: Option<Continuation> = event
            .as_object_mut()
            .and_then(|map| map.remove(CONTINUATION_KEY))
            .and_then(|value| serde_json::from_value(value).ok());

        let Some(url) = event
            .get("ResponseURL")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
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

        let ids = Ids {
            request_id: text(&event, "RequestId"),
            stack_id: text(&event, "StackId"),
            logical_resource_id: text(&event, "LogicalResourceId"),
        };
        let claimed = match &continuation {
            Some(carried) => match self.claim(&ids, carried, &invocation, started).await {
                Some(key) => Some(key),
                None => return Handled::Duplicate,
            },
            None => None,
        };
        let handled = self
            .decide_and_send(&event, &url, &ids, continuation, &invocation, started)
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
        event: &Value,
        url: &str,
        ids: &Ids,
        continuation: Option<Continuation>,
        invocation: &Invocation,
        started: Instant,
    ) -> Handled {
        let remaining = invocation.deadline.saturating_duration_since(started);
        let margin = self.settings.safety_margin.min(remaining / 4);
        let answer_by = invocation.deadline - margin;
        // Retries of the PUT may use the margin, but not the last 200 ms.
        let give_up_at = invocation.deadline - margin.min(Duration::from_millis(200));

        let answer = match self
            .decide(
                event,
                ids,
                continuation,
                invocation,
                answer_by,
                margin,
                started,
            )
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
        self.send(url, ids, answer, give_up_at, started).await
    }

    async fn send(
        &self,
        url: &str,
        ids: &Ids,
        answer: Answer,
        give_up_at: Instant,
        started: Instant,
    ) -> Handled {
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

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        event: &Value,
        ids: &Ids,
        continuation: Option<Continuation>,
        invocation: &Invocation,
        answer_by: Instant,
        margin: Duration,
        started: Instant,
    ) -> Decision {
        let request: CloudFormationCustomResourceRequest<Value, Value> =
            match serde_json::from_value(event.clone()) {
                Ok(request) => request,
                Err(problem) => {
                    let physical_id = event
                        .get("PhysicalResourceId")
                        .and_then(Value::as_str)
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned)
                        .unwrap_or_else(|| response::create_failed_id(&ids.request_id));
                    let reason = Error::Event(problem.to_string()).to_string();
                    return Decision::Answer(Answer::failed(physical_id, reason));
                }
            };
        let (request_type, physical_id, raw, raw_old, resource_type) = match request {
            CloudFormationCustomResourceRequest::Create(create) => (
                RequestType::Create,
                None,
                create.resource_properties,
                None,
                create.resource_type,
            ),
            CloudFormationCustomResourceRequest::Update(update) => (
                RequestType::Update,
                Some(update.physical_resource_id),
                update.resource_properties,
                Some(update.old_resource_properties),
                update.resource_type,
            ),
            CloudFormationCustomResourceRequest::Delete(delete) => (
                RequestType::Delete,
                Some(delete.physical_resource_id),
                delete.resource_properties,
                None,
                delete.resource_type,
            ),
            _ => {
                return Decision::Answer(Answer::failed(
                    response::create_failed_id(&ids.request_id),
                    "unsupported RequestType: expected Create, Update or Delete",
                ))
            }
        };
        tracing::debug!(properties = %properties::redacted(&raw, R::Properties::SECRET), "request");

        // What a failure answers with: the event's id, or for Create the id the resource reported
        // while pending, or the create-failed marker.
        let mut failure_id = physical_id
            .clone()
            .or_else(|| {
                continuation
                    .as_ref()
                    .and_then(|c| c.physical_resource_id.clone())
            })
            .unwrap_or_else(|| response::create_failed_id(&ids.request_id));
        let failed =
            |id: &str, reason: String| Decision::Answer(Answer::failed(id.to_owned(), reason));

        if let (RequestType::Delete, Some(id)) = (request_type, physical_id.as_deref()) {
            if response::is_create_failed_id(id) {
                info!("Delete of a resource whose Create failed: nothing was created, nothing to delete");
                return Decision::Answer(Answer::success(id.to_owned(), Default::default(), false));
            }
        }

        let properties = match properties::parse::<R::Properties>(&raw) {
            Ok(parsed) => parsed,
            Err(problem) => return failed(&failure_id, problem.to_string()),
        };
        let old = match raw_old.as_ref().map(properties::parse::<R::Properties>) {
            Some(Err(problem)) => {
                return failed(
                    &failure_id,
                    format!(
                    "OldResourceProperties: {problem} (the previous properties no longer parse)"
                ),
                )
            }
            Some(Ok(old)) => Some(old),
            None => None,
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
        let budget = self.budget(&raw);
        let op_deadline = started + budget.saturating_sub(ctx.elapsed());

        let request = Arc::new(match (request_type, physical_id.clone(), old) {
            (RequestType::Create, _, _) => Request::Create { properties },
            (RequestType::Update, Some(physical_id), Some(old)) => Request::Update {
                physical_id,
                old,
                new: properties,
            },
            (_, physical_id, _) => Request::Delete {
                physical_id: physical_id.unwrap_or_default(),
                properties,
            },
        });

        // The physical id a pending operation reported, carried across hand-overs.
        let mut reported_id = continuation
            .as_ref()
            .and_then(|c| c.physical_resource_id.clone());
        let mut step = match &continuation {
            Some(carried) if !carried.restart => Step::Resume(carried.progress.clone()),
            _ => Step::Start,
        };
        // What a hand-over carries: the last progress reported (none yet: start again).
        let mut last_progress: Option<(Value, String)> = None;
        loop {
            let cutoff = answer_by.min(op_deadline);
            let outcome = match self.run_step(&ctx, &request, step, cutoff).await {
                StepResult::Finished(Ok(outcome)) => outcome,
                StepResult::Finished(Err(problem)) => {
                    if request_type == RequestType::Delete && self.resource.is_not_found(&problem) {
                        info!(error = %chain(&problem), "already gone: Delete succeeds");
                        return Decision::Answer(Answer::success(
                            failure_id,
                            Default::default(),
                            false,
                        ));
                    }
                    if request_type == RequestType::Create {
                        if let Some(made) = self.resource.made_before_failing(&problem) {
                            failure_id = made;
                        }
                    }
                    return failed(
                        &failure_id,
                        format!("{request_type} failed: {}", chain(&problem)),
                    );
                }
                StepResult::Panicked(message) => {
                    error!(panic = %message, "the handler panicked");
                    return failed(
                        &failure_id,
                        format!("{request_type} failed: the handler panicked: {message}. This is a bug in the resource provider; the function's logs have the backtrace"),
                    );
                }
                StepResult::DeadlineReached if Instant::now() >= op_deadline => {
                    let what = match &last_progress {
                        Some((_, waiting_for)) => format!("still waiting for {waiting_for}"),
                        None => "a step was still running".to_owned(),
                    };
                    return failed(
                        &failure_id,
                        format!(
                            "{request_type} timed out after {} s (budget {} s, from ServiceTimeout or the resource's default): {what}",
                            ctx.elapsed().as_secs(),
                            budget.as_secs()
                        ),
                    );
                }
                StepResult::DeadlineReached if self.resource.steps_rerun_safely() => {
                    let (progress, waiting_for) = last_progress.clone().unwrap_or_else(|| {
                        (
                            Value::Null,
                            format!("the {request_type} step cut off at the deadline"),
                        )
                    });
                    warn!(waiting_for = %waiting_for, "the step was still running near the deadline; it runs again in a new invocation");
                    let carried = Continuation {
                        restart: progress.is_null(),
                        progress,
                        invocation: ctx.invocation.saturating_add(1),
                        started_at_ms: epoch_ms(ctx.started_at),
                        waiting_for,
                        physical_resource_id: reported_id.clone(),
                    };
                    return self
                        .continue_in_next(event, invocation, carried, request_type, &failure_id)
                        .await;
                }
                StepResult::DeadlineReached => {
                    let timeout = invocation.deadline.saturating_duration_since(started);
                    return failed(
                        &failure_id,
                        format!(
                            "{request_type} timed out: the handler was still running {:.1} s before the Lambda deadline (this invocation had {:.1} s), so it was stopped to answer in time. Raise the function's Timeout, or check what the handler waits on",
                            margin.as_secs_f64(),
                            timeout.as_secs_f64()
                        ),
                    );
                }
            };
            match outcome {
                Outcome::Done(completion) => {
                    return self.completed(request_type, physical_id.as_deref(), completion);
                }
                Outcome::Pending(pending) => {
                    if let Some(id) = &pending.physical_id {
                        reported_id = Some(id.clone());
                        if request_type == RequestType::Create {
                            failure_id = id.clone();
                        }
                    }
                    let now = Instant::now();
                    if now >= op_deadline {
                        return failed(
                            &failure_id,
                            format!(
                                "{request_type} timed out after {} s (budget {} s, from ServiceTimeout or the resource's default): still waiting for {}",
                                ctx.elapsed().as_secs(),
                                budget.as_secs(),
                                pending.waiting_for
                            ),
                        );
                    }
                    let next_check = (now + self.settings.poll_interval).min(op_deadline);
                    // Hand over unless the next check and one more step fit before answer_by.
                    if next_check + margin >= answer_by {
                        let carried = Continuation {
                            progress: pending.progress.clone(),
                            invocation: ctx.invocation.saturating_add(1),
                            started_at_ms: epoch_ms(ctx.started_at),
                            waiting_for: pending.waiting_for.clone(),
                            physical_resource_id: reported_id.clone(),
                            restart: false,
                        };
                        return self
                            .continue_in_next(event, invocation, carried, request_type, &failure_id)
                            .await;
                    }
                    info!(waiting_for = %pending.waiting_for, "pending; checking again");
                    last_progress = Some((pending.progress.clone(), pending.waiting_for.clone()));
                    tokio::time::sleep_until(next_check).await;
                    step = Step::Resume(pending.progress);
                }
            }
        }
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
                    "custom-resource:missing-physical-id".into(),
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

/// Milliseconds since the Unix epoch (0 for times before it): the unit saved in progress.
pub fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
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

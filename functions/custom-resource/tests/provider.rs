//! The protocol driver, driven with CloudFormation-shaped events and fake delivery / hand-over,
//! so every path can assert the exact answer (or hand-over) it produced. The same paths run
//! through the real binary against moto in the repository's `tests/` harness.

use custom_resource::deliver::{Deliver, UrlPolicy};
use custom_resource::handover::{Claim, HandOver};
use custom_resource::provider::CONTINUATION_KEY;
use custom_resource::{
    de, Completion, Context, Error, Handled, Invocation, Outcome, PhysicalId, Properties, Provider,
    Request, Resource, Settings,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const CREATE: &str = include_str!("fixtures/create.json");
const UPDATE: &str = include_str!("fixtures/update.json");
const DELETE: &str = include_str!("fixtures/delete.json");

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
enum Mode {
    #[default]
    Ok,
    Fail,
    Panic,
    Hang,
    Wait,
    NotFound,
    BigData,
    HugeReason,
    FailAfterMaking,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ThingProperties {
    name: String,
    #[serde(default = "one", deserialize_with = "de::number")]
    count: u32,
    #[serde(default)]
    mode: Mode,
    #[serde(default, deserialize_with = "de::opt_number")]
    wait_polls: Option<u32>,
    #[serde(default)]
    secret: Option<String>,
}

fn one() -> u32 {
    1
}

impl Properties for ThingProperties {
    const SECRET: &'static [&'static str] = &["Secret"];
    fn validate(&self) -> Result<(), custom_resource::PropertyError> {
        if self.count > 10 {
            return Err(custom_resource::PropertyError::new(
                "Count",
                "must be 10 or less",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum ThingError {
    #[error("CreateThing: Boom: {0}")]
    Boom(String),
    #[error("DeleteThing: NotFound: no such thing")]
    NotFound,
    #[error("AttachThing: Boom: refused after {0} was made")]
    AfterMaking(String),
}

#[derive(Default)]
struct Thing {
    calls: Arc<Mutex<Vec<String>>>,
    /// Claims `steps_rerun_safely` (as the network resource does).
    rerun_safe: bool,
}

impl Thing {
    fn act(
        &self,
        what: String,
        props: &ThingProperties,
        id: &str,
        completion: Completion,
    ) -> Result<Outcome, ThingError> {
        self.calls.lock().unwrap().push(what);
        match props.mode {
            Mode::Ok => Ok(completion.data("Count", props.count.to_string()).into()),
            Mode::Fail => Err(ThingError::Boom("the thing refused".into())),
            Mode::HugeReason => Err(ThingError::Boom("why ".repeat(3000))),
            Mode::Panic => panic!("thing exploded"),
            Mode::Hang => unreachable!("handled in the async part"),
            Mode::Wait => {
                let pending = Outcome::pending(
                    format!("thing {id} to become ready"),
                    json!({"left": props.wait_polls.unwrap_or(2)}),
                );
                // How it will complete is declared now; `resume` does not decide it again.
                Ok(match completion.physical_id {
                    PhysicalId::Replaced(new) => pending.replacing(new),
                    PhysicalId::New(new) => pending.with_physical_id(new),
                    PhysicalId::Unchanged => pending.with_physical_id(id),
                })
            }
            Mode::NotFound => Err(ThingError::NotFound),
            Mode::FailAfterMaking => Err(ThingError::AfterMaking(id.to_owned())),
            Mode::BigData => Ok(completion.data("Blob", "b".repeat(5000)).into()),
        }
    }
}

impl Resource for Thing {
    type Properties = ThingProperties;
    type Error = ThingError;

    fn is_not_found(&self, error: &ThingError) -> bool {
        matches!(error, ThingError::NotFound)
    }

    fn steps_rerun_safely(&self) -> bool {
        self.rerun_safe
    }

    fn made_before_failing(&self, error: &ThingError) -> Option<String> {
        match error {
            ThingError::AfterMaking(id) => Some(id.clone()),
            _ => None,
        }
    }

    async fn create(&self, _ctx: &Context, props: &ThingProperties) -> Result<Outcome, ThingError> {
        if props.mode == Mode::Hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let mut completion = Completion::created(&props.name);
        if let Some(secret) = &props.secret {
            completion = completion.secret_data("Secret", secret);
        }
        self.act("create".into(), props, &props.name, completion)
    }

    async fn update(
        &self,
        _ctx: &Context,
        id: &str,
        old: &ThingProperties,
        new: &ThingProperties,
    ) -> Result<Outcome, ThingError> {
        let completion = if old.name != new.name {
            Completion::replaced(&new.name)
        } else {
            Completion::unchanged()
        };
        self.act(
            format!("update {id} {}->{}", old.count, new.count),
            new,
            id,
            completion,
        )
    }

    async fn delete(
        &self,
        _ctx: &Context,
        id: &str,
        props: &ThingProperties,
    ) -> Result<Outcome, ThingError> {
        self.act(format!("delete {id}"), props, id, Completion::unchanged())
    }

    async fn resume(
        &self,
        ctx: &Context,
        request: &Request<ThingProperties>,
        progress: &Value,
    ) -> Result<Outcome, ThingError> {
        let left = progress["left"].as_u64().unwrap_or(0);
        self.calls
            .lock()
            .unwrap()
            .push(format!("resume {left} (invocation {})", ctx.invocation));
        let name = match request {
            Request::Create { properties } => &properties.name,
            Request::Update { new, .. } => &new.name,
            Request::Delete { properties, .. } => &properties.name,
        };
        if left == 0 {
            return Ok(Completion::unchanged().data("Ready", "true").into());
        }
        Ok(Outcome::pending(
            format!("thing {name} to become ready"),
            json!({"left": left - 1}),
        ))
    }
}

/// Claims as the DynamoDB table keeps them: key -> (done, claimer, lease until ms).
type Claims = std::collections::HashMap<String, (bool, String, u64)>;

#[derive(Clone, Default)]
struct Recorder {
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    handed: Arc<Mutex<Vec<(String, Value)>>>,
    refuse_hand_over: bool,
    claims: Arc<Mutex<Claims>>,
}

impl Deliver for Recorder {
    async fn deliver(&self, url: &str, body: Vec<u8>, _give_up_at: Instant) -> Result<u32, Error> {
        assert!(body.len() <= 4096, "body of {} bytes", body.len());
        let json = serde_json::from_slice(&body).expect("the body is JSON");
        self.answers.lock().unwrap().push((url.to_owned(), json));
        Ok(1)
    }
}

impl HandOver for Recorder {
    async fn hand_over(&self, function: &str, payload: Vec<u8>) -> Result<(), Error> {
        if self.refuse_hand_over {
            return Err(Error::HandOver {
                function: function.into(),
                message: "Invoke: AccessDeniedException: not allowed".into(),
            });
        }
        let json = serde_json::from_slice(&payload).expect("the payload is JSON");
        self.handed
            .lock()
            .unwrap()
            .push((function.to_owned(), json));
        Ok(())
    }

    // The same rule as the table's condition: absent, or running and (lapsed or the same claimer).
    async fn claim(&self, key: &str, claimer: &str, lease_until_ms: u64) -> Result<Claim, Error> {
        let now = custom_resource::epoch_ms(std::time::SystemTime::now());
        let mut claims = self.claims.lock().unwrap();
        let free = match claims.get(key) {
            None => true,
            Some((done, holder, lease)) => !done && (*lease < now || holder == claimer),
        };
        if !free {
            return Ok(Claim::Duplicate);
        }
        claims.insert(key.to_owned(), (false, claimer.to_owned(), lease_until_ms));
        Ok(Claim::Won)
    }

    async fn finish(&self, key: &str) -> Result<(), Error> {
        if let Some(claim) = self.claims.lock().unwrap().get_mut(key) {
            claim.0 = true;
        }
        Ok(())
    }
}

struct Setup {
    provider: Provider<Thing, Recorder, Recorder>,
    recorder: Recorder,
    calls: Arc<Mutex<Vec<String>>>,
}

fn setup_with(settings: Settings, refuse_hand_over: bool) -> Setup {
    setup_thing(settings, refuse_hand_over, false)
}

fn setup_thing(settings: Settings, refuse_hand_over: bool, rerun_safe: bool) -> Setup {
    let thing = Thing {
        rerun_safe,
        ..Thing::default()
    };
    let calls = Arc::clone(&thing.calls);
    let recorder = Recorder {
        refuse_hand_over,
        ..Recorder::default()
    };
    Setup {
        provider: Provider::new(thing, recorder.clone(), recorder.clone(), settings),
        recorder,
        calls,
    }
}

fn setup() -> Setup {
    setup_with(
        Settings {
            poll_interval: Duration::from_secs(1),
            safety_margin: Duration::from_secs(2),
            ..Settings::default()
        },
        false,
    )
}

fn event(fixture: &str, properties: Value) -> Value {
    let mut event: Value = serde_json::from_str(fixture).unwrap();
    let merged = event["ResourceProperties"].as_object_mut().unwrap();
    for (key, value) in properties.as_object().unwrap() {
        merged.insert(key.clone(), value.clone());
    }
    event
}

fn lambda(seconds: u64) -> Invocation {
    lambda_request(seconds, "9f3c1a2e-0000-4000-8000-000000000001")
}

fn lambda_request(seconds: u64, request_id: &str) -> Invocation {
    Invocation {
        deadline: Instant::now() + Duration::from_secs(seconds),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:demo-provider".into(),
        request_id: request_id.into(),
    }
}

impl Setup {
    /// The one answer sent so far; fails unless exactly one was sent.
    fn only_answer(&self) -> Value {
        let answers = self.recorder.answers.lock().unwrap();
        assert_eq!(
            answers.len(),
            1,
            "expected exactly one answer, got {answers:#?}"
        );
        answers[0].1.clone()
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_successful_create_answers_once_with_the_physical_id_and_data() {
    let s = setup();
    let handled = s
        .provider
        .handle(event(CREATE, json!({})), lambda(30))
        .await;
    assert!(matches!(
        handled,
        Handled::Answered {
            delivered: true,
            ..
        }
    ));
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
    assert_eq!(answer["Data"], json!({"Count": "3"}));
    assert_eq!(answer["RequestId"], "5a6e2b7c-1111-4c3a-9d2e-0f00a1b2c3d4");
    assert_eq!(answer["LogicalResourceId"], "Thing");
    assert_eq!(answer["NoEcho"], false);
    assert!(s.recorder.answers.lock().unwrap()[0]
        .0
        .starts_with("https://cloudformation-custom-resource-response"));
}

#[tokio::test]
async fn a_handler_error_on_create_answers_failed_with_the_marker_id_and_rollback_delete_is_a_no_op(
) {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Mode": "Fail"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(
        answer["Reason"],
        "Create failed: CreateThing: Boom: the thing refused"
    );
    let marker = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_eq!(
        marker,
        "custom-resource:create-failed:5a6e2b7c-1111-4c3a-9d2e-0f00a1b2c3d4"
    );

    let rollback = setup();
    let mut delete = event(DELETE, json!({"Mode": "Fail"}));
    delete["PhysicalResourceId"] = json!(marker);
    rollback.provider.handle(delete, lambda(30)).await;
    let answer = rollback.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], marker.as_str());
    assert!(
        rollback.calls().is_empty(),
        "the resource must not be called: {:?}",
        rollback.calls()
    );
}

#[tokio::test]
async fn a_create_that_fails_after_making_something_answers_with_its_id_so_the_rollback_delete_removes_it(
) {
    let s = setup();
    s.provider
        .handle(
            event(CREATE, json!({"Mode": "FailAfterMaking"})),
            lambda(30),
        )
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    let made = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(
        !made.starts_with("custom-resource:create-failed:"),
        "{made}"
    );
    assert!(answer["Reason"]
        .as_str()
        .unwrap()
        .contains(&format!("refused after {made} was made")));

    let rollback = setup();
    let mut delete = event(DELETE, json!({}));
    delete["PhysicalResourceId"] = json!(made);
    rollback.provider.handle(delete, lambda(30)).await;
    assert_eq!(rollback.only_answer()["Status"], "SUCCESS");
    assert_eq!(
        rollback.calls().len(),
        1,
        "the rollback Delete reached the resource"
    );
}

#[tokio::test]
async fn a_handler_panic_answers_failed_with_the_panic_message() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Mode": "Panic"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(
        reason.contains("the handler panicked: thing exploded"),
        "{reason}"
    );
    assert!(answer["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .starts_with("custom-resource:create-failed:"));
}

#[tokio::test]
async fn an_unparsable_property_answers_failed_naming_it_and_calls_nothing() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Count": "many"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["Reason"], "invalid property Count: \"many\" is not a whole number of 0 or more (invalid digit found in string)");
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn an_out_of_range_property_answers_failed_with_the_validation_message() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Count": 11})), lambda(30))
        .await;
    assert_eq!(
        s.only_answer()["Reason"],
        "invalid property Count: must be 10 or less"
    );
}

#[tokio::test]
async fn an_unknown_property_answers_failed_with_the_closest_known_name() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Cuont": "2"})), lambda(30))
        .await;
    let reason = s.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with(
            "invalid property Cuont: is not a property of this resource; did you mean Count?"
        ),
        "{reason}"
    );
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn a_secret_property_never_appears_in_the_reason_and_secret_data_sets_no_echo() {
    let s = setup();
    s.provider
        .handle(
            event(CREATE, json!({"Secret": {"not": "a string: hunter2"}})),
            lambda(30),
        )
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert!(!answer.to_string().contains("hunter2"));

    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Secret": "hunter2"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["NoEcho"], true);
}

#[tokio::test(start_paused = true)]
async fn a_handler_still_running_near_the_deadline_answers_failed_before_it() {
    let s = setup();
    let started = Instant::now();
    let invocation = lambda(20);
    let deadline = invocation.deadline;
    s.provider
        .handle(event(CREATE, json!({"Mode": "Hang"})), invocation)
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "Create timed out: the handler was still running 2.0 s before the Lambda deadline"
        ),
        "{reason}"
    );
    assert_eq!(Instant::now() - started, Duration::from_secs(18));
    assert!(Instant::now() < deadline);
}

#[tokio::test(start_paused = true)]
async fn a_rerun_safe_step_cut_off_at_the_deadline_runs_again_in_a_new_invocation() {
    let settings = Settings {
        poll_interval: Duration::from_secs(1),
        safety_margin: Duration::from_secs(2),
        ..Settings::default()
    };
    let s = setup_thing(settings, false, true);
    let handled = s
        .provider
        .handle(event(CREATE, json!({"Mode": "Hang"})), lambda(20))
        .await;
    assert!(matches!(handled, Handled::HandedOver { invocation: 2 }));
    assert!(s.recorder.answers.lock().unwrap().is_empty());
    let mut next = s.recorder.handed.lock().unwrap()[0].1.clone();
    let carried = &next[CONTINUATION_KEY];
    assert_eq!(carried["Restart"], true, "{carried}");
    assert_eq!(carried["Invocation"], 2);
    assert_eq!(
        carried["WaitingFor"],
        "the Create step cut off at the deadline"
    );
    // This time the step finishes: the operation starts again and answers once.
    next["ResourceProperties"]["Mode"] = json!("Ok");
    s.provider
        .handle(
            next,
            lambda_request(20, "9f3c1a2e-0000-4000-8000-000000000002"),
        )
        .await;
    assert_eq!(s.only_answer()["Status"], "SUCCESS");
    assert_eq!(s.calls(), vec!["create"]);
}

#[tokio::test(start_paused = true)]
async fn a_short_wait_is_polled_within_one_invocation() {
    let s = setup();
    let started = Instant::now();
    s.provider
        .handle(
            event(CREATE, json!({"Mode": "Wait", "WaitPolls": 3})),
            lambda(60),
        )
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["Data"]["Ready"], "true");
    assert_eq!(
        s.calls(),
        [
            "create",
            "resume 3 (invocation 1)",
            "resume 2 (invocation 1)",
            "resume 1 (invocation 1)",
            "resume 0 (invocation 1)"
        ]
    );
    // One poll interval (1 s) between checks.
    assert_eq!(Instant::now() - started, Duration::from_secs(4));
    assert!(s.recorder.handed.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_invocation_is_handed_on_and_answered_by_the_next() {
    let s = setup();
    let first = s
        .provider
        .handle(
            event(CREATE, json!({"Mode": "Wait", "WaitPolls": 8})),
            lambda(8),
        )
        .await;
    assert_eq!(first, Handled::HandedOver { invocation: 2 });
    assert!(
        s.recorder.answers.lock().unwrap().is_empty(),
        "the first invocation must not answer"
    );
    let (function, payload) = s.recorder.handed.lock().unwrap()[0].clone();
    assert_eq!(
        function,
        "arn:aws:lambda:us-east-1:123456789012:function:demo-provider"
    );
    assert_eq!(payload["RequestId"], "5a6e2b7c-1111-4c3a-9d2e-0f00a1b2c3d4");
    assert_eq!(payload[CONTINUATION_KEY]["Invocation"], 2);
    assert_eq!(payload[CONTINUATION_KEY]["PhysicalResourceId"], "thing-1");
    assert_eq!(
        payload[CONTINUATION_KEY]["WaitingFor"],
        "thing thing-1 to become ready"
    );

    let second = s.provider.handle(payload, lambda(60)).await;
    assert!(matches!(second, Handled::Answered { .. }));
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
    assert!(s
        .calls()
        .iter()
        .any(|call| call.ends_with("(invocation 2)")));
}

#[tokio::test(start_paused = true)]
async fn a_hand_over_delivered_twice_is_answered_once_and_the_copy_does_nothing() {
    let s = setup();
    s.provider
        .handle(
            event(CREATE, json!({"Mode": "Wait", "WaitPolls": 8})),
            lambda(8),
        )
        .await;
    let (_, payload) = s.recorder.handed.lock().unwrap()[0].clone();
    let first = s
        .provider
        .handle(payload.clone(), lambda_request(60, "handed-1"))
        .await;
    assert!(matches!(first, Handled::Answered { .. }));
    let calls_before = s.calls().len();
    // Lambda delivers the same event again, under another request id, after the answer.
    let copy = s
        .provider
        .handle(payload, lambda_request(60, "handed-1-copy"))
        .await;
    assert_eq!(copy, Handled::Duplicate);
    assert_eq!(s.only_answer()["Status"], "SUCCESS");
    assert_eq!(
        s.calls().len(),
        calls_before,
        "the copy must not call the resource"
    );
}

#[tokio::test(start_paused = true)]
async fn lambdas_retry_of_a_hand_over_that_crashed_after_claiming_takes_the_claim_over() {
    let s = setup();
    s.provider
        .handle(
            event(CREATE, json!({"Mode": "Wait", "WaitPolls": 8})),
            lambda(8),
        )
        .await;
    let (_, payload) = s.recorder.handed.lock().unwrap()[0].clone();
    // The first attempt claimed it, then its process died (the claim is still running).
    let key = format!(
        "{}|{}|{}|2",
        payload["StackId"].as_str().unwrap(),
        payload["LogicalResourceId"].as_str().unwrap(),
        payload["RequestId"].as_str().unwrap()
    );
    let far = custom_resource::epoch_ms(std::time::SystemTime::now()) + 600_000;
    s.recorder
        .claims
        .lock()
        .unwrap()
        .insert(key.clone(), (false, "handed-1".into(), far));
    let other = s
        .provider
        .handle(payload.clone(), lambda_request(60, "a-concurrent-copy"))
        .await;
    assert_eq!(
        other,
        Handled::Duplicate,
        "a copy while the claimer may still run"
    );
    let retry = s
        .provider
        .handle(payload, lambda_request(60, "handed-1"))
        .await;
    assert!(matches!(retry, Handled::Answered { .. }));
    assert_eq!(s.only_answer()["Status"], "SUCCESS");
    assert!(
        s.recorder.claims.lock().unwrap()[&key].0,
        "finished claims are done"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_hand_over_answers_failed_instead_of_going_silent() {
    let s = setup_with(
        Settings {
            poll_interval: Duration::from_secs(1),
            safety_margin: Duration::from_secs(2),
            ..Settings::default()
        },
        true,
    );
    s.provider
        .handle(
            event(CREATE, json!({"Mode": "Wait", "WaitPolls": 100})),
            lambda(8),
        )
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"]
        .as_str()
        .unwrap()
        .contains("AccessDeniedException"));
    // Something was created: the failure carries its id so the rollback Delete removes it.
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_service_timeout_answers_failed_with_what_was_pending() {
    let s = setup();
    s.provider
        .handle(
            event(
                CREATE,
                json!({"Mode": "Wait", "WaitPolls": 1000, "ServiceTimeout": "20"}),
            ),
            lambda(900),
        )
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.contains("timed out after"), "{reason}");
    assert!(reason.contains("budget 18 s"), "{reason}");
    assert!(
        reason.ends_with("still waiting for thing thing-1 to become ready"),
        "{reason}"
    );
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
}

#[tokio::test]
async fn an_update_in_place_keeps_the_physical_id() {
    let s = setup();
    s.provider
        .handle(event(UPDATE, json!({})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
    assert_eq!(s.calls(), ["update thing-1 3->4"]);
}

#[tokio::test]
async fn an_update_that_declares_a_replacement_returns_the_new_id() {
    let s = setup();
    s.provider
        .handle(event(UPDATE, json!({"Name": "thing-2"})), lambda(30))
        .await;
    assert_eq!(s.only_answer()["PhysicalResourceId"], "thing-2");
}

#[tokio::test(start_paused = true)]
async fn a_replacement_declared_while_pending_completes_with_the_new_id_across_a_hand_over() {
    let s = setup();
    let first = s
        .provider
        .handle(
            event(
                UPDATE,
                json!({"Name": "thing-2", "Mode": "Wait", "WaitPolls": 8}),
            ),
            lambda(8),
        )
        .await;
    assert_eq!(first, Handled::HandedOver { invocation: 2 });
    let (_, payload) = s.recorder.handed.lock().unwrap()[0].clone();
    assert_eq!(payload[CONTINUATION_KEY]["Replacement"], true);
    assert_eq!(payload[CONTINUATION_KEY]["PhysicalResourceId"], "thing-2");
    s.provider.handle(payload, lambda(60)).await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "thing-2");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_update_in_place_completes_with_the_events_id() {
    let s = setup();
    s.provider
        .handle(
            event(UPDATE, json!({"Mode": "Wait", "WaitPolls": 1})),
            lambda(60),
        )
        .await;
    assert_eq!(s.only_answer()["PhysicalResourceId"], "thing-1");
}

#[tokio::test]
async fn a_failed_update_keeps_the_physical_id() {
    let s = setup();
    s.provider
        .handle(event(UPDATE, json!({"Mode": "Fail"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
}

#[tokio::test]
async fn old_properties_that_no_longer_parse_are_named() {
    let s = setup();
    let mut update = event(UPDATE, json!({}));
    update["OldResourceProperties"]["Colour"] = json!("red");
    s.provider.handle(update, lambda(30)).await;
    let reason = s.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("OldResourceProperties: invalid property Colour"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_update_without_old_properties_is_refused_and_never_runs_as_a_delete() {
    let s = setup();
    let mut update = event(UPDATE, json!({}));
    update
        .as_object_mut()
        .unwrap()
        .remove("OldResourceProperties");
    s.provider.handle(update, lambda(30)).await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("OldResourceProperties"),
        "{answer}"
    );
    assert!(s.calls().is_empty(), "nothing ran: {:?}", s.calls());
}

#[tokio::test]
async fn a_delete_of_something_already_gone_succeeds() {
    let s = setup();
    s.provider
        .handle(event(DELETE, json!({"Mode": "NotFound"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
}

#[tokio::test]
async fn data_too_large_for_the_response_answers_failed_keeping_the_id() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Mode": "BigData"})), lambda(30))
        .await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], "thing-1");
    assert!(answer["Reason"]
        .as_str()
        .unwrap()
        .contains("Blob (5004 bytes)"));
}

#[tokio::test]
async fn a_reason_too_long_is_truncated_with_a_marker() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({"Mode": "HugeReason"})), lambda(30))
        .await;
    let reason = s.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("Create failed: CreateThing: Boom: why why"));
    assert!(reason.contains("[reason truncated:"), "{reason}");
}

#[tokio::test]
async fn a_response_url_off_the_allow_list_is_never_answered_and_nothing_runs() {
    let s = setup_with(
        Settings {
            url_policy: UrlPolicy::from_setting(Some("http://127.0.0.1:9/")),
            ..Settings::default()
        },
        false,
    );
    let handled = s
        .provider
        .handle(event(CREATE, json!({})), lambda(30))
        .await;
    assert_eq!(handled, Handled::Refused);
    assert!(s.recorder.answers.lock().unwrap().is_empty());
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn an_event_without_a_response_url_cannot_be_answered_and_runs_nothing() {
    let s = setup();
    let handled = s
        .provider
        .handle(json!({"hello": "world"}), lambda(30))
        .await;
    assert_eq!(handled, Handled::Refused);
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn a_malformed_event_with_a_response_url_answers_failed() {
    let s = setup();
    let mut broken = event(CREATE, json!({}));
    broken.as_object_mut().unwrap().remove("StackId");
    s.provider.handle(broken, lambda(30)).await;
    let answer = s.only_answer();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"]
        .as_str()
        .unwrap()
        .contains("missing field `StackId`"));
}

#[tokio::test]
async fn the_same_request_delivered_twice_answers_once_per_delivery_with_the_same_id() {
    let s = setup();
    s.provider
        .handle(event(CREATE, json!({})), lambda(30))
        .await;
    s.provider
        .handle(event(CREATE, json!({})), lambda(30))
        .await;
    let answers = s.recorder.answers.lock().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].1, answers[1].1);
}

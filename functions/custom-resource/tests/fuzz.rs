//! Property tests (proptest) of the protocol layer and of property decoding: whatever event
//! arrives, `Provider::handle` never panics and sends at most one answer (exactly one when the
//! event can be answered), every answer is well-formed and fits in 4096 bytes, and properties
//! that do not parse never reach the resource (so never reach AWS).
//!
//! Each property runs 256 cases (`PROPTEST_CASES=N` runs more); failures are not persisted to
//! files, proptest prints the minimal failing input instead. Time is paused, so the test
//! resource's waits cost nothing.
//!
//! Two bugs these properties found (ids capped in raw rather than JSON-escaped bytes; the
//! invocation number overflowing) are fixed and kept as regression tests at the end.

use custom_resource::deliver::Deliver;
use custom_resource::handover::{Claim, HandOver};
use custom_resource::properties;
use custom_resource::provider::CONTINUATION_KEY;
use custom_resource::response::CREATE_FAILED_PREFIX;
use custom_resource::{
    de, Completion, Context, Error, Handled, Invocation, Outcome, Properties, PropertyError,
    Provider, Request, Resource, Settings,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// CloudFormation's limit, stated here rather than read from the library under test.
const MAX_BODY_BYTES: usize = 4096;
const RESPONSE_URL: &str = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/demo/0a1b2c3d%7CGadget%7C5a6e2b7c?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc";
const RESPONSE_URL_CN: &str =
    "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/x?sig=1";
/// Hand-overs followed per case; a wait that outlasts them is left handed over (no answer yet).
const MAX_HAND_OVERS: usize = 3;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    // Do not write proptest-regressions/ files into the source tree.
    config.failure_persistence = None;
    config
}

// ---------------------------------------------------------------------------------------------
// The test resource: one field of each kind the decoders handle, and a count of every call.

const MODES: &[&str] = &["Ok", "Fail", "Panic", "Wait", "BigData", "HugeReason"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
enum Mode {
    #[default]
    Ok,
    Fail,
    Panic,
    Wait,
    BigData,
    HugeReason,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // the fields are read by the decoders only
struct GadgetProperties {
    name: String,
    #[serde(default = "one", deserialize_with = "de::number")]
    count: u32,
    #[serde(default, deserialize_with = "de::opt_number")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "de::boolean")]
    enabled: bool,
    #[serde(default, deserialize_with = "de::opt_boolean")]
    public: Option<bool>,
    #[serde(default, deserialize_with = "de::string_list")]
    subnets: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default, deserialize_with = "de::opt_number")]
    wait_polls: Option<u32>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct Tag {
    key: String,
    #[serde(deserialize_with = "de::number")]
    weight: u8,
}

fn one() -> u32 {
    1
}

/// Every property name of [`GadgetProperties`].
const KNOWN: &[&str] = &[
    "Name",
    "Count",
    "Offset",
    "Enabled",
    "Public",
    "Subnets",
    "Mode",
    "WaitPolls",
    "Secret",
    "Tags",
];
const RESERVED: &[&str] = &["ServiceToken", "ServiceTimeout"];
const SECRET_MARKER: &str = "hunter2-secret";

impl Properties for GadgetProperties {
    const SECRET: &'static [&'static str] = &["Secret"];
    fn validate(&self) -> Result<(), PropertyError> {
        if self.count > 10 {
            return Err(PropertyError::new("Count", "must be 10 or less"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum GadgetError {
    #[error("MakeGadget: Boom: {0}")]
    Boom(String),
}

#[derive(Default)]
struct Gadget {
    calls: Arc<AtomicUsize>,
}

impl Gadget {
    fn act(
        &self,
        props: &GadgetProperties,
        completion: Completion,
    ) -> Result<Outcome, GadgetError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match props.mode {
            Mode::Ok => Ok(completion.data("Count", props.count.to_string()).into()),
            Mode::Fail => Err(GadgetError::Boom("the gadget refused".into())),
            Mode::HugeReason => Err(GadgetError::Boom("why ".repeat(3000))),
            Mode::Panic => panic!("gadget exploded"),
            Mode::Wait => Ok(Outcome::pending(
                "the gadget to become ready",
                json!({"left": props.wait_polls.unwrap_or(2)}),
            )
            .with_physical_id(&props.name)),
            Mode::BigData => Ok(completion.data("Blob", "b".repeat(5000)).into()),
        }
    }
}

impl Resource for Gadget {
    type Properties = GadgetProperties;
    type Error = GadgetError;

    async fn create(
        &self,
        _ctx: &Context,
        props: &GadgetProperties,
    ) -> Result<Outcome, GadgetError> {
        self.act(props, Completion::created(&props.name))
    }

    async fn update(
        &self,
        _ctx: &Context,
        _id: &str,
        old: &GadgetProperties,
        new: &GadgetProperties,
    ) -> Result<Outcome, GadgetError> {
        let completion = if old.name != new.name {
            Completion::replaced(&new.name)
        } else {
            Completion::unchanged()
        };
        self.act(new, completion)
    }

    async fn delete(
        &self,
        _ctx: &Context,
        _id: &str,
        props: &GadgetProperties,
    ) -> Result<Outcome, GadgetError> {
        self.act(props, Completion::unchanged())
    }

    async fn resume(
        &self,
        _ctx: &Context,
        request: &Request<GadgetProperties>,
        progress: &Value,
    ) -> Result<Outcome, GadgetError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = match request {
            Request::Create { properties } => &properties.name,
            Request::Update { new, .. } => &new.name,
            Request::Delete { properties, .. } => &properties.name,
        };
        let left = progress["left"].as_u64().unwrap_or(0);
        if left == 0 {
            return Ok(Completion::created(name).data("Ready", "true").into());
        }
        Ok(Outcome::pending(
            "the gadget to become ready",
            json!({"left": left - 1}),
        ))
    }
}

/// One answer as sent: the URL and the raw body.
type Sent = (String, Vec<u8>);

/// Records every answer and hand-over; claims always win.
#[derive(Clone, Default)]
struct Recorder {
    answers: Arc<Mutex<Vec<Sent>>>,
    handed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Deliver for Recorder {
    async fn deliver(&self, url: &str, body: Vec<u8>, _give_up_at: Instant) -> Result<u32, Error> {
        self.answers.lock().unwrap().push((url.to_owned(), body));
        Ok(1)
    }
}

impl HandOver for Recorder {
    async fn hand_over(&self, _function: &str, payload: Vec<u8>) -> Result<(), Error> {
        self.handed.lock().unwrap().push(payload);
        Ok(())
    }
    async fn claim(&self, _key: &str, _claimer: &str, _lease: u64) -> Result<Claim, Error> {
        Ok(Claim::Won)
    }
    async fn finish(&self, _key: &str) -> Result<(), Error> {
        Ok(())
    }
}

struct Setup {
    provider: Provider<Gadget, Recorder, Recorder>,
    recorder: Recorder,
    calls: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let gadget = Gadget::default();
    let calls = Arc::clone(&gadget.calls);
    let recorder = Recorder::default();
    let settings = Settings {
        poll_interval: Duration::from_secs(1),
        safety_margin: Duration::from_secs(2),
        ..Settings::default()
    };
    Setup {
        provider: Provider::new(gadget, recorder.clone(), recorder.clone(), settings),
        recorder,
        calls,
    }
}

/// Runs `future` on a fresh current-thread runtime with time paused (sleeps advance at once).
fn paused<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(future)
}

fn lambda(seconds: u64, request_id: &str) -> Invocation {
    Invocation {
        deadline: Instant::now() + Duration::from_secs(seconds),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:gadget-provider".into(),
        request_id: request_id.into(),
    }
}

/// What one event did: the first invocation's result, and the last one's after following
/// hand-overs (at most [`MAX_HAND_OVERS`]).
struct Run {
    first: Handled,
    last: Handled,
    answers: Vec<Sent>,
    hand_overs: usize,
    calls: usize,
}

fn run(event: Value, seconds: u64) -> Run {
    let s = setup();
    paused(async {
        let first = s
            .provider
            .handle(event, lambda(seconds, "invocation-1"))
            .await;
        let mut last = first.clone();
        let mut followed = 0;
        while matches!(last, Handled::HandedOver { .. }) && followed < MAX_HAND_OVERS {
            let payload = s.recorder.handed.lock().unwrap().last().cloned();
            let Some(payload) = payload else { break };
            let payload: Value = serde_json::from_slice(&payload).expect("the hand-over is JSON");
            followed += 1;
            let request_id = format!("invocation-{}", followed + 1);
            last = s
                .provider
                .handle(payload, lambda(seconds, &request_id))
                .await;
        }
        Run {
            first,
            last,
            answers: s.recorder.answers.lock().unwrap().clone(),
            hand_overs: s.recorder.handed.lock().unwrap().len(),
            calls: s.calls.load(Ordering::SeqCst),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// The bytes `text` takes inside a JSON string, as serde_json writes it (quotes excluded).
fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(0, |quoted| quoted.len() - 2)
}

/// The id fields the answer copies, and the JSON-escaped length up to which it copies them whole.
const ECHOED: &[(&str, usize)] = &[
    ("StackId", 1024),
    ("RequestId", 512),
    ("LogicalResourceId", 512),
];

/// The body is JSON, ≤ 4096 bytes, SUCCESS or FAILED (with a Reason), a non-empty physical id,
/// and the ids of `event` copied (cut at a character boundary only when longer than the cap).
fn check_body(event: &Value, body: &[u8]) -> Result<Value, TestCaseError> {
    prop_assert!(
        body.len() <= MAX_BODY_BYTES,
        "a body of {} bytes: {}",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let answer: Value = serde_json::from_slice(body)
        .map_err(|error| TestCaseError::fail(format!("the body is not JSON: {error}")))?;
    let status = answer["Status"].as_str().unwrap_or_default();
    prop_assert!(
        status == "SUCCESS" || status == "FAILED",
        "Status {:?}",
        answer["Status"]
    );
    if status == "FAILED" {
        prop_assert!(
            answer["Reason"]
                .as_str()
                .is_some_and(|reason| !reason.is_empty()),
            "a FAILED answer without a Reason: {answer}"
        );
    }
    let physical_id = answer["PhysicalResourceId"].as_str().unwrap_or_default();
    prop_assert!(!physical_id.is_empty(), "no physical id: {answer}");
    prop_assert!(
        json_len(physical_id) <= 1024,
        "a physical id of {} bytes as JSON",
        json_len(physical_id)
    );
    for (key, cap) in ECHOED {
        let sent = event.get(*key).and_then(Value::as_str).unwrap_or_default();
        let Some(echoed) = answer[*key].as_str() else {
            return Err(TestCaseError::fail(format!(
                "{key} is not a string: {answer}"
            )));
        };
        if json_len(sent) <= *cap {
            prop_assert_eq!(echoed, sent, "{} not echoed", key);
        } else {
            // Cut at the last character that still fits (one escapes to at most 6 bytes).
            prop_assert!(
                sent.starts_with(echoed) && json_len(echoed) <= *cap && json_len(echoed) + 6 > *cap,
                "{key} cut wrongly to {} bytes as JSON",
                json_len(echoed)
            );
        }
    }
    prop_assert!(answer["NoEcho"].is_boolean(), "NoEcho: {answer}");
    prop_assert!(
        answer["Data"]
            .as_object()
            .is_some_and(|data| data.values().all(Value::is_string)),
        "Data: {answer}"
    );
    Ok(answer)
}

/// At most one answer or hand-over per invocation, and each answer well-formed.
fn check_run(event: &Value, run: &Run) -> Result<Vec<Value>, TestCaseError> {
    prop_assert!(
        run.answers.len() <= 1,
        "{} answers to one event",
        run.answers.len()
    );
    let url = event.get("ResponseURL").and_then(Value::as_str);
    let mut bodies = Vec::new();
    for (to, body) in &run.answers {
        prop_assert_eq!(Some(to.as_str()), url, "answered another URL");
        bodies.push(check_body(event, body)?);
    }
    match &run.first {
        Handled::Refused => {
            prop_assert!(run.answers.is_empty() && run.hand_overs == 0 && run.calls == 0);
        }
        Handled::Answered { .. } => {
            prop_assert_eq!(run.answers.len(), 1);
            prop_assert_eq!(run.hand_overs, 0);
        }
        Handled::HandedOver { .. } => match &run.last {
            Handled::Answered { .. } => prop_assert_eq!(run.answers.len(), 1),
            Handled::HandedOver { .. } => prop_assert!(run.answers.is_empty()),
            other => return Err(TestCaseError::fail(format!("a hand-over ended {other:?}"))),
        },
        Handled::Duplicate => return Err(TestCaseError::fail("a fresh event was a duplicate")),
    }
    Ok(bodies)
}

// ---------------------------------------------------------------------------------------------
// Strategies. Each is boxed: unboxed, the nested value trees of `case()` take stack frames that
// overflow the 2 MiB test thread of a debug build.

/// Characters JSON must escape (one becomes up to six bytes), and some multi-byte ones.
fn escape_heavy(len: std::ops::Range<usize>) -> BoxedStrategy<String> {
    prop::collection::vec(
        prop::sample::select(vec![
            '"', '\\', '\u{0}', '\u{1}', '\n', '\u{1f}', 'é', '€', '😀', 'a', '\u{2028}',
        ]),
        len,
    )
    .prop_map(|chars| chars.into_iter().collect())
    .boxed()
}

/// Strings from short and plain to huge, unicode or (short and) full of characters JSON escapes.
/// Long strings of escaped characters are in [`id_text`] only.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[A-Za-z0-9-]{1,40}",
        1 => Just(String::new()),
        2 => any::<String>(),
        1 => "\\PC{0,60}",
        1 => (0usize..6000).prop_map(|n| "x".repeat(n)),
        1 => (0usize..2500).prop_map(|n| "é".repeat(n)),
        2 => escape_heavy(0..40),
    ]
    .boxed()
}

fn finite_float() -> BoxedStrategy<Value> {
    any::<f64>()
        .prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        })
        .boxed()
}

/// Any JSON value, nested at most 4 deep.
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite_float(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

fn padded(core: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    let pad = || prop_oneof![3 => Just(String::new()), 1 => "[ \t\n]{1,3}"];
    (pad(), core, pad())
        .prop_map(|(before, core, after)| format!("{before}{core}{after}"))
        .boxed()
}

/// Numbers, mostly sent as strings the way CloudFormation sends them, and things that are not.
fn number_like() -> BoxedStrategy<Value> {
    let numeric_text = prop_oneof![
        (0u64..=12).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[+-]?[0-9]{1,25}",
        "[0-9]{1,3}\\.[0-9]{1,3}",
        "[0-9a-fx_e]{0,6}",
        Just(String::new()),
        text(),
    ];
    prop_oneof![
        5 => padded(numeric_text).prop_map(Value::from),
        3 => (0u64..=12).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => finite_float(),
        1 => prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from)],
        1 => arb_json(),
    ]
    .boxed()
}

fn bool_like() -> BoxedStrategy<Value> {
    let words = padded(prop_oneof![
        prop::sample::select(vec![
            "true", "false", "True", "FALSE", "yes", "1", "", "tru"
        ])
        .prop_map(str::to_owned),
        text(),
    ]);
    prop_oneof![
        4 => words.prop_map(Value::from),
        3 => any::<bool>().prop_map(Value::from),
        1 => prop_oneof![Just(Value::Null), (0u64..2).prop_map(Value::from)],
        1 => arb_json(),
    ]
    .boxed()
}

fn list_like() -> BoxedStrategy<Value> {
    let item = prop_oneof![
        4 => text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => arb_json(),
    ];
    prop_oneof![
        3 => text().prop_map(|items| Value::from(format!("subnet-1, {items},subnet-2"))),
        3 => prop::collection::vec(item, 0..5).prop_map(Value::Array),
        1 => Just(Value::Null),
        1 => arb_json(),
    ]
    .boxed()
}

fn mode_like() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::sample::select(MODES).prop_map(Value::from),
        1 => prop::sample::select(vec!["ok", "OK", "Hang", "", " Ok"]).prop_map(Value::from),
        1 => prop::sample::select(MODES).prop_map(|mode| json!({ mode: null })),
        1 => arb_json(),
    ]
    .boxed()
}

fn string_like() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => text().prop_map(Value::from),
        1 => arb_json(),
    ]
    .boxed()
}

fn tag_like() -> BoxedStrategy<Value> {
    let object = (
        prop::option::weighted(0.9, string_like()),
        prop::option::weighted(0.9, number_like()),
        prop::option::of(arb_json()),
    )
        .prop_map(|(key, weight, extra)| {
            let mut tag = Map::new();
            if let Some(key) = key {
                tag.insert("Key".into(), key);
            }
            if let Some(weight) = weight {
                tag.insert("Weight".into(), weight);
            }
            if let Some(extra) = extra {
                tag.insert("Note".into(), extra);
            }
            Value::Object(tag)
        });
    prop_oneof![
        6 => prop::collection::vec(object, 0..4).prop_map(Value::Array),
        1 => arb_json(),
    ]
    .boxed()
}

/// A name that is neither a property nor reserved (a case variant, a typo, or anything).
fn unknown_name() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(KNOWN).prop_map(|name| name.to_lowercase()),
        prop::sample::select(KNOWN).prop_map(|name| format!("{name}s")),
        text(),
    ]
    .prop_filter("not a known name", |name| {
        !KNOWN.contains(&name.as_str()) && !RESERVED.contains(&name.as_str())
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// The oracle: what the documented decoding rules (de.rs) accept, written independently.

fn whole<T: std::str::FromStr>(
    value: &Value,
    from_json: impl Fn(&serde_json::Number) -> Option<T>,
) -> Option<T> {
    match value {
        Value::String(text) => text.trim().parse::<T>().ok(),
        Value::Number(number) => from_json(number),
        _ => None,
    }
}

fn as_u32(value: &Value) -> Option<u32> {
    whole(value, |n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
}

fn as_u8(value: &Value) -> Option<u8> {
    whole(value, |n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
}

fn as_i64(value: &Value) -> Option<i64> {
    whole(value, serde_json::Number::as_i64)
}

fn blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn valid_list(value: &Value) -> bool {
    match value {
        Value::Null | Value::String(_) => true,
        Value::Array(items) => items
            .iter()
            .all(|item| item.is_string() || item.is_number()),
        _ => false,
    }
}

fn valid_mode(value: &Value) -> bool {
    match value {
        Value::String(mode) => MODES.contains(&mode.as_str()),
        // serde's externally tagged form of a unit variant.
        Value::Object(map) => {
            map.len() == 1
                && map
                    .iter()
                    .all(|(mode, inner)| MODES.contains(&mode.as_str()) && inner.is_null())
        }
        _ => false,
    }
}

fn valid_tags(value: &Value) -> bool {
    let valid_tag = |tag: &Value| match tag {
        Value::Object(tag) => {
            tag.get("Key").is_some_and(Value::is_string)
                && tag.get("Weight").and_then(as_u8).is_some()
        }
        // serde also reads a struct from a list of its fields in order.
        Value::Array(fields) => {
            fields.len() == 2 && fields[0].is_string() && as_u8(&fields[1]).is_some()
        }
        _ => false,
    };
    match value {
        Value::Array(tags) => tags.iter().all(valid_tag),
        _ => false,
    }
}

/// True when `name: value` is a property value GadgetProperties accepts.
fn valid_property(name: &str, value: &Value) -> bool {
    match name {
        "Name" => value.is_string(),
        "Count" => as_u32(value).is_some_and(|count| count <= 10),
        "Offset" => blank(value) || as_i64(value).is_some(),
        "Enabled" => as_bool(value).is_some(),
        "Public" => blank(value) || as_bool(value).is_some(),
        "Subnets" => valid_list(value),
        "Mode" => valid_mode(value),
        "WaitPolls" => blank(value) || as_u32(value).is_some(),
        "Secret" => value.is_null() || value.is_string(),
        "Tags" => valid_tags(value),
        _ => RESERVED.contains(&name),
    }
}

/// ResourceProperties and whether they parse, by the oracle.
#[derive(Debug, Clone)]
struct Props {
    value: Value,
    valid: bool,
}

fn props_from(value: Value) -> Props {
    let valid = match &value {
        Value::Object(map) => {
            map.contains_key("Name") && map.iter().all(|(name, value)| valid_property(name, value))
        }
        _ => false, // null parses as {} and lacks Name; anything else is not an object
    };
    Props { value, valid }
}

/// Property objects built field by field, each field absent, valid or not.
fn property_object() -> BoxedStrategy<Value> {
    let field = |name: &'static str, strategy: BoxedStrategy<Value>| {
        prop::option::of(strategy)
            .prop_map(move |value| value.map(|value| (name.to_owned(), value)))
    };
    let fields = (
        prop::option::weighted(0.95, string_like()).prop_map(|v| v.map(|v| ("Name".to_owned(), v))),
        field("Count", number_like().boxed()),
        field("Offset", number_like().boxed()),
        field("Enabled", bool_like().boxed()),
        field("Public", bool_like().boxed()),
        field("Subnets", list_like().boxed()),
        field("Mode", mode_like().boxed()),
        field("WaitPolls", number_like().boxed()),
        field(
            "Secret",
            prop_oneof![
                3 => text().prop_map(Value::from),
                1 => Just(json!([SECRET_MARKER])),
                1 => Just(json!({ "value": SECRET_MARKER })),
                1 => Just(Value::Null),
            ]
            .boxed(),
        ),
        field("Tags", tag_like().boxed()),
    );
    let extras = (
        prop::option::weighted(0.5, arb_json()),    // ServiceToken
        prop::option::weighted(0.5, number_like()), // ServiceTimeout
        prop::collection::vec((unknown_name(), arb_json()), 0..2),
        prop::bool::weighted(0.8), // drop the unknown names most of the time
    );
    (fields, extras)
        .prop_map(
            |((a, b, c, d, e, f, g, h, i, j), (token, timeout, unknown, drop_unknown))| {
                let mut map: Map<String, Value> = [a, b, c, d, e, f, g, h, i, j]
                    .into_iter()
                    .flatten()
                    .collect();
                if let Some(token) = token {
                    map.insert("ServiceToken".into(), token);
                }
                if let Some(timeout) = timeout {
                    map.insert("ServiceTimeout".into(), timeout);
                }
                if !drop_unknown {
                    map.extend(unknown);
                }
                Value::Object(map)
            },
        )
        .boxed()
}

/// Property objects of mostly valid values, as CloudFormation sends them (strings) or as JSON.
fn clean_object() -> BoxedStrategy<Value> {
    let either = |number: Value| {
        prop_oneof![
            Just(number.clone()),
            padded(Just(number.to_string())).prop_map(Value::from)
        ]
    };
    let small = move |max: u64| (0..=max).prop_flat_map(move |n| either(Value::from(n)));
    let flag = || {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            padded(
                prop::sample::select(vec!["true", "false", "True", "FALSE"])
                    .prop_map(str::to_owned)
            )
            .prop_map(Value::from),
        ]
    };
    let tag = (text(), small(255)).prop_map(|(key, weight)| json!({"Key": key, "Weight": weight}));
    let fields = (
        text(),
        prop::option::of(small(10)),
        prop::option::of(any::<i64>().prop_flat_map(move |n| either(Value::from(n)))),
        prop::option::of(flag()),
        prop::option::of(prop_oneof![
            flag(),
            Just(Value::from("")),
            Just(Value::Null)
        ]),
        prop::option::of(prop_oneof![
            text().prop_map(Value::from),
            prop::collection::vec(text().prop_map(Value::from), 0..4).prop_map(Value::Array),
        ]),
        prop::option::of(prop_oneof![
            5 => Just("Ok"), 2 => Just("Wait"), 1 => Just("Fail"), 1 => Just("Panic"),
            1 => Just("BigData"), 1 => Just("HugeReason"),
        ]),
        prop::option::of(small(6)),
        prop::option::of(text()),
        prop::option::of(prop::collection::vec(tag, 0..3)),
        prop::option::of(small(4000)), // ServiceTimeout
    );
    fields
        .prop_map(
            |(
                name,
                count,
                offset,
                enabled,
                public,
                subnets,
                mode,
                polls,
                secret,
                tags,
                timeout,
            )| {
                let mut map = Map::new();
                map.insert("Name".into(), Value::from(name));
                let mut put = |key: &str, value: Option<Value>| {
                    if let Some(value) = value {
                        map.insert(key.to_owned(), value);
                    }
                };
                put("Count", count);
                put("Offset", offset);
                put("Enabled", enabled);
                put("Public", public);
                put("Subnets", subnets);
                put("Mode", mode.map(Value::from));
                put("WaitPolls", polls);
                put("Secret", secret.map(Value::from));
                put("Tags", tags.map(Value::Array));
                put("ServiceTimeout", timeout);
                Value::Object(map)
            },
        )
        .boxed()
}

/// Property values of every kind, labelled valid or not by the oracle.
fn props() -> BoxedStrategy<Props> {
    prop_oneof![
        10 => clean_object(),
        4 => property_object(),
        1 => Just(Value::Null),
        1 => arb_json(),
    ]
    .prop_map(props_from)
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Events.

/// A field of the event: absent (`None`) or a value.
type Field = Option<Value>;

/// Ids, including hundreds of characters JSON escapes (see
/// [`an_id_of_characters_json_escapes_still_fits_in_4096_bytes`]).
fn id_text() -> BoxedStrategy<String> {
    prop_oneof![2 => text(), 1 => escape_heavy(200..1500)].boxed()
}

fn id_field() -> BoxedStrategy<Field> {
    prop_oneof![
        40 => id_text().prop_map(|id| Some(Value::from(id))),
        1 => Just(None),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

fn request_type_field() -> BoxedStrategy<Field> {
    prop_oneof![
        20 => prop::sample::select(vec!["Create", "Update", "Delete"])
            .prop_map(|kind| Some(Value::from(kind))),
        1 => prop::sample::select(vec!["create", "Replace", "", "Delete "])
            .prop_map(|kind| Some(Value::from(kind))),
        1 => text().prop_map(|kind| Some(Value::from(kind))),
        1 => Just(None),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

fn physical_id_field() -> BoxedStrategy<Field> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::from(""))),
        10 => id_text().prop_map(|id| Some(Value::from(id))),
        2 => id_text().prop_map(|id| Some(Value::from(format!("{CREATE_FAILED_PREFIX}{id}")))),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

/// The hand-over state, including the last invocation number (see
/// [`a_continuation_at_the_last_invocation_number_answers_without_panicking`]).
fn continuation_field() -> BoxedStrategy<Field> {
    let invocation = prop_oneof![4 => 2u32..6, 1 => 0u32..u32::MAX, 1 => Just(u32::MAX)].boxed();
    let carried = (
        prop_oneof![
            1 => arb_json(),
            1 => (0u64..50).prop_map(|left| json!({ "left": left })),
        ],
        invocation,
        any::<u64>(),
        text(),
        prop::option::of(text()),
    )
        .prop_map(|(progress, invocation, started_at_ms, waiting_for, id)| {
            Some(json!({
                "Progress": progress,
                "Invocation": invocation,
                "StartedAtMs": started_at_ms,
                "WaitingFor": waiting_for,
                "PhysicalResourceId": id,
            }))
        });
    prop_oneof![
        8 => Just(None),
        1 => arb_json().prop_map(Some),
        1 => carried,
    ]
    .boxed()
}

/// A CloudFormation-shaped event (always with an allowed ResponseURL) and what it must do.
#[derive(Debug, Clone)]
struct Case {
    event: Value,
    /// The event decodes and its properties (and old properties, for Update) parse.
    reaches_resource: bool,
    /// A Delete of a create-failed marker id: answered SUCCESS without calling the resource
    /// (unless the id is over CloudFormation's 1024 bytes as JSON, which no answer may carry: FAILED).
    marker_success: bool,
    /// The Lambda invocation's length, in seconds.
    seconds: u64,
}

fn case() -> BoxedStrategy<Case> {
    (
        (
            request_type_field(),
            id_field(), // RequestId
            id_field(), // StackId
            id_field(), // LogicalResourceId
            id_field(), // ResourceType
            prop_oneof![10 => Just(None), 10 => id_field(), 1 => arb_json().prop_map(Some)], // ServiceToken
            physical_id_field(),
            prop::sample::select(vec![RESPONSE_URL, RESPONSE_URL_CN]),
        ),
        (
            prop::option::weighted(0.95, props()),
            prop::option::weighted(0.95, props()), // OldResourceProperties
            continuation_field(),
            prop::collection::vec((text(), arb_json()), 0..2), // unknown top-level keys
            prop::sample::select(vec![8u64, 30, 120]),
        ),
    )
        .prop_map(|(ids, (properties, old, continuation, extra, seconds))| {
            let event = Event {
                ids,
                properties,
                old,
                continuation,
                extra,
            };
            case_of(event, seconds)
        })
        .boxed()
}

/// One generated event's fields, before they are put together.
struct Event {
    /// RequestType, RequestId, StackId, LogicalResourceId, ResourceType, ServiceToken,
    /// PhysicalResourceId, ResponseURL.
    ids: (
        Field,
        Field,
        Field,
        Field,
        Field,
        Field,
        Field,
        &'static str,
    ),
    properties: Option<Props>,
    old: Option<Props>,
    continuation: Field,
    extra: Vec<(String, Value)>,
}

/// The event as JSON (a None field left out) and what the protocol driver must do with it.
fn case_of(fields: Event, seconds: u64) -> Case {
    let Event {
        ids:
            (request_type, request_id, stack_id, logical_id, resource_type, token, physical_id, url),
        properties,
        old,
        continuation,
        extra,
    } = fields;
    let mut event = Map::new();
    for (key, value) in extra {
        event.insert(key, value);
    }
    let mut put = |key: &str, value: &Field| {
        match value {
            Some(value) => event.insert(key.to_owned(), value.clone()),
            None => event.remove(key),
        };
    };
    put("RequestType", &request_type);
    put("ResponseURL", &Some(Value::from(url)));
    put("RequestId", &request_id);
    put("StackId", &stack_id);
    put("LogicalResourceId", &logical_id);
    put("ResourceType", &resource_type);
    put("ServiceToken", &token);
    put("PhysicalResourceId", &physical_id);
    put(
        "ResourceProperties",
        &properties.as_ref().map(|p| p.value.clone()),
    );
    put(
        "OldResourceProperties",
        &old.as_ref().map(|p| p.value.clone()),
    );
    put(CONTINUATION_KEY, &continuation);

    let kind = request_type.as_ref().and_then(Value::as_str);
    let is_string = |field: &Field| field.as_ref().is_some_and(Value::is_string);
    let physical = physical_id.as_ref().and_then(Value::as_str);
    let decodes = matches!(kind, Some("Create" | "Update" | "Delete"))
        && [&request_id, &stack_id, &logical_id, &resource_type]
            .into_iter()
            .all(is_string)
        && token.as_ref().is_none_or(|t| t.is_null() || t.is_string())
        && properties.is_some()
        && (kind == Some("Create") || physical.is_some())
        && (kind != Some("Update") || old.is_some());
    let marker_delete = decodes
        && kind == Some("Delete")
        && physical.is_some_and(|id| id.starts_with(CREATE_FAILED_PREFIX));
    let reaches_resource = decodes
        && !marker_delete
        && properties.as_ref().is_some_and(|p| p.valid)
        && (kind != Some("Update") || old.as_ref().is_some_and(|p| p.valid));
    Case {
        event: Value::Object(event),
        reaches_resource,
        marker_success: marker_delete && physical.is_some_and(|id| json_len(id) <= 1024),
        seconds,
    }
}

/// Arbitrary objects whose keys are mostly the protocol's, with arbitrary values.
fn event_like() -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(vec![
            "RequestType",
            "ResponseURL",
            "RequestId",
            "StackId",
            "LogicalResourceId",
            "ResourceType",
            "PhysicalResourceId",
            "ResourceProperties",
            "OldResourceProperties",
            "ServiceToken",
            CONTINUATION_KEY,
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![
        3 => arb_json(),
        1 => prop::sample::select(vec!["Create", "Update", "Delete", RESPONSE_URL])
            .prop_map(Value::from),
    ];
    (
        prop::collection::vec((key, value), 0..12),
        prop::option::weighted(0.7, prop_oneof![
            4 => Just(Value::from(RESPONSE_URL)),
            1 => Just(Value::from("http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x")),
            1 => Just(Value::from("https://example.com/amazonaws.com")),
            1 => arb_json(),
        ]),
    )
        .prop_map(|(pairs, url)| {
            let mut event: Map<String, Value> = pairs.into_iter().collect();
            if let Some(url) = url {
                event.insert("ResponseURL".into(), url);
            }
            Value::Object(event)
        }).boxed()
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Property 2's check: exactly one well-formed answer (or a wait still handed over), and the
/// resource called exactly when the event decodes and its properties parse.
fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let outcome = run(case.event.clone(), case.seconds);
    let bodies = check_run(&case.event, &outcome)?;
    let still_waiting = matches!(outcome.last, Handled::HandedOver { .. });
    if !still_waiting {
        prop_assert_eq!(bodies.len(), 1, "exactly one answer");
    }
    if case.reaches_resource {
        prop_assert!(outcome.calls >= 1, "valid input never reached the resource");
    } else {
        prop_assert_eq!(outcome.calls, 0, "bad input reached the resource");
        prop_assert_eq!(outcome.hand_overs, 0);
        let status = bodies[0]["Status"].as_str().unwrap_or_default();
        let expected = if case.marker_success {
            "SUCCESS"
        } else {
            "FAILED"
        };
        prop_assert_eq!(status, expected, "{}", bodies[0]);
    }
    for body in &bodies {
        prop_assert!(
            !body["Reason"]
                .as_str()
                .unwrap_or_default()
                .contains(SECRET_MARKER),
            "the secret was quoted: {}",
            body
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// 1. Any JSON value as the whole event: no panic, at most one answer, each well-formed.
    #[test]
    fn any_json_event_gets_at_most_one_well_formed_answer(
        event in prop_oneof![1 => arb_json(), 3 => event_like()],
    ) {
        let answerable = event
            .get("ResponseURL")
            .and_then(Value::as_str)
            .is_some_and(|url| url == RESPONSE_URL);
        let outcome = run(event.clone(), 30);
        check_run(&event, &outcome)?;
        if !answerable {
            prop_assert_eq!(&outcome.first, &Handled::Refused);
        }
    }

    /// 2. Events shaped like CloudFormation's: exactly one well-formed answer, and the resource
    /// is called exactly when the event decodes and its properties parse.
    #[test]
    fn every_cloudformation_shaped_event_gets_exactly_one_answer_and_bad_input_reaches_nothing(
        case in case(),
    ) {
        check_case(&case)?;
    }

    /// 3a. Decoding arbitrary objects never panics; errors say something.
    #[test]
    fn decoding_any_object_never_panics(
        pairs in prop::collection::vec(
            (
                prop_oneof![3 => prop::sample::select(KNOWN).prop_map(str::to_owned), 1 => text()],
                arb_json(),
            ),
            0..12,
        ),
    ) {
        let raw = Value::Object(pairs.into_iter().collect());
        if let Err(error) = properties::parse::<GadgetProperties>(&raw) {
            prop_assert!(!error.message.is_empty());
            prop_assert!(!error.to_string().contains(SECRET_MARKER));
        }
        prop_assert!(properties::field_names::<GadgetProperties>().is_some());
    }

    /// 3b. Decoding accepts exactly what the documented rules accept (strings or JSON scalars,
    /// no unknown names, validate() after parsing), and never quotes a secret.
    #[test]
    fn decoding_accepts_exactly_the_valid_properties(props in props()) {
        let parsed = properties::parse::<GadgetProperties>(&props.value);
        prop_assert_eq!(parsed.is_ok(), props.valid, "{:?}", parsed.as_ref().err());
        if let Err(error) = parsed {
            prop_assert!(!error.message.is_empty());
            prop_assert!(!error.to_string().contains(SECRET_MARKER), "{}", error);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: the two bugs the properties above found, as minimal cases.

const CREATE: &str = include_str!("fixtures/create.json");
const DELETE: &str = include_str!("fixtures/delete.json");

/// Was: ids were capped in raw bytes, but the body is JSON, where `"`, `\` and control
/// characters take 2 to 6 bytes; a Delete whose PhysicalResourceId was 700 × U+0001 (700 bytes,
/// 4200 escaped) got a 4508-byte body, which CloudFormation refuses. Now the id is capped as the
/// body carries it, and an id no answer can carry is refused by name.
#[test]
fn an_id_of_characters_json_escapes_still_fits_in_4096_bytes() {
    let mut event: Value = serde_json::from_str(DELETE).unwrap();
    event["PhysicalResourceId"] = json!("\u{1}".repeat(700));
    let outcome = run(event, 30);
    assert_eq!(outcome.answers.len(), 1);
    let (_, body) = &outcome.answers[0];
    assert!(
        body.len() <= MAX_BODY_BYTES,
        "a body of {} bytes",
        body.len()
    );
    let answer: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("the physical id is 4200 bytes as JSON"),
        "{answer}"
    );
}

/// Was: `ctx.invocation + 1` overflowed when a continuation carried `"Invocation": 4294967295`
/// and the wait was handed over again (a panic in debug builds, a wrap to 0 in release). Only a
/// forged event carries that number; it now gets one FAILED answer that says so.
#[test]
fn a_continuation_at_the_last_invocation_number_answers_without_panicking() {
    let mut event: Value = serde_json::from_str(CREATE).unwrap();
    event[CONTINUATION_KEY] = json!({
        "Progress": {"left": 100},
        "Invocation": u32::MAX,
        "StartedAtMs": custom_resource::epoch_ms(std::time::SystemTime::now()),
        "WaitingFor": "the gadget to become ready",
    });
    let outcome = run(event.clone(), 8);
    let bodies = check_run(&event, &outcome).unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["Status"], "FAILED");
    assert!(bodies[0]["Reason"]
        .as_str()
        .unwrap()
        .contains("invocation number is at its limit"));
}

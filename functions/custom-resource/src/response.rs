//! The response body: always valid, always ≤ 4096 bytes.

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use std::collections::{BTreeMap, HashMap};

/// CloudFormation rejects larger bodies with "Response object is too long".
pub const MAX_BODY_BYTES: usize = 4096;

/// CloudFormation's limit on a physical id.
pub const MAX_PHYSICAL_ID_BYTES: usize = 1024;

/// Prefix of the physical id a failed Create answers with. The rollback Delete that carries it
/// succeeds at once without calling the resource: nothing was created.
pub const CREATE_FAILED_PREFIX: &str = "custom-resource:create-failed:";

/// The physical id an answer carries when the resource returned none (a bug in the resource).
pub const MISSING_PHYSICAL_ID: &str = "custom-resource:missing-physical-id";

/// The physical id a failed Create answers with.
pub fn create_failed_id(request_id: &str) -> String {
    let mut id = format!("{CREATE_FAILED_PREFIX}{request_id}");
    truncate_escaped(&mut id, MAX_PHYSICAL_ID_BYTES);
    id
}

/// True for ids made by [`create_failed_id`].
pub fn is_create_failed_id(physical_id: &str) -> bool {
    physical_id.starts_with(CREATE_FAILED_PREFIX)
}

/// The identifiers every response copies from its request.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub request_id: String,
    pub stack_id: String,
    pub logical_resource_id: String,
}

/// A decided answer, before rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub success: bool,
    pub reason: Option<String>,
    pub physical_id: String,
    pub data: BTreeMap<String, String>,
    pub no_echo: bool,
}

impl Answer {
    pub fn success(physical_id: String, data: BTreeMap<String, String>, no_echo: bool) -> Self {
        Self {
            success: true,
            reason: None,
            physical_id,
            data,
            no_echo,
        }
    }

    pub fn failed(physical_id: String, reason: impl Into<String>) -> Self {
        Self {
            success: false,
            reason: Some(reason.into()),
            physical_id,
            data: BTreeMap::new(),
            no_echo: false,
        }
    }

    pub fn status(&self) -> &'static str {
        if self.success {
            "SUCCESS"
        } else {
            "FAILED"
        }
    }
}

fn to_body(answer: &Answer, ids: &Ids) -> Vec<u8> {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = if answer.success {
        CloudFormationCustomResourceResponseStatus::Success
    } else {
        CloudFormationCustomResourceResponseStatus::Failed
    };
    response.reason = answer.reason.clone();
    response.physical_resource_id = answer.physical_id.clone();
    response.stack_id = ids.stack_id.clone();
    response.request_id = ids.request_id.clone();
    response.logical_resource_id = ids.logical_resource_id.clone();
    response.no_echo = answer.no_echo;
    response.data = answer
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<HashMap<_, _>>();
    // Serializing plain strings and maps cannot fail.
    serde_json::to_vec(&response).unwrap_or_default()
}

/// Renders the body, enforcing CloudFormation's limits: a SUCCESS whose Data does not fit becomes
/// a FAILED that says so (keeping the physical id, so a rollback Delete still cleans up), and a
/// Reason that does not fit is truncated with a visible marker. Returns the body and the answer
/// actually sent.
pub fn render(answer: &Answer, ids: &Ids) -> (Vec<u8>, Answer) {
    let mut answer = answer.clone();
    if answer.physical_id.is_empty() {
        answer = Answer::failed(
            MISSING_PHYSICAL_ID.into(),
            "the resource returned an empty physical id; this is a bug in the resource",
        );
    } else if escaped_len(&answer.physical_id) > MAX_PHYSICAL_ID_BYTES {
        // Counted as the body carries it: JSON escaping can grow a character to six bytes, and
        // only a capped id leaves room for the rest of the body.
        let mut id = answer.physical_id.clone();
        truncate_escaped(&mut id, MAX_PHYSICAL_ID_BYTES);
        answer = Answer::failed(
            id,
            format!(
                "the physical id is {} bytes as JSON ({} raw); CloudFormation allows {MAX_PHYSICAL_ID_BYTES}. Use a shorter id without control characters",
                escaped_len(&answer.physical_id),
                answer.physical_id.len()
            ),
        );
    }
    let body = to_body(&answer, &ids_fit(ids));
    if body.len() <= MAX_BODY_BYTES {
        return (body, answer);
    }
    if answer.success {
        let mut sizes: Vec<(usize, &String)> = answer
            .data
            .iter()
            .map(|(key, value)| (key.len() + value.len(), key))
            .collect();
        sizes.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        let largest: Vec<String> = sizes
            .iter()
            .take(3)
            .map(|(size, key)| format!("{key} ({size} bytes)"))
            .collect();
        answer = Answer::failed(
            answer.physical_id.clone(),
            format!(
                "the response Data is too large: the body would be {} bytes and CloudFormation accepts at most {MAX_BODY_BYTES}; largest keys: {}. Return fewer or shorter attributes (store large values in SSM Parameter Store and return the parameter name)",
                body.len(),
                largest.join(", ")
            ),
        );
    }
    let body = to_body(&answer, &ids_fit(ids));
    if body.len() <= MAX_BODY_BYTES {
        return (body, answer);
    }
    truncate_reason(&mut answer, ids);
    (to_body(&answer, &ids_fit(ids)), answer)
}

/// The bytes `text` takes inside a JSON string (without the quotes).
fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped_char_len).sum()
}

fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Cuts `text` at a character boundary so that its JSON-escaped form fits in `max_bytes`.
fn truncate_escaped(text: &mut String, max_bytes: usize) {
    let mut used = 0;
    let mut cut = text.len();
    for (index, c) in text.char_indices() {
        used += escaped_char_len(c);
        if used > max_bytes {
            cut = index;
            break;
        }
    }
    text.truncate(cut);
}

/// Ids come from CloudFormation and are short; cap them anyway so the body limit always holds.
fn ids_fit(ids: &Ids) -> Ids {
    let mut fitted = ids.clone();
    truncate_escaped(&mut fitted.request_id, 512);
    truncate_escaped(&mut fitted.stack_id, 1024);
    truncate_escaped(&mut fitted.logical_resource_id, 512);
    fitted
}

fn truncate_reason(answer: &mut Answer, ids: &Ids) {
    let full = answer.reason.clone().unwrap_or_default();
    let ids = ids_fit(ids);
    // Find the longest prefix (in chars) whose body, marker included, fits. Escaping can grow a
    // character to six bytes, so measure the rendered body instead of counting.
    let chars: Vec<(usize, char)> = full.char_indices().collect();
    let (mut low, mut high) = (0usize, chars.len());
    let candidate = |count: usize| -> String {
        let cut = chars
            .get(count)
            .map(|(index, _)| *index)
            .unwrap_or(full.len());
        format!(
            "{} [reason truncated: {} of {} bytes omitted, see the function's logs]",
            &full[..cut],
            full.len() - cut,
            full.len()
        )
    };
    let fits = |count: usize, answer: &mut Answer| -> bool {
        answer.reason = Some(candidate(count));
        to_body(answer, &ids).len() <= MAX_BODY_BYTES
    };
    while low < high {
        let mid = (low + high).div_ceil(2);
        if fits(mid, answer) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    answer.reason = Some(candidate(low));
    if to_body(answer, &ids).len() > MAX_BODY_BYTES {
        // Only reachable with a huge physical id; the marker alone must then do.
        answer.reason = Some("[reason truncated, see the function's logs]".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ids() -> Ids {
        Ids {
            request_id: "5a6e2b7c-1111-4c3a-9d2e-0f00a1b2c3d4".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/demo/0a1b2c3d-4e5f-11ef-8f00-0a1b2c3d4e5f".into(),
            logical_resource_id: "Parameter".into(),
        }
    }

    fn parsed(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn a_success_carries_the_ids_copied_from_the_request_and_the_data() {
        let data = BTreeMap::from([("Arn".to_owned(), "arn:x".to_owned())]);
        let (body, sent) = render(&Answer::success("p-1".into(), data, false), &ids());
        let json = parsed(&body);
        assert_eq!(json["Status"], "SUCCESS");
        assert_eq!(json["PhysicalResourceId"], "p-1");
        assert_eq!(json["RequestId"], ids().request_id);
        assert_eq!(json["StackId"], ids().stack_id);
        assert_eq!(json["LogicalResourceId"], "Parameter");
        assert_eq!(json["Data"]["Arn"], "arn:x");
        assert_eq!(json["NoEcho"], false);
        assert!(sent.success);
    }

    #[test]
    fn a_reason_too_long_is_truncated_with_a_visible_marker_and_fits() {
        let reason = "é".repeat(5000);
        let (body, sent) = render(&Answer::failed("p-1".into(), reason), &ids());
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        assert!(
            body.len() > MAX_BODY_BYTES - 64,
            "truncation wastes room: {}",
            body.len()
        );
        let json = parsed(&body);
        let shown = json["Reason"].as_str().unwrap();
        assert!(shown.starts_with("éé"));
        assert!(shown.contains("[reason truncated:"), "{shown}");
        assert_eq!(sent.reason.as_deref(), Some(shown));
    }

    #[test]
    fn a_reason_of_characters_json_must_escape_still_fits() {
        let (body, _) = render(&Answer::failed("p".into(), "\u{1}\"".repeat(3000)), &ids());
        assert!(body.len() <= MAX_BODY_BYTES);
    }

    #[test]
    fn data_that_cannot_fit_turns_success_into_a_failure_that_says_so_and_keeps_the_id() {
        let data = BTreeMap::from([("Big".to_owned(), "x".repeat(5000))]);
        let (body, sent) = render(&Answer::success("p-1".into(), data, false), &ids());
        assert!(body.len() <= MAX_BODY_BYTES);
        let json = parsed(&body);
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["PhysicalResourceId"], "p-1");
        assert!(json["Reason"]
            .as_str()
            .unwrap()
            .contains("Data is too large"));
        assert!(json["Reason"]
            .as_str()
            .unwrap()
            .contains("Big (5003 bytes)"));
        assert_eq!(json["Data"], serde_json::json!({}));
        assert!(!sent.success);
    }

    #[test]
    fn an_oversized_or_empty_physical_id_is_refused() {
        let (body, _) = render(
            &Answer::success("x".repeat(2000), BTreeMap::new(), false),
            &ids(),
        );
        let json = parsed(&body);
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["PhysicalResourceId"].as_str().unwrap().len(), 1024);
        let (body, _) = render(
            &Answer::success(String::new(), BTreeMap::new(), false),
            &ids(),
        );
        assert_eq!(parsed(&body)["Status"], "FAILED");
    }

    #[test]
    fn ids_of_characters_json_escapes_are_capped_as_the_body_carries_them() {
        let escaped = "\u{1}".repeat(700);
        let many = Ids {
            request_id: escaped.clone(),
            stack_id: escaped.clone(),
            logical_resource_id: escaped.clone(),
        };
        let (body, sent) = render(&Answer::success(escaped, BTreeMap::new(), false), &many);
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        let json = parsed(&body);
        assert_eq!(json["Status"], "FAILED");
        assert!(sent
            .reason
            .unwrap()
            .contains("4200 bytes as JSON (700 raw)"));
        // 170 characters of six escaped bytes each: the most that fits in 1024.
        assert_eq!(
            json["PhysicalResourceId"].as_str().unwrap().chars().count(),
            170
        );
    }

    #[test]
    fn the_create_failed_marker_is_recognised() {
        let id = create_failed_id("abc");
        assert!(is_create_failed_id(&id));
        assert!(!is_create_failed_id("vpc-123"));
    }
}

//! Typed, validated resource properties.
//!
//! [`parse`] turns the event's `ResourceProperties` into a resource's own `Properties` type:
//! unknown names are rejected (naming the closest known name), every scalar may arrive as a string
//! (see [`crate::de`]), and [`Properties::validate`] runs afterwards so a value that exists is valid.

use serde::de::{DeserializeOwned, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};
use std::fmt;

/// Properties CloudFormation adds to every event; always accepted, never passed to the resource.
pub const RESERVED: &[&str] = &["ServiceToken", "ServiceTimeout"];

/// A resource's properties: a serde struct with `#[serde(rename_all = "PascalCase")]`.
pub trait Properties: DeserializeOwned + Send + Sync + 'static {
    /// Property names whose values are secret: never logged, never quoted in error messages.
    const SECRET: &'static [&'static str] = &[];

    /// Cross-field and range checks. Return a [`PropertyError`] naming the property and the fix.
    fn validate(&self) -> Result<(), PropertyError> {
        Ok(())
    }
}

/// A property that is missing, malformed, unknown or out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    /// Path of the property, e.g. `DesiredCount` or `Tags[0].Key`.
    pub property: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PropertyError {
    pub fn new(property: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            property: property.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PropertyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid property {}: {}", self.property, self.message)
    }
}

impl std::error::Error for PropertyError {}

/// Parses and validates `ResourceProperties` (or `OldResourceProperties`).
pub fn parse<P: Properties>(raw: &Value) -> Result<P, PropertyError> {
    let mut object = match raw {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(PropertyError::new(
                "ResourceProperties",
                format!("expected an object, found {}", kind(other)),
            ))
        }
    };
    for name in RESERVED {
        object.remove(*name);
    }
    if let Some(known) = field_names::<P>() {
        let mut unknown: Vec<&String> = object
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .collect();
        unknown.sort();
        if let Some(first) = unknown.first() {
            return Err(unknown_property(first, &unknown, known));
        }
    }
    let value = Value::Object(object);
    let properties: P = serde_path_to_error::deserialize(&value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        describe(&path, &inner, P::SECRET)
    })?;
    properties.validate()?;
    Ok(properties)
}

/// Returns a copy of the properties with secret values replaced, safe to log.
pub fn redacted(raw: &Value, secret: &[&str]) -> Value {
    match raw {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let shown = if secret.contains(&key.as_str()) {
                        Value::String("*****".into())
                    } else {
                        value.clone()
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn unknown_property(first: &str, all: &[&String], known: &[&str]) -> PropertyError {
    let mut message = if all.len() == 1 {
        "is not a property of this resource".to_owned()
    } else {
        let names: Vec<&str> = all.iter().map(|name| name.as_str()).collect();
        format!(
            "is not a property of this resource (unknown: {})",
            names.join(", ")
        )
    };
    match closest(first, known) {
        Some(closest) => message.push_str(&format!("; did you mean {closest}?")),
        None => message.push('.'),
    }
    let mut listed: Vec<&str> = known.to_vec();
    listed.sort_unstable();
    message.push_str(&format!(" Known properties: {}", listed.join(", ")));
    PropertyError::new(first, message)
}

/// The known name most similar to `name`, if any is reasonably close.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| {
            let score =
                strsim::normalized_damerau_levenshtein(&lower, &candidate.to_ascii_lowercase());
            (score, *candidate)
        })
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

fn describe(path: &str, inner: &str, secret: &[&str]) -> PropertyError {
    // serde reports a missing field at the parent's path.
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let property = if path == "." || path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return PropertyError::new(property, "is required; add it to the resource's Properties");
    }
    let property = if path == "." || path.is_empty() {
        "ResourceProperties".to_owned()
    } else {
        path.to_owned()
    };
    let top = property
        .split(['.', '['])
        .next()
        .unwrap_or(property.as_str());
    if secret.contains(&top) {
        return PropertyError::new(
            property,
            "is invalid (the value is secret, so it is not shown); check its type and format",
        );
    }
    // Drop serde's " at line 1 column 2" noise; values come from JSON we re-serialized.
    let message = match inner.find(" at line ") {
        Some(index) => &inner[..index],
        None => inner,
    };
    PropertyError::new(property, message.to_owned())
}

/// The field names a serde-derived struct declares, read by asking it to deserialize from a
/// deserializer that records the `fields` argument. `None` for types that are not plain structs
/// (e.g. with `#[serde(flatten)]`); those rely on `#[serde(deny_unknown_fields)]` instead.
pub fn field_names<P: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut found = None;
    let _ = P::deserialize(Introspect { found: &mut found });
    found
}

struct Introspect<'a> {
    found: &'a mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.found = Some(fields);
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A user tag as templates write it (`{Key: ..., Value: ...}`), checked by [`check_tags`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The rules every service's tags share: keys of 1 to 128 characters, values of at most 256, no
/// key twice, none starting with `aws:` (AWS's) or [`crate::tags::PREFIX`] (ours). `room`: how
/// many the resource leaves the user (the service's 50 minus the tags it writes itself, `why`
/// says which); `derived`: keys the resource sets itself, with what to do instead.
pub fn check_tags(
    tags: &[Tag],
    room: usize,
    why: &str,
    derived: &[(&str, &str)],
) -> Result<(), PropertyError> {
    let mut keys = std::collections::BTreeSet::new();
    for (index, tag) in tags.iter().enumerate() {
        let at = format!("Tags[{index}].Key");
        if tag.key.is_empty() || tag.key.chars().count() > 128 {
            return Err(PropertyError::new(at, "must be 1 to 128 characters"));
        }
        if let Some((_, instead)) = derived.iter().find(|(key, _)| *key == tag.key) {
            return Err(PropertyError::new(at, *instead));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:")
            || tag.key.starts_with(crate::tags::PREFIX)
        {
            return Err(PropertyError::new(
                at,
                format!(
                    "{} is reserved (aws: and {} keys); choose another key",
                    tag.key,
                    crate::tags::PREFIX
                ),
            ));
        }
        if tag.value.chars().count() > 256 {
            return Err(PropertyError::new(
                format!("Tags[{index}].Value"),
                "must be at most 256 characters",
            ));
        }
        if !keys.insert(tag.key.as_str()) {
            return Err(PropertyError::new(at, format!("{} appears twice", tag.key)));
        }
    }
    if tags.len() > room {
        return Err(PropertyError::new(
            "Tags",
            format!("at most {room} tags ({why}); got {}", tags.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::de;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        name: String,
        #[serde(default, deserialize_with = "de::opt_number")]
        desired_count: Option<u32>,
        #[serde(default, deserialize_with = "de::boolean")]
        enable: bool,
        #[serde(default, deserialize_with = "de::string_list")]
        subnets: Vec<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        tags: Vec<Tag>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        #[serde(deserialize_with = "de::number")]
        weight: u8,
    }

    impl Properties for Sample {
        const SECRET: &'static [&'static str] = &["Password"];
        fn validate(&self) -> Result<(), PropertyError> {
            if self.desired_count == Some(0) && self.enable {
                return Err(PropertyError::new(
                    "DesiredCount",
                    "must be at least 1 when Enable is true",
                ));
            }
            Ok(())
        }
    }

    #[test]
    fn strings_and_native_json_scalars_parse_to_the_same_value() {
        let from_strings: Sample = parse(&json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:1:function:f", "ServiceTimeout": "300",
            "Name": "web", "DesiredCount": "3", "Enable": "true", "Subnets": "subnet-1, subnet-2",
            "Tags": [{"Key": "a", "Weight": "2"}]
        }))
        .unwrap();
        let from_json: Sample = parse(&json!({
            "Name": "web", "DesiredCount": 3, "Enable": true, "Subnets": ["subnet-1", "subnet-2"],
            "Tags": [{"Key": "a", "Weight": 2}]
        }))
        .unwrap();
        assert_eq!(from_strings, from_json);
        assert_eq!(from_json.subnets, vec!["subnet-1", "subnet-2"]);
    }

    #[test]
    fn an_unknown_property_is_named_with_the_closest_known_name() {
        let error = parse::<Sample>(&json!({"Name": "web", "DesiredCuont": "2"})).unwrap_err();
        assert_eq!(error.property, "DesiredCuont");
        assert!(
            error.message.contains("did you mean DesiredCount?"),
            "{}",
            error.message
        );
        assert!(error
            .message
            .contains("Known properties: DesiredCount, Enable, Name"));
    }

    #[test]
    fn an_unknown_property_with_no_close_name_still_lists_the_known_ones() {
        let error = parse::<Sample>(&json!({"Name": "web", "Zzzzzzzz": 1})).unwrap_err();
        assert!(
            error
                .message
                .starts_with("is not a property of this resource. Known properties: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_string_that_is_not_a_number_names_the_property_and_the_expected_form() {
        let error = parse::<Sample>(&json!({"Name": "web", "DesiredCount": "three"})).unwrap_err();
        assert_eq!(error.property, "DesiredCount");
        assert!(
            error.message.contains("\"three\" is not a whole number"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_nested_error_names_its_path() {
        let error =
            parse::<Sample>(&json!({"Name": "web", "Tags": [{"Key": "a", "Weight": "-1"}]}))
                .unwrap_err();
        assert_eq!(error.property, "Tags[0].Weight");
    }

    #[test]
    fn a_string_boolean_other_than_true_or_false_is_rejected_not_read_as_true() {
        let error = parse::<Sample>(&json!({"Name": "web", "Enable": "yes"})).unwrap_err();
        assert_eq!(error.property, "Enable");
        assert!(error.message.contains("not true or false"));
        let off: Sample = parse(&json!({"Name": "web", "Enable": "False"})).unwrap();
        assert!(!off.enable);
    }

    #[test]
    fn a_missing_required_property_is_named() {
        let error = parse::<Sample>(&json!({"DesiredCount": 1})).unwrap_err();
        assert_eq!(error.property, "Name");
        assert!(error.message.contains("is required"));
    }

    #[test]
    fn a_secret_property_value_never_appears_in_the_error() {
        let error = parse::<Sample>(&json!({"Name": "web", "Password": ["hunter2"]})).unwrap_err();
        assert_eq!(error.property, "Password");
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn validation_runs_after_parsing() {
        let error = parse::<Sample>(&json!({"Name": "web", "DesiredCount": "0", "Enable": "true"}))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid property DesiredCount: must be at least 1 when Enable is true"
        );
    }

    #[test]
    fn redaction_hides_secret_values_only() {
        let shown = redacted(
            &json!({"Name": "web", "Password": "hunter2"}),
            Sample::SECRET,
        );
        assert_eq!(shown, json!({"Name": "web", "Password": "*****"}));
    }

    #[test]
    fn field_names_are_read_from_the_serde_derive() {
        let names = field_names::<Sample>().unwrap();
        assert!(names.contains(&"DesiredCount") && names.contains(&"Tags"));
    }

    #[test]
    fn tags_follow_the_shared_rules_and_each_resources_room() {
        let tag = |k: &str, v: &str| super::Tag {
            key: k.into(),
            value: v.into(),
        };
        let name = [(
            "Name",
            "Name tags are derived from the Name property; set Name instead",
        )];
        assert!(check_tags(&[tag("team", "web")], 2, "test", &name).is_ok());
        let error = check_tags(&[tag("aws:x", "1")], 2, "test", &name).unwrap_err();
        assert!(
            error.to_string().contains("Tags[0].Key") && error.to_string().contains("reserved"),
            "{error}"
        );
        let error = check_tags(&[tag("custom-resource:x", "1")], 2, "test", &name).unwrap_err();
        assert!(error.to_string().contains("reserved"), "{error}");
        let error = check_tags(&[tag("Name", "1")], 2, "test", &name).unwrap_err();
        assert!(error.to_string().contains("set Name instead"), "{error}");
        let error = check_tags(&[tag("a", "1"), tag("a", "2")], 2, "test", &name).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");
        let error = check_tags(&[tag("a", &"v".repeat(257))], 2, "test", &name).unwrap_err();
        assert!(error.to_string().contains("Tags[0].Value"), "{error}");
        let error = check_tags(
            &[tag("a", "1"), tag("b", "2"), tag("c", "3")],
            2,
            "ECS allows 50",
            &[],
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("at most 2 tags (ECS allows 50)"),
            "{error}"
        );
    }
}

//! Deserializers for property values that CloudFormation sends as strings.
//!
//! CloudFormation turns every scalar in `ResourceProperties` into a string (`3` arrives as `"3"`,
//! `true` as `"true"`), while tests and direct invocations send real JSON. Every helper here accepts
//! both. Use them with `#[serde(deserialize_with = "custom_resource::de::number")]`; the `opt_`
//! variants need `#[serde(default)]` as well.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt::Display;
use std::str::FromStr;

fn expected<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" => "true or false",
        _ => "a value of the documented form",
    }
}

fn scalar<T, E>(value: Value) -> Result<T, E>
where
    T: FromStr + DeserializeOwned,
    T::Err: Display,
    E: serde::de::Error,
{
    match value {
        Value::String(text) => text
            .trim()
            .parse::<T>()
            .map_err(|error| E::custom(format!("{text:?} is not {} ({error})", expected::<T>()))),
        Value::Null => Err(E::custom(format!("null is not {}", expected::<T>()))),
        other => T::deserialize(other.clone())
            .map_err(|_| E::custom(format!("{other} is not {}", expected::<T>()))),
    }
}

/// A number sent as `3` or `"3"`.
pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    scalar(Value::deserialize(deserializer)?)
}

/// An optional number sent as `3` or `"3"`; an empty string counts as absent.
pub fn opt_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + DeserializeOwned,
    T::Err: Display,
{
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        other => scalar(other).map(Some),
    }
}

fn parse_bool<E: serde::de::Error>(value: Value) -> Result<bool, E> {
    match value {
        Value::Bool(flag) => Ok(flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(E::custom(format!("{text:?} is not true or false"))),
        },
        other => Err(E::custom(format!("{other} is not true or false"))),
    }
}

/// A boolean sent as `true`, `"true"` or `"True"` (and the same for false). Anything else is an
/// error: `"yes"` must not silently count as true.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    parse_bool(Value::deserialize(deserializer)?)
}

/// An optional boolean; an empty string counts as absent.
pub fn opt_boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        other => parse_bool(other).map(Some),
    }
}

/// A list of strings sent as a JSON list or as one comma-joined string (what `!Join` and
/// `CommaDelimitedList` parameters produce). Blank items are dropped.
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.trim().to_owned()),
                Value::Number(number) => Ok(number.to_string()),
                other => Err(D::Error::custom(format!(
                    "list items must be strings, found {other}"
                ))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a list of strings or a comma-separated string, found {other}"
        ))),
    }
}

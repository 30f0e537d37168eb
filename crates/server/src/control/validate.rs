//! Turning wire members into validated core values, with AWS-style messages that name the
//! member (docs/protocol.md §3, §8.3). botocore checks only `required` and `min` client-side, so the
//! server enforces every max, pattern and enum itself.

use kvs_core::ids::{ChannelName, ResourceArn, TagKey, TagValue};
use kvs_core::model::MAX_TAGS;
use kvs_core::{Constraint, ErrorCode, ServiceError, Violation};

use super::dto::Tag;
use crate::aws::error::ApiError;
use crate::aws::json::required;

pub fn arn(member: &str, value: Option<String>) -> Result<ResourceArn, ApiError> {
    let value = required(value, member)?;
    Ok(ResourceArn::parse(member, &value)?)
}

pub fn channel_name(member: &str, value: &str) -> Result<ChannelName, ApiError> {
    Ok(ChannelName::parse(member, value)?)
}

pub fn enum_value(
    member: &str,
    value: &str,
    allowed: &'static [&'static str],
) -> Result<&'static str, ApiError> {
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .ok_or_else(|| {
            let got = value.to_owned();
            Violation::new(member, Constraint::Enum { allowed, got }).into()
        })
}

pub fn list_len<T>(member: &str, list: &[T], min: usize, max: usize) -> Result<(), ApiError> {
    let got = list.len();
    if got < min || got > max {
        return Err(Violation::new(member, Constraint::Length { min, max, got }).into());
    }
    Ok(())
}

/// An integer member within `min..=max`.
pub fn range(member: &str, value: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    if !(min..=max).contains(&value) {
        let got = value;
        return Err(Violation::new(member, Constraint::Range { min, max, got }).into());
    }
    Ok(value)
}

/// `NextToken`: 0..1024 of `[a-zA-Z0-9+/=]` (the cursor itself is checked by the service).
pub fn next_token(member: &str, token: &str) -> Result<(), ApiError> {
    let ok = token.len() <= 1024
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !ok {
        return Err(Violation::new(member, Constraint::Pattern("[a-zA-Z0-9+/=]*")).into());
    }
    Ok(())
}

/// A list of `{Key, Value}` tags. More than 50 is TagsPerResourceExceededLimitException, the
/// error clients see for every way of exceeding the per-resource limit.
pub fn tags(member: &str, tags: Vec<Tag>, min: usize) -> Result<Vec<(TagKey, TagValue)>, ApiError> {
    if tags.len() < min {
        list_len(member, &tags, min, MAX_TAGS)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(ServiceError::new(
            ErrorCode::TagsPerResourceExceededLimit,
            format!(
                "A resource can have at most {MAX_TAGS} tags; {} were given.",
                tags.len()
            ),
        )
        .into());
    }
    tags.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let m = format!("{member}.{}", i + 1);
            let key = required(t.key, &format!("{m}.member.Key"))?;
            let value = required(t.value, &format!("{m}.member.Value"))?;
            Ok((
                TagKey::parse(&format!("{m}.member.Key"), &key)?,
                TagValue::parse(&format!("{m}.member.Value"), &value)?,
            ))
        })
        .collect()
}

//! Turning wire members into validated core values, with AWS-style messages that name the
//! member (kvs-spec.md §3, §8.3). botocore checks only `required` and `min` client-side, so the
//! server enforces every max, pattern and enum itself.

use kvs_core::ids::{ChannelName, ResourceArn, TagKey, TagValue};
use kvs_core::model::MAX_TAGS;

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

pub fn enum_value<'a>(member: &str, value: &str, allowed: &[&'a str]) -> Result<&'a str, ApiError> {
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
                 constraint: Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ))
        })
}

pub fn list_len<T>(member: &str, list: &[T], min: usize, max: usize) -> Result<(), ApiError> {
    if list.len() < min || list.len() > max {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: \
             Member must have length between {min} and {max} (inclusive); got {}",
            list.len()
        )));
    }
    Ok(())
}

/// `NextToken`: 0..1024 of `[a-zA-Z0-9+/=]` (the cursor itself is checked by the service).
pub fn next_token(member: &str, token: &str) -> Result<(), ApiError> {
    let ok = token.len() <= 1024
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !ok {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9+/=]*"
        )));
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
        return Err(
            kvs_core::ServiceError::TagsPerResourceExceededLimit(format!(
                "A resource can have at most {MAX_TAGS} tags; {} were given.",
                tags.len()
            ))
            .into(),
        );
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

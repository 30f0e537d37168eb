//! Decoders of the stream operations and the channels' media-storage configuration: body bytes
//! to a validated [`StreamRequest`], with no service call (the shape of `decode.rs`,
//! docs/protocol.md §2.1, §3). Member names in messages are lowerCamelCase, as AWS's
//! validation messages spell them.

use std::collections::BTreeMap;

use kvs_core::ids::{ChannelName, ResourceArn, TagKey, TagValue, Version};
use kvs_core::model::MAX_TAGS;
use kvs_core::service::ChannelRef;
use kvs_core::streams::model::{DeviceName, KmsKeyId, MediaType, MAX_RETENTION_HOURS};
use kvs_core::streams::service::{CreateStream, RetentionChange, StreamRef};
use kvs_core::streams::StreamName;
use kvs_core::{ErrorCode, ServiceError};

use super::stream_dto::*;
use super::validate;
use super::Operation;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required};

/// The APIs GetDataEndpoint answers for (the model's `APIName` enum).
pub const API_NAMES: &[&str] = &[
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

pub enum StreamRequest {
    Create(CreateStream),
    Describe(StreamRef),
    List {
        prefix: Option<StreamName>,
        max: usize,
        next_token: Option<String>,
    },
    Update {
        stream: StreamRef,
        version: Version,
        device_name: Option<DeviceName>,
        media_type: Option<MediaType>,
    },
    Delete {
        arn: ResourceArn,
        version: Option<Version>,
    },
    UpdateRetention {
        stream: StreamRef,
        version: Version,
        change: RetentionChange,
    },
    Tag {
        stream: StreamRef,
        tags: Vec<(TagKey, TagValue)>,
    },
    Untag {
        stream: StreamRef,
        keys: Vec<TagKey>,
    },
    ListTags(StreamRef),
    DataEndpoint(StreamRef),
    UpdateMediaStorage {
        channel: ResourceArn,
        enabled: bool,
        stream: Option<ResourceArn>,
    },
    DescribeMediaStorage(ChannelRef),
    DescribeMapped(StreamRef),
}

/// Parses and validates the body of a stream or media-storage operation; `None` for the
/// channel operations (`decode.rs` has those).
pub fn decode(op: Operation, body: &[u8]) -> Option<Result<StreamRequest, ApiError>> {
    Some(match op {
        Operation::CreateStream => parse_body(body).and_then(create),
        Operation::DescribeStream => {
            parse_body(body).and_then(|i| Ok(StreamRequest::Describe(stream_ref(i, false)?)))
        }
        Operation::ListStreams => parse_body(body).and_then(list),
        Operation::UpdateStream => parse_body(body).and_then(update),
        Operation::DeleteStream => parse_body(body).and_then(delete),
        Operation::UpdateDataRetention => parse_body(body).and_then(retention),
        Operation::TagStream => parse_body(body).and_then(tag),
        Operation::UntagStream => parse_body(body).and_then(untag),
        Operation::ListTagsForStream => parse_body(body).and_then(list_tags),
        Operation::GetDataEndpoint => parse_body(body).and_then(data_endpoint),
        Operation::UpdateMediaStorageConfiguration => parse_body(body).and_then(update_storage),
        Operation::DescribeMediaStorageConfiguration => parse_body(body).and_then(describe_storage),
        Operation::DescribeMappedResourceConfiguration => parse_body(body).and_then(mapped),
        _ => return None,
    })
}

/// `StreamName` or `StreamARN`, exactly one. For the stream tag operations (`tagging`) an ARN
/// that is well formed but names another kind of resource is InvalidResourceFormatException,
/// the error the model gives those operations for a bad `StreamARN`.
fn named(name: Option<String>, arn: Option<String>, tagging: bool) -> Result<StreamRef, ApiError> {
    match (name, arn) {
        (Some(name), None) => Ok(StreamRef::Name(StreamName::parse("streamName", &name)?)),
        (None, Some(arn)) => {
            let arn = ResourceArn::parse("streamARN", &arn)?;
            if tagging && arn.resource_type != "stream" {
                return Err(ServiceError::new(
                    ErrorCode::InvalidResourceFormat,
                    format!("The StreamARN {arn} is not the ARN of a stream."),
                )
                .into());
            }
            Ok(StreamRef::Arn(arn))
        }
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "Specify either StreamName or StreamARN, not both.",
        )),
        (None, None) => Err(ApiError::invalid(
            "Either StreamName or StreamARN must be specified.",
        )),
    }
}

fn stream_ref(input: StreamNamed, tagging: bool) -> Result<StreamRef, ApiError> {
    named(input.stream_name, input.stream_arn, tagging)
}

fn version(member: &str, v: String) -> Result<Version, ApiError> {
    Ok(Version::parse(member, &v)?)
}

fn device(v: Option<String>) -> Result<Option<DeviceName>, ApiError> {
    Ok(v.map(|d| DeviceName::parse("deviceName", &d)).transpose()?)
}

fn media(v: Option<String>) -> Result<Option<MediaType>, ApiError> {
    Ok(v.map(|m| MediaType::parse("mediaType", &m)).transpose()?)
}

/// A `ResourceTags` map (1..50 entries): more than 50 is TagsPerResourceExceededLimitException,
/// as for channels (`validate::tags`).
fn tag_map(
    member: &str,
    tags: BTreeMap<String, Option<String>>,
) -> Result<Vec<(TagKey, TagValue)>, ApiError> {
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
    let entries: Vec<_> = tags.into_iter().collect();
    validate::list_len(member, &entries, 1, MAX_TAGS)?;
    entries
        .into_iter()
        .map(|(k, v)| {
            let key = TagKey::parse(&format!("{member}.key"), &k)?;
            let value = required(v, &format!("{member}.{k}"))?;
            Ok((key, TagValue::parse(&format!("{member}.{k}"), &value)?))
        })
        .collect()
}

fn create(input: CreateStreamInput) -> Result<StreamRequest, ApiError> {
    let name = required(input.stream_name, "streamName")?;
    let name = StreamName::parse("streamName", &name)?;
    let hours = match input.data_retention_in_hours {
        None => 0,
        Some(h) => {
            validate::range("dataRetentionInHours", h, 0, i64::from(MAX_RETENTION_HOURS))? as u32
        }
    };
    if let Some(cfg) = input.stream_storage_configuration {
        let tier = required(
            cfg.default_storage_tier,
            "streamStorageConfiguration.defaultStorageTier",
        )?;
        validate::enum_value(
            "streamStorageConfiguration.defaultStorageTier",
            &tier,
            &["HOT", "WARM"],
        )?;
    }
    let tags = match input.tags {
        None => Vec::new(),
        Some(t) => tag_map("tags", t)?,
    };
    Ok(StreamRequest::Create(CreateStream {
        name,
        device_name: device(input.device_name)?,
        media_type: media(input.media_type)?,
        kms_key_id: input
            .kms_key_id
            .map(|k| KmsKeyId::parse("kmsKeyId", &k))
            .transpose()?,
        data_retention_hours: hours,
        tags,
    }))
}

fn list(input: ListStreamsInput) -> Result<StreamRequest, ApiError> {
    // AWS's documented default page is 10,000 streams.
    let max = match input.max_results {
        None => 10_000,
        Some(n) => validate::range("maxResults", n, 1, 10_000)? as usize,
    };
    if let Some(t) = &input.next_token {
        validate::next_token("nextToken", t)?;
    }
    let prefix = match input.stream_name_condition {
        None => None,
        Some(cond) => {
            if let Some(op) = &cond.comparison_operator {
                validate::enum_value(
                    "streamNameCondition.comparisonOperator",
                    op,
                    &["BEGINS_WITH"],
                )?;
            }
            cond.comparison_value
                .map(|v| StreamName::parse("streamNameCondition.comparisonValue", &v))
                .transpose()?
        }
    };
    Ok(StreamRequest::List {
        prefix,
        max,
        next_token: input.next_token,
    })
}

fn update(input: UpdateStreamInput) -> Result<StreamRequest, ApiError> {
    let stream = named(input.stream_name, input.stream_arn, false)?;
    let version = version(
        "currentVersion",
        required(input.current_version, "currentVersion")?,
    )?;
    Ok(StreamRequest::Update {
        stream,
        version,
        device_name: device(input.device_name)?,
        media_type: media(input.media_type)?,
    })
}

fn delete(input: DeleteStreamInput) -> Result<StreamRequest, ApiError> {
    let arn = validate::arn("streamARN", input.stream_arn)?;
    let version = input
        .current_version
        .map(|v| version("currentVersion", v))
        .transpose()?;
    Ok(StreamRequest::Delete { arn, version })
}

fn retention(input: UpdateDataRetentionInput) -> Result<StreamRequest, ApiError> {
    let stream = named(input.stream_name, input.stream_arn, false)?;
    let version = version(
        "currentVersion",
        required(input.current_version, "currentVersion")?,
    )?;
    let op = required(input.operation, "operation")?;
    let op = validate::enum_value(
        "operation",
        &op,
        &["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"],
    )?;
    let hours = required(
        input.data_retention_change_in_hours,
        "dataRetentionChangeInHours",
    )?;
    // The model only says `min 1`; the ceiling is the longest retention there is.
    let hours = validate::range(
        "dataRetentionChangeInHours",
        hours,
        1,
        i64::from(MAX_RETENTION_HOURS),
    )? as u32;
    let change = if op == "INCREASE_DATA_RETENTION" {
        RetentionChange::Increase(hours)
    } else {
        RetentionChange::Decrease(hours)
    };
    Ok(StreamRequest::UpdateRetention {
        stream,
        version,
        change,
    })
}

fn tag(input: TagStreamInput) -> Result<StreamRequest, ApiError> {
    let stream = named(input.stream_name, input.stream_arn, true)?;
    let tags = tag_map("tags", required(input.tags, "tags")?)?;
    Ok(StreamRequest::Tag { stream, tags })
}

fn untag(input: UntagStreamInput) -> Result<StreamRequest, ApiError> {
    let stream = named(input.stream_name, input.stream_arn, true)?;
    let keys = required(input.tag_key_list, "tagKeyList")?;
    validate::list_len("tagKeyList", &keys, 1, MAX_TAGS)?;
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| TagKey::parse(&format!("tagKeyList.{}.member", i + 1), k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StreamRequest::Untag { stream, keys })
}

fn list_tags(input: ListTagsForStreamInput) -> Result<StreamRequest, ApiError> {
    if let Some(t) = &input.next_token {
        validate::next_token("nextToken", t)?;
    }
    Ok(StreamRequest::ListTags(named(
        input.stream_name,
        input.stream_arn,
        true,
    )?))
}

fn data_endpoint(input: GetDataEndpointInput) -> Result<StreamRequest, ApiError> {
    let api = required(input.api_name, "APIName")?;
    validate::enum_value("APIName", &api, API_NAMES)?;
    Ok(StreamRequest::DataEndpoint(named(
        input.stream_name,
        input.stream_arn,
        false,
    )?))
}

fn update_storage(input: UpdateMediaStorageConfigurationInput) -> Result<StreamRequest, ApiError> {
    let channel = validate::arn("channelARN", input.channel_arn)?;
    let cfg = required(
        input.media_storage_configuration,
        "mediaStorageConfiguration",
    )?;
    let status = required(cfg.status, "mediaStorageConfiguration.status")?;
    let status = validate::enum_value(
        "mediaStorageConfiguration.status",
        &status,
        &["ENABLED", "DISABLED"],
    )?;
    let stream = cfg
        .stream_arn
        .map(|a| ResourceArn::parse("mediaStorageConfiguration.streamARN", &a))
        .transpose()?;
    Ok(StreamRequest::UpdateMediaStorage {
        channel,
        enabled: status == "ENABLED",
        stream,
    })
}

fn describe_storage(
    input: super::dto::DescribeSignalingChannelInput,
) -> Result<StreamRequest, ApiError> {
    let r = match (input.channel_name, input.channel_arn) {
        (Some(name), None) => ChannelRef::Name(ChannelName::parse("channelName", &name)?),
        (None, Some(arn)) => ChannelRef::Arn(validate::arn("channelARN", Some(arn))?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Specify either ChannelName or ChannelARN, not both.",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Either ChannelName or ChannelARN must be specified.",
            ))
        }
    };
    Ok(StreamRequest::DescribeMediaStorage(r))
}

fn mapped(input: DescribeMappedResourceConfigurationInput) -> Result<StreamRequest, ApiError> {
    if let Some(n) = input.max_results {
        validate::range("maxResults", n, 1, 1)?;
    }
    if let Some(t) = &input.next_token {
        validate::next_token("nextToken", t)?;
    }
    Ok(StreamRequest::DescribeMapped(named(
        input.stream_name,
        input.stream_arn,
        false,
    )?))
}

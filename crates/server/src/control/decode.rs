//! The control plane's request decoders: body bytes to a validated request, with no service call
//! (docs/protocol.md §2, §3). Every check that needs no channel happens here, so a bad request is
//! refused before any store is asked, and so the decoders can be fuzzed on their own
//! (docs/reliability.md, "Fuzzing").

use kvs_core::ids::{ChannelName, MessageTtl, ResourceArn, TagKey, TagValue, Version};
use kvs_core::model::ChannelType;
use kvs_core::service::{ChannelRef, CreateChannel};

use super::dto::*;
use super::validate;
use super::Operation;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required};

/// One control-plane request, parsed and validated.
pub enum Request {
    Create(CreateChannel),
    Describe(ChannelRef),
    List {
        prefix: Option<ChannelName>,
        max: usize,
        next_token: Option<String>,
    },
    Update {
        arn: ResourceArn,
        version: Version,
        ttl: Option<MessageTtl>,
    },
    Delete {
        arn: ResourceArn,
        version: Option<Version>,
    },
    /// `wanted` is the distinct protocols in the order asked; whether the channel can serve
    /// WEBRTC is known only once it is found, so that is the handler's check.
    Endpoint {
        arn: ResourceArn,
        wanted: Vec<&'static str>,
    },
    Tag {
        arn: ResourceArn,
        tags: Vec<(TagKey, TagValue)>,
    },
    Untag {
        arn: ResourceArn,
        keys: Vec<TagKey>,
    },
    ListTags {
        arn: ResourceArn,
    },
    /// A stream or media-storage operation (`stream_decode.rs`).
    Stream(super::stream_decode::StreamRequest),
}

/// Parses and validates the body of `op`. Any bytes give a request or a client error
/// (InvalidArgumentException, TagsPerResourceExceededLimitException), never a panic.
pub fn decode(op: Operation, body: &[u8]) -> Result<Request, ApiError> {
    if let Some(r) = super::stream_decode::decode(op, body) {
        return r.map(Request::Stream);
    }
    match op {
        Operation::CreateSignalingChannel => create(parse_body(body)?),
        Operation::DescribeSignalingChannel => describe(parse_body(body)?),
        Operation::ListSignalingChannels => list(parse_body(body)?),
        Operation::UpdateSignalingChannel => update(parse_body(body)?),
        Operation::DeleteSignalingChannel => delete(parse_body(body)?),
        Operation::GetSignalingChannelEndpoint => endpoint(parse_body(body)?),
        Operation::TagResource => tag(parse_body(body)?),
        Operation::UntagResource => untag(parse_body(body)?),
        Operation::ListTagsForResource => list_tags(parse_body(body)?),
        // Answered by `stream_decode::decode` above.
        _ => Err(ApiError::internal()),
    }
}

fn ttl(cfg: Option<SingleMasterConfiguration>) -> Result<Option<MessageTtl>, ApiError> {
    cfg.and_then(|c| c.message_ttl_seconds)
        .map(|v| MessageTtl::parse("singleMasterConfiguration.messageTtlSeconds", v))
        .transpose()
        .map_err(Into::into)
}

fn current_version(v: Option<String>) -> Result<Option<Version>, ApiError> {
    v.map(|v| Version::parse("currentVersion", &v))
        .transpose()
        .map_err(Into::into)
}

fn create(input: CreateSignalingChannelInput) -> Result<Request, ApiError> {
    let name = required(input.channel_name, "channelName")?;
    let name = validate::channel_name("channelName", &name)?;
    let channel_type = match input.channel_type {
        None => ChannelType::SingleMaster,
        Some(t) => {
            let t = validate::enum_value("channelType", &t, &["SINGLE_MASTER", "FULL_MESH"])?;
            ChannelType::parse(t).unwrap_or(ChannelType::SingleMaster)
        }
    };
    let ttl = ttl(input.single_master_configuration)?.unwrap_or(MessageTtl::DEFAULT);
    let tags = validate::tags("tags", input.tags.unwrap_or_default(), 0)?;
    Ok(Request::Create(CreateChannel {
        name,
        channel_type,
        ttl,
        tags,
    }))
}

fn describe(input: DescribeSignalingChannelInput) -> Result<Request, ApiError> {
    let r = match (input.channel_name, input.channel_arn) {
        (Some(name), None) => ChannelRef::Name(validate::channel_name("channelName", &name)?),
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
    Ok(Request::Describe(r))
}

fn list(input: ListSignalingChannelsInput) -> Result<Request, ApiError> {
    let max = match input.max_results {
        None => 500,
        Some(n) => validate::range("maxResults", n, 1, 10_000)? as usize,
    };
    if let Some(t) = &input.next_token {
        validate::next_token("nextToken", t)?;
    }
    let prefix = match input.channel_name_condition {
        None => None,
        Some(cond) => {
            if let Some(op) = &cond.comparison_operator {
                validate::enum_value(
                    "channelNameCondition.comparisonOperator",
                    op,
                    &["BEGINS_WITH"],
                )?;
            }
            cond.comparison_value
                .map(|v| validate::channel_name("channelNameCondition.comparisonValue", &v))
                .transpose()?
        }
    };
    Ok(Request::List {
        prefix,
        max,
        next_token: input.next_token,
    })
}

fn update(input: UpdateSignalingChannelInput) -> Result<Request, ApiError> {
    let arn = validate::arn("channelARN", input.channel_arn)?;
    let version = current_version(Some(required(input.current_version, "currentVersion")?))?
        .ok_or_else(ApiError::internal)?;
    let ttl = ttl(input.single_master_configuration)?;
    Ok(Request::Update { arn, version, ttl })
}

fn delete(input: DeleteSignalingChannelInput) -> Result<Request, ApiError> {
    let arn = validate::arn("channelARN", input.channel_arn)?;
    let version = current_version(input.current_version)?;
    Ok(Request::Delete { arn, version })
}

fn endpoint(input: GetSignalingChannelEndpointInput) -> Result<Request, ApiError> {
    let arn = validate::arn("channelARN", input.channel_arn)?;
    let cfg = input.single_master_channel_endpoint_configuration;
    let (protocols, role) = match cfg {
        None => (None, None),
        Some(c) => (c.protocols, c.role),
    };
    if let Some(role) = &role {
        validate::enum_value(
            "singleMasterChannelEndpointConfiguration.role",
            role,
            &["MASTER", "VIEWER"],
        )?;
    }
    // Defaults when unspecified (behaviour.md): WSS and HTTPS.
    let protocols = protocols.unwrap_or_else(|| vec!["WSS".into(), "HTTPS".into()]);
    validate::list_len(
        "singleMasterChannelEndpointConfiguration.protocols",
        &protocols,
        1,
        5,
    )?;
    let mut wanted: Vec<&'static str> = Vec::new();
    for p in &protocols {
        let p = validate::enum_value(
            "singleMasterChannelEndpointConfiguration.protocols.member",
            p,
            &["WSS", "HTTPS", "WEBRTC"],
        )?;
        if !wanted.contains(&p) {
            wanted.push(p);
        }
    }
    Ok(Request::Endpoint { arn, wanted })
}

fn tag(input: TagResourceInput) -> Result<Request, ApiError> {
    let arn = validate::arn("resourceARN", input.resource_arn)?;
    let tags = validate::tags("tags", required(input.tags, "tags")?, 1)?;
    Ok(Request::Tag { arn, tags })
}

fn untag(input: UntagResourceInput) -> Result<Request, ApiError> {
    let arn = validate::arn("resourceARN", input.resource_arn)?;
    let keys = required(input.tag_key_list, "tagKeyList")?;
    validate::list_len("tagKeyList", &keys, 1, 50)?;
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| TagKey::parse(&format!("tagKeyList.{}.member", i + 1), k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request::Untag { arn, keys })
}

fn list_tags(input: ListTagsForResourceInput) -> Result<Request, ApiError> {
    let arn = validate::arn("resourceARN", input.resource_arn)?;
    if let Some(t) = &input.next_token {
        validate::next_token("nextToken", t)?;
    }
    Ok(Request::ListTags { arn })
}

//! One function per operation: parse the body, validate, call the application layer, shape the
//! output. Reads are answered from the channel index; writes wait for their group commit.

use kvs_core::app::Purpose;
use kvs_core::ids::{MessageTtl, TagKey, Version};
use kvs_core::model::ChannelType;
use kvs_core::quota::{channel_subject, QuotaOp};
use kvs_core::service::{ChannelRef, ChannelView, CreateChannel};

use super::dto::*;
use super::validate;
use super::Operation;
use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required, to_body};
use crate::endpoints::EndpointBase;
use crate::state::AppState;

/// Runs `op`. `Ok(None)` is a success with an empty body (AWS's answer for operations whose
/// output has no members, docs/protocol.md §1).
pub async fn handle(
    op: Operation,
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    endpoint: &EndpointBase,
) -> Result<Option<String>, ApiError> {
    let ctx = Ctx { state, caller };
    match op {
        Operation::CreateSignalingChannel => ctx.create(parse_body(body)?).await.map(Some),
        Operation::DescribeSignalingChannel => ctx.describe(parse_body(body)?).await.map(Some),
        Operation::ListSignalingChannels => ctx.list(parse_body(body)?).await.map(Some),
        Operation::UpdateSignalingChannel => ctx.update(parse_body(body)?).await.map(|()| None),
        Operation::DeleteSignalingChannel => ctx.delete(parse_body(body)?).await.map(|()| None),
        Operation::GetSignalingChannelEndpoint => {
            ctx.endpoint(parse_body(body)?, endpoint).await.map(Some)
        }
        Operation::TagResource => ctx.tag(parse_body(body)?).await.map(|()| None),
        Operation::UntagResource => ctx.untag(parse_body(body)?).await.map(|()| None),
        Operation::ListTagsForResource => ctx.list_tags(parse_body(body)?).await.map(Some),
    }
}

struct Ctx<'a> {
    state: &'a AppState,
    caller: &'a Caller,
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

pub fn channel_info(v: &ChannelView) -> ChannelInfo {
    let c = &v.channel;
    ChannelInfo {
        channel_name: c.name.to_string(),
        channel_arn: c.arn.to_string(),
        channel_type: c.channel_type.as_str(),
        channel_status: v.status.as_str(),
        creation_time: c.created_millis as f64 / 1000.0,
        single_master_configuration: SingleMasterConfiguration {
            message_ttl_seconds: Some(i64::from(c.ttl.seconds())),
        },
        version: c.version.to_string(),
    }
}

impl Ctx<'_> {
    /// Counts the call against its quotas (docs/protocol.md §8.1); `channel` is the ARN or,
    /// for a call naming the channel, [`channel_subject`]'s key.
    async fn throttle(&self, op: QuotaOp, channel: Option<&str>) -> Result<(), ApiError> {
        Ok(self
            .state
            .app
            .throttle(&self.caller.ns, op, channel)
            .await?)
    }

    async fn create(&self, input: CreateSignalingChannelInput) -> Result<String, ApiError> {
        let name = required(input.channel_name, "channelName")?;
        let name = validate::channel_name("channelName", &name)?;
        self.throttle(QuotaOp::CreateSignalingChannel, None).await?;
        let channel_type = match input.channel_type {
            None => ChannelType::SingleMaster,
            Some(t) => {
                let t = validate::enum_value("channelType", &t, &["SINGLE_MASTER", "FULL_MESH"])?;
                ChannelType::parse(t).unwrap_or(ChannelType::SingleMaster)
            }
        };
        let ttl = ttl(input.single_master_configuration)?.unwrap_or(MessageTtl::DEFAULT);
        let tags = validate::tags("tags", input.tags.unwrap_or_default(), 0)?;
        let channel = self
            .state
            .app
            .channels()
            .create(
                &self.caller.ns,
                CreateChannel {
                    name,
                    channel_type,
                    ttl,
                    tags,
                },
            )
            .await?;
        to_body(&CreateSignalingChannelOutput {
            channel_arn: channel.arn.to_string(),
        })
    }

    async fn describe(&self, input: DescribeSignalingChannelInput) -> Result<String, ApiError> {
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
        let subject = match &r {
            ChannelRef::Name(n) => channel_subject(&self.caller.ns, n.as_str()),
            ChannelRef::Arn(a) => a.to_string(),
        };
        self.throttle(QuotaOp::DescribeSignalingChannel, Some(&subject))
            .await?;
        let view = self
            .state
            .app
            .channels()
            .describe(&self.caller.ns, &r)
            .await?;
        to_body(&DescribeSignalingChannelOutput {
            channel_info: channel_info(&view),
        })
    }

    async fn list(&self, input: ListSignalingChannelsInput) -> Result<String, ApiError> {
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
        self.throttle(QuotaOp::ListSignalingChannels, None).await?;
        let page = self
            .state
            .app
            .channels()
            .list(
                &self.caller.ns,
                prefix.as_ref(),
                max,
                input.next_token.as_deref(),
            )
            .await?;
        to_body(&ListSignalingChannelsOutput {
            channel_info_list: page.channels.iter().map(channel_info).collect(),
            next_token: page.next_token,
        })
    }

    async fn update(&self, input: UpdateSignalingChannelInput) -> Result<(), ApiError> {
        let arn = validate::arn("channelARN", input.channel_arn)?;
        self.throttle(QuotaOp::UpdateSignalingChannel, Some(arn.as_str()))
            .await?;
        let version = current_version(Some(required(input.current_version, "currentVersion")?))?
            .ok_or_else(ApiError::internal)?;
        let ttl = ttl(input.single_master_configuration)?;
        self.state
            .app
            .channels()
            .update(&self.caller.ns, &arn, &version, ttl)
            .await?;
        Ok(())
    }

    async fn delete(&self, input: DeleteSignalingChannelInput) -> Result<(), ApiError> {
        let arn = validate::arn("channelARN", input.channel_arn)?;
        self.throttle(QuotaOp::DeleteSignalingChannel, Some(arn.as_str()))
            .await?;
        let version = current_version(input.current_version)?;
        // Its connections get GO_AWAY and its held messages are dropped (docs/protocol.md §6.4).
        self.state
            .app
            .delete_channel(&self.caller.ns, &arn, version.as_ref())
            .await?;
        Ok(())
    }

    async fn endpoint(
        &self,
        input: GetSignalingChannelEndpointInput,
        base: &EndpointBase,
    ) -> Result<String, ApiError> {
        let arn = validate::arn("channelARN", input.channel_arn)?;
        self.throttle(QuotaOp::GetSignalingChannelEndpoint, Some(arn.as_str()))
            .await?;
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
        let view = self
            .state
            .app
            .usable_channel(&self.caller.ns, &arn, Purpose::Endpoint)
            .await?;
        if wanted.contains(&"WEBRTC") {
            return Err(ApiError::invalid(format!(
                "The signaling channel {} is not configured for media storage, so it has no \
                 WEBRTC endpoint.",
                view.channel.name
            )));
        }
        let list = wanted
            .into_iter()
            .map(|p| ResourceEndpointListItem {
                protocol: p,
                resource_endpoint: if p == "WSS" {
                    base.wss_url()
                } else {
                    base.https_url()
                },
            })
            .collect();
        to_body(&GetSignalingChannelEndpointOutput {
            resource_endpoint_list: list,
        })
    }

    async fn tag(&self, input: TagResourceInput) -> Result<(), ApiError> {
        let arn = validate::arn("resourceARN", input.resource_arn)?;
        self.throttle(QuotaOp::TagResource, Some(arn.as_str()))
            .await?;
        let tags = validate::tags("tags", required(input.tags, "tags")?, 1)?;
        self.state
            .app
            .channels()
            .tag(&self.caller.ns, &arn, tags)
            .await?;
        Ok(())
    }

    async fn untag(&self, input: UntagResourceInput) -> Result<(), ApiError> {
        let arn = validate::arn("resourceARN", input.resource_arn)?;
        self.throttle(QuotaOp::UntagResource, Some(arn.as_str()))
            .await?;
        let keys = required(input.tag_key_list, "tagKeyList")?;
        validate::list_len("tagKeyList", &keys, 1, 50)?;
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| TagKey::parse(&format!("tagKeyList.{}.member", i + 1), k))
            .collect::<Result<Vec<_>, _>>()?;
        self.state
            .app
            .channels()
            .untag(&self.caller.ns, &arn, &keys)
            .await?;
        Ok(())
    }

    async fn list_tags(&self, input: ListTagsForResourceInput) -> Result<String, ApiError> {
        let arn = validate::arn("resourceARN", input.resource_arn)?;
        self.throttle(QuotaOp::ListTagsForResource, Some(arn.as_str()))
            .await?;
        if let Some(t) = &input.next_token {
            validate::next_token("nextToken", t)?;
        }
        // At most 50 tags: everything fits in one page, so no NextToken is ever returned.
        let tags = self
            .state
            .app
            .channels()
            .list_tags(&self.caller.ns, &arn)
            .await?;
        to_body(&ListTagsForResourceOutput { tags })
    }
}

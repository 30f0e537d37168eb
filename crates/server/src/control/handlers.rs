//! One function per decoded request: call the application layer, shape the output. Bodies are
//! parsed and validated first, by `decode` (no service call there). Reads are answered from the
//! channel index; writes wait for their group commit.

use kvs_core::app::Purpose;
use kvs_core::ids::{ChannelName, MessageTtl, ResourceArn, TagKey, TagValue, Version};
use kvs_core::quota::{channel_subject, QuotaOp};
use kvs_core::service::{ChannelRef, ChannelView, CreateChannel};

use super::decode::{decode, Request};
use super::dto::*;
use super::Operation;
use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::to_body;
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
    let request = decode(op, body)?;
    if let Some((quota, channel)) = quota_of(&request) {
        ctx.throttle(quota, channel).await?;
    }
    match request {
        Request::Create(c) => ctx.create(c).await.map(Some),
        Request::Describe(r) => ctx.describe(&r).await.map(Some),
        Request::List {
            prefix,
            max,
            next_token,
        } => ctx
            .list(prefix.as_ref(), max, next_token.as_deref())
            .await
            .map(Some),
        Request::Update { arn, version, ttl } => {
            ctx.update(&arn, &version, ttl).await.map(|()| None)
        }
        Request::Delete { arn, version } => ctx.delete(&arn, version.as_ref()).await.map(|()| None),
        Request::Endpoint { arn, wanted } => ctx.endpoint(&arn, wanted, endpoint).await.map(Some),
        Request::Tag { arn, tags } => ctx.tag(&arn, tags).await.map(|()| None),
        Request::Untag { arn, keys } => ctx.untag(&arn, &keys).await.map(|()| None),
        Request::ListTags { arn } => ctx.list_tags(&arn).await.map(Some),
        Request::Stream(r) => super::stream_handlers::handle(r, state, caller, endpoint).await,
    }
}

/// The quota a decoded call counts against (docs/protocol.md §8.1) and the channel it names;
/// a describe counts in [`Ctx::describe`], once its channel is resolved.
fn quota_of(request: &Request) -> Option<(QuotaOp, Option<&str>)> {
    Some(match request {
        Request::Create(_) => (QuotaOp::CreateSignalingChannel, None),
        Request::Describe(_) => return None,
        Request::List { .. } => (QuotaOp::ListSignalingChannels, None),
        Request::Update { arn, .. } => (QuotaOp::UpdateSignalingChannel, Some(arn.as_str())),
        Request::Delete { arn, .. } => (QuotaOp::DeleteSignalingChannel, Some(arn.as_str())),
        Request::Endpoint { arn, .. } => (QuotaOp::GetSignalingChannelEndpoint, Some(arn.as_str())),
        Request::Tag { arn, .. } => (QuotaOp::TagResource, Some(arn.as_str())),
        Request::Untag { arn, .. } => (QuotaOp::UntagResource, Some(arn.as_str())),
        Request::ListTags { arn } => (QuotaOp::ListTagsForResource, Some(arn.as_str())),
        Request::Stream(r) => return super::stream_handlers::quota_of(r),
    })
}

struct Ctx<'a> {
    state: &'a AppState,
    caller: &'a Caller,
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
    /// Counts the call against its quotas; `channel` is the ARN or, for a channel named by a
    /// name that resolves to nothing, [`channel_subject`]'s key.
    async fn throttle(&self, op: QuotaOp, channel: Option<&str>) -> Result<(), ApiError> {
        Ok(self
            .state
            .app
            .throttle(&self.caller.ns, op, channel)
            .await?)
    }

    async fn create(&self, input: CreateChannel) -> Result<String, ApiError> {
        let channel = self
            .state
            .app
            .channels()
            .create(&self.caller.ns, input)
            .await?;
        to_body(&CreateSignalingChannelOutput {
            channel_arn: channel.arn.to_string(),
        })
    }

    async fn describe(&self, r: &ChannelRef) -> Result<String, ApiError> {
        // One bucket per channel whether it is named by ARN or by name: a name is resolved
        // first (from the index), and only a name that resolves to nothing counts by name.
        let found = self.state.app.channels().describe(&self.caller.ns, r).await;
        let subject = match (&found, r) {
            (Ok(view), _) => view.channel.arn.to_string(),
            (Err(_), ChannelRef::Arn(a)) => a.to_string(),
            (Err(_), ChannelRef::Name(n)) => channel_subject(&self.caller.ns, n.as_str()),
        };
        self.throttle(QuotaOp::DescribeSignalingChannel, Some(&subject))
            .await?;
        let view = found?;
        to_body(&DescribeSignalingChannelOutput {
            channel_info: channel_info(&view),
        })
    }

    async fn list(
        &self,
        prefix: Option<&ChannelName>,
        max: usize,
        next_token: Option<&str>,
    ) -> Result<String, ApiError> {
        let page = self
            .state
            .app
            .channels()
            .list(&self.caller.ns, prefix, max, next_token)
            .await?;
        to_body(&ListSignalingChannelsOutput {
            channel_info_list: page.channels.iter().map(channel_info).collect(),
            next_token: page.next_token,
        })
    }

    async fn update(
        &self,
        arn: &ResourceArn,
        version: &Version,
        ttl: Option<MessageTtl>,
    ) -> Result<(), ApiError> {
        self.state
            .app
            .channels()
            .update(&self.caller.ns, arn, version, ttl)
            .await?;
        Ok(())
    }

    async fn delete(&self, arn: &ResourceArn, version: Option<&Version>) -> Result<(), ApiError> {
        // Its connections get GO_AWAY and its held messages are dropped (docs/protocol.md §6.4).
        self.state
            .app
            .delete_channel(&self.caller.ns, arn, version)
            .await?;
        Ok(())
    }

    async fn endpoint(
        &self,
        arn: &ResourceArn,
        wanted: Vec<&'static str>,
        base: &EndpointBase,
    ) -> Result<String, ApiError> {
        let view = self
            .state
            .app
            .usable_channel(&self.caller.ns, arn, Purpose::Endpoint)
            .await?;
        // WEBRTC (the storage session's endpoint) exists only for a channel whose media
        // storage is ENABLED (docs/protocol.md §5.2, §9.3).
        if wanted.contains(&"WEBRTC")
            && !self
                .state
                .app
                .streams()
                .media_storage(&self.caller.ns, &view.channel.arn)
                .await?
                .enabled
        {
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

    async fn tag(&self, arn: &ResourceArn, tags: Vec<(TagKey, TagValue)>) -> Result<(), ApiError> {
        self.state
            .app
            .channels()
            .tag(&self.caller.ns, arn, tags)
            .await?;
        Ok(())
    }

    async fn untag(&self, arn: &ResourceArn, keys: &[TagKey]) -> Result<(), ApiError> {
        self.state
            .app
            .channels()
            .untag(&self.caller.ns, arn, keys)
            .await?;
        Ok(())
    }

    async fn list_tags(&self, arn: &ResourceArn) -> Result<String, ApiError> {
        // At most 50 tags: everything fits in one page, so no NextToken is ever returned.
        let tags = self
            .state
            .app
            .channels()
            .list_tags(&self.caller.ns, arn)
            .await?;
        to_body(&ListTagsForResourceOutput { tags })
    }
}

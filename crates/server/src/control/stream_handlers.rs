//! One function per decoded stream or media-storage request: call the application layer,
//! shape the output (the shape of `handlers.rs`). Media-storage calls first resolve the channel
//! through the channel rules, so a missing or non-ACTIVE channel gets the same errors as every
//! other channel operation.

use kvs_core::app::Purpose;
use kvs_core::quota::{channel_subject, QuotaOp};
use kvs_core::service::ChannelRef;
use kvs_core::streams::service::StreamView;

use super::stream_decode::StreamRequest;
use super::stream_dto::*;
use crate::aws::auth::Caller;
use crate::aws::error::ApiError;
use crate::aws::json::to_body;
use crate::endpoints::EndpointBase;
use crate::state::AppState;

/// The quota a decoded call counts against (docs/protocol.md §8.1): AWS publishes rates for
/// the two media-storage configuration calls only; DescribeMediaStorageConfiguration by name
/// counts in [`describe_storage`], once its channel is resolved.
pub fn quota_of(request: &StreamRequest) -> Option<(QuotaOp, Option<&str>)> {
    match request {
        StreamRequest::UpdateMediaStorage { channel, .. } => Some((
            QuotaOp::UpdateMediaStorageConfiguration,
            Some(channel.as_str()),
        )),
        _ => None,
    }
}

pub fn stream_info(v: &StreamView) -> StreamInfo {
    let s = &v.stream;
    StreamInfo {
        device_name: s.device_name.as_ref().map(|d| d.as_str().to_owned()),
        stream_name: s.name.to_string(),
        stream_arn: s.arn.to_string(),
        media_type: s.media_type.as_ref().map(|m| m.as_str().to_owned()),
        kms_key_id: s.kms_key_id.as_str().to_owned(),
        version: s.version.to_string(),
        status: v.status.as_str(),
        creation_time: s.created_millis as f64 / 1000.0,
        data_retention_in_hours: s.data_retention_hours,
    }
}

/// Runs a stream or media-storage request. `Ok(None)` is a success with an empty body.
pub async fn handle(
    request: StreamRequest,
    state: &AppState,
    caller: &Caller,
    base: &EndpointBase,
) -> Result<Option<String>, ApiError> {
    let app = &state.app;
    let streams = app.streams();
    let ns = &caller.ns;
    match request {
        StreamRequest::Create(c) => {
            let s = streams.create(ns, c).await?;
            to_body(&CreateStreamOutput {
                stream_arn: s.arn.to_string(),
            })
            .map(Some)
        }
        StreamRequest::Describe(r) => {
            let v = streams.describe(ns, &r).await?;
            to_body(&DescribeStreamOutput {
                stream_info: stream_info(&v),
            })
            .map(Some)
        }
        StreamRequest::List {
            prefix,
            max,
            next_token,
        } => {
            let page = streams
                .list(ns, prefix.as_ref(), max, next_token.as_deref())
                .await?;
            to_body(&ListStreamsOutput {
                stream_info_list: page.streams.iter().map(stream_info).collect(),
                next_token: page.next_token,
            })
            .map(Some)
        }
        StreamRequest::Update {
            stream,
            version,
            device_name,
            media_type,
        } => {
            streams
                .update(ns, &stream, &version, device_name, media_type)
                .await?;
            Ok(None)
        }
        StreamRequest::Delete { arn, version } => {
            streams.delete(ns, &arn, version.as_ref()).await?;
            // Its recorded media goes with it (the media upkeep removes what this misses, e.g.
            // when the store is unreachable now: docs/media-storage.md).
            let key = kvs_media::StreamKey::from_arn(&arn);
            if let Err(e) = state.media.store().delete_stream(&key).await {
                tracing::warn!(error = %e, stream = %arn, "recorded media not deleted yet");
            }
            Ok(None)
        }
        StreamRequest::UpdateRetention {
            stream,
            version,
            change,
        } => {
            streams
                .update_retention(ns, &stream, &version, change)
                .await?;
            Ok(None)
        }
        StreamRequest::Tag { stream, tags } => {
            streams.tag(ns, &stream, tags).await?;
            Ok(None)
        }
        StreamRequest::Untag { stream, keys } => {
            streams.untag(ns, &stream, &keys).await?;
            Ok(None)
        }
        StreamRequest::ListTags(r) => {
            // At most 50 tags: one page, never a NextToken.
            let tags = streams.list_tags(ns, &r).await?;
            to_body(&ListTagsForStreamOutput { tags }).map(Some)
        }
        StreamRequest::DataEndpoint(r) => {
            // Every data API is answered by this server (docs/protocol.md "GetDataEndpoint").
            streams.describe(ns, &r).await?;
            to_body(&GetDataEndpointOutput {
                data_endpoint: base.https_url(),
            })
            .map(Some)
        }
        StreamRequest::UpdateMediaStorage {
            channel,
            enabled,
            stream,
        } => {
            let view = app.usable_channel(ns, &channel, Purpose::Endpoint).await?;
            streams
                .set_media_storage(ns, &view.channel.arn, enabled, stream.as_ref())
                .await?;
            Ok(None)
        }
        StreamRequest::DescribeMediaStorage(r) => describe_storage(state, caller, &r).await,
        StreamRequest::DescribeMapped(r) => {
            let list = streams
                .mapped_channel(ns, &r)
                .await?
                .map(|arn| MappedResourceConfigurationListItem {
                    resource_type: "SIGNALING_CHANNEL",
                    arn: arn.to_string(),
                })
                .into_iter()
                .collect();
            to_body(&DescribeMappedResourceConfigurationOutput {
                mapped_resource_configuration_list: list,
            })
            .map(Some)
        }
    }
}

async fn describe_storage(
    state: &AppState,
    caller: &Caller,
    r: &ChannelRef,
) -> Result<Option<String>, ApiError> {
    let ns = &caller.ns;
    // One bucket per channel whether it is named by ARN or by name (as DescribeSignalingChannel).
    let found = state.app.channels().describe(ns, r).await;
    let subject = match (&found, r) {
        (Ok(view), _) => view.channel.arn.to_string(),
        (Err(_), ChannelRef::Arn(a)) => a.to_string(),
        (Err(_), ChannelRef::Name(n)) => channel_subject(ns, n.as_str()),
    };
    state
        .app
        .throttle(
            ns,
            QuotaOp::DescribeMediaStorageConfiguration,
            Some(&subject),
        )
        .await?;
    let view = found?;
    let storage = state
        .app
        .streams()
        .media_storage(ns, &view.channel.arn)
        .await?;
    to_body(&DescribeMediaStorageConfigurationOutput {
        media_storage_configuration: MediaStorageConfiguration {
            stream_arn: storage.stream_arn.map(|a| a.to_string()),
            status: Some(
                if storage.enabled {
                    "ENABLED"
                } else {
                    "DISABLED"
                }
                .to_owned(),
            ),
        },
    })
    .map(Some)
}

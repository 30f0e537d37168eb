//! StreamService: the stream control plane's rules and the media-storage configuration of
//! channels (docs/protocol.md §2.1, §9.3), independent of any wire format. Like the channel
//! service, callers pass validated identifiers and a [`Namespace`]; a stream of another account
//! or region is simply not found.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::model::{
    stream_arn, DeviceName, KmsKeyId, MediaLink, MediaType, Status, Stream, StreamName,
    MAX_RETENTION_HOURS,
};
use super::{StoreError, StreamStore};
use crate::clock::Clock;
use crate::error::{ErrorCode, ServiceError};
use crate::ids::{Namespace, ResourceArn, TagKey, TagValue, Version};
use crate::model::{float_safe_millis, Tags};

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// How long CREATING / UPDATING / DELETING last (the channels' `--lifecycle-delay`).
    pub lifecycle_delay: Duration,
    /// Streams per account and region (`--max-streams`).
    pub max_streams: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            lifecycle_delay: Duration::ZERO,
            max_streams: 10_000,
        }
    }
}

/// How a request names a stream.
#[derive(Debug, Clone)]
pub enum StreamRef {
    Name(StreamName),
    Arn(ResourceArn),
}

pub struct CreateStream {
    pub name: StreamName,
    pub device_name: Option<DeviceName>,
    pub media_type: Option<MediaType>,
    pub kms_key_id: Option<KmsKeyId>,
    pub data_retention_hours: u32,
    pub tags: Vec<(TagKey, TagValue)>,
}

/// A stream together with the status in force when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamView {
    pub stream: Stream,
    pub status: Status,
}

#[derive(Debug)]
pub struct StreamPage {
    pub streams: Vec<StreamView>,
    pub next_token: Option<String>,
}

/// UpdateDataRetention's `Operation` with its `DataRetentionChangeInHours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionChange {
    Increase(u32),
    Decrease(u32),
}

/// A channel's media-storage configuration as DescribeMediaStorageConfiguration answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaStorage {
    pub enabled: bool,
    pub stream_arn: Option<ResourceArn>,
}

const CAS_ATTEMPTS: usize = 64;
const TOKEN_PREFIX: &str = "kvs1s:";

pub struct StreamService {
    store: Arc<dyn StreamStore>,
    clock: Arc<dyn Clock>,
    config: StreamConfig,
}

impl StreamService {
    pub fn new(store: Arc<dyn StreamStore>, clock: Arc<dyn Clock>, config: StreamConfig) -> Self {
        Self {
            store,
            clock,
            config,
        }
    }

    pub async fn ping(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn delay_millis(&self) -> u64 {
        u64::try_from(self.config.lifecycle_delay.as_millis()).unwrap_or(u64::MAX)
    }

    async fn view(&self, stream: Stream) -> Option<StreamView> {
        match stream.status_at(self.now()) {
            Some(status) => Some(StreamView { stream, status }),
            None => {
                // A stream that finished deleting: purge it (losing this race is fine).
                let _ = self
                    .store
                    .remove(&stream.ns, &stream.name, stream.revision)
                    .await;
                None
            }
        }
    }

    async fn load(
        &self,
        ns: &Namespace,
        name: &StreamName,
    ) -> Result<Option<StreamView>, ServiceError> {
        match self.store.get(ns, name).await? {
            Some(s) => Ok(self.view(s).await),
            None => Ok(None),
        }
    }

    async fn load_arn(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
    ) -> Result<Option<StreamView>, ServiceError> {
        if arn.resource_type != "stream"
            || arn.account != ns.account.as_str()
            || arn.region != ns.region.as_str()
        {
            return Ok(None);
        }
        let Ok(name) = StreamName::parse("StreamARN", &arn.name) else {
            return Ok(None);
        };
        Ok(self
            .load(ns, &name)
            .await?
            .filter(|v| v.stream.arn.as_str() == arn.as_str()))
    }

    async fn resolve(&self, ns: &Namespace, r: &StreamRef) -> Result<StreamView, ServiceError> {
        let found = match r {
            StreamRef::Name(name) => self.load(ns, name).await?,
            StreamRef::Arn(arn) => self.load_arn(ns, arn).await?,
        };
        found.ok_or_else(stream_not_found)
    }

    pub async fn create(&self, ns: &Namespace, req: CreateStream) -> Result<Stream, ServiceError> {
        check_retention(i64::from(req.data_retention_hours))?;
        let tags = crate::model::tags_with(&Tags::new(), &req.tags)?;
        let now = self.now();
        let created = float_safe_millis(now);
        let delay = self.delay_millis();
        let stream = Stream {
            arn: stream_arn(ns, &req.name, created),
            ns: ns.clone(),
            name: req.name,
            device_name: req.device_name,
            media_type: req.media_type,
            kms_key_id: req.kms_key_id.unwrap_or_else(|| KmsKeyId::aws_managed(ns)),
            data_retention_hours: req.data_retention_hours,
            status: if delay == 0 {
                Status::Active
            } else {
                Status::Creating
            },
            status_until_millis: now.saturating_add(delay),
            created_millis: created,
            version: Version::generate(),
            tags,
            revision: 1,
        };
        // A name still held by a stream that finished deleting is free: `load` purges it.
        if self.load(ns, &stream.name).await?.is_some() {
            return Err(name_in_use(&stream.name));
        }
        for attempt in 0..2 {
            match self
                .store
                .insert(stream.clone(), self.config.max_streams)
                .await
            {
                Ok(()) => return Ok(stream),
                Err(StoreError::AlreadyExists) => return Err(name_in_use(&stream.name)),
                Err(StoreError::LimitExceeded) if attempt == 0 => {
                    // Streams that finished deleting still count until purged.
                    if self.purge_namespace(ns).await? == 0 {
                        break;
                    }
                }
                Err(StoreError::LimitExceeded) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::new(
            ErrorCode::AccountStreamLimitExceeded,
            format!(
                "You have reached the maximum limit of streams ({}) for this account.",
                self.config.max_streams
            ),
        ))
    }

    async fn purge_namespace(&self, ns: &Namespace) -> Result<usize, ServiceError> {
        const PAGE: usize = 1000;
        let now = self.now();
        let mut after: Option<StreamName> = None;
        let mut purged = 0;
        loop {
            let page = self.store.list(ns, None, after.as_ref(), PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|s| s.name.clone());
            for s in page.into_iter().filter(|s| s.is_gone(now)) {
                if self.store.remove(ns, &s.name, s.revision).await.is_ok() {
                    purged += 1;
                }
            }
            if !full {
                return Ok(purged);
            }
        }
    }

    pub async fn describe(
        &self,
        ns: &Namespace,
        r: &StreamRef,
    ) -> Result<StreamView, ServiceError> {
        self.resolve(ns, r).await
    }

    pub async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&StreamName>,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<StreamPage, ServiceError> {
        let max_results = max_results.max(1);
        let mut after = match next_token {
            Some(t) if !t.is_empty() => Some(decode_token(t)?),
            _ => None,
        };
        let prefix = prefix.map(StreamName::as_str);
        let mut out: Vec<StreamView> = Vec::with_capacity(max_results.min(1024));
        loop {
            let want = max_results - out.len() + 1;
            let batch = self.store.list(ns, prefix, after.as_ref(), want).await?;
            let exhausted = batch.len() < want;
            for s in batch {
                after = Some(s.name.clone());
                if let Some(v) = self.view(s).await {
                    if out.len() == max_results {
                        let token = out.last().map(|v| encode_token(&v.stream.name));
                        return Ok(StreamPage {
                            streams: out,
                            next_token: token,
                        });
                    }
                    out.push(v);
                }
            }
            if exhausted {
                return Ok(StreamPage {
                    streams: out,
                    next_token: None,
                });
            }
        }
    }

    /// UpdateStream: a new DeviceName and/or MediaType, a new Version.
    pub async fn update(
        &self,
        ns: &Namespace,
        r: &StreamRef,
        current: &Version,
        device_name: Option<DeviceName>,
        media_type: Option<MediaType>,
    ) -> Result<(), ServiceError> {
        self.mutate(ns, r, |view, now, delay| {
            check_active_version(view, Some(current))?;
            let mut next = updating(view, now, delay);
            if let Some(d) = &device_name {
                next.device_name = Some(d.clone());
            }
            if let Some(m) = &media_type {
                next.media_type = Some(m.clone());
            }
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    pub async fn update_retention(
        &self,
        ns: &Namespace,
        r: &StreamRef,
        current: &Version,
        change: RetentionChange,
    ) -> Result<(), ServiceError> {
        self.mutate(ns, r, |view, now, delay| {
            check_active_version(view, Some(current))?;
            let hours = i64::from(view.stream.data_retention_hours);
            let target = match change {
                RetentionChange::Increase(h) => hours + i64::from(h),
                RetentionChange::Decrease(h) => hours - i64::from(h),
            };
            if target < 0 {
                return Err(ServiceError::invalid(format!(
                    "The data retention of stream {} is {hours} hours; it cannot be decreased \
                     by {} hours.",
                    view.stream.name,
                    hours - target
                )));
            }
            check_retention(target)?;
            let mut next = updating(view, now, delay);
            next.data_retention_hours = target as u32;
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    /// DeleteStream: the stream goes (or starts DELETING), and the channel mapped to it, if
    /// any, has no media storage configured any more.
    pub async fn delete(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        current: Option<&Version>,
    ) -> Result<(), ServiceError> {
        let r = StreamRef::Arn(arn.clone());
        self.mutate(ns, &r, |view, now, delay| {
            check_active_version(view, current)?;
            if delay == 0 {
                return Ok(None);
            }
            let mut next = view.stream.clone();
            next.status = Status::Deleting;
            next.status_until_millis = now.saturating_add(delay);
            Ok(Some(next))
        })
        .await?;
        // Removing the stream removed its link; a DELETING stream is unlinked now.
        self.store.unlink_stream(ns, arn).await?;
        Ok(())
    }

    /// Removes every stream and media-storage link of every namespace (`POST /_kvs/reset`).
    pub async fn clear_all(&self) -> Result<usize, ServiceError> {
        Ok(self.store.clear().await?)
    }

    pub async fn tag(
        &self,
        ns: &Namespace,
        r: &StreamRef,
        tags: Vec<(TagKey, TagValue)>,
    ) -> Result<(), ServiceError> {
        self.mutate(ns, r, |view, _, _| {
            let mut next = view.stream.clone();
            next.tags = crate::model::tags_with(&next.tags, &tags)?;
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    pub async fn untag(
        &self,
        ns: &Namespace,
        r: &StreamRef,
        keys: &[TagKey],
    ) -> Result<(), ServiceError> {
        self.mutate(ns, r, |view, _, _| {
            let mut next = view.stream.clone();
            next.tags = crate::model::tags_without(&next.tags, keys);
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    pub async fn list_tags(&self, ns: &Namespace, r: &StreamRef) -> Result<Tags, ServiceError> {
        Ok(self.resolve(ns, r).await?.stream.tags)
    }

    /// A channel's media-storage configuration. A link whose stream is gone (a crash between
    /// deleting it and unlinking) counts as none.
    pub async fn media_storage(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<MediaStorage, ServiceError> {
        let Some(link) = self.store.link_of_channel(ns, channel_arn).await? else {
            return Ok(MediaStorage {
                enabled: false,
                stream_arn: None,
            });
        };
        match self.load_arn(ns, &link.stream_arn).await? {
            Some(v) if v.status != Status::Deleting => Ok(MediaStorage {
                enabled: link.enabled,
                stream_arn: Some(link.stream_arn),
            }),
            _ => {
                self.store.unlink_channel(ns, channel_arn).await?;
                Ok(MediaStorage {
                    enabled: false,
                    stream_arn: None,
                })
            }
        }
    }

    /// UpdateMediaStorageConfiguration for a channel the caller found ACTIVE. ENABLED needs a
    /// stream, ACTIVE, with data retention, mapped to no other channel; DISABLED with a stream
    /// keeps the mapping switched off; DISABLED without one removes it.
    pub async fn set_media_storage(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
        enabled: bool,
        stream: Option<&ResourceArn>,
    ) -> Result<(), ServiceError> {
        let Some(stream_arn) = stream else {
            if enabled {
                return Err(ServiceError::invalid(
                    "MediaStorageConfiguration.StreamARN must be specified when Status is \
                     ENABLED.",
                ));
            }
            return Ok(self.store.unlink_channel(ns, channel_arn).await?);
        };
        let view = self
            .load_arn(ns, stream_arn)
            .await?
            .ok_or_else(stream_not_found)?;
        if view.status != Status::Active {
            return Err(not_active(&view));
        }
        if enabled && view.stream.data_retention_hours == 0 {
            return Err(ServiceError::new(
                ErrorCode::NoDataRetention,
                format!(
                    "The stream {} has no data retention (DataRetentionInHours is 0); media \
                     storage needs a stream that keeps data.",
                    view.stream.name
                ),
            ));
        }
        let link = MediaLink {
            ns: ns.clone(),
            channel_arn: channel_arn.clone(),
            stream_arn: stream_arn.clone(),
            enabled,
        };
        match self.store.set_link(link).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(stream_not_found()),
            Err(StoreError::AlreadyExists) => {
                let other = self
                    .store
                    .link_of_stream(ns, stream_arn)
                    .await?
                    .map(|l| l.channel_arn.to_string())
                    .unwrap_or_else(|| "another signaling channel".into());
                Err(ServiceError::in_use(format!(
                    "The stream {} is already mapped to {other}.",
                    view.stream.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// DescribeMappedResourceConfiguration: the channel a stream is mapped to, if any.
    pub async fn mapped_channel(
        &self,
        ns: &Namespace,
        r: &StreamRef,
    ) -> Result<Option<ResourceArn>, ServiceError> {
        let view = self.resolve(ns, r).await?;
        Ok(self
            .store
            .link_of_stream(ns, &view.stream.arn)
            .await?
            .map(|l| l.channel_arn))
    }

    /// A channel was deleted: it has no media storage any more, and its stream is free.
    pub async fn channel_deleted(
        &self,
        ns: &Namespace,
        channel_arn: &ResourceArn,
    ) -> Result<(), ServiceError> {
        Ok(self.store.unlink_channel(ns, channel_arn).await?)
    }

    /// Read-modify-write with compare-and-swap on the revision (the channel service's shape):
    /// `f`'s checks are re-run on every retry.
    async fn mutate<F>(
        &self,
        ns: &Namespace,
        r: &StreamRef,
        mut f: F,
    ) -> Result<Option<Stream>, ServiceError>
    where
        F: FnMut(&StreamView, u64, u64) -> Result<Option<Stream>, ServiceError>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let view = self.resolve(ns, r).await?;
            let expected = view.stream.revision;
            let result = match f(&view, self.now(), self.delay_millis())? {
                Some(mut next) => {
                    next.revision = expected + 1;
                    self.store
                        .replace(next.clone(), expected)
                        .await
                        .map(|()| Some(next))
                }
                None => self
                    .store
                    .remove(ns, &view.stream.name, expected)
                    .await
                    .map(|()| None),
            };
            match result {
                Ok(s) => return Ok(s),
                Err(StoreError::VersionConflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::limit(
            "Too many concurrent changes to this stream; try again.",
        ))
    }
}

/// The stream after an accepted update: a new Version, UPDATING for the lifecycle delay.
fn updating(view: &StreamView, now: u64, delay: u64) -> Stream {
    let mut next = view.stream.clone();
    next.version = Version::generate();
    if delay > 0 {
        next.status = Status::Updating;
        next.status_until_millis = now.saturating_add(delay);
    } else {
        next.status = Status::Active;
    }
    next
}

fn check_active_version(view: &StreamView, current: Option<&Version>) -> Result<(), ServiceError> {
    if view.status != Status::Active {
        return Err(not_active(view));
    }
    if current.is_some_and(|v| *v != view.stream.version) {
        return Err(ServiceError::new(
            ErrorCode::VersionMismatch,
            "The specified version does not match the latest version of the stream.",
        ));
    }
    Ok(())
}

fn check_retention(hours: i64) -> Result<(), ServiceError> {
    if hours > i64::from(MAX_RETENTION_HOURS) {
        return Err(ServiceError::invalid(format!(
            "The data retention period cannot exceed {MAX_RETENTION_HOURS} hours; {hours} was \
             requested."
        )));
    }
    Ok(())
}

pub fn stream_not_found() -> ServiceError {
    ServiceError::not_found("The requested stream is not found or not active.")
}

fn name_in_use(name: &StreamName) -> ServiceError {
    ServiceError::in_use(format!("The stream {name} already exists."))
}

fn not_active(view: &StreamView) -> ServiceError {
    ServiceError::in_use(format!(
        "The stream {} is not in the ACTIVE state (it is {}).",
        view.stream.name,
        view.status.as_str()
    ))
}

/// ListStreams' NextToken: a keyset cursor (the last name returned), base64 so it matches the
/// model's `[a-zA-Z0-9+/=]*`, like ListSignalingChannels' (crate::pagination).
pub fn encode_token(last: &StreamName) -> String {
    STANDARD.encode(format!("{TOKEN_PREFIX}{last}"))
}

pub fn decode_token(token: &str) -> Result<StreamName, ServiceError> {
    let bad = || ServiceError::invalid("The NextToken is not valid.");
    if token.len() > 1024 {
        return Err(bad());
    }
    let raw = STANDARD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let name = text.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    StreamName::parse("NextToken", name).map_err(|_| bad())
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

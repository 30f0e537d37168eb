//! ChannelService: the signaling-channel control plane's rules (docs/protocol.md §9), independent of
//! any wire format. Callers pass validated identifiers and a [`Namespace`]; lookups never cross
//! namespaces, so a channel of another account or region is simply not found.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{ErrorCode, ServiceError};
use crate::ids::{ChannelName, MessageTtl, Namespace, ResourceArn, TagKey, TagValue, Version};
use crate::model::{Channel, ChannelStatus, ChannelType, Tags};
use crate::pagination;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How long CREATING / UPDATING / DELETING last (docs/design.md §2 "Lifecycle").
    pub lifecycle_delay: Duration,
    /// Channels per account and region (docs/protocol.md §8.1).
    pub max_channels: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            lifecycle_delay: Duration::ZERO,
            max_channels: 10_000,
        }
    }
}

/// How a request names a channel.
#[derive(Debug, Clone)]
pub enum ChannelRef {
    Name(ChannelName),
    Arn(ResourceArn),
}

pub struct CreateChannel {
    pub name: ChannelName,
    pub channel_type: ChannelType,
    pub ttl: MessageTtl,
    pub tags: Vec<(TagKey, TagValue)>,
}

/// A channel together with the status in force when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    pub channel: Channel,
    pub status: ChannelStatus,
}

#[derive(Debug)]
pub struct ListPage {
    pub channels: Vec<ChannelView>,
    pub next_token: Option<String>,
}

/// Retries of a read-modify-write that lost a race on the revision (tags and version changes
/// by other callers); each retry re-checks the caller's preconditions.
const CAS_ATTEMPTS: usize = 64;

pub struct ChannelService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
}

impl ChannelService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ServiceConfig) -> Self {
        Self {
            store,
            clock,
            config,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Every channel of every namespace that still exists for clients (`GET /_kvs/state`);
    /// walks the whole registry, in pages.
    pub async fn all_channels(&self) -> Result<Vec<Channel>, ServiceError> {
        const PAGE: usize = 1000;
        let now = self.now();
        let mut out = Vec::new();
        for ns in self.store.namespaces().await? {
            let mut after: Option<ChannelName> = None;
            loop {
                let page = self.store.list(&ns, None, after.as_ref(), PAGE).await?;
                let full = page.len() == PAGE;
                after = page.last().map(|c| c.name.clone());
                out.extend(page.into_iter().filter(|c| !c.is_gone(now)));
                if !full {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Removes every channel of every namespace at once, whatever its status and the
    /// lifecycle delay (`POST /_kvs/reset`); returns the channels removed. Their connections
    /// are the caller's to tell ([`crate::app::Application::reset`]).
    pub async fn clear_all(&self) -> Result<Vec<Channel>, ServiceError> {
        Ok(self.store.clear().await?)
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn delay_millis(&self) -> u64 {
        u64::try_from(self.config.lifecycle_delay.as_millis()).unwrap_or(u64::MAX)
    }

    /// Reads a channel by name; a channel that finished deleting is purged and reported absent.
    async fn load(
        &self,
        ns: &Namespace,
        name: &ChannelName,
    ) -> Result<Option<ChannelView>, ServiceError> {
        let Some(channel) = self.store.get(ns, name).await? else {
            return Ok(None);
        };
        Ok(self.view(channel).await)
    }

    async fn view(&self, channel: Channel) -> Option<ChannelView> {
        match channel.status_at(self.now()) {
            Some(status) => Some(ChannelView { channel, status }),
            None => {
                self.purge(&channel).await;
                None
            }
        }
    }

    async fn purge(&self, channel: &Channel) {
        // Not waited for durably (`Store::purge`): reads must not cost an fsync each. Losing
        // this race is fine: someone else purged or replaced it.
        let _ = self
            .store
            .purge(&channel.ns, &channel.name, channel.revision)
            .await;
    }

    async fn resolve(&self, ns: &Namespace, r: &ChannelRef) -> Result<ChannelView, ServiceError> {
        let found = match r {
            ChannelRef::Name(name) => self.load(ns, name).await?,
            ChannelRef::Arn(arn) => self.load_arn(ns, arn).await?,
        };
        found.ok_or_else(ServiceError::channel_not_found)
    }

    async fn load_arn(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
    ) -> Result<Option<ChannelView>, ServiceError> {
        if arn.resource_type != "channel"
            || arn.account != ns.account.as_str()
            || arn.region != ns.region.as_str()
        {
            return Ok(None);
        }
        let Ok(name) = ChannelName::parse("ChannelARN", &arn.name) else {
            return Ok(None);
        };
        Ok(self
            .load(ns, &name)
            .await?
            .filter(|v| v.channel.arn.as_str() == arn.as_str()))
    }

    pub async fn create(
        &self,
        ns: &Namespace,
        req: CreateChannel,
    ) -> Result<Channel, ServiceError> {
        if req.channel_type != ChannelType::SingleMaster {
            return Err(ServiceError::invalid(
                "Currently, SINGLE_MASTER is the only supported channel type.",
            ));
        }
        let tags = crate::model::tags_with(&Tags::new(), &req.tags)?;
        let now = self.now();
        let created = crate::model::float_safe_millis(now);
        let delay = self.delay_millis();
        let channel = Channel {
            arn: ResourceArn::channel(ns, &req.name, created),
            ns: ns.clone(),
            name: req.name,
            channel_type: req.channel_type,
            status: if delay == 0 {
                ChannelStatus::Active
            } else {
                ChannelStatus::Creating
            },
            status_until_millis: now.saturating_add(delay),
            created_millis: created,
            ttl: req.ttl,
            version: Version::generate(),
            tags,
            revision: 1,
        };
        // A name still held by a channel that has finished deleting is free: purge it first.
        if self.load(ns, &channel.name).await?.is_some() {
            return Err(name_in_use(&channel.name));
        }
        match self
            .store
            .insert(channel.clone(), self.config.max_channels)
            .await
        {
            Ok(()) => Ok(channel),
            Err(StoreError::AlreadyExists) => Err(name_in_use(&channel.name)),
            Err(StoreError::LimitExceeded) => {
                // Channels that finished deleting still occupy rows until purged.
                if self.purge_namespace(ns).await? > 0 {
                    match self
                        .store
                        .insert(channel.clone(), self.config.max_channels)
                        .await
                    {
                        Ok(()) => return Ok(channel),
                        Err(StoreError::AlreadyExists) => return Err(name_in_use(&channel.name)),
                        Err(StoreError::LimitExceeded) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(ServiceError::new(
                    ErrorCode::AccountChannelLimitExceeded,
                    format!(
                        "You have reached the maximum limit of active signaling channels ({}) for \
                     this account.",
                        self.config.max_channels
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Purges the channels of `ns` that finished deleting, walking the namespace in pages (it
    /// holds at most `max_channels`). Only reached when the namespace is full.
    async fn purge_namespace(&self, ns: &Namespace) -> Result<usize, ServiceError> {
        const PAGE: usize = 1000;
        let now = self.now();
        let mut after: Option<ChannelName> = None;
        let mut purged = 0;
        loop {
            let page = self.store.list(ns, None, after.as_ref(), PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|c| c.name.clone());
            for c in page.iter().filter(|c| c.is_gone(now)) {
                self.purge(c).await;
                purged += 1;
            }
            if !full {
                return Ok(purged);
            }
        }
    }

    pub async fn describe(
        &self,
        ns: &Namespace,
        r: &ChannelRef,
    ) -> Result<ChannelView, ServiceError> {
        self.resolve(ns, r).await
    }

    /// Looks a channel up by ARN, whatever its status.
    pub async fn get_by_arn(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
    ) -> Result<ChannelView, ServiceError> {
        self.load_arn(ns, arn)
            .await?
            .ok_or_else(ServiceError::channel_not_found)
    }

    pub async fn list(
        &self,
        ns: &Namespace,
        prefix: Option<&ChannelName>,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<ListPage, ServiceError> {
        let mut after = match next_token {
            Some(t) if !t.is_empty() => Some(pagination::decode(t)?),
            _ => None,
        };
        let prefix = prefix.map(|p| p.as_str());
        let mut out = Vec::with_capacity(max_results.min(1024));
        // Ask for one more than needed to learn whether another page exists; skip (and purge)
        // channels that finished deleting.
        loop {
            let want = max_results - out.len() + 1;
            let batch = self.store.list(ns, prefix, after.as_ref(), want).await?;
            let exhausted = batch.len() < want;
            for c in batch {
                after = Some(c.name.clone());
                if let Some(v) = self.view(c).await {
                    if out.len() == max_results {
                        let last = out
                            .last()
                            .map(|v: &ChannelView| v.channel.name.clone())
                            .ok_or_else(|| ServiceError::invalid("MaxResults must be positive"))?;
                        return Ok(ListPage {
                            channels: out,
                            next_token: Some(pagination::encode(&last)),
                        });
                    }
                    out.push(v);
                }
            }
            if exhausted {
                return Ok(ListPage {
                    channels: out,
                    next_token: None,
                });
            }
        }
    }

    pub async fn update(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        current: &Version,
        ttl: Option<MessageTtl>,
    ) -> Result<Channel, ServiceError> {
        self.mutate(ns, arn, |view, now, delay| {
            if view.status != ChannelStatus::Active {
                return Err(not_active(view));
            }
            if view.channel.version != *current {
                return Err(version_mismatch());
            }
            let mut next = view.channel.clone();
            next.version = Version::generate();
            if let Some(ttl) = ttl {
                next.ttl = ttl;
            }
            if delay > 0 {
                next.status = ChannelStatus::Updating;
                next.status_until_millis = now.saturating_add(delay);
            } else {
                next.status = ChannelStatus::Active;
            }
            Ok(Some(next))
        })
        .await
        .and_then(|c| c.ok_or_else(ServiceError::channel_not_found))
    }

    /// Deletes (or starts deleting) a channel. Returns the channel as it was. Callers go
    /// through [`crate::app::Application::delete_channel`], which also tells its connections.
    pub(crate) async fn delete(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        current: Option<&Version>,
    ) -> Result<Channel, ServiceError> {
        let mut before = None;
        self.mutate(ns, arn, |view, now, delay| {
            if view.status != ChannelStatus::Active {
                return Err(not_active(view));
            }
            if current.is_some_and(|v| *v != view.channel.version) {
                return Err(version_mismatch());
            }
            before = Some(view.channel.clone());
            if delay == 0 {
                return Ok(None);
            }
            let mut next = view.channel.clone();
            next.status = ChannelStatus::Deleting;
            next.status_until_millis = now.saturating_add(delay);
            Ok(Some(next))
        })
        .await?;
        before.ok_or_else(ServiceError::channel_not_found)
    }

    pub async fn tag(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        tags: Vec<(TagKey, TagValue)>,
    ) -> Result<(), ServiceError> {
        self.mutate(ns, arn, |view, _, _| {
            let mut next = view.channel.clone();
            next.tags = crate::model::tags_with(&next.tags, &tags)?;
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    pub async fn untag(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        keys: &[TagKey],
    ) -> Result<(), ServiceError> {
        self.mutate(ns, arn, |view, _, _| {
            let mut next = view.channel.clone();
            next.tags = crate::model::tags_without(&next.tags, keys);
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    pub async fn list_tags(&self, ns: &Namespace, arn: &ResourceArn) -> Result<Tags, ServiceError> {
        Ok(self.get_by_arn(ns, arn).await?.channel.tags)
    }

    /// Read-modify-write with compare-and-swap on the revision. `f` sees the current channel
    /// and returns its replacement, or `None` to remove it; its checks are re-run on every
    /// retry, so a concurrent UpdateSignalingChannel with the same CurrentVersion loses with
    /// VersionMismatchException rather than overwriting.
    async fn mutate<F>(
        &self,
        ns: &Namespace,
        arn: &ResourceArn,
        mut f: F,
    ) -> Result<Option<Channel>, ServiceError>
    where
        F: FnMut(&ChannelView, u64, u64) -> Result<Option<Channel>, ServiceError>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let view = self.get_by_arn(ns, arn).await?;
            let expected = view.channel.revision;
            let now = self.now();
            let result = match f(&view, now, self.delay_millis())? {
                Some(mut next) => {
                    next.revision = expected + 1;
                    self.store
                        .replace(next.clone(), expected)
                        .await
                        .map(|()| Some(next))
                }
                None => self
                    .store
                    .remove(ns, &view.channel.name, expected)
                    .await
                    .map(|()| None),
            };
            match result {
                Ok(c) => return Ok(c),
                Err(StoreError::VersionConflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::limit(
            "Too many concurrent changes to this channel; try again.",
        ))
    }
}

fn name_in_use(name: &ChannelName) -> ServiceError {
    ServiceError::in_use(format!("The signaling channel {name} already exists."))
}

fn version_mismatch() -> ServiceError {
    ServiceError::new(
        ErrorCode::VersionMismatch,
        "The specified version does not match the latest version of the channel.",
    )
}

fn not_active(view: &ChannelView) -> ServiceError {
    ServiceError::in_use(format!(
        "The signaling channel {} is not in the ACTIVE state (it is {}).",
        view.channel.name,
        view.status.as_str()
    ))
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

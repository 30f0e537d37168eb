//! The stored form of a channel: a versioned serde record, so the on-disk format can evolve
//! (`format` is checked on read; an unknown format is reported, never guessed at).

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::ids::{AccountId, ChannelName, MessageTtl, Namespace, Region, ResourceArn, Version};
use crate::model::{Channel, ChannelStatus, ChannelType, Tags};

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredChannel {
    pub format: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub channel_type: String,
    pub status: String,
    pub status_until_millis: u64,
    pub created_millis: u64,
    pub ttl_seconds: u32,
    pub version: String,
    pub tags: Tags,
    pub revision: u64,
}

impl From<&Channel> for StoredChannel {
    fn from(c: &Channel) -> Self {
        Self {
            format: FORMAT_VERSION,
            account: c.ns.account.to_string(),
            region: c.ns.region.to_string(),
            name: c.name.to_string(),
            arn: c.arn.to_string(),
            channel_type: c.channel_type.as_str().into(),
            status: c.status.as_str().into(),
            status_until_millis: c.status_until_millis,
            created_millis: c.created_millis,
            ttl_seconds: c.ttl.seconds(),
            version: c.version.to_string(),
            tags: c.tags.clone(),
            revision: c.revision,
        }
    }
}

impl TryFrom<StoredChannel> for Channel {
    type Error = StoreError;

    fn try_from(s: StoredChannel) -> Result<Self, StoreError> {
        if s.format != FORMAT_VERSION {
            return Err(StoreError::Corrupt(format!(
                "record format {} is not supported by this build (expects {FORMAT_VERSION})",
                s.format
            )));
        }
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of channel {:?}", s.name));
        let ns = Namespace::new(
            AccountId::parse(&s.account).map_err(|_| bad("account"))?,
            Region::parse(&s.region).map_err(|_| bad("region"))?,
        );
        Ok(Channel {
            name: ChannelName::parse("name", &s.name).map_err(|_| bad("name"))?,
            arn: ResourceArn::parse("arn", &s.arn).map_err(|_| bad("arn"))?,
            channel_type: ChannelType::parse(&s.channel_type).ok_or_else(|| bad("type"))?,
            status: ChannelStatus::parse(&s.status).ok_or_else(|| bad("status"))?,
            status_until_millis: s.status_until_millis,
            created_millis: s.created_millis,
            ttl: MessageTtl::parse("ttl", i64::from(s.ttl_seconds)).map_err(|_| bad("ttl"))?,
            version: Version::parse("version", &s.version).map_err(|_| bad("version"))?,
            tags: s.tags,
            revision: s.revision,
            ns,
        })
    }
}

impl StoredChannel {
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Backend(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

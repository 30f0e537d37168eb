//! The stored forms of a stream and a media-storage link: versioned serde records, like the
//! channel's (`crate::store::StoredChannel`), so a backend stores one JSON text per row or key
//! and the format can evolve (an unknown `format` is reported, never guessed at).

use serde::{Deserialize, Serialize};

use super::model::{DeviceName, KmsKeyId, MediaLink, MediaType, Status, Stream, StreamName};
use crate::ids::{AccountId, Namespace, Region, ResourceArn, Version};
use crate::model::Tags;
use crate::store::StoreError;

/// The record format this build writes and reads.
pub const STREAM_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredStream {
    pub format: u32,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub kms_key_id: String,
    pub data_retention_hours: u32,
    pub status: String,
    pub status_until_millis: u64,
    pub created_millis: u64,
    pub version: String,
    pub tags: Tags,
    pub revision: u64,
}

fn ns_of(account: &str, region: &str) -> Option<Namespace> {
    Some(Namespace::new(
        AccountId::parse(account).ok()?,
        Region::parse(region).ok()?,
    ))
}

fn check_format(format: u32, what: &str) -> Result<(), StoreError> {
    if format != STREAM_FORMAT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{what} record format {format} is not supported by this build (expects \
             {STREAM_FORMAT_VERSION})"
        )));
    }
    Ok(())
}

impl From<&Stream> for StoredStream {
    fn from(s: &Stream) -> Self {
        Self {
            format: STREAM_FORMAT_VERSION,
            account: s.ns.account.to_string(),
            region: s.ns.region.to_string(),
            name: s.name.to_string(),
            arn: s.arn.to_string(),
            device_name: s.device_name.as_ref().map(|d| d.as_str().to_owned()),
            media_type: s.media_type.as_ref().map(|m| m.as_str().to_owned()),
            kms_key_id: s.kms_key_id.as_str().to_owned(),
            data_retention_hours: s.data_retention_hours,
            status: s.status.as_str().into(),
            status_until_millis: s.status_until_millis,
            created_millis: s.created_millis,
            version: s.version.to_string(),
            tags: s.tags.clone(),
            revision: s.revision,
        }
    }
}

impl TryFrom<StoredStream> for Stream {
    type Error = StoreError;

    fn try_from(s: StoredStream) -> Result<Self, StoreError> {
        check_format(s.format, "stream")?;
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of stream {:?}", s.name));
        Ok(Stream {
            ns: ns_of(&s.account, &s.region).ok_or_else(|| bad("namespace"))?,
            name: StreamName::parse("name", &s.name).map_err(|_| bad("name"))?,
            arn: ResourceArn::parse("arn", &s.arn).map_err(|_| bad("arn"))?,
            device_name: s
                .device_name
                .as_deref()
                .map(|d| DeviceName::parse("device", d))
                .transpose()
                .map_err(|_| bad("device name"))?,
            media_type: s
                .media_type
                .as_deref()
                .map(|m| MediaType::parse("media", m))
                .transpose()
                .map_err(|_| bad("media type"))?,
            kms_key_id: KmsKeyId::parse("kms", &s.kms_key_id).map_err(|_| bad("kms key"))?,
            data_retention_hours: s.data_retention_hours,
            status: Status::parse(&s.status).ok_or_else(|| bad("status"))?,
            status_until_millis: s.status_until_millis,
            created_millis: s.created_millis,
            version: Version::parse("version", &s.version).map_err(|_| bad("version"))?,
            tags: s.tags,
            revision: s.revision,
        })
    }
}

impl StoredStream {
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Backend(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLink {
    pub format: u32,
    pub account: String,
    pub region: String,
    pub channel_arn: String,
    pub stream_arn: String,
    pub enabled: bool,
}

impl From<&MediaLink> for StoredLink {
    fn from(l: &MediaLink) -> Self {
        Self {
            format: STREAM_FORMAT_VERSION,
            account: l.ns.account.to_string(),
            region: l.ns.region.to_string(),
            channel_arn: l.channel_arn.to_string(),
            stream_arn: l.stream_arn.to_string(),
            enabled: l.enabled,
        }
    }
}

impl TryFrom<StoredLink> for MediaLink {
    type Error = StoreError;

    fn try_from(l: StoredLink) -> Result<Self, StoreError> {
        check_format(l.format, "media-storage link")?;
        let bad = |what: &str| {
            StoreError::Corrupt(format!(
                "{what} of the media-storage link of {:?}",
                l.channel_arn
            ))
        };
        Ok(MediaLink {
            ns: ns_of(&l.account, &l.region).ok_or_else(|| bad("namespace"))?,
            channel_arn: ResourceArn::parse("arn", &l.channel_arn).map_err(|_| bad("channel"))?,
            stream_arn: ResourceArn::parse("arn", &l.stream_arn).map_err(|_| bad("stream"))?,
            enabled: l.enabled,
        })
    }
}

impl StoredLink {
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Backend(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

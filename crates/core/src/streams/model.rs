//! A Kinesis video stream as the service sees it (docs/protocol.md §3.1 `StreamInfo`), its
//! validated identifiers, and the media-storage link that binds a signaling channel to it
//! (docs/protocol.md §9.3, "DescribeMediaStorageConfiguration").
//!
//! Like a channel, a stream stores its transitional status with the moment it ends
//! (`status_until_millis`) and the status in force is computed from the clock on every read,
//! so the CREATING -> ACTIVE / UPDATING -> ACTIVE / DELETING -> gone lifecycle needs no
//! background task and survives restarts (docs/design.md §2 "Lifecycle").

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use crate::error::{Constraint, ServiceError, Violation};
use crate::ids::{Namespace, ResourceArn, Version};
use crate::model::{ChannelStatus, Tags};

/// The `Status` enum is shared by channels and streams in the model.
pub type Status = ChannelStatus;

fn check_len(member: &str, value: &str, min: usize, max: usize) -> Result<(), ServiceError> {
    let got = value.chars().count();
    if got < min || got > max {
        return Err(Violation::new(member, Constraint::Length { min, max, got }).into());
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `StreamName`: 1..256 of `[a-zA-Z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 256)?;
        if !s.chars().all(is_name_char) {
            return Err(Violation::new(member, Constraint::Pattern("[a-zA-Z0-9_.-]+")).into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Ordered and hashed as its string, so maps keyed by name can be searched by `&str`.
impl std::borrow::Borrow<str> for StreamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// `DeviceName`: 1..128 of `[a-zA-Z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceName(String);

impl DeviceName {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 128)?;
        if !s.chars().all(is_name_char) {
            return Err(Violation::new(member, Constraint::Pattern("[a-zA-Z0-9_.-]+")).into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `MediaType`: 1..128 matching `[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*`
/// (e.g. `video/h264`, `video/h264,audio/aac`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

impl MediaType {
    pub const PATTERN: &'static str = r"[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*";

    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        static RE: OnceLock<Regex> = OnceLock::new();
        check_len(member, s, 1, 128)?;
        let re = RE.get_or_init(|| {
            Regex::new(r"^[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*$")
                .expect("static regex")
        });
        if !re.is_match(s) {
            return Err(Violation::new(member, Constraint::Pattern(Self::PATTERN)).into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `KmsKeyId`: 1..2048 of `.+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KmsKeyId(String);

impl KmsKeyId {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 2048)?;
        if s.contains(['\n', '\r']) {
            return Err(Violation::new(member, Constraint::Pattern(".+")).into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The key AWS reports for a stream created without one: the account's AWS-managed
    /// Kinesis Video key.
    pub fn aws_managed(ns: &Namespace) -> Self {
        Self(format!(
            "arn:aws:kms:{}:{}:alias/aws/kinesisvideo",
            ns.region, ns.account
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest retention AWS accepts: 87,600 hours, ten years (AWS's CreateStream
/// documentation); the model itself only says `min 0`.
pub const MAX_RETENTION_HOURS: u32 = 87_600;

/// The ARN of a stream created at `created_millis` (docs/protocol.md §9.1):
/// `arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/CREATION_MILLIS`.
pub fn stream_arn(ns: &Namespace, name: &StreamName, created_millis: u64) -> ResourceArn {
    let text = format!(
        "arn:aws:kinesisvideo:{}:{}:stream/{}/{}",
        ns.region, ns.account, name, created_millis
    );
    // The pieces are validated identifiers, so the text always matches the ARN pattern.
    ResourceArn::parse("StreamARN", &text).unwrap_or_else(|_| {
        unreachable!("a stream ARN built from validated parts matches the ARN pattern")
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub ns: Namespace,
    pub name: StreamName,
    pub arn: ResourceArn,
    pub device_name: Option<DeviceName>,
    pub media_type: Option<MediaType>,
    pub kms_key_id: KmsKeyId,
    pub data_retention_hours: u32,
    /// The stored status; see [`Stream::status_at`] for the one in force.
    pub status: Status,
    /// When a transitional status ends (epoch millis). Ignored for ACTIVE.
    pub status_until_millis: u64,
    pub created_millis: u64,
    /// The client-visible token; rotates on UpdateStream and UpdateDataRetention.
    pub version: Version,
    pub tags: Tags,
    /// Bumped on every stored change (tags included); the store's compare-and-swap key.
    pub revision: u64,
}

impl Stream {
    /// The status in force at `now`, or `None` when the stream has finished deleting.
    pub fn status_at(&self, now_millis: u64) -> Option<Status> {
        let done = now_millis >= self.status_until_millis;
        match (self.status, done) {
            (Status::Deleting, true) => None,
            (Status::Creating | Status::Updating, true) => Some(Status::Active),
            (s, _) => Some(s),
        }
    }

    pub fn is_gone(&self, now_millis: u64) -> bool {
        self.status_at(now_millis).is_none()
    }
}

/// A signaling channel's media-storage configuration when it names a stream
/// (UpdateMediaStorageConfiguration): the channel, the stream, and whether storage is ENABLED.
/// A channel has at most one link and a stream is linked to at most one channel; a channel
/// without a link is `DISABLED` with no stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink {
    pub ns: Namespace,
    pub channel_arn: ResourceArn,
    pub stream_arn: ResourceArn,
    pub enabled: bool,
}

impl MediaLink {
    /// The linked stream's name (the ARN's name part).
    pub fn stream_name(&self) -> Result<StreamName, ServiceError> {
        StreamName::parse("StreamARN", &self.stream_arn.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{AccountId, Region};

    #[test]
    fn identifiers_follow_the_model() {
        assert!(StreamName::parse("s", "cam-1_a.b").is_ok());
        assert!(StreamName::parse("s", "").is_err());
        assert!(StreamName::parse("s", &"a".repeat(257)).is_err());
        assert!(StreamName::parse("s", "a b").is_err());
        assert!(DeviceName::parse("d", &"d".repeat(128)).is_ok());
        assert!(DeviceName::parse("d", &"d".repeat(129)).is_err());
        for ok in ["video/h264", "video/h264,audio/aac", "video/x-matroska+x"] {
            assert!(MediaType::parse("m", ok).is_ok(), "{ok}");
        }
        for bad in ["video", "video/", "/h264", "video/h264,", "video h264/x"] {
            assert!(MediaType::parse("m", bad).is_err(), "{bad}");
        }
        assert!(KmsKeyId::parse("k", "").is_err());
        assert!(KmsKeyId::parse("k", "alias/mine").is_ok());
    }

    #[test]
    fn arn_has_the_stream_form() {
        let ns = Namespace::new(
            AccountId::parse("111122223333").unwrap(),
            Region::parse("us-west-2").unwrap(),
        );
        let name = StreamName::parse("s", "cam").unwrap();
        let arn = stream_arn(&ns, &name, 1_712_136_149_494);
        assert_eq!(
            arn.as_str(),
            "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam/1712136149494"
        );
        assert_eq!(arn.resource_type, "stream");
        assert_eq!(
            KmsKeyId::aws_managed(&ns).as_str(),
            "arn:aws:kms:us-west-2:111122223333:alias/aws/kinesisvideo"
        );
    }
}

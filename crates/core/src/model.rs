//! The channel as the service sees it, and its status lifecycle (docs/protocol.md §9.2).
//!
//! Transitional statuses are stored with the moment they end (`status_until_millis`); the status
//! in force is computed from the clock on every read. That makes the asynchronous lifecycle
//! exact across restarts and needs no background task: a CREATING channel whose deadline has
//! passed *is* ACTIVE, and a DELETING one is gone.

use std::collections::BTreeMap;

use crate::ids::{ChannelName, MessageTtl, Namespace, ResourceArn, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelType {
    SingleMaster,
    FullMesh,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleMaster => "SINGLE_MASTER",
            Self::FullMesh => "FULL_MESH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SINGLE_MASTER" => Some(Self::SingleMaster),
            "FULL_MESH" => Some(Self::FullMesh),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Active => "ACTIVE",
            Self::Updating => "UPDATING",
            Self::Deleting => "DELETING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATING" => Some(Self::Creating),
            "ACTIVE" => Some(Self::Active),
            "UPDATING" => Some(Self::Updating),
            "DELETING" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// Tags keep the caller's keys and values as validated strings; at most 50 per channel.
pub type Tags = BTreeMap<String, String>;

/// The most tags a channel may carry (docs/protocol.md §9.3).
pub const MAX_TAGS: usize = 50;

/// `tags` with `add` set (a key given again takes the new value): the tag rule every taggable
/// resource shares, at most [`MAX_TAGS`] (TagsPerResourceExceededLimitException beyond).
pub fn tags_with(
    tags: &Tags,
    add: &[(crate::ids::TagKey, crate::ids::TagValue)],
) -> Result<Tags, crate::error::ServiceError> {
    let mut next = tags.clone();
    for (k, v) in add {
        next.insert(k.to_string(), v.to_string());
    }
    if next.len() > MAX_TAGS {
        return Err(crate::error::ServiceError::new(
            crate::error::ErrorCode::TagsPerResourceExceededLimit,
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    Ok(next)
}

/// `tags` without `keys` (a key not there is no error).
pub fn tags_without(tags: &Tags, keys: &[crate::ids::TagKey]) -> Tags {
    let mut next = tags.clone();
    for k in keys {
        next.remove(k.as_str());
    }
    next
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub ns: Namespace,
    pub name: ChannelName,
    pub arn: ResourceArn,
    pub channel_type: ChannelType,
    /// The stored status; see [`Channel::status_at`] for the one in force.
    pub status: ChannelStatus,
    /// When a transitional status ends (epoch millis). Ignored for ACTIVE.
    pub status_until_millis: u64,
    pub created_millis: u64,
    pub ttl: MessageTtl,
    pub version: Version,
    pub tags: Tags,
    /// Bumped on every stored change (tags included); the store's compare-and-swap key.
    /// `version` is the client-visible token and only rotates on UpdateSignalingChannel.
    pub revision: u64,
}

impl Channel {
    /// The status in force at `now`, or `None` when the channel has finished deleting.
    pub fn status_at(&self, now_millis: u64) -> Option<ChannelStatus> {
        let done = now_millis >= self.status_until_millis;
        match (self.status, done) {
            (ChannelStatus::Deleting, true) => None,
            (ChannelStatus::Creating | ChannelStatus::Updating, true) => {
                Some(ChannelStatus::Active)
            }
            (s, _) => Some(s),
        }
    }

    /// True once the channel no longer exists for clients.
    pub fn is_gone(&self, now_millis: u64) -> bool {
        self.status_at(now_millis).is_none()
    }
}

/// A creation time (epoch millis) at or just after `millis` whose wire form, epoch seconds as a
/// JSON number (docs/protocol.md §1), reads back as exactly the same millisecond in every client.
///
/// `CreationTime` must equal the ARN's millisecond suffix / 1000 (docs/protocol.md §9.1). At
/// today's epoch an `f64` of seconds carries ~0.2 µs of precision, and clients that split it
/// into whole seconds and a truncated fraction (aws-sdk-rust) read e.g. `….6` back as 599 ms
/// when the nearest `f64` lies below the exact value. Moving the creation time by a
/// millisecond or two to a value whose `f64` is not below it makes every client agree.
pub fn float_safe_millis(millis: u64) -> u64 {
    let reads_back = |ms: u64| {
        let f = ms as f64 / 1000.0;
        let secs = f.trunc();
        let frac_ms = ((f - secs) * 1e9) as u64 / 1_000_000;
        secs as u64 == ms / 1000 && frac_ms == ms % 1000 && (f * 1000.0) as u64 == ms
    };
    (millis..millis + 64)
        .find(|ms| reads_back(*ms))
        .unwrap_or(millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn float_safe_millis_read_back_exactly() {
        for start in [1_795_847_111_600u64, 1_712_136_149_494, 1_700_000_000_001] {
            let ms = super::float_safe_millis(start);
            assert!(ms >= start && ms < start + 64);
            let f = ms as f64 / 1000.0;
            let frac_ms = ((f - f.trunc()) * 1e9) as u64 / 1_000_000;
            assert_eq!(frac_ms, ms % 1000);
            // And through JSON text, as clients see it.
            let text = serde_json::to_string(&f).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back, f);
        }
    }

    use super::*;
    use crate::ids::{AccountId, Region};

    fn channel(status: ChannelStatus, until: u64) -> Channel {
        let ns = Namespace::new(
            AccountId::parse("000000000000").unwrap(),
            Region::parse("us-east-1").unwrap(),
        );
        let name = ChannelName::parse("n", "c").unwrap();
        Channel {
            arn: ResourceArn::channel(&ns, &name, 1),
            ns,
            name,
            channel_type: ChannelType::SingleMaster,
            status,
            status_until_millis: until,
            created_millis: 1,
            ttl: MessageTtl::DEFAULT,
            version: Version::generate(),
            tags: Tags::new(),
            revision: 1,
        }
    }

    #[test]
    fn transitional_statuses_end_at_their_deadline() {
        let c = channel(ChannelStatus::Creating, 100);
        assert_eq!(c.status_at(99), Some(ChannelStatus::Creating));
        assert_eq!(c.status_at(100), Some(ChannelStatus::Active));
        let u = channel(ChannelStatus::Updating, 100);
        assert_eq!(u.status_at(50), Some(ChannelStatus::Updating));
        assert_eq!(u.status_at(150), Some(ChannelStatus::Active));
        let d = channel(ChannelStatus::Deleting, 100);
        assert_eq!(d.status_at(99), Some(ChannelStatus::Deleting));
        assert!(d.is_gone(100));
        let a = channel(ChannelStatus::Active, 0);
        assert_eq!(a.status_at(u64::MAX), Some(ChannelStatus::Active));
    }

    #[test]
    fn enums_round_trip() {
        for s in ["CREATING", "ACTIVE", "UPDATING", "DELETING"] {
            assert_eq!(ChannelStatus::parse(s).unwrap().as_str(), s);
        }
        for s in ["SINGLE_MASTER", "FULL_MESH"] {
            assert_eq!(ChannelType::parse(s).unwrap().as_str(), s);
        }
        assert!(ChannelType::parse("single_master").is_none());
    }
}

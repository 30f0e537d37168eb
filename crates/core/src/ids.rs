//! Validated identifiers, parsed once at the edge (docs/design.md §5.4). Each constructor
//! enforces the length, pattern and range of its shape in the kinesisvideo model
//! (docs/protocol.md §3, §8.3) and says which member was wrong, so the wire layer can answer
//! InvalidArgumentException with a useful message.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use crate::error::{Constraint, ServiceError, Violation};

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn check_len(member: &str, value: &str, min: usize, max: usize) -> Result<(), ServiceError> {
    let got = value.chars().count();
    if got < min || got > max {
        return Err(Violation::new(member, Constraint::Length { min, max, got }).into());
    }
    Ok(())
}

fn pattern_error(member: &str, pattern: &'static str) -> ServiceError {
    Violation::new(member, Constraint::Pattern(pattern)).into()
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// `ChannelName`: 1..256 of `[a-zA-Z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);
string_newtype!(ChannelName);

impl ChannelName {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 256)?;
        if !s.chars().all(is_name_char) {
            return Err(pattern_error(member, "[a-zA-Z0-9_.-]+"));
        }
        Ok(Self(s.to_owned()))
    }
}

// Ordered and hashed exactly as its string, so maps keyed by name can be searched by `&str`.
impl std::borrow::Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A `ChannelNameCondition.ComparisonValue`, the same shape as a name.
pub type NamePrefix = ChannelName;

/// `Version`: 1..64 of `[a-zA-Z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);
string_newtype!(Version);

impl Version {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 64)?;
        if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(pattern_error(member, "[a-zA-Z0-9]+"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh token as AWS makes them: 20 random alphanumeric characters (docs/protocol.md §9.1).
    pub fn generate() -> Self {
        use rand::distr::Alphanumeric;
        use rand::RngExt;
        let s: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        Self(s)
    }
}

/// An AWS account id: 12 decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);
string_newtype!(AccountId);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid(format!(
                "account id must be 12 digits, got {s:?}"
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A region name as it appears in a SigV4 scope and an ARN: `[a-z0-9-]`, 1..32.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);
string_newtype!(Region);

impl Region {
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ServiceError::invalid(format!("invalid region {s:?}")));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Where a channel lives: names, ARNs and listings never cross namespaces (docs/design.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    pub account: AccountId,
    pub region: Region,
}

impl Namespace {
    pub fn new(account: AccountId, region: Region) -> Self {
        Self { account, region }
    }

    /// The namespace a channel ARN names, if its account and region are well formed.
    pub fn from_arn(arn: &ResourceArn) -> Option<Self> {
        Some(Self::new(
            AccountId::parse(&arn.account).ok()?,
            Region::parse(&arn.region).ok()?,
        ))
    }
}

/// A parsed `ResourceARN` (kinesisvideo model pattern
/// `arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+`, 1..1024).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceArn {
    text: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub resource_type: String,
    pub name: String,
    pub suffix: String,
}

impl ResourceArn {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        static RE: OnceLock<Regex> = OnceLock::new();
        check_len(member, s, 1, 1024)?;
        let re = RE.get_or_init(|| {
            Regex::new(
                r"^arn:([a-z0-9-]+):kinesisvideo:([a-z0-9-]+):([0-9]+):([a-z]+)/([a-zA-Z0-9_.-]+)/([0-9]+)$",
            )
            .expect("static regex")
        });
        let caps = re.captures(s).ok_or_else(|| {
            pattern_error(
                member,
                "arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+",
            )
        })?;
        let part = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_owned();
        Ok(Self {
            text: s.to_owned(),
            partition: part(1),
            region: part(2),
            account: part(3),
            resource_type: part(4),
            name: part(5),
            suffix: part(6),
        })
    }

    /// The ARN of a channel created at `created_millis` (docs/protocol.md §9.1).
    pub fn channel(ns: &Namespace, name: &ChannelName, created_millis: u64) -> Self {
        let text = format!(
            "arn:aws:kinesisvideo:{}:{}:channel/{}/{}",
            ns.region, ns.account, name, created_millis
        );
        Self {
            text,
            partition: "aws".into(),
            region: ns.region.to_string(),
            account: ns.account.to_string(),
            resource_type: "channel".into(),
            name: name.to_string(),
            suffix: created_millis.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ResourceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `MessageTtlSeconds`: 5..120, default 60.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageTtl(u32);

impl MessageTtl {
    pub const DEFAULT: Self = Self(60);

    pub fn parse(member: &str, v: i64) -> Result<Self, ServiceError> {
        if !(5..=120).contains(&v) {
            let range = Constraint::Range {
                min: 5,
                max: 120,
                got: v,
            };
            return Err(Violation::new(member, range).into());
        }
        Ok(Self(v as u32))
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

fn tag_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$").expect("static regex"))
}

/// `TagKey`: 1..128 of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagKey(String);
string_newtype!(TagKey);

impl TagKey {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 1, 128)?;
        if !tag_regex().is_match(s) {
            return Err(pattern_error(member, r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// `TagValue`: 0..256 of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagValue(String);
string_newtype!(TagValue);

impl TagValue {
    pub fn parse(member: &str, s: &str) -> Result<Self, ServiceError> {
        check_len(member, s, 0, 256)?;
        if !tag_regex().is_match(s) {
            return Err(pattern_error(member, r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_name_rules() {
        assert!(ChannelName::parse("n", "a-b_c.9").is_ok());
        assert!(ChannelName::parse("n", "").is_err());
        assert!(ChannelName::parse("n", &"a".repeat(256)).is_ok());
        assert!(ChannelName::parse("n", &"a".repeat(257)).is_err());
        assert!(ChannelName::parse("n", "a b").is_err());
        assert!(ChannelName::parse("n", "a/b").is_err());
        assert!(ChannelName::parse("n", "é").is_err());
    }

    #[test]
    fn version_rules_and_generation() {
        let v = Version::generate();
        assert_eq!(v.as_str().len(), 20);
        assert!(Version::parse("v", v.as_str()).is_ok());
        assert!(Version::parse("v", "abc-def").is_err());
        assert!(Version::parse("v", &"a".repeat(65)).is_err());
        assert_ne!(Version::generate(), Version::generate());
    }

    #[test]
    fn arn_round_trip() {
        let ns = Namespace::new(
            AccountId::parse("111122223333").unwrap(),
            Region::parse("us-east-1").unwrap(),
        );
        let name = ChannelName::parse("n", "demo-channel").unwrap();
        let arn = ResourceArn::channel(&ns, &name, 1_712_136_149_494);
        assert_eq!(
            arn.as_str(),
            "arn:aws:kinesisvideo:us-east-1:111122223333:channel/demo-channel/1712136149494"
        );
        let parsed = ResourceArn::parse("ChannelARN", arn.as_str()).unwrap();
        assert_eq!(parsed, arn);
        assert!(ResourceArn::parse("a", "arn:aws:s3:::bucket").is_err());
        assert!(ResourceArn::parse("a", "").is_err());
        assert!(ResourceArn::parse("a", "arn:aws:kinesisvideo:us-east-1:1:channel/a b/1").is_err());
    }

    #[test]
    fn ttl_range() {
        assert!(MessageTtl::parse("t", 4).is_err());
        assert!(MessageTtl::parse("t", 5).is_ok());
        assert!(MessageTtl::parse("t", 120).is_ok());
        assert!(MessageTtl::parse("t", 121).is_err());
        assert!(MessageTtl::parse("t", -1).is_err());
    }

    #[test]
    fn tag_rules() {
        assert!(TagKey::parse("k", "Env:prod/a=b+c-d@e_f.g h").is_ok());
        assert!(TagKey::parse("k", "ключ").is_ok());
        assert!(TagKey::parse("k", "").is_err());
        assert!(TagKey::parse("k", "a*b").is_err());
        assert!(TagKey::parse("k", &"k".repeat(129)).is_err());
        assert!(TagValue::parse("v", "").is_ok());
        assert!(TagValue::parse("v", &"v".repeat(257)).is_err());
        assert!(TagValue::parse("v", "a#b").is_err());
    }

    #[test]
    fn account_and_region() {
        assert!(AccountId::parse("000000000000").is_ok());
        assert!(AccountId::parse("12345").is_err());
        assert!(Region::parse("eu-west-1").is_ok());
        assert!(Region::parse("EU").is_err());
    }
}

//! Opaque NextToken for ListSignalingChannels: a keyset cursor (the last name returned),
//! base64-encoded so it matches the model's `[a-zA-Z0-9+/=]*` (docs/protocol.md §3).
//!
//! A keyset cursor, unlike an offset, stays correct while channels are created and deleted
//! between pages: every channel that exists throughout the listing is seen exactly once.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::ServiceError;
use crate::ids::ChannelName;

const PREFIX: &str = "kvs1:";

pub fn encode(last: &ChannelName) -> String {
    STANDARD.encode(format!("{PREFIX}{last}"))
}

pub fn decode(token: &str) -> Result<ChannelName, ServiceError> {
    let bad = || ServiceError::invalid("The NextToken is not valid.");
    if token.len() > 1024 {
        return Err(bad());
    }
    let raw = STANDARD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let name = text.strip_prefix(PREFIX).ok_or_else(bad)?;
    ChannelName::parse("NextToken", name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_pattern() {
        let n = ChannelName::parse("n", "abc-._9").unwrap();
        let t = encode(&n);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)));
        assert_eq!(decode(&t).unwrap(), n);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(decode("!!!").is_err());
        assert!(decode("aGVsbG8=").is_err());
        assert!(decode(&STANDARD.encode("kvs1:a b")).is_err());
    }
}

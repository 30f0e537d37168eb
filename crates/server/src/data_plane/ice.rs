//! Time-limited TURN credentials in the TURN REST API style (draft-uberti-behave-turn-rest),
//! which is what AWS hands out (docs/protocol.md §5.1) and what coturn's `use-auth-secret` checks:
//! username `<unix expiry>:<label>`, password `base64(HMAC-SHA1(secret, username))`.
//!
//! The shared secret can rotate (re-read from `--turn-secret-file`); when it does, connected
//! clients are told RECONNECT_ICE_SERVER so they fetch fresh credentials.

use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// `Debug` redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    pub uris: Vec<String>,
    pub username: String,
    pub password: String,
    pub ttl_seconds: u32,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("uris", &self.uris)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

pub struct IceCredentials {
    secret: RwLock<String>,
    ttl_seconds: u32,
}

impl IceCredentials {
    pub fn new(secret: String, ttl_seconds: u32) -> Self {
        Self {
            secret: RwLock::new(secret),
            ttl_seconds,
        }
    }

    /// Replaces the shared secret; true when it actually changed.
    pub fn rotate(&self, secret: String) -> bool {
        let mut s = self
            .secret
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *s == secret {
            return false;
        }
        *s = secret;
        true
    }

    pub fn ttl_seconds(&self) -> u32 {
        self.ttl_seconds
    }

    /// One credential pair valid for the TTL from `now_secs`, labelled with the channel (as AWS
    /// does: `base64("v1:" + ChannelARN)`) and the client when known.
    pub fn issue(
        &self,
        now_secs: u64,
        channel_arn: &str,
        client_id: Option<&str>,
    ) -> (String, String) {
        let expiry = now_secs + u64::from(self.ttl_seconds);
        let label = match client_id {
            Some(c) => format!("v1:{channel_arn}:{c}"),
            None => format!("v1:{channel_arn}"),
        };
        let username = format!("{expiry}:{}", STANDARD.encode(label));
        let password = self.password_for(&username);
        (username, password)
    }

    pub fn password_for(&self, username: &str) -> String {
        let secret = self
            .secret
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        password(&secret, username)
    }
}

/// `base64(HMAC-SHA1(secret, username))`, the TURN REST password.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_rest_credentials() {
        let c = IceCredentials::new("north".into(), 300);
        let (u, p) = c.issue(
            1_700_000_000,
            "arn:aws:kinesisvideo:us-east-1:1:channel/c/1",
            None,
        );
        let (expiry, label) = u.split_once(':').unwrap();
        assert_eq!(expiry, "1700000300");
        assert_eq!(
            STANDARD.decode(label).unwrap(),
            b"v1:arn:aws:kinesisvideo:us-east-1:1:channel/c/1"
        );
        // 20-byte SHA-1 MAC → 28 base64 characters.
        assert_eq!(p.len(), 28);
        assert_eq!(p, password("north", &u));
        assert!(c.rotate("south".into()));
        assert!(!c.rotate("south".into()));
        assert_ne!(c.password_for(&u), p);
    }

    #[test]
    fn known_hmac_sha1_vector() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        let p = password("Jefe", "what do ya want for nothing?");
        let raw = STANDARD.decode(p).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}

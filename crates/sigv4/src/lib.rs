//! AWS Signature Version 4 verification, in the two forms KVS clients use (docs/protocol.md §7):
//! the `Authorization` header of the HTTP APIs and the presigned query of the signaling
//! WebSocket. Signing is here too, for tests and tools. Pure: no I/O, time passed in.
//!
//! No published crate verifies SigV4 on the server side, so this is written by hand and tested
//! against the published vectors and an independent signer (`aws-sigv4`).

mod canonical;
mod error;
mod header;
mod presign;
mod scope;
mod sign;
mod timefmt;

use std::time::Duration;

pub use error::AuthError;
pub use header::verify_header;
pub use presign::verify_presigned;
pub use scope::parse_scope_unverified;
pub use sign::{presign_query, sign_headers};

/// `yyyymmddThhmmssZ` for a time, as `X-Amz-Date` wants it.
pub fn format_amz_date(t: std::time::SystemTime) -> String {
    timefmt::format(t)
}

/// The request as received, before any interpretation.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Raw path as on the request line (percent-encoded as sent), without the query.
    pub path: &'a str,
    /// Raw query string without `?`; may be empty.
    pub query: &'a str,
    /// Headers as received; names in any case; repeated names allowed.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Finds the secret for an access key id.
pub trait SecretLookup {
    fn secret_for(&self, access_key_id: &str) -> Option<String>;
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The signing name requests must be scoped to (`kinesisvideo`).
    pub service: String,
    /// Allowed difference between the request time and now (AWS: 5 minutes).
    pub max_skew: Duration,
    /// Largest `X-Amz-Expires` accepted on presigned URLs (the C SDK sends up to 604800).
    pub max_presign_expires: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            service: "kinesisvideo".into(),
            max_skew: Duration::from_secs(300),
            max_presign_expires: 604_800,
        }
    }
}

/// What a verified (or, in open mode, merely parsed) signature says about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    /// `yyyymmddThhmmssZ`.
    pub date: String,
    /// `X-Amz-Security-Token`: for the presigned form only from the (signed) query; for the
    /// header form from the header, signed or not (docs/protocol.md §7.1: the C SDK does not sign
    /// it). Whether it is the right one for the key is the caller's to check.
    pub security_token: Option<String>,
    /// The signed header names, lower-case, as the signature lists them.
    pub signed_headers: Vec<String>,
}

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

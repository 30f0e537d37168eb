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

pub use canonical::{decode_component, QueryError};
pub use error::AuthError;
pub use header::verify_header;
pub use presign::verify_presigned;
pub use scope::parse_scope_unverified;
pub use sign::{presign_query, sign_headers};

/// The one value of query parameter `name` (exact name), percent-decoded strictly as the
/// verifier decodes it: `Ok(None)` when absent, an error when a component is malformed or not
/// UTF-8, or when `name` appears more than once (for the handshake's `X-Amz-ChannelARN` and
/// `X-Amz-ClientId`, which a lenient reader would take the first of; docs/protocol.md §7.2).
pub fn query_param(raw: &str, name: &str) -> Result<Option<String>, QueryError> {
    let mut found = None;
    for (k, v) in canonical::query_pairs(raw)? {
        if k == name && found.replace(v).is_some() {
            return Err(QueryError::Repeated(name.to_owned()));
        }
    }
    Ok(found)
}

/// `yyyymmddThhmmssZ` for a time, as `X-Amz-Date` wants it.
pub fn format_amz_date(t: std::time::SystemTime) -> String {
    timefmt::format(t)
}

/// The request as received, before any interpretation. `Debug` redacts the signature, the
/// `Authorization` header and the session token (a presigned URL is a bearer credential until it
/// expires) and shows the body's length only.
#[derive(Clone, Copy)]
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

/// What a verified (or, in open mode, merely parsed) signature says about the caller. `Debug`
/// redacts the session token.
#[derive(Clone, PartialEq, Eq)]
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

const REDACTED: &str = "<redacted>";

/// Header and query parameter names whose values are credentials.
fn is_sensitive(name: &str) -> bool {
    ["authorization", "x-amz-security-token", "x-amz-signature"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// `raw` with the values of sensitive parameters replaced, the rest as sent.
fn redacted_query(raw: &str) -> String {
    raw.split('&')
        .map(|p| {
            let (k, _) = p.split_once('=').unwrap_or((p, ""));
            let name = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            if is_sensitive(&name) {
                format!("{k}={REDACTED}")
            } else {
                p.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl std::fmt::Debug for HttpRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if is_sensitive(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &redacted_query(self.query))
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("date", &self.date)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| REDACTED),
            )
            .field("signed_headers", &self.signed_headers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_credential() {
        let headers = vec![
            ("Host".to_string(), "h".to_string()),
            (
                "Authorization".to_string(),
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request, SignedHeaders=host, Signature=sig-in-header".to_string(),
            ),
            ("X-Amz-Security-Token".to_string(), "token-in-header".to_string()),
        ];
        let req = HttpRequest {
            method: "GET",
            path: "/",
            query: "X-Amz-ChannelARN=arn&X-Amz-Signature=sig-in-query&x-amz-security-token=token-in-query&X%2DAmz%2DSignature=sig-encoded",
            headers: &headers,
            body: b"body-secret",
        };
        let v = Verified {
            access_key_id: "AKID".into(),
            region: "r".into(),
            service: "s".into(),
            date: "20150830T123600Z".into(),
            security_token: Some("token-verified".into()),
            signed_headers: vec!["host".into()],
        };
        for shown in [format!("{req:?}"), format!("{v:?}")] {
            for secret in ["sig-", "token-", "body-secret"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        assert!(format!("{req:?}").contains("X-Amz-ChannelARN=arn"));
        assert!(format!("{v:?}").contains("AKID"));
    }

    #[test]
    fn query_param_is_strict() {
        let q = "X-Amz-ChannelARN=arn%3Aa&X-Amz-ClientId=v1&flag";
        assert_eq!(query_param(q, "X-Amz-ChannelARN"), Ok(Some("arn:a".into())));
        assert_eq!(query_param(q, "flag"), Ok(Some(String::new())));
        assert_eq!(query_param(q, "X-Amz-Missing"), Ok(None));
        assert_eq!(
            query_param("X-Amz-ClientId=a&X-Amz-ClientId=a", "X-Amz-ClientId"),
            Err(QueryError::Repeated("X-Amz-ClientId".into()))
        );
        assert_eq!(
            query_param("X-Amz-ClientId=%FF", "X-Amz-ClientId"),
            Err(QueryError::NotUtf8("%FF".into()))
        );
        // Any malformed component makes the whole query unreadable, not just that pair.
        assert!(query_param("X-Amz-ClientId=v&x=%G1", "X-Amz-ClientId").is_err());
    }
}

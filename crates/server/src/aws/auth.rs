//! Who is calling: SigV4 verification with `--credentials`, or open mode without.
//!
//! Verified mode checks every request's signature (docs/protocol.md §7.1) and maps the access key to
//! its account; the region comes from the credential scope. Open mode accepts any signature (or
//! none) and acts as `--account-id`, still honouring the region of the scope when one is sent,
//! so a client configured for eu-west-1 sees eu-west-1 ARNs.

use std::time::{Duration, SystemTime};

use axum::http::request::Parts;
use kvs_core::ids::{AccountId, Namespace, Region};
use kvs_sigv4::{HttpRequest, SecretLookup, VerifyOptions};

use super::error::ApiError;
use crate::credentials::CredentialMap;

/// The signing name every KVS API uses (docs/protocol.md §1).
pub const SERVICE: &str = "kinesisvideo";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub ns: Namespace,
    pub access_key_id: Option<String>,
}

pub struct Authenticator {
    credentials: Option<CredentialMap>,
    default_account: AccountId,
    default_region: Region,
    opts: VerifyOptions,
}

struct Secrets<'a>(&'a CredentialMap);

impl SecretLookup for Secrets<'_> {
    fn secret_for(&self, access_key_id: &str) -> Option<String> {
        self.0
            .get(access_key_id)
            .map(|c| c.secret_access_key.clone())
    }
}

/// The parts of a request that SigV4 covers, owned so they can cross into blocking tasks.
pub struct SignedParts {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl SignedParts {
    pub fn from_parts(parts: &Parts) -> Self {
        let mut headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = match v.to_str() {
                    Ok(text) => text.to_owned(),
                    Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                };
                (k.as_str().to_owned(), value)
            })
            .collect();
        // HTTP/2 carries the host as the `:authority` pseudo-header, which a client that signed
        // `host` expects to be verified as the Host header (RFC 9113 §8.3.1).
        if !parts.headers.contains_key(axum::http::header::HOST) {
            if let Some(authority) = parts.uri.authority() {
                headers.push(("host".to_owned(), authority.as_str().to_owned()));
            }
        }
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers,
        }
    }

    fn request<'a>(&'a self, body: &'a [u8]) -> HttpRequest<'a> {
        HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body,
        }
    }
}

impl Authenticator {
    pub fn new(
        credentials: Option<CredentialMap>,
        default_account: AccountId,
        default_region: Region,
    ) -> Self {
        Self {
            credentials,
            default_account,
            default_region,
            opts: VerifyOptions {
                service: SERVICE.to_owned(),
                max_skew: Duration::from_secs(300),
                max_presign_expires: 604_800,
            },
        }
    }

    pub fn is_open(&self) -> bool {
        self.credentials.is_none()
    }

    /// Authenticates a header-signed HTTP request (control plane and HTTPS data plane).
    pub fn authenticate_header(
        &self,
        parts: &SignedParts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, ApiError> {
        let req = parts.request(body);
        match &self.credentials {
            None => Ok(self.open_caller(kvs_sigv4::parse_scope_unverified(&req))),
            Some(creds) => {
                let v = kvs_sigv4::verify_header(&req, &Secrets(creds), now, &self.opts)?;
                self.verified_caller(creds, v)
            }
        }
    }

    /// Authenticates a presigned request (the signaling WebSocket connect, docs/protocol.md §7.2).
    pub fn authenticate_presigned(
        &self,
        parts: &SignedParts,
        now: SystemTime,
    ) -> Result<Caller, ApiError> {
        let req = parts.request(&[]);
        match &self.credentials {
            None => Ok(self.open_caller(kvs_sigv4::parse_scope_unverified(&req))),
            Some(creds) => {
                let v = kvs_sigv4::verify_presigned(&req, &Secrets(creds), now, &self.opts)?;
                self.verified_caller(creds, v)
            }
        }
    }

    fn open_caller(&self, scope: Option<kvs_sigv4::Verified>) -> Caller {
        let region = scope
            .as_ref()
            .and_then(|s| Region::parse(&s.region).ok())
            .unwrap_or_else(|| self.default_region.clone());
        Caller {
            ns: Namespace::new(self.default_account.clone(), region),
            access_key_id: scope.map(|s| s.access_key_id),
        }
    }

    fn verified_caller(
        &self,
        creds: &CredentialMap,
        v: kvs_sigv4::Verified,
    ) -> Result<Caller, ApiError> {
        let cred = creds.get(&v.access_key_id).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        })?;
        let region = Region::parse(&v.region).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                format!(
                    "Credential should be scoped to a valid region, not '{}'.",
                    v.region
                ),
            )
        })?;
        Ok(Caller {
            ns: Namespace::new(cred.account.clone(), region),
            access_key_id: Some(v.access_key_id),
        })
    }
}

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
    /// Names (lower-case) of headers whose bytes are not UTF-8. They are in `headers` decoded
    /// lossily, which is fine while unsigned; signed, two different values would verify under
    /// one signature, so such a request is refused (docs/protocol.md §7.1).
    pub undecodable: Vec<String>,
}

impl SignedParts {
    pub fn from_parts(parts: &Parts) -> Self {
        let mut undecodable = Vec::new();
        let mut headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = match std::str::from_utf8(v.as_bytes()) {
                    Ok(text) => text.to_owned(),
                    Err(_) => {
                        undecodable.push(k.as_str().to_owned());
                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                    }
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
            undecodable,
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

    /// The account an access key id belongs to, without verifying anything (to show a refused
    /// call to the account whose key it claims). Open mode: the one account.
    pub fn account_of(&self, access_key_id: Option<&str>) -> Option<AccountId> {
        match &self.credentials {
            None => Some(self.default_account.clone()),
            Some(creds) => access_key_id
                .and_then(|k| creds.get(k))
                .map(|c| c.account.clone()),
        }
    }

    /// The open mode's namespace: its one account, in `region` or the default region.
    pub fn open_namespace(&self, region: Option<Region>) -> Namespace {
        Namespace::new(
            self.default_account.clone(),
            region.unwrap_or_else(|| self.default_region.clone()),
        )
    }

    pub fn default_region(&self) -> &Region {
        &self.default_region
    }

    /// The secret (and session token) of `access_key_id`, to presign a URL for the console's
    /// own session. `None` in open mode or for an unknown key.
    pub fn signing_key(&self, access_key_id: &str) -> Option<(String, Option<String>)> {
        self.credentials
            .as_ref()?
            .get(access_key_id)
            .map(|c| (c.secret_access_key.clone(), c.session_token.clone()))
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
                self.verified_caller(creds, parts, v)
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
                self.verified_caller(creds, parts, v)
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
        parts: &SignedParts,
        v: kvs_sigv4::Verified,
    ) -> Result<Caller, ApiError> {
        let invalid_token = || {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        };
        let cred = creds.get(&v.access_key_id).ok_or_else(invalid_token)?;
        if let Some(name) = parts
            .undecodable
            .iter()
            .find(|n| v.signed_headers.iter().any(|s| s.eq_ignore_ascii_case(n)))
        {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                format!("The value of the signed header '{name}' is not valid UTF-8."),
            ));
        }
        // Temporary credentials: the key's own token and no other; a key without one takes none
        // (AWS refuses a long-term key with a token as an invalid security token).
        let token_ok = match (&cred.session_token, &v.security_token) {
            (None, None) => true,
            (Some(want), Some(got)) => same_secret(want, got),
            _ => false,
        };
        if !token_ok {
            return Err(invalid_token());
        }
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

/// Equality whose time does not depend on where two equal-length secrets differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CREDS: &str = r#"
        [[credentials]]
        access_key_id = "AKIDLONG"
        secret_access_key = "long-secret"
        account_id = "111111111111"
        [[credentials]]
        access_key_id = "ASIATEMP"
        secret_access_key = "temp-secret"
        account_id = "222222222222"
        session_token = "the-token"
    "#;

    fn authenticator() -> Authenticator {
        Authenticator::new(
            Some(crate::credentials::parse(CREDS).unwrap()),
            AccountId::parse("000000000000").unwrap(),
            Region::parse("us-east-1").unwrap(),
        )
    }

    /// A header-signed POST as a client would send it: `extra` headers (raw bytes) are added,
    /// and signed when their flag says so, the signer seeing their text as it decodes.
    fn header_request(ak: &str, secret: &str, extra: &[(&str, &[u8], bool)]) -> SignedParts {
        let date = kvs_sigv4::format_amz_date(SystemTime::now());
        let mut text: Vec<(String, String)> = vec![
            ("host".into(), "kvs.example".into()),
            ("x-amz-date".into(), date.clone()),
        ];
        let mut names = vec!["host", "x-amz-date"];
        for (name, value, signed) in extra {
            text.push(((*name).into(), String::from_utf8_lossy(value).into_owned()));
            if *signed {
                names.push(name);
            }
        }
        let req = HttpRequest {
            method: "POST",
            path: "/listSignalingChannels",
            query: "",
            headers: &text,
            body: b"{}",
        };
        let authorization =
            kvs_sigv4::sign_headers(&req, ak, secret, "us-east-1", SERVICE, &date, &names);
        let mut b = axum::http::Request::post("http://kvs.example/listSignalingChannels")
            .header("host", "kvs.example")
            .header("x-amz-date", &date)
            .header("authorization", authorization);
        for (name, value, _) in extra {
            b = b.header(*name, axum::http::HeaderValue::from_bytes(value).unwrap());
        }
        SignedParts::from_parts(&b.body(()).unwrap().into_parts().0)
    }

    fn presigned_request(
        ak: &str,
        secret: &str,
        token: Option<&str>,
        header: Option<&str>,
    ) -> SignedParts {
        let mut params = vec![(
            "X-Amz-ChannelARN".to_string(),
            "arn:aws:kinesisvideo:us-east-1:222222222222:channel/c/1".to_string(),
        )];
        if let Some(t) = token {
            params.push(("X-Amz-Security-Token".into(), t.into()));
        }
        let date = kvs_sigv4::format_amz_date(SystemTime::now());
        let q = kvs_sigv4::presign_query(
            "GET",
            "kvs.example",
            "/",
            &params,
            ak,
            secret,
            "us-east-1",
            SERVICE,
            &date,
            299,
        );
        let mut b = axum::http::Request::get(format!("http://kvs.example/?{q}"))
            .header("host", "kvs.example");
        if let Some(t) = header {
            b = b.header("x-amz-security-token", t);
        }
        SignedParts::from_parts(&b.body(()).unwrap().into_parts().0)
    }

    fn code(r: Result<Caller, ApiError>) -> String {
        match r {
            Ok(c) => format!("ok {}", c.ns.account),
            Err(e) => e.code.to_string(),
        }
    }

    #[test]
    fn session_tokens_are_the_keys_own_or_none() {
        let a = authenticator();
        let now = SystemTime::now();
        let h = |ak: &str, secret: &str, extra: &[(&str, &[u8], bool)]| {
            code(a.authenticate_header(&header_request(ak, secret, extra), b"{}", now))
        };
        let token = "x-amz-security-token";
        for (case, got, want) in [
            (
                "long-term key, no token",
                h("AKIDLONG", "long-secret", &[]),
                "ok 111111111111",
            ),
            (
                "long-term key with a token",
                h("AKIDLONG", "long-secret", &[(token, b"the-token", true)]),
                "UnrecognizedClientException",
            ),
            (
                "temporary key, its token signed",
                h("ASIATEMP", "temp-secret", &[(token, b"the-token", true)]),
                "ok 222222222222",
            ),
            (
                "temporary key, its token unsigned (the C SDK's way)",
                h("ASIATEMP", "temp-secret", &[(token, b"the-token", false)]),
                "ok 222222222222",
            ),
            (
                "temporary key, another token",
                h("ASIATEMP", "temp-secret", &[(token, b"the-tokeN", true)]),
                "UnrecognizedClientException",
            ),
            (
                "temporary key, a longer token",
                h("ASIATEMP", "temp-secret", &[(token, b"the-token2", true)]),
                "UnrecognizedClientException",
            ),
            (
                "temporary key, no token",
                h("ASIATEMP", "temp-secret", &[]),
                "UnrecognizedClientException",
            ),
        ] {
            assert_eq!(got, want, "{case}");
        }
        let p = |ak: &str, secret: &str, token: Option<&str>, header: Option<&str>| {
            code(a.authenticate_presigned(&presigned_request(ak, secret, token, header), now))
        };
        for (case, got, want) in [
            (
                "presigned, long-term key",
                p("AKIDLONG", "long-secret", None, None),
                "ok 111111111111",
            ),
            (
                "presigned, long-term key with a token",
                p("AKIDLONG", "long-secret", Some("the-token"), None),
                "UnrecognizedClientException",
            ),
            (
                "presigned, temporary key, token in the signed query",
                p("ASIATEMP", "temp-secret", Some("the-token"), None),
                "ok 222222222222",
            ),
            (
                "presigned, temporary key, token only in a header",
                p("ASIATEMP", "temp-secret", None, Some("the-token")),
                "UnrecognizedClientException",
            ),
            (
                "presigned, temporary key, wrong token",
                p("ASIATEMP", "temp-secret", Some("other"), None),
                "UnrecognizedClientException",
            ),
        ] {
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn signed_headers_must_be_utf8() {
        let a = authenticator();
        let now = SystemTime::now();
        let h = |extra: &[(&str, &[u8], bool)]| {
            code(a.authenticate_header(
                &header_request("AKIDLONG", "long-secret", extra),
                b"{}",
                now,
            ))
        };
        // 0xFF and 0xFE both decode lossily to U+FFFD: signed, one would verify as the other.
        assert_eq!(
            h(&[("x-custom", b"a\xffb", true)]),
            "InvalidSignatureException"
        );
        assert_eq!(
            h(&[("x-custom", b"a\xfeb", true)]),
            "InvalidSignatureException"
        );
        // Unsigned, it is not the signature's business.
        assert_eq!(h(&[("x-custom", b"a\xffb", false)]), "ok 111111111111");
        // UTF-8 beyond ASCII is fine, signed or not.
        assert_eq!(
            h(&[("x-custom", "caf\u{e9}".as_bytes(), true)]),
            "ok 111111111111"
        );
    }
}

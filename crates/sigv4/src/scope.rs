//! Reading the signature's parameters: the `Authorization` header and the presigned query.

use crate::canonical::{header_value, query_pairs};
use crate::error::AuthError;
use crate::{HttpRequest, Verified, ALGORITHM};

/// `AKID/yyyymmdd/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub date8: String,
    pub region: String,
    pub service: String,
}

impl Credential {
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [ak, date, region, service, "aws4_request"]
                if !ak.is_empty() && date.len() == 8 && !region.is_empty() && !service.is_empty() =>
            {
                Ok(Self {
                    access_key_id: (*ak).to_owned(),
                    date8: (*date).to_owned(),
                    region: (*region).to_owned(),
                    service: (*service).to_owned(),
                })
            }
            _ => Err(AuthError::Incomplete(format!(
                "Credential should be of the form 'AccessKeyId/yyyymmdd/region/service/aws4_request', got '{s}'."
            ))),
        }
    }
}

/// The parameters of a signature, from either form. `Debug` redacts the signature.
#[derive(Clone)]
pub struct SignatureParams {
    pub credential: Credential,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl std::fmt::Debug for SignatureParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureParams")
            .field("credential", &self.credential)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .finish()
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(value: &str) -> Result<SignatureParams, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported authorization algorithm '{algorithm}'; expected {ALGORITHM}."
        )));
    }
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        // Twice, one of them would win silently: which one is the client's is anybody's guess.
        if slot.replace(v.trim()).is_some() {
            return Err(AuthError::Incomplete(format!(
                "Authorization header has the '{}' parameter more than once.",
                k.trim()
            )));
        }
    }
    let missing = |what: &str| {
        AuthError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let credential = Credential::parse(credential.ok_or_else(|| missing("Credential"))?)?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    Ok(SignatureParams {
        credential,
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature: signature.to_owned(),
    })
}

/// Open mode: what the request claims, without checking it.
pub fn parse_scope_unverified(req: &HttpRequest) -> Option<Verified> {
    if let Some(auth) = header_value(req.headers, "authorization") {
        let p = parse_authorization(&auth).ok()?;
        return Some(Verified {
            access_key_id: p.credential.access_key_id,
            region: p.credential.region,
            service: p.credential.service,
            date: header_value(req.headers, "x-amz-date").unwrap_or_default(),
            security_token: header_value(req.headers, "x-amz-security-token"),
            signed_headers: p.signed_headers,
        });
    }
    let pairs = query_pairs(req.query).ok()?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let c = Credential::parse(&get("X-Amz-Credential")?).ok()?;
    Some(Verified {
        access_key_id: c.access_key_id,
        region: c.region,
        service: c.service,
        date: get("X-Amz-Date").unwrap_or_default(),
        security_token: get("X-Amz-Security-Token"),
        signed_headers: get("X-Amz-SignedHeaders")
            .map(|h| h.split(';').map(str::to_ascii_lowercase).collect())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header_parts() {
        let p = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host;X-Amz-Date, Signature=abc",
        )
        .unwrap();
        assert_eq!(p.credential.access_key_id, "AKID");
        assert_eq!(p.credential.region, "us-east-1");
        assert_eq!(p.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(p.signature, "abc");
        for bad in [
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, Signature=x",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/service, SignedHeaders=host, Signature=x",
            // A field twice: which one counts would be a guess.
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=x, Signature=y",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, Credential=B/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host, SignedHeaders=host;x-amz-date, Signature=x",
        ] {
            assert_eq!(
                parse_authorization(bad).unwrap_err().code(),
                "IncompleteSignatureException",
                "{bad}"
            );
        }
    }
}

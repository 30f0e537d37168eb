//! Verifying the presigned-query form of the signaling WebSocket connect (docs/protocol.md §7.2):
//! signed header `host`, empty payload, `X-Amz-Expires` up to a week (the C SDK sends the
//! remaining lifetime of its credentials), the security token inside the signed query.

use std::time::{Duration, SystemTime};

use crate::canonical;
use crate::error::AuthError;
use crate::header::{check_scope, header_error};
use crate::scope::Credential;
use crate::sign::{same, signature};
use crate::{timefmt, HttpRequest, SecretLookup, Verified, VerifyOptions, ALGORITHM};

pub fn verify_presigned(
    req: &HttpRequest,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    opts: &VerifyOptions,
) -> Result<Verified, AuthError> {
    let pairs = canonical::query_pairs(req.query).map_err(|e| AuthError::Invalid(e.to_string()))?;
    refuse_repeated_amz_parameters(&pairs)?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sig = get("X-Amz-Signature");
    let algorithm = get("X-Amz-Algorithm");
    if sig.is_none() && algorithm.is_none() && get("X-Amz-Credential").is_none() {
        return Err(AuthError::Missing);
    }
    let need = |name: &str| {
        get(name).ok_or_else(|| {
            AuthError::Incomplete(format!("The presigned URL lacks the {name} parameter."))
        })
    };
    let algorithm = need("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported X-Amz-Algorithm '{algorithm}'; expected {ALGORITHM}."
        )));
    }
    let credential = Credential::parse(need("X-Amz-Credential")?)?;
    let signed_headers: Vec<String> = need("X-Amz-SignedHeaders")?
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    let signature_given = need("X-Amz-Signature")?;
    check_scope(&credential, &signed_headers, opts)?;
    let amz_date = need("X-Amz-Date")?;
    let t = timefmt::parse(amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z', got '{amz_date}'."
        ))
    })?;
    if !amz_date.starts_with(&credential.date8) {
        return Err(AuthError::Invalid(
            "Date in Credential scope does not match X-Amz-Date.".into(),
        ));
    }
    let expires: u64 = need("X-Amz-Expires")?
        .parse()
        .map_err(|_| AuthError::Incomplete("X-Amz-Expires must be a number of seconds.".into()))?;
    if expires == 0 || expires > opts.max_presign_expires {
        return Err(AuthError::Incomplete(format!(
            "X-Amz-Expires must be between 1 and {} seconds.",
            opts.max_presign_expires
        )));
    }
    let now_s = timefmt::format(now);
    let end = t + Duration::from_secs(expires);
    if now > end {
        return Err(AuthError::Expired(format!(
            "{amz_date} + {expires} s ({}) is now earlier than {now_s}.",
            timefmt::format(end)
        )));
    }
    if t > now + opts.max_skew {
        return Err(AuthError::NotYetCurrent(format!(
            "{amz_date} is still later than {} ({now_s} + {} min.)",
            timefmt::format(now + opts.max_skew),
            opts.max_skew.as_secs() / 60
        )));
    }

    let secret = secrets
        .secret_for(&credential.access_key_id)
        .ok_or(AuthError::UnknownAccessKey)?;
    let signed: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    let canonical_headers = canonical::headers(req.headers, &signed)
        .map_err(|e| header_error(e, "X-Amz-SignedHeaders"))?;
    let query = canonical::query(&pairs, Some("X-Amz-Signature"));
    let uri = canonical::uri(req.path);
    // Clients sign the empty payload's hash (a WebSocket connect has no body); accept
    // UNSIGNED-PAYLOAD and the hash of an actual body as well.
    let ok = [
        canonical::hex_sha256(b""),
        "UNSIGNED-PAYLOAD".to_string(),
        canonical::hex_sha256(req.body),
    ]
    .iter()
    .any(|payload| {
        let creq = canonical::request(
            req.method,
            &uri,
            &query,
            &canonical_headers,
            &signed_headers.join(";"),
            payload,
        );
        let expected = signature(
            &secret,
            amz_date,
            &credential.region,
            &credential.service,
            &creq,
        );
        same(&expected, signature_given)
    });
    if !ok {
        return Err(AuthError::SignatureMismatch);
    }
    Ok(Verified {
        access_key_id: credential.access_key_id,
        region: credential.region,
        service: credential.service,
        date: amz_date.to_owned(),
        // Only the signed query's: a token in a header would be outside the signature.
        security_token: get("X-Amz-Security-Token").map(str::to_owned),
        signed_headers,
    })
}

/// An `X-Amz-*` parameter given twice is refused: the signature covers both, but the verifier
/// and the handshake read one of them (`X-Amz-Signature`, `X-Amz-Date`, `X-Amz-ChannelARN`,
/// `X-Amz-ClientId` ...), and which one would be a convention of this server, not of the
/// signer. No KVS SDK repeats them.
fn refuse_repeated_amz_parameters(pairs: &[(String, String)]) -> Result<(), AuthError> {
    let mut seen: Vec<&str> = Vec::new();
    for (k, _) in pairs {
        if k.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-")) {
            if seen.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                return Err(AuthError::Invalid(format!(
                    "The presigned URL has the {k} parameter more than once."
                )));
            }
            seen.push(k);
        }
    }
    Ok(())
}

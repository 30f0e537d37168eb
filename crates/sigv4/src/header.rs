//! Verifying the `Authorization` header form (docs/protocol.md §7.1).
//!
//! Order of checks: structure, scope (service, date), time (skew), then the key and the
//! signature; so a request from a skewed clock learns about its clock whatever its key.

use std::time::SystemTime;

use crate::canonical::{self, header_value};
use crate::error::AuthError;
use crate::scope::parse_authorization;
use crate::sign::{same, signature};
use crate::{timefmt, HttpRequest, SecretLookup, Verified, VerifyOptions};

pub fn verify_header(
    req: &HttpRequest,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    opts: &VerifyOptions,
) -> Result<Verified, AuthError> {
    let mut auths = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let auth = auths.next().ok_or(AuthError::Missing)?;
    if auths.next().is_some() {
        // Joined with `,` they would parse as one header with the fields of both.
        return Err(AuthError::Incomplete(
            "The request has more than one Authorization header.".into(),
        ));
    }
    let p = parse_authorization(auth.1.trim())?;
    check_scope(&p.credential, &p.signed_headers, opts)?;
    let (date_header, amz_date) = request_date(req, &p.signed_headers)?;
    let t = timefmt::parse(&amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "{date_header} must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z', got '{amz_date}'."
        ))
    })?;
    if !amz_date.starts_with(&p.credential.date8) {
        return Err(AuthError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{amz_date}'.",
            p.credential.date8,
            &amz_date[..8]
        )));
    }
    check_skew(t, &amz_date, now, opts)?;

    let secret = secrets
        .secret_for(&p.credential.access_key_id)
        .ok_or(AuthError::UnknownAccessKey)?;
    let signed: Vec<&str> = p.signed_headers.iter().map(String::as_str).collect();
    let canonical_headers =
        canonical::headers(req.headers, &signed).map_err(|e| header_error(e, "SignedHeaders"))?;
    let query = canonical::query_pairs(req.query).map_err(|e| AuthError::Invalid(e.to_string()))?;
    // The signature covers the body only through its hash: a declared
    // `x-amz-content-sha256` must be the body's real hash (or UNSIGNED-PAYLOAD with no body),
    // or a captured request could be replayed with another body.
    let body_hash = canonical::hex_sha256(req.body);
    let payload = match header_value(req.headers, "x-amz-content-sha256") {
        None => body_hash,
        Some(h) if h.eq_ignore_ascii_case(&body_hash) => h,
        Some(h) if h == "UNSIGNED-PAYLOAD" && req.body.is_empty() => h,
        Some(_) => {
            return Err(AuthError::Invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ))
        }
    };
    let creq = canonical::request(
        req.method,
        &canonical::uri(req.path),
        &canonical::query(&query, None),
        &canonical_headers,
        &p.signed_headers.join(";"),
        &payload,
    );
    let expected = signature(
        &secret,
        &amz_date,
        &p.credential.region,
        &p.credential.service,
        &creq,
    );
    if !same(&expected, &p.signature) {
        return Err(AuthError::SignatureMismatch);
    }
    Ok(Verified {
        access_key_id: p.credential.access_key_id,
        region: p.credential.region,
        service: p.credential.service,
        date: amz_date,
        security_token: header_value(req.headers, "x-amz-security-token"),
        signed_headers: p.signed_headers,
    })
}

/// Which header the request time comes from, and its value. `X-Amz-Date` when present; else the
/// `Date` header, which AWS also accepts ("Elements of an AWS API request signature": the time
/// stamp comes from `X-Amz-Date` or `Date`, in the ISO 8601 basic format). Either way the header
/// must be signed ("Create a canonical request for Signature Version 4": a `date` or
/// `x-amz-date` header that is included must be among the signed headers), and a `Date` in any
/// other format (RFC 7231's IMF-fixdate, say) is refused by the caller rather than interpreted.
fn request_date(
    req: &HttpRequest,
    signed_headers: &[String],
) -> Result<(&'static str, String), AuthError> {
    let (name, label, value) = match header_value(req.headers, "x-amz-date") {
        Some(v) => ("x-amz-date", "X-Amz-Date", v),
        None => match header_value(req.headers, "date") {
            Some(v) => ("date", "Date", v),
            None => {
                return Err(AuthError::Incomplete(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header."
                        .into(),
                ))
            }
        },
    };
    if !signed_headers.iter().any(|h| h == name) {
        return Err(AuthError::Invalid(format!(
            "'{label}' must be a 'SignedHeader' in the AWS Authorization."
        )));
    }
    Ok((label, value))
}

pub(crate) fn header_error(e: canonical::HeaderError, list: &str) -> AuthError {
    match e {
        canonical::HeaderError::Missing(name) => AuthError::Invalid(format!(
            "The header '{name}' is listed in {list} but absent from the request."
        )),
        canonical::HeaderError::Unsignable(name) => AuthError::Invalid(format!(
            "The value of the signed header '{name}' has control characters."
        )),
    }
}

pub(crate) fn check_scope(
    credential: &crate::scope::Credential,
    signed_headers: &[String],
    opts: &VerifyOptions,
) -> Result<(), AuthError> {
    if credential.service != opts.service {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped to correct service: '{}'.",
            opts.service
        )));
    }
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Invalid(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    Ok(())
}

/// ±`max_skew` around now (AWS: 5 minutes), with AWS's messages.
fn check_skew(
    t: SystemTime,
    amz_date: &str,
    now: SystemTime,
    opts: &VerifyOptions,
) -> Result<(), AuthError> {
    let mins = opts.max_skew.as_secs() / 60;
    let now_s = timefmt::format(now);
    if let Some(earliest) = now.checked_sub(opts.max_skew) {
        if t < earliest {
            return Err(AuthError::Expired(format!(
                "{amz_date} is now earlier than {} ({now_s} - {mins} min.)",
                timefmt::format(earliest)
            )));
        }
    }
    let latest = now + opts.max_skew;
    if t > latest {
        return Err(AuthError::NotYetCurrent(format!(
            "{amz_date} is still later than {} ({now_s} + {mins} min.)",
            timefmt::format(latest)
        )));
    }
    Ok(())
}

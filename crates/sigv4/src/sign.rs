//! The signature itself: key derivation, string to sign, and the two signing helpers.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::canonical;
use crate::{HttpRequest, ALGORITHM};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn scope(date8: &str, region: &str, service: &str) -> String {
    format!("{date8}/{region}/{service}/aws4_request")
}

/// Hex signature of `canonical_request`.
pub(crate) fn signature(
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let date8 = amz_date.get(..8).unwrap_or(amz_date);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope(date8, region, service),
        canonical::hex_sha256(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date8.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    crate::canonical::to_hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Constant-time equality of two signatures.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Signs `req` and returns the `Authorization` header value. `signed_header_names` must be
/// lower-case and present in `req.headers` (include `host` and `x-amz-date`).
pub fn sign_headers(
    req: &HttpRequest,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    signed_header_names: &[&str],
) -> String {
    let mut names: Vec<&str> = signed_header_names.to_vec();
    names.sort_unstable();
    let signed = names.join(";");
    let payload = canonical::header_value(req.headers, "x-amz-content-sha256")
        .unwrap_or_else(|| canonical::hex_sha256(req.body));
    let creq = canonical::request(
        req.method,
        &canonical::uri(req.path),
        &canonical::query(&canonical::query_pairs(req.query).unwrap_or_default(), None),
        &canonical::headers(req.headers, &names).unwrap_or_default(),
        &signed,
        &payload,
    );
    let sig = signature(secret, amz_date, region, service, &creq);
    let date8 = amz_date.get(..8).unwrap_or(amz_date);
    format!(
        "{ALGORITHM} Credential={access_key_id}/{}, SignedHeaders={signed}, Signature={sig}",
        scope(date8, region, service)
    )
}

/// A presigned query string (signed header `host` only, empty payload), as the KVS JS SDK's
/// `SigV4RequestSigner` builds it (docs/protocol.md §7.2). `params` are extra parameters such as
/// `X-Amz-ChannelARN`, `X-Amz-ClientId` and `X-Amz-Security-Token`, unencoded.
#[allow(clippy::too_many_arguments)]
pub fn presign_query(
    method: &str,
    host: &str,
    path: &str,
    params: &[(String, String)],
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    expires: u64,
) -> String {
    let date8 = amz_date.get(..8).unwrap_or(amz_date);
    let mut pairs: Vec<(String, String)> = params.to_vec();
    pairs.extend([
        ("X-Amz-Algorithm".to_string(), ALGORITHM.to_string()),
        (
            "X-Amz-Credential".to_string(),
            format!("{access_key_id}/{}", scope(date8, region, service)),
        ),
        ("X-Amz-Date".to_string(), amz_date.to_string()),
        ("X-Amz-Expires".to_string(), expires.to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ]);
    let query = canonical::query(&pairs, None);
    let creq = canonical::request(
        method,
        &canonical::uri(path),
        &query,
        &format!("host:{host}\n"),
        "host",
        &canonical::hex_sha256(b""),
    );
    let sig = signature(secret, amz_date, region, service, &creq);
    pairs.push(("X-Amz-Signature".to_string(), sig));
    canonical::query(&pairs, None)
}

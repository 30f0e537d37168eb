//! The canonical request (docs/protocol.md §7.1, §7.2): URI, query, headers and payload hash, as
//! botocore, aws-sdk-rust, the KVS JS SDK and the KVS C SDK build them.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but RFC 3986 unreserved characters is encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`QUERY`], keeping `/` (path separators).
const PATH: &AsciiSet = &QUERY.remove(b'/');

pub fn hex_sha256(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// The canonical URI: the path as sent, encoded once more (non-S3 services double-encode, so an
/// `%2F` on the wire is `%252F` here); an empty path is `/`.
pub fn uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    utf8_percent_encode(raw_path, PATH).to_string()
}

pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decoded query parameters in order of appearance (`+` is literal, not a space).
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The canonical query string from decoded pairs, skipping `exclude`.
pub fn query(pairs: &[(String, String)], exclude: Option<&str>) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| exclude != Some(k.as_str()))
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whitespace runs collapsed to one space, ends trimmed. Values that need nothing (nearly all:
/// dates, hashes, host names) are copied without splitting (it showed in profiles).
fn normalise_value(v: &str) -> String {
    let bytes = v.as_bytes();
    let clean = bytes.first().is_none_or(|b| !b.is_ascii_whitespace())
        && bytes.last().is_none_or(|b| !b.is_ascii_whitespace())
        && !bytes
            .windows(2)
            .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        && !bytes.iter().any(|b| b.is_ascii_whitespace() && *b != b' ')
        && v.is_ascii();
    if clean {
        return v.to_owned();
    }
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// All values of a header (case-insensitive name), normalised and joined with `,`.
pub fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut found = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| normalise_value(v));
    let mut out = found.next()?;
    for more in found {
        out.push(',');
        out.push_str(&more);
    }
    Some(out)
}

/// Lower-case hex of `bytes`, written straight into the string.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The canonical headers block for `signed` (lower-case names, in the given order). `None` names
/// the first signed header the request lacks.
pub fn headers(headers: &[(String, String)], signed: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    for name in signed {
        let v = header_value(headers, name).ok_or_else(|| (*name).to_owned())?;
        out.push_str(name);
        out.push(':');
        out.push_str(&v);
        out.push('\n');
    }
    Ok(out)
}

pub fn request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_is_double_encoded() {
        assert_eq!(uri(""), "/");
        assert_eq!(
            uri("/describeSignalingChannel"),
            "/describeSignalingChannel"
        );
        assert_eq!(uri("/a b/%2F"), "/a%20b/%252F");
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        let pairs = query_pairs("b=2&a=x%3Ay&a=1&c&X-Amz-Signature=s&plus=a+b");
        assert_eq!(
            query(&pairs, Some("X-Amz-Signature")),
            "a=1&a=x%3Ay&b=2&c=&plus=a%2Bb"
        );
    }

    #[test]
    fn headers_are_trimmed_collapsed_and_joined() {
        let h = vec![
            ("Host".to_string(), "example.com".to_string()),
            ("X-Multi".to_string(), "  a   b ".to_string()),
            ("x-multi".to_string(), "c".to_string()),
        ];
        assert_eq!(
            headers(&h, &["host", "x-multi"]).unwrap(),
            "host:example.com\nx-multi:a b,c\n"
        );
        assert_eq!(headers(&h, &["x-amz-date"]).unwrap_err(), "x-amz-date");
    }
}

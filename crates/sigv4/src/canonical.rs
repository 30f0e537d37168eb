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

/// Why a query string cannot be canonicalised without guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A `%` not followed by two hex digits: `%G1` would decode to itself and re-encode as
    /// `%25G1`, the canonical form of another query.
    BadEscape(String),
    /// Percent-decodes to bytes that are not UTF-8: decoded lossily, `%FF` and `%FE` would both
    /// become U+FFFD and one signature would cover both.
    NotUtf8(String),
    /// A parameter read as one value appears more than once ([`crate::query_param`]).
    Repeated(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadEscape(c) => write!(
                f,
                "The query string has a malformed percent-encoding in '{c}'."
            ),
            Self::NotUtf8(c) => write!(
                f,
                "The query string component '{c}' does not percent-decode to UTF-8."
            ),
            Self::Repeated(name) => {
                write!(
                    f,
                    "The query string has the {name} parameter more than once."
                )
            }
        }
    }
}

/// One query component percent-decoded, exactly: every `%` starts a two-hex-digit escape and the
/// bytes are UTF-8, so the decoded text names one raw form only (up to the case of the hex
/// digits and the encoding of unreserved characters, which AWS's canonical form also ignores).
pub fn decode_component(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
        let at = i + off;
        let ok = b.len() > at + 2 && b[at + 1].is_ascii_hexdigit() && b[at + 2].is_ascii_hexdigit();
        if !ok {
            return Err(QueryError::BadEscape(s.to_owned()));
        }
        i = at + 3;
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| QueryError::NotUtf8(s.to_owned()))
}

/// Decoded query parameters in order of appearance (`+` is literal, not a space). Refuses what
/// [`decode_component`] refuses.
pub fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, QueryError> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode_component(k)?, decode_component(v)?))
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

/// Linear whitespace in a header value: SP and HTAB (RFC 9110 §5.6.3), and the CR/LF of an
/// obsolete line folding (AWS's test suite, `get-header-value-multiline`).
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Runs of linear whitespace collapsed to one space, ends trimmed ("Create a canonical request
/// for Signature Version 4": trim, and convert sequential spaces to one). Nothing else counts as
/// whitespace: a no-break space or an em space is kept as it is, like the AWS SDK for Rust's
/// signer keeps it, so `a\u{a0}b` and `a b` are different values. Values that need nothing
/// (nearly all: dates, hashes, host names) are copied without splitting (it showed in profiles).
fn normalise_value(v: &str) -> String {
    let bytes = v.as_bytes();
    let clean = bytes.first().is_none_or(|b| !is_lws(*b))
        && bytes.last().is_none_or(|b| !is_lws(*b))
        && !bytes.windows(2).any(|w| is_lws(w[0]) && is_lws(w[1]))
        && !bytes.iter().any(|b| is_lws(*b) && *b != b' ');
    if clean {
        return v.to_owned();
    }
    v.split(|c: char| c.is_ascii() && is_lws(c as u8))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a header value can be signed unambiguously: no control characters but HTAB, and CR or
/// LF only as an obsolete line folding (followed by SP or HTAB, which HTTP/1.1 parsers refuse on
/// the wire anyway). A NUL, a bare CR or a DEL has no canonical form AWS documents.
fn is_signable(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\t' => true,
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => matches!(b.get(i + 1), Some(b' ' | b'\t')),
        0..=0x1f | 0x7f => false,
        _ => true,
    })
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

/// Why a signed header cannot go into the canonical request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Listed as signed but absent.
    Missing(String),
    /// Has a value [`is_signable`] refuses.
    Unsignable(String),
}

/// The canonical headers block for `signed` (lower-case names, in the given order). Repeated
/// headers are joined with `,` in the order received (AWS's `get-header-key-duplicate`).
pub fn headers(headers: &[(String, String)], signed: &[&str]) -> Result<String, HeaderError> {
    let mut out = String::new();
    for name in signed {
        if headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && !is_signable(v))
        {
            return Err(HeaderError::Unsignable((*name).to_owned()));
        }
        let v =
            header_value(headers, name).ok_or_else(|| HeaderError::Missing((*name).to_owned()))?;
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
        let pairs = query_pairs("b=2&a=x%3Ay&a=1&c&X-Amz-Signature=s&plus=a+b").unwrap();
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
        assert_eq!(
            headers(&h, &["x-amz-date"]).unwrap_err(),
            HeaderError::Missing("x-amz-date".into())
        );
    }

    /// Each pair decodes to the same text as the other under a lossy or lenient decoder, so one
    /// signature would have covered both; the strict decoder refuses the odd one out.
    #[test]
    fn ambiguous_query_components_are_refused() {
        for (raw, err) in [
            ("a=%FF", QueryError::NotUtf8("%FF".into())),
            ("a=%C3", QueryError::NotUtf8("%C3".into())),
            ("%FE=1", QueryError::NotUtf8("%FE".into())),
            ("a=%G1", QueryError::BadEscape("%G1".into())),
            ("a=50%", QueryError::BadEscape("50%".into())),
            ("a=%4", QueryError::BadEscape("%4".into())),
        ] {
            assert_eq!(query_pairs(raw), Err(err), "{raw}");
        }
        // Well-formed escapes, multi-byte UTF-8 and raw UTF-8 are fine.
        assert_eq!(
            query_pairs("a=%E1%88%B4&%25=%2b&b=\u{1234}").unwrap(),
            [
                ("a".to_string(), "\u{1234}".to_string()),
                ("%".to_string(), "+".to_string()),
                ("b".to_string(), "\u{1234}".to_string()),
            ]
        );
        assert_eq!(decode_component("caf%C3%A9").unwrap(), "caf\u{e9}");
    }

    #[test]
    fn only_linear_whitespace_is_collapsed() {
        let h = |v: &str| vec![("X-H".to_string(), v.to_string())];
        for (raw, canonical) in [
            ("  a   b  ", "a b"),
            ("\ta\t\tb\t", "a b"),
            ("a\r\n  b", "a b"),
            ("a\n\tb", "a b"),
            // Not whitespace to SigV4: kept, so these differ from "a b".
            ("a\u{a0}b", "a\u{a0}b"),
            ("a\u{2003}b", "a\u{2003}b"),
            (" \u{a0} ", "\u{a0}"),
        ] {
            assert_eq!(
                headers(&h(raw), &["x-h"]).unwrap(),
                format!("x-h:{canonical}\n"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn control_characters_in_signed_values_are_refused() {
        for raw in ["a\0b", "a\rb", "a\nb", "a\n", "a\x7fb", "a\x1bb", "a\r\nb"] {
            let h = vec![
                ("X-H".to_string(), "fine".to_string()),
                ("x-h".to_string(), raw.to_string()),
            ];
            assert_eq!(
                headers(&h, &["x-h"]),
                Err(HeaderError::Unsignable("x-h".into())),
                "{raw:?}"
            );
            // Unsigned, it does not matter.
            assert!(headers(&h[..1], &["x-h"]).is_ok());
        }
    }
}

//! Where the verifier is held to AWS's documented rules rather than to what happens to verify
//! (SECURITY.md "Request signing"; docs/protocol.md §7). Each case is a request a correct signer
//! could have signed, altered into another raw request that a looser verifier would accept
//! under the same signature; every one of them must be refused.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_sigv4::{
    presign_query, sign_headers, verify_header, verify_presigned, AuthError, HttpRequest,
    SecretLookup, VerifyOptions,
};

struct Keys;

impl SecretLookup for Keys {
    fn secret_for(&self, ak: &str) -> Option<String> {
        match ak {
            "AKIDA" => Some("secret-a".into()),
            "AKIDB" => Some("secret-b".into()),
            _ => None,
        }
    }
}

/// 2015-08-30T12:36:00Z, AWS's suite time.
const T: u64 = 1_440_938_160;
const DATE: &str = "20150830T123600Z";
const HOST: &str = "kvs.example";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn opts() -> VerifyOptions {
    VerifyOptions::default()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `headers` plus the Authorization that `sign_headers` computes over `signed` (and `query`).
fn signed(headers: &[(&str, &str)], query: &str, signed: &[&str]) -> Vec<(String, String)> {
    let mut hs = h(headers);
    let req = HttpRequest {
        method: "POST",
        path: "/listSignalingChannels",
        query,
        headers: &hs,
        body: b"{}",
    };
    let auth = sign_headers(
        &req,
        "AKIDA",
        "secret-a",
        "us-east-1",
        "kinesisvideo",
        DATE,
        signed,
    );
    hs.push(("Authorization".into(), auth));
    hs
}

fn verify(headers: &[(String, String)], query: &str) -> Result<kvs_sigv4::Verified, AuthError> {
    let req = HttpRequest {
        method: "POST",
        path: "/listSignalingChannels",
        query,
        headers,
        body: b"{}",
    };
    verify_header(&req, &Keys, at(T + 5), &opts())
}

fn expect(res: Result<kvs_sigv4::Verified, AuthError>, code: &str, needle: &str, case: &str) {
    let e = res.expect_err(case);
    assert_eq!(e.code(), code, "{case}: {e}");
    assert!(
        e.to_string().contains(needle),
        "{case}: '{e}' lacks '{needle}'"
    );
}

/// The request time: `X-Amz-Date`, else a `Date` in the same ISO 8601 basic format; signed.
#[test]
fn the_date_header_fallback_is_no_looser_than_aws() {
    // AWS's fallback: `Date` in ISO 8601 basic, signed, and no X-Amz-Date.
    let ok = signed(&[("Host", HOST), ("Date", DATE)], "", &["date", "host"]);
    let v = verify(&ok, "").unwrap();
    assert_eq!(v.date, DATE);

    type Headers = Vec<(String, String)>;
    let cases: &[(&str, Headers, &str, &str)] = &[
        (
            "X-Amz-Date present but not signed",
            signed(&[("Host", HOST), ("X-Amz-Date", DATE)], "", &["host"]),
            "InvalidSignatureException",
            "'X-Amz-Date' must be a 'SignedHeader'",
        ),
        (
            "Date (ISO) present but not signed",
            signed(&[("Host", HOST), ("Date", DATE)], "", &["host"]),
            "InvalidSignatureException",
            "'Date' must be a 'SignedHeader'",
        ),
        (
            "Date in RFC 7231 format, signed",
            signed(
                &[("Host", HOST), ("Date", "Sun, 30 Aug 2015 12:36:00 GMT")],
                "",
                &["date", "host"],
            ),
            "IncompleteSignatureException",
            "Date must be in the ISO 8601 basic format",
        ),
        (
            "Date in RFC 7231 format, unsigned",
            signed(
                &[("Host", HOST), ("Date", "Sun, 30 Aug 2015 12:36:00 GMT")],
                "",
                &["host"],
            ),
            "InvalidSignatureException",
            "'Date' must be a 'SignedHeader'",
        ),
        (
            "neither header",
            signed(&[("Host", HOST)], "", &["host"]),
            "IncompleteSignatureException",
            "requires existence of either a 'X-Amz-Date' or a 'Date' header",
        ),
    ];
    for (case, headers, code, needle) in cases {
        expect(verify(headers, ""), code, needle, case);
    }

    // With both, X-Amz-Date is the time; a Date that disagrees cannot move it.
    let both = signed(
        &[
            ("Host", HOST),
            ("Date", "20200101T000000Z"),
            ("X-Amz-Date", DATE),
        ],
        "",
        &["host", "x-amz-date"],
    );
    assert_eq!(verify(&both, "").unwrap().date, DATE);
    // A signed X-Amz-Date cannot be swapped for an unsigned Date by dropping it.
    let dropped: Vec<_> = both
        .iter()
        .filter(|(k, _)| k != "X-Amz-Date")
        .cloned()
        .collect();
    expect(
        verify(&dropped, ""),
        "InvalidSignatureException",
        "'Date' must be a 'SignedHeader'",
        "X-Amz-Date dropped, unsigned Date left",
    );
}

/// Header values: only SP/HTAB runs (and obsolete line folding) collapse; other characters,
/// Unicode spaces included, are part of the value; control characters are refused.
#[test]
fn header_values_canonicalise_as_aws_documents() {
    let base = [("Host", HOST), ("X-Amz-Date", DATE), ("X-Custom", "a b")];
    let names = ["host", "x-amz-date", "x-custom"];
    let good = signed(&base, "", &names);
    verify(&good, "").unwrap();
    let with = |value: &str| -> Vec<(String, String)> {
        good.iter()
            .map(|(k, v)| {
                if k == "X-Custom" {
                    (k.clone(), value.to_owned())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };
    // Same canonical value: whitespace runs are one space, ends are trimmed (AWS's rule).
    for same in ["a  b", " a b ", "\ta\t b\t", "a\r\n b"] {
        verify(&with(same), "").unwrap_or_else(|e| panic!("{same:?}: {e}"));
    }
    // Not the same value.
    for (case, value, needle) in [
        ("no-break space", "a\u{a0}b", "does not match"),
        ("em space", "a\u{2003}b", "does not match"),
        ("line separator", "a\u{2028}b", "does not match"),
        ("NUL", "a\0b", "control characters"),
        ("bare LF", "a\nb", "control characters"),
        ("bare CR", "a\rb", "control characters"),
        ("ESC", "a\x1bb", "control characters"),
        ("vertical tab", "a\x0bb", "control characters"),
        ("form feed", "a\x0cb", "control characters"),
        ("DEL", "a\x7fb", "control characters"),
    ] {
        expect(
            verify(&with(value), ""),
            "InvalidSignatureException",
            needle,
            case,
        );
    }

    // Repeated headers are joined with ',' in the order received, so order matters.
    let two = signed(
        &[
            ("Host", HOST),
            ("X-Amz-Date", DATE),
            ("X-Multi", "first"),
            ("X-Multi", "second"),
        ],
        "",
        &["host", "x-amz-date", "x-multi"],
    );
    verify(&two, "").unwrap();
    let mut swapped = two.clone();
    swapped.swap(2, 3);
    expect(
        verify(&swapped, ""),
        "InvalidSignatureException",
        "does not match",
        "repeated header values reordered",
    );

    // Two Authorization headers are not one with the fields of both.
    let mut twice = good.clone();
    let auth = twice.last().unwrap().clone();
    twice.push(auth);
    expect(
        verify(&twice, ""),
        "IncompleteSignatureException",
        "more than one Authorization header",
        "Authorization twice",
    );
    // Nor may one Authorization header name a field twice.
    let mut doubled = good.clone();
    let last = doubled.last_mut().unwrap();
    last.1 = format!("{}, Signature=0000", last.1);
    expect(
        verify(&doubled, ""),
        "IncompleteSignatureException",
        "more than once",
        "Signature twice in one header",
    );
}

/// Percent-decoded query components must be well-formed UTF-8, or two raw queries would share
/// one canonical form (and one signature).
#[test]
fn ambiguous_queries_are_refused_in_both_forms() {
    // Header form: signed over the query a lenient decoder would turn the raw one into.
    for (signed_query, sent_query, needle) in [
        ("a=%EF%BF%BD", "a=%FF", "does not percent-decode to UTF-8"),
        (
            "a=%EF%BF%BD",
            "a=%C3%28",
            "does not percent-decode to UTF-8",
        ),
        ("a=%25G1", "a=%G1", "malformed percent-encoding"),
        ("a=100%25", "a=100%", "malformed percent-encoding"),
    ] {
        let hs = signed(
            &[("Host", HOST), ("X-Amz-Date", DATE)],
            signed_query,
            &["host", "x-amz-date"],
        );
        verify(&hs, signed_query).unwrap();
        expect(
            verify(&hs, sent_query),
            "InvalidSignatureException",
            needle,
            sent_query,
        );
    }

    // Presigned form: a ClientId that decodes lossily to U+FFFD.
    let q = presign(
        "arn:aws:kinesisvideo:us-east-1:111111111111:channel/a/1",
        Some("\u{fffd}"),
        299,
    );
    assert!(q.contains("X-Amz-ClientId=%EF%BF%BD"), "{q}");
    presigned(&q, T + 5).unwrap();
    let raw = q.replace("X-Amz-ClientId=%EF%BF%BD", "X-Amz-ClientId=%FF");
    let e = presigned(&raw, T + 5).unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException", "{e}");
    assert!(e.to_string().contains("UTF-8"), "{e}");
}

const ARN_A: &str = "arn:aws:kinesisvideo:us-east-1:111111111111:channel/cam-a/1700000000000";
const ARN_B: &str = "arn:aws:kinesisvideo:us-east-1:111111111111:channel/cam-b/1700000000001";

fn presign_as(
    ak: &str,
    secret: &str,
    region: &str,
    params: &[(&str, &str)],
    expires: u64,
) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    presign_query(
        "GET",
        HOST,
        "/",
        &params,
        ak,
        secret,
        region,
        "kinesisvideo",
        DATE,
        expires,
    )
}

fn presign(arn: &str, client: Option<&str>, expires: u64) -> String {
    let mut params = vec![("X-Amz-ChannelARN", arn)];
    if let Some(c) = client {
        params.push(("X-Amz-ClientId", c));
    }
    presign_as("AKIDA", "secret-a", "us-east-1", &params, expires)
}

fn presigned(query: &str, now: u64) -> Result<kvs_sigv4::Verified, AuthError> {
    let headers = h(&[("Host", HOST)]);
    let req = HttpRequest {
        method: "GET",
        path: "/",
        query,
        headers: &headers,
        body: b"",
    };
    verify_presigned(&req, &Keys, at(now), &opts())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An `X-Amz-*` parameter given twice is refused, even when the signature covers both.
#[test]
fn repeated_presigned_parameters_are_refused() {
    let q = presign(ARN_A, Some("viewer"), 299);
    presigned(&q, T + 5).unwrap();
    let sig = q
        .split('&')
        .find(|p| p.starts_with("X-Amz-Signature="))
        .unwrap()
        .to_owned();
    let cases: Vec<(&str, String)> = vec![
        // Appended after signing: the first signature still matches the canonical query.
        ("signature twice", format!("{q}&{sig}")),
        ("junk second signature", format!("{q}&X-Amz-Signature=00")),
        (
            "signature twice, other case",
            format!("{q}&{}", sig.replace("X-Amz-Signature", "x-amz-signature")),
        ),
        ("date twice", format!("{q}&X-Amz-Date={DATE}")),
        ("expires twice", format!("{q}&X-Amz-Expires=604800")),
        // Signed with both: the signature is good, the request is still ambiguous.
        (
            "channel ARN twice, both signed",
            presign_as(
                "AKIDA",
                "secret-a",
                "us-east-1",
                &[("X-Amz-ChannelARN", ARN_A), ("X-Amz-ChannelARN", ARN_B)],
                299,
            ),
        ),
        (
            "client id twice, both signed",
            presign_as(
                "AKIDA",
                "secret-a",
                "us-east-1",
                &[
                    ("X-Amz-ChannelARN", ARN_A),
                    ("X-Amz-ClientId", "a"),
                    ("X-Amz-ClientId", "b"),
                ],
                299,
            ),
        ),
        (
            "security token twice, both signed",
            presign_as(
                "AKIDA",
                "secret-a",
                "us-east-1",
                &[
                    ("X-Amz-ChannelARN", ARN_A),
                    ("X-Amz-Security-Token", "t1"),
                    ("X-Amz-Security-Token", "t2"),
                ],
                299,
            ),
        ),
    ];
    for (case, query) in cases {
        let e = presigned(&query, T + 5).expect_err(case);
        assert_eq!(e.code(), "InvalidSignatureException", "{case}: {e}");
        assert!(e.to_string().contains("more than once"), "{case}: {e}");
    }
}

/// What a presigned URL is bound to: its channel, client, region, key and lifetime.
#[test]
fn presigned_urls_are_bound_to_what_they_sign() {
    let q = presign(ARN_A, Some("viewer"), 299);
    presigned(&q, T + 5).unwrap();
    let arn_a = format!("X-Amz-ChannelARN={}", enc(ARN_A));
    let arn_b = format!("X-Amz-ChannelARN={}", enc(ARN_B));
    assert!(q.contains(&arn_a), "{q}");
    for (case, query, code) in [
        (
            "signed for channel A, used for channel B",
            q.replace(&arn_a, &arn_b),
            "InvalidSignatureException",
        ),
        (
            "client id changed",
            q.replace("X-Amz-ClientId=viewer", "X-Amz-ClientId=master"),
            "InvalidSignatureException",
        ),
        (
            "client id dropped (viewer URL used as master)",
            q.replace("&X-Amz-ClientId=viewer", ""),
            "InvalidSignatureException",
        ),
        (
            "region changed",
            q.replace("%2Fus-east-1%2F", "%2Feu-west-1%2F"),
            "InvalidSignatureException",
        ),
        (
            "another account's key named",
            q.replace("AKIDA%2F", "AKIDB%2F"),
            "InvalidSignatureException",
        ),
        (
            "expiry lengthened",
            q.replace("X-Amz-Expires=299", "X-Amz-Expires=604800"),
            "InvalidSignatureException",
        ),
        (
            "token added after signing",
            format!("{q}&X-Amz-Security-Token=stolen"),
            "InvalidSignatureException",
        ),
    ] {
        let e = presigned(&query, T + 5).expect_err(case);
        assert_eq!(e.code(), code, "{case}: {e}");
    }

    // Lifetime: X-Amz-Expires in 1..=604800, the URL good until X-Amz-Date + X-Amz-Expires,
    // not before X-Amz-Date - 5 minutes.
    for (expires, ok) in [(0, false), (1, true), (604_800, true), (604_801, false)] {
        let q = presign(ARN_A, None, expires);
        let r = presigned(&q, T);
        assert_eq!(r.is_ok(), ok, "X-Amz-Expires={expires}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err().code(), "IncompleteSignatureException");
        }
    }
    let q = presign(ARN_A, None, 60);
    for (now, ok, prefix) in [
        (T - 300, true, ""),
        (T - 301, false, "Signature not yet current"),
        (T + 60, true, ""),
        (T + 61, false, "Signature expired"),
        (T + 86_400, false, "Signature expired"),
    ] {
        match presigned(&q, now) {
            Ok(_) => assert!(ok, "at T{:+}", now as i64 - T as i64),
            Err(e) => {
                assert!(!ok, "at T{:+}: {e}", now as i64 - T as i64);
                assert!(e.to_string().starts_with(prefix), "{e}");
            }
        }
    }

    // The token is the signed query's; one in a header is not the URL's.
    let with_token = presign_as(
        "AKIDA",
        "secret-a",
        "us-east-1",
        &[("X-Amz-ChannelARN", ARN_A), ("X-Amz-Security-Token", "tok")],
        299,
    );
    assert_eq!(
        presigned(&with_token, T).unwrap().security_token.as_deref(),
        Some("tok")
    );
    let headers = h(&[("Host", HOST), ("X-Amz-Security-Token", "from-header")]);
    let q = presign(ARN_A, None, 299);
    let req = HttpRequest {
        method: "GET",
        path: "/",
        query: &q,
        headers: &headers,
        body: b"",
    };
    let v = verify_presigned(&req, &Keys, at(T), &opts()).unwrap();
    assert_eq!(
        v.security_token, None,
        "an unsigned header token is ignored"
    );
}

/// Header-signed requests: ±5 minutes around the server's clock ("Elements of an AWS API request
/// signature": a request must reach AWS within five minutes of its time stamp).
#[test]
fn header_clock_skew_window_is_five_minutes() {
    let hs = signed(
        &[("Host", HOST), ("X-Amz-Date", DATE)],
        "",
        &["host", "x-amz-date"],
    );
    let req = HttpRequest {
        method: "POST",
        path: "/listSignalingChannels",
        query: "",
        headers: &hs,
        body: b"{}",
    };
    for (now, ok) in [
        (T - 300, true),
        (T + 300, true),
        (T - 301, false),
        (T + 301, false),
        (T + 900, false),
    ] {
        let r = verify_header(&req, &Keys, at(now), &opts());
        assert_eq!(r.is_ok(), ok, "at T{:+}: {r:?}", now as i64 - T as i64);
    }
}

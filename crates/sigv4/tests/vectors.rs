//! Published SigV4 vectors: the KVS JS SDK's presigned-URL unit tests (docs/protocol.md §7.2) and
//! AWS's SigV4 test suite (`get-vanilla` and friends).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_sigv4::{
    presign_query, sign_headers, verify_header, verify_presigned, HttpRequest, SecretLookup,
    VerifyOptions,
};

struct Keys(&'static [(&'static str, &'static str)]);

impl SecretLookup for Keys {
    fn secret_for(&self, ak: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == ak)
            .map(|(_, s)| s.to_string())
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2019-12-01T00:00:00Z
const JS_DATE: u64 = 1_575_158_400;

fn js_params(token: bool) -> Vec<(String, String)> {
    let mut p = vec![(
        "X-Amz-TestParam".to_string(),
        "test-param-value".to_string(),
    )];
    if token {
        p.push(("X-Amz-Security-Token".into(), "FakeSessionToken".into()));
    }
    p
}

fn js_presign(path: &str, token: bool, service: &str) -> String {
    presign_query(
        "GET",
        "kvs.awsamazon.com",
        path,
        &js_params(token),
        "AKIA4F7WJQR7FMMWMNXI",
        "FakeSecretKey",
        "us-west-2",
        service,
        "20191201T000000Z",
        299,
    )
}

fn signature_of(query: &str) -> &str {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Signature="))
        .unwrap()
}

#[test]
fn js_sdk_presign_vectors_are_reproduced() {
    let full = js_presign("/", true, "kinesisvideo");
    assert_eq!(
        full,
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value"
    );
    assert_eq!(
        signature_of(&js_presign("/", false, "kinesisvideo")),
        "be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695"
    );
    assert_eq!(
        signature_of(&js_presign("/path/path/path", true, "kinesisvideo")),
        "0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4"
    );
    assert_eq!(
        signature_of(&js_presign("/", true, "firehose")),
        "f15308513d21a381d38b7607a0439f25fc2e6c9f5ff56a48c1664b486e6234d5"
    );
}

fn ws_request<'a>(
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
) -> HttpRequest<'a> {
    HttpRequest {
        method: "GET",
        path,
        query,
        headers,
        body: b"",
    }
}

const JS_KEYS: Keys = Keys(&[("AKIA4F7WJQR7FMMWMNXI", "FakeSecretKey")]);

#[test]
fn js_sdk_presigned_urls_verify_within_their_window_only() {
    let headers = vec![("Host".to_string(), "kvs.awsamazon.com".to_string())];
    let q = js_presign("/", true, "kinesisvideo");
    let opts = VerifyOptions::default();
    let v = verify_presigned(
        &ws_request("/", &q, &headers),
        &JS_KEYS,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap();
    assert_eq!(v.region, "us-west-2");
    assert_eq!(v.access_key_id, "AKIA4F7WJQR7FMMWMNXI");
    assert_eq!(v.security_token.as_deref(), Some("FakeSessionToken"));

    // 299 s later it has expired.
    let e = verify_presigned(
        &ws_request("/", &q, &headers),
        &JS_KEYS,
        at(JS_DATE + 300),
        &opts,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("Signature expired"), "{e}");
    // Signed in the future.
    let e = verify_presigned(
        &ws_request("/", &q, &headers),
        &JS_KEYS,
        at(JS_DATE - 600),
        &opts,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("Signature not yet current"),
        "{e}"
    );
    // Tampering with any signed parameter, the path or the host breaks it.
    let tampered = q.replace("test-param-value", "test-param-valuE");
    let e = verify_presigned(
        &ws_request("/", &tampered, &headers),
        &JS_KEYS,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    let e = verify_presigned(
        &ws_request("/x", &q, &headers),
        &JS_KEYS,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    let other_host = vec![("Host".to_string(), "evil.example".to_string())];
    let e = verify_presigned(
        &ws_request("/", &q, &other_host),
        &JS_KEYS,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    // Wrong secret; unknown key.
    let wrong = Keys(&[("AKIA4F7WJQR7FMMWMNXI", "OtherSecret")]);
    let e = verify_presigned(
        &ws_request("/", &q, &headers),
        &wrong,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    let e = verify_presigned(
        &ws_request("/", &q, &headers),
        &Keys(&[]),
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "UnrecognizedClientException");
    // Another service's signature is refused on its scope.
    let fh = js_presign("/", true, "firehose");
    let e = verify_presigned(
        &ws_request("/", &fh, &headers),
        &JS_KEYS,
        at(JS_DATE + 10),
        &opts,
    )
    .unwrap_err();
    assert!(e.to_string().contains("correct service"), "{e}");
}

#[test]
fn presign_parameter_errors() {
    let headers = vec![("Host".to_string(), "h".to_string())];
    let opts = VerifyOptions::default();
    let e = verify_presigned(
        &ws_request("/", "X-Amz-ChannelARN=x", &headers),
        &JS_KEYS,
        at(JS_DATE),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "MissingAuthenticationTokenException");
    let q = js_presign("/", false, "kinesisvideo");
    for (from, to) in [
        ("X-Amz-Expires=299", "X-Amz-Expires=604801"),
        ("X-Amz-Expires=299", "X-Amz-Expires=soon"),
        ("X-Amz-Expires=299", "X-Amz-Expires=0"),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        ),
        ("X-Amz-Date=20191201T000000Z", "X-Amz-Date=2019-12-01"),
    ] {
        let bad = q.replace(from, to);
        let e = verify_presigned(
            &ws_request("/", &bad, &headers),
            &JS_KEYS,
            at(JS_DATE),
            &opts,
        )
        .unwrap_err();
        assert_eq!(e.code(), "IncompleteSignatureException", "{to}");
    }
    // A week-long URL, as the C SDK makes, is fine.
    let week = presign_query(
        "GET",
        "h",
        "/",
        &[],
        "AKIA4F7WJQR7FMMWMNXI",
        "FakeSecretKey",
        "us-west-2",
        "kinesisvideo",
        "20191201T000000Z",
        604_800,
    );
    verify_presigned(
        &ws_request("/", &week, &headers),
        &JS_KEYS,
        at(JS_DATE + 600_000),
        &opts,
    )
    .unwrap();
}

// AWS SigV4 test suite, `get-vanilla`: AKIDEXAMPLE, service "service", us-east-1.
const SUITE_KEYS: Keys = Keys(&[("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")]);
const SUITE_TIME: u64 = 1_440_938_160; // 20150830T123600Z

fn suite_opts() -> VerifyOptions {
    VerifyOptions {
        service: "service".into(),
        ..VerifyOptions::default()
    }
}

#[test]
fn aws_suite_get_vanilla() {
    let headers = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
    ];
    let req = HttpRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    let auth = sign_headers(
        &req,
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "us-east-1",
        "service",
        "20150830T123600Z",
        &["host", "x-amz-date"],
    );
    assert_eq!(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    let mut signed = headers.clone();
    signed.push(("Authorization".into(), auth));
    let req = HttpRequest {
        headers: &signed,
        ..req
    };
    let v = verify_header(&req, &SUITE_KEYS, at(SUITE_TIME + 60), &suite_opts()).unwrap();
    assert_eq!(v.region, "us-east-1");
}

#[test]
fn header_errors_and_skew_messages() {
    let unsigned = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
    ];
    let base = HttpRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &unsigned,
        body: b"",
    };
    let auth = sign_headers(
        &base,
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "us-east-1",
        "service",
        "20150830T123600Z",
        &["host", "x-amz-date"],
    );
    let opts = suite_opts();
    // No Authorization at all.
    let e = verify_header(&base, &SUITE_KEYS, at(SUITE_TIME), &opts).unwrap_err();
    assert_eq!(e.code(), "MissingAuthenticationTokenException");
    let mut headers = unsigned.clone();
    headers.push(("Authorization".into(), auth.clone()));
    let req = HttpRequest {
        headers: &headers,
        ..base
    };
    // Too old / too new, with the messages the C SDK looks for.
    let e = verify_header(&req, &SUITE_KEYS, at(SUITE_TIME + 301), &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)"
    );
    let e = verify_header(&req, &SUITE_KEYS, at(SUITE_TIME - 301), &opts).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Signature not yet current: 20150830T123600Z is still later than"),
        "{e}"
    );
    assert_eq!(e.code(), "InvalidSignatureException");
    // Wrong service in the scope.
    let e =
        verify_header(&req, &SUITE_KEYS, at(SUITE_TIME), &VerifyOptions::default()).unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    // Unknown key; wrong secret.
    assert_eq!(
        verify_header(&req, &Keys(&[]), at(SUITE_TIME), &opts)
            .unwrap_err()
            .code(),
        "UnrecognizedClientException"
    );
    let wrong = Keys(&[("AKIDEXAMPLE", "nope")]);
    assert_eq!(
        verify_header(&req, &wrong, at(SUITE_TIME), &opts)
            .unwrap_err()
            .code(),
        "InvalidSignatureException"
    );
    // host not signed.
    let no_host = auth.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
    let h2: Vec<(String, String)> = headers[..2]
        .iter()
        .cloned()
        .chain([("Authorization".to_string(), no_host)])
        .collect();
    let e = verify_header(
        &HttpRequest {
            headers: &h2,
            ..base
        },
        &SUITE_KEYS,
        at(SUITE_TIME),
        &opts,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("'Host' must be a 'SignedHeader'"),
        "{e}"
    );
    // Host header missing from the request though signed.
    let h3: Vec<(String, String)> = headers[1..].to_vec();
    let e = verify_header(
        &HttpRequest {
            headers: &h3,
            ..base
        },
        &SUITE_KEYS,
        at(SUITE_TIME),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    // Tampered body or query.
    let e = verify_header(
        &HttpRequest { body: b"x", ..req },
        &SUITE_KEYS,
        at(SUITE_TIME),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    let e = verify_header(
        &HttpRequest {
            query: "a=b",
            ..req
        },
        &SUITE_KEYS,
        at(SUITE_TIME),
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
}

/// A declared payload hash must match the body, or a captured request could carry another body.
#[test]
fn declared_payload_hash_must_match_the_body() {
    let body = br#"{"ChannelName":"c"}"#;
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body))
    };
    let unsigned = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ("X-Amz-Content-Sha256".to_string(), hash),
    ];
    let req = HttpRequest {
        method: "POST",
        path: "/createSignalingChannel",
        query: "",
        headers: &unsigned,
        body,
    };
    let auth = sign_headers(
        &req,
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "us-east-1",
        "service",
        "20150830T123600Z",
        &["host", "x-amz-content-sha256", "x-amz-date"],
    );
    let mut headers = unsigned.clone();
    headers.push(("Authorization".into(), auth));
    let signed = HttpRequest {
        headers: &headers,
        ..req
    };
    verify_header(&signed, &SUITE_KEYS, at(SUITE_TIME), &suite_opts()).unwrap();
    let swapped = HttpRequest {
        body: br#"{"ChannelName":"EVIL"}"#,
        ..signed
    };
    let e = verify_header(&swapped, &SUITE_KEYS, at(SUITE_TIME), &suite_opts()).unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
}

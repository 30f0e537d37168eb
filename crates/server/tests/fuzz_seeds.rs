//! The fuzz targets' seed corpora (fuzz/corpus/, docs/reliability.md "Fuzzing") are real, valid
//! inputs: signed requests that verify, bodies their operation accepts, messages the relay
//! forwards. So a change that makes a seed invalid (and the fuzzer start from nothing) fails
//! here rather than going unnoticed.
//!
//! The signed seeds are made here, with `kvs_sigv4::sign_headers` / `presign_query` at the fixed
//! time and key of fuzz/src/request.rs; `KVS_WRITE_FUZZ_SEEDS=1 cargo test -p kvs-signaling
//! --test fuzz_seeds` rewrites them after a deliberate change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use kvs_core::relay::ClientMessage;
use kvs_signaling::control::{self, Operation};
use kvs_signaling::data_plane;
use kvs_sigv4::{
    format_amz_date, presign_query, sign_headers, verify_header, verify_presigned, HttpRequest,
    VerifyOptions,
};

#[path = "../../../fuzz/src/request.rs"]
mod request;

use request::{now, OwnedRequest, Secrets, ACCESS_KEY_ID, SECRET};

const REGION: &str = "us-west-2";
const SERVICE: &str = "kinesisvideo";
const ARN: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1714564800000";

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(corpus(target))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "{target}: only {} seeds", out.len());
    out
}

/// The request as text, in the format fuzz/src/request.rs parses.
fn render(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut out = format!("{method} {target} HTTP/1.1\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Writes the seed when asked to, else checks the committed one is what would be written.
fn check_or_write(target: &str, name: &str, text: &[u8]) {
    let path = corpus(target).join(name);
    if std::env::var("KVS_WRITE_FUZZ_SEEDS").as_deref() == Ok("1") {
        fs::write(&path, text).unwrap();
        return;
    }
    let committed = fs::read(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what this test makes; rerun with KVS_WRITE_FUZZ_SEEDS=1 if intended",
        path.display()
    );
}

struct HeaderSeed {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    host: &'static str,
    extra: &'static [(&'static str, &'static str)],
    signed: &'static [&'static str],
    body: &'static [u8],
}

const CONTROL_HOST: &str = "kinesisvideo.us-west-2.amazonaws.com";
const DATA_HOST: &str = "r-1a2b3c4d.kinesisvideo.us-west-2.amazonaws.com";

/// What botocore, aws-sdk-rust and the KVS SDKs send (docs/protocol.md §7.1).
const HEADER_SEEDS: &[HeaderSeed] = &[
    HeaderSeed {
        name: "describe.botocore.http",
        method: "POST",
        path: "/describeSignalingChannel",
        query: "",
        host: CONTROL_HOST,
        extra: &[("content-type", "application/json")],
        signed: &["content-type", "host", "x-amz-date"],
        body: br#"{"ChannelName":"demo-channel"}"#,
    },
    HeaderSeed {
        name: "create.sdk-rust.token.http",
        method: "POST",
        path: "/createSignalingChannel",
        query: "",
        host: CONTROL_HOST,
        extra: &[
            ("content-type", "application/json"),
            // The body's SHA-256: verification refuses any other declared hash.
            (
                "x-amz-content-sha256",
                "2447cc718d3ad97c5324a71adba1d9b0d96942c9a9fd1843e65134148a33c648",
            ),
            ("x-amz-security-token", "IQoJb3JpZ2luX2VjEFUaCXVzLXdlc3QtMiJH"),
            ("x-amz-user-agent", "aws-sdk-rust/1.3.9 os/linux lang/rust/1.95.0"),
        ],
        signed: &[
            "content-type",
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-user-agent",
        ],
        body: br#"{"ChannelName":"demo-channel","ChannelType":"SINGLE_MASTER"}"#,
    },
    HeaderSeed {
        name: "list.unsigned-payload.http",
        method: "POST",
        path: "/listSignalingChannels",
        query: "",
        host: CONTROL_HOST,
        extra: &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        signed: &["host", "x-amz-content-sha256", "x-amz-date"],
        body: b"",
    },
    HeaderSeed {
        name: "ice.query.http",
        method: "POST",
        path: "/v1/get-ice-server-config",
        query: "b=2&a=x%3Ay&a=1&c&plus=a+b",
        host: DATA_HOST,
        extra: &[("content-type", "application/json")],
        signed: &["content-type", "host", "x-amz-date"],
        body: br#"{"ChannelARN":"arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1714564800000","ClientId":"viewer-1"}"#,
    },
    HeaderSeed {
        name: "get.multi-value.http",
        method: "GET",
        path: "/a%20b/%2Fc/",
        query: "",
        host: CONTROL_HOST,
        extra: &[("x-amz-meta", "a   b  c"), ("X-Amz-Meta", "d")],
        signed: &["host", "x-amz-date", "x-amz-meta"],
        body: b"",
    },
];

#[test]
fn sigv4_header_seeds_verify() {
    let amz_date = format_amz_date(now());
    for s in HEADER_SEEDS {
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), s.host.into()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        headers.extend(s.extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let req = HttpRequest {
            method: s.method,
            path: s.path,
            query: s.query,
            headers: &headers,
            body: s.body,
        };
        let auth = sign_headers(
            &req,
            ACCESS_KEY_ID,
            SECRET,
            REGION,
            SERVICE,
            &amz_date,
            s.signed,
        );
        headers.push(("authorization".into(), auth));
        let text = render(s.method, s.path, s.query, &headers, s.body);
        check_or_write("sigv4_header", s.name, &text);
    }
    for (name, data) in seeds("sigv4_header") {
        let owned = OwnedRequest::parse(&data);
        let v = verify_header(
            &owned.as_request(),
            &Secrets,
            now(),
            &VerifyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.access_key_id, ACCESS_KEY_ID, "{name}");
    }
}

/// The presigned WebSocket URLs of the JS and C SDKs (docs/protocol.md §7.2).
#[test]
fn sigv4_presigned_seeds_verify() {
    let amz_date = format_amz_date(now());
    let host = "m-1a2b3c4d.kinesisvideo.us-west-2.amazonaws.com";
    type Case = (&'static str, Vec<(&'static str, &'static str)>, u64);
    let cases: [Case; 3] = [
        ("master.js.http", vec![("X-Amz-ChannelARN", ARN)], 299),
        (
            "viewer.js.http",
            vec![("X-Amz-ChannelARN", ARN), ("X-Amz-ClientId", "viewer-1")],
            299,
        ),
        (
            "viewer.c-sdk.token.http",
            vec![
                ("X-Amz-ChannelARN", ARN),
                ("X-Amz-ClientId", "ConsumerViewer"),
                (
                    "X-Amz-Security-Token",
                    "IQoJb3JpZ2luX2VjEFUa/CXVz+LXdlc3QtMiJH==",
                ),
            ],
            604_800,
        ),
    ];
    for (name, params, expires) in cases {
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let query = presign_query(
            "GET",
            host,
            "/",
            &params,
            ACCESS_KEY_ID,
            SECRET,
            REGION,
            SERVICE,
            &amz_date,
            expires,
        );
        let headers = vec![
            ("host".to_string(), host.to_string()),
            ("upgrade".to_string(), "websocket".to_string()),
            ("connection".to_string(), "Upgrade".to_string()),
            ("sec-websocket-version".to_string(), "13".to_string()),
        ];
        let text = render("GET", "/", &query, &headers, b"");
        check_or_write("sigv4_presigned", name, &text);
    }
    for (name, data) in seeds("sigv4_presigned") {
        let owned = OwnedRequest::parse(&data);
        let v = verify_presigned(
            &owned.as_request(),
            &Secrets,
            now(),
            &VerifyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.access_key_id, ACCESS_KEY_ID, "{name}");
    }
}

/// Each body is accepted by the operation its file is named after: `<operation>[.variant].json`,
/// the operation being its path without the leading `/` (data plane: `v1-get-ice-server-config`).
#[test]
fn rest_json_seeds_decode() {
    let mut control_ops = 0;
    let mut data_ops = 0;
    for (name, body) in seeds("rest_json") {
        let op = name.split('.').next().unwrap();
        if let Some(op) = Operation::from_path(&format!("/{op}")) {
            if let Err(e) = control::decode(op, &body) {
                panic!("{name}: {} {}", e.code, e.message);
            }
            control_ops += 1;
            continue;
        }
        let result =
            match data_plane::Operation::from_path(&format!("/{}", op.replacen('-', "/", 1))) {
                Some(data_plane::Operation::GetIceServerConfig) => {
                    data_plane::decode_get_ice_server_config(&body).map(drop)
                }
                Some(data_plane::Operation::SendAlexaOfferToMaster) => {
                    data_plane::decode_send_alexa_offer_to_master(&body).map(drop)
                }
                Some(data_plane::Operation::JoinStorageSession) => {
                    kvs_signaling::storage::api::decode(&body, false).map(drop)
                }
                Some(data_plane::Operation::JoinStorageSessionAsViewer) => {
                    kvs_signaling::storage::api::decode(&body, true).map(drop)
                }
                None => panic!("{name}: no operation {op}"),
            };
        if let Err(e) = result {
            panic!("{name}: {} {}", e.code, e.message);
        }
        data_ops += 1;
    }
    assert!(
        control_ops >= 9 && data_ops >= 4,
        "{control_ops} {data_ops}"
    );
}

#[test]
fn ws_message_seeds_parse() {
    for (name, data) in seeds("ws_message") {
        let text = String::from_utf8(data).unwrap();
        if let Err(e) = ClientMessage::parse(&text) {
            panic!("{name}: {}", e.description);
        }
    }
}

//! AWS's SigV4 test suite (the `aws-signing-test-suite/v4` that the `aws-sigv4` crate ships,
//! Apache-2.0, a dev-dependency so its source is always at hand): every header-signed and
//! query-signed request must verify at its timestamp with its credentials, and fail with another
//! secret. The suite is read from where cargo unpacked that crate, not copied into this repo.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use kvs_sigv4::{verify_header, verify_presigned, HttpRequest, SecretLookup, VerifyOptions};

struct Secret(String);

impl SecretLookup for Secret {
    fn secret_for(&self, ak: &str) -> Option<String> {
        (ak == "AKIDEXAMPLE").then(|| self.0.clone())
    }
}

struct Parsed {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses the suite's `*-signed-request.txt` (a request line, `Name:value` headers where a line
/// starting with whitespace continues the previous value, a blank line, the body).
fn parse(text: &str) -> Parsed {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let method = request_line.split(' ').next().unwrap().to_string();
    let target = request_line[method.len() + 1..request_line.rfind(' ').unwrap()].to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(line);
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Parsed {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// Cases whose signature covers a *normalised* path (dot segments and duplicate slashes
/// resolved by the client before signing) while the request line carries the raw one. SDKs send
/// the normalised path, so the server never sees these; we verify the path as received.
const UNNORMALISED: &[&str] = &[
    "get-relative-normalized",
    "get-relative-relative-normalized",
    "get-slash-dot-slash-normalized",
    "get-slash-pointless-dot-normalized",
    "get-slashes-normalized",
    "get-slash-normalized",
    "get-space-normalized",
    "get-relative-unnormalized",
    "get-relative-relative-unnormalized",
    "get-slash-dot-slash-unnormalized",
    "get-slash-pointless-dot-unnormalized",
    "get-slashes-unnormalized",
    "get-slash-unnormalized",
    "get-space-unnormalized",
    "double-encode-path",
    "double-url-encode",
];

/// The session token is appended to the query *after* signing. KVS requires the token to be
/// covered by the presigned signature (docs/protocol.md §7.2), so this one must be refused.
const TOKEN_UNSIGNED: &str = "post-sts-header-after";

/// `aws-signing-test-suite/v4` inside the `aws-sigv4` package, found through `cargo metadata`.
fn suite_dir() -> std::path::PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "aws-sigv4")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("aws-sigv4 in the dependency graph");
    Path::new(manifest)
        .parent()
        .unwrap()
        .join("aws-signing-test-suite/v4")
}

#[test]
fn every_suite_request_verifies() {
    let root = suite_dir();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let Ok(ctx) = std::fs::read_to_string(dir.join("context.json")) else {
            continue;
        };
        let ctx: serde_json::Value = serde_json::from_str(&ctx).unwrap();
        let secret = ctx["credentials"]["secret_access_key"]
            .as_str()
            .unwrap()
            .to_string();
        let ts = ctx["timestamp"].as_str().unwrap();
        let amz = ts.replace(['-', ':'], "");
        let now = UNIX_EPOCH
            + Duration::from_secs(
                time::PrimitiveDateTime::parse(
                    &amz,
                    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
                )
                .unwrap()
                .assume_utc()
                .unix_timestamp() as u64,
            );
        let opts = VerifyOptions {
            service: ctx["service"].as_str().unwrap().to_string(),
            max_skew: Duration::from_secs(300),
            max_presign_expires: 604_800,
        };
        for (file, presigned) in [
            ("header-signed-request.txt", false),
            ("query-signed-request.txt", true),
        ] {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let p = parse(&text);
            let req = HttpRequest {
                method: &p.method,
                path: &p.path,
                query: &p.query,
                headers: &p.headers,
                body: &p.body,
            };
            let verify = |s: &Secret| {
                if presigned {
                    verify_presigned(&req, s, now, &opts)
                } else {
                    verify_header(&req, s, now, &opts)
                }
            };
            let good = verify(&Secret(secret.clone()));
            let bad = verify(&Secret("wrong".into()));
            if UNNORMALISED.contains(&name.as_str()) {
                continue;
            }
            if presigned && name == TOKEN_UNSIGNED {
                assert!(good.is_err(), "an unsigned session token must not verify");
                continue;
            }
            checked += 1;
            if let Err(e) = good {
                failures.push(format!("{name}/{file}: {e}"));
            }
            assert!(bad.is_err(), "{name}/{file} verified with the wrong secret");
        }
    }
    assert!(checked >= 40, "only {checked} suite requests checked");
    assert!(
        failures.is_empty(),
        "suite requests refused:\n{}",
        failures.join("\n")
    );
}

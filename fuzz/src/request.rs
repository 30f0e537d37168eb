//! The request text format of the SigV4 fuzz targets' inputs, and the one credential and clock
//! their seeds are signed with (docs/reliability.md, "Fuzzing"). Depends on kvs-sigv4 only:
//! crates/server/tests/fuzz_seeds.rs includes this file to check the committed seeds with it.
//!
//! An input is an HTTP/1.1 request as text, so seeds are readable and mutations stay meaningful:
//!
//! ```text
//! POST /describeSignalingChannel?a=b HTTP/1.1
//! host: kinesisvideo.us-west-2.amazonaws.com
//! x-amz-date: 20240501T120000Z
//!
//! {"ChannelName":"c"}
//! ```
//!
//! The head is split into lines at `\n` (a trailing `\r` is dropped), the first line into method
//! and target, the target into path and query at the first `?`, each further line into name and
//! value at the first `:`. The body is everything after the first empty line, as bytes. Nothing
//! is rejected: a line without `:` is a header with an empty value, invalid UTF-8 is replaced.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_sigv4::{HttpRequest, SecretLookup};

/// The access key the seeds are signed with (crates/server/tests/fuzz_seeds.rs signs them).
pub const ACCESS_KEY_ID: &str = "AKIDFUZZEXAMPLE";
/// Its secret.
pub const SECRET: &str = "fuzz/secret+key";
/// The seeds' signing time, 2024-05-01T12:00:00Z, used as "now" so they verify.
pub const NOW_SECS: u64 = 1_714_564_800;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// Knows [`ACCESS_KEY_ID`] only.
pub struct Secrets;

impl SecretLookup for Secrets {
    fn secret_for(&self, access_key_id: &str) -> Option<String> {
        (access_key_id == ACCESS_KEY_ID).then(|| SECRET.to_owned())
    }
}

/// A request parsed from the text format above, owning its parts.
#[derive(Debug, Default)]
pub struct OwnedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    pub fn parse(data: &[u8]) -> Self {
        let (head, body) = split_head(data);
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let mut words = first.splitn(3, ' ');
        let method = words.next().unwrap_or("").to_owned();
        let target = words.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                (k.to_owned(), v.trim_start().to_owned())
            })
            .collect();
        Self {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.to_vec(),
        }
    }

    pub fn as_request(&self) -> HttpRequest<'_> {
        HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Head and body, split at the first empty line (`\n\n` or `\n\r\n`).
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while let Some(off) = data[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = &data[nl + 1..];
        if rest.starts_with(b"\n") {
            return (&data[..nl], &rest[1..]);
        }
        if rest.starts_with(b"\r\n") {
            return (&data[..nl], &rest[2..]);
        }
        i = nl + 1;
    }
    (data, &[])
}

//! One record per API call, taken where every call passes (the dispatcher and the WebSocket
//! connect), handed to whatever watches calls: the per-operation metrics and the console's API
//! inspector. Handlers do not know they are observed.
//!
//! What a record may hold is decided here: the caller's access key id, never its secret or
//! signature; the channel named in the request, never a message payload.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;

/// One API call as the inspector shows it and the metrics count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub at: SystemTime,
    /// The account the call is shown to: the authenticated caller's, or (a call refused before
    /// its signature verified) the account its access key id belongs to, if any.
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    /// The AWS operation name (`DescribeSignalingChannel`, `ConnectAsViewer`, …), or `Unknown`.
    pub operation: &'static str,
    /// The channel the request names (`ChannelARN`, `ResourceARN` or `ChannelName`, as sent).
    pub channel: Option<String>,
    pub status: u16,
    /// `x-amzn-ErrorType` of the response, for a refused call.
    pub error_code: Option<String>,
    pub latency: Duration,
    pub request_id: Option<String>,
}

/// Something that watches API calls. Called on the request's task after the response is
/// built: it must not block (a bounded, in-memory update).
pub trait CallWatcher: Send + Sync {
    fn record(&self, call: &CallRecord);
}

/// Every watcher of the node.
#[derive(Default, Clone)]
pub struct Calls {
    watchers: Vec<Arc<dyn CallWatcher>>,
}

impl Calls {
    pub fn new(watchers: Vec<Arc<dyn CallWatcher>>) -> Self {
        Self { watchers }
    }

    pub fn record(&self, call: &CallRecord) {
        for w in &self.watchers {
            w.record(call);
        }
    }
}

/// What the dispatcher learns about a call as it goes, turned into a [`CallRecord`] once the
/// response exists.
#[derive(Debug, Default)]
pub struct CallContext {
    pub operation: Option<&'static str>,
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    pub channel: Option<String>,
    pub request_id: Option<String>,
}

impl CallContext {
    /// The channel a JSON request body names, if it parses (the handlers validate it; this is
    /// only for display and filtering).
    pub fn channel_from_body(&mut self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Named {
            #[serde(rename = "ChannelARN")]
            channel_arn: Option<String>,
            #[serde(rename = "ResourceARN")]
            resource_arn: Option<String>,
            channel_name: Option<String>,
        }
        if let Ok(n) = serde_json::from_slice::<Named>(body) {
            self.channel = n.channel_arn.or(n.resource_arn).or(n.channel_name);
        }
    }

    pub fn finish(
        self,
        at: SystemTime,
        latency: Duration,
        status: u16,
        headers: &HeaderMap,
    ) -> CallRecord {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        CallRecord {
            at,
            account: self.account,
            access_key_id: self.access_key_id,
            operation: self.operation.unwrap_or("Unknown"),
            channel: self.channel,
            status,
            error_code: header("x-amzn-errortype"),
            latency,
            request_id: self.request_id.or_else(|| header("x-amzn-requestid")),
        }
    }
}

/// The access key id a request claims, read without verifying anything: from the
/// `Authorization` header's `Credential=` or the presigned `X-Amz-Credential` parameter.
pub fn claimed_access_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .map(str::to_owned);
    from_header
        .or_else(|| {
            query
                .and_then(|q| kvs_sigv4::query_param(q, "X-Amz-Credential").ok().flatten())
                .and_then(|c| c.split('/').next().map(str::to_owned))
        })
        .filter(|k| !k.is_empty() && k.len() <= 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_from_body_prefers_the_arn() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                br#"{"ChannelARN":"arn:a","ChannelName":"n"}"#,
                Some("arn:a"),
            ),
            (br#"{"ResourceARN":"arn:r"}"#, Some("arn:r")),
            (br#"{"ChannelName":"n"}"#, Some("n")),
            (br#"{}"#, None),
            (b"not json", None),
        ];
        for (body, want) in cases {
            let mut c = CallContext::default();
            c.channel_from_body(body);
            assert_eq!(
                c.channel.as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn claimed_access_key_from_header_or_query() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(claimed_access_key(&h, None).as_deref(), Some("AKIDEXAMPLE"));
        let q = "X-Amz-Credential=AKIDQ%2F20261202%2Fus-west-2%2Fkinesisvideo%2Faws4_request";
        assert_eq!(
            claimed_access_key(&HeaderMap::new(), Some(q)).as_deref(),
            Some("AKIDQ")
        );
        assert_eq!(claimed_access_key(&HeaderMap::new(), None), None);
    }
}

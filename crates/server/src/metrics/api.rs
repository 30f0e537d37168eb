//! API calls by operation and outcome, and their latency: a [`CallWatcher`] fed one
//! [`CallRecord`] per call by the dispatcher (docs/metrics.md "API").
//!
//! `code` is the call's `x-amzn-ErrorType` (`ResourceNotFoundException`, …), `OK` for a call
//! that succeeded, and the bare HTTP status for a refusal that carries no AWS error type. Every
//! value is one the server itself wrote, so the label set stays bounded whatever clients send;
//! so does `operation` (the AWS operation names, `Unknown` otherwise).

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{declare, request_histogram, HistogramFamily, OperationLabel};
use crate::observe::{CallRecord, CallWatcher};

/// The `code` of a call that succeeded.
pub const OK: &str = "OK";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub code: Cow<'static, str>,
}

/// `kvs_api_requests_total{operation,code}` and `kvs_api_request_duration_seconds{operation}`.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: HistogramFamily<OperationLabel>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(request_histogram),
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        declare(
            registry,
            "kvs_api_requests",
            "API calls (control plane, HTTPS data plane, WebSocket connects) by operation and code: the x-amzn-ErrorType of a refusal, OK for a success",
            self.requests.clone(),
        );
        declare(
            registry,
            "kvs_api_request_duration_seconds",
            "Time from a call's arrival to its response (for a WebSocket connect, to the upgrade's answer), by operation",
            self.seconds.clone(),
        );
    }
}

/// The `code` label of a call.
pub fn code_of(call: &CallRecord) -> Cow<'static, str> {
    match &call.error_code {
        // AWS may append `:<url>` to the error type; the name is what comes before it.
        Some(code) => Cow::Owned(code.split(':').next().unwrap_or(code).to_owned()),
        None if call.status < 400 => Cow::Borrowed(OK),
        None => Cow::Owned(call.status.to_string()),
    }
}

impl CallWatcher for ApiMetrics {
    fn record(&self, call: &CallRecord) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: call.operation,
                code: code_of(call),
            })
            .inc();
        self.seconds
            .get_or_create(&OperationLabel {
                operation: call.operation,
            })
            .observe(call.latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn call(status: u16, error_code: Option<&str>, latency: Duration) -> CallRecord {
        CallRecord {
            at: SystemTime::now(),
            account: None,
            access_key_id: None,
            operation: "DescribeSignalingChannel",
            channel: None,
            status,
            error_code: error_code.map(str::to_owned),
            latency,
            request_id: None,
        }
    }

    #[test]
    fn codes_name_the_error_or_ok() {
        assert_eq!(code_of(&call(200, None, Duration::ZERO)), "OK");
        assert_eq!(code_of(&call(101, None, Duration::ZERO)), "OK");
        assert_eq!(
            code_of(&call(
                404,
                Some("ResourceNotFoundException"),
                Duration::ZERO
            )),
            "ResourceNotFoundException"
        );
        assert_eq!(
            code_of(&call(
                400,
                Some("InvalidArgumentException:http://x/"),
                Duration::ZERO
            )),
            "InvalidArgumentException"
        );
        assert_eq!(code_of(&call(413, None, Duration::ZERO)), "413");
    }

    #[test]
    fn calls_are_counted_and_timed_by_operation() {
        let api = ApiMetrics::new();
        let mut registry = Registry::default();
        api.register(&mut registry);
        api.record(&call(200, None, Duration::from_micros(300)));
        api.record(&call(200, None, Duration::from_millis(20)));
        api.record(&call(
            404,
            Some("ResourceNotFoundException"),
            Duration::from_millis(2),
        ));
        let text = super::super::render(&registry);
        for line in [
            r#"kvs_api_requests_total{operation="DescribeSignalingChannel",code="OK"} 2"#,
            r#"kvs_api_requests_total{operation="DescribeSignalingChannel",code="ResourceNotFoundException"} 1"#,
            r#"kvs_api_request_duration_seconds_bucket{operation="DescribeSignalingChannel",le="0.0005"} 1"#,
            r#"kvs_api_request_duration_seconds_bucket{operation="DescribeSignalingChannel",le="0.0025"} 2"#,
            r#"kvs_api_request_duration_seconds_bucket{operation="DescribeSignalingChannel",le="0.025"} 3"#,
            r#"kvs_api_request_duration_seconds_bucket{operation="DescribeSignalingChannel",le="+Inf"} 3"#,
            r#"kvs_api_request_duration_seconds_count{operation="DescribeSignalingChannel"} 3"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}

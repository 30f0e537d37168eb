//! `GET /metrics` of a server assembled by `App::build`, in-process (docs/metrics.md): API calls
//! counted by operation and code and timed, the store timed, and every metric the Grafana
//! dashboard (docs/grafana-dashboard.json) graphs present in a scrape of a fresh node.
#![allow(clippy::unwrap_used)]

mod inproc;

use std::collections::BTreeSet;

use inproc::Server;

/// The body of `GET /metrics` (the head checked: 200, the Prometheus text content type).
async fn scrape(s: &Server) -> String {
    let resp = s.http_get("/metrics").await;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body.to_owned()
}

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in /metrics:\n{text}"
    );
}

#[tokio::test]
async fn describe_calls_are_counted_by_code_and_timed() {
    let s = Server::start(&[]).await;
    let kv = s.kv();
    let missing = kv
        .describe_signaling_channel()
        .channel_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        missing.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
    kv.create_signaling_channel()
        .channel_name("cam")
        .send()
        .await
        .unwrap();
    kv.describe_signaling_channel()
        .channel_name("cam")
        .send()
        .await
        .unwrap();

    let text = scrape(&s).await;
    for line in [
        r#"kvs_api_requests_total{operation="DescribeSignalingChannel",code="ResourceNotFoundException"} 1"#,
        r#"kvs_api_requests_total{operation="DescribeSignalingChannel",code="OK"} 1"#,
        r#"kvs_api_requests_total{operation="CreateSignalingChannel",code="OK"} 1"#,
        r#"kvs_api_request_duration_seconds_count{operation="DescribeSignalingChannel"} 2"#,
        r#"kvs_api_request_duration_seconds_bucket{operation="DescribeSignalingChannel",le="+Inf"} 2"#,
        r#"kvs_api_request_duration_seconds_count{operation="CreateSignalingChannel"} 1"#,
        r#"kvs_store_operation_duration_seconds_count{operation="insert"} 1"#,
        "# TYPE kvs_api_requests_total counter",
        "# TYPE kvs_api_request_duration_seconds histogram",
    ] {
        has_line(&text, line);
    }
    // The old unlabelled names are all still there, with their values.
    assert_eq!(s.metric("kvs_signaling_masters_connected").await, 0);
    assert_eq!(s.metric("kvs_api_requests_throttled_total").await, 0);
    s.shutdown().await;
}

#[tokio::test]
async fn websocket_connects_are_calls_too() {
    let s = Server::start(&[]).await;
    let arn = s
        .kv()
        .create_signaling_channel()
        .channel_name("ws")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let ws = s.connect_ws(&arn, None).await;
    let text = scrape(&s).await;
    has_line(
        &text,
        r#"kvs_api_requests_total{operation="ConnectAsMaster",code="OK"} 1"#,
    );
    has_line(
        &text,
        r#"kvs_api_request_duration_seconds_count{operation="ConnectAsMaster"} 1"#,
    );
    has_line(&text, "kvs_signaling_masters_connected 1");
    has_line(
        &text,
        r#"kvs_signaling_messages_total{outcome="relayed"} 0"#,
    );
    drop(ws);
    s.shutdown().await;
}

/// The names a scrape exposes: every family's `# TYPE` name, and a histogram's sample names.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        out.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{suffix}"));
            }
        }
    }
    out
}

/// Every `kvs_…` metric name in the dashboard's queries and variables.
fn dashboard_names(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::String(s) => {
            let bytes = s.as_bytes();
            let mut i = 0;
            while let Some(at) = s[i..].find("kvs_") {
                let start = i + at;
                let end = start
                    + s[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(s.len() - start);
                // Only a whole identifier: not a label value like `kvs-signaling`.
                if start == 0
                    || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')
                {
                    out.insert(s[start..end].to_owned());
                }
                i = end;
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_names(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| dashboard_names(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_graphs_only_metrics_a_node_exposes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // A Prometheus datasource variable that every panel uses.
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(vars
        .iter()
        .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"));
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{}",
            p["title"]
        );
    }

    let mut wanted = BTreeSet::new();
    dashboard_names(&dashboard, &mut wanted);
    assert!(wanted.len() >= 20, "{wanted:?}");
    let s = Server::start(&[]).await;
    let have = exposed(&scrape(&s).await);
    let missing: Vec<_> = wanted.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the dashboard graphs {missing:?}, which /metrics does not expose"
    );
    s.shutdown().await;
}

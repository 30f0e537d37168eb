//! Connections and what is refused before or around the handlers, over real sockets against
//! the in-process server: the header, body and keep-alive timeouts, the refusals hyper's
//! parser would answer without a body, the connection caps with their shed slots
//! (docs/behaviour.md "Connections" and "Errors"), and the API quotas (docs/protocol.md §8.1).
//!
//! The timeouts are tokio timers on the sockets, not the injected clock: the tests use small
//! flag values and check that each close comes no earlier than its timeout and within a
//! generous bound ([`raw::BOUND`]). The quota buckets read the injected clock, which the tests
//! step.
#![allow(clippy::unwrap_used)]

mod inproc;
mod raw;

use std::time::Duration;

use inproc::Server;
use raw::{assert_aws_error, call, connect, exchange, post, read_response, read_until_closed};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// `GET /health` on a new connection answers 200: the server is still serving after whatever
/// the test did to another connection.
async fn assert_healthy(s: &Server, after: &str) {
    let resp = call(s.port, HEALTH).await;
    assert_eq!(resp.status, 200, "/health after {after}: {resp}");
}

// ---- timeouts (docs/behaviour.md "Connections": Headers, Body, Keep-alive) ----

#[tokio::test]
async fn headers_that_do_not_arrive_within_the_header_timeout_end_the_connection() {
    let s = Server::start(&["--header-timeout", "1s"]).await;
    // (case, bytes sent, the refusal expected before the close)
    let cases: [(&str, &[u8], Option<u16>); 2] = [
        // Nobody asked anything: closed silently.
        ("nothing sent", b"", None),
        // Part of a request arrived: a 408 says why it is cut off.
        (
            "a head without its end",
            b"GET /health HTTP/1.1\r\nHost: x\r\n",
            Some(408),
        ),
    ];
    for (case, bytes, refusal) in cases {
        let since = Instant::now();
        let mut tcp = connect(s.port).await;
        tcp.write_all(bytes).await.unwrap();
        let closed = read_until_closed(&mut tcp, since).await;
        assert!(
            closed.after >= Duration::from_secs(1),
            "{case}: closed after {:?}, before --header-timeout",
            closed.after
        );
        assert!(!closed.reset, "{case}: a reset instead of an end of stream");
        match refusal {
            None => assert!(
                closed.bytes.is_empty(),
                "{case}: bytes before the close: {:?}",
                String::from_utf8_lossy(&closed.bytes)
            ),
            Some(status) => {
                let resp = closed.response();
                assert_aws_error(&resp, status, "RequestTimeoutException");
                assert!(resp.closes(), "{case}: no connection: close: {resp}");
            }
        }
    }
    assert_healthy(&s, "the header timeouts").await;
}

/// The first request's headers are due within `--header-timeout` of the accept, however late
/// their first byte comes (docs/behaviour.md "Connections": "of the accept, or of their first
/// byte on a kept-alive connection"): a client cannot buy time by waiting before it starts.
#[tokio::test]
async fn the_first_requests_header_deadline_runs_from_the_accept() {
    let s = Server::start(&["--header-timeout", "3s"]).await;
    let since = Instant::now();
    let mut tcp = connect(s.port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let closed = read_until_closed(&mut tcp, since).await;
    assert_aws_error(&closed.response(), 408, "RequestTimeoutException");
    assert!(
        closed.after >= Duration::from_secs(3),
        "closed after {:?}",
        closed.after
    );
    // Counted from the first byte, the deadline would be 2 s + 3 s after the connect.
    assert!(
        closed.after < Duration::from_millis(4500),
        "closed after {:?}: the deadline moved with the first byte",
        closed.after
    );
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_header_timeout_until_the_keepalive_timeout() {
    let s = Server::start(&["--header-timeout", "1s", "--keepalive-timeout", "3s"]).await;
    let mut tcp = connect(s.port).await;
    tcp.write_all(HEALTH).await.unwrap();
    let first = read_response(&mut tcp).await;
    assert_eq!(first.status, 200, "{first}");
    assert!(!first.closes(), "{first}");

    // Idle past --header-timeout: still open, and the next request is served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = Instant::now();
    tcp.write_all(HEALTH).await.unwrap();
    let second = read_response(&mut tcp).await;
    assert_eq!(second.status, 200, "{second}");

    // Then closed, silently, once idle for --keepalive-timeout.
    let closed = read_until_closed(&mut tcp, since).await;
    assert!(
        closed.bytes.is_empty(),
        "bytes before the close: {:?}",
        String::from_utf8_lossy(&closed.bytes)
    );
    assert!(!closed.reset, "a reset instead of an end of stream");
    assert!(
        closed.after >= Duration::from_secs(3),
        "closed after {:?}, before --keepalive-timeout",
        closed.after
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_body_timeout_gets_408_and_a_close() {
    let s = Server::start(&["--body-timeout", "1s"]).await;
    let since = Instant::now();
    let mut tcp = connect(s.port).await;
    tcp.write_all(
        b"POST /describeSignalingChannel HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"C",
    )
    .await
    .unwrap();
    let closed = read_until_closed(&mut tcp, since).await;
    let resp = closed.response();
    assert_aws_error(&resp, 408, "RequestTimeoutException");
    assert!(resp.closes(), "no connection: close: {resp}");
    assert!(
        closed.after >= Duration::from_secs(1),
        "answered after {:?}, before --body-timeout",
        closed.after
    );
    assert_healthy(&s, "the body timeout").await;
}

// ---- refusals before any handler (docs/behaviour.md "Errors", the refusal table) ----

#[tokio::test]
async fn requests_refused_before_any_handler_get_aws_errors_and_a_close() {
    let s = Server::start(&[]).await;
    let mut many_headers = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..300 {
        many_headers.push_str(&format!("X-Header-{i}: {i}\r\n"));
    }
    many_headers.push_str("\r\n");
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(100 * 1024)
    );
    let mut big_body = format!(
        "POST /describeSignalingChannel HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    )
    .into_bytes();
    big_body.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    // (case, request, status, x-amzn-ErrorType)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "300 headers",
            many_headers.into_bytes(),
            431,
            "RequestHeaderFieldsTooLargeException",
        ),
        (
            "one 100 KiB header",
            huge_header.into_bytes(),
            431,
            "RequestHeaderFieldsTooLargeException",
        ),
        // A URI long enough for hyper's own 414 does not fit in the 64 KiB head.
        (
            "a 70 KiB URI",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(70 * 1024)).into_bytes(),
            431,
            "RequestHeaderFieldsTooLargeException",
        ),
        (
            "a garbage request line",
            b"THIS IS NOT HTTP\r\n\r\n".to_vec(),
            400,
            "InvalidArgumentException",
        ),
        (
            "a header line without a colon",
            b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
            400,
            "InvalidArgumentException",
        ),
        (
            "a 2 MiB body",
            big_body,
            413,
            "RequestEntityTooLargeException",
        ),
    ];
    for (case, request, status, code) in cases {
        let closed = exchange(connect(s.port).await, request).await;
        let resp = closed.response();
        assert_aws_error(&resp, status, code);
        assert!(resp.closes(), "{case}: no connection: close: {resp}");
        assert_healthy(&s, case).await;
    }
}

// ---- connection caps (docs/behaviour.md "Connections": Caps) ----

/// The probes a shed connection still answers.
const PROBES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Over a cap: each probe answers 200 on a connection of its own, and an API call gets the
/// cap's refusal and a close.
async fn assert_shed(s: &Server, status: u16, code: &str) {
    for probe in PROBES {
        let req = format!("GET {probe} HTTP/1.1\r\nHost: x\r\n\r\n");
        let closed = exchange(connect(s.port).await, req.into_bytes()).await;
        let resp = closed.response();
        assert_eq!(resp.status, 200, "{probe} over the cap: {resp}");
    }
    let closed = exchange(connect(s.port).await, post("/listSignalingChannels", "{}")).await;
    let resp = closed.response();
    assert_aws_error(&resp, status, code);
    assert!(resp.closes(), "no connection: close: {resp}");
}

/// Retries a ListSignalingChannels on new connections until it is served: a closed
/// connection's slot comes back once the server has seen the close, which takes a moment.
async fn assert_served_again(s: &Server) {
    let deadline = Instant::now() + raw::BOUND;
    loop {
        let resp = call(s.port, &post("/listSignalingChannels", "{}")).await;
        if resp.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never served again: {resp}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn over_the_per_address_cap_probes_are_answered_and_api_calls_refused() {
    let s = Server::start(&["--max-connections-per-ip", "3"]).await;
    // Three idle connections; the server takes connections in order, so they are counted
    // before any of the ones below.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(s.port).await);
    }
    assert_shed(&s, 400, "ClientLimitExceededException").await;
    drop(held.pop());
    assert_served_again(&s).await;
}

#[tokio::test]
async fn over_the_node_cap_api_calls_get_503_and_probes_200() {
    let s = Server::start(&["--max-connections", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect(s.port).await);
    }
    assert_shed(&s, 503, "ServiceUnavailableException").await;
    drop(held.pop());
    assert_served_again(&s).await;
}

/// With all 32 shed slots taken (by connections that send nothing), a newcomer takes the
/// oldest slot: the oldest is closed at once, silently, and the newcomer's probe is answered,
/// so a flood of silent connections cannot keep a health check out.
#[tokio::test]
async fn a_newcomer_takes_the_oldest_shed_slot() {
    let s = Server::start(&["--max-connections", "1"]).await;
    let _served = connect(s.port).await;
    let mut shed = Vec::new();
    for _ in 0..32 {
        shed.push(connect(s.port).await);
    }
    let since = Instant::now();
    let mut probe = connect(s.port).await;
    // The oldest shed connection is closed without a word, long before its 2 s are up.
    let oldest = read_until_closed(&mut shed[0], since).await;
    assert!(oldest.bytes.is_empty(), "{:?}", oldest.bytes);
    assert!(
        since.elapsed() < Duration::from_millis(1500),
        "closed by the newcomer, not by the shed header timeout: {:?}",
        since.elapsed()
    );
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_until_closed(&mut probe, since).await.response();
    assert_eq!(resp.status, 200, "{resp}");
    assert!(
        resp.closes(),
        "a shed connection closes after one answer: {resp}"
    );
}

// ---- API quotas (docs/protocol.md §8.1, docs/behaviour.md "Errors") ----

const THROTTLED: &str = "Kinesis Video Streams has throttled the request because you have \
                         exceeded the limit of allowed client calls. Try making the call later.";

async fn create_channel(s: &Server, name: &str) -> String {
    s.kv()
        .create_signaling_channel()
        .channel_name(name)
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap()
}

async fn describe(s: &Server, name: &str) -> raw::Response {
    let body = json!({ "ChannelName": name }).to_string();
    call(s.port, &post("/describeSignalingChannel", &body)).await
}

/// `n` DescribeSignalingChannel calls on `name` pass.
async fn assert_describes_pass(s: &Server, name: &str, n: usize) {
    for i in 0..n {
        let resp = describe(s, name).await;
        assert_eq!(
            resp.status,
            200,
            "describe {} of {n} on {name}: {resp}",
            i + 1
        );
    }
}

async fn assert_describe_throttled(s: &Server, name: &str) {
    let resp = describe(s, name).await;
    let message = assert_aws_error(&resp, 400, "ClientLimitExceededException");
    assert_eq!(
        message,
        format!("{THROTTLED} (DescribeSignalingChannel per channel)")
    );
}

#[tokio::test]
async fn aws_quotas_allow_five_describes_per_channel_per_second_of_the_clock() {
    let s = Server::start(&["--quotas", "aws"]).await;
    create_channel(&s, "quota-a").await;
    create_channel(&s, "quota-b").await;
    assert_describes_pass(&s, "quota-a", 5).await;
    assert_describe_throttled(&s, "quota-a").await;
    // Another channel has a bucket of its own.
    assert_describes_pass(&s, "quota-b", 1).await;
    // The buckets refill on the server's clock: a second later, five more.
    s.advance(Duration::from_secs(1));
    assert_describes_pass(&s, "quota-a", 5).await;
    assert_describe_throttled(&s, "quota-a").await;
}

/// A channel has one bucket whether it is named by name or by ARN (docs/protocol.md §8.1: 5 per
/// second per channel).
#[tokio::test]
async fn describes_by_name_and_by_arn_share_the_channels_bucket() {
    let s = Server::start(&["--quotas", "aws"]).await;
    let arn = create_channel(&s, "quota-c").await;
    assert_describes_pass(&s, "quota-c", 3).await;
    let by_arn = json!({ "ChannelARN": arn }).to_string();
    for _ in 0..2 {
        let resp = call(s.port, &post("/describeSignalingChannel", &by_arn)).await;
        assert_eq!(resp.status, 200, "{resp}");
    }
    let resp = call(s.port, &post("/describeSignalingChannel", &by_arn)).await;
    assert_aws_error(&resp, 400, "ClientLimitExceededException");
    assert_describe_throttled(&s, "quota-c").await;
}

#[tokio::test]
async fn quota_overrides_and_the_default_of_none() {
    // (flags, describes allowed in a row on one channel, whether the next one is refused)
    let cases: [(&[&str], usize, bool); 2] = [
        (&["--quota", "channel.DescribeSignalingChannel=1"], 1, true),
        (&[], 50, false),
    ];
    for (flags, allowed, limited) in cases {
        let s = Server::start(flags).await;
        create_channel(&s, "quota").await;
        assert_describes_pass(&s, "quota", allowed).await;
        if limited {
            assert_describe_throttled(&s, "quota").await;
        }
        s.shutdown().await;
    }
}

#[tokio::test]
async fn connect_as_master_over_its_quota_is_refused_before_the_upgrade() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let s = Server::start(&["--quotas", "aws"]).await;
    let arn = create_channel(&s, "quota-connect").await;
    // Three per second per channel; each new master replaces the one before.
    let mut masters = Vec::new();
    for _ in 0..3 {
        masters.push(s.connect_ws(&arn, None).await);
    }
    match tokio_tungstenite::connect_async(s.ws_url(&arn, None)).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok());
            assert_eq!(
                header("x-amzn-ErrorType"),
                Some("ClientLimitExceededException")
            );
            assert!(header("x-amzn-RequestId").is_some_and(|v| !v.is_empty()));
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["__type"], "ClientLimitExceededException");
            assert_eq!(
                body["Message"],
                format!("{THROTTLED} (ConnectAsMaster per channel)")
            );
        }
        Ok(_) => panic!("the fourth ConnectAsMaster within a second was upgraded"),
        Err(e) => panic!("unexpected error {e}"),
    }
    // Viewers count in a bucket of their own.
    let _viewer = s.connect_ws(&arn, Some("viewer")).await;
    s.advance(Duration::from_secs(1));
    let _master = s.connect_ws(&arn, None).await;
}

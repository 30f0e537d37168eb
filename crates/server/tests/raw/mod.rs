//! Byte-level clients for the connection tests: HTTP/1.1 written and read by hand over a
//! `TcpStream` (partial heads, oversized heads, bodies that never finish), and a minimal
//! WebSocket client that writes frames as bytes (invalid UTF-8, unmasked frames, reserved
//! bits), which tungstenite refuses to send.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The longest any single step of these tests may take before it is a failure.
pub const BOUND: Duration = Duration::from_secs(10);

pub async fn connect(port: u16) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// One HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (any case); panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        assert!(
            found.next().is_none(),
            "header {name} appears twice: {self}"
        );
        first
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self}"))
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, {
            let body = String::from_utf8_lossy(&self.body);
            body.chars().take(400).collect::<String>()
        })
    }
}

/// The response at the start of `bytes` and how many bytes it took, once it is complete
/// (`Content-Length` framing; every answer of this server has one).
pub fn parse_response(bytes: &[u8]) -> Option<(Response, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end - 4]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "status line {status_line:?}"
    );
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    if bytes.len() < head_end + len {
        return None;
    }
    let body = bytes[head_end..head_end + len].to_vec();
    Some((
        Response {
            status,
            headers,
            body,
        },
        head_end + len,
    ))
}

/// Reads one response without waiting for the connection to close (keep-alive).
pub async fn read_response(tcp: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some((resp, used)) = parse_response(&buf) {
                assert_eq!(used, buf.len(), "bytes after the response");
                return resp;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("no response within the bound")
}

/// What a connection sent until the server closed it.
#[derive(Debug)]
pub struct Closed {
    pub bytes: Vec<u8>,
    /// From the `since` given to [`read_until_closed`] to the end of the stream.
    pub after: Duration,
    /// The stream ended with a reset rather than a FIN (the server closed with bytes of ours
    /// still unread, e.g. the rest of a refused body).
    pub reset: bool,
}

impl Closed {
    /// The one response the server sent before closing.
    pub fn response(&self) -> Response {
        let (resp, used) = parse_response(&self.bytes).unwrap_or_else(|| {
            panic!(
                "no complete response before the close: {:?}",
                String::from_utf8_lossy(&self.bytes)
            )
        });
        assert_eq!(
            used,
            self.bytes.len(),
            "bytes after the response: {:?}",
            String::from_utf8_lossy(&self.bytes)
        );
        resp
    }
}

/// Reads until the server closes the connection (EOF or reset); panics if that takes more than
/// [`BOUND`] after `since`.
pub async fn read_until_closed(tcp: &mut TcpStream, since: Instant) -> Closed {
    let mut bytes = Vec::new();
    let read = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) => return false,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) => panic!("reading: {e}"),
            }
        }
    };
    let reset = tokio::time::timeout_at(since + BOUND, read)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server did not close the connection within {BOUND:?}; it sent {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
    Closed {
        after: since.elapsed(),
        bytes,
        reset,
    }
}

/// Writes `bytes` and reads until the server closes, both at once: a server that refuses a
/// large request answers and closes before all of it is written, and a write that then fails
/// is part of the expected outcome.
pub async fn exchange(tcp: TcpStream, bytes: Vec<u8>) -> Closed {
    let since = Instant::now();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        // Keep the write half open: dropping it would send a FIN.
        wr
    });
    let mut bytes = Vec::new();
    let read = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return false,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) => panic!("reading: {e}"),
            }
        }
    };
    let reset = tokio::time::timeout(BOUND, read).await.unwrap_or_else(|_| {
        panic!(
            "the server did not close the connection within {BOUND:?}; it sent {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    writer.abort();
    Closed {
        after: since.elapsed(),
        bytes,
        reset,
    }
}

/// A request with a JSON body, kept alive.
pub fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `request` on a new connection and reads the response.
pub async fn call(port: u16, request: &[u8]) -> Response {
    let mut tcp = connect(port).await;
    tcp.write_all(request).await.unwrap();
    read_response(&mut tcp).await
}

/// An error in AWS's format (docs/behaviour.md "Errors"): the status, `x-amzn-ErrorType`,
/// a request id, a date, a JSON body whose `__type` is the code and which carries the message
/// under `Message` and `message`. Returns the message.
pub fn assert_aws_error(resp: &Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status, status, "status of {code}: {resp}");
    assert_eq!(resp.header("x-amzn-ErrorType"), Some(code), "{resp}");
    assert!(
        resp.header("x-amzn-RequestId")
            .is_some_and(|v| !v.is_empty()),
        "x-amzn-RequestId: {resp}"
    );
    assert!(resp.header("date").is_some(), "Date: {resp}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{resp}"
    );
    let json = resp.json();
    assert_eq!(json["__type"], code, "{resp}");
    let message = json["Message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "Message: {resp}");
    assert_eq!(json["message"], message.as_str(), "message: {resp}");
    message
}

/// A WebSocket client that writes and reads frames as bytes.
pub struct RawWs {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

/// One frame from the server.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// How a WebSocket connection ended, seen from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEnd {
    /// A close frame: code and reason.
    Close(u16, String),
    /// The stream ended without one.
    Gone,
}

impl RawWs {
    /// Opens `path_and_query` (e.g. `/?X-Amz-ChannelARN=...`) and completes the upgrade.
    pub async fn open(port: u16, path_and_query: &str) -> Self {
        Self::upgrade(connect(port).await, path_and_query).await
    }

    /// The upgrade on an already connected socket (one with a small receive buffer, say).
    pub async fn upgrade(mut tcp: TcpStream, path_and_query: &str) -> Self {
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        // Byte by byte: whatever follows the head is frames, left in the socket.
        let mut head = Vec::new();
        let read = async {
            while !head.ends_with(b"\r\n\r\n") {
                let b = tcp.read_u8().await.unwrap();
                head.push(b);
            }
        };
        tokio::time::timeout(BOUND, read)
            .await
            .expect("no upgrade response");
        let text = String::from_utf8_lossy(&head);
        assert!(text.starts_with("HTTP/1.1 101 "), "upgrade refused: {text}");
        Self {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Writes one frame: `first` is the first byte (FIN, RSV bits, opcode); client frames are
    /// masked unless `masked` is false.
    pub async fn send_frame(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut out = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        // The server may close before it has read all of it; what it answers is read next.
        let _ = self.tcp.write_all(&out).await;
    }

    /// The next frame, or `None` when the stream ended (EOF or reset).
    pub async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match self.tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until the connection ends (text frames are skipped); panics after
    /// [`BOUND`]. Returns how it ended and the text frames read on the way.
    pub async fn until_end(&mut self) -> (WsEnd, Vec<String>) {
        let mut texts = Vec::new();
        let read = async {
            loop {
                match self.read_frame().await {
                    None => return WsEnd::Gone,
                    Some(f) if f.opcode == 0x8 => {
                        let code = f
                            .payload
                            .get(..2)
                            .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                        let reason =
                            String::from_utf8(f.payload.get(2..).unwrap_or_default().to_vec())
                                .expect("close reason is UTF-8");
                        return WsEnd::Close(code, reason);
                    }
                    Some(f) if f.opcode == 0x1 => {
                        texts.push(String::from_utf8(f.payload).expect("text frame is UTF-8"))
                    }
                    Some(_) => {}
                }
            }
        };
        let end = tokio::time::timeout(BOUND, read)
            .await
            .expect("the server did not end the WebSocket within the bound");
        (end, texts)
    }

    /// After a close frame: the server closes the TCP connection too.
    pub async fn expect_eof(&mut self) {
        let read = async {
            let mut chunk = [0u8; 1024];
            loop {
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(BOUND, read)
            .await
            .expect("the server kept the TCP connection open after its close frame");
    }
}

/// One unmasked server frame at the start of `buf`, and its length in bytes.
fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, at) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().unwrap();
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        },
        at + len,
    ))
}

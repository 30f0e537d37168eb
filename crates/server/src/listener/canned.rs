//! Raw HTTP/1.1 refusals in AWS's error format (docs/behaviour.md "Refusals"), for the places
//! where no handler runs: a connection over a cap, a request whose headers never finish, and
//! the automatic answers hyper writes for requests it cannot parse (which carry no body and no
//! `x-amzn-ErrorType`). Each is a whole response ending in `Connection: close`.

use crate::aws::request_id;

/// One refusal: status, AWS error type, message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

pub const HEADER_TIMEOUT: Refusal = Refusal {
    status: 408,
    reason: "Request Timeout",
    code: "RequestTimeoutException",
    message: "The request's headers did not arrive in time.",
};

pub const NODE_FULL: Refusal = Refusal {
    status: 503,
    reason: "Service Unavailable",
    code: "ServiceUnavailableException",
    message: "The server has too many connections open; retry later.",
};

pub const SOURCE_FULL: Refusal = Refusal {
    status: 400,
    reason: "Bad Request",
    code: "ClientLimitExceededException",
    message: "Too many connections from this address; close some and retry.",
};

const HEADERS_TOO_LARGE: Refusal = Refusal {
    status: 431,
    reason: "Request Header Fields Too Large",
    code: "RequestHeaderFieldsTooLargeException",
    message: "The request's headers are too many or too large.",
};

const URI_TOO_LONG: Refusal = Refusal {
    status: 414,
    reason: "URI Too Long",
    code: "RequestUriTooLongException",
    message: "The request's URI is too long.",
};

const MALFORMED: Refusal = Refusal {
    status: 400,
    reason: "Bad Request",
    code: "InvalidArgumentException",
    message: "The request is not valid HTTP/1.1.",
};

impl Refusal {
    /// The refusal that replaces hyper's automatic answer with this status.
    pub fn for_parse_error(status: u16) -> Self {
        match status {
            431 => HEADERS_TOO_LARGE,
            414 => URI_TOO_LONG,
            _ => Refusal {
                status,
                ..MALFORMED
            },
        }
    }

    /// The whole response, with a fresh request id.
    pub fn to_bytes(self) -> Vec<u8> {
        let body = serde_json::json!({
            "__type": self.code,
            "Message": self.message,
            "message": self.message,
        })
        .to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nx-amzn-ErrorType: {}\r\n\
             x-amzn-RequestId: {}\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n{}",
            self.status,
            self.reason,
            self.code,
            request_id::new_id(),
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            body
        )
        .into_bytes()
    }
}

/// The status of hyper's automatic error answer, if `head` is one: it is written before any
/// request reached a handler, starts with the status line and declares an empty body.
pub fn automatic_error_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let status = std::str::from_utf8(rest.get(2..5)?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    (400..600).contains(&status).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_are_recognised() {
        for (head, want) in [
            (
                &b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"[..],
                Some(431),
            ),
            (b"HTTP/1.1 400 Bad Request\r\n\r\n", Some(400)),
            (b"HTTP/1.0 414 URI Too Long\r\n\r\n", Some(414)),
            (b"HTTP/1.1 200 OK\r\n\r\n", None),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", None),
            (b"garbage", None),
            (b"", None),
        ] {
            assert_eq!(
                automatic_error_status(head),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn refusals_are_in_aws_format() {
        let text = String::from_utf8(Refusal::for_parse_error(431).to_bytes()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\nx-amzn-ErrorType: RequestHeaderFieldsTooLargeException\r\n"));
        assert!(head.contains("\r\nx-amzn-RequestId: "));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["__type"], "RequestHeaderFieldsTooLargeException");
        assert_eq!(
            Refusal::for_parse_error(400).code,
            "InvalidArgumentException"
        );
        assert_eq!(Refusal::for_parse_error(414).status, 414);
    }
}

//! JSON request bodies: an empty body is `{}` (docs/protocol.md §1), anything that is not a JSON
//! object of the expected member types is InvalidArgumentException naming the member.

use serde::de::DeserializeOwned;
use serde::Serialize;

use kvs_core::{Constraint, Violation};

use super::error::ApiError;

pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // One pass straight into the input type; only a failure looks closer, to say which of
    // "not JSON", "not an object" and "a member of the wrong type" it was.
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) if de.end().is_ok() => Ok(v),
        Ok(_) => Err(explain(body, None)),
        Err(e) => Err(explain(body, Some(e))),
    }
}

fn explain(body: &[u8], e: Option<serde_path_to_error::Error<serde_json::Error>>) -> ApiError {
    match (serde_json::from_slice::<serde_json::Value>(body), e) {
        (Err(syntax), _) => {
            ApiError::invalid(format!("The request body is not valid JSON: {syntax}"))
        }
        (Ok(v), _) if !v.is_object() => {
            ApiError::invalid("The request body must be a JSON object.")
        }
        (Ok(_), Some(e)) => {
            let path = e.path().to_string();
            let detail = e.into_inner().to_string();
            ApiError::from(Violation::new(path, Constraint::Type(detail)))
        }
        (Ok(_), None) => ApiError::invalid("The request body is not valid JSON."),
    }
}

/// Serialises an operation's output. Serialising our own structs cannot fail in practice; if it
/// ever did it is an internal failure, not a panic.
pub fn to_body<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "serialising a response failed");
        ApiError::internal()
    })
}

/// A required member that was absent (or JSON null).
pub fn required<T>(value: Option<T>, member: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| Violation::new(member, Constraint::Required).into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        name: Option<String>,
        n: Option<i64>,
    }

    #[test]
    fn empty_body_is_empty_object() {
        let v: In = parse_body(b"").unwrap();
        assert!(v.name.is_none());
        let v: In = parse_body(b"  \n").unwrap();
        assert!(v.n.is_none());
    }

    #[test]
    fn bad_json_and_types_are_invalid_argument() {
        for body in [
            &b"{"[..],
            b"[]",
            b"null",
            b"\"x\"",
            b"{\"Name\": 5}",
            b"{\"N\": \"5\"}",
            b"{\"N\": 1.5}",
        ] {
            let e = parse_body::<In>(body).unwrap_err();
            assert_eq!(e.code, "InvalidArgumentException", "{body:?}");
        }
        let e = parse_body::<In>(b"{\"N\": \"x\"}").unwrap_err();
        assert!(e.message.contains("'N'"), "{}", e.message);
    }

    #[test]
    fn required_names_the_member() {
        let e = required::<i32>(None, "ChannelARN").unwrap_err();
        assert!(e.message.contains("ChannelARN"));
    }
}

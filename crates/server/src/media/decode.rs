//! GetMedia's request (kinesis-video-media `GetMediaInput`): body bytes to a validated
//! [`GetMediaRequest`], as the model constrains it, with no service call. Member names in
//! messages are lowerCamelCase, as AWS's validation messages spell them.

use kvs_core::ids::ResourceArn;
use kvs_core::streams::service::StreamRef;
use kvs_core::streams::StreamName;
use kvs_core::{Constraint, Violation};
use serde::Deserialize;

use crate::aws::error::ApiError;
use crate::aws::json::{parse_body, required};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    start_selector: Option<SelectorInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SelectorInput {
    start_selector_type: Option<String>,
    after_fragment_number: Option<String>,
    /// Epoch seconds (the JSON protocol's timestamps).
    start_timestamp: Option<f64>,
    continuation_token: Option<String>,
}

pub const SELECTOR_TYPES: &[&str] = &[
    "FRAGMENT_NUMBER",
    "SERVER_TIMESTAMP",
    "PRODUCER_TIMESTAMP",
    "NOW",
    "EARLIEST",
    "CONTINUATION_TOKEN",
];

/// Where the response starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Now,
    Earliest,
    /// After this fragment (FRAGMENT_NUMBER, and CONTINUATION_TOKEN: a chunk's token is its
    /// fragment number, so resuming means "after it").
    After(u64),
    Producer(u64),
    Server(u64),
}

#[derive(Debug)]
pub struct GetMediaRequest {
    pub stream: StreamRef,
    pub start: Start,
}

fn check(
    member: &str,
    value: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    pattern: &'static str,
) -> Result<(), ApiError> {
    let got = value.chars().count();
    if got == 0 || got > max {
        return Err(Violation::new(member, Constraint::Length { min: 1, max, got }).into());
    }
    if !value.chars().all(ok) {
        return Err(Violation::new(member, Constraint::Pattern(pattern)).into());
    }
    Ok(())
}

fn millis(member: &str, seconds: Option<f64>, kind: &str) -> Result<u64, ApiError> {
    let s = seconds.ok_or_else(|| {
        ApiError::invalid(format!(
            "StartTimestamp is required when StartSelectorType is {kind}."
        ))
    })?;
    if !s.is_finite() || s < 0.0 {
        return Err(Violation::new(member, Constraint::Type("a timestamp".into())).into());
    }
    Ok((s * 1000.0).round() as u64)
}

pub fn decode(body: &[u8]) -> Result<GetMediaRequest, ApiError> {
    let input: Input = parse_body(body)?;
    let stream = match (input.stream_name, input.stream_arn) {
        (Some(name), None) => StreamRef::Name(StreamName::parse("streamName", &name)?),
        (None, Some(arn)) => StreamRef::Arn(ResourceArn::parse("streamARN", &arn)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Specify either StreamName or StreamARN, not both.",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Either StreamName or StreamARN must be specified.",
            ))
        }
    };
    let sel = required(input.start_selector, "startSelector")?;
    let kind = required(sel.start_selector_type, "startSelector.startSelectorType")?;
    if !SELECTOR_TYPES.contains(&kind.as_str()) {
        return Err(Violation::new(
            "startSelector.startSelectorType",
            Constraint::Enum {
                allowed: SELECTOR_TYPES,
                got: kind,
            },
        )
        .into());
    }
    if let Some(n) = &sel.after_fragment_number {
        check(
            "startSelector.afterFragmentNumber",
            n,
            128,
            |c| c.is_ascii_digit(),
            "^[0-9]+$",
        )?;
    }
    if let Some(t) = &sel.continuation_token {
        check(
            "startSelector.continuationToken",
            t,
            128,
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
            "^[a-zA-Z0-9_\\.\\-]+$",
        )?;
    }
    let start =
        match kind.as_str() {
            "NOW" => Start::Now,
            "EARLIEST" => Start::Earliest,
            "FRAGMENT_NUMBER" => {
                let n = sel.after_fragment_number.ok_or_else(|| {
                    ApiError::invalid(
                    "AfterFragmentNumber is required when StartSelectorType is FRAGMENT_NUMBER.",
                )
                })?;
                Start::After(n.parse().map_err(|_| {
                    ApiError::invalid(format!("The fragment number {n} is not valid."))
                })?)
            }
            "CONTINUATION_TOKEN" => {
                let t = sel.continuation_token.ok_or_else(|| {
                    ApiError::invalid(
                    "ContinuationToken is required when StartSelectorType is CONTINUATION_TOKEN.",
                )
                })?;
                Start::After(
                    t.parse()
                        .map_err(|_| ApiError::invalid("The ContinuationToken is not valid."))?,
                )
            }
            "PRODUCER_TIMESTAMP" => Start::Producer(millis(
                "startSelector.startTimestamp",
                sel.start_timestamp,
                "PRODUCER_TIMESTAMP",
            )?),
            _ => Start::Server(millis(
                "startSelector.startTimestamp",
                sel.start_timestamp,
                "SERVER_TIMESTAMP",
            )?),
        };
    Ok(GetMediaRequest { stream, start })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(body: &str) -> (String, String) {
        let e = decode(body.as_bytes()).unwrap_err();
        (e.code.to_owned(), e.message)
    }

    fn start(body: &str) -> Start {
        decode(body.as_bytes()).unwrap().start
    }

    #[test]
    fn selectors_resolve_to_where_the_response_starts() {
        let s = |sel: &str| format!(r#"{{"StreamName":"cam","StartSelector":{sel}}}"#);
        assert_eq!(start(&s(r#"{"StartSelectorType":"NOW"}"#)), Start::Now);
        assert_eq!(
            start(&s(r#"{"StartSelectorType":"EARLIEST"}"#)),
            Start::Earliest
        );
        assert_eq!(
            start(&s(
                r#"{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"42"}"#
            )),
            Start::After(42)
        );
        assert_eq!(
            start(&s(
                r#"{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"7"}"#
            )),
            Start::After(7)
        );
        assert_eq!(
            start(&s(
                r#"{"StartSelectorType":"SERVER_TIMESTAMP","StartTimestamp":1700000000.25}"#
            )),
            Start::Server(1_700_000_000_250)
        );
        assert_eq!(
            start(&s(
                r#"{"StartSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":1700000000}"#
            )),
            Start::Producer(1_700_000_000_000)
        );
    }

    #[test]
    fn the_model_constraints_are_checked() {
        let inv = "InvalidArgumentException";
        let cases: &[(&str, &str)] = &[
            (r#"{"StreamName":"cam"}"#, "Value null at 'startSelector' failed"),
            (r#"{"StreamName":"cam","StartSelector":{}}"#, "Value null at 'startSelector.startSelectorType'"),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"LATEST"}}"#,
                "Value 'LATEST' at 'startSelector.startSelectorType' failed to satisfy constraint: Member must satisfy enum value set",
            ),
            (r#"{"StartSelector":{"StartSelectorType":"NOW"}}"#, "Either StreamName or StreamARN"),
            (
                r#"{"StreamName":"a","StreamARN":"arn:aws:kinesisvideo:us-west-2:111122223333:stream/a/1","StartSelector":{"StartSelectorType":"NOW"}}"#,
                "not both",
            ),
            (r#"{"StreamName":"a b","StartSelector":{"StartSelectorType":"NOW"}}"#, "'streamName'"),
            (r#"{"StreamARN":"nope","StartSelector":{"StartSelectorType":"NOW"}}"#, "'streamARN'"),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"FRAGMENT_NUMBER"}}"#,
                "AfterFragmentNumber is required",
            ),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"FRAGMENT_NUMBER","AfterFragmentNumber":"12a"}}"#,
                "'startSelector.afterFragmentNumber' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[0-9]+$",
            ),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"SERVER_TIMESTAMP"}}"#,
                "StartTimestamp is required when StartSelectorType is SERVER_TIMESTAMP.",
            ),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN"}}"#,
                "ContinuationToken is required",
            ),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"a/b"}}"#,
                "'startSelector.continuationToken'",
            ),
            (
                r#"{"StreamName":"cam","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"abc"}}"#,
                "The ContinuationToken is not valid.",
            ),
        ];
        for (body, want) in cases {
            let (code, message) = err(body);
            assert_eq!(code, inv, "{body}");
            assert!(message.contains(want), "{body}: {message}");
        }
    }
}

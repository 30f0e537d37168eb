//! Authentication failures, with AWS's error codes and messages (docs/protocol.md §4.2). All are
//! HTTP 403. Clock-skew messages start with `Signature expired` / `Signature not yet current`,
//! which the KVS C SDK looks for to correct its clock.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No signature at all.
    Missing,
    /// A signature is there but malformed or incomplete.
    Incomplete(String),
    /// The access key is not known.
    UnknownAccessKey,
    /// The signature does not match.
    SignatureMismatch,
    /// Scope, signed headers or similar are wrong.
    Invalid(String),
    /// The request time is too far in the past (or a presigned URL has expired).
    Expired(String),
    /// The request time is too far in the future.
    NotYetCurrent(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownAccessKey => "UnrecognizedClientException",
            Self::SignatureMismatch
            | Self::Invalid(_)
            | Self::Expired(_)
            | Self::NotYetCurrent(_) => "InvalidSignatureException",
        }
    }

    pub fn http_status(&self) -> u16 {
        403
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("Missing Authentication Token"),
            Self::Incomplete(m) | Self::Invalid(m) => f.write_str(m),
            Self::UnknownAccessKey => {
                f.write_str("The security token included in the request is invalid.")
            }
            Self::SignatureMismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.",
            ),
            Self::Expired(m) => write!(f, "Signature expired: {m}"),
            Self::NotYetCurrent(m) => write!(f, "Signature not yet current: {m}"),
        }
    }
}

impl std::error::Error for AuthError {}

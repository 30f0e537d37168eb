//! AWS protocol plumbing shared by every API this server speaks: the error wire format
//! (docs/protocol.md §1.1), SigV4 authentication of callers (§7), request ids and JSON bodies.

pub mod auth;
pub mod error;
pub mod json;
pub mod request_id;

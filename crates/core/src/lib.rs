//! kvs-core: the domain of kvs-signaling, free of HTTP and SQL: the ports (store, relay)
//! with their in-memory implementations and conformance suites; the backends that speak SQLite
//! and Redis plug in from their own crates (`kvs-sqlite`, `kvs-redis`).
//!
//! Data flows one way (docs/design.md §3): the wire layer parses requests into the validated
//! identifiers of [`ids`], calls [`service::ChannelService`], which keeps channels in a
//! [`store::Store`]. Time comes from a [`clock::Clock`] so lifecycle rules are testable.

pub mod app;
pub mod clock;
pub mod error;
pub mod fault_log;
pub mod ids;
pub mod media;
pub mod model;
pub mod pagination;
pub mod quota;
pub mod relay;
pub mod reset;
pub mod service;
pub mod storage_session;
pub mod store;
pub mod streams;

pub use error::{Constraint, ErrorCode, ServiceError, Violation};

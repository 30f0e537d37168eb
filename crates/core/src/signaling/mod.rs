//! The signaling data plane's rules, without sockets (kvs-spec.md §6): message parsing and
//! validation ([`message`]), the per-channel relay with TTL store-and-forward ([`hub`]),
//! per-connection rate limits ([`rate`]) and counters ([`metrics`]).

pub mod hub;
pub mod message;
pub mod metrics;
pub mod rate;

pub use hub::{Hub, HubConfig, Outbound, Role, Sink};
pub use message::{Action, ClientMessage, ServerMessage, SignalError};

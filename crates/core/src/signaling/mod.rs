//! The signaling data plane's rules, without sockets (kvs-spec.md §6): message parsing and
//! validation ([`message`]), the typed events of the core ([`event`]), the relay with TTL
//! store-and-forward ([`hub`]) over its ports — this node's connections ([`local`]), cluster-wide
//! presence ([`presence`]), held messages ([`held`]) and the bus between nodes ([`bus`]) —,
//! per-connection rate limits ([`rate`]) and counters ([`metrics`]).

pub mod bus;
pub mod event;
pub mod held;
pub mod hub;
pub mod local;
pub mod message;
pub mod metrics;
pub mod presence;
pub mod rate;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod testkit;

#[cfg(test)]
mod cluster_tests;

pub use event::{Event, HeldMessage, Member, NodeId, Relayed, Role};
pub use hub::{ChannelTtl, ConnectionId, Hub, HubConfig, HubPorts, HubTasks};
pub use local::{ChannelSink, Refused, SendResult, Sink};
pub use message::{Action, ClientMessage, ServerMessage, SignalError};

//! The signaling data plane's rules, without sockets (docs/protocol.md §6): message parsing and
//! validation ([`message`]), the typed events of the core ([`event`]), the relay with TTL
//! store-and-forward ([`hub`]: joining and leaving in [`registration`], moving messages in
//! [`route`], cluster upkeep in [`upkeep`]) over its ports — this node's connections
//! ([`local`]), cluster-wide presence ([`presence`]), held messages ([`held`]) and the bus
//! between nodes ([`bus`]) —, per-connection rate limits ([`rate`]) and counters ([`metrics`]).

pub mod bus;
pub mod event;
pub mod held;
pub mod hub;
pub mod live;
pub mod local;
pub mod message;
pub mod metrics;
pub mod presence;
pub mod rate;
pub mod registration;
pub mod route;
pub mod upkeep;
pub mod watch;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod testkit;

#[cfg(test)]
mod cluster_tests;

pub use event::{Event, HeldMessage, Member, NodeId, Relayed, Role};
pub use hub::{ChannelTtl, ConnectionId, Hub, HubConfig, HubPorts};
pub use local::{ChannelSink, Refused, SendResult, SessionSink, Sink};
pub use message::{Action, ClientMessage, ServerMessage, SignalError};
pub use registration::Registration;
pub use upkeep::{GoAwayIncomplete, HubTasks};

//! The signaling WebSocket (kvs-spec.md §6): the handshake that authorises a master or viewer
//! before upgrading, and the per-connection session that shuttles frames between the socket and
//! the [`kvs_core::signaling::Hub`].

mod handshake;
mod session;
pub mod sink;

pub use handshake::connect;
pub use session::SessionConfig;

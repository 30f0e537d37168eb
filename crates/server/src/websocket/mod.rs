//! The signaling WebSocket (docs/protocol.md §6): the handshake that authorises a master or viewer
//! before upgrading, and the per-connection session that shuttles frames between the socket and
//! the application layer ([`kvs_core::app::Application`]).

mod handshake;
mod session;

pub use handshake::connect;
pub use session::SessionConfig;

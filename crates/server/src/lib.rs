//! kvs-signaling server: the wire layer and the binary's plumbing.
//!
//! `aws/` speaks AWS restJson1 (errors, SigV4 authentication, JSON bodies), `control/` maps the
//! kinesisvideo control-plane operations onto `kvs_core::service`, `data_plane/` is the HTTPS data
//! plane, `media/` recorded media and GetMedia, and `websocket/` the signaling WebSocket, all over `kvs_core::app::Application`; `config`
//! turns flags, `KVS_*` variables and a TOML file into one [`config::ServeConfig`], `app`
//! assembles and runs everything, and `server` routes, serves and shuts down gracefully. The wire layer knows no SQL; the core knows no HTTP.

pub mod app;
pub mod aws;
pub mod banner;
pub mod config;
mod config_quota;
pub mod config_reference;
pub mod console;
pub mod control;
pub mod credentials;
pub mod data_plane;
pub mod endpoints;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod observe;
pub mod redact;
pub mod server;
pub mod startup;
pub mod state;
pub mod storage;
pub mod suite_api;
pub mod tls;
pub mod turn_relay;
pub mod websocket;

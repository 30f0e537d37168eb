//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use kvs_core::app::Application;

use crate::aws::auth::Authenticator;
use crate::data_plane::ice::IceCredentials;
use crate::endpoints::EndpointBase;
use crate::websocket::SessionConfig;

pub struct AppState {
    /// The application layer: every handler's one entry into the core.
    pub app: Arc<Application>,
    pub auth: Authenticator,
    /// `--public-endpoint`, when set.
    pub public_endpoint: Option<EndpointBase>,
    /// The address we listen on, for endpoint URLs when a request has no usable Host header.
    pub local_authority: String,
    pub session: SessionConfig,
    pub ice: Arc<IceCredentials>,
    /// `--turn-uri`; empty means the embedded relay on this host.
    pub turn_uris: Vec<String>,
    /// The embedded relay's port, when it runs.
    pub turn_port: Option<u16>,
    pub alexa_answer_timeout: Duration,
    pub connections: Connections,
    /// Who watches API calls (metrics by operation, the console's inspector).
    pub calls: crate::observe::Calls,
    /// The web console's sessions and inspector (docs/console.md).
    pub console: crate::console::Console,
    /// What `GET /metrics` renders.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the storage session's WebRTC peer records (issue 15): opens a sink per session
    /// for the stream the channel is bound to.
    pub recording: Arc<dyn kvs_core::media::RecordingTarget>,
    /// Recorded media: the fragment store, its upkeep and GetMedia (docs/media-storage.md).
    pub media: Arc<crate::media::Media>,
}

/// The connection limits every listener applies (docs/behaviour.md "Connections").
pub struct Connections {
    pub config: crate::listener::ConnConfig,
    /// The caps, shared by the HTTP and HTTPS listeners.
    pub admission: Arc<crate::listener::admission::Admission>,
    pub body_timeout: Duration,
}

impl Connections {
    /// From the configuration; `--max-connections 0` is resolved against the open-file limit
    /// (raised to its hard limit first).
    pub fn from_config(cfg: &crate::config::ServeConfig) -> Self {
        use crate::listener::{admission, watched::Timeouts};
        let max = match cfg.max_connections {
            0 => admission::auto_max_connections(crate::listener::raise_nofile_limit()),
            n => n as usize,
        };
        Self {
            config: crate::listener::ConnConfig {
                timeouts: Timeouts {
                    header: cfg.header_timeout,
                    keepalive: cfg.keepalive_timeout,
                    write_stall: cfg.body_timeout,
                },
                handshake_timeout: cfg.handshake_timeout,
            },
            admission: admission::Admission::new(admission::Caps {
                max,
                max_per_ip: cfg.max_connections_per_ip as usize,
                shed_slots: crate::listener::SHED_SLOTS,
            }),
            body_timeout: cfg.body_timeout,
        }
    }
}

pub type SharedState = Arc<AppState>;

/// The host part of an authority (`host:port`, `[v6]:port`, `host`).
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().map_or(authority, |h| {
            // Keep the brackets: URIs need them around IPv6 literals.
            &authority[..h.len() + 2]
        });
    }
    authority.split(':').next().unwrap_or(authority)
}

impl AppState {
    /// TURN URIs to hand out to a client that reached us at `authority`.
    pub fn ice_uris(&self, authority: &str) -> Vec<String> {
        if !self.turn_uris.is_empty() {
            return self.turn_uris.clone();
        }
        let host = host_of(authority);
        let port = self.turn_port.unwrap_or(3478);
        vec![
            format!("turn:{host}:{port}?transport=udp"),
            format!("turn:{host}:{port}?transport=tcp"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_authorities() {
        assert_eq!(host_of("127.0.0.1:4580"), "127.0.0.1");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:4580"), "[::1]");
    }
}

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
    /// The embedded relay's ports, when it runs.
    pub relay: Option<RelayPorts>,
    /// `--ice-uris`: the shape of the embedded relay's list.
    pub ice_shape: crate::config::IceUris,
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
    /// This node's storage-session peers and the cluster's claims on them.
    pub storage: Arc<crate::storage::StorageSessions>,
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

/// Where the embedded relay serves each transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPorts {
    pub udp: u16,
    pub tcp: u16,
    /// TURN over TLS: `--turn-tls-listen`'s port, else the HTTPS listener's when it has one.
    pub tls: Option<u16>,
    /// `--stun-listen`'s port (Binding only; in no URI: SDKs compute their own).
    pub stun: Option<u16>,
}

impl AppState {
    /// The ICE servers' URIs to hand out to a client that reached us at `authority`, one list
    /// per server. On several nodes each answers with its own host and ports, so a client is
    /// sent to the relay of the node it asked (the shared secret makes credentials good on
    /// every node's relay).
    pub fn ice_uris(&self, authority: &str) -> Vec<Vec<String>> {
        if !self.turn_uris.is_empty() {
            return self.turn_uris.chunks(4).map(<[String]>::to_vec).collect();
        }
        let ports = self.relay.unwrap_or(RelayPorts {
            udp: 3478,
            tcp: 3478,
            tls: None,
            stun: None,
        });
        relay_uris(host_of(authority), ports, self.ice_shape)
    }
}

/// The embedded relay's URIs (docs/turn.md "What GetIceServerConfig returns").
pub fn relay_uris(
    host: &str,
    ports: RelayPorts,
    shape: crate::config::IceUris,
) -> Vec<Vec<String>> {
    let udp = format!("turn:{host}:{}?transport=udp", ports.udp);
    let tls = ports.tls.map(|p| format!("turns:{host}:{p}?transport=tcp"));
    match shape {
        crate::config::IceUris::Default => {
            let mut uris = vec![udp];
            uris.extend(tls);
            uris.push(format!("turn:{host}:{}?transport=tcp", ports.tcp));
            vec![uris]
        }
        // AWS's two servers of three URIs, less turns:…?transport=udp (no TURN over DTLS).
        crate::config::IceUris::Aws => {
            let mut uris = vec![udp];
            uris.extend(tls);
            vec![uris.clone(), uris]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{host_of, relay_uris, RelayPorts};
    use crate::config::IceUris;

    #[test]
    fn relay_uris_by_shape_and_listener() {
        let with_tls = RelayPorts {
            udp: 3478,
            tcp: 3478,
            tls: Some(443),
            stun: None,
        };
        let no_tls = RelayPorts {
            tls: None,
            ..with_tls
        };
        assert_eq!(
            relay_uris("h", with_tls, IceUris::Default),
            [[
                "turn:h:3478?transport=udp",
                "turns:h:443?transport=tcp",
                "turn:h:3478?transport=tcp"
            ]]
        );
        assert_eq!(
            relay_uris("h", no_tls, IceUris::Default),
            [["turn:h:3478?transport=udp", "turn:h:3478?transport=tcp"]]
        );
        let aws = RelayPorts {
            udp: 443,
            tcp: 3478,
            tls: Some(443),
            stun: None,
        };
        let server = ["turn:h:443?transport=udp", "turns:h:443?transport=tcp"];
        assert_eq!(relay_uris("h", aws, IceUris::Aws), [server, server]);
    }

    #[test]
    fn host_of_authorities() {
        assert_eq!(host_of("127.0.0.1:4580"), "127.0.0.1");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:4580"), "[::1]");
    }
}

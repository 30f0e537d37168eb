//! Which certificate the TLS listeners use, from the configuration: the HTTPS + WSS listener
//! (`--tls-listen`) and TURN over TLS (`--turn-tls-listen`, docs/turn.md) share one, the
//! operator's or the local CA's.

use std::sync::Arc;

use anyhow::bail;

use crate::config::ServeConfig;
use crate::endpoints::EndpointBase;
use crate::startup::{self, Refusal};

/// A listen address whose host does not resolve.
pub(super) fn cannot_resolve(flag: &str, addr: &str, e: &std::io::Error) -> Refusal {
    Refusal::new(
        format!("cannot listen on {addr}"),
        format!("cannot resolve it ({})", startup::io_reason(e)),
        format!("give {flag} as HOST:PORT, e.g. 127.0.0.1:4580"),
    )
}

/// Binds `--tls-listen` and prepares its certificate; returns the generated CA's path, if any.
pub(super) async fn tls_listener(
    cfg: &ServeConfig,
    addr: &str,
    open: bool,
) -> anyhow::Result<(crate::server::TlsListener, Option<std::path::PathBuf>)> {
    // One crypto provider for the whole process, whatever else links rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addrs: Vec<_> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| cannot_resolve("--tls-listen", addr, &e))?
        .collect();
    if open && !cfg.allow_open_non_loopback && !ServeConfig::listen_addr_is_loopback(&addrs) {
        bail!(
            "refusing to listen on non-loopback address {addr} in open mode (no --credentials); \
             pass --credentials FILE or --allow-open-non-loopback"
        );
    }
    let listener = crate::listener::bind(&addrs, cfg.listen_backlog)
        .map_err(|e| startup::cannot_listen("--tls-listen", addr, &e))?;
    let (config, ca) = tls_config(cfg, addr, &addrs)?;
    Ok((
        crate::server::TlsListener {
            listener,
            config,
            turn: None,
        },
        ca,
    ))
}

/// The operator's certificate, or one the local CA issues for the names of `addr` (resolved to
/// `addrs`), the public endpoint and `--tls-san`; returns the generated CA's path, if any.
pub(super) fn tls_config(
    cfg: &ServeConfig,
    addr: &str,
    addrs: &[std::net::SocketAddr],
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Option<std::path::PathBuf>)> {
    let material = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => crate::tls::load(cert, key)?,
        _ => {
            let mut names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            let mut add = |n: String| {
                if !n.is_empty() && !names.contains(&n) {
                    names.push(n);
                }
            };
            for a in addrs {
                if !a.ip().is_unspecified() {
                    add(a.ip().to_string());
                }
            }
            if let Some(host) = addr
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']))
            {
                if !host.is_empty() && host != "0.0.0.0" && host != "::" {
                    add(host.to_string());
                }
            }
            if let Some(p) = cfg
                .public_endpoint
                .as_deref()
                .and_then(|u| EndpointBase::parse(u).ok())
            {
                add(crate::state::host_of(&p.authority)
                    .trim_matches(['[', ']'])
                    .to_string());
            }
            for s in &cfg.tls_sans {
                add(s.clone());
            }
            crate::tls::generate(&cfg.data_dir.join("tls"), &names)?
        }
    };
    // TLS 1.2/1.3 and forward-secret AEAD suites only, written out in tls.rs (SECURITY.md).
    let config = Arc::new(crate::tls::server_config(&material).map_err(|e| {
        Refusal::new(
            "cannot use the TLS certificate and key",
            startup::one_line(&e),
            "give --tls-cert a PEM certificate chain and --tls-key the PEM private key that \
             goes with it, or neither for a generated certificate",
        )
    })?);
    Ok((config, material.ca_path))
}

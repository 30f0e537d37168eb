//! Endpoints and listen addresses: loopback only (127.0.0.0/8, ::1), so a mistyped address can
//! never send load anywhere but this machine.

use std::net::SocketAddr;

use anyhow::{bail, Context};

/// A target: the socket address and the `host[:port]` text that goes into `Host` and into the
/// SigV4 canonical request.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

impl Endpoint {
    /// `http://127.0.0.1:4580`, `ws://127.0.0.1:4580/` or `127.0.0.1:4580`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .unwrap_or(url);
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("endpoint {url}: expected http://IP:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("endpoint {url}: only loopback addresses are allowed as benchmark targets");
        }
        Ok(Self { addr, host })
    }
}

/// A loopback listen address.
pub fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = s
        .parse()
        .with_context(|| format!("listen address {s}: expected IP:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("listen address {s}: baselines listen on loopback only");
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_refuses_non_loopback() {
        let e = Endpoint::parse("http://127.0.0.1:4580").unwrap();
        assert_eq!(e.host, "127.0.0.1:4580");
        assert!(Endpoint::parse("ws://127.0.0.5:1/").is_ok());
        assert!(Endpoint::parse("http://10.0.0.1:80").is_err());
        assert!(Endpoint::parse("http://example.com:80").is_err());
        assert!(listen_addr("0.0.0.0:0").is_err());
        assert!(listen_addr("127.0.0.1:0").is_ok());
    }
}

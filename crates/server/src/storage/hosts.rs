//! Which addresses the recording peer offers as host candidates (docs/webrtc-ingestion.md
//! "Network"): `--media-host-candidates` when given; else the embedded TURN relay's public
//! address (`--turn-relay-ip`) when set, as the address peers can reach this host at; else every
//! interface's IPv4 address, loopback included (local tests).
//!
//! Each candidate gets a UDP socket of its own (an ephemeral port): bound to the address itself
//! when it is local, so a datagram's destination is known without packet info; to
//! `--media-udp-bind` (default 0.0.0.0) when it is not (a public address NATed to this host).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;

#[derive(Debug, Clone)]
pub struct MediaNetConfig {
    /// Explicit candidate addresses; empty: chosen as above.
    pub host_candidates: Vec<IpAddr>,
    /// `--turn-relay-ip`, when set.
    pub public_ip: Option<IpAddr>,
    /// Where to bind for an address that is not local.
    pub bind_ip: IpAddr,
}

impl Default for MediaNetConfig {
    fn default() -> Self {
        Self {
            host_candidates: Vec::new(),
            public_ip: None,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// Interfaces' IPv4 addresses (loopback last), or loopback alone if they cannot be read.
fn interface_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|all| {
            all.into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
                .collect()
        })
        .unwrap_or_default();
    ips.sort();
    ips.dedup();
    ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    ips
}

impl MediaNetConfig {
    /// The addresses to advertise, in order.
    pub fn candidate_ips(&self) -> Vec<IpAddr> {
        if !self.host_candidates.is_empty() {
            return self.host_candidates.clone();
        }
        if let Some(ip) = self.public_ip.filter(|ip| !ip.is_unspecified()) {
            let mut v = vec![ip];
            if !ip.is_loopback() {
                v.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            return v;
        }
        interface_ips()
    }

    /// One socket per candidate address: (advertised address, socket).
    pub async fn bind(&self) -> std::io::Result<Vec<(SocketAddr, Arc<UdpSocket>)>> {
        let mut out = Vec::new();
        let mut last_err = None;
        for ip in self.candidate_ips() {
            let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
                Ok(s) => s,
                // Not an address of this host: bind the wildcard, advertise the address.
                Err(_) => match UdpSocket::bind(SocketAddr::new(self.bind_ip, 0)).await {
                    Ok(s) => s,
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                },
            };
            let port = socket.local_addr()?.port();
            out.push((SocketAddr::new(ip, port), Arc::new(socket)));
        }
        match (out.is_empty(), last_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_then_public_then_interfaces() {
        let mut c = MediaNetConfig {
            host_candidates: vec!["10.0.0.5".parse().expect("ip")],
            public_ip: Some("203.0.113.7".parse().expect("ip")),
            ..MediaNetConfig::default()
        };
        assert_eq!(
            c.candidate_ips(),
            vec!["10.0.0.5".parse::<IpAddr>().expect("ip")]
        );
        c.host_candidates.clear();
        assert_eq!(
            c.candidate_ips(),
            vec![
                "203.0.113.7".parse::<IpAddr>().expect("ip"),
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            ]
        );
        c.public_ip = None;
        assert_eq!(
            c.candidate_ips().last(),
            Some(&IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }

    #[tokio::test]
    async fn a_non_local_address_is_advertised_on_a_wildcard_socket() {
        let c = MediaNetConfig {
            host_candidates: vec![
                "127.0.0.1".parse().expect("ip"),
                "203.0.113.7".parse().expect("ip"),
            ],
            ..MediaNetConfig::default()
        };
        let bound = c.bind().await.expect("bind");
        assert_eq!(bound.len(), 2);
        assert_eq!(bound[0].0.ip(), bound[0].1.local_addr().expect("addr").ip());
        assert_eq!(bound[1].0.ip().to_string(), "203.0.113.7");
        assert!(bound[1].1.local_addr().expect("addr").ip().is_unspecified());
    }
}

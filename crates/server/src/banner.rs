//! The first-run banner (docs/behaviour.md "Start-up banner"): where the server answers, in what
//! mode, on what store, and the lines that point the AWS CLI and SDKs at it.
//!
//! It goes to stderr, just before the ready line on stdout, and only with `--log-format text`:
//! stdout stays the machine-read ready line of the CLI contract, and with `--log-format json`
//! stderr stays pure JSON (the same facts go out as one `kvs-signaling ready` log event,
//! [`Banner::log`]). It never contains `listening on`, the phrase tools look for.
//!
//! URLs use an address a client can reach: a wildcard listen address (`0.0.0.0`, `[::]`) is
//! shown as loopback (`127.0.0.1`, `[::1]`), with a note that other machines use this one's name.
//! The environment variable names are the AWS SDKs' service-specific endpoints, from the service
//! ids `Kinesis Video` and `Kinesis Video Signaling`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the banner shows, gathered once the server is assembled.
#[derive(Debug, Clone)]
pub struct Banner {
    pub version: &'static str,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    /// `--public-endpoint`, which the SDK lines use instead of the listen address.
    pub public_endpoint: Option<String>,
    /// The embedded TURN relay's ports, when it runs.
    pub turn: Option<crate::state::RelayPorts>,
    /// `None` in open mode; else the number of access keys in `--credentials`.
    pub access_keys: Option<usize>,
    pub account: String,
    pub region: String,
    /// The store, its password redacted (`memory`, `sqlite in DIR`, `redis://***@HOST:PORT`).
    pub store: String,
}

/// `addr` as a client reaches it: wildcard addresses become loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

impl Banner {
    fn http_url(&self) -> String {
        format!("http://{}", reachable(self.http))
    }

    /// The URL the SDK lines point at.
    fn endpoint(&self) -> String {
        match &self.public_endpoint {
            Some(p) => p.trim_end_matches('/').to_owned(),
            None => self.http_url(),
        }
    }

    fn mode(&self) -> String {
        match self.access_keys {
            None => format!(
                "open: any access key, signatures not checked, account {}",
                self.account
            ),
            Some(1) => "credentials: 1 access key, every request verified with SigV4".into(),
            Some(n) => format!("credentials: {n} access keys, every request verified with SigV4"),
        }
    }

    fn turn(&self) -> Option<String> {
        let ports = self.turn?;
        let uris = crate::state::relay_uris(&self.host(), ports, crate::config::IceUris::Default);
        Some(uris.concat().join(" "))
    }

    /// How clients reach this host, for URIs.
    fn host(&self) -> String {
        match reachable(SocketAddr::new(self.http.ip(), 0)).ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        }
    }

    /// The banner's lines, without a trailing newline.
    pub fn render(&self) -> String {
        let mut out = vec![format!("kvs-signaling {} is ready.", self.version)];
        let row = |name: &str, value: String| format!("  {name:<18} {value}");
        out.push(row("HTTP + WebSocket", self.http_url()));
        if let Some(tls) = self.https {
            out.push(row("HTTPS + WSS", format!("https://{}", reachable(tls))));
        }
        out.push(row("console", format!("{}/console", self.http_url())));
        if let Some(turn) = self.turn() {
            out.push(row("TURN", turn));
        }
        if let Some(port) = self.turn.and_then(|t| t.stun) {
            out.push(row("STUN", format!("stun:{}:{port}", self.host())));
        }
        out.push(row("mode", self.mode()));
        out.push(row("store", self.store.clone()));
        if self.http.ip().is_unspecified() {
            out.push(
                "  (bound to every interface: other machines use this machine's name or address)"
                    .into(),
            );
        }
        let url = self.endpoint();
        out.push("Point the AWS CLI and SDKs at it:".into());
        out.push(format!("  export AWS_ENDPOINT_URL_KINESIS_VIDEO={url}"));
        out.push(format!(
            "  export AWS_ENDPOINT_URL_KINESIS_VIDEO_SIGNALING={url}"
        ));
        if self.access_keys.is_none() {
            out.push(format!(
                "  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION={}",
                self.region
            ));
        }
        out.push(format!(
            "  boto3:  boto3.client(\"kinesisvideo\", endpoint_url=\"{url}\")"
        ));
        out.push(format!(
            "  JS v3:  new KinesisVideoClient({{ endpoint: \"{url}\" }})"
        ));
        out.join("\n")
    }

    /// The same facts as one structured log event (`--log-format json`).
    pub fn log(&self) {
        tracing::info!(
            version = self.version,
            http = %self.http_url(),
            https = self.https.map(|a| format!("https://{}", reachable(a))).unwrap_or_default(),
            console = %format!("{}/console", self.http_url()),
            turn = self.turn().unwrap_or_default(),
            mode = if self.access_keys.is_some() { "credentials" } else { "open" },
            access_keys = self.access_keys.unwrap_or(0),
            store = %self.store,
            endpoint = %self.endpoint(),
            "kvs-signaling ready"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banner() -> Banner {
        Banner {
            version: "1.2.3",
            http: "0.0.0.0:4580".parse().unwrap_or_else(|_| unreachable!()),
            https: None,
            public_endpoint: None,
            turn: Some(crate::state::RelayPorts {
                udp: 3478,
                tcp: 3478,
                tls: None,
                stun: None,
            }),
            access_keys: None,
            account: "000000000000".into(),
            region: "us-east-1".into(),
            store: "memory".into(),
        }
    }

    #[test]
    fn a_wildcard_address_is_shown_as_loopback() {
        let text = banner().render();
        assert!(
            text.contains("  HTTP + WebSocket   http://127.0.0.1:4580\n"),
            "{text}"
        );
        assert!(text.contains("http://127.0.0.1:4580/console"), "{text}");
        assert!(
            text.contains("turn:127.0.0.1:3478?transport=udp turn:127.0.0.1:3478?transport=tcp")
        );
        assert!(text.contains("bound to every interface"));
        let v6 = Banner {
            http: "[::]:4580".parse().unwrap_or_else(|_| unreachable!()),
            ..banner()
        };
        assert!(v6.render().contains("http://[::1]:4580"));
    }

    #[test]
    fn sdk_lines_are_copy_paste_ready() {
        let text = banner().render();
        for line in [
            "  export AWS_ENDPOINT_URL_KINESIS_VIDEO=http://127.0.0.1:4580",
            "  export AWS_ENDPOINT_URL_KINESIS_VIDEO_SIGNALING=http://127.0.0.1:4580",
            "  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1",
            "  boto3:  boto3.client(\"kinesisvideo\", endpoint_url=\"http://127.0.0.1:4580\")",
            "  JS v3:  new KinesisVideoClient({ endpoint: \"http://127.0.0.1:4580\" })",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("listening on"), "tools look for that phrase");
    }

    #[test]
    fn credentials_mode_counts_keys_and_the_public_endpoint_wins() {
        let b = Banner {
            access_keys: Some(2),
            public_endpoint: Some("https://kvs.example.com/".into()),
            https: Some("127.0.0.1:4443".parse().unwrap_or_else(|_| unreachable!())),
            ..banner()
        };
        let text = b.render();
        assert!(text.contains("credentials: 2 access keys"), "{text}");
        assert!(
            text.contains("HTTPS + WSS        https://127.0.0.1:4443"),
            "{text}"
        );
        assert!(text.contains("AWS_ENDPOINT_URL_KINESIS_VIDEO=https://kvs.example.com\n"));
        assert!(
            !text.contains("AWS_ACCESS_KEY_ID"),
            "no test keys with credentials"
        );
    }
}

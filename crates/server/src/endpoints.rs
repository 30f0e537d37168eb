//! Where clients must connect: GetSignalingChannelEndpoint returns URLs of this server
//! (docs/design.md §2 "Endpoints"): the scheme, host and port the client used to reach us, or
//! `--public-endpoint` when the operator says how clients reach us from outside.

use axum::http::HeaderMap;

/// The base URL to hand out, without a trailing slash: `http://host:port` or the public one.
#[derive(Debug, Clone)]
pub struct EndpointBase {
    /// `https` or `http`.
    pub scheme: String,
    /// host[:port], as clients must use it.
    pub authority: String,
    /// Optional path prefix, kept as given (no trailing slash).
    pub path: String,
}

impl EndpointBase {
    /// Parses `--public-endpoint`, e.g. `https://kvs.example.com` or `http://10.0.0.5:4580/kvs`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            anyhow::anyhow!("public endpoint {url:?} needs a scheme (http:// or https://)")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            anyhow::bail!("public endpoint scheme must be http or https, got {scheme:?}");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || !valid_authority(authority) {
            anyhow::bail!("public endpoint {url:?} has no valid host");
        }
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The base for a request that reached us on `scheme` with these headers, falling back to
    /// the listening address when the Host header is absent or not a plain authority.
    /// Under HTTP/2 the authority is in the request URI rather than a Host header.
    pub fn from_request(
        scheme: &str,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        fallback_authority: &str,
    ) -> Self {
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                headers
                    .get(axum::http::header::HOST)
                    .and_then(|v| v.to_str().ok())
            })
            .filter(|h| valid_authority(h))
            .unwrap_or(fallback_authority);
        Self {
            scheme: scheme.to_owned(),
            authority: host.to_owned(),
            path: String::new(),
        }
    }

    pub fn https_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// The WebSocket URL: `wss` under TLS, `ws` otherwise.
    pub fn wss_url(&self) -> String {
        let ws = if self.scheme == "https" { "wss" } else { "ws" };
        format!("{ws}://{}{}", self.authority, self.path)
    }
}

fn valid_authority(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn public_endpoint_forms() {
        let e = EndpointBase::parse("https://kvs.example.com").unwrap();
        assert_eq!(e.https_url(), "https://kvs.example.com");
        assert_eq!(e.wss_url(), "wss://kvs.example.com");
        let e = EndpointBase::parse("http://10.0.0.5:4580/kvs/").unwrap();
        assert_eq!(e.https_url(), "http://10.0.0.5:4580/kvs");
        assert_eq!(e.wss_url(), "ws://10.0.0.5:4580/kvs");
        assert!(EndpointBase::parse("kvs.example.com").is_err());
        assert!(EndpointBase::parse("ftp://x").is_err());
        assert!(EndpointBase::parse("http://").is_err());
    }

    #[test]
    fn host_header_is_used_when_plain() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:5555".parse().unwrap());
        let plain: axum::http::Uri = "/x".parse().unwrap();
        let e = EndpointBase::from_request("http", &plain, &h, "fallback:1");
        assert_eq!(e.wss_url(), "ws://127.0.0.1:5555");
        let h2: axum::http::Uri = "https://localhost:7777/x".parse().unwrap();
        let e = EndpointBase::from_request("https", &h2, &h, "fallback:1");
        assert_eq!(e.wss_url(), "wss://localhost:7777");
        h.insert("host", "evil/path".parse().unwrap());
        let e = EndpointBase::from_request("http", &plain, &h, "fallback:1");
        assert_eq!(e.https_url(), "http://fallback:1");
    }
}

//! SigV4 header signing of control-plane requests, with kvs-sigv4's own signer.

use std::time::SystemTime;

use crate::Identity;

#[derive(Debug, Clone)]
pub struct Signer {
    pub id: Identity,
    pub service: String,
    pub host: String,
}

/// The two headers a signed request adds.
#[derive(Debug, Clone)]
pub struct Signed {
    pub amz_date: String,
    pub authorization: String,
}

impl Signer {
    pub fn new(id: &Identity, host: &str) -> Self {
        Self {
            id: id.clone(),
            service: "kinesisvideo".into(),
            host: host.into(),
        }
    }

    /// Signs `POST path` with `body`; signed headers are `host` and `x-amz-date` (no
    /// `x-amz-content-sha256`: the payload hash is computed from the body, as the verifier does).
    pub fn sign_post(&self, path: &str, body: &[u8], now: SystemTime) -> Signed {
        let amz_date = kvs_sigv4::format_amz_date(now);
        let headers = [
            ("host".to_string(), self.host.clone()),
            ("x-amz-date".to_string(), amz_date.clone()),
        ];
        let req = kvs_sigv4::HttpRequest {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body,
        };
        let authorization = kvs_sigv4::sign_headers(
            &req,
            &self.id.access_key,
            &self.id.secret_key,
            &self.id.region,
            &self.service,
            &amz_date,
            &["host", "x-amz-date"],
        );
        Signed {
            amz_date,
            authorization,
        }
    }

    /// A presigned WebSocket connect URL (`ws://HOST/?X-Amz-ChannelARN=…[&X-Amz-ClientId=…]&X-Amz-…`),
    /// as the KVS SDKs build it (docs/protocol.md §7.2).
    pub fn ws_url(&self, channel_arn: &str, client_id: Option<&str>, now: SystemTime) -> String {
        let mut params = vec![("X-Amz-ChannelARN".to_string(), channel_arn.to_string())];
        if let Some(c) = client_id {
            params.push(("X-Amz-ClientId".to_string(), c.to_string()));
        }
        let q = kvs_sigv4::presign_query(
            "GET",
            &self.host,
            "/",
            &params,
            &self.id.access_key,
            &self.id.secret_key,
            &self.id.region,
            &self.service,
            &kvs_sigv4::format_amz_date(now),
            300,
        );
        format!("ws://{}/?{q}", self.host)
    }
}

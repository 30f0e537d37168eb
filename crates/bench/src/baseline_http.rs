//! `baseline-http`: the least an HTTP server can do for DescribeSignalingChannel: axum on
//! tokio, parse the same JSON body, answer a describe-shaped JSON document. No authentication,
//! no store, no logging (CreateSignalingChannel answers an ARN, for the load's setup). kvs-signaling's describe throughput is compared against this.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::endpoint::listen_addr;

#[derive(Deserialize)]
struct DescribeInput {
    #[serde(rename = "ChannelName")]
    channel_name: Option<String>,
    #[serde(rename = "ChannelARN")]
    channel_arn: Option<String>,
}

#[derive(Serialize)]
struct SingleMaster {
    #[serde(rename = "MessageTtlSeconds")]
    message_ttl_seconds: u32,
}

#[derive(Serialize)]
struct ChannelInfo {
    #[serde(rename = "ChannelName")]
    channel_name: String,
    #[serde(rename = "ChannelARN")]
    channel_arn: String,
    #[serde(rename = "ChannelType")]
    channel_type: &'static str,
    #[serde(rename = "ChannelStatus")]
    channel_status: &'static str,
    #[serde(rename = "CreationTime")]
    creation_time: f64,
    #[serde(rename = "SingleMasterConfiguration")]
    single_master_configuration: SingleMaster,
    #[serde(rename = "Version")]
    version: &'static str,
}

#[derive(Serialize)]
struct DescribeOutput {
    #[serde(rename = "ChannelInfo")]
    channel_info: ChannelInfo,
}

async fn describe(body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<DescribeInput>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad JSON").into_response();
    };
    let name = input.channel_name.unwrap_or_else(|| "channel".into());
    let arn = input.channel_arn.unwrap_or_else(|| {
        format!("arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1700000000000")
    });
    let out = DescribeOutput {
        channel_info: ChannelInfo {
            channel_name: name,
            channel_arn: arn,
            channel_type: "SINGLE_MASTER",
            channel_status: "ACTIVE",
            creation_time: 1_700_000_000.0,
            single_master_configuration: SingleMaster {
                message_ttl_seconds: 60,
            },
            version: "a1b2c3d4e5f6a7b8c9d0",
        },
    };
    match serde_json::to_vec(&out) {
        Ok(v) => ([(header::CONTENT_TYPE, "application/x-amz-json-1.1")], v).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// CreateSignalingChannel, only so the describe load's setup works unchanged: answers an ARN.
async fn create(body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct CreateInput {
        #[serde(rename = "ChannelName")]
        channel_name: Option<String>,
    }
    let Ok(input) = serde_json::from_slice::<CreateInput>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad JSON").into_response();
    };
    let name = input.channel_name.unwrap_or_else(|| "channel".into());
    let arn = format!("arn:aws:kinesisvideo:us-east-1:000000000000:channel/{name}/1700000000000");
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        serde_json::json!({ "ChannelARN": arn }).to_string(),
    )
        .into_response()
}

pub async fn run(listen: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let addr = listen_addr(listen)?;
    let app = Router::new()
        .route("/describeSignalingChannel", post(describe))
        .route("/createSignalingChannel", post(create));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "kvs-bench baseline-http listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::baseline_relay::shutdown_signal())
        .await?;
    Ok(None)
}

//! The signaling payloads the recording peer sends and reads (docs/protocol.md §6.3): an SDP
//! offer or answer is base64 of `{"type":"offer","sdp":"..."}`, an ICE candidate base64 of
//! `{"candidate":"candidate:...","sdpMid":"0","sdpMLineIndex":0}`, as the KVS SDKs send them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SessionDescription {
    #[serde(rename = "type")]
    kind: String,
    sdp: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IceCandidate {
    candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp_mid: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "sdpMLineIndex"
    )]
    sdp_m_line_index: Option<u32>,
}

pub fn offer_payload(sdp: &str) -> String {
    let json = serde_json::json!({ "type": "offer", "sdp": sdp });
    STANDARD.encode(json.to_string())
}

pub fn candidate_payload(candidate: &str, mid: &str, index: u32) -> String {
    let c = IceCandidate {
        candidate: candidate.to_owned(),
        sdp_mid: Some(mid.to_owned()),
        sdp_m_line_index: Some(index),
    };
    STANDARD.encode(serde_json::to_string(&c).unwrap_or_default())
}

fn decode(payload: &str) -> Option<Vec<u8>> {
    STANDARD.decode(payload.trim()).ok()
}

/// The SDP of an answer payload.
pub fn answer_sdp(payload: &str) -> Option<String> {
    let d: SessionDescription = serde_json::from_slice(&decode(payload)?).ok()?;
    (d.kind == "answer").then_some(d.sdp)
}

/// The candidate line of an ICE_CANDIDATE payload without its `a=` prefix; `None` for the
/// end-of-candidates marker (an empty candidate) or an unreadable payload.
pub fn candidate_line(payload: &str) -> Option<String> {
    let c: IceCandidate = serde_json::from_slice(&decode(payload)?).ok()?;
    let line = c.candidate.trim().trim_start_matches("a=");
    (!line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let answer = STANDARD.encode(r#"{"type":"answer","sdp":"v=0\r\n"}"#);
        assert_eq!(answer_sdp(&answer).as_deref(), Some("v=0\r\n"));
        let offer = offer_payload("v=0\r\n");
        assert_eq!(answer_sdp(&offer), None, "an offer is not an answer");
        let c = candidate_payload(
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "0",
            0,
        );
        assert_eq!(
            candidate_line(&c).as_deref(),
            Some("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host")
        );
        let text = String::from_utf8(decode(&c).expect("b64")).expect("utf8");
        assert!(text.contains(r#""sdpMLineIndex":0"#), "{text}");
        let end = STANDARD.encode(r#"{"candidate":"","sdpMid":"0"}"#);
        assert_eq!(candidate_line(&end), None);
        assert_eq!(candidate_line("not base64!"), None);
    }
}

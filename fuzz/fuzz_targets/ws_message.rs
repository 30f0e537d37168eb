//! A client's signaling WebSocket text frame (docs/protocol.md §6.2, §6.3): parsing never
//! panics, an accepted message is one the relay can forward, and a refusal renders as a
//! STATUS_RESPONSE when the client gave a correlation id.
#![no_main]

use kvs_core::relay::message::{is_valid_id, is_valid_payload, ClientMessage, MAX_PAYLOAD_CHARS};
use kvs_core::relay::ServerMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 by the time it reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::parse(text) {
        Ok(m) => {
            assert!(is_valid_payload(&m.message_payload));
            assert!(m.message_payload.len() <= MAX_PAYLOAD_CHARS);
            assert!(m.recipient_client_id.as_deref().is_none_or(is_valid_id));
            assert!(m.correlation_id.as_deref().is_none_or(is_valid_id));
            let out = ServerMessage::relay(m.action, Some("sender".into()), m.message_payload);
            let _ = out.to_json();
        }
        Err(e) => {
            let resp = e.status_response();
            assert_eq!(resp.is_some(), e.correlation_id.is_some());
            if let Some(r) = resp {
                let json = r.to_json();
                assert!(json.contains("STATUS_RESPONSE"));
            }
        }
    }
});

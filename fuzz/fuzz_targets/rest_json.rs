//! The restJson1 request decoders (docs/protocol.md §2, §3, §5.1): the body of every
//! control-plane and data-plane operation, parsed and validated with no service call. Any bytes
//! give a request or a client error (4xx with a message), never a panic or a 5xx.
#![no_main]

use kvs_signaling::aws::error::ApiError;
use kvs_signaling::control::{self, Operation};
use kvs_signaling::data_plane;
use libfuzzer_sys::fuzz_target;

const CONTROL: [Operation; 9] = [
    Operation::CreateSignalingChannel,
    Operation::DescribeSignalingChannel,
    Operation::ListSignalingChannels,
    Operation::UpdateSignalingChannel,
    Operation::DeleteSignalingChannel,
    Operation::GetSignalingChannelEndpoint,
    Operation::TagResource,
    Operation::UntagResource,
    Operation::ListTagsForResource,
];

fn client_error(what: &str, e: &ApiError) {
    assert!(
        e.status.is_client_error(),
        "{what}: {} {} {}",
        e.status,
        e.code,
        e.message
    );
    assert!(!e.message.is_empty(), "{what}: empty message");
}

fuzz_target!(|body: &[u8]| {
    // Every body goes to every decoder: a seed for one operation is a near miss for another.
    for op in CONTROL {
        if let Err(e) = control::decode(op, body) {
            client_error(&format!("{op:?}"), &e);
        }
    }
    if let Err(e) = data_plane::decode_get_ice_server_config(body) {
        client_error("GetIceServerConfig", &e);
    }
    if let Err(e) = data_plane::decode_send_alexa_offer_to_master(body) {
        client_error("SendAlexaOfferToMaster", &e);
    }
    for (name, as_viewer) in [
        ("JoinStorageSession", false),
        ("JoinStorageSessionAsViewer", true),
    ] {
        if let Err(e) = kvs_signaling::storage::api::decode(body, as_viewer) {
            client_error(name, &e);
        }
    }
});

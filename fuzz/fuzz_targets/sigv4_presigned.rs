//! Presigned-query SigV4 of the signaling WebSocket (docs/protocol.md §7.2) on any request line
//! and headers: verifying never panics; open mode agrees with a success on the caller.
#![no_main]

use kvs_fuzz::{now, OwnedRequest, Secrets, ACCESS_KEY_ID};
use kvs_sigv4::{parse_scope_unverified, verify_presigned, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let owned = OwnedRequest::parse(data);
    let req = owned.as_request();
    let opts = VerifyOptions::default();
    match verify_presigned(&req, &Secrets, now(), &opts) {
        Ok(v) => {
            assert_eq!(v.access_key_id, ACCESS_KEY_ID);
            assert_eq!(v.service, opts.service);
            // A presigned request that also carries an Authorization header is read from that
            // header in open mode, so compare only when there is none.
            if !owned
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                let c = parse_scope_unverified(&req).expect("a verified query parses unverified");
                assert_eq!((c.access_key_id, c.region), (v.access_key_id, v.region));
            }
        }
        Err(e) => {
            assert_eq!(e.http_status(), 403);
            let _ = e.to_string();
        }
    }
});

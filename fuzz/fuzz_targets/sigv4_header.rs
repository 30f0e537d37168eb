//! `Authorization`-header SigV4 (docs/protocol.md §7.1) on any request: verifying never panics,
//! and the open-mode parse of the same header agrees with it on what the caller claims.
#![no_main]

use kvs_fuzz::{now, OwnedRequest, Secrets, ACCESS_KEY_ID};
use kvs_sigv4::{parse_scope_unverified, verify_header, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let owned = OwnedRequest::parse(data);
    let req = owned.as_request();
    let opts = VerifyOptions::default();
    let verified = verify_header(&req, &Secrets, now(), &opts);
    let claimed = parse_scope_unverified(&req);
    match verified {
        Ok(v) => {
            // Only the one known key can verify, and what open mode reads is what was verified.
            assert_eq!(v.access_key_id, ACCESS_KEY_ID);
            assert_eq!(v.service, opts.service);
            let c = claimed.expect("a verified header parses unverified too");
            assert_eq!((c.access_key_id, c.region), (v.access_key_id, v.region));
        }
        Err(e) => {
            // Every refusal is a 403 with one of AWS's codes; its message renders.
            assert_eq!(e.http_status(), 403);
            assert!(!e.code().is_empty());
            let _ = e.to_string();
        }
    }
});

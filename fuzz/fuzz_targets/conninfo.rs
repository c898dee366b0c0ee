//! The TARGET argument: conninfo, URI or host[:port], from any bytes (kept byte for byte).
//! `parse_target` routes to all three syntaxes (URIs when the input starts with
//! `postgresql://` or `postgres://`, which the seeds do); `parse_conninfo` is also fed every
//! input, since `parse_target` only hands it strings containing '='. Then a URI whose query
//! carries a secret under a key percent-encoded as the fuzzer chooses: its value must never
//! appear in an error message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::{conninfo, untrusted};

const MARKER: &str = "S3cretMARK";

fuzz_target!(|data: &[u8]| {
    let text = untrusted::decode(data);
    let _ = conninfo::parse_target(&text);
    let _ = conninfo::parse_conninfo(&text);

    // First byte: which secret key and which of its letters to percent-encode.
    let Some((&mask, rest)) = data.split_first() else {
        return;
    };
    let key = if mask & 1 == 0 { "password" } else { "sslpassword" };
    let encoded: String = key
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            if mask.rotate_right(1) & (1 << (i % 8)) != 0 {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    let query = untrusted::decode(rest);
    for uri in [
        format!("postgresql://u@h/db?{encoded}={MARKER}&{query}"),
        format!("postgres://u@h/db?{query}&{encoded}={MARKER}"),
        format!("postgresql://u:{MARKER}@{query}"),
    ] {
        if let Err(e) = conninfo::parse_uri(&uri) {
            assert!(!e.0.contains(MARKER), "secret in an error: {}", e.0);
        }
        assert!(!conninfo::redact_uri(&uri).contains(MARKER), "not redacted: {uri}");
    }
});

//! The TARGET argument: conninfo, URI or host[:port], from any bytes read as lossy UTF-8.
//! `parse_target` routes to all three syntaxes (URIs when the input starts with
//! `postgresql://` or `postgres://`, which the seeds do); `parse_conninfo` is also fed every
//! input, since `parse_target` only hands it strings containing '='. `parse_uri` is not
//! called directly: it compiles a regex on every call (for redaction), which would cut the
//! run rate of inputs that are not URIs at all by two orders of magnitude.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::conninfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = conninfo::parse_target(&text);
    let _ = conninfo::parse_conninfo(&text);
});

//! The TARGET argument: conninfo, URI or host[:port], from any bytes read as lossy UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::conninfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = conninfo::parse_target(&text);
    let _ = conninfo::parse_conninfo(&text);
    let _ = conninfo::parse_uri(&text);
});

//! pg_hba.conf and pg_ident.conf text as every supported version reads it, then the evaluator
//! and the lint over whatever parsed. The file sits in a directory that does not exist, so
//! relative includes fail; absolute ones may only read regular files (never FIFOs/devices).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::hba::{self, matcher};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent-fuzz-dir/pg_hba.conf");
    let ident = hba::parse_ident(&text, Path::new("/nonexistent-fuzz-dir/pg_ident.conf"));
    for version in [13, 15, 16, 17] {
        let file = hba::parse_hba(&text, path, version);
        for ssl in [false, true] {
            let conn = matcher::Connection {
                local: false,
                ssl,
                client_ip: Some("127.0.0.1".parse().unwrap()),
                server_ip: Some("127.0.0.1".parse().unwrap()),
                user: "alice".into(),
                database: "app".into(),
                replication: false,
            };
            if let Some(rule) = matcher::decide(&file.rules, &conn).rule {
                let _ = matcher::cert_name_verdict(
                    rule,
                    Some("alice"),
                    Some("CN=alice"),
                    "alice",
                    &ident.rules,
                );
            }
            let _ = matcher::near_misses(&file.rules, &conn);
        }
        let _ = hba::lint::lint(&file, Some(&ident), None, version);
    }
});

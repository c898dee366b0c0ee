//! pg_hba.conf and pg_ident.conf text as every supported version reads it, then the evaluator
//! and the lint over whatever parsed. The file sits in a directory that does not exist, so
//! relative includes fail; absolute ones may only read regular files (never FIFOs/devices).
//! Then the same bytes as three files of one directory (`pg_hba.conf`, `a`, `b`), so that
//! `include`, `include_dir` and `@a` may name each other and fan out: the expansion budget
//! must end every load quickly.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgtls-fuzz-hba-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    });
    let half = data.len() / 2;
    for (name, bytes) in [("pg_hba.conf", data), ("a", &data[..half]), ("b", &data[half..])] {
        let _ = std::fs::write(dir.join(name), bytes);
    }
    let _ = hba::load_hba(&dir.join("pg_hba.conf"), 17);
    let _ = hba::load_ident(&dir.join("a"));
});

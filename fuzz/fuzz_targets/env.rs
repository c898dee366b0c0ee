//! The process environment and the TARGET argument, as raw bytes: `NAME=VALUE` entries
//! separated by NUL (values need not be UTF-8), the first entry being the target. Resolution
//! must never panic, bytes must survive the round trip through `untrusted`, and a password
//! given in PGPASSWORD must never appear in an error message.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::plan::{self, Environment, FlagSettings};
use pgtls_doctor::untrusted;

const MARKER: &str = "Zq9MARKERpw";

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let target = untrusted::decode(parts.next().unwrap_or_default());
    assert_eq!(untrusted::encode(&target), parts_first(data));
    let mut vars = BTreeMap::new();
    for entry in parts {
        let Some(eq) = entry.iter().position(|b| *b == b'=') else {
            continue;
        };
        let name = untrusted::decode(&entry[..eq]);
        // Only variables that cannot reach the file system: the fuzzer must not read disks.
        if name.starts_with("PG") && !name.contains("FILE") && name != "PGSERVICE" {
            vars.insert(name, untrusted::decode(&entry[eq + 1..]));
        }
    }
    vars.insert("PGPASSWORD".into(), MARKER.into());
    let env = Environment {
        vars,
        home: Some(PathBuf::from("/nonexistent-fuzz-home")),
        os_user: Some("fuzz".into()),
    };
    if let Err(e) = plan::resolve(&target, &FlagSettings::default(), &env) {
        // The fuzzer may copy the marker into the target itself; only PGPASSWORD's must not leak.
        if !target.contains(MARKER) && !env_has_marker_elsewhere(data) {
            assert!(!e.0.contains(MARKER), "PGPASSWORD in an error: {}", e.0);
        }
    }
});

fn parts_first(data: &[u8]) -> &[u8] {
    data.split(|b| *b == 0).next().unwrap_or_default()
}

fn env_has_marker_elsewhere(data: &[u8]) -> bool {
    data.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

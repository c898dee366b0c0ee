//! Helpers for the unit tests, and the test PKI they share with the integration tests
//! (certificates are made at test time, never committed).

#[allow(dead_code)]
#[path = "../tests/suite/support/pki.rs"]
pub mod pki;

#[allow(dead_code)]
#[path = "../tests/suite/support/ossl_pki.rs"]
pub mod ossl_pki;

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails when a generated file differs from what the code generates now; with
/// `PGTLS_BLESS=1` it rewrites the file first.
pub fn check_generated(relative: &str, want: &str) {
    let path = root().join(relative);
    if std::env::var_os("PGTLS_BLESS").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{relative} is stale: run `PGTLS_BLESS=1 cargo test --lib` and commit the result"
    );
}

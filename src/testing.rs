//! Helpers for the unit tests.

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

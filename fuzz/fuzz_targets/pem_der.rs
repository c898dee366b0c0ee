//! Certificate files and certificates from the server: the raw bytes as a PEM file and as
//! DER, and every certificate the PEM reader accepts summarized in turn.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgtls_doctor::{trust, x509};

fn check(der: &[u8]) {
    if let Ok(summary) = x509::summarize(der) {
        let _ = x509::host_matches(&summary, "db.example.test");
        let _ = x509::host_matches(&summary, "127.0.0.1");
        let _ = x509::presented_names(&summary);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = trust::pem_certificates(data) {
        for der in &certs {
            check(der);
        }
    }
    check(data);
});

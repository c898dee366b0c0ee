#![allow(dead_code)]
//! Shared integration-test harness: throw-away PKI (rcgen), real PostgreSQL
//! servers, and the real `psql` for differential tests.
//!
//! Each test binary does `mod support;` and uses the parts it needs.

pub mod doctor;
pub mod fake_peer;
pub mod ossl_pki;
pub mod pg;
pub mod pki;
pub mod psql;
pub mod tls_peer;

#![allow(dead_code)]
//! Shared integration-test harness: throw-away PKI (rcgen), real PostgreSQL
//! servers, and the real `psql` for differential tests.
//!
//! The one test binary (`tests/suite/main.rs`) declares it once; each area uses the parts it needs.

pub mod advice;
pub mod doctor;
pub mod fake_peer;
pub mod ossl_pki;
pub mod pg;
pub mod pki;
pub mod pooler;
pub mod psql;
pub mod tls_peer;

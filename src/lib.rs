//! pgtls-doctor: tells exactly why a PostgreSQL TLS connection fails, and proves it works
//! when it does.
//!
//! The pipeline, one module each: `plan` (what libpq would use) → `local` (the client's
//! files) → `connections` and `probe` (all I/O, through the `wire` codec), recording
//! `observe` data → `eval` (pure judgement of the six sslmodes, clock injected) → `report`
//! (the one report type, codes from `catalogue`) → `render` (one file per format).
//! `command` runs a parsed command line; `app` runs one target.

pub mod admin;
pub mod app;
pub mod atomic_write;
pub mod catalogue;
pub mod cli;
pub mod client_cert;
pub mod command;
pub mod connections;
pub mod conninfo;
pub mod demo;
pub mod engine;
pub mod error;
pub mod eval;
pub mod evidence;
pub mod explain;
pub mod files;
pub mod finding;
pub mod generate;
pub mod hba;
pub mod keywords;
pub mod local;
pub mod observe;
pub mod pki;
pub mod plan;
pub mod pooler;
pub mod probe;
pub mod render;
pub mod report;
pub mod serverlog;
pub mod sigalgs;
pub mod slots;
pub mod sslmode;
#[cfg(test)]
mod testing;
pub mod trust;
pub mod untrusted;
pub mod wire;
pub mod x509;

//! The integration tests: one binary, so the shared harness (`support/`) is compiled once.
//! Each module is one area; `cargo test --test suite AREA` runs one of them. Tests that need
//! PostgreSQL, psql or the scanners start real ones (see support/pg.rs); the judgement's own
//! rules are unit tests of the library and need no server.

mod support;

mod check_mode;
mod ci_guide;
mod cli;
mod client_certs;
mod demo;
mod direct_tls;
mod explain;
mod first_contact;
mod fleet;
mod formats;
mod generate;
mod guides;
mod harness_smoke;
mod hba_properties;
mod hba_server;
mod hba_table;
mod hostile_input;
mod hostile_peers;
mod hostile_tls;
mod input_files;
mod libpq_parity;
mod pki;
mod poolers;
mod probe_scenarios;
mod properties;
mod psql_flags;
mod readme;
mod secrets;
mod setup_scripts;

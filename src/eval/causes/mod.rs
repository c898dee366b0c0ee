//! The causes of a failed sslmode, one file per phase: each turns an observation into a
//! problem with its evidence and fix. The client certificate's causes are in
//! `eval/client_cert.rs`.

pub(in crate::eval) mod auth;
pub(in crate::eval) mod chain;
pub(in crate::eval) mod hba_fix;
pub(in crate::eval) mod network;
pub(in crate::eval) mod pooler;
pub(in crate::eval) mod tls;

//! What the judgement takes (the client's material and one host's observations) and what it
//! gives (a cell per sslmode, the findings, the session).

use std::collections::BTreeMap;

use crate::catalogue::Code;
use crate::eval::client_cert::ClientView;
use crate::finding::{Finding, Problem};
use crate::observe::{PlainAttempt, TlsAttempt};
use crate::plan::Endpoint;
use crate::sslmode::SslMode;
use crate::trust::{CrlState, RootState};
use crate::x509::CertSummary;

/// The client-side material, as loaded before connecting.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    pub roots: RootState,
    /// sslrootcert=system (libpq 16+), which libpq allows only with verify-full.
    pub system_roots: bool,
    pub crl: Option<CrlState>,
    /// A client certificate/key problem that makes libpq's TLS set-up fail.
    pub client_failure: Option<Problem>,
    /// What the client presents.
    pub client: ClientView,
    /// A CRL file libpq would silently ignore, and why.
    pub crl_ignored: Option<(std::path::PathBuf, String)>,
}

/// What one sslmode gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Some(true): a session; Some(false): refused; None: not determined (see `code`).
    pub ok: Option<bool>,
    /// libpq's last attempt at this mode used TLS.
    pub encrypted: bool,
    pub code: Option<Code>,
}

/// Everything judged for one host.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub cells: BTreeMap<SslMode, Cell>,
    pub findings: Vec<Finding>,
    pub chain: Vec<CertSummary>,
    /// PostgreSQL answered something on some attempt.
    pub postgres_replied: bool,
    /// The TLS session, when a handshake completed.
    pub tls_session: Option<TlsSession>,
}

/// What a completed handshake established, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub version: String,
    pub cipher_suite: String,
    pub key_exchange_group: Option<String>,
    pub alpn: Option<String>,
    /// The CA names in the server's CertificateRequest; None when it sent none.
    pub client_ca_names: Option<Vec<String>>,
    pub client_cert_sent: bool,
}

pub struct EvalInput<'a> {
    pub endpoint: &'a Endpoint,
    pub requested: SslMode,
    pub local: &'a LocalSetup,
    pub tls: Option<&'a TlsAttempt>,
    pub plain: Option<&'a PlainAttempt>,
    pub now: i64,
    pub warn_days: i64,
    pub user: &'a str,
    pub dbname: &'a str,
    /// No user was given: libpq took the operating-system user.
    pub user_is_default: bool,
    /// No dbname was given: libpq took the user name.
    pub dbname_is_default: bool,
    /// Where the password came from (never the password itself).
    pub password_source: Option<String>,
    /// A passfile libpq would read that the doctor could not: why.
    pub password_unknown: Option<&'a str>,
    /// pg_hba.conf and pg_ident.conf, when the user gave them.
    pub hba: Option<&'a crate::hba::HbaContext>,
    /// The server's own reasons, from its log (--server-log).
    pub server_log: Option<&'a crate::serverlog::LogReasons>,
    pub negotiation: crate::plan::Negotiation,
    /// After a failed direct handshake, the SSLRequest asked on a second connection.
    pub ssl_request_probe: Option<&'a TlsAttempt>,
    /// The pooler's configuration (--pooler-config).
    pub pooler: Option<&'a crate::pooler::PoolerConfig>,
    /// What the pooler logged about this probe (--pooler-log).
    pub pooler_log: Option<&'a crate::pooler::log::PoolerLog>,
}

/// A failed path, with whether allow/prefer would still fall back to plaintext after it.
#[derive(Debug, Clone)]
pub(in crate::eval) struct Failure {
    pub(in crate::eval) problem: Problem,
    /// A TLS set-up or handshake failure, or a server error during auth (not 57P03).
    pub(in crate::eval) falls_back: bool,
    /// A server ErrorResponse: what makes `allow` retry with TLS.
    pub(in crate::eval) server_error: bool,
    pub(in crate::eval) undetermined: bool,
    /// The failure happened on a TLS connection.
    pub(in crate::eval) on_tls: bool,
    /// Failures of later attempts at the same mode (prefer's plaintext after TLS, allow's
    /// TLS after plaintext): libpq reports them all, and each breaks the mode.
    pub(in crate::eval) also: Vec<Problem>,
}

pub(in crate::eval) type PathResult = Result<bool /* encrypted */, Failure>;

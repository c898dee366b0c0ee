//! Judges what the probe observed, offline and without I/O: for each of the six sslmodes,
//! whether libpq would get a session, over TLS or not, and the first check it fails, in
//! libpq's own order. The clock is a parameter.

pub mod client;
#[cfg(test)]
pub(crate) mod tests;

use crate::catalogue::Code;
use crate::evidence::{Evidence, Value};
use std::collections::BTreeMap;

use client::ClientView;

use crate::catalogue::Severity;
use crate::finding::{self, Finding, Problem};
use crate::observe::{
    Alert, AuthStage, ConnectFailure, PlainAttempt, SslReply, StartupOutcome, TimeoutKind,
    TlsAttempt, TlsFailure,
};
use crate::plan::Endpoint;
use crate::sslmode::SslMode;
use crate::trust::{self, ChainFailure, ChainFailureKind, CrlState, RootSource, RootState};
use crate::wire::ErrorFields;
use crate::x509::{self, CertSummary};

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

/// A failed path, with whether allow/prefer would still fall back to plaintext after it.
#[derive(Debug, Clone)]
struct Failure {
    problem: Problem,
    /// A TLS set-up or handshake failure, or a server error during auth (not 57P03).
    falls_back: bool,
    /// A server ErrorResponse: what makes `allow` retry with TLS.
    server_error: bool,
    undetermined: bool,
    /// The failure happened on a TLS connection.
    on_tls: bool,
    /// Failures of later attempts at the same mode (prefer's plaintext after TLS, allow's
    /// TLS after plaintext): libpq reports them all, and each breaks the mode.
    also: Vec<Problem>,
}

type PathResult = Result<bool /* encrypted */, Failure>;

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

fn tls_session(tls: &TlsAttempt) -> Option<TlsSession> {
    let facts = tls.handshake.as_ref()?.as_ref().ok()?;
    Some(TlsSession {
        version: facts.version.clone(),
        cipher_suite: facts.cipher_suite.clone(),
        key_exchange_group: facts.key_exchange_group.clone(),
        alpn: facts.alpn.clone(),
        client_ca_names: client::ca_names(tls),
        client_cert_sent: tls.client_cert_sent,
    })
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
}

/// The server chain of the TLS attempt, summarized.
fn observed_chain(input: &EvalInput) -> Vec<CertSummary> {
    input
        .tls
        .map(|t| {
            t.chain
                .iter()
                .filter_map(|d| x509::summarize(d).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The password permit for a TLS connection at `mode`: send only where libpq at that mode
/// would itself use the connection.
pub fn permit_at(
    local: &LocalSetup,
    endpoint: &Endpoint,
    chain: &[Vec<u8>],
    mode: SslMode,
    now: i64,
) -> crate::observe::PasswordPermit {
    if tls_acceptable(local, endpoint, chain, mode, now) {
        crate::observe::PasswordPermit::Send
    } else {
        crate::observe::PasswordPermit::Withhold
    }
}

/// Judges a host: the six cells and the findings that explain them.
pub fn judge(input: &EvalInput) -> Judgement {
    let chain = observed_chain(input);
    let mut problems: Vec<(Problem, Vec<SslMode>)> = Vec::new();
    // One finding per code. When the same code arises at several modes with different
    // details, the words of the requested mode's failure are the ones shown.
    let requested = input.requested;
    let mut add = |problem: Problem, mode: Option<SslMode>| match problems
        .iter_mut()
        .find(|(p, _)| p.code == problem.code)
    {
        Some((existing, modes)) => {
            if mode == Some(requested) && !modes.contains(&requested) {
                *existing = problem;
            }
            modes.extend(mode);
        }
        None => problems.push((problem, mode.into_iter().collect())),
    };

    let mut cells = BTreeMap::new();
    let unix = input.endpoint.is_unix_socket();
    for mode in SslMode::ALL {
        let result = if unix {
            plain_path(input)
        } else {
            mode_path(input, mode, &chain)
        };
        let cell = match result {
            Ok(encrypted) => {
                if !encrypted && mode >= SslMode::Allow && !unix {
                    // Works, but only in plaintext: say why TLS was not used.
                    if let Some(reason) = fallback_reason(input, mode, &chain) {
                        add(reason.problem, None);
                    }
                }
                Cell {
                    ok: Some(true),
                    encrypted,
                    code: None,
                }
            }
            Err(failure) => {
                let cell = Cell {
                    ok: if failure.undetermined {
                        None
                    } else {
                        Some(false)
                    },
                    encrypted: failure.on_tls,
                    code: Some(failure.problem.code),
                };
                add(failure.problem, Some(mode));
                for problem in failure.also {
                    add(problem, Some(mode));
                }
                cell
            }
        };
        cells.insert(mode, cell);
    }

    let mut findings: Vec<Finding> = problems
        .into_iter()
        .map(|(p, mut modes)| {
            modes.sort();
            modes.dedup();
            Finding {
                code: p.code,
                severity: finding::severity_for(&modes, input.requested),
                summary: p.summary,
                evidence: p.evidence,
                fix: p.fix,
                modes,
            }
        })
        .collect();

    // Facts that break nothing today.
    let requested_cell = &cells[&input.requested];
    if unix {
        findings.push(Finding {
            code: Code::UnixSocket,
            severity: Severity::Info,
            summary: format!(
                "{} is a Unix-domain socket: libpq never uses TLS there, whatever the sslmode",
                input.endpoint.socket_path().display()
            ),
            evidence: vec![],
            fix: Some(
                "to test TLS, connect over TCP: host=127.0.0.1 (or the server's name)".into(),
            ),
            modes: vec![],
        });
    }
    if requested_cell.ok == Some(true)
        && !requested_cell.encrypted
        && input.requested >= SslMode::Allow
        && !unix
    {
        findings.push(Finding {
            code: Code::PlaintextFallback,
            severity: Severity::Warning,
            summary: format!(
                "sslmode={} connects, but without TLS: passwords and data cross the network in plaintext",
                input.requested
            ),
            evidence: vec![],
            fix: Some("fix the TLS problem above, then use sslmode=verify-full so a fallback cannot happen silently".into()),
            modes: vec![],
        });
    }
    expiry_findings(&chain, input.now, input.warn_days, &mut findings);
    if let Some((path, reason)) = &input.local.crl_ignored {
        findings.push(Finding {
            code: Code::CrlIgnored,
            severity: Severity::Warning,
            summary: format!("libpq silently ignores the CRL file {}: {reason}; revocation is not checked", path.display()),
            evidence: vec![Evidence::new("file", Value::path(path))],
            fix: Some("put the CA's CRL there in PEM form (`openssl crl -in crl.der -inform DER -out root.crl`), or remove the file".into()),
            modes: vec![],
        });
    }
    if let Some(log) = input.server_log {
        server_log_findings(log, input, requested_cell, &mut findings);
    }
    if let Some(ctx) = input.hba {
        let on_tls = requested_cell.encrypted;
        let conn = hba_connection(input, on_tls);
        let decision = crate::hba::matcher::decide(&ctx.hba.rules, &conn);
        if let Some(rule) = decision.rule {
            let mut evidence = vec![
                Evidence::new("hba_file", Value::path(&rule.file)),
                Evidence::new("hba_line", Value::line(rule.line_number)),
                Evidence::new("hba_rule", rule.raw.clone()),
                Evidence::new("method", rule.method.clone()),
            ];
            if !decision.assumptions.is_empty() {
                evidence.push(Evidence::new(
                    "hba_assumptions",
                    decision.assumptions.join("; "),
                ));
            }
            findings.push(Finding {
                code: Code::HbaRule,
                severity: Severity::Info,
                summary: format!(
                    "sslmode={}'s {} connection is decided by line {} of {}: {}",
                    input.requested,
                    if on_tls { "TLS" } else { "plaintext" },
                    rule.line_number,
                    ctx.source,
                    rule.raw
                ),
                evidence,
                fix: None,
                modes: vec![],
            });
        }
    }
    let session_ok = requested_cell.ok == Some(true);
    for f in client::local_findings(
        &input.local.client,
        input.tls,
        input.user,
        input.now,
        input.warn_days,
        session_ok,
    ) {
        if !findings.iter().any(|existing| existing.code == f.code) {
            findings.push(f);
        }
    }
    if let (Some(tls), RootState::Loaded { certs, .. }) = (input.tls, &input.local.roots) {
        let openssl_full = cells[&SslMode::VerifyFull]
            .code
            .is_none_or(|c| !is_chain_code(c));
        if !tls.chain.is_empty()
            && openssl_full
            && trust::verify_chain(&tls.chain, certs, input.local.crl.as_ref(), input.now).is_ok()
        {
            let host = (!input.endpoint.host.is_empty()).then_some(input.endpoint.host.as_str());
            let host_ok =
                host.is_some_and(|h| chain.first().is_some_and(|c| x509::host_matches(c, h)));
            if let Some(reason) =
                trust::webpki_refusal(&tls.chain, certs, host.filter(|_| host_ok), input.now)
            {
                findings.push(Finding {
                    code: Code::ServerCertRustlsDiffers,
                    severity: Severity::Warning,
                    summary: format!("libpq accepts this chain, but clients built on rustls/webpki (tokio-postgres-rustls, sqlx, many Rust and Go-style strict verifiers) refuse it: {reason}"),
                    evidence: vec![Evidence::new("webpki_error", reason.clone())],
                    fix: Some("issue the server certificate from a CA (not self-signed, CA:FALSE, X.509 v3) with the host names in subjectAltName, not only in the CN".into()),
                    modes: vec![],
                });
            }
        }
    }
    if let Some(tls) = input.tls {
        if let (
            Some(Ok(facts)),
            Some(StartupOutcome::Session {
                server_ssl,
                server_version,
                ..
            }),
        ) = (&tls.handshake, &tls.startup)
        {
            let mut evidence = vec![
                Evidence::new("tls_version", facts.version.clone()),
                Evidence::new("cipher_suite", facts.cipher_suite.clone()),
            ];
            if let Some(g) = &facts.key_exchange_group {
                evidence.push(Evidence::new("key_exchange_group", g.clone()));
            }
            if let Some(a) = &facts.alpn {
                evidence.push(Evidence::new("alpn", a.clone()));
            }
            if let Some(v) = server_version {
                evidence.push(Evidence::new("server_version", v.clone()));
            }
            if let Some(view) = server_ssl {
                evidence.push(Evidence::new("server_sees_ssl", view.ssl));
                if let Some(version) = &view.version {
                    evidence.push(Evidence::new("server_sees_version", version.clone()));
                }
                if let Some(dn) = &view.client_dn {
                    evidence.push(Evidence::new(
                        "server_sees_client_dn",
                        Value::name(dn.clone()),
                    ));
                }
                if let Some(dn) = &view.issuer_dn {
                    evidence.push(Evidence::new(
                        "server_sees_issuer_dn",
                        Value::name(dn.clone()),
                    ));
                }
                if let Some(serial) = &view.client_serial {
                    evidence.push(Evidence::new("server_sees_client_serial", serial.clone()));
                }
            }
            findings.push(Finding {
                code: Code::TlsSession,
                severity: Severity::Info,
                summary: format!(
                    "TLS session established ({}, {})",
                    facts.version, facts.cipher_suite
                ),
                evidence,
                fix: None,
                modes: vec![],
            });
        }
        if let Some(StartupOutcome::Session {
            flood: Some(flood), ..
        }) = &tls.startup
        {
            findings.push(Finding {
                code: Code::ServerFlood,
                severity: Severity::Warning,
                summary: format!(
                    "the server answered the one-row pg_stat_ssl query with {} {}; the doctor kept what fits and counted the rest",
                    flood.count, flood.what
                ),
                evidence: vec![Evidence::new("count", flood.count)],
                fix: Some("no PostgreSQL server does this: check what answers on this port (a proxy or a hostile peer)".into()),
                modes: vec![],
            });
        }
    }
    // Errors first; among equals, the cause of the requested mode's failure first.
    let requested_code = cells[&input.requested].code;
    findings.sort_by_key(|f| {
        (
            std::cmp::Reverse(f.severity),
            Some(f.code) != requested_code,
        )
    });

    Judgement {
        cells,
        findings,
        chain,
        postgres_replied: postgres_replied(input),
        tls_session: input.tls.and_then(tls_session),
    }
}

fn is_chain_code(code: Code) -> bool {
    code.phase() == crate::catalogue::Phase::Chain
}

fn postgres_replied(input: &EvalInput) -> bool {
    let probe_replied = input
        .ssl_request_probe
        .is_some_and(|p| matches!(p.reply, Some(SslReply::Accepted) | Some(SslReply::Refused)));
    if probe_replied {
        return true;
    }
    let tls_replied = input.tls.is_some_and(|t| {
        matches!(
            t.reply,
            Some(SslReply::Accepted) | Some(SslReply::Refused) | Some(SslReply::ServerError { .. })
        ) || (t.reply.is_none() && t.handshake.as_ref().is_some_and(|h| h.is_ok()))
    });
    let plain_replied = input.plain.is_some_and(|p| {
        matches!(
            p.startup,
            Some(StartupOutcome::Session { .. })
                | Some(StartupOutcome::ServerError { .. })
                | Some(StartupOutcome::PasswordNeeded { .. })
                | Some(StartupOutcome::Withheld { .. })
                | Some(StartupOutcome::UnsupportedAuth { .. })
        )
    });
    tls_replied || plain_replied
}

/// libpq's sequence for one sslmode.
fn mode_path(input: &EvalInput, mode: SslMode, chain: &[CertSummary]) -> PathResult {
    if input.local.system_roots && mode != SslMode::VerifyFull {
        return Err(plain_failure(
            Problem::new(
                Code::SystemRootWeakSslmode,
                format!("weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"),
            )
            .with("libpq", "16 and later refuse the connection before connecting; 15 and older read a file named \"system\"")
            .fix("with sslrootcert=system use sslmode=verify-full (the default it implies), or name a root file for the weaker modes"),
            false,
        ));
    }
    if input.negotiation == crate::plan::Negotiation::Direct {
        return direct_path(input, mode, chain);
    }
    match mode {
        SslMode::Disable => plain_path(input),
        SslMode::Allow => match plain_path(input) {
            Err(first) if first.server_error => {
                tls_path(input, mode, chain).map_err(|then| then_failed(first, then))
            }
            other => other,
        },
        SslMode::Prefer => match tls_path(input, mode, chain) {
            Err(first) if first.falls_back => {
                plain_path_after_tls(input).map_err(|then| then_failed(first, then))
            }
            other => other,
        },
        _ => tls_path(input, mode, chain),
    }
}

/// sslnegotiation=direct: libpq 17 refuses the weak modes outright, and a server that does
/// not speak direct TLS ends the handshake before any certificate.
fn direct_path(input: &EvalInput, mode: SslMode, chain: &[CertSummary]) -> PathResult {
    if !mode.requires_tls() {
        return Err(plain_failure(
            Problem::new(
                Code::DirectTlsWeakSslmode,
                format!("weak sslmode \"{mode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"),
            )
            .fix("with sslnegotiation=direct use sslmode=require or stricter"),
            false,
        ));
    }
    if let Some(probe) = input.ssl_request_probe {
        let answer = match &probe.reply {
            Some(SslReply::Accepted) => Some("'S': it supports TLS through the SSLRequest"),
            Some(SslReply::Refused) => Some("'N': it has no TLS at all"),
            _ => None,
        };
        if let Some(answer) = answer {
            return Err(plain_failure(
                Problem::new(
                    Code::DirectTlsUnsupported,
                    "the server closed the connection on the direct-TLS ClientHello (libpq 17: SSL SYSCALL error: EOF detected); it does not speak direct TLS",
                )
                .with("ssl_request_answer", format!("the same server answered an SSLRequest with {answer}"))
                .with("server_log_says", "invalid length of startup packet")
                .fix("the server is PostgreSQL 16 or older, or a proxy that only understands the SSLRequest: use sslnegotiation=postgres (the default)"),
                true,
            ));
        }
    }
    if let Some(tls) = input.tls {
        if let Some(Ok(facts)) = &tls.handshake {
            if facts.alpn.as_deref() != Some("postgresql") {
                return Err(plain_failure(
                    Problem::new(
                        Code::DirectTlsUnsupported,
                        match &facts.alpn {
                            None => "direct SSL connection was established without ALPN protocol negotiation extension".to_string(),
                            Some(other) => format!("SSL connection was established with unexpected ALPN protocol \"{other}\""),
                        },
                    )
                    .fix("the TLS endpoint is not PostgreSQL 17's direct TLS (a proxy?); use sslnegotiation=postgres"),
                    true,
                ));
            }
        }
    }
    tls_path(input, mode, chain)
}

/// Both attempts of allow/prefer failed: the cell shows the first failure, in libpq's order,
/// and the second one counts against the mode as well.
fn then_failed(mut first: Failure, mut then: Failure) -> Failure {
    if then.undetermined {
        // What is unknown is the outcome; the cell says why it is unknown.
        then.also.push(first.problem);
        return then;
    }
    first.on_tls = then.on_tls;
    first.also.push(then.problem);
    first.also.extend(then.also);
    first
}

/// Why a mode that tries TLS ended in plaintext (for the fallback warning's evidence).
fn fallback_reason(input: &EvalInput, mode: SslMode, chain: &[CertSummary]) -> Option<Failure> {
    match mode {
        SslMode::Prefer | SslMode::Allow => tls_path(input, SslMode::Prefer, chain).err(),
        _ => None,
    }
}

/// Prefer's plaintext: on the same socket after `N`, else the plaintext connection.
fn plain_path_after_tls(input: &EvalInput) -> PathResult {
    if let Some(outcome) = input.tls.and_then(|t| t.plaintext_after_refusal.as_ref()) {
        return startup_result(outcome, input, false);
    }
    plain_path(input)
}

fn plain_path(input: &EvalInput) -> PathResult {
    if let Some(outcome) = input
        .plain
        .and_then(|p| p.startup.as_ref())
        .or_else(|| input.tls.and_then(|t| t.plaintext_after_refusal.as_ref()))
    {
        return startup_result(outcome, input, false);
    }
    if let Some(err) = input
        .plain
        .and_then(|p| p.connect_error.as_ref())
        .or_else(|| input.tls.and_then(|t| t.connect_error.as_ref()))
    {
        return Err(plain_failure(connect_problem(err, input.endpoint), false));
    }
    Err(Failure {
        problem: Problem::new(Code::CredentialsWithheld, "no plaintext attempt was made"),
        falls_back: false,
        server_error: false,
        undetermined: true,
        on_tls: false,
        also: Vec::new(),
    })
}

fn plain_failure(problem: Problem, on_tls: bool) -> Failure {
    Failure {
        problem,
        falls_back: false,
        server_error: false,
        undetermined: false,
        on_tls,
        also: Vec::new(),
    }
}

fn connect_problem(err: &ConnectFailure, endpoint: &Endpoint) -> Problem {
    match err {
        ConnectFailure::Resolve { host, reason } => Problem::new(
            Code::TcpConnectFailed,
            format!("could not translate host name \"{host}\" to address: {reason}"),
        )
        .with("host", Value::name(host.clone()))
        .fix("check the host name (DNS, /etc/hosts) or give hostaddr=<ip>"),
        ConnectFailure::Refused { addrs, reason } => Problem::new(
            Code::TcpConnectFailed,
            format!("connection to {} failed: {reason}", endpoint.display()),
        )
        .with("addresses", join_addrs(addrs))
        .with("error", reason.clone())
        .fix("is the server running on that host and accepting TCP/IP connections? Check listen_addresses and port in postgresql.conf, and firewalls"),
        ConnectFailure::Timeout { kind, addrs } => Problem::new(
            Code::ConnectTimeout,
            format!(
                "no TCP connection to {} within {}",
                endpoint.display(),
                timeout_name(*kind)
            ),
        )
        .with("addresses", join_addrs(addrs))
        .fix("a firewall dropping packets, or the wrong address; check with `nc -vz host port`"),
        ConnectFailure::ResolveTimeout { host, kind } => Problem::new(
            Code::ConnectTimeout,
            format!(
                "the resolver did not translate host name \"{host}\" to an address within {}",
                timeout_name(*kind)
            ),
        )
        .with("host", Value::name(host.clone()))
        .fix("the DNS server does not answer: check /etc/resolv.conf, or give hostaddr=<ip>"),
        ConnectFailure::Socket { path, reason } => Problem::new(
            Code::TcpConnectFailed,
            format!("connection to server on socket \"{path}\" failed: {reason}"),
        )
        .with("socket", path.clone())
        .fix("is the server running locally and accepting connections on that socket? Check unix_socket_directories"),
    }
}

fn join_addrs(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn timeout_name(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Step => "connect_timeout",
        TimeoutKind::Overall => "the --timeout budget",
    }
}

/// The TLS path at `mode`: SSLRequest reply, local set-up, handshake, chain, host name, auth.
fn tls_path(input: &EvalInput, mode: SslMode, chain: &[CertSummary]) -> PathResult {
    let Some(tls) = input.tls else {
        // The plaintext connection could not even be made: the TLS one would fail the same way.
        if let Some(err) = input.plain.and_then(|p| p.connect_error.as_ref()) {
            return Err(plain_failure(connect_problem(err, input.endpoint), false));
        }
        return Err(Failure {
            problem: Problem::new(
                Code::NotProbed,
                format!("the doctor made no TLS connection, so sslmode={mode} is not determined"),
            ),
            falls_back: false,
            server_error: false,
            undetermined: true,
            on_tls: true,
            also: Vec::new(),
        });
    };
    if let Some(err) = &tls.connect_error {
        return Err(plain_failure(connect_problem(err, input.endpoint), false));
    }
    let fallback = |problem: Problem| Failure {
        problem,
        falls_back: true,
        server_error: false,
        undetermined: false,
        on_tls: true,
        also: Vec::new(),
    };
    match &tls.reply {
        None | Some(SslReply::Accepted) => {}
        Some(SslReply::Refused) => {
            if mode.requires_tls() {
                return Err(plain_failure(
                    Problem::new(
                        Code::ServerSslUnsupported,
                        "server does not support SSL, but SSL was required",
                    )
                    .with("server_reply", "'N' to the SSLRequest")
                    .fix("on the server: ssl = on, ssl_cert_file and ssl_key_file in postgresql.conf, then `SELECT pg_reload_conf();` (check the server log for \"could not load server certificate file\")"),
                    false,
                ));
            }
            // allow/prefer continue in plaintext on the same socket.
            return match plain_path_after_tls(input) {
                Ok(_) => Ok(false),
                Err(f) => Err(f),
            };
        }
        Some(SslReply::ServerError { text }) => {
            return Err(plain_failure(
                Problem::new(
                    Code::ServerSslError,
                    "server sent an error response during SSL exchange",
                )
                .with("server_text_unauthenticated", text.clone())
                .fix("the text comes before TLS and is unauthenticated; on the server, look for fork or resource errors in the log (max_connections, memory, process limits)"),
                false,
            ))
        }
        Some(SslReply::Injected { extra }) => {
            return Err(plain_failure(
                Problem::new(
                    Code::SslResponseInjected,
                    format!(
                        "{} unexpected byte(s) followed the server's 'S' before the TLS handshake",
                        extra.len()
                    ),
                )
                .with("bytes", hex_preview(extra))
                .fix("something between client and server injects data (CVE-2021-23222); libpq 14.1+ refuses it. Check proxies and load balancers on the path"),
                false,
            ))
        }
        Some(SslReply::Foreign { bytes, peer }) => {
            return Err(plain_failure(
                Problem::new(
                    Code::NotPostgres,
                    format!("the peer at {} is {peer}, not PostgreSQL", input.endpoint.display()),
                )
                .with("first_bytes", hex_preview(bytes))
                .fix(if peer.contains("direct TLS") {
                    "the port speaks TLS at once (a TLS-terminating proxy or a PostgreSQL 17 direct-TLS port): try sslnegotiation=direct".to_string()
                } else {
                    "check the port: PostgreSQL listens on 5432 by default".to_string()
                }),
                false,
            ))
        }
        Some(SslReply::Unexpected { byte, following }) => {
            let mut bytes = vec![*byte];
            bytes.extend_from_slice(following);
            return Err(plain_failure(
                Problem::new(
                    Code::NotPostgres,
                    format!(
                        "received invalid response to SSL negotiation: {}",
                        crate::wire::printable(*byte)
                    ),
                )
                .with("first_bytes", hex_preview(&bytes))
                .fix("the port does not speak the PostgreSQL protocol; check host and port"),
                false,
            ))
        }
        Some(SslReply::Closed) | Some(SslReply::Reset(_)) => {
            let how = match &tls.reply {
                Some(SslReply::Reset(e)) => format!("reset the connection ({e})"),
                _ => "closed the connection".to_string(),
            };
            return Err(plain_failure(
                Problem::new(
                    Code::NotPostgres,
                    format!("the peer {how} in answer to the SSLRequest, which PostgreSQL never does"),
                )
                .fix("check host and port; a proxy in front of the server may be refusing the connection"),
                false,
            ));
        }
        Some(SslReply::Timeout(kind)) => {
            return Err(plain_failure(
                Problem::new(
                    Code::ConnectTimeout,
                    format!("no answer to the SSLRequest within {}", timeout_name(*kind)),
                )
                .fix("the port accepts connections but says nothing: not PostgreSQL, or an overloaded server or proxy"),
                false,
            ))
        }
    }

    // Local set-up: libpq loads its files after the server's 'S'.
    if mode.requires_root() {
        if let RootState::Absent { path } = &input.local.roots {
            let shown = path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.postgresql/root.crt".into());
            return Err(plain_failure(
                Problem::new(
                    Code::RootCertMissing,
                    format!("root certificate file \"{shown}\" does not exist"),
                )
                .with("looked_for", shown.clone())
                .fix(format!(
                    "put the CA certificate that signed the server's certificate in {shown}, or set sslrootcert=/path/to/ca.crt (sslrootcert=system for a public CA, libpq 16+)"
                )),
                true,
            ));
        }
    }
    if let RootState::Unreadable { path, reason } = &input.local.roots {
        return Err(fallback(
            Problem::new(
                Code::RootCertUnreadable,
                format!(
                    "could not read root certificate file \"{}\": {reason}",
                    path.display()
                ),
            )
            .with("file", Value::path(path))
            .fix("the file must hold PEM certificates (-----BEGIN CERTIFICATE-----); `openssl x509 -in FILE -noout -subject` shows whether it does"),
        ));
    }
    if let Some(problem) = &input.local.client_failure {
        return Err(fallback(problem.clone()));
    }

    match &tls.handshake {
        None => {
            return Err(fallback(Problem::new(
                Code::TlsHandshakeFailed,
                "no TLS handshake took place",
            )))
        }
        Some(Err(failure @ TlsFailure::Unemulated(_))) => {
            return Err(Failure {
                problem: handshake_problem(failure, tls, input),
                falls_back: false,
                server_error: false,
                undetermined: true,
                on_tls: true,
                also: Vec::new(),
            })
        }
        Some(Err(failure)) => return Err(fallback(handshake_problem(failure, tls, input))),
        Some(Ok(_)) => {}
    }

    // The server asked for the certificate, and libpq would have sent one the doctor's TLS
    // library cannot sign with: what follows is not what libpq would see.
    if let (Some(reason), Some(_)) = (&tls.client_key_unusable, &tls.client_ca_names) {
        return Err(Failure {
            problem: Problem::new(
                Code::ClientKeyUnsupported,
                format!("libpq would present the client certificate, but the doctor's TLS library cannot sign with its key ({reason}); the TLS verdicts are left undetermined"),
            )
            .fix("a P-256, P-384 or RSA 2048+ client key works with every client; or check this connection with psql"),
            falls_back: false,
            server_error: false,
            undetermined: true,
            on_tls: true,
            also: Vec::new(),
        });
    }
    let verifying = input.local.roots.is_loaded() || mode.requires_root();
    if verifying {
        if let RootState::Loaded { certs, source } = &input.local.roots {
            if let Err(failure) =
                trust::verify_chain(&tls.chain, certs, input.local.crl.as_ref(), input.now)
            {
                let mut problem = chain_problem(&failure, chain, certs, source, input.now);
                if let (ChainFailureKind::Revoked | ChainFailureKind::CrlIncomplete, Some(crl)) =
                    (failure.kind, &input.local.crl)
                {
                    problem.evidence.extend(crl.evidence());
                }
                if !mode.requires_root() {
                    problem = problem.with(
                        "why_verified",
                        format!(
                            "a root certificate file exists, so libpq verifies the chain at sslmode={mode} too"
                        ),
                    );
                }
                return Err(fallback(problem));
            }
        }
    }

    if mode == SslMode::VerifyFull {
        if let Some(problem) = hostname_problem(input.endpoint, chain) {
            return Err(plain_failure(problem, true));
        }
    }

    match &tls.startup {
        Some(outcome) => startup_result(outcome, input, true),
        None => Err(fallback(Problem::new(
            Code::ConnectionLost,
            "no startup took place",
        ))),
    }
}

fn hostname_problem(endpoint: &Endpoint, chain: &[CertSummary]) -> Option<Problem> {
    let leaf = chain.first()?;
    if endpoint.host.is_empty() {
        return Some(
            Problem::new(
                Code::ServerCertHostnameMismatch,
                "host name must be specified for a verified SSL connection",
            )
            .fix("verify-full checks the certificate against host=, never hostaddr=: add host=<name on the certificate> next to hostaddr"),
        );
    }
    if x509::host_matches(leaf, &endpoint.host) {
        return None;
    }
    let embedded_null = leaf
        .dns_names
        .iter()
        .chain(leaf.common_name.iter())
        .any(|n| n.contains('\0'));
    if embedded_null {
        return Some(
            Problem::new(
                Code::ServerCertHostnameMismatch,
                "SSL certificate's name contains embedded null",
            )
            .with("host", Value::name(endpoint.host.clone()))
            .with(
                "certificate_names",
                x509::presented_names(leaf).iter().map(|n| n.replace('\0', "\\0")).collect::<Vec<_>>().join(", "),
            )
            .fix("a name with a NUL byte is a classic spoofing trick (\"good.example\\0.evil.example\"); do not trust this certificate, and reissue it"),
        );
    }
    let names = x509::presented_names(leaf);
    let first = names.first().cloned().unwrap_or_default();
    let message = match names.len() {
        0 => "could not get server's host name from server certificate".to_string(),
        1 => format!(
            "server certificate for \"{first}\" does not match host name \"{}\"",
            endpoint.host
        ),
        n => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \"{}\"",
            n - 1,
            if n == 2 { "" } else { "s" },
            endpoint.host
        ),
    };
    let mut problem = Problem::new(Code::ServerCertHostnameMismatch, message)
        .with("host", Value::name(endpoint.host.clone()))
        .with("certificate_names", names.join(", "))
        .with("certificate_subject", Value::name(leaf.subject.clone()));
    if !leaf.dns_names.is_empty() {
        if let Some(cn) = &leaf.common_name {
            if x509::host_matches(
                &CertSummary {
                    dns_names: vec![],
                    ip_addresses: vec![],
                    ..leaf.clone()
                },
                &endpoint.host,
            ) {
                problem = problem.with(
                    "note",
                    format!("the CN \"{cn}\" matches, but libpq ignores the CN when the certificate has a DNS SAN"),
                );
            }
        }
    }
    let san = if endpoint.host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{}", endpoint.host)
    } else {
        format!("DNS:{}", endpoint.host)
    };
    let fix = match names.first() {
        Some(name) => format!(
            "connect with host={name} (one of the names the certificate holds; keep hostaddr= for the address), or reissue the server certificate with subjectAltName={san}"
        ),
        None => format!("reissue the server certificate with subjectAltName=DNS:{}", endpoint.host),
    };
    Some(problem.fix(fix))
}

fn handshake_problem(failure: &TlsFailure, tls: &TlsAttempt, input: &EvalInput) -> Problem {
    match failure {
        TlsFailure::Alert(alert @ Alert::ProtocolVersion) => Problem::new(
            Code::TlsVersionUnsupported,
            "the server refused every TLS version the client offers (TLS 1.2 and 1.3)",
        )
        .with("alert", Value::name(alert.name()))
        .fix("check ssl_min_protocol_version / ssl_max_protocol_version in postgresql.conf"),
        TlsFailure::Incompatible(why) => Problem::new(
            Code::TlsVersionUnsupported,
            format!("no TLS version or cipher suite in common with the server: {why}"),
        )
        .fix("check ssl_min_protocol_version, ssl_max_protocol_version and ssl_ciphers in postgresql.conf"),
        TlsFailure::Alert(alert) if tls.client_cert_sent && alert.refuses_certificate() => {
            client::refusal_problem(*alert, &input.local.client, tls, input.now, false)
        }
        TlsFailure::Alert(alert @ Alert::HandshakeFailure) if tls.chain.is_empty() => Problem::new(
            Code::TlsHandshakeFailed,
            "the server ended the TLS handshake with alert handshake_failure before sending its certificate",
        )
        .with("alert", Value::name(alert.name()))
        .with("likely_cause", "no cipher suite, key-exchange group or signature scheme in common (ssl_ciphers, ssl_ecdh_curve, or an unusual server key type)")
        .fix("check ssl_ciphers and ssl_ecdh_curve in postgresql.conf and the server key type (`openssl x509 -in server.crt -noout -text`)"),
        TlsFailure::Alert(alert) => Problem::new(
            Code::TlsHandshakeFailed,
            format!("the server ended the TLS handshake with alert {alert}"),
        )
        .with("alert", Value::name(alert.name()))
        .fix("the server log says why (\"could not accept SSL connection: ...\")"),
        TlsFailure::Eof => Problem::new(
            Code::TlsHandshakeFailed,
            "the server closed the connection during the TLS handshake",
        )
        .fix("the server log says why (\"could not accept SSL connection: ...\")"),
        TlsFailure::Reset(e) => Problem::new(
            Code::TlsHandshakeFailed,
            format!("the connection was reset during the TLS handshake: {e}"),
        ),
        TlsFailure::Timeout(kind) => Problem::new(
            Code::ConnectTimeout,
            format!("the TLS handshake did not finish within {}", timeout_name(*kind)),
        ),
        TlsFailure::Other(e) => Problem::new(Code::TlsHandshakeFailed, format!("TLS handshake failed: {e}")),
        TlsFailure::OnlyOldVersions { min, max } => Problem::new(
            Code::TlsVersionUnsupported,
            format!("SSL error: tlsv1 alert protocol version: libpq offers only {min} to {max} (ssl_max_protocol_version), which the server refuses"),
        )
        .with("ssl_min_protocol_version", min.clone())
        .with("ssl_max_protocol_version", max.clone())
        .with("libpq_says", format!("This may indicate that the server does not support any SSL protocol version between {min} and {max}."))
        .with("note", "PostgreSQL 13+ refuses TLS below 1.2 by default, and OpenSSL 3 at security level 2 (Debian's default) speaks neither TLS 1.0 nor 1.1; the doctor cannot offer them either")
        .fix("remove ssl_max_protocol_version, or set it to TLSv1.2 or TLSv1.3"),
        TlsFailure::Unemulated(why) => Problem::new(
            Code::TlsNotEmulated,
            format!("the doctor's TLS library cannot complete this handshake where libpq (OpenSSL) can: {why}; the TLS verdicts are left undetermined"),
        )
        .fix("check this connection with psql; an ECDSA P-256 or RSA (rsaEncryption) server key, or TLS 1.3, works with every client"),
    }
}

use crate::evidence::human_time as date;

/// "3 days ago", "in 1 day": computed here from the injected clock, never in rendering.
fn relative(unix: i64, now: i64) -> String {
    let days = (unix - now) / 86_400;
    let hours = (unix - now) / 3_600;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (days, hours) {
        (0, h) if h >= 0 => format!("in {}", plural(h, "hour")),
        (0, h) => format!("{} ago", plural(-h, "hour")),
        (d, _) if d > 0 => format!("in {}", plural(d, "day")),
        (d, _) => format!("{} ago", plural(-d, "day")),
    }
}

fn chain_problem(
    failure: &ChainFailure,
    chain: &[CertSummary],
    roots: &[Vec<u8>],
    source: &RootSource,
    now: i64,
) -> Problem {
    let subject_at = failure
        .cert
        .as_ref()
        .and_then(|d| x509::summarize(d).ok())
        .or_else(|| chain.get(failure.depth as usize).cloned());
    let root_file = match source {
        RootSource::File(p) => p.display().to_string(),
        RootSource::System => "the system's trusted roots".into(),
    };
    let which = match failure.depth {
        0 => "the server certificate".to_string(),
        d if (d as usize) < chain.len() => format!("the chain certificate at depth {d}"),
        _ => "the trust anchor in your root file".to_string(),
    };
    let mut problem = match failure.kind {
        ChainFailureKind::Expired => {
            let c = subject_at.clone();
            let until = c.as_ref().map(|c| c.not_after).unwrap_or(now);
            Problem::new(
                Code::ServerCertExpired,
                format!(
                    "{which} expired on {} ({})",
                    date(until),
                    relative(until, now)
                ),
            )
            .with("not_after", Value::Time(until))
            .fix(if failure.depth == 0 {
                "renew the server certificate (ssl_cert_file), then `SELECT pg_reload_conf();`".to_string()
            } else {
                format!("replace the expired CA certificate (in the server's chain or in {root_file}) with its renewed version")
            })
        }
        ChainFailureKind::NotYetValid => {
            let from = subject_at.as_ref().map(|c| c.not_before).unwrap_or(now);
            Problem::new(
                Code::ServerCertNotYetValid,
                format!("{which} is not valid until {} ({})", date(from), relative(from, now)),
            )
            .with("not_before", Value::Time(from))
            .fix("check the clocks of the client and of the machine that issued the certificate")
        }
        ChainFailureKind::UnknownCa => unknown_ca_problem(chain, roots, &root_file, failure),
        ChainFailureKind::Revoked => Problem::new(
            Code::ServerCertRevoked,
            format!("{which} is revoked by the loaded CRL"),
        )
        .fix("install a new, unrevoked server certificate; or, if the revocation is stale, update the CRL (sslcrl, sslcrldir or ~/.postgresql/root.crl)"),
        ChainFailureKind::CrlIncomplete => Problem::new(
            Code::CrlIncomplete,
            format!(
                "a CRL is loaded, so OpenSSL checks every certificate in the chain, and for {which} it found {}",
                failure.openssl_text
            ),
        )
        .fix("put a current CRL from every CA in the chain (root and intermediates) in the sslcrl file or the sslcrldir directory (named by `openssl rehash`), or remove sslcrl, sslcrldir and root.crl"),
        ChainFailureKind::WeakKey => Problem::new(
            Code::ServerCertWeakKey,
            format!(
                "{which} is too weak for OpenSSL security level 2 ({})",
                failure.openssl_text
            ),
        )
        .fix("reissue with an RSA key of at least 2048 bits (or EC P-256) and a SHA-256 signature: `openssl req -new -newkey rsa:3072 -sha256 ...`"),
        ChainFailureKind::WrongPurpose => Problem::new(
            Code::ServerCertWrongPurpose,
            format!("{which} may not be used by a TLS server ({})", failure.openssl_text),
        )
        .fix("reissue with extendedKeyUsage=serverAuth (or without an extendedKeyUsage extension)"),
        ChainFailureKind::Other => Problem::new(
            Code::ServerCertInvalid,
            format!("OpenSSL refused {which}: {}", failure.openssl_text),
        ),
    };
    if let Some(c) = &subject_at {
        problem = problem
            .with("certificate_subject", Value::name(c.subject.clone()))
            .with("certificate_issuer", Value::name(c.issuer.clone()));
    }
    problem
        .with("depth", failure.depth)
        .with(
            "openssl_error",
            format!("{} ({})", failure.openssl_text, failure.openssl_code),
        )
        .with("root_file", root_file)
        .with("libpq_says", "SSL error: certificate verify failed")
}

fn unknown_ca_problem(
    chain: &[CertSummary],
    roots: &[Vec<u8>],
    root_file: &str,
    failure: &ChainFailure,
) -> Problem {
    let root_summaries: Vec<CertSummary> = roots
        .iter()
        .filter_map(|d| x509::summarize(d).ok())
        .collect();
    let last = chain.last();
    let presented = chain
        .iter()
        .enumerate()
        .map(|(i, c)| format!("[{i}] {} (issuer {})", c.subject, c.issuer))
        .collect::<Vec<_>>()
        .join("; ");
    // A root file holding only an intermediate of this chain: OpenSSL wants the self-signed root.
    let partial = root_summaries.iter().find(|r| {
        !r.self_issued
            && chain
                .iter()
                .any(|c| c.issuer == r.subject || c.subject == r.subject)
    });
    let (summary, fix) = if let Some(inter) = partial {
        (
            format!(
                "the root file holds \"{}\", an intermediate CA, but not the self-signed root \"{}\" above it; libpq (OpenSSL) does not accept partial chains",
                inter.subject, inter.issuer
            ),
            format!("add the root CA certificate \"{}\" to {root_file}", inter.issuer),
        )
    } else {
        match last {
            Some(c) if c.self_issued => (
                format!(
                    "the server's chain ends at the self-signed certificate \"{}\", which is not in {root_file}",
                    c.subject
                ),
                format!(
                    "if \"{}\" is your CA, append it to {root_file}: `openssl s_client -starttls postgres -connect HOST:PORT -showcerts` prints it",
                    c.subject
                ),
            ),
            Some(c) => (
                format!(
                    "the server's chain ends at \"{}\", whose issuer \"{}\" the server did not send and {root_file} does not hold",
                    c.subject, c.issuer
                ),
                format!(
                    "append the CA certificate \"{}\" to {root_file}; if it is an intermediate, also set the server's ssl_cert_file to the server certificate followed by its intermediates",
                    c.issuer
                ),
            ),
            None => ("the server sent no certificate".into(), "check ssl_cert_file".into()),
        }
    };
    let mut p = Problem::new(Code::ServerCertUnknownCa, summary)
        .with("presented_chain", presented)
        .with(
            "root_file_holds",
            root_summaries
                .iter()
                .map(|r| r.subject.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
        .fix(fix);
    if let Some(l) = last {
        p = p.with("missing_issuer", Value::name(l.issuer.clone()));
    }
    p.with("openssl_reason", failure.openssl_text.clone())
}

fn expiry_findings(chain: &[CertSummary], now: i64, warn_days: i64, findings: &mut Vec<Finding>) {
    for (depth, cert) in chain.iter().enumerate() {
        let left = cert.not_after - now;
        if left > 0 && left <= warn_days * 86_400 {
            findings.push(Finding {
                code: Code::ServerCertExpiringSoon,
                severity: Severity::Warning,
                summary: format!(
                    "{} expires on {} ({})",
                    if depth == 0 {
                        "the server certificate".to_string()
                    } else {
                        format!("the chain certificate at depth {depth}")
                    },
                    date(cert.not_after),
                    relative(cert.not_after, now)
                ),
                evidence: vec![
                    Evidence::new("certificate_subject", Value::name(cert.subject.clone())),
                    Evidence::new("not_after", Value::Time(cert.not_after)),
                    Evidence::new("warn_days", warn_days),
                ],
                fix: Some("renew the certificate before it expires, then `SELECT pg_reload_conf();` on the server".into()),
                modes: vec![],
            });
        }
    }
}

fn hex_preview(bytes: &[u8]) -> String {
    let shown: Vec<u8> = bytes.iter().copied().take(32).collect();
    let text: String = shown
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        })
        .collect();
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{} \"{}\"{}",
        hex.join(" "),
        text,
        if bytes.len() > 32 { " ..." } else { "" }
    )
}

/// Turns a startup outcome into a path result.
fn startup_result(outcome: &StartupOutcome, input: &EvalInput, on_tls: bool) -> PathResult {
    let fail = |problem: Problem| Failure {
        problem,
        falls_back: false,
        server_error: false,
        undetermined: false,
        on_tls,
        also: Vec::new(),
    };
    match outcome {
        StartupOutcome::Session { .. } if on_tls && input.local.client.cert_mode == Some(crate::plan::CertMode::Require) => {
            let tls = input.tls;
            if tls.is_some_and(|t| t.client_ca_names.is_none()) {
                Err(fail(
                    Problem::new(Code::ServerNoClientCa, "server did not request an SSL certificate (sslcertmode=require)")
                        .fix("on the server, set ssl_ca_file so it requests client certificates; or lower sslcertmode to allow"),
                ))
            } else if tls.is_some_and(|t| !t.client_cert_sent) {
                Err(fail(
                    Problem::new(Code::ClientCertMissing, "server accepted connection without a valid SSL certificate (sslcertmode=require)")
                        .fix("configure sslcert and sslkey"),
                ))
            } else {
                Ok(true)
            }
        }
        StartupOutcome::Session { .. } => Ok(on_tls),
        StartupOutcome::PasswordNeeded { method } if input.password_unknown.is_some() => {
            Err(Failure {
                problem: Problem::new(
                    Code::PassfileUnread,
                    format!(
                        "the server asks for a password ({method}); {}",
                        input.password_unknown.unwrap_or_default()
                    ),
                )
                .with("method", method.clone())
                .fix("make the passfile smaller than 1 MiB and a regular file, or give the password with PGPASSWORD for this check"),
                falls_back: false,
                server_error: false,
                undetermined: true,
                on_tls,
                also: Vec::new(),
            })
        }
        StartupOutcome::PasswordNeeded { method } => Err(fail(
            Problem::new(
                Code::PasswordRequired,
                format!("the server asks for a password ({method}) and none was given: fe_sendauth: no password supplied"),
            )
            .with("method", method.clone())
            .with("encryption", encryption_name(on_tls))
            .fix(format!(
                "add a line to ~/.pgpass (chmod 0600): {}:{}:{}:{}:PASSWORD, or set PGPASSWORD",
                pgpass_host(input.endpoint),
                input.endpoint.port,
                input.dbname,
                input.user
            )),
        )),
        StartupOutcome::Withheld { method } => Err(Failure {
            problem: Problem::new(
                Code::CredentialsWithheld,
                format!(
                    "the server asks for a password ({method}) {}; the doctor did not send it because libpq at sslmode={} would not use this connection",
                    if on_tls { "over TLS" } else { "in plaintext" },
                    input.requested
                ),
            )
            .with("method", method.clone())
            .fix("run the doctor with that sslmode to test the password there (add --allow-cleartext-password for method 'password' without TLS)"),
            falls_back: false,
            server_error: false,
            undetermined: true,
            on_tls,
            also: Vec::new(),
        }),
        StartupOutcome::ServerError { fields, stage, .. } => {
            let problem = server_error_problem(fields, *stage, input, on_tls);
            Err(Failure {
                problem,
                falls_back: fields.code != "57P03",
                server_error: true,
                undetermined: false,
                on_tls,
                also: Vec::new(),
            })
        }
        StartupOutcome::Alert(alert) => {
            let sent = input.tls.is_some_and(|t| t.client_cert_sent);
            let problem = match input.tls {
                Some(tls) if sent && alert.refuses_certificate() => {
                    client::refusal_problem(*alert, &input.local.client, tls, input.now, true)
                }
                _ => Problem::new(
                    Code::TlsHandshakeFailed,
                    format!("the server sent TLS alert {alert} after the handshake"),
                )
                .with("alert", Value::name(alert.name())),
            };
            Err(fail(problem))
        }
        StartupOutcome::ChannelBinding(reason) => Err(fail(
            Problem::new(Code::ChannelBindingFailed, reason.clone())
                .with("channel_binding", "require")
                .fix("channel binding needs TLS and SCRAM-SHA-256 on the server (password_encryption = scram-sha-256, a scram-sha-256 line in pg_hba.conf); or lower channel_binding to prefer"),
        )),
        StartupOutcome::Closed => {
            let mut problem = Problem::new(
                Code::ConnectionLost,
                "server closed the connection unexpectedly during startup",
            )
            .fix("the server log says why; under TLS 1.3 this can also be a refused client certificate");
            if on_tls && input.tls.is_some_and(|t| t.client_cert_sent) {
                problem = problem.with(
                    "likely_cause",
                    "a client certificate was sent over TLS 1.3; the server may have refused it without an alert",
                );
            }
            Err(fail(problem))
        }
        StartupOutcome::Reset(e) => Err(fail(Problem::new(
            Code::ConnectionLost,
            format!("the connection was reset during startup: {e}"),
        ))),
        StartupOutcome::Timeout(kind) => Err(fail(Problem::new(
            Code::ConnectTimeout,
            format!("no answer to the startup message within {}", timeout_name(*kind)),
        ))),
        StartupOutcome::Protocol(e) => Err(fail(Problem::new(
            Code::ProtocolViolation,
            format!("the server broke the protocol: {e}"),
        ))),
        StartupOutcome::Flood(flood) => Err(fail(
            Problem::new(
                Code::ServerFlood,
                format!(
                    "the server sent more than {} {}; no real server does, and libpq would wait until it stopped",
                    flood.count - 1,
                    flood.what
                ),
            )
            .with("count", flood.count)
            .fix("check what answers on this port: a proxy or a hostile peer is keeping the client busy"),
        )),
        StartupOutcome::ServerProofInvalid => Err(fail(
            Problem::new(
                Code::ScramServerProofInvalid,
                "the server's SCRAM signature is wrong: it did not prove it knows the password (a man in the middle, or a broken proxy)",
            )
            .fix("do not trust this endpoint; connect with sslmode=verify-full and channel_binding=require"),
        )),
        StartupOutcome::UnsupportedAuth { method } => Err(fail(Problem::new(
            Code::AuthMethodUnsupported,
            format!("the server asks for {method}, which the doctor cannot complete"),
        ))),
    }
}

fn encryption_name(on_tls: bool) -> &'static str {
    if on_tls {
        "SSL encryption"
    } else {
        "no encryption"
    }
}

fn pgpass_host(endpoint: &Endpoint) -> String {
    if endpoint.host.is_empty() {
        endpoint.hostaddr.map(|a| a.to_string()).unwrap_or_default()
    } else {
        endpoint.host.clone()
    }
}

fn server_error_problem(
    fields: &ErrorFields,
    stage: AuthStage,
    input: &EvalInput,
    on_tls: bool,
) -> Problem {
    let msg = &fields.message;
    let (code, fix): (Code, String) = match fields.code.as_str() {
        "28000" if msg.starts_with("no pg_hba.conf entry") => (
            Code::HbaNoEntry,
            format!(
                "add a line to pg_hba.conf, e.g. `{} {} {} <client-address>/32 scram-sha-256`, then `SELECT pg_reload_conf();`",
                if on_tls { "hostssl" } else { "host" },
                input_db(input),
                input_user(input)
            ),
        ),
        "28000" if msg.starts_with("pg_hba.conf rejects") => (
            Code::HbaReject,
            "a reject line in pg_hba.conf matches first; connect with the encryption an earlier line allows (hostssl lines need TLS), or change the rules".into(),
        ),
        "28000" if msg.starts_with("role ") && msg.ends_with("does not exist") => (
            Code::RoleMissing,
            format!("CREATE ROLE \"{}\" LOGIN; or connect as an existing role (user=...)", input_user(input)),
        ),
        "28000" if msg.contains("is not permitted to log in") => (
            Code::ServerRefused,
            format!("ALTER ROLE \"{}\" LOGIN;", input_user(input)),
        ),
        "3D000" => (
            Code::DatabaseMissing,
            format!(
                "CREATE DATABASE \"{}\"; or name an existing database (dbname=...; libpq defaults it to the user name)",
                input_db(input)
            ),
        ),
        "28P01" if stage == AuthStage::AfterSaslFinal => (
            Code::ClientCertCnMismatch,
            "the password was right (the server proved it with its SCRAM final message), so clientcert=verify-full refused the certificate's CN/DN: the CN must equal the user name, or use map= with pg_ident.conf".into(),
        ),
        "28P01" => (
            Code::PasswordFailed,
            "check the password (~/.pgpass, PGPASSWORD); the server hides a missing role behind the same error, its log says which (\"Role ... does not exist\" or \"Password does not match\")".into(),
        ),
        "53300" => (
            Code::TooManyConnections,
            "raise max_connections or the role/database CONNECTION LIMIT, or use a pooler".into(),
        ),
        "57P03" => (
            Code::ServerNotReady,
            "wait for the server to finish starting or recovering; check the server log".into(),
        ),
        "28000" if msg.starts_with("connection requires a valid client certificate") => (
            Code::ClientCertMissing,
            "give the client certificate and key (sslcert=..., sslkey=..., or ~/.postgresql/postgresql.crt and .key)".into(),
        ),
        "F0000" if msg.contains("root certificate store") => (
            Code::ServerCaMissing,
            "on the server, set ssl_ca_file to the CA that issues client certificates, then reload".into(),
        ),
        "28000" if msg.starts_with("certificate authentication failed") || msg.starts_with("\"trust\" authentication failed") => (
            Code::ClientCertCnMismatch,
            "the client certificate's CN must equal the user name (or be mapped with map= in pg_ident.conf)".into(),
        ),
        _ => (Code::ServerRefused, "the server's message says why; its log has details".into()),
    };
    let mut problem = Problem::new(code, format!("{}:  {}", fields.severity, msg))
        .with("sqlstate", fields.code.clone())
        .with("server_message", msg.clone())
        .with("encryption", encryption_name(on_tls));
    if let Some(d) = &fields.detail {
        problem = problem.with("server_detail", d.clone());
    }
    if let Some(h) = &fields.hint {
        problem = problem.with("server_hint", h.clone());
    }
    if fields.code == "28P01" {
        if let Some(source) = &input.password_source {
            problem = problem.with("password_source", source.clone());
        }
    }
    let cert_sent = on_tls && input.tls.is_some_and(|t| t.client_cert_sent);
    match code {
        Code::ClientCertCnMismatch => {
            problem = client::name_check(problem, &input.local.client, input.user);
            let certain = msg.starts_with("\"trust\" authentication failed")
                || stage == AuthStage::AfterSaslFinal;
            let cn = client::cert_name(&input.local.client);
            let verdict = match (certain, cn.as_deref() == Some(input.user)) {
                (true, _) => "certain: only the clientcert=verify-full CN/DN check fails this way".to_string(),
                (false, false) => format!(
                    "the certificate's CN \"{}\" is not the user \"{}\" and no map= mapped it",
                    cn.unwrap_or_default(),
                    input.user
                ),
                (false, true) => "the CN equals the user, so a map= (pg_ident.conf) or clientname=DN is in play and did not map the certificate's name".into(),
            };
            problem = problem.with("cause", verdict);
        }
        Code::ClientCertMissing => {
            if let Some(tls) = input.tls {
                problem = problem.with(
                    "why_none_was_sent",
                    client::why_no_certificate(&input.local.client, tls),
                );
            }
        }
        Code::PasswordFailed
            if cert_sent
                && client::cert_name(&input.local.client).as_deref() != Some(input.user) =>
        {
            problem = client::name_check(problem, &input.local.client, input.user).with(
                "likely_cause",
                "likely: a clientcert=verify-full CN mismatch (the certificate's CN is not the user); with md5/password the wire cannot prove it, the server log says \"CN mismatch\"",
            );
        }
        _ => {}
    }
    if stage == AuthStage::AfterSaslFinal {
        problem = problem.with(
            "note",
            "the server proved it knows the password (valid SCRAM final message) before refusing",
        );
    }
    let (problem, fix) = hba_evidence(problem, fix, input, on_tls);
    problem.fix(fix)
}

/// The connection as the server saw it, for the pg_hba.conf evaluator.
fn hba_connection(input: &EvalInput, on_tls: bool) -> crate::hba::matcher::Connection {
    let (local, server) = if on_tls {
        (
            input.tls.and_then(|t| t.local_addr),
            input.tls.and_then(|t| t.addr),
        )
    } else {
        (
            input
                .plain
                .and_then(|p| p.local_addr)
                .or(input.tls.and_then(|t| t.local_addr)),
            input
                .plain
                .and_then(|p| p.addr)
                .or(input.tls.and_then(|t| t.addr)),
        )
    };
    crate::hba::matcher::Connection {
        local: input.endpoint.is_unix_socket(),
        ssl: on_tls,
        client_ip: local.map(|a| a.ip()),
        server_ip: server.map(|a| a.ip()),
        user: input.user.to_string(),
        database: input.dbname.to_string(),
        replication: false,
    }
}

/// Adds the deciding pg_hba.conf line (and, for no entry, the near misses) to a server error.
fn hba_evidence(
    mut problem: Problem,
    mut fix: String,
    input: &EvalInput,
    on_tls: bool,
) -> (Problem, String) {
    let Some(ctx) = input.hba else {
        return (problem, fix);
    };
    use crate::hba::matcher;
    let conn = hba_connection(input, on_tls);
    let decision = matcher::decide(&ctx.hba.rules, &conn);
    match decision.rule {
        Some(rule) => {
            problem = problem
                .with("hba_file", Value::path(&rule.file))
                .with("hba_line", Value::line(rule.line_number))
                .with("hba_rule", rule.raw.clone());
            if problem.code == Code::HbaNoEntry {
                problem = problem.with(
                    "hba_disagrees",
                    format!("the server found no entry, but line {} of the given file matches: the server runs other rules (not reloaded, or a different file)", rule.line_number),
                );
            }
            if matches!(
                problem.code,
                Code::ClientCertCnMismatch | Code::PasswordFailed
            ) {
                let view = &input.local.client;
                let cn = view.leaf.as_ref().and_then(|l| l.common_name.as_deref());
                let dn = view.leaf.as_ref().map(|l| rfc2253(&l.subject));
                let ident = ctx
                    .ident
                    .as_ref()
                    .map(|i| i.rules.as_slice())
                    .unwrap_or_default();
                if let matcher::CertNameVerdict::Refused { why, .. } =
                    matcher::cert_name_verdict(rule, cn, dn.as_deref(), input.user, ident)
                {
                    problem = problem.with("hba_cert_check", why);
                }
            }
        }
        None => {
            problem = problem.with("hba_rule", format!("no line of {} matches", ctx.source));
            if problem.code == Code::HbaNoEntry {
                for (rule, why) in matcher::near_misses(&ctx.hba.rules, &conn).iter() {
                    problem = problem.with(
                        "near_miss",
                        format!(
                            "line {} \"{}\": {}",
                            rule.line_number,
                            rule.raw,
                            why.describe()
                        ),
                    );
                }
                let client = conn
                    .client_ip
                    .map(|ip| {
                        if ip.is_ipv4() {
                            format!("{ip}/32")
                        } else {
                            format!("{ip}/128")
                        }
                    })
                    .unwrap_or_else(|| "ADDRESS".into());
                fix = format!(
                    "add to {}: `{} {} {} {client} scram-sha-256`, then `SELECT pg_reload_conf();`",
                    ctx.source,
                    if on_tls { "hostssl" } else { "host" },
                    input.dbname,
                    input.user
                );
            }
        }
    }
    if !decision.assumptions.is_empty() {
        problem = problem.with("hba_assumptions", decision.assumptions.join("; "));
    }
    (problem, fix)
}

/// x509-parser prints `CN=a, O=b` in certificate order; PostgreSQL compares RFC 2253
/// (reversed, comma-separated without blanks).
fn rfc2253(subject: &str) -> String {
    let mut parts: Vec<&str> = subject.split(", ").collect();
    parts.reverse();
    parts.join(",")
}

fn input_user(input: &EvalInput) -> String {
    input.user.to_string()
}

fn input_db(input: &EvalInput) -> String {
    input.dbname.to_string()
}

/// Whether libpq at `mode` would accept the TLS connection that presented `chain`: local
/// set-up, chain trust (when verifying) and host name. Decides if the password may be sent.
pub fn tls_acceptable(
    local: &LocalSetup,
    endpoint: &Endpoint,
    chain_der: &[Vec<u8>],
    mode: SslMode,
    now: i64,
) -> bool {
    if local.client_failure.is_some() || matches!(local.roots, RootState::Unreadable { .. }) {
        return false;
    }
    let chain_trusted = match &local.roots {
        RootState::Loaded { certs, .. } => {
            trust::verify_chain(chain_der, certs, local.crl.as_ref(), now).is_ok()
        }
        _ => !mode.requires_root(),
    };
    if !chain_trusted {
        return false;
    }
    if mode == SslMode::VerifyFull {
        let chain: Vec<CertSummary> = chain_der
            .iter()
            .filter_map(|d| x509::summarize(d).ok())
            .collect();
        if hostname_problem(endpoint, &chain).is_some() {
            return false;
        }
    }
    true
}

/// Whether the TLS attempt fails at `mode` in a way after which prefer falls back to plaintext.
pub fn tls_falls_back(input: &EvalInput, mode: SslMode) -> bool {
    let chain = observed_chain(input);
    matches!(tls_path(input, mode, &chain), Err(f) if f.falls_back)
}

/// The password gate for one host: the password goes only where libpq at that sslmode
/// would itself use the connection.
pub struct Gate<'a> {
    pub local: &'a LocalSetup,
    pub endpoint: &'a Endpoint,
    pub now: i64,
    pub user: &'a str,
    pub dbname: &'a str,
    pub negotiation: crate::plan::Negotiation,
}

impl crate::observe::PasswordGate for Gate<'_> {
    fn tls_permit(&self, mode: SslMode, chain: &[Vec<u8>]) -> crate::observe::PasswordPermit {
        permit_at(self.local, self.endpoint, chain, mode, self.now)
    }

    fn prefer_falls_back(&self, tls: &TlsAttempt) -> bool {
        let input = EvalInput {
            endpoint: self.endpoint,
            requested: SslMode::Prefer,
            local: self.local,
            tls: Some(tls),
            plain: None,
            now: self.now,
            warn_days: 0,
            user: self.user,
            dbname: self.dbname,
            password_source: None,
            password_unknown: None,
            hba: None,
            server_log: None,
            negotiation: self.negotiation,
            ssl_request_probe: None,
        };
        tls_falls_back(&input, SslMode::Prefer)
    }
}

/// Quotes the server's log: the reasons it never sends, and the pg_hba.conf line it matched.
fn server_log_findings(
    log: &crate::serverlog::LogReasons,
    input: &EvalInput,
    requested_cell: &Cell,
    findings: &mut Vec<Finding>,
) {
    if log.matched.is_none() && log.reasons.is_empty() {
        return;
    }
    let mut evidence = vec![Evidence::new("log", log.source.clone())];
    if let Some((file, line, rule)) = &log.matched {
        evidence.push(Evidence::new("hba_file", file.clone()));
        evidence.push(Evidence::new("hba_line", Value::line(*line)));
        evidence.push(Evidence::new("hba_rule", rule.clone()));
        if input.hba.is_none() {
            findings.push(Finding {
                code: Code::HbaRule,
                severity: Severity::Info,
                summary: format!(
                    "the server log says the connection matched line {line} of {file}: {rule}"
                ),
                evidence: evidence.clone(),
                fix: None,
                modes: vec![],
            });
        }
    }
    for reason in &log.reasons {
        evidence.push(Evidence::new("server_says", reason));
    }
    // The failing finding of the requested mode gains the server's words.
    if let Some(code) = requested_cell.code {
        if let Some(f) = findings.iter_mut().find(|f| f.code == code) {
            for reason in &log.reasons {
                f.evidence.push(Evidence::new("server_log", reason.clone()));
            }
            if let Some((_, line, rule)) = &log.matched {
                if !f.evidence.iter().any(|e| e.key == "hba_line") {
                    f.evidence
                        .push(Evidence::new("hba_line", Value::line(*line)));
                    f.evidence.push(Evidence::new("hba_rule", rule.clone()));
                }
            }
        }
    }
    findings.push(Finding {
        code: Code::ServerLogReason,
        severity: Severity::Info,
        summary: match log.reasons.first() {
            Some(r) => format!("the server's log says: {r}"),
            None => "the server's log names the pg_hba.conf line it used".into(),
        },
        evidence,
        fix: None,
        modes: vec![],
    });
}

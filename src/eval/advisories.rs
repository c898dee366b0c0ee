//! Findings that break no sslmode today: expiry ahead, the server's log, the session.

use std::collections::BTreeMap;

use crate::catalogue::{Code, Severity};
use crate::eval::assessment::Assessment;
use crate::eval::causes::network::hba_connection;
use crate::eval::client_cert::{self};
use crate::eval::model::*;
use crate::eval::prose::*;
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;
use crate::observe::{StartupOutcome, TlsAttempt};
use crate::sslmode::SslMode;
use crate::trust::{self, RootState};
use crate::x509::{self, CertSummary};

/// The facts of a judged host that break nothing today, added to its findings: a Unix
/// socket, a plaintext fallback, expiry ahead, an ignored CRL, the server's log, the
/// deciding pg_hba.conf line, the client certificate's local checks, what rustls-based
/// clients would refuse, the session and a flood.
pub(in crate::eval) fn add(
    input: &EvalInput,
    cells: &BTreeMap<SslMode, Cell>,
    assessment: &Assessment,
    findings: &mut Vec<Finding>,
) {
    let chain = &assessment.chain;
    let unix = input.endpoint.is_unix_socket();
    let requested_cell = &cells[&input.requested];
    findings.extend(authenticated(input, requested_cell));
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
    expiry_findings(chain, input.now, input.warn_days, findings);
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
        server_log_findings(log, input, requested_cell, findings);
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
    for f in client_cert::local_findings(
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
        if !tls.chain.is_empty() && openssl_full && assessment.trusted() {
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
                Evidence::new("tls_version", facts.version.name()),
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
                    facts.version.name(),
                    facts.cipher_suite
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
}

pub(in crate::eval) fn expiry_findings(
    chain: &[CertSummary],
    now: i64,
    warn_days: i64,
    findings: &mut Vec<Finding>,
) {
    for (depth, cert) in chain.iter().enumerate() {
        let left = cert.not_after - now;
        if left > 0 && left <= warn_days * 86_400 {
            findings.push(Finding {
                code: Code::ServerCertExpiringSoon,
                severity: Severity::Warning,
                summary: format!(
                    "{} expires on {}",
                    which_certificate(depth, chain.len()),
                    instant(cert.not_after, now)
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

/// Quotes the server's log: the reasons it never sends, and the pg_hba.conf line it matched.
pub(in crate::eval) fn server_log_findings(
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

/// How the requested connection logged in, when it did.
fn authenticated(input: &EvalInput, cell: &Cell) -> Option<Finding> {
    if cell.ok != Some(true) {
        return None;
    }
    let tls_startup = input.tls.and_then(|t| t.startup.as_ref());
    let plain_startup = input.plain.and_then(|p| p.startup.as_ref());
    let startup = match cell.encrypted {
        true => tls_startup,
        // allow/prefer after an 'N' continue in plaintext on the TLS attempt's socket.
        false => plain_startup.or(tls_startup),
    }?;
    let StartupOutcome::Session {
        method,
        channel_binding_used,
        ..
    } = startup
    else {
        return None;
    };
    let cert_sent = cell.encrypted && input.tls.is_some_and(|t| t.client_cert_sent);
    let how = describe_authentication(
        method,
        *channel_binding_used,
        cert_sent,
        input.endpoint.is_unix_socket(),
    );
    Some(Finding {
        code: Code::Authenticated,
        severity: Severity::Info,
        summary: format!(
            "logged in as \"{}\" to database \"{}\" {}: {how}",
            input.user,
            input.dbname,
            if cell.encrypted {
                "over TLS"
            } else {
                "without TLS"
            }
        ),
        evidence: vec![
            Evidence::new("authentication", method.clone()),
            Evidence::new("channel_binding", *channel_binding_used),
            Evidence::new("client_certificate_sent", cert_sent),
        ],
        fix: None,
        modes: vec![],
    })
}

/// The authentication in words: what the wire shows of it. A login with no request at all
/// is trust, or cert (or peer) that asked nothing more: the wire cannot tell them apart.
fn describe_authentication(method: &str, binding: bool, cert_sent: bool, unix: bool) -> String {
    match method {
        m if m.starts_with("SASL") && binding => "SCRAM-SHA-256-PLUS with channel binding (tls-server-end-point): the server proved it knows the password, on this very TLS connection".into(),
        m if m.starts_with("SASL") => "SCRAM-SHA-256, without channel binding".into(),
        "md5" => "an md5 password (scram-sha-256 is stronger)".into(),
        "password" => "a password sent as it is (method password)".into(),
        "trust" if cert_sent => "no password was asked: the server took the client certificate (method cert, or trust)".into(),
        "trust" if unix => "no password was asked: peer (the OS user) or trust".into(),
        "trust" => "no password was asked: trust (or another method that asks for nothing)".into(),
        other => other.to_string(),
    }
}

pub(in crate::eval) fn tls_session(tls: &TlsAttempt) -> Option<TlsSession> {
    let facts = tls.handshake.as_ref()?.as_ref().ok()?;
    Some(TlsSession {
        version: facts.version.name().to_string(),
        cipher_suite: facts.cipher_suite.clone(),
        key_exchange_group: facts.key_exchange_group.clone(),
        alpn: facts.alpn.clone(),
        client_ca_names: client_cert::ca_names(tls),
        client_cert_sent: tls.client_cert_sent,
    })
}

fn is_chain_code(code: Code) -> bool {
    code.phase() == crate::catalogue::Phase::Chain
}

//! Causes at startup and authentication: the server's ErrorResponse by SQLSTATE, passwords,
//! SCRAM, and the pg_hba.conf line that decided.

use crate::catalogue::Code;
use crate::eval::causes::hba_fix::{no_entry_fix, RELOAD};
use crate::eval::causes::network::*;
use crate::eval::client_cert::{self};
use crate::eval::model::*;
use crate::eval::prose::*;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::observe::{AuthStage, StartupOutcome};
use crate::plan::Endpoint;
use crate::wire::sqlstate;
use crate::wire::ErrorFields;

/// Turns a startup outcome into a path result.
pub(in crate::eval) fn startup_result(
    outcome: &StartupOutcome,
    input: &EvalInput,
    on_tls: bool,
) -> PathResult {
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
                        .fix("on the server, set ssl_ca_file to the CA of the client certificates, so that it requests one, then `SELECT pg_reload_conf();`"),
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
        StartupOutcome::ServerError {
            fields,
            stage,
            method,
        } => {
            let mut problem = server_error_problem(fields, *stage, input, on_tls);
            if let Some(method) = method {
                problem = problem.with("authentication", method.clone());
            }
            Err(Failure {
                problem,
                // libpq retries only a failed startup; a session it already handed over
                // that ends at its first query is the application's error.
                falls_back: fields.code != sqlstate::CANNOT_CONNECT_NOW
                    && *stage != AuthStage::FirstQuery,
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
                    client_cert::refusal_problem(*alert, &input.local.client, tls, input.now, true)
                }
                Some(tls) if !sent && *alert == crate::observe::Alert::CertificateRequired => {
                    client_cert::demanded_problem(*alert, tls, &input.local.client)
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
                .fix("channel binding needs TLS and SCRAM-SHA-256 on the server: password_encryption = scram-sha-256, the user's password set again, and a hostssl ... scram-sha-256 line in pg_hba.conf"),
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
        StartupOutcome::Timeout(kind) => Err(fail(crate::eval::causes::pooler::silent_login(
            Problem::new(
                Code::ConnectTimeout,
                format!("no answer to the startup message within {}", timeout_name(*kind)),
            ),
            input,
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

pub(in crate::eval) fn pgpass_host(endpoint: &Endpoint) -> String {
    if endpoint.host.is_empty() {
        endpoint.hostaddr.map(|a| a.to_string()).unwrap_or_default()
    } else {
        endpoint.host.clone()
    }
}

pub(in crate::eval) fn server_error_problem(
    fields: &ErrorFields,
    stage: AuthStage,
    input: &EvalInput,
    on_tls: bool,
) -> Problem {
    let problem = refusal_problem(fields, stage, input, on_tls);
    // libpq stops at a pre-3.0 error: what psql prints is that text, not the message after.
    match &fields.pre_v3_text {
        Some(text) if text.is_empty() => problem.with("libpq_shows", "nothing: the peer first sent a pre-3.0 error with no text, which is all libpq reads (psql prints an empty message after \"failed:\"); the message here came after it"),
        Some(text) if *text != fields.message => problem.with("libpq_shows", text.clone()),
        _ => problem,
    }
}

fn refusal_problem(
    fields: &ErrorFields,
    stage: AuthStage,
    input: &EvalInput,
    on_tls: bool,
) -> Problem {
    if let Some(problem) = crate::eval::causes::pooler::pooler_refusal(fields, stage, input, on_tls)
    {
        return problem;
    }
    let msg = &fields.message;
    let (code, fix): (Code, String) = match fields.code.as_str() {
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.starts_with("no pg_hba.conf entry") => (
            Code::HbaNoEntry,
            no_entry_fix(input, on_tls, "pg_hba.conf", "<client-address>/32", "scram-sha-256", RELOAD),
        ),
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.starts_with("pg_hba.conf rejects") => (
            Code::HbaReject,
            "a reject line in pg_hba.conf matches first; connect with the encryption an earlier line allows (hostssl lines need TLS), or change the rules".into(),
        ),
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.starts_with("role ") && msg.ends_with("does not exist") => (
            Code::RoleMissing,
            format!("CREATE ROLE \"{}\" LOGIN; or connect as an existing role (user=...)", input_user(input)),
        ),
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.contains("is not permitted to log in") => (
            Code::ServerRefused,
            format!("ALTER ROLE \"{}\" LOGIN;", input_user(input)),
        ),
        sqlstate::INVALID_CATALOG_NAME => (
            Code::DatabaseMissing,
            format!(
                "CREATE DATABASE \"{}\"; or name an existing database (dbname=...; libpq defaults it to the user name)",
                input_db(input)
            ),
        ),
        sqlstate::INVALID_PASSWORD if stage == AuthStage::AfterSaslFinal => (
            Code::ClientCertCnMismatch,
            "the password was right (the server proved it with its SCRAM final message), so clientcert=verify-full refused the certificate's CN/DN: the CN must equal the user name, or use map= with pg_ident.conf".into(),
        ),
        sqlstate::INVALID_PASSWORD => (
            Code::PasswordFailed,
            "check the password (~/.pgpass, PGPASSWORD); the server hides a missing role behind the same error, its log says which (\"Role ... does not exist\" or \"Password does not match\")".into(),
        ),
        sqlstate::TOO_MANY_CONNECTIONS => (
            Code::TooManyConnections,
            "raise max_connections or the role/database CONNECTION LIMIT, or use a pooler".into(),
        ),
        sqlstate::CANNOT_CONNECT_NOW => (
            Code::ServerNotReady,
            "wait for the server to finish starting or recovering; check the server log".into(),
        ),
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.starts_with("connection requires a valid client certificate") => (
            Code::ClientCertMissing,
            "give the client certificate and key (sslcert=..., sslkey=..., or ~/.postgresql/postgresql.crt and .key)".into(),
        ),
        sqlstate::CONFIG_FILE_ERROR if msg.contains("root certificate store") => (
            Code::ServerCaMissing,
            "on the server, set ssl_ca_file to the CA that issues client certificates, then reload".into(),
        ),
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION if msg.starts_with("certificate authentication failed") || msg.starts_with("\"trust\" authentication failed") => (
            Code::ClientCertCnMismatch,
            "the client certificate's CN must equal the user name (or be mapped with map= in pg_ident.conf)".into(),
        ),
        _ => (Code::ServerRefused, "the server's message says why; its log has details".into()),
    };
    let summary = diagnosis(code, fields, input, on_tls)
        .unwrap_or_else(|| format!("{}:  {}", fields.severity, msg));
    let mut problem = Problem::new(code, summary)
        .with("sqlstate", fields.code.clone())
        .with("server_message", msg.clone())
        .with("encryption", encryption_name(on_tls));
    if let Some(d) = &fields.detail {
        problem = problem.with("server_detail", d.clone());
    }
    if let Some(h) = &fields.hint {
        problem = problem.with("server_hint", h.clone());
    }
    if fields.code == sqlstate::INVALID_PASSWORD {
        if let Some(source) = &input.password_source {
            problem = problem.with("password_source", source.clone());
        }
    }
    let cert_sent = on_tls && input.tls.is_some_and(|t| t.client_cert_sent);
    match code {
        Code::ClientCertCnMismatch => {
            problem = client_cert::name_check(problem, &input.local.client, input.user);
            let certain = msg.starts_with("\"trust\" authentication failed")
                || stage == AuthStage::AfterSaslFinal;
            let cn = client_cert::cert_name(&input.local.client);
            let verdict = match (certain, cn.as_deref() == Some(input.user)) {
                (true, _) => "certain: only the clientcert=verify-full CN/DN check fails this way".to_string(),
                (false, false) => format!(
                    "the certificate's CN \"{}\" is not the user \"{}\" and no map= mapped it",
                    cn.as_deref().unwrap_or_default(),
                    input.user
                ),
                (false, true) => "the CN equals the user, so a map= (pg_ident.conf) or clientname=DN is in play and did not map the certificate's name".into(),
            };
            problem = problem.with("cause", verdict.clone());
            problem.summary = match cn.as_deref() {
                Some(cn) if certain && cn != input.user => format!(
                    "the client certificate's CN \"{cn}\" is not the user \"{}\", so clientcert=verify-full refused the login",
                    input.user
                ),
                _ => format!("{verdict}; the server refused the login"),
            };
        }
        Code::ClientCertMissing => {
            if let Some(tls) = input.tls {
                problem = problem.with(
                    "why_none_was_sent",
                    client_cert::why_no_certificate(&input.local.client, tls),
                );
            }
        }
        Code::PasswordFailed
            if cert_sent
                && client_cert::cert_name(&input.local.client).as_deref() != Some(input.user) =>
        {
            problem = client_cert::name_check(problem, &input.local.client, input.user).with(
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
    match fix.is_empty() {
        true => problem,
        false => problem.fix(fix),
    }
}

/// The server's refusal in the doctor's words: who, where, what is missing. `None` keeps the
/// server's own words as the summary (they are then the diagnosis).
fn diagnosis(code: Code, fields: &ErrorFields, input: &EvalInput, on_tls: bool) -> Option<String> {
    let (user, db) = (input.user, input.dbname);
    let from = client_address(input, on_tls);
    let tls = if on_tls { "over TLS" } else { "without TLS" };
    // A user nobody gave: say so after the diagnosis, with how to give one.
    let noting_default = |text: String| {
        match input.user_is_default {
        true => format!(
            "{text}. No user was given, so libpq used the operating-system user \"{user}\": give one with -U NAME (or user=NAME)"
        ),
        false => text,
    }
    };
    Some(match code {
        Code::HbaNoEntry if !on_tls && input.requested.requires_tls() => format!(
            "plaintext is refused: pg_hba.conf admits user \"{user}\" to database \"{db}\" from {from} only over TLS, as a hostssl-only configuration intends"
        ),
        Code::HbaNoEntry => noting_default(format!(
            "pg_hba.conf has no line for user \"{user}\", database \"{db}\" from {from} {tls}"
        )),
        Code::HbaReject => noting_default(format!(
            "a reject line in pg_hba.conf refuses user \"{user}\", database \"{db}\" from {from} {tls}"
        )),
        Code::RoleMissing => noting_default(format!("the server has no role \"{user}\"")),
        Code::DatabaseMissing if input.dbname_is_default => format!(
            "the server has no database \"{db}\": no dbname was given, so libpq used the user name; give one with -d NAME (or dbname=NAME)"
        ),
        Code::DatabaseMissing => format!("the server has no database \"{db}\""),
        Code::PasswordFailed => noting_default(format!(
            "the server refused the password for user \"{user}\" (or has no such role: it answers both alike)"
        )),
        Code::ServerRefused if fields.message.contains("is not permitted to log in") => {
            format!("the role \"{user}\" exists but may not log in (NOLOGIN)")
        }
        Code::ClientCertMissing => format!(
            "the server wants a client certificate for user \"{user}\" (cert, or clientcert= in pg_hba.conf), and none was sent"
        ),
        Code::ServerCaMissing => {
            "the server cannot check client certificates: its ssl_ca_file is not set".into()
        }
        _ => return None,
    })
}

/// Where the server saw the connection come from, as its messages name it.
fn client_address(input: &EvalInput, on_tls: bool) -> String {
    let local = if on_tls {
        input.tls.and_then(|t| t.local_addr)
    } else {
        input.plain.and_then(|p| p.local_addr)
    };
    local
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "this client".into())
}

/// Adds the deciding pg_hba.conf line (and, for no entry, the near misses) to a server error.
pub(in crate::eval) fn hba_evidence(
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
                fix = no_entry_fix(input, on_tls, &ctx.source, &client, "scram-sha-256", RELOAD);
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
pub(in crate::eval) fn rfc2253(subject: &str) -> String {
    let mut parts: Vec<&str> = subject.split(", ").collect();
    parts.reverse();
    parts.join(",")
}

pub(in crate::eval) fn input_user(input: &EvalInput) -> String {
    input.user.to_string()
}

pub(in crate::eval) fn input_db(input: &EvalInput) -> String {
    input.dbname.to_string()
}

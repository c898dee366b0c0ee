//! libpq's sequence for each sslmode: which attempts it makes in which order, what makes
//! allow and prefer try the other kind of connection, and the first check each fails.

use crate::catalogue::Code;
use crate::eval::assessment::Assessment;
use crate::eval::causes::{auth::*, chain::*, network::*, tls::*};
use crate::eval::model::*;
use crate::eval::prose::*;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::observe::{SslReply, TlsFailure};
use crate::sslmode::SslMode;
use crate::trust::{ChainFailureKind, RootState};

/// libpq's sequence for one sslmode.
pub(in crate::eval) fn mode_path(
    input: &EvalInput,
    mode: SslMode,
    assessment: &Assessment,
) -> PathResult {
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
        return direct_path(input, mode, assessment);
    }
    match mode {
        SslMode::Disable => plain_path(input),
        SslMode::Allow => match plain_path(input) {
            Err(first) if first.server_error => {
                tls_path(input, mode, assessment).map_err(|then| then_failed(first, then))
            }
            other => other,
        },
        SslMode::Prefer => match tls_path(input, mode, assessment) {
            Err(first) if first.falls_back => {
                plain_path_after_tls(input).map_err(|then| then_failed(first, then))
            }
            other => other,
        },
        _ => tls_path(input, mode, assessment),
    }
}

/// sslnegotiation=direct: libpq 17 refuses the weak modes outright, and a server that does
/// not speak direct TLS ends the handshake before any certificate.
pub(in crate::eval) fn direct_path(
    input: &EvalInput,
    mode: SslMode,
    assessment: &Assessment,
) -> PathResult {
    if !mode.requires_tls() {
        return Err(plain_failure(
            Problem::new(
                Code::DirectTlsWeakSslmode,
                format!("weak sslmode \"{mode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"),
            )
            .fix("with sslnegotiation=direct use sslmode=verify-full (require and verify-ca are allowed too)"),
            false,
        ));
    }
    let answer = input
        .ssl_request_probe
        .and_then(|probe| match &probe.reply {
            Some(SslReply::Accepted) => Some("'S': it supports TLS through the SSLRequest"),
            Some(SslReply::Refused) => Some("'N': it has no TLS at all"),
            _ => None,
        });
    if let Some(Some(Err(TlsFailure::PlaintextReply { error, bytes }))) =
        input.tls.map(|t| &t.handshake)
    {
        // A pooler (PgBouncer, pgpool-II) reads the ClientHello as a startup packet and
        // answers in plaintext; OpenSSL calls that a wrong version number.
        let said = match error {
            Some(e) => format!("a plaintext ErrorResponse: \"{}\"", e.message),
            None => format!("{} bytes that are not TLS", bytes.len()),
        };
        let mut problem = Problem::new(
            Code::DirectTlsUnsupported,
            format!("the peer answered the direct-TLS ClientHello with {said}; it does not speak direct TLS (libpq 17: SSL error: wrong version number)"),
        )
        .with("first_bytes", hex_preview(bytes));
        if let Some(answer) = answer {
            problem = problem.with(
                "ssl_request_answer",
                format!("the same peer answered an SSLRequest with {answer}"),
            );
        }
        return Err(plain_failure(
            problem.fix("the peer is a pooler or proxy that only understands the SSLRequest (PgBouncer before 1.25, pgpool-II): use sslnegotiation=postgres (the default)"),
            true,
        ));
    }
    if input.ssl_request_probe.is_some() {
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
    tls_path(input, mode, assessment)
}

/// Both attempts of allow/prefer failed: the cell shows the first failure, in libpq's order,
/// and the second one counts against the mode as well.
pub(in crate::eval) fn then_failed(mut first: Failure, mut then: Failure) -> Failure {
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
pub(in crate::eval) fn fallback_reason(
    input: &EvalInput,
    mode: SslMode,
    assessment: &Assessment,
) -> Option<Failure> {
    match mode {
        SslMode::Prefer | SslMode::Allow => tls_path(input, SslMode::Prefer, assessment).err(),
        _ => None,
    }
}

/// Prefer's plaintext: on the same socket after `N`, else the plaintext connection.
pub(in crate::eval) fn plain_path_after_tls(input: &EvalInput) -> PathResult {
    if let Some(outcome) = input.tls.and_then(|t| t.plaintext_after_refusal.as_ref()) {
        return startup_result(outcome, input, false);
    }
    plain_path(input)
}

pub(in crate::eval) fn plain_path(input: &EvalInput) -> PathResult {
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
        problem: Problem::new(
            Code::NotProbed,
            "the doctor made no plaintext connection (--check makes only the requested sslmode's), so this sslmode is not determined",
        ),
        falls_back: false,
        server_error: false,
        undetermined: true,
        on_tls: false,
        also: Vec::new(),
    })
}

pub(in crate::eval) fn plain_failure(problem: Problem, on_tls: bool) -> Failure {
    Failure {
        problem,
        falls_back: false,
        server_error: false,
        undetermined: false,
        on_tls,
        also: Vec::new(),
    }
}

/// The TLS path at `mode`: SSLRequest reply, local set-up, handshake, chain, host name, auth.
pub(in crate::eval) fn tls_path(
    input: &EvalInput,
    mode: SslMode,
    assessment: &Assessment,
) -> PathResult {
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
                    Problem::new(Code::ServerSslUnsupported, no_tls_summary(input.requested))
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
        if let (RootState::Loaded { certs, source }, Some(Err(failure))) =
            (&input.local.roots, &assessment.trust)
        {
            {
                let mut problem =
                    chain_problem(failure, &assessment.chain, certs, source, input.now);
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
        if let Some(problem) = &assessment.hostname {
            return Err(plain_failure(problem.clone(), true));
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

/// The server answered 'N'. At a mode that needs TLS, libpq's words; under one that does
/// not, the news worded for the mode the user asked for.
fn no_tls_summary(requested: SslMode) -> String {
    if requested.requires_tls() {
        "server does not support SSL, but SSL was required".into()
    } else {
        format!(
            "the server offers no TLS at all ('N' to the SSLRequest: ssl = off, or a build without TLS): sslmode={requested} connects without encryption, and require, verify-ca and verify-full fail"
        )
    }
}

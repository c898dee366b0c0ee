//! Who answered: PostgreSQL itself, or a pooler or other intermediary in front of it. Told
//! from what the peer said, never from a cancel request or an extra connection: the fields
//! its ErrorResponses carry (PostgreSQL always sends the non-localised severity V and the
//! source file, line and routine F, L, R; PgBouncer only S, C and M; pgpool-II names its
//! own source files and sends no V), its answer to a direct-TLS ClientHello, and whether the server's pg_stat_ssl
//! row can describe this connection at all. Only when that row is another connection's does
//! a full diagnosis ask one more thing: `SHOW pool_version`, which pgpool-II answers itself.

use crate::catalogue::{Code, Severity};
use crate::eval::model::EvalInput;
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;
use crate::observe::{PoolerVersion, StartupOutcome, TlsAttempt, TlsFailure, ViewContradiction};
use crate::wire::ErrorFields;
use crate::x509;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::eval) enum Peer {
    PgBouncer,
    Pgpool,
    /// Something between the doctor and PostgreSQL, of no known make.
    Unknown,
}

impl Peer {
    pub(in crate::eval) fn name(self) -> &'static str {
        match self {
            Peer::PgBouncer => "PgBouncer",
            Peer::Pgpool => "pgpool-II",
            Peer::Unknown => "an unknown intermediary",
        }
    }
}

/// A recognised intermediary and what gave it away.
#[derive(Debug, Clone)]
pub(in crate::eval) struct Intermediary {
    pub(in crate::eval) peer: Peer,
    pub(in crate::eval) evidence: Vec<Evidence>,
}

/// Every ErrorResponse the peer sent on any connection of this diagnosis.
fn error_responses<'a>(input: &'a EvalInput) -> Vec<&'a ErrorFields> {
    let mut all = Vec::new();
    let server_error = |o: Option<&'a StartupOutcome>| match o {
        Some(StartupOutcome::ServerError { fields, .. }) => Some(fields),
        _ => None,
    };
    let of_tls = |t: &'a TlsAttempt, all: &mut Vec<&'a ErrorFields>| {
        all.extend(server_error(t.startup.as_ref()));
        all.extend(server_error(t.plaintext_after_refusal.as_ref()));
        if let Some(Err(TlsFailure::PlaintextReply { error: Some(e), .. })) = &t.handshake {
            all.push(e);
        }
    };
    if let Some(t) = input.tls {
        of_tls(t, &mut all);
    }
    if let Some(t) = input.ssl_request_probe {
        of_tls(t, &mut all);
    }
    if let Some(p) = input.plain {
        all.extend(server_error(p.startup.as_ref()));
    }
    all
}

fn spelled(tags: &str) -> String {
    tags.chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// pgpool-II's sources name its files pool_*.c, child.c, pgpool_main.c and the like;
/// PostgreSQL's never start with "pool_".
fn pgpool_file(file: &str) -> bool {
    file.starts_with("pool_") || matches!(file, "child.c" | "pgpool_main.c" | "pcp_child.c")
}

pub(in crate::eval) fn from_error(fields: &ErrorFields) -> Option<Intermediary> {
    let has = |tag: char| fields.tags.contains(tag);
    if let Some(file) = fields.file.as_deref().filter(|f| pgpool_file(f)) {
        return Some(Intermediary {
            peer: Peer::Pgpool,
            evidence: vec![
                Evidence::new("source_file", file.to_string()),
                Evidence::new("peer_message", fields.message.clone()),
            ],
        });
    }
    if has('S') && has('M') && !has('V') && !has('F') && !has('R') {
        // The shape alone is PgBouncer's and also pgcat's, Odyssey's and Supavisor's: its
        // own words (or a PostgreSQL refusal relabelled 08P01) say it is PgBouncer.
        let msg = fields.message.as_str();
        let pgbouncer = PGBOUNCER_MESSAGES.iter().any(|m| msg.starts_with(m))
            || (fields.code == "08P01" && relayed_from_postgres(msg));
        return Some(Intermediary {
            peer: if pgbouncer {
                Peer::PgBouncer
            } else {
                Peer::Unknown
            },
            evidence: vec![
                Evidence::new("error_fields", spelled(&fields.tags)),
                Evidence::new("peer_message", fields.message.clone()),
                Evidence::new(
                    "why",
                    if pgbouncer {
                        "PgBouncer sends only severity, SQLSTATE and message, and these are its words; PostgreSQL always adds the non-localised severity (V) and the source file, line and routine (F, L, R)"
                    } else {
                        "the peer writes its own errors with only severity, SQLSTATE and message, as poolers do (PgBouncer, pgcat, Odyssey, Supavisor); PostgreSQL always adds V, F, L and R. The message is none of PgBouncer's"
                    },
                ),
            ],
        });
    }
    None
}

/// PostgreSQL's own refusals, as PgBouncer relays them when the server refuses its login.
pub(in crate::eval) fn relayed_from_postgres(msg: &str) -> bool {
    msg.starts_with("no pg_hba.conf entry")
        || msg.starts_with("pg_hba.conf rejects")
        || msg.starts_with("password authentication failed for user")
        || msg.starts_with("certificate authentication failed for user")
        || (msg.starts_with("role \"") && msg.ends_with("does not exist"))
        || (msg.starts_with("database \"") && msg.ends_with("does not exist"))
        || msg.starts_with("sorry, too many clients already")
        || msg.starts_with("the database system is")
}

/// What PgBouncer 1.18 itself says to clients (src/client.c, src/objects.c).
const PGBOUNCER_MESSAGES: &[&str] = &[
    "SSL required",
    "certificate authentication failed",
    "client sent partial pkt in startup phase",
    "client_login_timeout",
    "server login has been failing",
    "no such database",
    "no such user",
    "password authentication failed",
    "login rejected",
    "pgbouncer cannot connect to server",
    "no more connections allowed",
    "unsupported startup parameter",
    "bouncer config error",
    "server conn crashed?",
    "query_wait_timeout",
    "idle transaction timeout",
    "client_idle_timeout",
    "database does not allow connections",
    "pooler is paused",
    "pgbouncer is shutting down",
];

/// Why the server's pg_stat_ssl row cannot be this connection's, if it cannot.
fn foreign_server_view(tls: &TlsAttempt) -> Vec<String> {
    let Some(Ok(facts)) = &tls.handshake else {
        return Vec::new();
    };
    let Some(StartupOutcome::Session {
        server_ssl: Some(view),
        ..
    }) = &tls.startup
    else {
        return Vec::new();
    };
    view.contradictions(facts.version.name(), tls.client_cert_sent)
        .into_iter()
        .map(|found| match found {
            ViewContradiction::NoTls => "the doctor's connection used TLS, but the server's pg_stat_ssl row says ssl = false: TLS ends before PostgreSQL".to_string(),
            ViewContradiction::NoClientCert => "this connection presented a client certificate, but the server's pg_stat_ssl row has none: the row is another connection's".into(),
            ViewContradiction::OtherVersion { ours, theirs } => format!("this connection negotiated {ours}, but the server's pg_stat_ssl row says {theirs}"),
            ViewContradiction::OlderBackend { backend_secs, connection_secs } => format!("the server's backend for this session started {backend_secs} s before the doctor's query, though this connection is {connection_secs} s old: the pooler served the login on a server connection it already had (from its pool), so this login exercised neither the server's TLS nor its authentication"),
        })
        .collect()
}

/// What the suspected intermediary said to `SHOW pool_version`: pgpool-II names itself;
/// PostgreSQL's refusal says the intermediary passes queries on.
fn pooler_version(tls: &TlsAttempt) -> Option<(Option<Peer>, String)> {
    let Some(StartupOutcome::Session {
        pooler_version: Some(answer),
        ..
    }) = &tls.startup
    else {
        return None;
    };
    Some(match answer {
        PoolerVersion::Answered(version) => (
            Some(Peer::Pgpool),
            format!("SHOW pool_version answered \"{version}\" (pgpool-II answers it itself)"),
        ),
        PoolerVersion::Refused(fields) => (
            from_error(fields).map(|found| found.peer),
            format!(
                "SHOW pool_version was refused (\"{}\"): the intermediary passed the query on, so it is not pgpool-II",
                fields.message
            ),
        ),
    })
}

/// The intermediary this diagnosis talked to, if it can tell.
pub(in crate::eval) fn recognise(input: &EvalInput) -> Option<Intermediary> {
    let mut found = error_responses(input).into_iter().find_map(from_error);
    for why in input.tls.map(foreign_server_view).unwrap_or_default() {
        let found = found.get_or_insert(Intermediary {
            peer: Peer::Unknown,
            evidence: Vec::new(),
        });
        found.evidence.push(Evidence::new("server_view", why));
    }
    if let (Some(found), Some((peer, said))) = (found.as_mut(), input.tls.and_then(pooler_version))
    {
        if let (Peer::Unknown, Some(peer)) = (found.peer, peer) {
            found.peer = peer;
        }
        found.evidence.push(Evidence::new("pool_version", said));
    }
    found
}

/// The finding that names the intermediary, and the pg_stat_ssl facts relabelled.
pub(in crate::eval) fn add(input: &EvalInput, findings: &mut Vec<Finding>) {
    let Some(found) = recognise(input) else {
        return;
    };
    findings.extend(cert_match_differs(input));
    cite_settings(input.pooler, input.pooler_log, findings);
    in_pooler_terms(found.peer, findings);
    // The pooler refused the certificate in its own terms; PostgreSQL's CN advice (a cert
    // line, pg_ident.conf) would send the reader to the wrong file.
    if findings
        .iter()
        .any(|f| f.code == Code::PoolerCertAuthFailed)
    {
        findings.retain(|f| f.code != Code::ClientCertCnMismatch);
    }
    let at = format!("{}:{}", input.endpoint.host, input.endpoint.port);
    let summary = match found.peer {
        Peer::Unknown => format!(
            "an intermediary (a pooler or a TLS-terminating proxy) answers at {at}, not PostgreSQL itself; it gives no sign of which"
        ),
        peer => format!(
            "the peer at {at} answers as {} (a connection pooler), not PostgreSQL itself",
            peer.name()
        ),
    };
    let mut evidence = vec![Evidence::new("peer", Value::name(found.peer.name()))];
    evidence.extend(found.evidence);
    if let Some(session) = findings.iter_mut().find(|f| f.code == Code::TlsSession) {
        session.evidence.push(Evidence::new(
            "server_view_is",
            "the intermediary's own connection to the server, not this client's session (the server_sees_* facts are its)",
        ));
    }
    findings.push(Finding {
        code: Code::PoolerDetected,
        severity: Severity::Info,
        summary,
        evidence,
        fix: Some(match found.peer {
            Peer::PgBouncer => "the TLS between client and PgBouncer is set by its client_tls_* settings (pgbouncer.ini), the TLS to the server by server_tls_*; authentication by auth_type, auth_file and auth_hba_file".into(),
            Peer::Pgpool => "the TLS between client and pgpool-II is set by ssl, ssl_cert, ssl_key and ssl_ca_cert (pgpool.conf); authentication by pool_hba.conf (enable_pool_hba)".into(),
            Peer::Unknown => "the TLS the doctor checked ends at the intermediary; check its configuration, and its own connection to PostgreSQL separately".into(),
        }),
        modes: vec![],
    });
}

/// The pooler accepted a client certificate whose CN PostgreSQL's cert method would not
/// take for this user (PgBouncer takes a subjectAltName or the CN, pgpool-II ignores case): the
/// same certificate fails when the pooler is bypassed, or when PostgreSQL checks it.
pub(in crate::eval) fn cert_match_differs(input: &EvalInput) -> Option<Finding> {
    let found = recognise(input)?;
    let compares = match found.peer {
        Peer::PgBouncer => "a subjectAltName or the CN; case-insensitive; wildcards",
        Peer::Pgpool => "the CN, case-insensitively",
        Peer::Unknown => return None,
    };
    let tls = input.tls?;
    let Some(StartupOutcome::Session { method, .. }) = &tls.startup else {
        return None;
    };
    let cert = input.local.client.leaf.as_ref()?;
    if !tls.client_cert_sent || method != "trust" {
        return None;
    }
    let cn = cert.common_name.clone().unwrap_or_default();
    if cn == input.user {
        return None;
    }
    let peer = found.peer.name();
    Some(Finding {
        code: Code::PoolerCertMatchDiffers,
        severity: Severity::Warning,
        summary: format!(
            "{peer} accepts this certificate for user \"{}\", but PostgreSQL's cert method would refuse it: its CN \"{cn}\" is not exactly the user",
            input.user
        ),
        evidence: vec![
            Evidence::new("user", Value::name(input.user)),
            Evidence::new("certificate_cn", Value::name(cn)),
            Evidence::new("certificate_names", Value::name(x509::presented_names(cert).join(", "))),
            Evidence::new("peer", Value::name(peer)),
            Evidence::new("pooler_compares", compares),
            Evidence::new("postgresql_compares", "the CN, exactly (or through a pg_ident.conf map)"),
        ],
        fix: Some(format!("issue the certificate with CN exactly \"{}\", or give the server's cert line a map= that maps it", input.user)),
        modes: vec![],
    })
}

/// The settings that decide each pooler finding, cited from --pooler-config, and the
/// pooler's log lines about its server connections for a second-hop failure.
fn cite_settings(
    config: Option<&crate::pooler::PoolerConfig>,
    log: Option<&crate::pooler::log::PoolerLog>,
    findings: &mut [Finding],
) {
    use crate::pooler::Kind;
    for finding in findings.iter_mut() {
        let names: &[&str] = match (config.map(|c| c.kind), finding.code) {
            (Some(Kind::PgBouncer), Code::ClientCertMissing) => {
                &["client_tls_sslmode", "client_tls_ca_file"]
            }
            (Some(Kind::PgBouncer), Code::ServerRefused) => &["client_tls_sslmode"],
            (Some(Kind::PgBouncer), Code::TlsVersionUnsupported | Code::TlsHandshakeFailed) => &[
                "client_tls_protocols",
                "client_tls_ciphers",
                "client_tls_ecdhcurve",
            ],
            (Some(Kind::PgBouncer), Code::PoolerCertAuthFailed) => {
                &["auth_type", "auth_file", "client_tls_ca_file"]
            }
            (Some(Kind::PgBouncer), Code::PoolerCertMatchDiffers) => &["auth_type"],
            (Some(Kind::PgBouncer), Code::PoolerServerLoginFailed) => &[
                "server_tls_sslmode",
                "server_tls_ca_file",
                "client_login_timeout",
                "server_login_retry",
            ],
            (Some(Kind::Pgpool), Code::ClientCertMissing | Code::PoolerCertAuthFailed) => {
                &["ssl", "ssl_ca_cert"]
            }
            _ => &[],
        };
        for name in names {
            if let Some(setting) = config.and_then(|c| c.get(name)) {
                finding
                    .evidence
                    .push(Evidence::new("pooler_setting", setting.cited()));
            }
        }
        if finding.code == Code::PoolerServerLoginFailed {
            for line in log.iter().flat_map(|l| l.server_lines.iter()).take(6) {
                finding
                    .evidence
                    .push(Evidence::new("pooler_log", line.clone()));
            }
        }
    }
}

/// The certificate and TLS settings the doctor checked are the pooler's, not PostgreSQL's:
/// a fix that names postgresql.conf names the pooler's file too.
/// PostgreSQL's TLS settings and the pooler's setting for the same thing, the longer
/// phrases first: PgBouncer 1.18's client_tls_* and pgpool-II 4.3's ssl* (pgpool.conf).
fn pooler_settings(peer: Peer) -> &'static [(&'static str, &'static str)] {
    match peer {
        Peer::PgBouncer => &[
            ("the server's ssl_ca_file", "PgBouncer's client_tls_ca_file"),
            ("ssl_min_protocol_version / ssl_max_protocol_version", "client_tls_protocols"),
            ("ssl_min_protocol_version, ssl_max_protocol_version and ssl_ciphers", "client_tls_protocols and client_tls_ciphers"),
            ("ssl_min_protocol_version", "client_tls_protocols"),
            ("ssl_max_protocol_version", "client_tls_protocols"),
            ("ssl_ecdh_curve", "client_tls_ecdhcurve"),
            ("ssl_ciphers", "client_tls_ciphers"),
            ("ssl_cert_file", "client_tls_cert_file"),
            ("ssl_key_file", "client_tls_key_file"),
            ("ssl_ca_file", "client_tls_ca_file"),
            ("ssl_dh_params_file", "client_tls_dheparams"),
        ],
        Peer::Pgpool => &[
            ("the server's ssl_ca_file", "pgpool-II's ssl_ca_cert"),
            ("ssl_min_protocol_version / ssl_max_protocol_version", "the OpenSSL defaults of pgpool-II's host (pgpool-II 4.3 has no protocol-version setting)"),
            ("ssl_min_protocol_version, ssl_max_protocol_version and ssl_ciphers", "ssl_ciphers (pgpool-II 4.3 has no protocol-version setting)"),
            ("ssl_cert_file", "ssl_cert"),
            ("ssl_key_file", "ssl_key"),
            ("ssl_ca_file", "ssl_ca_cert"),
        ],
        Peer::Unknown => &[],
    }
}

fn in_pooler_terms(peer: Peer, findings: &mut [Finding]) {
    use crate::catalogue::Phase;
    let terms = match peer {
        Peer::PgBouncer => "the certificate and TLS settings here are PgBouncer's: client_tls_cert_file, client_tls_key_file, client_tls_protocols and client_tls_ciphers in pgbouncer.ini (not ssl_cert_file in postgresql.conf); `RELOAD;` on its admin console",
        Peer::Pgpool => "the certificate and TLS settings here are pgpool-II's: ssl_cert, ssl_key, ssl_ca_cert, ssl_ciphers and ssl_ecdh_curve in pgpool.conf (not postgresql.conf; pgpool-II 4.3 has no protocol-version setting: its OpenSSL's defaults decide); `pgpool reload`",
        Peer::Unknown => "the TLS here ends at the intermediary: its certificate and TLS settings are its own, not postgresql.conf's",
    };
    for finding in findings.iter_mut() {
        let tls_side = matches!(finding.code.phase(), Phase::Tls | Phase::Chain)
            && !matches!(finding.code, Code::TlsSession | Code::PoolerServerHop);
        // The peer judged the client certificate against its own CA file.
        let judged_client_cert = matches!(
            finding.code,
            Code::ClientCertUnknownCa | Code::ClientCertRevoked
        );
        if (tls_side || judged_client_cert) && finding.severity >= Severity::Warning {
            finding
                .evidence
                .push(Evidence::new("in_pooler_terms", terms));
            // The fix's PostgreSQL words, in the pooler's.
            let (file, reload) = match peer {
                Peer::PgBouncer => ("pgbouncer.ini", "`RELOAD;` on PgBouncer's admin console"),
                Peer::Pgpool => ("pgpool.conf", "`pgpool reload`"),
                Peer::Unknown => continue,
            };
            if let Some(fix) = &mut finding.fix {
                // Only a fix about the server's file names server settings (a fix may
                // also name libpq's own ssl_max_protocol_version).
                if fix.contains("postgresql.conf") || judged_client_cert {
                    for (postgres, pooler) in pooler_settings(peer) {
                        *fix = fix.replace(postgres, pooler);
                    }
                }
                *fix = fix
                    .replace("`SELECT pg_reload_conf();` on the server", reload)
                    .replace("`SELECT pg_reload_conf();`", reload)
                    .replace("postgresql.conf", file);
            }
        }
    }
}

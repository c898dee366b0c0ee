//! Causes a pooler states in its own words: PgBouncer's and pgpool-II's refusals read in
//! their terms (certificate authentication, their hba files, their connection to the server),
//! with the pooler's files when given (--pooler-config, --pooler-log). Who the peer is comes
//! from `eval::intermediary`.

use crate::catalogue::Code;
use crate::eval::intermediary::{from_error, recognise, relayed_from_postgres, Peer};
use crate::eval::model::EvalInput;
use crate::evidence::Value;
use crate::finding::Problem;
use crate::observe::AuthStage;
use crate::wire::ErrorFields;
use crate::x509;

/// PgBouncer's auth_file setting, cited from --pooler-config when given.
fn auth_file_cited(input: &EvalInput) -> String {
    input
        .pooler
        .and_then(|c| c.get("auth_file"))
        .map(|s| s.cited())
        .unwrap_or_else(|| "auth_file".into())
}

/// Who PgBouncer runs auth_query as for this database (--pooler-config), cited.
fn auth_query_user(input: &EvalInput) -> Option<(String, String)> {
    input
        .pooler
        .and_then(|c| crate::pooler::pgbouncer::auth_query_user(c, input.dbname))
}

/// A refusal in the pooler's own words, read in its terms; None when PostgreSQL (or a
/// pooler relaying PostgreSQL's message) refused.
pub(in crate::eval) fn pooler_refusal(
    fields: &ErrorFields,
    stage: AuthStage,
    input: &EvalInput,
    on_tls: bool,
) -> Option<Problem> {
    let peer = from_error(fields)?.peer;
    let base = |code: Code, summary: String| {
        Problem::new(code, summary)
            .with("peer", Value::name(peer.name()))
            .with("sqlstate", fields.code.clone())
            .with("server_message", fields.message.clone())
            .with(
                "encryption",
                if on_tls {
                    "SSL encryption"
                } else {
                    "no encryption"
                },
            )
    };
    match (peer, fields.message.as_str()) {
        (Peer::PgBouncer, "certificate authentication failed") => {
            let user = input.user;
            let cert = input.local.client.leaf.as_ref();
            let names = cert.map(x509::presented_names).unwrap_or_default();
            // PgBouncer 1.18 takes the user when a subjectAltName or the CN names it
            // (case-insensitive, wildcards): a SAN does not hide the CN (tested against it).
            let matches = cert.is_some_and(|c| pgbouncer_names_user(c, user));
            let mut problem = base(
                Code::PoolerCertAuthFailed,
                format!("PgBouncer refused the client certificate for user \"{user}\" (auth_type = cert): certificate authentication failed"),
            )
            .with("user", Value::name(user))
            .with("certificate_names", Value::name(names.join(", ")))
            .with("names_match_user_as_pgbouncer_compares", matches);
            let listed = input
                .pooler
                .and_then(|c| c.users.as_ref())
                .map(|users| users.iter().any(|u| u == user));
            // A user missing from auth_file is looked up on the server with auth_query.
            let auth_query = auth_query_user(input);
            let logged = input.pooler_log.and_then(|l| l.cert_reason());
            let auth_file = auth_file_cited(input);
            let missing_fix = format!("add \"{user}\" \"\" to PgBouncer's auth_file ({auth_file}; auth_type = cert checks only that the user is listed), then `RELOAD;` on its admin console");
            let rename_fix = format!("issue the client certificate with CN (or a subjectAltName) \"{user}\", or connect as the user the certificate names");
            let fix = match (&logged, listed, matches, &auth_query) {
                (Some(crate::pooler::log::CertReason::NoSuchUser(_, line)), _, _, _) => {
                    problem = problem
                        .with("cause", format!("the user \"{user}\" is not in auth_file (PgBouncer's log says so)"))
                        .with("pooler_log", line.clone());
                    missing_fix
                }
                (Some(crate::pooler::log::CertReason::NameMismatch(line)), _, _, _) => {
                    problem = problem
                        .with("cause", format!("the certificate's names ({}) do not match the user \"{user}\" (PgBouncer's log says so)", names.join(", ")))
                        .with("pooler_log", line.clone());
                    rename_fix
                }
                (None, Some(false), matches, Some((auth_user, cited))) => {
                    // A user auth_query cannot find gets "no such user" (PgBouncer 1.18,
                    // tested): this refusal means it found the user.
                    let looked_up = format!("the user \"{user}\" is not in auth_file ({auth_file}); PgBouncer found it on the server with auth_query as auth_user \"{auth_user}\" ({cited})");
                    if matches {
                        problem = problem.with("cause", format!("{looked_up}, and the certificate's names match the user as PgBouncer compares them: its log says why"));
                        "read PgBouncer's log beside \"login attempt\" for this connection".into()
                    } else {
                        problem = problem.with("cause", format!("{looked_up}, so the certificate's names ({}) do not match the user \"{user}\" as PgBouncer compares them", names.join(", ")));
                        rename_fix
                    }
                }
                (None, Some(false), _, None) => {
                    problem = problem.with("cause", format!("the user \"{user}\" is not in auth_file ({auth_file})"));
                    missing_fix
                }
                (None, Some(true), false, _) => {
                    problem = problem.with("cause", format!("the user is in auth_file, so the certificate's names ({}) do not match the user \"{user}\" as PgBouncer compares them", names.join(", ")));
                    rename_fix
                }
                (None, _, true, _) => {
                    problem = problem.with(
                        "cause",
                        "the certificate's names match the user as PgBouncer compares them, so the user is missing from auth_file (or auth_query finds no row)",
                    );
                    missing_fix
                }
                (None, None, false, _) => {
                    problem = problem
                        .with("candidate", format!("the certificate's names ({}) do not match the user \"{user}\" as PgBouncer compares them (a subjectAltName or the CN; case-insensitive)", names.join(", ")))
                        .with("candidate", format!("the user \"{user}\" is missing from PgBouncer's auth_file"))
                        .with("tell_apart", "on the wire both look the same: give --pooler-config (the auth_file's users) or --pooler-log (PgBouncer's reason)");
                    format!("{rename_fix}; and check that \"{user}\" is listed in auth_file")
                }
            };
            Some(problem.fix(fix))
        }
        (Peer::Pgpool, "backend authentication failed") => Some(
            base(
                Code::PoolerServerLoginFailed,
                format!(
                    "pgpool-II could not log in to the server behind it: {}",
                    fields.detail.as_deref().unwrap_or(&fields.message)
                ),
            )
            .with("hop", "pgpool-II to PostgreSQL (the second hop): the server refused pgpool-II's own login (\"kind 'E' when expecting 'R'\" is the server's error where pgpool-II expected an authentication request)")
            .with("likely_cause", "the server's pg_hba.conf has no line for pgpool-II's address and this user and database, or rejects it")
            .with("likely_cause", "the role or database does not exist on the server, or pgpool-II has no password for the user (pool_passwd)")
            .fix("read the server's log for pgpool-II's connection (its address, this user) and fix the pg_hba.conf line or the role; pgpool-II's log has \"backend authentication failed\""),
        ),
        (Peer::Pgpool, msg) if msg.starts_with("failed to create a backend") => Some(
            base(
                Code::PoolerServerLoginFailed,
                format!("pgpool-II could not connect to the server behind it: {msg}"),
            )
            .with("hop", "pgpool-II to PostgreSQL (the second hop): the backend is down or unreachable from pgpool-II")
            .fix("start the server named by backend_hostname and backend_port in pgpool.conf, or fix those settings; `pcp_node_info` shows each backend's status"),
        ),
        (Peer::PgBouncer, "no such user") => {
            // PgBouncer says this when neither auth_file nor auth_query knows the user.
            let user = input.user;
            let auth_file = auth_file_cited(input);
            let looked_up = match auth_query_user(input) {
                Some((auth_user, cited)) => format!(", and auth_query, run on the server as auth_user \"{auth_user}\" ({cited}), found no row for it"),
                None if input.pooler.is_some() => ", and no auth_user is set for auth_query".into(),
                None => " (nor, if auth_user is set, by auth_query on the server)".into(),
            };
            Some(
                base(
                    Code::RoleMissing,
                    format!("PgBouncer knows no user \"{user}\": it is not in auth_file ({auth_file}){looked_up}"),
                )
                .with("user", Value::name(user))
                .fix(format!("create the role \"{user}\" on the server where auth_query can see it, or add \"{user}\" to auth_file, then `RELOAD;` on PgBouncer's admin console")),
            )
        }
        (Peer::PgBouncer, msg)
            if msg.starts_with("client_login_timeout")
                || msg.starts_with("server login has been failing")
                || msg.starts_with("query_wait_timeout") =>
        {
            let why = if msg.starts_with("client_login_timeout") {
                "PgBouncer held the login until client_login_timeout and gave up: it could not log in to the server behind it"
            } else if msg.starts_with("query_wait_timeout") {
                "PgBouncer held the first query until query_wait_timeout and gave up: it had no server connection and could not open one"
            } else {
                "PgBouncer's own login to the server failed and it has no server connection left: it turns clients away until a new login works (it tries again every server_login_retry seconds)"
            };
            let problem = base(
                Code::PoolerServerLoginFailed,
                format!("{}:  {msg} ({why})", fields.severity),
            );
            // PgBouncer completes a login from its cache once it has seen the server; the
            // missing server connection then shows only at the first query.
            let problem = if stage == AuthStage::FirstQuery {
                problem.with("stage", "after the login, which PgBouncer completed itself from its cache, in answer to the first query (libpq connects; psql -c fails)")
            } else {
                problem
            };
            Some(
                problem
                    .with("hop", "PgBouncer to PostgreSQL (the second hop); the TLS between the doctor and PgBouncer is not the cause")
                    .with("likely_cause", "server_tls_sslmode = verify-ca or verify-full with a server_tls_ca_file that does not sign the server's certificate (PgBouncer logs \"TLS handshake error\")")
                    .with("likely_cause", "the server refuses PgBouncer's own login (its pg_hba.conf, or a password PgBouncer takes from auth_file)")
                    .with("likely_cause", "the server named in [databases] is down or unreachable from the pooler")
                    .fix("read PgBouncer's log beside \"new connection to server\"; check server_tls_sslmode, server_tls_ca_file and the [databases] entry, then `RELOAD;` on its admin console"),
            )
        }
        (Peer::PgBouncer, msg) if relayed_from_postgres(msg) => Some(
            base(Code::PoolerServerLoginFailed, format!("{}:  {msg} (the server refused PgBouncer's own login, and PgBouncer relayed its message as SQLSTATE 08P01)", fields.severity))
                .with("hop", "PgBouncer to PostgreSQL (the second hop)")
                .fix("fix the server's rules for the pooler's connection (pg_hba.conf for the pooler's address and user, the role, the database), not the client's"),
        ),
        (Peer::Pgpool, "CERT authentication failed") => {
            let user = input.user;
            let sent = input.tls.is_some_and(|t| t.client_cert_sent);
            let cn = input
                .local
                .client
                .leaf
                .as_ref()
                .and_then(|c| c.common_name.clone());
            let problem = match (&cn, sent) {
                (_, false) => base(
                    Code::ClientCertMissing,
                    format!("pgpool-II's pool_hba.conf line for this connection is `cert`, and no client certificate was sent: {}", fields.message),
                )
                .fix("give sslcert and sslkey: a certificate issued by the CA in pgpool-II's ssl_ca_cert, with the user name as its CN"),
                (Some(cn), true) if !cn.eq_ignore_ascii_case(user) => base(
                    Code::PoolerCertAuthFailed,
                    format!("pgpool-II refused the client certificate for user \"{user}\": its CN \"{cn}\" is not the user (pgpool-II compares them case-insensitively)"),
                )
                .with("certificate_cn", Value::name(cn.clone()))
                .with("user", Value::name(user))
                .fix(format!("issue the client certificate with CN \"{user}\", or connect as user \"{cn}\"")),
                _ => base(
                    Code::PoolerCertAuthFailed,
                    format!("pgpool-II refused the client certificate for user \"{user}\" though its CN names the user: {}", fields.message),
                )
                .fix("pgpool-II's log says why (\"see pgpool log for details\"); check ssl_ca_cert and the pool_hba.conf line"),
            };
            Some(match &fields.detail {
                Some(d) => problem.with("server_detail", d.clone()),
                None => problem,
            })
        }
        (Peer::Pgpool, "client authentication failed")
            if fields.detail.as_deref().is_some_and(|d| d.starts_with("no pool_hba.conf entry")) =>
        {
            let detail = fields.detail.clone().unwrap_or_default();
            let fix = crate::eval::causes::hba_fix::no_entry_fix(
                input,
                on_tls,
                "pool_hba.conf",
                "<client-address>/32",
                "cert",
                "`pgpool reload`",
            );
            let summary = if !on_tls && input.requested.requires_tls() {
                format!("plaintext is refused: pgpool-II's pool_hba.conf admits this connection only over TLS, as a hostssl-only file intends ({detail})")
            } else {
                format!("pgpool-II's pool_hba.conf has no line for this connection: {detail}")
            };
            let problem = base(Code::HbaNoEntry, summary)
                .with("file", "pool_hba.conf (pgpool-II, enable_pool_hba = on), not the server's pg_hba.conf");
            Some(match fix.is_empty() {
                true => problem,
                false => problem.fix(fix),
            })
        }
        (Peer::PgBouncer, "login rejected") => {
            let problem = base(
                Code::HbaReject,
                "FATAL:  login rejected (PgBouncer: auth_type = hba, and its auth_hba_file rejects this connection or has no line for it)".into(),
            );
            let hba = input.pooler.and_then(|c| c.hba.as_ref());
            Some(match hba {
                Some(Ok(file)) => {
                    let conn = crate::eval::causes::network::hba_connection(input, on_tls);
                    match crate::hba::matcher::decide(&file.rules, &conn).rule {
                        Some(rule) => problem
                            .with("hba_file", Value::path(&rule.file))
                            .with("hba_line", Value::line(rule.line_number))
                            .with("hba_rule", rule.raw.clone())
                            .fix(format!("line {} of PgBouncer's auth_hba_file decides ({}); change it or connect as a line before it allows, then `RELOAD;`", rule.line_number, rule.method)),
                        None => {
                            let mut problem = problem.with(
                                "hba_rule",
                                "no line of PgBouncer's auth_hba_file matches, so PgBouncer rejects the login",
                            );
                            for (rule, why) in crate::hba::matcher::near_misses(&file.rules, &conn) {
                                problem = problem.with(
                                    "near_miss",
                                    format!("line {} \"{}\": {}", rule.line_number, rule.raw, why.describe()),
                                );
                            }
                            problem.fix(format!(
                                "add a line to PgBouncer's auth_hba_file, e.g. `{} {} {} <client-address>/32 cert`, then `RELOAD;`",
                                if on_tls { "hostssl" } else { "host" },
                                input.dbname,
                                input.user
                            ))
                        }
                    }
                }
                Some(Err(why)) => problem
                    .with("auth_hba_file", why.clone())
                    .fix("make PgBouncer's auth_hba_file readable to the doctor to name the deciding line"),
                None => problem
                    .with("candidate", "a reject line in PgBouncer's auth_hba_file matches this connection")
                    .with("candidate", "no line of PgBouncer's auth_hba_file matches it (PgBouncer rejects what no line admits)")
                    .fix("give --pooler-config with the pgbouncer.ini to name the deciding line of its auth_hba_file"),
            })
        }
        (Peer::PgBouncer, "SSL required") => Some(
            base(Code::ServerRefused, "FATAL:  SSL required (PgBouncer: client_tls_sslmode = require or stricter refuses plaintext clients)".into())
                .fix("connect with TLS (sslmode=verify-full with the pooler's CA, or at least require): PgBouncer's client_tls_sslmode refuses plaintext on purpose"),
        ),
        _ => None,
    }
}

/// Whether PgBouncer's auth_type = cert takes `user` for this certificate.
fn pgbouncer_names_user(cert: &x509::CertSummary, user: &str) -> bool {
    cert.dns_names
        .iter()
        .chain(cert.common_name.iter())
        .any(|name| !name.contains('\0') && x509::wildcard_match(name, user))
}

/// A login the peer left unanswered: behind a pooler, possibly the second hop.
pub(in crate::eval) fn silent_login(problem: Problem, input: &EvalInput) -> Problem {
    match recognise(input).map(|i| i.peer) {
        Some(Peer::PgBouncer) => problem.with(
            "possible_cause",
            "PgBouncer keeps a client waiting while it cannot log in to the server behind it, until client_login_timeout (60 s by default) ends it with \"client_login_timeout (server down)\": a second-hop failure, if its log says so",
        ),
        Some(peer) => problem.with(
            "possible_cause",
            format!("{} may be waiting for its own connection to the server behind it", peer.name()),
        ),
        None => problem,
    }
}

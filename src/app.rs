//! Drives the pipeline for one target: local files, probe each host (at most two
//! connections each), judge, report. The per-run context (the rules from --hba or
//! --admin) is built once by `RunContext::prepare`. No formatting here.

use std::time::{Duration, Instant};

use crate::catalogue::Code;
use crate::catalogue::Severity;
use crate::client_cert::ClientIdentity;
use crate::eval::{self, EvalInput, LocalSetup};
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;
use crate::hba::HbaContext;
use crate::local::local_setup;
use crate::plan::{Endpoint, Plan};
use crate::probe::{self, Deadlines, PasswordPermit, StartupParams};
use crate::report::{self, HostResult, Report};
use crate::serverlog;
use crate::sslmode::SslMode;

/// What a run needs beyond each target's plan: the clock and the doctor's own limits.
pub struct RunOptions {
    pub now: i64,
    pub timeout: Duration,
    pub warn_days: i64,
    pub allow_cleartext_password: bool,
    pub hba: Option<HbaContext>,
    /// The server's log, to quote its reasons.
    pub server_log: Option<std::path::PathBuf>,
    /// --admin: a connection that may read pg_hba_file_rules.
    pub admin: Option<Plan>,
}

/// The options and what they yield once for every target of the run: the rules in force
/// (from --hba, or read through --admin) and what is wrong with them.
pub struct RunContext {
    pub options: RunOptions,
    rules: Option<HbaContext>,
    rule_findings: Vec<Finding>,
}

impl RunContext {
    /// Reads the --admin rules (one connection) or takes the --hba ones.
    pub fn prepare(options: RunOptions) -> RunContext {
        let admin_rules = options.admin.as_ref().map(|admin_plan| {
            crate::admin::fetch(
                admin_plan,
                options.timeout,
                options.allow_cleartext_password,
                options.now,
            )
        });
        let (rules, rule_findings) = match admin_rules {
            Some(Ok(rules)) => (Some(rules.context.clone()), admin_findings(&rules)),
            Some(Err(e)) => (
                options.hba.clone(),
                vec![Finding {
                    code: Code::AdminConnectionFailed,
                    severity: Severity::Warning,
                    summary: format!("the --admin connection could not read the rules: {e}"),
                    evidence: vec![],
                    fix: Some("connect --admin as a superuser, or GRANT EXECUTE ON FUNCTION pg_hba_file_rules() (and pg_ident_file_mappings()) to that role; PostgreSQL 15 or later".into()),
                    modes: vec![],
                }],
            ),
            None => (
                options.hba.clone(),
                options
                    .hba
                    .as_ref()
                    .map(|ctx| hba_file_findings(&ctx.hba.errors))
                    .unwrap_or_default(),
            ),
        };
        RunContext {
            options,
            rules,
            rule_findings,
        }
    }
}

/// Diagnoses one target.
pub fn run(plan: &Plan, context: &RunContext) -> Report {
    let options = &context.options;
    let started = Instant::now();
    let deadlines = Deadlines {
        overall: started + options.timeout,
        step: plan.connect_timeout,
    };
    let (local, identity) = local_setup(plan);
    let mut extra_findings = crate::keywords::unemulated_findings(plan);
    extra_findings.extend(context.rule_findings.iter().cloned());
    let hba_context = context.rules.as_ref();
    let log_size = options.server_log.as_deref().and_then(serverlog::size);
    let observed: Vec<Observed> = plan
        .endpoints
        .iter()
        .map(|endpoint| probe_host(plan, options, &local, &identity, endpoint, deadlines))
        .collect();
    let log_reasons = options.server_log.as_deref().and_then(|path| {
        let expected = observed.iter().map(Observed::server_log_lines).sum();
        let wait_until = (Instant::now() + SERVER_LOG_WAIT).min(deadlines.overall);
        serverlog::read_excerpt_expecting(path, log_size, &plan.user, expected, wait_until)
            .ok()
            .map(|excerpt| serverlog::interpret(&excerpt))
    });
    let hosts: Vec<HostResult> = observed
        .into_iter()
        .map(|o| {
            let judgement = eval::judge(&EvalInput {
                endpoint: &o.endpoint,
                requested: plan.sslmode,
                local: &local,
                tls: o.tls.as_ref(),
                plain: o.plain.as_ref(),
                now: options.now,
                warn_days: options.warn_days,
                user: &plan.user,
                dbname: &plan.dbname,
                password_source: password_source(plan),
                password_unknown: plan.password_unknown.as_deref(),
                hba: hba_context,
                server_log: log_reasons.as_ref(),
                negotiation: plan.negotiation,
                ssl_request_probe: o.ssl_request_probe.as_ref(),
            });
            let mut judgement = judgement;
            judgement.findings.extend(extra_findings.iter().cloned());
            HostResult {
                endpoint: o.endpoint,
                judgement,
                connections: o.connections,
            }
        })
        .collect();
    report::build(&report::BuildInput {
        plan,
        hosts: &hosts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// How long to wait at most for the server's log lines about this probe: the backend
/// writes them as it exits, just after the connection closes.
const SERVER_LOG_WAIT: Duration = Duration::from_secs(1);

fn probe_host(
    plan: &Plan,
    options: &RunOptions,
    local: &LocalSetup,
    identity: &ClientIdentity,
    endpoint: &Endpoint,
    deadlines: Deadlines,
) -> Observed {
    let params = StartupParams {
        user: &plan.user,
        dbname: &plan.dbname,
        application_name: &plan.application_name,
        options: plan.options.as_deref(),
        password: plan.password.as_ref().map(|(s, _)| s),
        allow_cleartext_on_plaintext: options.allow_cleartext_password,
        channel_binding: plan.channel_binding,
        extra_query: None,
    };
    let requested = plan.sslmode;
    let mut connections = 0;
    let mut ssl_request_probe = None;
    let (tls, plain) = if plan.negotiation == crate::plan::Negotiation::Direct
        && !endpoint.is_unix_socket()
    {
        // Direct TLS (libpq 17): the ClientHello goes out at once with ALPN "postgresql".
        // The weaker sslmodes are refused by libpq itself, so no plaintext attempt is needed.
        connections += 1;
        let permit_for =
            |chain: &[Vec<u8>]| eval::permit_at(local, endpoint, chain, requested, options.now);
        let direct = probe::tls_attempt(
            endpoint,
            deadlines,
            &params,
            identity,
            plan.tls_options(),
            crate::plan::Negotiation::Direct,
            &permit_for,
            PasswordPermit::Withhold,
        );
        let eof_before_certificate = direct.connect_error.is_none()
            && direct.chain.is_empty()
            && matches!(
                direct.handshake,
                Some(Err(probe::TlsFailure::Eof | probe::TlsFailure::Reset(_)))
            );
        if eof_before_certificate {
            // A PostgreSQL 16 or older server (or an SSLRequest-only proxy) reads the
            // ClientHello as a bad startup packet and hangs up. Ask it the old way.
            connections += 1;
            ssl_request_probe = Some(probe::tls_attempt(
                endpoint,
                deadlines,
                &params,
                identity,
                plan.tls_options(),
                crate::plan::Negotiation::Postgres,
                &|_: &[Vec<u8>]| PasswordPermit::Withhold,
                PasswordPermit::Withhold,
            ));
        }
        (Some(direct), None)
    } else if endpoint.is_unix_socket() {
        // libpq never negotiates TLS on a Unix socket: every sslmode uses this connection.
        connections += 1;
        (
            None,
            Some(probe::plain_attempt(
                endpoint,
                deadlines,
                &params,
                PasswordPermit::Send,
            )),
        )
    } else if requested <= SslMode::Allow {
        // disable and allow start in plaintext.
        connections += 1;
        let plain = probe::plain_attempt(endpoint, deadlines, &params, PasswordPermit::Send);
        let tls_used = requested == SslMode::Allow && eval::plain_server_error(&plain);
        let tls = if plain.connect_error.is_some() {
            None
        } else {
            connections += 1;
            let permit_for = |chain: &[Vec<u8>]| {
                if tls_used && eval::tls_acceptable(local, endpoint, chain, requested, options.now)
                {
                    PasswordPermit::Send
                } else {
                    PasswordPermit::Withhold
                }
            };
            Some(probe::tls_attempt(
                endpoint,
                deadlines,
                &params,
                identity,
                plan.tls_options(),
                plan.negotiation,
                &permit_for,
                PasswordPermit::Withhold,
            ))
        };
        (tls, Some(plain))
    } else {
        connections += 1;
        let permit_for =
            |chain: &[Vec<u8>]| eval::permit_at(local, endpoint, chain, requested, options.now);
        let after_refusal = if requested == SslMode::Prefer {
            PasswordPermit::Send
        } else {
            PasswordPermit::Withhold
        };
        let tls = probe::tls_attempt(
            endpoint,
            deadlines,
            &params,
            identity,
            plan.tls_options(),
            plan.negotiation,
            &permit_for,
            after_refusal,
        );
        let needs_plain = tls.connect_error.is_none()
            && tls.plaintext_after_refusal.is_none()
            && matches!(tls.reply, None | Some(probe::SslReply::Accepted));
        let plain = if needs_plain {
            connections += 1;
            let input = EvalInput {
                endpoint,
                requested,
                local,
                tls: Some(&tls),
                plain: None,
                now: options.now,
                warn_days: options.warn_days,
                user: &plan.user,
                dbname: &plan.dbname,
                password_source: password_source(plan),
                password_unknown: plan.password_unknown.as_deref(),
                hba: options.hba.as_ref(),
                server_log: None,
                negotiation: plan.negotiation,
                ssl_request_probe: None,
            };
            let permit =
                if requested == SslMode::Prefer && eval::tls_falls_back(&input, SslMode::Prefer) {
                    PasswordPermit::Send
                } else {
                    PasswordPermit::Withhold
                };
            Some(probe::plain_attempt(endpoint, deadlines, &params, permit))
        } else {
            None
        };
        (Some(tls), plain)
    };
    Observed {
        endpoint: endpoint.clone(),
        tls,
        plain,
        ssl_request_probe,
        connections,
    }
}

/// What one host's attempts saw, before judgement.
struct Observed {
    endpoint: Endpoint,
    tls: Option<probe::TlsAttempt>,
    plain: Option<probe::PlainAttempt>,
    /// After a failed direct handshake: the same server asked with an SSLRequest.
    ssl_request_probe: Option<probe::TlsAttempt>,
    connections: u32,
}

impl Observed {
    /// The log lines the server writes about these attempts: a FATAL line for each session
    /// it refused, and "could not accept SSL connection" for each handshake it ended.
    fn server_log_lines(&self) -> usize {
        let refused = |outcome: Option<&probe::StartupOutcome>| {
            usize::from(matches!(
                outcome,
                Some(probe::StartupOutcome::ServerError { .. })
            ))
        };
        let tls = |t: &probe::TlsAttempt| {
            usize::from(matches!(
                t.handshake,
                Some(Err(probe::TlsFailure::Alert(_)))
            )) + refused(t.startup.as_ref())
                + refused(t.plaintext_after_refusal.as_ref())
        };
        self.tls.as_ref().map(tls).unwrap_or(0)
            + self.ssl_request_probe.as_ref().map(tls).unwrap_or(0)
            + self
                .plain
                .as_ref()
                .map(|p| refused(p.startup.as_ref()))
                .unwrap_or(0)
    }
}

fn password_source(plan: &Plan) -> Option<String> {
    plan.password.as_ref().map(|(_, source)| source.describe())
}

/// What the --admin rules say about themselves: stale, or with lines the server refuses.
fn admin_findings(rules: &crate::admin::AdminRules) -> Vec<Finding> {
    let mut out = Vec::new();
    let errors = &rules.context.hba.errors;
    if rules.stale == Some(true) || !errors.is_empty() {
        out.push(Finding {
            code: Code::HbaRulesStale,
            severity: Severity::Warning,
            summary: if rules.stale == Some(true) {
                "pg_hba.conf changed after the server last loaded it: the server still runs the old rules, and the lines named here are the file's, not necessarily the ones in force".into()
            } else {
                "pg_hba.conf on disk has lines the server refuses: a reload would fail and the old rules stay in force".into()
            },
            evidence: vec![Evidence::new("source", rules.context.source.clone())],
            fix: Some("fix the file, then `SELECT pg_reload_conf();` and check the server log for \"pg_hba.conf was not reloaded\"".into()),
            modes: vec![],
        });
    }
    out.extend(hba_file_findings(errors));
    out
}

/// Lines of the given pg_hba.conf that the server refuses to load.
fn hba_file_findings(errors: &[crate::hba::ParseError]) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in errors {
        out.push(Finding {
            code: Code::HbaParseError,
            severity: Severity::Error,
            summary: format!(
                "{} (line {} of {})",
                e.message,
                e.line_number,
                e.file.display()
            ),
            evidence: vec![
                Evidence::new("file", Value::path(&e.file)),
                Evidence::new("line", Value::line(e.line_number)),
                Evidence::new("rule", e.raw.clone()),
            ],
            fix: Some("fix the line; until then a reload keeps the old rules".into()),
            modes: vec![],
        });
    }
    out
}

//! Drives the pipeline for one target: local files, probe each host (at most two
//! connections each), judge, report. The per-run context (the rules from --hba or
//! --admin) is built once by `RunContext::prepare`. No formatting here.

use std::time::{Duration, Instant};

use crate::catalogue::{Code, Severity};
use crate::connections;
use crate::eval::{self, EvalInput};
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;
use crate::hba::HbaContext;
use crate::local::local_setup;
use crate::observe::HostObservation;
use crate::plan::Plan;
use crate::probe::{Deadlines, StartupParams};
use crate::report::{self, HostResult, Report};
use crate::serverlog;
use crate::slots::Slots;

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
    /// --check: only the connections libpq makes at the requested sslmode.
    pub only_requested: bool,
    /// --pooler-config, read.
    pub pooler: Option<crate::pooler::PoolerConfig>,
    /// --pooler-log.
    pub pooler_log: Option<std::path::PathBuf>,
}

/// The options and what they yield once for every target of the run: the rules in force
/// (from --hba, or read through --admin) and what is wrong with them.
pub struct RunContext {
    pub options: RunOptions,
    rules: Option<HbaContext>,
    rule_findings: Vec<Finding>,
    /// How many diagnoses may run at once, overall and per server.
    slots: Slots,
}

impl RunContext {
    /// Reads the --admin rules (one connection) or takes the --hba ones.
    pub async fn prepare(
        options: RunOptions,
        slots: Slots,
        run_ends: Option<Instant>,
    ) -> RunContext {
        // The --admin connection is inside the run's deadline as well as --timeout.
        let budget = time_left(run_ends, options.timeout);
        let admin_rules = match options.admin.as_ref() {
            Some(admin_plan) => Some(
                crate::admin::fetch(
                    admin_plan,
                    budget,
                    options.allow_cleartext_password,
                    options.now,
                )
                .await,
            ),
            None => None,
        };
        let (rules, rule_findings) = match admin_rules {
            Some(Ok(rules)) => (Some(rules.context.clone()), admin_findings(&rules)),
            Some(Err(e)) => (options.hba.clone(), vec![admin_failure(&e)]),
            None => (
                options.hba.clone(),
                options
                    .hba
                    .as_ref()
                    .map(|ctx| hba_file_findings(&ctx.hba.errors))
                    .unwrap_or_default(),
            ),
        };
        let mut rule_findings = rule_findings;
        rule_findings.extend(options.pooler.iter().flat_map(crate::pooler::lint::lint));
        RunContext {
            options,
            rules,
            rule_findings,
            slots,
        }
    }
}

/// What is left of `timeout` from now, cut short by the run's deadline.
fn time_left(run_ends: Option<Instant>, timeout: Duration) -> Duration {
    run_ends.map_or(timeout, |ends| {
        ends.saturating_duration_since(Instant::now()).min(timeout)
    })
}

/// Diagnoses one target. Its deadline starts when its first host gets a slot; `run_ends`
/// (the whole run's deadline) cuts it short.
pub async fn run(plan: &Plan, context: &RunContext, run_ends: Option<Instant>) -> Report {
    let options = &context.options;
    let mut started = Instant::now();
    let (local, identity) = local_setup(plan);
    let mut extra_findings = crate::keywords::unemulated_findings(plan);
    extra_findings.extend(context.rule_findings.iter().cloned());
    let hba_context = context.rules.as_ref();
    let log_size = options.server_log.as_deref().and_then(serverlog::size);
    let pooler_log_size = options
        .pooler_log
        .as_deref()
        .and_then(crate::pooler::log::size);
    let params = StartupParams {
        user: &plan.user,
        dbname: &plan.dbname,
        application_name: &plan.application_name,
        options: plan.options.as_deref(),
        password: plan.password.as_ref().map(|(s, _)| s),
        allow_cleartext_on_plaintext: options.allow_cleartext_password,
        channel_binding: plan.channel_binding,
        extra_query: None,
        ask_pooler_version: !options.only_requested,
    };
    let mut observed: Vec<HostObservation> = Vec::with_capacity(plan.endpoints.len());
    let mut deadlines = None;
    for endpoint in &plan.endpoints {
        // The name lookup that finds the server's slot counts against the target's deadline
        // (and the run's): a silent resolver holds no target longer than its --timeout.
        let resolve_within = match &deadlines {
            Some(Deadlines { overall, .. }) => overall.saturating_duration_since(Instant::now()),
            None => time_left(run_ends, options.timeout),
        };
        let (_slot, looked_up) = context.slots.acquire(endpoint, resolve_within).await;
        let deadlines = *deadlines.get_or_insert_with(|| {
            started = Instant::now()
                .checked_sub(looked_up)
                .unwrap_or_else(Instant::now);
            let own = started + options.timeout;
            Deadlines {
                overall: run_ends.map_or(own, |end| end.min(own)),
                step: plan.connect_timeout,
            }
        });
        let gate = eval::Gate {
            local: &local,
            endpoint,
            now: options.now,
            user: &plan.user,
            dbname: &plan.dbname,
            negotiation: plan.negotiation,
        };
        let host = connections::Host {
            plan,
            endpoint,
            params: &params,
            identity: &identity,
            deadlines,
        };
        observed.push(connections::observe_host(&host, &gate, options.only_requested).await);
    }
    let overall = deadlines.map_or(started, |d| d.overall);
    let log_reasons = match options.server_log.clone() {
        None => None,
        Some(path) => {
            let expected = observed.iter().map(HostObservation::server_log_lines).sum();
            let wait_until = (Instant::now() + SERVER_LOG_WAIT).min(overall);
            let user = plan.user.clone();
            // The poll sleeps between reads of a file: not on the engine's threads.
            tokio::task::spawn_blocking(move || {
                serverlog::read_excerpt_expecting(&path, log_size, &user, expected, wait_until)
            })
            .await
            .ok()
            .and_then(Result::ok)
            .map(|excerpt| serverlog::interpret(&excerpt))
        }
    };
    let pooler_log = options.pooler_log.as_deref().and_then(|path| {
        let clients: Vec<std::net::SocketAddr> = observed
            .iter()
            .flat_map(HostObservation::local_addrs)
            .collect();
        crate::pooler::log::read(path, pooler_log_size, &clients).ok()
    });
    // With PgBouncer's configuration, its own connection to the server is checked too, by
    // its rules; only when the pooler answered at all.
    if postgres_like_reply(&observed) {
        extra_findings.extend(second_hop(plan, options, run_ends).await);
    }
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
                user_is_default: plan.is_libpq_default("user"),
                dbname_is_default: plan.is_libpq_default("dbname"),
                password_source: password_source(plan),
                password_unknown: plan.password_unknown.as_deref(),
                hba: hba_context,
                server_log: log_reasons.as_ref(),
                negotiation: plan.negotiation,
                ssl_request_probe: o.ssl_request_probe.as_ref(),
                pooler: options.pooler.as_ref(),
                pooler_log: pooler_log.as_ref(),
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
        client_certificate: local.client.leaf.as_ref(),
        now: options.now,
        crypto_provider: crate::probe::PROVIDER_NAME,
        hosts: &hosts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Whether any connection reached something that answered the startup.
fn postgres_like_reply(observed: &[HostObservation]) -> bool {
    observed.iter().any(|o| {
        o.tls
            .as_ref()
            .is_some_and(|t| t.startup.is_some() || t.plaintext_after_refusal.is_some())
            || o.plain.as_ref().is_some_and(|p| p.startup.is_some())
    })
}

/// The pooler's connection to the server behind it, diagnosed as the pooler makes it
/// (PgBouncer's server_tls_* settings, pgpool-II's ssl and ssl_ca_cert, as libpq
/// settings), from this host: one connection, no pooler context. None without
/// --pooler-config, or without an entry for the target's database.
async fn second_hop(
    plan: &Plan,
    options: &RunOptions,
    run_ends: Option<Instant>,
) -> Option<Finding> {
    let config = options.pooler.as_ref()?;
    let (pooler, hop) = match config.kind {
        crate::pooler::Kind::PgBouncer => (
            "PgBouncer",
            crate::pooler::pgbouncer::server_hop(config, &plan.dbname, &plan.user)?,
        ),
        crate::pooler::Kind::Pgpool => (
            "pgpool-II",
            crate::pooler::pgpool::server_hop(config, &plan.dbname, &plan.user)?,
        ),
    };
    let setting = match config.kind {
        crate::pooler::Kind::PgBouncer => "server_tls_sslmode",
        crate::pooler::Kind::Pgpool => "checked as sslmode",
    };
    let env = crate::plan::Environment {
        vars: Default::default(),
        home: None,
        os_user: Some(plan.user.clone()),
    };
    let hop_plan = crate::plan::resolve(&hop.conninfo, &Default::default(), &env).ok()?;
    let context = RunContext {
        options: RunOptions {
            now: options.now,
            timeout: options.timeout,
            warn_days: options.warn_days,
            allow_cleartext_password: false,
            hba: None,
            server_log: None,
            admin: None,
            only_requested: true,
            pooler: None,
            pooler_log: None,
        },
        rules: None,
        rule_findings: Vec::new(),
        slots: Slots::unlimited(),
    };
    let report = Box::pin(run(&hop_plan, &context, run_ends)).await;
    let first = report.findings.first();
    let tls_phase = first.is_some_and(|f| {
        matches!(
            f.phase,
            crate::catalogue::Phase::Network
                | crate::catalogue::Phase::Negotiation
                | crate::catalogue::Phase::Tls
                | crate::catalogue::Phase::Chain
                | crate::catalogue::Phase::ClientCertificate
        ) && f.severity == Severity::Error
    });
    let server = report.target_label();
    let (severity, summary) = if report.verdict.ok {
        (Severity::Info, format!("{pooler}'s connection to the server ({server}, {setting} = {}) works as its settings ask", hop.sslmode))
    } else if tls_phase {
        (
            Severity::Error,
            format!(
                "{pooler}'s connection to the server ({server}, {setting} = {}) fails: {}",
                hop.sslmode,
                first.map(|f| f.summary.as_str()).unwrap_or_default()
            ),
        )
    } else {
        (Severity::Info, format!("the TLS of {pooler}'s connection to the server ({server}, {setting} = {}) passes; the login itself needs {pooler}'s own credentials and was not tried as it: {}", hop.sslmode, first.map(|f| f.summary.as_str()).unwrap_or_default()))
    };
    let mut evidence: Vec<Evidence> = hop
        .cited
        .iter()
        .map(|c| Evidence::new("pooler_setting", c.clone()))
        .collect();
    evidence.push(Evidence::new("checked_as", format!("libpq sslmode={} with the settings above, one connection, from the doctor's host (not the pooler's)", hop.sslmode)));
    if let Some(f) = first.filter(|_| !report.verdict.ok) {
        evidence.push(Evidence::new("hop_finding", Value::name(f.code.as_str())));
        for e in f.evidence.iter().take(8) {
            evidence.push(Evidence::new(
                "hop_evidence",
                format!("{}: {}", e.key, e.value.for_people()),
            ));
        }
    }
    Some(Finding {
        code: Code::PoolerServerHop,
        severity,
        summary,
        evidence,
        fix: first
            .filter(|_| !report.verdict.ok && tls_phase)
            .and_then(|f| f.fix.clone())
            .map(|fix| match config.kind {
                crate::pooler::Kind::PgBouncer => format!("in PgBouncer's terms (server_tls_* in pgbouncer.ini): {fix}"),
                crate::pooler::Kind::Pgpool => format!("in pgpool-II's terms (ssl, ssl_ca_cert in pgpool.conf; the backend_hostname0 server): {fix}"),
            }),
        modes: vec![],
    })
}

/// How long to wait at most for the server's log lines about this probe: the backend
/// writes them as it exits, just after the connection closes.
const SERVER_LOG_WAIT: Duration = Duration::from_secs(1);

fn password_source(plan: &Plan) -> Option<String> {
    plan.password.as_ref().map(|(_, source)| source.describe())
}

/// The --admin connection could not read the rules: the run goes on without them.
fn admin_failure(e: &crate::admin::AdminError) -> Finding {
    Finding {
        code: Code::AdminConnectionFailed,
        severity: Severity::Warning,
        summary: format!("the --admin connection could not read the rules: {e}"),
        evidence: vec![],
        fix: Some("connect --admin as a superuser, or GRANT EXECUTE ON FUNCTION pg_hba_file_rules() (and pg_ident_file_mappings()) to that role; PostgreSQL 15 or later".into()),
        modes: vec![],
    }
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
        let mut evidence = vec![
            Evidence::new("file", Value::path(&e.file)),
            Evidence::new("line", Value::line(e.line_number)),
        ];
        // pg_hba_file_rules (--admin) gives the line's number, not its text.
        if !e.raw.trim().is_empty() {
            evidence.push(Evidence::new("rule", e.raw.clone()));
        }
        out.push(Finding {
            code: Code::HbaParseError,
            severity: Severity::Error,
            summary: format!(
                "{} (line {} of {})",
                e.message,
                e.line_number,
                e.file.display()
            ),
            evidence,
            fix: Some("fix the line; until then a reload keeps the old rules".into()),
            modes: vec![],
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// PgBouncer's [databases] entry names a port nobody listens on.
    fn second_hop_to_a_closed_port() -> Option<Finding> {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let ini = format!("[databases]\napp = host=127.0.0.1 port={closed} password=s3cret-hop\n[pgbouncer]\nserver_tls_sslmode = require\n");
        let config = crate::pooler::pgbouncer::load(std::path::Path::new("pgbouncer.ini"), &ini);
        let plan = crate::plan::resolve(
            "host=127.0.0.1 dbname=app user=alice",
            &Default::default(),
            &crate::plan::Environment::default(),
        )
        .ok()?;
        let options = RunOptions {
            now: 0,
            timeout: Duration::from_secs(5),
            warn_days: 0,
            allow_cleartext_password: false,
            hba: None,
            server_log: None,
            admin: None,
            only_requested: false,
            pooler: Some(config),
            pooler_log: None,
        };
        crate::probe::block_on(second_hop(&plan, &options, None))
            .ok()
            .flatten()
    }

    #[test]
    fn the_second_hop_never_shows_the_password_of_its_databases_entry() {
        let finding = second_hop_to_a_closed_port().expect("a finding");
        assert_eq!(finding.code, Code::PoolerServerHop);
        assert!(
            !format!("{finding:?}").contains("s3cret-hop"),
            "{finding:?}"
        );
        assert!(
            format!("{finding:?}").contains("password=<hidden>"),
            "{finding:?}"
        );
    }

    /// The findings the run context makes of its rules.
    fn table() -> Vec<(&'static str, Vec<Finding>, Code)> {
        let row = |kind: &str, value: &str| vec![Some(kind.to_string()), Some(value.to_string())];
        let stale = crate::admin::rules_from_rows(
            &[
                row(
                    "rule",
                    r#"{"line_number": 1, "type": "host", "database": ["all"], "user_name": ["all"], "address": "0.0.0.0", "netmask": "0.0.0.0", "auth_method": "scram-sha-256"}"#,
                ),
                row("stale", "true"),
            ],
            "postgres",
        );
        let broken = crate::hba::parse_hba(
            "host all all 10.0.0.0/33 md5\n",
            std::path::Path::new("pg_hba.conf"),
            17,
        );
        vec![
            (
                "--admin could not connect",
                vec![admin_failure(&crate::admin::AdminError::NoPassword)],
                Code::AdminConnectionFailed,
            ),
            (
                "pg_hba.conf changed after the reload",
                admin_findings(&stale),
                Code::HbaRulesStale,
            ),
            (
                "a --hba file the server refuses",
                hba_file_findings(&broken.errors),
                Code::HbaParseError,
            ),
            (
                "PgBouncer's server, checked by its settings, refuses the connection",
                second_hop_to_a_closed_port().into_iter().collect(),
                Code::PoolerServerHop,
            ),
        ]
    }

    pub(crate) fn codes_produced() -> BTreeSet<Code> {
        table()
            .into_iter()
            .flat_map(|(_, f, _)| f)
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn every_case_yields_its_code() {
        for (name, findings, code) in table() {
            assert!(
                findings.iter().any(|f| f.code == code),
                "{name}: {findings:?}"
            );
        }
    }
}

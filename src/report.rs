//! The one report every output format renders. These types own the JSON shape:
//! docs/report.schema.json is generated from them (`PGTLS_BLESS=1 cargo test --lib report`),
//! and a test fails when it is stale. Analysis types stay free of serde and are converted here.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use crate::catalogue::Severity;
use crate::catalogue::{Code, Phase};
use crate::eval::{Cell, Judgement, TlsSession};
use crate::evidence::{rfc3339, Evidence, Value};
use crate::finding::Finding;
use crate::plan::{Endpoint, Plan};
use crate::sslmode::SslMode;
use crate::x509::CertSummary;

pub const SCHEMA_VERSION: u32 = 2;

/// Exit statuses (documented in README.md and `--help`).
pub mod exit {
    /// The connection as requested works and no finding is an error.
    pub const OK: u8 = 0;
    /// At least one error finding (the requested connection fails, or cannot be confirmed).
    pub const PROBLEM: u8 = 1;
    /// No reply recognisably from PostgreSQL on any attempt.
    pub const UNREACHABLE: u8 = 2;
    /// Usage error, or a file only the doctor reads is unreadable.
    pub const USAGE: u8 = 3;
}

/// The report of one target: `pgtls-doctor TARGET --format json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "report")]
pub struct Report {
    /// 2 since the typed catalogue and evidence.
    pub schema_version: u32,
    pub tool: Tool,
    pub target: Target,
    pub verdict: Verdict,
    /// The six sslmodes as libpq would fare at the chosen host.
    pub sslmodes: SslModes,
    /// The chosen host's findings: errors first, the requested mode's cause first among them.
    pub findings: Vec<FindingOut>,
    /// The server's certificate chain as it was sent (depth 0 = the server's own).
    pub server_chain: Vec<CertOut>,
    /// The TLS session of the chosen host, when a handshake completed.
    pub tls: Option<TlsOut>,
    /// Every host of a multi-host target (empty for one host).
    pub hosts: Vec<HostOut>,
    /// The client certificate libpq would present (sslcert), when it could be read.
    pub client_certificate: Option<CertOut>,
    pub probe: ProbeOut,
    pub notes: Vec<String>,
}

impl Report {
    /// The target as the machine formats name it: `user@host:port/dbname` (the address when
    /// there is no host name).
    pub fn target_label(&self) -> String {
        let t = &self.target;
        let host = match (&t.hostaddr, t.host.is_empty()) {
            (Some(addr), true) => addr.clone(),
            _ => t.host.clone(),
        };
        format!("{}@{}:{}/{}", t.user, host, t.port, t.dbname)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "tool")]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Tool {
    pub const THIS: Tool = Tool {
        name: "pgtls-doctor",
        version: env!("CARGO_PKG_VERSION"),
    };
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "target")]
pub struct Target {
    pub host: String,
    pub hostaddr: Option<String>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub sslmode: SslMode,
    /// Every setting in force and where it came from (passwords never shown).
    pub settings: Vec<SettingOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "setting")]
pub struct SettingOut {
    pub name: String,
    pub value: String,
    pub source: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "verdict")]
pub struct Verdict {
    pub ok: bool,
    pub exit_code: u8,
    pub summary: String,
}

/// What each sslmode gets.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "sslmodes")]
pub struct SslModes {
    pub disable: CellOut,
    pub allow: CellOut,
    pub prefer: CellOut,
    pub require: CellOut,
    #[serde(rename = "verify-ca")]
    pub verify_ca: CellOut,
    #[serde(rename = "verify-full")]
    pub verify_full: CellOut,
}

impl SslModes {
    pub fn get(&self, mode: SslMode) -> &CellOut {
        match mode {
            SslMode::Disable => &self.disable,
            SslMode::Allow => &self.allow,
            SslMode::Prefer => &self.prefer,
            SslMode::Require => &self.require,
            SslMode::VerifyCa => &self.verify_ca,
            SslMode::VerifyFull => &self.verify_full,
        }
    }

    /// The modes from weakest to strictest.
    pub fn iter(&self) -> impl Iterator<Item = (SslMode, &CellOut)> {
        SslMode::ALL.into_iter().map(move |m| (m, self.get(m)))
    }
}

/// One sslmode's verdict.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[schemars(rename = "cell")]
pub struct CellOut {
    /// true: a session; false: refused; null: not determined (see `code`).
    pub ok: Option<bool>,
    /// libpq's last attempt at this mode used TLS.
    pub encrypted: bool,
    /// The first check that fails, in libpq's order.
    pub code: Option<Code>,
}

#[derive(Debug, Serialize, Clone, JsonSchema)]
#[schemars(rename = "finding")]
pub struct FindingOut {
    pub code: Code,
    pub phase: Phase,
    pub severity: Severity,
    pub summary: String,
    /// In order; a key may repeat (one entry per server-log line).
    pub evidence: Vec<EvidenceOut>,
    pub fix: Option<String>,
    /// The sslmodes this finding makes fail.
    pub modes: Vec<SslMode>,
}

/// One piece of evidence: `{"key": "hba_line", "kind": "line", "value": 2}`.
#[derive(Debug, Serialize, Clone, JsonSchema)]
#[schemars(rename = "evidence")]
pub struct EvidenceOut {
    pub key: &'static str,
    #[serde(flatten)]
    pub value: EvidenceValue,
}

/// An evidence value by kind. Times are RFC 3339 (UTC); lines are 1-based.
#[derive(Debug, Serialize, Clone, JsonSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[schemars(rename = "evidence_value")]
pub enum EvidenceValue {
    Text(String),
    Name(String),
    Path(String),
    Line(u64),
    Number(i64),
    Flag(bool),
    Time(String),
}

impl EvidenceValue {
    /// The value as people read it (text output).
    pub fn for_people(&self) -> String {
        match self {
            EvidenceValue::Text(s) | EvidenceValue::Name(s) | EvidenceValue::Path(s) => s.clone(),
            EvidenceValue::Line(n) => n.to_string(),
            EvidenceValue::Number(n) => n.to_string(),
            EvidenceValue::Flag(b) => (if *b { "yes" } else { "no" }).to_string(),
            EvidenceValue::Time(t) => for_people(t),
        }
    }
}

/// An RFC 3339 instant as people read it: `2026-11-01 21:45:51 UTC`.
pub fn for_people(rfc3339: &str) -> String {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| crate::evidence::human_time(t.unix_timestamp()))
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn evidence_out(e: &Evidence) -> EvidenceOut {
    EvidenceOut {
        key: e.key,
        value: match &e.value {
            Value::Text(s) => EvidenceValue::Text(s.clone()),
            Value::Name(s) => EvidenceValue::Name(s.clone()),
            Value::Path(s) => EvidenceValue::Path(s.clone()),
            Value::Line(n) => EvidenceValue::Line(*n),
            Value::Number(n) => EvidenceValue::Number(*n),
            Value::Flag(b) => EvidenceValue::Flag(*b),
            Value::Time(t) => EvidenceValue::Time(rfc3339(*t)),
        },
    }
}

#[derive(Debug, Serialize, Clone, JsonSchema)]
#[schemars(rename = "certificate")]
pub struct CertOut {
    pub depth: usize,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub is_ca: bool,
    pub self_signed: bool,
    pub version: u32,
    pub key: String,
    pub signature_algorithm: String,
    pub sha256_fingerprint: String,
    pub extended_key_usage: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Clone, JsonSchema)]
#[schemars(rename = "tls")]
pub struct TlsOut {
    pub version: String,
    pub cipher_suite: String,
    pub key_exchange_group: Option<String>,
    pub alpn: Option<String>,
    /// The CA names in the server's CertificateRequest; null when it sent none.
    pub client_ca_names: Option<Vec<String>>,
    pub client_cert_sent: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "host")]
pub struct HostOut {
    pub endpoint: String,
    /// The host libpq would end on for the requested sslmode.
    pub chosen: bool,
    pub why: String,
    pub sslmodes: SslModes,
    pub findings: Vec<FindingOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "probe")]
pub struct ProbeOut {
    /// The instant the certificates were judged at (RFC 3339): now, or --now.
    pub at: String,
    pub connections: u32,
    pub duration_ms: u64,
    pub crypto_provider: &'static str,
    pub emulates: &'static str,
}

/// Several targets under `--format json`: one document holding every report and their
/// summary.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "fleet")]
pub struct Fleet {
    pub schema_version: u32,
    pub tool: Tool,
    pub reports: Vec<Report>,
    pub summary: Summary,
}

/// What several targets came to.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[schemars(rename = "summary")]
pub struct Summary {
    pub targets: u32,
    /// Targets whose requested connection works with no error finding (exit status 0).
    pub ok: u32,
    /// Targets with an error finding (exit status 1).
    pub failed: u32,
    /// Targets where nothing recognisably PostgreSQL answered (exit status 2).
    pub unreachable: u32,
    /// The run's exit status: the worst of the targets', 2 before 1 before 0.
    pub exit_code: u8,
    /// How many targets carry each finding code.
    pub codes: BTreeMap<Code, u32>,
}

impl Summary {
    pub fn of(reports: &[Report]) -> Summary {
        let mut summary = Summary::default();
        for report in reports {
            summary.add(report);
        }
        summary
    }

    pub fn add(&mut self, report: &Report) {
        self.targets += 1;
        match report.verdict.exit_code {
            exit::OK => self.ok += 1,
            exit::UNREACHABLE => self.unreachable += 1,
            _ => self.failed += 1,
        }
        self.exit_code = worst_exit(self.exit_code, report.verdict.exit_code);
        let codes: BTreeSet<Code> = report.findings.iter().map(|f| f.code).collect();
        for code in codes {
            *self.codes.entry(code).or_default() += 1;
        }
    }
}

/// The certificates of a run that expire soonest (for the closing summary), kept bounded
/// as reports stream past.
#[derive(Debug, Default)]
pub struct SoonestExpiries {
    /// (not_after in RFC 3339 UTC, subject, target), sorted, at most `SOONEST` of them.
    pub certificates: Vec<(String, String, String)>,
}

const SOONEST: usize = 5;

impl SoonestExpiries {
    pub fn add(&mut self, report: &Report) {
        let target = report.target_label();
        for c in report.server_chain.iter().chain(&report.client_certificate) {
            let entry = (c.not_after.clone(), c.subject.clone(), target.clone());
            // RFC 3339 instants in UTC sort as text.
            if let Err(at) = self.certificates.binary_search(&entry) {
                if at < SOONEST {
                    self.certificates.insert(at, entry);
                    self.certificates.truncate(SOONEST);
                }
            }
        }
    }
}

/// How bad an exit status is: 2 (nothing answered) before 1 (a problem) before 0.
pub fn exit_rank(code: u8) -> u8 {
    match code {
        exit::UNREACHABLE => 2,
        exit::PROBLEM => 1,
        _ => 0,
    }
}

/// The worse of two exit statuses: 2 (unreachable) before 1 (problem) before 0.
pub fn worst_exit(a: u8, b: u8) -> u8 {
    if exit_rank(b) > exit_rank(a) {
        b
    } else {
        a
    }
}

/// One line of a line-oriented stream (NDJSON): each says what it is.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schemars(rename = "line")]
pub enum Line<'a> {
    Report(&'a Report),
    Summary(&'a Summary),
}

/// One host's probe and judgement, as `app` hands them over.
pub struct HostResult {
    pub endpoint: Endpoint,
    pub judgement: Judgement,
    pub connections: u32,
}

pub fn cells_out(cells: &std::collections::BTreeMap<SslMode, Cell>) -> SslModes {
    let cell = |mode: SslMode| {
        let c = &cells[&mode];
        CellOut {
            ok: c.ok,
            encrypted: c.encrypted,
            code: c.code,
        }
    };
    SslModes {
        disable: cell(SslMode::Disable),
        allow: cell(SslMode::Allow),
        prefer: cell(SslMode::Prefer),
        require: cell(SslMode::Require),
        verify_ca: cell(SslMode::VerifyCa),
        verify_full: cell(SslMode::VerifyFull),
    }
}

pub fn finding_out(f: &Finding) -> FindingOut {
    FindingOut {
        code: f.code,
        phase: f.code.phase(),
        severity: f.severity,
        summary: f.summary.clone(),
        evidence: f.evidence.iter().map(evidence_out).collect(),
        fix: f.fix.clone(),
        modes: f.modes.clone(),
    }
}

pub fn cert_out(depth: usize, c: &CertSummary) -> CertOut {
    CertOut {
        depth,
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        common_name: c.common_name.clone(),
        dns_names: c.dns_names.clone(),
        ip_addresses: c.ip_addresses.iter().map(|i| i.to_string()).collect(),
        is_ca: c.is_ca,
        self_signed: c.self_issued,
        version: c.version,
        key: c.key.clone(),
        signature_algorithm: c.signature_algorithm.clone(),
        sha256_fingerprint: c.sha256.clone(),
        extended_key_usage: c.extended_key_usage.clone(),
    }
}

fn tls_out(session: &TlsSession) -> TlsOut {
    TlsOut {
        version: session.version.clone(),
        cipher_suite: session.cipher_suite.clone(),
        key_exchange_group: session.key_exchange_group.clone(),
        alpn: session.alpn.clone(),
        client_ca_names: session.client_ca_names.clone(),
        client_cert_sent: session.client_cert_sent,
    }
}

pub struct BuildInput<'a> {
    pub plan: &'a Plan,
    /// The client certificate the target presents, when one loaded or could be read.
    pub client_certificate: Option<&'a CertSummary>,
    /// The clock the judgement used (Unix seconds).
    pub now: i64,
    /// The TLS library's crypto provider, as the probe names it.
    pub crypto_provider: &'static str,
    pub hosts: &'a [HostResult],
    pub duration_ms: u64,
}

pub fn build(input: &BuildInput) -> Report {
    let plan = input.plan;
    let judgements: Vec<&Judgement> = input.hosts.iter().map(|h| &h.judgement).collect();
    let (chosen, reasons) = crate::eval::host_loop::choose_host(&judgements, plan.sslmode);
    let host = &input.hosts[chosen];
    let judgement = &host.judgement;
    let findings: Vec<FindingOut> = judgement.findings.iter().map(finding_out).collect();
    let requested = &judgement.cells[&plan.sslmode];
    let any_postgres = input.hosts.iter().any(|h| h.judgement.postgres_replied);
    let has_error = judgement
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error);
    let exit_code = if !any_postgres {
        exit::UNREACHABLE
    } else if has_error || requested.ok != Some(true) {
        exit::PROBLEM
    } else {
        exit::OK
    };
    let summary = match (requested.ok, requested.code) {
        (Some(true), _) => {
            let works = format!(
                "sslmode={} connects to {} {}",
                plan.sslmode,
                host.endpoint.display(),
                if requested.encrypted {
                    "over TLS"
                } else {
                    "WITHOUT TLS"
                }
            );
            // It connects, yet an error stands (rules the server refuses, say): that error is
            // the headline, the working connection its context.
            match judgement
                .findings
                .iter()
                .find(|f| f.severity == Severity::Error)
            {
                Some(error) => format!("{} ({works})", error.summary),
                None => works,
            }
        }
        (Some(false), code) => format!(
            "sslmode={} fails at {}: {}",
            plan.sslmode,
            host.endpoint.display(),
            judgement
                .findings
                .iter()
                .find(|f| Some(f.code) == code)
                .map(|f| f.summary.clone())
                .unwrap_or_else(|| code.map(Code::as_str).unwrap_or("unknown").to_string())
        ),
        (None, code) => format!(
            "sslmode={} could not be determined at {}: {}",
            plan.sslmode,
            host.endpoint.display(),
            code.map(Code::as_str).unwrap_or("unknown")
        ),
    };
    let settings = plan
        .settings
        .iter()
        .map(|(k, s)| SettingOut {
            name: k.clone(),
            value: s.value.clone(),
            source: s.source.describe(),
        })
        .collect();
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::THIS,
        target: Target {
            host: host.endpoint.host.clone(),
            hostaddr: host.endpoint.hostaddr.map(|a| a.to_string()),
            port: host.endpoint.port,
            user: plan.user.clone(),
            dbname: plan.dbname.clone(),
            sslmode: plan.sslmode,
            settings,
        },
        verdict: Verdict {
            ok: exit_code == exit::OK,
            exit_code,
            summary,
        },
        sslmodes: cells_out(&judgement.cells),
        findings,
        server_chain: judgement
            .chain
            .iter()
            .enumerate()
            .map(|(i, c)| cert_out(i, c))
            .collect(),
        tls: judgement.tls_session.as_ref().map(tls_out),
        hosts: if input.hosts.len() > 1 {
            input
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| HostOut {
                    endpoint: h.endpoint.display(),
                    chosen: i == chosen,
                    why: reasons[i].clone(),
                    sslmodes: cells_out(&h.judgement.cells),
                    findings: h.judgement.findings.iter().map(finding_out).collect(),
                })
                .collect()
        } else {
            Vec::new()
        },
        client_certificate: input.client_certificate.map(|c| cert_out(0, c)),
        probe: ProbeOut {
            at: rfc3339(input.now),
            connections: input.hosts.iter().map(|h| h.connections).sum(),
            duration_ms: input.duration_ms,
            crypto_provider: input.crypto_provider,
            emulates: "libpq 17 (PostgreSQL 15 libpq differs only where noted)",
        },
        notes: plan.notes.clone(),
    }
}

/// The report of `hba lint`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "lint_report")]
pub struct LintReport {
    pub schema_version: u32,
    pub tool: Tool,
    pub file: String,
    pub pg_version: u32,
    pub rules: usize,
    pub exit_code: u8,
    pub findings: Vec<FindingOut>,
}

pub fn lint_report(
    file: &std::path::Path,
    pg_version: u32,
    rules: usize,
    findings: &[Finding],
) -> LintReport {
    let has_error = findings.iter().any(|f| f.severity == Severity::Error);
    LintReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool::THIS,
        file: file.display().to_string(),
        pg_version,
        rules,
        exit_code: if has_error { exit::PROBLEM } else { exit::OK },
        findings: findings.iter().map(finding_out).collect(),
    }
}

/// Every JSON document the doctor writes, for the schema.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)]
enum Document<'a> {
    Report(Report),
    Fleet(Fleet),
    Line(Line<'a>),
    Lint(LintReport),
}

/// docs/report.schema.json: the JSON Schema (2020-12) of every document, from these types.
pub fn schema_json() -> String {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Document>();
    schema.insert(
        "$id".into(),
        "https://pgtls-doctor.invalid/report.schema.json".into(),
    );
    schema.insert("title".into(), "pgtls-doctor JSON output".into());
    schema.insert(
        "description".into(),
        format!(
            "Schema version {SCHEMA_VERSION}. `--format json` writes a `report` for one target, a `fleet` \
             (every report and their summary, as one document) for several targets, and a \
             `lint_report` for `hba lint`. A line-oriented stream (NDJSON) writes one `line` per \
             line: each report, then the summary, each with its `kind`. schema_version changes when \
             a field is removed or changes meaning; new fields may appear without a change."
        )
        .into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_current() {
        crate::testing::check_generated("docs/report.schema.json", &schema_json());
    }

    #[test]
    fn schema_lists_every_code() {
        let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
        let text = schema.to_string();
        for code in Code::ALL {
            assert!(text.contains(&format!("\"{}\"", code.as_str())), "{code}");
        }
    }

    #[test]
    fn evidence_is_typed_in_json() {
        let e = evidence_out(&Evidence::new("hba_line", Value::line(2)));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"key": "hba_line", "kind": "line", "value": 2})
        );
        let t = evidence_out(&Evidence::new("not_after", Value::Time(0)));
        assert_eq!(
            serde_json::to_value(&t).unwrap()["value"],
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn summary_counts_and_ranks() {
        assert_eq!(worst_exit(exit::OK, exit::PROBLEM), exit::PROBLEM);
        assert_eq!(
            worst_exit(exit::UNREACHABLE, exit::PROBLEM),
            exit::UNREACHABLE
        );
        assert_eq!(worst_exit(exit::PROBLEM, exit::OK), exit::PROBLEM);
    }
}

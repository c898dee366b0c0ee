//! The one report every output format renders. It owns the JSON shape (documented in
//! docs/report.schema.json); analysis types stay free of serde and are converted here.

use crate::catalogue::Code;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::eval::{Cell, Judgement};
use crate::finding::{Finding, Severity};
use crate::plan::{Endpoint, Plan};
use crate::probe::TlsAttempt;
use crate::sslmode::SslMode;
use crate::x509::CertSummary;

pub const SCHEMA_VERSION: u32 = 1;

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

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: Target,
    pub verdict: Verdict,
    pub sslmodes: Map<String, Value>,
    pub findings: Vec<FindingOut>,
    pub server_chain: Vec<CertOut>,
    pub tls: Option<TlsOut>,
    pub hosts: Vec<HostOut>,
    pub probe: ProbeOut,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub host: String,
    pub hostaddr: Option<String>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub sslmode: String,
    pub settings: Vec<SettingOut>,
}

#[derive(Debug, Serialize)]
pub struct SettingOut {
    pub name: String,
    pub value: String,
    pub source: String,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub ok: bool,
    pub exit_code: u8,
    pub summary: String,
}

#[derive(Debug, Serialize, Clone)]
pub struct FindingOut {
    pub code: Code,
    pub severity: &'static str,
    pub summary: String,
    pub evidence: Map<String, Value>,
    pub fix: Option<String>,
    pub modes: Vec<&'static str>,
}

#[derive(Debug, Serialize, Clone)]
pub struct CertOut {
    pub depth: usize,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
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

#[derive(Debug, Serialize, Clone)]
pub struct TlsOut {
    pub version: String,
    pub cipher_suite: String,
    pub key_exchange_group: Option<String>,
    pub alpn: Option<String>,
    /// The CA names in the server's CertificateRequest; null when it sent none.
    pub client_ca_names: Option<Vec<String>>,
    pub client_cert_sent: bool,
}

#[derive(Debug, Serialize)]
pub struct HostOut {
    pub endpoint: String,
    pub chosen: bool,
    pub why: String,
    pub sslmodes: Map<String, Value>,
    pub findings: Vec<FindingOut>,
}

#[derive(Debug, Serialize)]
pub struct ProbeOut {
    pub connections: u32,
    pub duration_ms: u64,
    pub crypto_provider: &'static str,
    pub emulates: &'static str,
}

/// One host's probe and judgement, as `app` hands them over.
pub struct HostResult {
    pub endpoint: Endpoint,
    pub judgement: Judgement,
    pub tls: Option<TlsAttempt>,
    pub connections: u32,
}

pub fn cells_json(cells: &std::collections::BTreeMap<SslMode, Cell>) -> Map<String, Value> {
    let mut out = Map::new();
    for mode in SslMode::ALL {
        let cell = &cells[&mode];
        out.insert(
            mode.as_str().to_string(),
            serde_json::json!({
                "ok": cell.ok,
                "encrypted": cell.encrypted,
                "code": cell.code,
            }),
        );
    }
    out
}

pub fn finding_out(f: &Finding) -> FindingOut {
    let mut evidence = Map::new();
    for (k, v) in &f.evidence {
        evidence.insert(k.clone(), Value::String(v.clone()));
    }
    FindingOut {
        code: f.code,
        severity: f.severity.as_str(),
        summary: f.summary.clone(),
        evidence,
        fix: f.fix.clone(),
        modes: f.modes.iter().map(|m| m.as_str()).collect(),
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

pub fn cert_out(depth: usize, c: &CertSummary) -> CertOut {
    CertOut {
        depth,
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        not_before: date(c.not_before),
        not_after: date(c.not_after),
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

fn tls_out(tls: &TlsAttempt) -> Option<TlsOut> {
    let facts = tls.handshake.as_ref()?.as_ref().ok()?;
    Some(TlsOut {
        version: facts.version.clone(),
        cipher_suite: facts.cipher_suite.clone(),
        key_exchange_group: facts.key_exchange_group.clone(),
        alpn: facts.alpn.clone(),
        client_ca_names: crate::eval::client::ca_names(tls),
        client_cert_sent: tls.client_cert_sent,
    })
}

/// Which host libpq would end on for the requested mode: it skips hosts it cannot reach
/// and servers that are not ready (57P03), and stops at anything else.
pub fn choose_host(hosts: &[HostResult], requested: SslMode) -> (usize, Vec<String>) {
    let mut reasons = vec![String::new(); hosts.len()];
    for (i, h) in hosts.iter().enumerate() {
        let cell = &h.judgement.cells[&requested];
        let skip = matches!(
            cell.code,
            Some(Code::TcpConnectFailed) | Some(Code::ConnectTimeout) | Some(Code::ServerNotReady)
        );
        if skip && i + 1 < hosts.len() {
            reasons[i] = format!(
                "skipped: {} at sslmode={requested}, so libpq tries the next host",
                cell.code.map(Code::as_str).unwrap_or_default()
            );
            continue;
        }
        reasons[i] = match cell.ok {
            Some(true) => format!("libpq ends here: sslmode={requested} gets a session"),
            _ => format!(
                "libpq ends here: {} stops the host loop",
                cell.code.map(Code::as_str).unwrap_or("the failure")
            ),
        };
        for r in reasons.iter_mut().skip(i + 1) {
            *r = "not reached by libpq".into();
        }
        return (i, reasons);
    }
    (hosts.len().saturating_sub(1), reasons)
}

pub struct BuildInput<'a> {
    pub plan: &'a Plan,
    pub hosts: &'a [HostResult],
    pub duration_ms: u64,
}

pub fn build(input: &BuildInput) -> Report {
    let plan = input.plan;
    let (chosen, reasons) = choose_host(input.hosts, plan.sslmode);
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
        (Some(true), _) => format!(
            "sslmode={} connects to {} {}",
            plan.sslmode,
            host.endpoint.display(),
            if requested.encrypted {
                "over TLS"
            } else {
                "WITHOUT TLS"
            }
        ),
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
        tool: Tool {
            name: "pgtls-doctor",
            version: env!("CARGO_PKG_VERSION"),
        },
        target: Target {
            host: host.endpoint.host.clone(),
            hostaddr: host.endpoint.hostaddr.map(|a| a.to_string()),
            port: host.endpoint.port,
            user: plan.user.clone(),
            dbname: plan.dbname.clone(),
            sslmode: plan.sslmode.as_str().to_string(),
            settings,
        },
        verdict: Verdict {
            ok: exit_code == exit::OK,
            exit_code,
            summary,
        },
        sslmodes: cells_json(&judgement.cells),
        findings,
        server_chain: judgement
            .chain
            .iter()
            .enumerate()
            .map(|(i, c)| cert_out(i, c))
            .collect(),
        tls: host.tls.as_ref().and_then(tls_out),
        hosts: if input.hosts.len() > 1 {
            input
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| HostOut {
                    endpoint: h.endpoint.display(),
                    chosen: i == chosen,
                    why: reasons[i].clone(),
                    sslmodes: cells_json(&h.judgement.cells),
                    findings: h.judgement.findings.iter().map(finding_out).collect(),
                })
                .collect()
        } else {
            Vec::new()
        },
        probe: ProbeOut {
            connections: input.hosts.iter().map(|h| h.connections).sum(),
            duration_ms: input.duration_ms,
            crypto_provider: crate::probe::PROVIDER_NAME,
            emulates: "libpq 17 (PostgreSQL 15 libpq differs only where noted)",
        },
        notes: plan.notes.clone(),
    }
}

/// The report of `hba lint`.
#[derive(Debug, Serialize)]
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
        tool: Tool {
            name: "pgtls-doctor",
            version: env!("CARGO_PKG_VERSION"),
        },
        file: file.display().to_string(),
        pg_version,
        rules,
        exit_code: if has_error { exit::PROBLEM } else { exit::OK },
        findings: findings.iter().map(finding_out).collect(),
    }
}

//! Formatting only: the report in colour for people, or as JSON for machines.

use std::io::{self, Write};

use colored::Colorize;

use crate::report::{FindingOut, LintReport, Report};
use crate::untrusted::for_terminal_short;

/// Every value the text renderers did not write themselves goes through this: control
/// characters and bidi overrides escaped, and a hostile value cut to a readable length.
fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    for_terminal_short(text, MAX_SHOWN)
}

/// The most characters of one value a text report shows (JSON keeps the whole value).
const MAX_SHOWN: usize = 2000;

/// The report as JSON, with bytes that were not UTF-8 made visible (`\xNN`).
fn json_value(report: &impl serde::Serialize) -> io::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report).map_err(io::Error::other)?;
    crate::untrusted::clean_json(&mut value);
    Ok(value)
}

/// One report as a single line (JSON Lines), for --targets.
pub fn json_line(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &json_value(report)?)?;
    writeln!(out)
}

pub fn json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_value(report)?)?;
    writeln!(out)
}

fn severity_label(severity: &str) -> colored::ColoredString {
    match severity {
        "error" => "error  ".red().bold(),
        "warning" => "warning".yellow().bold(),
        _ => "info   ".cyan(),
    }
}

pub fn text(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let t = &report.target;
    let where_ = match &t.hostaddr {
        Some(a) if t.host.is_empty() => format!("{a}:{}", t.port),
        Some(a) => format!("{} ({a}):{}", t.host, t.port),
        None => format!("{}:{}", t.host, t.port),
    };
    writeln!(
        out,
        "{} {}  user={} dbname={} sslmode={}",
        "pgtls-doctor".bold(),
        safe(&where_),
        safe(&t.user),
        safe(&t.dbname),
        t.sslmode
    )?;
    writeln!(out)?;
    let verdict = if report.verdict.ok {
        format!("OK    {}", safe(&report.verdict.summary))
            .green()
            .bold()
    } else {
        format!("FAIL  {}", safe(&report.verdict.summary))
            .red()
            .bold()
    };
    writeln!(out, "{verdict}")?;
    writeln!(out)?;

    writeln!(
        out,
        "{}",
        " sslmode     session  TLS  first failing check".bold()
    )?;
    for (mode, cell) in &report.sslmodes {
        let ok = match cell["ok"].as_bool() {
            Some(true) => "yes    ".green(),
            Some(false) => "no     ".red(),
            None => "unknown".yellow(),
        };
        let tls = if cell["encrypted"].as_bool() == Some(true) {
            "yes".normal()
        } else {
            "no ".normal()
        };
        let code = cell["code"].as_str().unwrap_or("");
        let marker = if *mode == t.sslmode { "▶" } else { " " };
        writeln!(out, "{marker}{mode:<12}{ok}  {tls}  {code}")?;
    }

    if !report.hosts.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", "Hosts".bold())?;
        for h in &report.hosts {
            writeln!(
                out,
                "  {} {}  {}",
                if h.chosen { "▶" } else { " " },
                safe(&h.endpoint),
                safe(&h.why)
            )?;
        }
    }

    if !report.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", "Findings".bold())?;
        findings(&report.findings, out)?;
    }

    if !report.server_chain.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", "Server certificate chain (as sent)".bold())?;
        for c in &report.server_chain {
            writeln!(out, "  [{}] {}", c.depth, safe(&c.subject))?;
            writeln!(out, "      issuer: {}", safe(&c.issuer))?;
            writeln!(out, "      valid:  {} .. {}", c.not_before, c.not_after)?;
            let mut names: Vec<String> = c.dns_names.iter().map(|n| format!("DNS:{n}")).collect();
            names.extend(c.ip_addresses.iter().map(|n| format!("IP:{n}")));
            if !names.is_empty() {
                writeln!(out, "      names:  {}", safe(&names.join(", ")))?;
            }
            writeln!(
                out,
                "      key:    {}, {}",
                safe(&c.key),
                safe(&c.signature_algorithm)
            )?;
        }
    }
    if let Some(tls) = &report.tls {
        writeln!(out)?;
        writeln!(
            out,
            "{} {} {} {}",
            "TLS:".bold(),
            safe(&tls.version),
            safe(&tls.cipher_suite),
            safe(&tls.key_exchange_group.clone().unwrap_or_default())
        )?;
        match &tls.client_ca_names {
            None => writeln!(out, "  the server did not request a client certificate")?,
            Some(names) => writeln!(
                out,
                "  the server requests a client certificate from: {}{}",
                if names.is_empty() {
                    "(any CA)".to_string()
                } else {
                    safe(&names.join("; ")).into_owned()
                },
                if tls.client_cert_sent {
                    " (one was sent)"
                } else {
                    " (none was sent)"
                }
            )?,
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", "Settings".bold())?;
    for s in &report.target.settings {
        writeln!(
            out,
            "  {:<18} {:<40} {}",
            safe(&s.name),
            safe(&s.value),
            format!("({})", safe(&s.source)).dimmed()
        )?;
    }
    for note in &report.notes {
        writeln!(out, "  {} {}", "note:".yellow(), safe(note))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        format!(
            "{} connection(s), {} ms, {}; emulates {}",
            report.probe.connections,
            report.probe.duration_ms,
            report.probe.crypto_provider,
            report.probe.emulates
        )
        .dimmed()
    )?;
    Ok(())
}

fn findings(list: &[FindingOut], out: &mut dyn Write) -> io::Result<()> {
    for f in list {
        writeln!(out)?;
        let modes = if f.modes.is_empty() {
            String::new()
        } else {
            format!("  (fails: {})", f.modes.join(", "))
        };
        writeln!(
            out,
            "{} {}{}",
            severity_label(f.severity),
            f.code.as_str().bold(),
            modes.dimmed()
        )?;
        writeln!(out, "        {}", safe(&f.summary))?;
        for (k, v) in &f.evidence {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(
                out,
                "        {} {}",
                format!("{}:", safe(k)).dimmed(),
                safe(&value)
            )?;
        }
        if let Some(fix) = &f.fix {
            writeln!(out, "        {} {}", "fix:".green().bold(), safe(fix))?;
        }
    }
    Ok(())
}

pub fn lint_json(report: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_value(report)?)?;
    writeln!(out)
}

pub fn lint_text(report: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} hba lint {}  ({} rules, read as PostgreSQL {})",
        "pgtls-doctor".bold(),
        safe(&report.file),
        report.rules,
        report.pg_version
    )?;
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == "error")
        .count();
    let warnings = report
        .findings
        .iter()
        .filter(|f| f.severity == "warning")
        .count();
    writeln!(out)?;
    let line = format!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 {
        writeln!(out, "{}", line.red().bold())?;
    } else if warnings > 0 {
        writeln!(out, "{}", line.yellow().bold())?;
    } else {
        writeln!(out, "{}", line.green().bold())?;
    }
    findings(&report.findings, out)
}

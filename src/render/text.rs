//! Text for people: the verdict, the sslmode table, findings with their evidence and fix,
//! the chain, the TLS session and the settings. Every value that came from outside
//! (server, certificate, file) goes through `safe`.

use std::borrow::Cow;
use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use super::Colour;
use crate::catalogue::Severity;
use crate::report::{for_people, FindingOut, LintReport, Report, SoonestExpiries, Summary};
use crate::untrusted::for_terminal_short;

/// Every value the text renderers did not write themselves goes through this: control
/// characters and bidi overrides escaped, and a hostile value cut to a readable length.
fn safe(text: &str) -> Cow<'_, str> {
    for_terminal_short(text, MAX_SHOWN)
}

/// The most characters of one value a text report shows (JSON keeps the whole value).
const MAX_SHOWN: usize = 2000;

/// Styles text when colour is on; plain text otherwise.
#[derive(Clone, Copy)]
struct Paint {
    on: bool,
}

impl Paint {
    fn new(colour: Colour) -> Self {
        Paint {
            on: colour == Colour::On,
        }
    }

    fn style(self, style: Style, text: &str) -> String {
        if self.on {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    fn bold(self, text: &str) -> String {
        self.style(Style::new().bold(), text)
    }

    fn dimmed(self, text: &str) -> String {
        self.style(Style::new().dimmed(), text)
    }

    fn fg(self, colour: AnsiColor, text: &str) -> String {
        self.style(Style::new().fg_color(Some(colour.into())), text)
    }

    fn fg_bold(self, colour: AnsiColor, text: &str) -> String {
        self.style(Style::new().fg_color(Some(colour.into())).bold(), text)
    }
}

/// "OK    ..." in green or "FAIL  ..." in red.
fn verdict(paint: Paint, report: &Report) -> String {
    if report.verdict.ok {
        paint.fg_bold(
            AnsiColor::Green,
            &format!("OK    {}", safe(&report.verdict.summary)),
        )
    } else {
        paint.fg_bold(
            AnsiColor::Red,
            &format!("FAIL  {}", safe(&report.verdict.summary)),
        )
    }
}

/// One line for a target, for stderr when the report itself went to a file: what a CI log
/// shows of a red job. The fix to do first follows the verdict.
pub fn one_line(report: &Report) -> String {
    let word = match report.verdict.exit_code {
        crate::report::exit::OK => "OK  ",
        crate::report::exit::UNREACHABLE => "DOWN",
        _ => "FAIL",
    };
    let mut line = format!(
        "{word}  {}  sslmode={}: {}",
        safe(&report.target_label()),
        report.target.sslmode,
        safe(&report.verdict.summary)
    );
    if let Some(fix) = first_fixed(report).and_then(|f| f.fix.as_deref()) {
        line.push_str(&format!(" (fix: {})", safe(fix)));
    }
    line
}

/// The first error finding with a fix, else the first warning with one: the fix to do first.
fn first_fixed(report: &Report) -> Option<&FindingOut> {
    [Severity::Error, Severity::Warning]
        .into_iter()
        .find_map(|severity| {
            report
                .findings
                .iter()
                .find(|f| f.severity == severity && f.fix.is_some())
        })
}

fn severity_label(paint: Paint, severity: Severity) -> String {
    match severity {
        Severity::Error => paint.fg_bold(AnsiColor::Red, "error  "),
        Severity::Warning => paint.fg_bold(AnsiColor::Yellow, "warning"),
        Severity::Info => paint.fg(AnsiColor::Cyan, "info   "),
    }
}

pub fn report(report: &Report, colour: Colour, out: &mut dyn Write) -> io::Result<()> {
    let paint = Paint::new(colour);
    let t = &report.target;
    let where_ = match &t.hostaddr {
        Some(a) if t.host.is_empty() => format!("{a}:{}", t.port),
        Some(a) => format!("{} ({a}):{}", t.host, t.port),
        None => format!("{}:{}", t.host, t.port),
    };
    writeln!(
        out,
        "{} {}  user={} dbname={} sslmode={}",
        paint.bold("pgtls-doctor"),
        safe(&where_),
        safe(&t.user),
        safe(&t.dbname),
        t.sslmode
    )?;
    writeln!(out)?;
    writeln!(out, "{}", verdict(paint, report))?;
    writeln!(out)?;

    writeln!(
        out,
        "{}",
        paint.bold(" sslmode     session  TLS  first failing check")
    )?;
    for (mode, cell) in report.sslmodes.iter() {
        let ok = match cell.ok {
            Some(true) => paint.fg(AnsiColor::Green, "yes    "),
            Some(false) => paint.fg(AnsiColor::Red, "no     "),
            None => paint.fg(AnsiColor::Yellow, "unknown"),
        };
        let tls = if cell.encrypted { "yes" } else { "no " };
        let code = cell.code.map(|c| c.as_str()).unwrap_or("");
        let marker = if mode == t.sslmode { "▶" } else { " " };
        writeln!(out, "{marker}{:<12}{ok}  {tls}  {code}", mode.as_str())?;
    }

    if !report.hosts.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint.bold("Hosts"))?;
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
        writeln!(out, "{}", paint.bold("Findings"))?;
        findings(&report.findings, paint, out)?;
    }

    if !report.server_chain.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint.bold("Server certificate chain (as sent)"))?;
        for c in &report.server_chain {
            writeln!(out, "  [{}] {}", c.depth, safe(&c.subject))?;
            writeln!(out, "      issuer: {}", safe(&c.issuer))?;
            writeln!(
                out,
                "      valid:  {} .. {}",
                for_people(&c.not_before),
                for_people(&c.not_after)
            )?;
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
            paint.bold("TLS:"),
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
    writeln!(out, "{}", paint.bold("Settings"))?;
    for s in &report.target.settings {
        writeln!(
            out,
            "  {:<18} {:<40} {}",
            safe(&s.name),
            safe(&s.value),
            paint.dimmed(&format!("({})", safe(&s.source)))
        )?;
    }
    for note in &report.notes {
        writeln!(
            out,
            "  {} {}",
            paint.fg(AnsiColor::Yellow, "note:"),
            safe(note)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        paint.dimmed(&format!(
            "{} connection(s), {} ms, {}; emulates {}",
            report.probe.connections,
            report.probe.duration_ms,
            report.probe.crypto_provider,
            report.probe.emulates
        ))
    )?;
    closing(report, paint, out)
}

/// The last lines of a report, what a terminal still shows when the run ends: the verdict,
/// the fix to do first, and where to read more.
fn closing(report: &Report, paint: Paint, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{}", verdict(paint, report))?;
    if let Some(finding) = first_fixed(report) {
        let fix = finding.fix.as_deref().unwrap_or_default();
        writeln!(out, "{} {}", paint.bold("  fix first:"), safe(fix))?;
        writeln!(
            out,
            "{} pgtls-doctor explain {}",
            paint.dimmed("  more:     "),
            finding.code.as_str()
        )?;
    }
    Ok(())
}

/// The verdict and the findings that matter (errors and warnings), for the demo's pages.
pub fn summary(report: &Report, colour: Colour, out: &mut dyn Write) -> io::Result<()> {
    let paint = Paint::new(colour);
    writeln!(out, "   {}", verdict(paint, report))?;
    let serious: Vec<FindingOut> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .cloned()
        .collect();
    findings(&serious, paint, out)
}

fn findings(list: &[FindingOut], paint: Paint, out: &mut dyn Write) -> io::Result<()> {
    for f in list {
        writeln!(out)?;
        let modes = if f.modes.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = f.modes.iter().map(|m| m.as_str()).collect();
            format!("  (fails: {})", names.join(", "))
        };
        writeln!(
            out,
            "{} {}{}",
            severity_label(paint, f.severity),
            paint.bold(f.code.as_str()),
            paint.dimmed(&modes)
        )?;
        writeln!(out, "        {}", safe(&f.summary))?;
        for e in &f.evidence {
            writeln!(
                out,
                "        {} {}",
                paint.dimmed(&format!("{}:", e.key)),
                safe(&e.value.for_people())
            )?;
        }
        if let Some(fix) = &f.fix {
            writeln!(
                out,
                "        {} {}",
                paint.fg_bold(AnsiColor::Green, "fix:"),
                safe(fix)
            )?;
        }
    }
    Ok(())
}

/// The closing summary of several targets: how many work, fail or are unreachable, and the
/// certificates that expire soonest.
pub fn fleet_summary(
    summary: &Summary,
    soonest: &SoonestExpiries,
    colour: Colour,
    out: &mut dyn Write,
) -> io::Result<()> {
    let paint = Paint::new(colour);
    writeln!(out)?;
    writeln!(
        out,
        "{} {} targets: {} work, {} fail, {} unreachable",
        paint.bold("Summary:"),
        summary.targets,
        summary.ok,
        summary.failed,
        summary.unreachable
    )?;
    let certs = &soonest.certificates;
    if !certs.is_empty() {
        writeln!(out, "Certificates that expire soonest:")?;
        for (not_after, subject, target) in certs {
            writeln!(
                out,
                "  {}  {}  ({})",
                for_people(not_after),
                safe(subject),
                safe(target)
            )?;
        }
    }
    Ok(())
}

pub fn lint(report: &LintReport, colour: Colour, out: &mut dyn Write) -> io::Result<()> {
    let paint = Paint::new(colour);
    writeln!(
        out,
        "{} hba lint {}  ({} rules, read as PostgreSQL {})",
        paint.bold("pgtls-doctor"),
        safe(&report.file),
        report.rules,
        report.pg_version
    )?;
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    writeln!(out)?;
    let line = format!("{errors} error(s), {warnings} warning(s)");
    let colour = if errors > 0 {
        AnsiColor::Red
    } else if warnings > 0 {
        AnsiColor::Yellow
    } else {
        AnsiColor::Green
    };
    writeln!(out, "{}", paint.fg_bold(colour, &line))?;
    findings(&report.findings, paint, out)
}

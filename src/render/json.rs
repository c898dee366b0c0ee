//! JSON for machines: one document for one target, one for several (the reports and their
//! summary); `line` serves the NDJSON stream. Bytes that were not UTF-8 are made visible
//! (`\xNN`).

use std::io::{self, Write};

use serde::Serialize;

use crate::report::{Fleet, Line, LintReport, Report};

fn json_value(document: &impl Serialize) -> io::Result<serde_json::Value> {
    let mut value = serde_json::to_value(document).map_err(io::Error::other)?;
    crate::untrusted::clean_json(&mut value);
    Ok(value)
}

fn pretty(document: &impl Serialize, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_value(document)?)?;
    writeln!(out)
}

/// One target's report.
pub fn report(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    pretty(report, out)
}

/// Several targets: one document.
pub fn fleet(fleet: &Fleet, out: &mut dyn Write) -> io::Result<()> {
    pretty(fleet, out)
}

/// One line of a line-oriented stream (a report or the summary, each with its kind).
pub fn line(line: &Line, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &json_value(line)?)?;
    writeln!(out)
}

pub fn lint(report: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    pretty(report, out)
}

//! NDJSON for streams: one line per report as it completes, then the summary line; each
//! line says what it is (`"kind": "report"` or `"summary"`), per schema 2's `line`.

use std::io::{self, Write};

use crate::report::{Line, Report, Summary};

pub fn report(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    super::json::line(&Line::Report(report), out)
}

pub fn summary(summary: &Summary, out: &mut dyn Write) -> io::Result<()> {
    super::json::line(&Line::Summary(summary), out)
}

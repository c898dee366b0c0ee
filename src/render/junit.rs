//! JUnit XML, as GitLab and Jenkins read it: one testsuite for the run and one testcase per
//! target and sslmode checked (the requested one), so a broken endpoint is one failure.
//! The failure's body holds the diagnosis and the fix of each error finding (GitLab shows
//! the body, not `message`); with --fail-on warning, warnings fail it too. Findings that do
//! not fail it are listed in system-out.
//!
//! Names: the classname is the target, `user@host:port/dbname`, with the dots of the host
//! written as `_` (`db.example.com` becomes `db_example_com`), because Jenkins splits a
//! classname at its dots into package and class; the exact target is in each testcase's
//! system-out. GitLab keys testcases by classname and name, so names are unique per target.

use std::io::{self, Write};

use quick_xml::escape::escape;

use crate::catalogue::Severity;
use crate::report::{FindingOut, Report};

/// Text safe in XML 1.0: control characters made visible, every other character outside
/// XML's Char production (U+FFFE, U+FFFF) too, then the markup characters escaped. One
/// hostile server's text must not make a whole fleet's document unparsable.
fn xml(text: &str) -> String {
    escape(xml_chars(&crate::untrusted::for_terminal(text)).as_str()).into_owned()
}

/// Body text: newlines kept, every other control character made visible.
fn xml_body(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| xml_chars(&crate::untrusted::for_terminal(l)))
        .collect();
    escape(lines.join("\n").as_str()).into_owned()
}

/// XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF];
/// anything else is written as `\u{XXXX}`.
fn xml_chars(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    text.chars()
        .map(|c| match allowed(c) {
            true => c.to_string(),
            false => format!("\\u{{{:04x}}}", c as u32),
        })
        .collect()
}

fn classname(report: &Report) -> String {
    report.target_label().replace('.', "_")
}

fn finding_text(f: &FindingOut) -> String {
    let mut text = format!(
        "{} {}: {}\n",
        f.severity.as_str(),
        f.code.as_str(),
        f.summary
    );
    for e in &f.evidence {
        text.push_str(&format!("  {}: {}\n", e.key, e.value.for_people()));
    }
    if let Some(fix) = &f.fix {
        text.push_str(&format!("fix: {fix}\n"));
    }
    text
}

struct Case {
    classname: String,
    name: String,
    time: f64,
    /// (element, type, message, body)
    outcome: Option<(&'static str, String, String, String)>,
    out: String,
}

/// The testcase of one target: failed by its error findings (and warnings when
/// `warnings_fail`), an error when nothing answered.
fn case(report: &Report, warnings_fail: bool) -> Case {
    let fails = |f: &&FindingOut| {
        f.severity == Severity::Error || (warnings_fail && f.severity == Severity::Warning)
    };
    let failing: Vec<&FindingOut> = report.findings.iter().filter(fails).collect();
    let body = || -> String {
        let findings: String = failing.iter().map(|f| finding_text(f)).collect();
        format!("{}\n{findings}", report.verdict.summary)
    };
    let first_code = || {
        failing
            .first()
            .map(|f| f.code.as_str().to_string())
            .unwrap_or_else(|| "failed".into())
    };
    let outcome = match report.verdict.exit_code {
        2 => Some((
            "error",
            "unreachable".to_string(),
            report.verdict.summary.clone(),
            body(),
        )),
        0 if failing.is_empty() => None,
        _ => Some((
            "failure",
            first_code(),
            report.verdict.summary.clone(),
            body(),
        )),
    };
    let shown = report.target_label();
    let mut out = format!("{shown}: {}\n", report.verdict.summary);
    for f in report
        .findings
        .iter()
        .filter(|f| !fails(f) && f.severity != Severity::Info)
    {
        out.push_str(&finding_text(f));
    }
    Case {
        classname: classname(report),
        name: format!("sslmode={}", report.target.sslmode.as_str()),
        time: report.probe.duration_ms as f64 / 1000.0,
        outcome,
        out,
    }
}

/// `warnings_fail`: a warning finding is a failure too (--fail-on warning).
pub fn write(reports: &[Report], warnings_fail: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut cases: Vec<Case> = reports.iter().map(|r| case(r, warnings_fail)).collect();
    // GitLab keeps only the first of two testcases with one classname and name: number repeats
    // (the same target given twice).
    let mut seen = std::collections::HashMap::new();
    for case in &mut cases {
        let n = seen
            .entry((case.classname.clone(), case.name.clone()))
            .or_insert(0u32);
        *n += 1;
        if *n > 1 {
            case.name = format!("{} #{n}", case.name);
        }
    }
    let failures = cases
        .iter()
        .filter(|c| matches!(&c.outcome, Some(("failure", ..))))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(&c.outcome, Some(("error", ..))))
        .count();
    let time: f64 = cases.iter().map(|c| c.time).sum();
    let mut text = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    text.push_str(&format!(
        "<testsuites name=\"pgtls-doctor\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n",
        cases.len()
    ));
    text.push_str(&format!(
        "  <testsuite name=\"pgtls-doctor\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\">\n",
        cases.len()
    ));
    for case in &cases {
        text.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
            xml(&case.classname),
            xml(&case.name),
            case.time
        ));
        if let Some((element, kind, message, body)) = &case.outcome {
            text.push_str(&format!(
                "      <{element} type=\"{}\" message=\"{}\">{}</{element}>\n",
                xml(kind),
                xml(message),
                xml_body(body)
            ));
        }
        text.push_str(&format!(
            "      <system-out>{}</system-out>\n    </testcase>\n",
            xml_body(&case.out)
        ));
    }
    text.push_str("  </testsuite>\n</testsuites>\n");
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_hold_are_made_visible() {
        let text = xml("boom\u{ffff}\u{fffe}ok\u{1F600}");
        assert_eq!(text, "boom\\u{ffff}\\u{fffe}ok\u{1F600}");
        assert!(!xml_body("a\u{ffff}\nb").contains('\u{ffff}'));
    }

    #[test]
    fn text_cannot_open_an_element() {
        let hostile = xml("CN=</failure><testcase name=\"evil\"/>\u{0}");
        assert!(!hostile.contains('<'));
        assert!(!hostile.contains('\u{0}'));
        assert!(xml_body("a\nb<c>").contains('\n'));
    }
}

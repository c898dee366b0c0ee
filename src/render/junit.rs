//! JUnit XML, as GitLab and Jenkins read it: one testsuite for the run; per target a
//! testcase for the requested connection and one for each error or warning finding, the
//! diagnosis and the fix in the failure's body (GitLab ignores `message`).
//!
//! Names: the classname is the target, `user@host:port/dbname`, with the dots of the host
//! written as `_` (`db.example.com` becomes `db_example_com`), because Jenkins splits a
//! classname at its dots into package and class; the exact target is in each testcase's
//! system-out. GitLab keys testcases by classname and name, so names are unique per target.

use std::io::{self, Write};

use quick_xml::escape::escape;

use crate::catalogue::Severity;
use crate::report::{FindingOut, Report};

/// Text safe in XML 1.0: control characters (which XML cannot hold at all) made visible,
/// then the markup characters escaped.
fn xml(text: &str) -> String {
    escape(crate::untrusted::for_terminal(text).as_ref()).into_owned()
}

/// Body text: newlines kept, every other control character made visible.
fn xml_body(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| crate::untrusted::for_terminal(l).into_owned())
        .collect();
    escape(lines.join("\n").as_str()).into_owned()
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

/// `warnings_fail`: a warning finding is a failure too (--fail-on warning).
pub fn write(reports: &[Report], warnings_fail: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut cases = Vec::new();
    for report in reports {
        let classname = classname(report);
        let seconds = report.probe.duration_ms as f64 / 1000.0;
        let shown = report.target_label();
        let errors: Vec<&FindingOut> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        let body: String = errors.iter().map(|f| finding_text(f)).collect();
        let outcome = match report.verdict.exit_code {
            0 => None,
            2 => Some((
                "error",
                "unreachable".to_string(),
                report.verdict.summary.clone(),
                format!("{}\n{body}", report.verdict.summary),
            )),
            _ => Some((
                "failure",
                errors
                    .first()
                    .map(|f| f.code.as_str().to_string())
                    .unwrap_or_else(|| "failed".into()),
                report.verdict.summary.clone(),
                format!("{}\n{body}", report.verdict.summary),
            )),
        };
        cases.push(Case {
            classname: classname.clone(),
            name: format!("sslmode={}", report.target.sslmode.as_str()),
            time: seconds,
            outcome,
            out: format!("{shown}: {}", report.verdict.summary),
        });
        for f in report
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
        {
            let fails = f.severity == Severity::Error || warnings_fail;
            cases.push(Case {
                classname: classname.clone(),
                name: format!("{} ({})", f.code.as_str(), f.severity.as_str()),
                time: 0.0,
                outcome: fails.then(|| {
                    (
                        "failure",
                        f.code.as_str().to_string(),
                        f.summary.clone(),
                        finding_text(f),
                    )
                }),
                out: format!("{shown}: {}", finding_text(f)),
            });
        }
    }
    // GitLab keeps only the first of two testcases with one classname and name: number repeats.
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
    let time: f64 = reports
        .iter()
        .map(|r| r.probe.duration_ms as f64 / 1000.0)
        .sum();
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
    fn text_cannot_open_an_element() {
        let hostile = xml("CN=</failure><testcase name=\"evil\"/>\u{0}");
        assert!(!hostile.contains('<'));
        assert!(!hostile.contains('\u{0}'));
        assert!(xml_body("a\nb<c>").contains('\n'));
    }
}

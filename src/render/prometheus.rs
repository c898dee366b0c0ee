//! Prometheus exposition text (format 0.0.4), for node_exporter's textfile collector: every
//! family once with its HELP and TYPE, then its samples for every target; no sample
//! timestamps (the collector skips a file that has them), `target`, `requested` (the sslmode)
//! and `checked` labels on every series of a target, and the run's time as a gauge instead. Certificate dates are emitted whether or not verification
//! passed. Written by hand: the format is three escaping rules, and the client libraries
//! are built around long-lived registries, not one-shot files.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::report::{CertOut, Report};

/// A label value: control characters and bidi overrides made visible first (so no value can
/// hold a newline), then the format's own escapes.
fn label(value: &str) -> String {
    let shown: Cow<'_, str> = crate::untrusted::for_terminal(value);
    shown.replace('\\', "\\\\").replace('"', "\\\"")
}

fn unix(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut text = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            let _ = write!(text, "{}{k}=\"{}\"", if i > 0 { "," } else { "" }, label(v));
        }
        self.samples.push((text, value.to_string()));
    }
}

/// Every report, and the run's time (Unix seconds).
pub fn write(reports: &[Report], run_at: i64, out: &mut dyn Write) -> io::Result<()> {
    let mut success = Family::new(
        "pgtls_doctor_probe_success",
        "1 when the connection as requested works and no finding is an error.",
    );
    let mut duration = Family::new(
        "pgtls_doctor_probe_duration_seconds",
        "How long the diagnosis of the target took.",
    );
    let mut exit_code = Family::new(
        "pgtls_doctor_exit_code",
        "The target's exit status: 0 works, 1 an error finding, 2 unreachable.",
    );
    let mut mode_ok = Family::new(
        "pgtls_doctor_sslmode_ok",
        "1 when libpq at this sslmode gets a session, 0 when it is refused (absent when undetermined).",
    );
    let mut not_before = Family::new(
        "pgtls_doctor_cert_not_before_seconds",
        "The certificate's notBefore, Unix seconds (server chain by depth, and the client certificate).",
    );
    let mut not_after = Family::new(
        "pgtls_doctor_cert_not_after_seconds",
        "The certificate's notAfter, Unix seconds (server chain by depth, and the client certificate).",
    );
    let mut finding = Family::new(
        "pgtls_doctor_finding",
        "1 for each finding of the target, by code and severity.",
    );
    let mut info = Family::new(
        "pgtls_doctor_target_info",
        "1 for each target: the settings its series were checked with (`checked` tells apart targets that differ only in them).",
    );
    for report in reports {
        let t = report.target_label();
        let t = t.as_str();
        let requested = report.target.sslmode.as_str();
        let checked = checked(report);
        // Every series of a target carries all three: two targets that differ only in the
        // sslmode or a file never share a series.
        let id = [
            ("target", t),
            ("requested", requested),
            ("checked", checked.as_str()),
        ];
        let mut described: Vec<(&str, &str)> = id.to_vec();
        for s in &report.target.settings {
            if let Some(name) = INFO_SETTINGS.iter().find(|n| **n == s.name) {
                described.push((name, s.value.as_str()));
            }
        }
        info.add(&described, 1);
        success.add(&id, u8::from(report.verdict.ok));
        duration.add(&id, report.probe.duration_ms as f64 / 1000.0);
        exit_code.add(&id, report.verdict.exit_code);
        for (mode, cell) in report.sslmodes.iter() {
            if let Some(ok) = cell.ok {
                let mut labels = id.to_vec();
                labels.push(("sslmode", mode.as_str()));
                mode_ok.add(&labels, u8::from(ok));
            }
        }
        let certs = report
            .server_chain
            .iter()
            .map(|c| ("server", c))
            .chain(report.client_certificate.iter().map(|c| ("client", c)));
        for (source, cert) in certs {
            let depth = cert.depth.to_string();
            let mut labels = id.to_vec();
            labels.extend(cert_labels(source, &depth, cert));
            if let Some(v) = unix(&cert.not_before) {
                not_before.add(&labels, v);
            }
            if let Some(v) = unix(&cert.not_after) {
                not_after.add(&labels, v);
            }
        }
        for f in &report.findings {
            let mut labels = id.to_vec();
            labels.extend([("code", f.code.as_str()), ("severity", f.severity.as_str())]);
            finding.add(&labels, 1);
        }
    }
    let mut last_run = Family::new(
        "pgtls_doctor_last_run_timestamp_seconds",
        "When the doctor last ran, Unix seconds (sample timestamps are not allowed in textfiles).",
    );
    last_run.add(&[], run_at);
    let mut text = String::new();
    for family in [
        info, success, duration, exit_code, mode_ok, not_before, not_after, finding, last_run,
    ] {
        if family.samples.is_empty() {
            continue;
        }
        let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(text, "# TYPE {} gauge", family.name);
        for (labels, value) in &family.samples {
            if labels.is_empty() {
                let _ = writeln!(text, "{} {value}", family.name);
            } else {
                let _ = writeln!(text, "{}{{{labels}}} {value}", family.name);
            }
        }
    }
    out.write_all(text.as_bytes())
}

/// The settings `pgtls_doctor_target_info` shows as labels (never a secret).
const INFO_SETTINGS: [&str; 7] = [
    "sslrootcert",
    "sslcert",
    "sslcrl",
    "sslcrldir",
    "sslnegotiation",
    "sslcertmode",
    "ssl_min_protocol_version",
];

/// Eight hex digits that tell apart targets whose label and sslmode are the same but whose
/// other settings differ (a root file, a client certificate): FNV-1a over every setting
/// but the secrets, stable from run to run.
fn checked(report: &Report) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for s in &report.target.settings {
        if s.name.contains("password") {
            continue;
        }
        for byte in s
            .name
            .bytes()
            .chain([b'='])
            .chain(s.value.bytes())
            .chain([b'\n'])
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:08x}", hash >> 32)
}

fn cert_labels<'a>(
    source: &'a str,
    depth: &'a str,
    cert: &'a CertOut,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("source", source),
        ("depth", depth),
        ("subject", cert.subject.as_str()),
        ("issuer", cert.issuer.as_str()),
        ("serial", cert.serial.as_str()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_break_a_line() {
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
        let hostile = label("CN=x\"} 1\npgtls_doctor_probe_success{target=\"evil\"} 1");
        assert!(!hostile.contains('\n'));
        // Every quote is escaped, so the value cannot end early.
        assert_eq!(
            hostile.matches('"').count(),
            hostile.matches("\\\"").count()
        );
    }
}

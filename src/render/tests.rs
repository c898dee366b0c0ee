//! Snapshots of what people and machines read: the text and JSON of one report per
//! scenario (the judgement table's worlds, no server needed), of `hba lint`, and of
//! `--help`. Dates, serials and fingerprints change with every generated certificate and
//! are redacted. `cargo insta review` (or `INSTA_UPDATE=always`) accepts a changed one.

use super::{json, text, Colour};
use crate::eval::tests::report_scenarios;
use crate::plan::{Environment, FlagSettings};
use crate::report::{self, HostResult};

fn render(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Redacts what differs from run to run.
macro_rules! redacted {
    ($($body:tt)*) => {
        insta::with_settings!({filters => vec![
            (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?: UTC|Z)", "[date]"),
            (r"\b(?:in \d+ (?:day|hour)s?|\d+ (?:day|hour)s? ago)\b", "[relative]"),
            (r#""(serial|sha256_fingerprint)": "[^"]*""#, r#""$1": "[redacted]""#),
            (r#""version": "\d+\.\d+\.\d+""#, r#""version": "[version]""#),
        ]}, { $($body)* })
    };
}

fn report_of(world: &crate::eval::tests::World) -> report::Report {
    let env = Environment {
        vars: Default::default(),
        home: None,
        os_user: Some("alice".into()),
    };
    let endpoint = world.endpoint();
    let target = format!(
        "host={} port={} user=alice dbname=app sslmode={}",
        endpoint.host,
        endpoint.port,
        world.requested_mode()
    );
    let plan = crate::plan::resolve(&target, &FlagSettings::default(), &env).unwrap();
    report::build(&report::BuildInput {
        plan: &plan,
        client_certificate: None,
        now: 1_700_000_000,
        crypto_provider: "ring",
        hosts: &[HostResult {
            endpoint: endpoint.clone(),
            judgement: world.judge(),
            connections: 2,
        }],
        duration_ms: 12,
    })
}

#[test]
fn reports_as_text_and_json() {
    let scenarios = report_scenarios();
    assert!(scenarios.len() >= 8);
    for (name, world) in scenarios {
        let report = report_of(&world);
        let as_text = render(|out| text::report(&report, Colour::Off, out));
        let as_json = render(|out| json::report(&report, out));
        redacted! {
            insta::assert_snapshot!(format!("{name}.text"), as_text);
            insta::assert_snapshot!(format!("{name}.json"), as_json);
        }
    }
}

#[test]
fn colour_is_a_parameter() {
    let (_, world) = &report_scenarios()[0];
    let report = report_of(world);
    let plain = render(|out| text::report(&report, Colour::Off, out));
    let coloured = render(|out| text::report(&report, Colour::On, out));
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b["));
}

#[test]
fn lint_as_text_and_json() {
    let file = crate::hba::parse_hba(
        "host all all 0.0.0.0/0 trust\nhostssl app alice 10.0.0.0/8 md5\nhost all all 10.0.0.0/33 scram-sha-256\n",
        std::path::Path::new("/etc/postgresql/17/main/pg_hba.conf"),
        17,
    );
    let findings = crate::hba::lint::lint(&file, None, None, 17);
    let report = report::lint_report(
        std::path::Path::new("/etc/postgresql/17/main/pg_hba.conf"),
        17,
        file.rules.len(),
        &findings,
    );
    redacted! {
        insta::assert_snapshot!("lint.text", render(|out| text::lint(&report, Colour::Off, out)));
        insta::assert_snapshot!("lint.json", render(|out| json::lint(&report, out)));
    }
}

#[test]
fn help() {
    use clap::CommandFactory;
    let help = crate::cli::Cli::command().render_long_help().to_string();
    redacted! {
        insta::assert_snapshot!("help", help);
    }
}

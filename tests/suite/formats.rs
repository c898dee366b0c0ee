//! Every machine format over one targets file of good, bad, unreachable and silent
//! endpoints, plus hostile peers: JSON and NDJSON against the schema, JUnit parsed as XML
//! with the fields GitLab reads, Prometheus text through `promtool check metrics`, the exit
//! status with `--fail-on`, and `--output` written whole.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::doctor::{binary, validate};
use crate::support::fake_peer::{error_response, spawn, Step};
use crate::support::pg::{run_with_timeout, scrub_pg_env, CmdOutput, PgConfig, PgServer};
use crate::support::pki::{write_file, Ca, LeafSpec};
use crate::support::tls_peer::{self, After};

struct Fleet {
    _pg: PgServer,
    home: tempfile::TempDir,
    targets: std::path::PathBuf,
    _silent: std::net::TcpListener,
}

/// Good (a certificate that expires in 20 days: a warning), bad (a root file from another
/// CA), a closed port, a listener that never answers, and two hostile peers: one whose
/// certificate names hold a newline and markup, one that answers the SSLRequest with a
/// hostile error text.
fn fleet() -> Fleet {
    let ca = Ca::root("Fleet CA");
    let mut spec = LeafSpec::server("localhost", &["localhost"], &["127.0.0.1"]);
    spec.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(20);
    let leaf = ca.issue(&spec);
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(leaf.pair()),
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let root = write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let other = write_file(
        home.path(),
        "other.crt",
        Ca::root("Other CA").issued.cert_pem.as_bytes(),
        0o644,
    );
    let closed = crate::support::pg::free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hostile_ca = Ca::root("Hostile CA");
    let hostile_leaf = hostile_ca.issue(&LeafSpec::server(
        "evil\"}\n# HELP x\n</failure><testcase name=\"x\"/>",
        &["localhost"],
        &[],
    ));
    let hostile_tls = tls_peer::spawn(
        vec![hostile_leaf.cert_der.clone()],
        hostile_leaf.key_pem.clone(),
        After::Close,
    );
    let mut hostile_text = b"E".to_vec();
    hostile_text.extend_from_slice(&error_response(
        "08P01",
        "boom\npgtls_doctor_probe_success{target=\"x\"} 1\n]]></failure><evil/>",
    ));
    let hostile_error = spawn(
        vec![Step::Read(8), Step::Send(hostile_text), Step::Close],
        4,
    );
    let lines = [
        format!(
            "host=localhost port={} user=postgres dbname=postgres sslrootcert={}",
            pg.port,
            root.display()
        ),
        format!(
            "host=localhost port={} user=postgres dbname=postgres sslrootcert={}",
            pg.port,
            other.display()
        ),
        format!("127.0.0.1:{closed}"),
        format!("host=127.0.0.1 port={silent_port} connect_timeout=2"),
        format!("host=localhost port={hostile_tls} user=alice dbname=app"),
        format!("host=localhost port={hostile_error} user=alice dbname=app"),
    ];
    let targets = write_file(
        home.path(),
        "targets",
        format!("# fleet\n{}\n", lines.join("\n")).as_bytes(),
        0o644,
    );
    Fleet {
        _pg: pg,
        home,
        targets,
        _silent: silent,
    }
}

fn run(fleet: &Fleet, extra: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", fleet.home.path())
        .arg("--targets")
        .arg(&fleet.targets)
        .args(["--sslmode", "verify-full", "--timeout", "5"])
        .args(extra);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(!out.timed_out, "the doctor hung: {extra:?}");
    out
}

fn code(out: &CmdOutput) -> i32 {
    out.status.and_then(|s| s.code()).unwrap_or(-1)
}

#[test]
fn every_format_over_a_fleet() {
    let fleet = fleet();

    // Text: the reports, then the fleet's summary with the soonest-expiring certificates.
    let out = run(&fleet, &[]);
    assert!(
        out.stdout.contains("Summary: 6 targets: 1 work"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Certificates that expire soonest:"),
        "{}",
        out.stdout
    );

    // JSON: one document, every report and the summary.
    let out = run(&fleet, &["--format", "json"]);
    assert_eq!(code(&out), 2, "unreachable wins: {}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    validate(&doc);
    assert_eq!(doc["reports"].as_array().unwrap().len(), 6);
    assert_eq!(doc["summary"]["targets"], 6);
    assert_eq!(doc["reports"][0]["verdict"]["exit_code"], 0);
    assert_eq!(doc["reports"][1]["verdict"]["exit_code"], 1);

    // NDJSON: a report per line, then the summary; each line valid and saying what it is.
    let out = run(&fleet, &["--format", "ndjson"]);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{}", out.stdout);
    for line in &lines {
        validate(line);
    }
    assert!(lines[..6].iter().all(|l| l["kind"] == "report"));
    assert_eq!(lines[6]["kind"], "summary");
    assert_eq!(lines[6]["exit_code"], 2);

    // JUnit: well-formed, unique testcases, the diagnosis and fix in the failure's body;
    // one testcase per target (the sslmode checked), so a broken endpoint counts once: the
    // five that do not work (a hostile peer may be a failure in one run and an error in
    // the next, so the split is read from the same run's testcases).
    let out = run(&fleet, &["--format", "junit"]);
    let cases = junit_cases(&out.stdout);
    assert_eq!(cases.len(), 6, "{cases:#?}");
    assert!(
        cases
            .iter()
            .all(|c| c.name.starts_with("sslmode=verify-full")),
        "{cases:#?}"
    );
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    let down = cases.iter().filter(|c| c.error.is_some()).count();
    assert_eq!(failed + down, 5, "{cases:#?}");
    assert!(
        out.stdout.contains(&format!(
            "tests=\"6\" failures=\"{failed}\" errors=\"{down}\""
        )),
        "{}",
        out.stdout
    );
    let mut keys = HashSet::new();
    for case in &cases {
        assert!(
            keys.insert((case.classname.clone(), case.name.clone())),
            "duplicate {case:?}"
        );
    }
    let bad = cases
        .iter()
        .find(|c| {
            c.failure
                .as_deref()
                .is_some_and(|b| b.contains("server_cert_unknown_ca"))
        })
        .unwrap_or_else(|| panic!("no failure for the bad target: {cases:#?}"));
    assert!(bad.failure.as_deref().unwrap().contains("fix:"), "{bad:?}");
    assert!(
        cases.iter().any(|c| c.error.is_some()),
        "the closed port is an error"
    );
    assert!(
        cases.iter().all(|c| c.classname != "x" && c.name != "x"),
        "injected element"
    );
    assert!(
        !cases.iter().any(|c| c.classname.contains('.')),
        "dots in a classname"
    );

    // Prometheus: promtool accepts it; every family once; certificate dates even where
    // verification failed; no sample the doctor did not emit.
    let out = run(&fleet, &["--format", "prometheus"]);
    promtool_accepts(&out.stdout);
    let samples = prometheus_samples(&out.stdout);
    let not_after: Vec<&(String, String)> = samples
        .iter()
        .filter(|(name, _)| name.starts_with("pgtls_doctor_cert_not_after_seconds"))
        .collect();
    assert!(
        not_after
            .iter()
            .any(|(name, _)| name.contains("Other CA") || name.contains("Fleet CA")),
        "{not_after:?}"
    );
    let successes = samples
        .iter()
        .filter(|(name, _)| name.starts_with("pgtls_doctor_probe_success{"))
        .count();
    assert_eq!(successes, 6, "one per target, none injected");
    assert!(samples
        .iter()
        .all(|(name, _)| name.starts_with("pgtls_doctor_")));
}

#[test]
fn fail_on_warning_and_output_files() {
    let fleet = fleet();
    // The good target alone: it works, with a warning (its certificate expires in 20 days).
    let good = std::fs::read_to_string(&fleet.targets)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let one = write_file(fleet.home.path(), "one", good.as_bytes(), 0o644);
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", fleet.home.path())
        .arg("--targets")
        .arg(&one)
        .args(["--sslmode", "verify-full"]);
    assert_eq!(
        code(&run_with_timeout(&mut cmd, Duration::from_secs(60))),
        0
    );
    let out = run_with_timeout(cmd.args(["--fail-on", "warning"]), Duration::from_secs(60));
    assert_eq!(code(&out), 1, "a warning fails with --fail-on warning");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgtls.prom");
    let out = run(
        &fleet,
        &["--format", "prometheus", "--output", file.to_str().unwrap()],
    );
    assert_eq!(code(&out), 2);
    assert!(out.stdout.is_empty(), "--output writes nothing to stdout");
    // A red CI job's log says what broke: a line per target on stderr, the worst first,
    // each with its fix when there is one.
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 7, "{}", out.stderr);
    let words: Vec<&str> = lines[..6].iter().map(|l| &l[..4]).collect();
    let mut sorted = words.clone();
    sorted.sort_by_key(|w| match *w {
        "DOWN" => 0,
        "FAIL" => 1,
        _ => 2,
    });
    assert_eq!(words, sorted, "worst first: {}", out.stderr);
    assert!(
        words.contains(&"DOWN") && words.contains(&"OK  "),
        "{}",
        out.stderr
    );
    let bad = lines
        .iter()
        .find(|l| {
            l.contains("Other CA")
                || l.contains("server_cert_unknown_ca")
                || (l.starts_with("FAIL") && l.contains("(fix: "))
        })
        .unwrap_or_else(|| panic!("no failing line with its fix: {}", out.stderr));
    assert!(bad.contains("(fix: "), "{bad}");
    assert!(
        lines[6].contains("6 target(s) written to"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .contains("pgtls_doctor_probe_success{target=\"x\"}\n"),
        "hostile text on stderr"
    );
    promtool_accepts(&std::fs::read_to_string(&file).unwrap());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
}

#[derive(Debug, Default, Clone)]
struct Case {
    classname: String,
    name: String,
    failure: Option<String>,
    error: Option<String>,
}

/// The testcases, as GitLab reads them (classname, name, and the body of failure or error).
fn junit_cases(xml: &str) -> Vec<Case> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    let mut inside: Option<String> = None;
    let attr = |e: &quick_xml::events::BytesStart, key: &[u8]| -> String {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == key)
            .map(|a| a.unescape_value().unwrap().into_owned())
            .unwrap_or_default()
    };
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}\n{xml}"))
        {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                current = Some(Case {
                    classname: attr(&e, b"classname"),
                    name: attr(&e, b"name"),
                    ..Default::default()
                });
            }
            Event::Start(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                inside = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Event::Text(t) => {
                if let (Some(kind), Some(case)) = (&inside, current.as_mut()) {
                    append(case, kind, &t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                if let (Some(kind), Some(case)) = (&inside, current.as_mut()) {
                    let name = r.decode().unwrap();
                    let c = match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unknown entity &{other};"),
                    };
                    append(case, kind, c);
                }
            }
            Event::End(e) if matches!(e.name().as_ref(), b"failure" | b"error") => inside = None,
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                cases.extend(current.take());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(!cases.is_empty(), "{xml}");
    cases
}

fn append(case: &mut Case, kind: &str, text: &str) {
    let body = match kind {
        "failure" => &mut case.failure,
        _ => &mut case.error,
    };
    body.get_or_insert_with(String::new).push_str(text);
}

fn promtool() -> std::path::PathBuf {
    for candidate in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if Path::new(candidate).is_file() {
            return candidate.into();
        }
    }
    panic!("promtool is not installed: run scripts/install-deps.sh (Debian's prometheus package)");
}

fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refuses it: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (name with labels, value) of every sample; each family's HELP and TYPE once, before it.
fn prometheus_samples(text: &str) -> Vec<(String, String)> {
    let mut helps: HashMap<&str, usize> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            *helps.entry(rest.split(' ').next().unwrap()).or_default() += 1;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        samples.push((name.to_string(), value.to_string()));
    }
    assert!(helps.values().all(|n| *n == 1), "{helps:?}");
    samples
}

#[test]
fn the_documents_exit_code_is_the_processes_when_a_line_names_no_target() {
    let home = tempfile::tempdir().unwrap();
    let closed = crate::support::pg::free_port();
    let targets = write_file(
        home.path(),
        "targets",
        format!("127.0.0.1:{closed}\nhost=h sslmode=Require\n").as_bytes(),
        0o644,
    );
    for format in ["ndjson", "json"] {
        let mut cmd = Command::new(binary());
        scrub_pg_env(&mut cmd)
            .env("HOME", home.path())
            .arg("--targets")
            .arg(&targets)
            .args(["--format", format, "--timeout", "5"]);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
        assert_eq!(code(&out), 3, "{format}: {}", out.stderr);
        let summary: serde_json::Value = match format {
            "ndjson" => serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap(),
            _ => serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["summary"].clone(),
        };
        assert_eq!(summary["exit_code"], 3, "{format}: {}", out.stdout);
    }
}

#[test]
fn output_never_replaces_an_input_nor_writes_through_a_link() {
    let home = tempfile::tempdir().unwrap();
    let closed = crate::support::pg::free_port();
    let body = format!("127.0.0.1:{closed}\n");
    let targets = write_file(home.path(), "targets", body.as_bytes(), 0o644);
    let hba = write_file(
        home.path(),
        "pg_hba.conf",
        b"hostssl all all 0.0.0.0/0 scram-sha-256\n",
        0o644,
    );
    let doctor = |args: &[&str]| {
        let mut cmd = Command::new(binary());
        scrub_pg_env(&mut cmd)
            .env("HOME", home.path())
            .args(["--timeout", "3"])
            .args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(60))
    };
    let t = targets.to_str().unwrap();
    for (args, flag) in [
        (vec!["--targets", t, "--output", t], "--targets"),
        (
            vec![
                "127.0.0.1:1",
                "--hba",
                hba.to_str().unwrap(),
                "--output",
                hba.to_str().unwrap(),
            ],
            "--hba",
        ),
    ] {
        let out = doctor(&args);
        assert_eq!(code(&out), 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(flag), "{}", out.stderr);
    }
    assert_eq!(std::fs::read_to_string(&targets).unwrap(), body);
    assert!(std::fs::read_to_string(&hba)
        .unwrap()
        .starts_with("hostssl"));

    // A link planted where the report goes is replaced, never written through.
    let victim = write_file(home.path(), "victim", b"precious", 0o644);
    let report = home.path().join("report.json");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let out = doctor(&[
        "--targets",
        t,
        "--format",
        "json",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&report)
        .unwrap()
        .file_type()
        .is_file());
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&report).unwrap()).unwrap();
}

#[test]
fn junit_stays_parsable_whatever_characters_a_server_sends() {
    let home = tempfile::tempdir().unwrap();
    // 'N' to the SSLRequest, then a FATAL whose text XML cannot hold.
    let refusal = error_response("28000", "boom \u{ffff}\u{fffe} \u{1}</failure>");
    let peer = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"N".to_vec()),
            Step::ReadStartup,
            Step::Send(refusal),
            Step::Close,
        ],
        4,
    );
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", home.path())
        .arg(format!("host=localhost port={peer} user=alice dbname=app"))
        .args(["--format", "junit", "--timeout", "5"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(out.stdout.contains("testcase"), "{}", out.stdout);
    // Expat, as Jenkins' and GitLab's parsers, refuses U+FFFE and U+FFFF.
    let mut parse = Command::new("python3");
    parse
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET; ET.fromstring(sys.stdin.buffer.read())",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = parse.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(out.stdout.as_bytes())
        .unwrap();
    let parsed = child.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&parsed.stderr),
        out.stdout
    );
    assert!(out.stdout.contains("\\u{ffff}"), "{}", out.stdout);
}

#[test]
fn a_bad_line_in_a_targets_file_is_reported_and_the_rest_still_run() {
    let home = tempfile::tempdir().unwrap();
    let mut body = format!("\u{feff}127.0.0.1:{}\n", crate::support::pg::free_port()).into_bytes();
    body.extend_from_slice(&vec![b'x'; 70 * 1024]);
    body.extend_from_slice(b"\nhost=a\0b\n");
    body.extend_from_slice(format!("127.0.0.1:{}\n", crate::support::pg::free_port()).as_bytes());
    let targets = write_file(home.path(), "targets", &body, 0o644);
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", home.path())
        .arg("--targets")
        .arg(&targets)
        .args(["--format", "ndjson", "--timeout", "5"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert_eq!(code(&out), 3, "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reports = lines.iter().filter(|l| l["kind"] == "report").count();
    assert_eq!(
        reports, 2,
        "both good lines, before and after the bad ones: {}",
        out.stdout
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["kind"] == "report")
            .all(|l| l["target"]["host"] == "127.0.0.1"),
        "a BOM is not part of the first target: {}",
        out.stdout
    );
    assert_eq!(lines.last().unwrap()["exit_code"], 3);
    assert!(
        out.stderr.contains("line 2 is longer than 64 KiB"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("line 3: binary data"), "{}", out.stderr);
}

#[test]
fn prometheus_series_of_targets_that_differ_only_in_settings_never_collide() {
    let home = tempfile::tempdir().unwrap();
    let port = crate::support::pg::free_port();
    let one = format!("host=127.0.0.1 port={port} user=app dbname=app");
    let lines = [
        format!("{one} sslmode=require"),
        format!("{one} sslmode=prefer"),
        format!("{one} sslmode=verify-full sslrootcert=/etc/ssl/a.crt"),
        format!("{one} sslmode=verify-full sslrootcert=/etc/ssl/b.crt"),
    ];
    let targets = write_file(home.path(), "targets", lines.join("\n").as_bytes(), 0o644);
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", home.path())
        .arg("--targets")
        .arg(&targets)
        .args(["--format", "prometheus", "--timeout", "3"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    promtool_accepts(&out.stdout);
    let samples = prometheus_samples(&out.stdout);
    let mut seen = HashSet::new();
    for (series, _) in &samples {
        assert!(
            seen.insert(series.clone()),
            "{series} twice:\n{}",
            out.stdout
        );
    }
    let successes = samples
        .iter()
        .filter(|(name, _)| name.starts_with("pgtls_doctor_probe_success{"))
        .count();
    assert_eq!(successes, 4, "{}", out.stdout);
    // The exposition says which settings each was checked with.
    for root in ["/etc/ssl/a.crt", "/etc/ssl/b.crt"] {
        assert!(
            out.stdout.contains(&format!("sslrootcert=\"{root}\"")),
            "{}",
            out.stdout
        );
    }
}

//! The engine over many targets: concurrency overall and per server, a silent host that
//! holds up no one, the run's own deadline, a targets file read as a stream, and the
//! application_name every probe connection carries.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::doctor::{run_doctor, validate, DoctorRun};
use crate::support::pg::{PgConfig, PgServer};

/// Connections open at once across a set of listeners, and the most seen.
#[derive(Default)]
struct Gauge {
    open: AtomicUsize,
    most: AtomicUsize,
    total: AtomicUsize,
}

/// A listener that holds every connection for `hold` after the client's first bytes, then
/// closes it: a slow peer whose connections can be counted.
fn holding_listener(gauge: Arc<Gauge>, hold: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let gauge = gauge.clone();
            std::thread::spawn(move || {
                let now = gauge.open.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.most.fetch_max(now, Ordering::SeqCst);
                gauge.total.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                std::thread::sleep(hold);
                gauge.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    port
}

fn targets_file(dir: &std::path::Path, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join("targets.txt");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn ndjson(run: &DoctorRun) -> Vec<Value> {
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &lines {
        validate(line);
    }
    lines
}

fn reports(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["kind"] == "report").collect()
}

#[test]
fn the_cap_per_server_bounds_the_connections_one_server_sees() {
    let home = tempfile::tempdir().unwrap();
    let gauge = Arc::new(Gauge::default());
    let port = holding_listener(gauge.clone(), Duration::from_millis(300));
    let lines: Vec<String> = (0..12)
        .map(|i| format!("host=127.0.0.1 port={port} user=u{i} dbname=app"))
        .collect();
    let file = targets_file(home.path(), &lines);
    let file = file.to_str().unwrap();
    let run = run_doctor(
        &[
            "--targets",
            file,
            "--format",
            "ndjson",
            "--concurrency",
            "16",
            "--per-server",
            "2",
            "--timeout",
            "10",
        ],
        home.path(),
        None,
        &[],
    );
    let lines = ndjson(&run);
    assert_eq!(reports(&lines).len(), 12, "{}", run.stdout);
    let most = gauge.most.load(Ordering::SeqCst);
    // Two diagnoses at once. The listener never answers the SSLRequest, so each holds one
    // connection: its plaintext attempt waits for an 'S' that never comes.
    assert!(most <= 2, "the server saw {most} connections at once");
    assert_eq!(most, 2, "diagnoses never overlapped");
    assert_eq!(gauge.total.load(Ordering::SeqCst), 12);
}

#[test]
fn concurrency_bounds_the_diagnoses_across_servers() {
    let home = tempfile::tempdir().unwrap();
    let gauge = Arc::new(Gauge::default());
    let lines: Vec<String> = (0..9)
        .map(|_| {
            let port = holding_listener(gauge.clone(), Duration::from_millis(300));
            format!("127.0.0.1:{port}")
        })
        .collect();
    let file = targets_file(home.path(), &lines);
    let run = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--format",
            "ndjson",
            "--concurrency",
            "3",
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(reports(&ndjson(&run)).len(), 9, "{}", run.stderr);
    let most = gauge.most.load(Ordering::SeqCst);
    // One connection per diagnosis here (no 'S', so no plaintext attempt beside it).
    assert!(most <= 3, "{most} connections at once with --concurrency 3");
    assert!(
        most >= 2,
        "diagnoses never overlapped: at most {most} at once"
    );
}

#[test]
fn a_silent_host_holds_up_no_other_target_and_results_stream_as_they_complete() {
    let home = tempfile::tempdir().unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = targets_file(
        home.path(),
        &[
            format!("127.0.0.1:{silent_port}"),
            format!("127.0.0.1:{closed}"),
        ],
    );
    let run = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--format",
            "ndjson",
            "--timeout",
            "4",
        ],
        home.path(),
        None,
        &[],
    );
    let lines = ndjson(&run);
    let order: Vec<u64> = reports(&lines)
        .iter()
        .map(|r| r["target"]["port"].as_u64().unwrap())
        .collect();
    // The closed port's report comes first, though it is the second line of the file.
    assert_eq!(order, [closed as u64, silent_port as u64], "{}", run.stdout);
    assert_eq!(lines.last().unwrap()["kind"], "summary");
    assert_eq!(run.code, 2);
    // The JSON document keeps the file's order.
    let run = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--format",
            "json",
            "--timeout",
            "4",
        ],
        home.path(),
        None,
        &[],
    );
    let ports: Vec<u64> = run.json["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"]["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [silent_port as u64, closed as u64]);
    drop(silent);
}

#[test]
fn the_run_timeout_ends_every_target_still_running() {
    let home = tempfile::tempdir().unwrap();
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let lines: Vec<String> = listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}", l.local_addr().unwrap().port()))
        .collect();
    let file = targets_file(home.path(), &lines);
    let started = Instant::now();
    let run = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--format",
            "ndjson",
            "--timeout",
            "50",
            "--run-timeout",
            "1",
        ],
        home.path(),
        None,
        &[],
    );
    // Without the run's deadline each target would wait out its own 50 s.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let lines = ndjson(&run);
    let reports = reports(&lines);
    assert_eq!(reports.len(), 3, "{}", run.stdout);
    for report in reports {
        let text = report.to_string();
        assert!(text.contains("timeout"), "no timeout in {text}");
    }
    assert_eq!(run.code, 2);
    let bad = run_doctor(
        &["--targets", file.to_str().unwrap(), "--run-timeout", "0"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(bad.code, 3);
    assert!(bad.stderr.contains("--run-timeout"), "{}", bad.stderr);
}

#[test]
fn the_targets_file_is_read_as_a_stream_and_a_bad_line_is_named() {
    let home = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // More than the 1 MiB a configuration file may hold: a targets file has no such cap.
    let mut lines: Vec<String> = (0..40_000)
        .map(|i| format!("# a comment of some length to pass the old cap, number {i}"))
        .collect();
    lines.push(format!("127.0.0.1:{closed}"));
    lines.push("host=127.0.0.1 sslmode=sometimes".into());
    lines.push(format!("host=127.0.0.1 port={closed} user=second"));
    let file = targets_file(home.path(), &lines);
    assert!(std::fs::metadata(&file).unwrap().len() > 2 << 20);
    let run = run_doctor(
        &["--targets", file.to_str().unwrap(), "--format", "ndjson"],
        home.path(),
        None,
        &[],
    );
    let lines = ndjson(&run);
    assert_eq!(reports(&lines).len(), 2, "{}", run.stderr);
    assert_eq!(
        run.code, 3,
        "a line that names no target makes the run a usage error"
    );
    assert!(run.stderr.contains("line 40002"), "{}", run.stderr);
    assert!(run.stderr.contains("sometimes"), "{}", run.stderr);
    assert_eq!(lines.last().unwrap()["targets"], 2);
    // A targets file's lines cannot be told apart in a server log: refused, not guessed.
    let refused = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--server-log",
            "/dev/null",
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(refused.code, 3);
    assert!(refused.stderr.contains("--targets"), "{}", refused.stderr);
}

#[test]
fn a_server_without_tls_gets_one_connection_from_the_full_diagnosis() {
    // 'N' to the SSLRequest: the plaintext startup continues on the same connection, so
    // the concurrent plaintext attempt (started only after an 'S') is never made.
    let home = tempfile::tempdir().unwrap();
    let pg = PgServer::start(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        setup_sql: vec!["CREATE ROLE alice LOGIN".into()],
        ..Default::default()
    });
    let before = pg.log().matches("connection received").count();
    let run = run_doctor(
        &[
            &pg.conninfo("user=alice dbname=postgres"),
            "--format",
            "json",
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["probe"]["connections"], 1);
    // The backend logs its connection as it starts; give the log a moment.
    std::thread::sleep(Duration::from_millis(300));
    let after = pg.log().matches("connection received").count();
    assert_eq!(after - before, 1, "{}", pg.log());
}

#[test]
fn every_probe_connection_names_the_doctor_unless_the_target_names_itself() {
    let home = tempfile::tempdir().unwrap();
    let pg = PgServer::start(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        extra_conf: "log_connections = on\n".into(),
        setup_sql: vec!["CREATE ROLE alice LOGIN".into()],
        ..Default::default()
    });
    let target = pg.conninfo("user=alice dbname=postgres");
    let run = run_doctor(&[&target], home.path(), None, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let named = |log: &str, name: &str| {
        log.lines()
            .filter(|l| l.contains("connection authorized: user=alice"))
            .filter(|l| l.contains(&format!("application_name={name}")))
            .count()
    };
    let log = pg.log();
    assert!(named(&log, "pgtls-doctor") >= 1, "{log}");
    let own = format!("{target} application_name=billing");
    let run = run_doctor(&[&own], home.path(), None, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let log = pg.log();
    assert!(named(&log, "billing") >= 1, "{log}");
}

#[test]
fn the_cap_per_server_counts_servers_not_spellings() {
    let home = tempfile::tempdir().unwrap();
    let gauge = Arc::new(Gauge::default());
    let port = holding_listener(gauge.clone(), Duration::from_millis(300));
    let spellings = [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "127.0.1",
        "0177.0.0.1",
        "127.000.000.001",
    ];
    let lines: Vec<String> = spellings
        .iter()
        .map(|h| format!("host={h} port={port} user=u dbname=app"))
        .collect();
    let file = targets_file(home.path(), &lines);
    let run = run_doctor(
        &[
            "--targets",
            file.to_str().unwrap(),
            "--format",
            "ndjson",
            "--concurrency",
            "16",
            "--per-server",
            "1",
            "--timeout",
            "10",
        ],
        home.path(),
        None,
        &[],
    );
    let lines = ndjson(&run);
    assert_eq!(reports(&lines).len(), spellings.len(), "{}", run.stdout);
    let most = gauge.most.load(Ordering::SeqCst);
    assert_eq!(most, 1, "one server, {most} connections at once");
}

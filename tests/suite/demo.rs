//! `demo`: end to end against this machine's PostgreSQL, as the first-run command; it
//! leaves no process, port or file behind, also when interrupted.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::doctor::binary;
use crate::support::pg::{pg_bin_dir, run_with_timeout};

fn scenarios() -> serde_json::Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/scenarios.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The port and directory the demo announces on its first line.
fn announced(first_line: &str) -> (u16, PathBuf) {
    let port = first_line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first_line:?}"));
    let dir = first_line
        .split("files in ")
        .nth(1)
        .map(|d| PathBuf::from(d.trim()))
        .unwrap_or_else(|| panic!("no directory in {first_line:?}"));
    (port, dir)
}

fn assert_nothing_left(port: u16, dir: &Path) {
    assert!(!dir.exists(), "{} is still there", dir.display());
    let listening = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok();
    assert!(!listening, "something still listens on port {port}");
    let needle = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&needle),
            "a process of the demo is still running: {cmdline}"
        );
    }
}

fn demo() -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["demo", "--color", "never"])
        .env("PGTLS_DEMO_PG_BIN", pg_bin_dir());
    cmd
}

#[test]
fn the_demo_runs_end_to_end_and_leaves_nothing_behind() {
    let out = run_with_timeout(&mut demo(), Duration::from_secs(180));
    assert!(!out.timed_out, "the demo hung:\n{}", out.stdout);
    assert!(
        out.success(),
        "the demo failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    let first = out.stdout.lines().next().unwrap_or_default();
    let (port, dir) = announced(first);
    for s in scenarios()["scenarios"].as_array().unwrap() {
        assert!(out.stdout.contains(s["title"].as_str().unwrap()), "{s}");
        if let Some(code) = s["expect"].as_str() {
            assert!(out.stdout.contains(code), "{code} missing:\n{}", out.stdout);
        }
    }
    // Beside each diagnosis: what psql said.
    assert!(out.stdout.contains("psql: error:"), "{}", out.stdout);
    assert!(!out.stdout.contains("the demo expected"), "{}", out.stdout);
    // No evidence line without its value; the lint reads the file as the demo's own
    // server (its major version, from the first line) reads it.
    for line in out.stdout.lines() {
        assert!(
            !line.trim_end().ends_with(':') || !line.starts_with("        "),
            "an empty evidence line: {line:?}"
        );
    }
    let major = first
        .split("PostgreSQL ")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_default();
    assert!(
        out.stdout.contains(&format!("read as PostgreSQL {major}")),
        "the lint names another version than the server's {major}:\n{}",
        out.stdout
    );
    // Where an error stands though the connection works, the error leads the headline.
    assert!(
        !out.stdout.contains("FAIL  sslmode=verify-full connects"),
        "{}",
        out.stdout
    );
    assert_nothing_left(port, &dir);
}

#[test]
fn an_interrupted_demo_cleans_up() {
    let mut child = demo()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let (port, dir) = announced(&first);
    // Wait until the first scenario runs against the live server, then press Ctrl-C.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("── 2/") {
            break;
        }
    }
    assert!(dir.exists());
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert_nothing_left(port, &dir);
}

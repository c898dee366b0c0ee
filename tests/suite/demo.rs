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

/// A directory planted where the demo sweeps, by another user, whose postmaster.pid names
/// a process the demo never started: the demo neither signals that process nor removes the
/// directory. Its own leftover (marker, this user's, demo process gone) is swept.
#[test]
fn the_sweep_never_signals_a_process_it_did_not_start() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: planting another user's directory needs root (CI runs as root)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The postgres user must reach the demo's server directory through TMPDIR.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    // The victim runs as the postgres user, as a real postmaster would: the old sweep's
    // `pg_ctl stop` ran as that user and could signal it.
    let postgres = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let mut victim = KilledOnDrop({
        use std::os::unix::process::CommandExt;
        Command::new("sleep")
            .arg("120")
            .uid(postgres("-u"))
            .gid(postgres("-g"))
            .spawn()
            .unwrap()
    });
    // A pid that is surely dead: a child that has exited and been reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();

    let planted = tmp.path().join(format!("pgtls-doctor-demo-{dead}-1"));
    std::fs::create_dir_all(planted.join("data")).unwrap();
    std::fs::write(planted.join(".pgtls-doctor-demo"), "").unwrap();
    std::fs::write(
        planted.join("data/postmaster.pid"),
        format!("{}\n{}\n", victim.0.id(), planted.join("data").display()),
    )
    .unwrap();
    // Another user's (nobody's) directory, marker and all.
    for path in [
        &planted,
        &planted.join("data"),
        &planted.join(".pgtls-doctor-demo"),
    ] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    // This user's own leftover with the same lie, and no server: swept, nothing signalled.
    let own = tmp.path().join(format!("pgtls-doctor-demo-{dead}-2"));
    std::fs::create_dir_all(own.join("data")).unwrap();
    std::fs::write(own.join(".pgtls-doctor-demo"), "").unwrap();
    std::fs::write(
        own.join("data/postmaster.pid"),
        format!("{}\n", victim.0.id()),
    )
    .unwrap();

    let out = run_with_timeout(demo().env("TMPDIR", tmp.path()), Duration::from_secs(180));
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        victim.0.try_wait().unwrap().is_none(),
        "the demo signalled a process it did not start"
    );
    assert!(planted.exists(), "another user's directory was removed");
    assert!(!own.exists(), "this user's own leftover was not swept");
}

/// A child process that is killed when the test ends, also when it fails.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

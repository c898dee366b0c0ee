//! Issue 9: hostile input, hostile servers, careless operators. One case per defect, each
//! checking the exit status, the time taken, peak memory where it matters, and that no
//! secret and no raw control character reaches any output. Files come from
//! fixtures/hostile/; peers are scripted (crate::support::fake_peer, crate::support::tls_peer) or real.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::doctor::{run_doctor, run_doctor_with, DoctorRun};
use crate::support::fake_peer::{error_response, spawn, Step};
use crate::support::pg::{run_with_timeout, PgConfig, PgServer};
use crate::support::pki::{self, Ca, LeafSpec};
use crate::support::tls_peer::{self, After};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hostile")
        .join(name)
}

/// No raw control character (other than newline), no C1 control, no bidi override.
fn assert_printable(what: &str, text: &str) {
    for c in text.chars() {
        let v = c as u32;
        let bad = (v < 0x20 && c != '\n')
            || (0x7f..=0x9f).contains(&v)
            || (0x202a..=0x202e).contains(&v)
            || (0x2066..=0x2069).contains(&v)
            || (0x10ff00..=0x10ffff).contains(&v);
        assert!(!bad, "{what}: raw U+{v:04X} in output:\n{text}");
    }
}

fn assert_clean(run: &DoctorRun, secrets: &[&str]) {
    assert_printable("stdout", &run.stdout);
    assert_printable("stderr", &run.stderr);
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---- messages for scripted peers ------------------------------------------------------------

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn auth_ok() -> Vec<u8> {
    message(b'R', &0u32.to_be_bytes())
}

fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    message(b'S', format!("{name}\0{value}\0").as_bytes())
}

fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

fn data_row(value: &[u8]) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as u32).to_be_bytes());
    body.extend_from_slice(value);
    message(b'D', &body)
}

fn tls_script_peer(startup: Vec<u8>, on_query: Vec<u8>, repeat: usize) -> (Ca, u16) {
    let ca = Ca::root("Hostile Input CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let port = tls_peer::spawn(
        vec![leaf.cert_der.clone()],
        leaf.key_pem.clone(),
        After::Script {
            startup,
            on_query,
            repeat,
        },
    );
    (ca, port)
}

const HOSTILE_TEXT: &str =
    "\x1b[2J\x1b]52;c;SGVsbG8=\x07\x1b]0;pwned\x07FAIL\rOK\x08\x08\u{202e}kcatta\u{9b}31m";

// ---- 1. environment that is not UTF-8 -------------------------------------------------------

const LATIN1_PASSWORD: &[u8] = b"Gr\xfcnSECRET-9";

fn latin1_server() -> PgServer {
    let verifier = postgres_protocol::password::scram_sha_256(LATIN1_PASSWORD);
    PgServer::start(PgConfig {
        ssl: false,
        hba: "host all latin 127.0.0.1/32 scram-sha-256\n".into(),
        setup_sql: vec![
            "CREATE ROLE latin LOGIN".into(),
            format!("ALTER ROLE latin PASSWORD '{verifier}'"),
            "CREATE DATABASE app".into(),
        ],
        ..Default::default()
    })
}

#[test]
fn a_password_that_is_not_utf8_is_sent_as_bytes_and_never_printed() {
    let pg = latin1_server();
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=127.0.0.1 port={} user=latin dbname=app", pg.port);
    let args = [target.as_str(), "--sslmode", "disable", "--format", "json"];
    let run = run_doctor_with(&args, home.path(), None, &[], |cmd| {
        cmd.env("PGPASSWORD", OsStr::from_bytes(LATIN1_PASSWORD))
            .env("FOO", OsStr::from_bytes(b"\xff\xfe"));
    });
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.cell("disable"), (Some(true), false, None));
    assert_clean(&run, &["SECRET"]);
    // psql, with the same bytes, agrees.
    let mut psql = Command::new(pg.psql_path());
    crate::support::pg::scrub_pg_env(&mut psql)
        .env("HOME", home.path())
        .env("PGPASSWORD", OsStr::from_bytes(LATIN1_PASSWORD))
        .args(["-w", "-X", "-At", "-c", "select 1"])
        .arg(format!("{target} sslmode=disable"));
    let out = run_with_timeout(&mut psql, Duration::from_secs(30));
    assert!(out.success(), "psql: {}", out.stderr);

    // The same password from a passfile.
    let passfile = home.path().join("pgpass");
    let mut line = format!("127.0.0.1:{}:app:latin:", pg.port).into_bytes();
    line.extend_from_slice(LATIN1_PASSWORD);
    line.push(b'\n');
    pki::write_file(home.path(), "pgpass", &line, 0o600);
    let run = run_doctor(&args, home.path(), Some(&passfile), &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_clean(&run, &["SECRET"]);
}

// ---- 2. postgres:// URIs --------------------------------------------------------------------

#[test]
fn a_postgres_scheme_uri_sends_its_real_password() {
    let pg = PgServer::start(PgConfig {
        ssl: false,
        hba: "host all pwuser 127.0.0.1/32 scram-sha-256\n".into(),
        setup_sql: vec![
            "CREATE ROLE pwuser LOGIN PASSWORD 'uri-secret-42'".into(),
            "CREATE DATABASE app".into(),
        ],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    for scheme in ["postgres", "postgresql"] {
        let uri = format!("{scheme}://pwuser:uri-secret-42@127.0.0.1:{}/app", pg.port);
        let run = run_doctor(
            &[&uri, "--sslmode", "disable", "--format", "json"],
            home.path(),
            None,
            &[],
        );
        assert_eq!(run.code, 0, "{scheme}: {}", run.stdout);
        assert!(run.finding("password_failed").is_none(), "{}", run.stdout);
        assert_clean(&run, &["uri-secret-42"]);
    }
}

// ---- 3. terminal escapes --------------------------------------------------------------------

#[test]
fn server_text_before_tls_is_escaped() {
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(error_response("28000", HOSTILE_TEXT)),
            Step::Close,
        ],
        4,
    );
    let home = tempfile::tempdir().unwrap();
    let run = run_doctor(
        &[&format!("host=127.0.0.1 port={port} user=alice")],
        home.path(),
        None,
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(run.stdout.contains("\\x1b[2J"), "{}", run.stdout);
    assert_clean(&run, &[]);
}

#[test]
fn certificate_names_server_errors_and_sasl_names_are_escaped() {
    // A self-signed certificate whose names carry escapes, and an ErrorResponse that does.
    let ca = crate::support::ossl_pki::OsslCa::root(HOSTILE_TEXT, 3);
    let port = tls_peer::spawn(
        vec![ca.issued.cert_der.clone()],
        ca.issued.key_pem.clone(),
        After::Script {
            startup: error_response("28000", HOSTILE_TEXT),
            on_query: Vec::new(),
            repeat: 0,
        },
    );
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let run = run_doctor(&[&target], home.path(), None, &[]);
    assert!(run.stdout.contains("\\x1b"), "{}", run.stdout);
    assert_clean(&run, &[]);

    let mut sasl = 10u32.to_be_bytes().to_vec();
    sasl.extend_from_slice(format!("EVIL{HOSTILE_TEXT}\0\0").as_bytes());
    let (_ca, port) = tls_script_peer(message(b'R', &sasl), Vec::new(), 0);
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let run = run_doctor(
        &[&target],
        home.path(),
        None,
        &[("PGPASSWORD", "sasl-pw-31")],
    );
    assert!(run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_clean(&run, &["sasl-pw-31"]);
}

#[test]
fn hba_lint_and_server_log_lines_are_escaped() {
    let home = tempfile::tempdir().unwrap();
    let hba = fixture("escapes.hba");
    let run = run_doctor(
        &["hba", "lint", hba.to_str().unwrap()],
        home.path(),
        None,
        &[],
    );
    assert!(run.stdout.contains("\\x1b"), "{}", run.stdout);
    assert_clean(&run, &[]);

    let log = fixture("escapes.log");
    let target = format!(
        "host=127.0.0.1 port={} user=alice dbname=app",
        closed_port()
    );
    let run = run_doctor(
        &[&target, "--server-log", log.to_str().unwrap()],
        home.path(),
        None,
        &[],
    );
    assert_clean(&run, &[]);
}

// ---- 4. floods from the server --------------------------------------------------------------

#[test]
fn a_flood_of_rows_and_errors_is_counted_not_held() {
    let mut startup = auth_ok();
    startup.extend(parameter_status("server_version", "17.0"));
    startup.extend(ready());
    let home = tempfile::tempdir().unwrap();
    // 300 rows of 1 MiB in answer to the one-row pg_stat_ssl query: 300 MB on the wire.
    let (_ca, port) = tls_script_peer(startup.clone(), data_row(&vec![b'x'; (1 << 20) - 64]), 300);
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let started = Instant::now();
    let run = run_doctor(
        &[&target, "--format", "json", "--timeout", "30"],
        home.path(),
        None,
        &[],
    );
    assert!(
        run.max_rss_kb < 100 * 1024,
        "peak RSS {} KiB",
        run.max_rss_kb
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let f = run.expect_finding("server_flood", "warning");
    assert!(f["summary"].as_str().unwrap().contains("300"), "{f}");

    // And 200,000 ErrorResponses.
    let (_ca, port) = tls_script_peer(startup, error_response("XX000", "boom"), 200_000);
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let run = run_doctor(
        &[&target, "--format", "json", "--timeout", "30"],
        home.path(),
        None,
        &[],
    );
    assert!(
        run.max_rss_kb < 100 * 1024,
        "peak RSS {} KiB",
        run.max_rss_kb
    );
    run.expect_finding("server_flood", "warning");
}

#[test]
fn a_flood_of_parameter_status_and_notices_is_named() {
    let mut startup = auth_ok();
    for i in 0..5_000 {
        startup.extend(parameter_status(&format!("p{i}"), "v"));
    }
    let (_ca, port) = tls_script_peer(startup, Vec::new(), 0);
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let run = run_doctor(&[&target, "--format", "json"], home.path(), None, &[]);
    assert_eq!(
        run.cell("require").2.as_deref(),
        Some("server_flood"),
        "{}",
        run.stdout
    );
}

#[test]
fn ten_thousand_sasl_mechanisms_do_not_inflate_the_text_report() {
    let mut sasl = 10u32.to_be_bytes().to_vec();
    for i in 0..10_000 {
        sasl.extend_from_slice(format!("MECH-{i:05}-{}\0", "x".repeat(80)).as_bytes());
    }
    sasl.push(0);
    let (_ca, port) = tls_script_peer(message(b'R', &sasl), Vec::new(), 0);
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=localhost port={port} user=alice sslmode=require");
    let run = run_doctor(&[&target], home.path(), None, &[("PGPASSWORD", "x")]);
    assert!(run.stdout.contains("MECH-00000"), "{}", run.stdout);
    assert!(
        run.stdout.len() < 64 * 1024,
        "{} bytes of text",
        run.stdout.len()
    );
}

// ---- 5. include and @file fan-out -----------------------------------------------------------

#[test]
fn include_and_at_file_fan_out_is_bounded() {
    let home = tempfile::tempdir().unwrap();
    for file in ["self-include/pg_hba.conf", "at-fanout/pg_hba.conf"] {
        let path = fixture(file);
        let started = Instant::now();
        let lint = run_doctor(
            &["hba", "lint", path.to_str().unwrap(), "--format", "json"],
            home.path(),
            None,
            &[],
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{file}: {:?}",
            started.elapsed()
        );
        assert!(
            lint.max_rss_kb < 200 * 1024,
            "{file}: peak RSS {} KiB",
            lint.max_rss_kb
        );
        assert!(
            lint.stdout.contains("hba_parse_error"),
            "{file}: {}",
            lint.stdout
        );

        let run = run_doctor(
            &[
                &format!("127.0.0.1:{}", closed_port()),
                "--hba",
                path.to_str().unwrap(),
            ],
            home.path(),
            None,
            &[],
        );
        assert!(
            run.max_rss_kb < 200 * 1024,
            "{file}: peak RSS {} KiB",
            run.max_rss_kb
        );
        assert!(run.elapsed < Duration::from_secs(15), "{file}");
    }
}

// ---- 6. files that block --------------------------------------------------------------------

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

#[test]
fn files_that_would_block_are_refused_at_once() {
    let home = tempfile::tempdir().unwrap();
    let fifo = fifo(home.path(), "fifo");
    let mut blocking = vec![fifo.display().to_string()];
    if Path::new("/proc/kmsg").exists() {
        blocking.push("/proc/kmsg".into());
    }
    let target = format!("host=127.0.0.1 port={} user=alice", closed_port());
    for file in &blocking {
        for args in [
            vec!["hba", "lint", file.as_str()],
            vec!["--targets", file.as_str()],
            vec![target.as_str(), "--server-log", file.as_str()],
            vec![target.as_str(), "--hba", file.as_str()],
        ] {
            let run = run_doctor(&args, home.path(), None, &[]);
            assert_eq!(run.code, 3, "{args:?}: {}{}", run.stdout, run.stderr);
            assert!(run.elapsed < Duration::from_secs(5), "{args:?}");
            assert!(
                run.stderr.contains(file.as_str()),
                "{args:?}: {}",
                run.stderr
            );
        }
        let run = run_doctor(
            &[&target, "--sslrootcert", file, "--format", "json"],
            home.path(),
            None,
            &[],
        );
        assert!(run.elapsed < Duration::from_secs(5), "--sslrootcert {file}");
    }
    // sslrootcert=system reads SSL_CERT_FILE through the same reader.
    let ca = Ca::root("Block CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let port = tls_peer::spawn(
        vec![leaf.cert_der.clone()],
        leaf.key_pem.clone(),
        After::Close,
    );
    let target = format!("host=localhost port={port} user=alice sslrootcert=system");
    for file in ["/dev/zero", fifo.to_str().unwrap()] {
        let run = run_doctor(
            &[&target, "--format", "json"],
            home.path(),
            None,
            &[("SSL_CERT_FILE", file), ("SSL_CERT_DIR", "/nonexistent")],
        );
        assert!(run.elapsed < Duration::from_secs(5), "SSL_CERT_FILE={file}");
        assert_eq!(run.code, 1, "SSL_CERT_FILE={file}: {}", run.stdout);
        let f = run.expect_finding("root_cert_unreadable", "error");
        assert!(f["summary"].as_str().unwrap().contains(file), "{f}");
    }
}

// ---- 7. a silent resolver -------------------------------------------------------------------

#[test]
fn a_silent_resolver_ends_at_the_deadline() {
    // A DNS server that never answers, made the only one in a private mount namespace
    // (glibc's resolver always asks port 53).
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 77);
    let _silent = std::net::UdpSocket::bind((ip, 53))
        .expect("bind a silent resolver on 127.0.0.77:53 (the tests run as root)");
    let addr = std::net::SocketAddr::from((ip, 53));
    let dir = tempfile::tempdir().unwrap();
    let resolv = pki::write_file(
        dir.path(),
        "resolv.conf",
        format!("nameserver {}\noptions timeout:10 attempts:3\n", addr.ip()).as_bytes(),
        0o644,
    );
    let doctor = crate::support::doctor::binary();
    let started = Instant::now();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"",
        "sh",
    ])
    .arg(&resolv)
    .arg(&doctor)
    .args([
        "host=db.silent-resolver.test,db2.silent-resolver.test,db3.silent-resolver.test user=alice",
        "--timeout",
        "2",
        "--format",
        "json",
    ])
    .env("HOME", dir.path())
    .env("NO_COLOR", "1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(6),
        "took {elapsed:?}: {}",
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    let text = json.to_string();
    assert!(text.contains("connect_timeout"), "{text}");
    assert!(text.contains("resolver did not translate"), "{text}");
    assert_eq!(out.status.and_then(|s| s.code()), Some(2));

    // In a fleet the name is looked up to find the server's --per-server slot: that lookup
    // is inside each target's deadline too.
    let targets = pki::write_file(
        dir.path(),
        "targets",
        b"host=db.silent-resolver.test,db2.silent-resolver.test user=alice
host=db3.silent-resolver.test user=bob
",
        0o644,
    );
    let started = Instant::now();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"",
        "sh",
    ])
    .arg(&resolv)
    .arg(&doctor)
    .arg("--targets")
    .arg(&targets)
    .args(["--timeout", "2", "--format", "ndjson"])
    .env("HOME", dir.path())
    .env("NO_COLOR", "1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(6),
        "the fleet took {elapsed:?}: {}",
        out.stderr
    );
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
}

// ---- 8. a closed pipe -----------------------------------------------------------------------

#[test]
fn a_closed_pipe_keeps_the_failure_status() {
    let target = format!("host=127.0.0.1 port={} user=alice", closed_port());
    let home = tempfile::tempdir().unwrap();
    for _ in 0..10 {
        let mut child = Command::new(crate::support::doctor::binary())
            .arg(&target)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| true`: nobody reads.
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(2), "a broken database must not exit 0");
    }
}

// ---- 9. absurd timeouts ---------------------------------------------------------------------

#[test]
fn absurd_timeouts_are_usage_errors_not_panics() {
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=127.0.0.1 port={}", closed_port());
    for args in [
        vec![target.as_str(), "--timeout", "1e20"],
        vec![target.as_str(), "--timeout", "1e19"],
        vec![target.as_str(), "--timeout", "inf"],
        vec![target.as_str(), "--timeout", "NaN"],
        vec![target.as_str(), "--connect-timeout", "9223372036854775807"],
        vec!["host=127.0.0.1 connect_timeout=9223372036854775807"],
    ] {
        let run = run_doctor(&args, home.path(), None, &[]);
        assert_eq!(run.code, 3, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    let run = run_doctor(
        &[&target, "--connect-timeout", "2147483647"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

// ---- 10. percent-encoded secret keys ----------------------------------------------------------

#[test]
fn percent_encoded_password_keys_are_redacted() {
    let home = tempfile::tempdir().unwrap();
    let uri = "postgresql://u@h/db?%70assword=SECRET-1&%73sl%70assword=SECRET-2&%zz=1";
    let run = run_doctor(&[uri], home.path(), None, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_clean(&run, &["SECRET-1", "SECRET-2"]);
    let targets = pki::write_file(home.path(), "targets", format!("{uri}\n").as_bytes(), 0o600);
    let run = run_doctor(
        &["--targets", targets.to_str().unwrap()],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_clean(&run, &["SECRET-1", "SECRET-2"]);
}

// ---- 11. key material given where text is read ------------------------------------------------

#[test]
fn a_private_key_given_as_text_is_refused_unseen() {
    let home = tempfile::tempdir().unwrap();
    let key = pki::write_file(
        home.path(),
        "server.key",
        Ca::root("Key CA").issued.key_pem.as_bytes(),
        0o600,
    );
    let key_s = key.to_str().unwrap();
    let body_line = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let target = format!("host=127.0.0.1 port={}", closed_port());
    for args in [
        vec!["hba", "lint", key_s],
        vec![target.as_str(), "--hba", key_s],
        vec![
            target.as_str(),
            "--hba",
            fixture("self-include/pg_hba.conf").to_str().unwrap(),
            "--ident",
            key_s,
        ],
        vec!["--targets", key_s],
    ] {
        let run = run_doctor(&args, home.path(), None, &[]);
        assert_eq!(run.code, 3, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("private key"),
            "{args:?}: {}",
            run.stderr
        );
        assert_clean(&run, &[&body_line, "PRIVATE KEY-----"]);
    }
    let pasted = std::fs::read_to_string(&key).unwrap();
    let run = run_doctor(&[&pasted], home.path(), None, &[]);
    assert_eq!(run.code, 3);
    assert_clean(&run, &[&body_line]);
}

// ---- the smaller ones -----------------------------------------------------------------------

#[test]
fn a_passfile_too_large_to_read_leaves_password_cells_undetermined() {
    let pg = PgServer::start(PgConfig {
        ssl: false,
        hba: "host all pwuser 127.0.0.1/32 scram-sha-256\n".into(),
        setup_sql: vec![
            "CREATE ROLE pwuser LOGIN PASSWORD 'big-passfile-7'".into(),
            "CREATE DATABASE app".into(),
        ],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut text = "# padding\n".repeat(120_000);
    text.push_str(&format!(
        "127.0.0.1:{}:app:pwuser:big-passfile-7\n",
        pg.port
    ));
    let passfile = pki::write_file(home.path(), "pgpass", text.as_bytes(), 0o600);
    let target = format!("host=127.0.0.1 port={} user=pwuser dbname=app", pg.port);
    let run = run_doctor(
        &[&target, "--sslmode", "disable", "--format", "json"],
        home.path(),
        Some(&passfile),
        &[],
    );
    // libpq reads the whole file and connects; the doctor does not know, and says so.
    assert_eq!(run.cell("disable").0, None, "{}", run.stdout);
    assert_eq!(run.cell("disable").2.as_deref(), Some("passfile_unread"));
    assert!(run.finding("password_required").is_none(), "{}", run.stdout);
    let real = crate::support::psql::run_psql(
        &pg.psql_path(),
        &format!("{target} sslmode=disable"),
        home.path(),
        Some(&passfile),
    );
    assert!(real.ok, "{}", real.stderr);
}

#[test]
fn scram_iteration_counts_libpq_refuses_or_that_would_burn_minutes() {
    let home = tempfile::tempdir().unwrap();
    for (iterations, expect) in [
        ("0", "malformed SCRAM message (invalid iteration count)"),
        ("-5", "malformed SCRAM message (invalid iteration count)"),
        ("2000000000", "SCRAM iterations"),
    ] {
        let ca = Ca::root("SCRAM CA");
        let leaf = ca.issue(&LeafSpec::server(
            "localhost",
            &["localhost"],
            &["127.0.0.1"],
        ));
        let port = tls_peer::spawn(
            vec![leaf.cert_der.clone()],
            leaf.key_pem.clone(),
            After::ScramIterations(iterations.into()),
        );
        let target = format!("host=localhost port={port} user=alice sslmode=require");
        let run = run_doctor(
            &[&target, "--format", "json"],
            home.path(),
            None,
            &[("PGPASSWORD", "pw-77")],
        );
        assert!(
            run.elapsed < Duration::from_secs(8),
            "i={iterations}: {:?}",
            run.elapsed
        );
        assert_eq!(
            run.cell("require").2.as_deref(),
            Some("protocol_violation"),
            "i={iterations}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(expect),
            "i={iterations}: {}",
            run.stdout
        );
        assert_clean(&run, &["pw-77"]);
    }
}

#[test]
fn no_credentials_withheld_when_there_is_no_password_at_all() {
    let home = tempfile::tempdir().unwrap();
    let target = format!(
        "host=127.0.0.1 port={} user=alice sslmode=disable",
        closed_port()
    );
    let run = run_doctor(&[&target, "--format", "json"], home.path(), None, &[]);
    assert_eq!(run.code, 2);
    assert!(
        !run.stdout.contains("credentials_withheld"),
        "{}",
        run.stdout
    );
    assert_eq!(run.cell("require").2.as_deref(), Some("tcp_connect_failed"));
}

#[test]
fn write_errors_are_reported() {
    let home = tempfile::tempdir().unwrap();
    let hba = fixture("self-include/pg_hba.conf");
    for args in [vec!["hba", "lint", hba.to_str().unwrap()], vec!["--help"]] {
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let status_and_err = Command::new(crate::support::doctor::binary())
            .args(&args)
            .env("HOME", home.path())
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(status_and_err.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&status_and_err.stderr);
        assert!(err.contains("could not write"), "{args:?}: {err}");
    }
}

#[test]
fn invalid_choice_settings_are_refused_as_libpq_refuses_them() {
    let home = tempfile::tempdir().unwrap();
    for (target, message) in [
        (
            "host=h target_session_attrs=bogus",
            "invalid target_session_attrs value",
        ),
        (
            "host=h load_balance_hosts=bogus",
            "invalid load_balance_hosts value",
        ),
        ("host=h gssencmode=bogus", "invalid gssencmode value"),
        ("host=h require_auth=bogus", "invalid require_auth value"),
        (
            "hostaddr=fe80::1%no-such-if0 port=1",
            "could not parse network address",
        ),
    ] {
        let run = run_doctor(&[target], home.path(), None, &[]);
        assert_eq!(run.code, 3, "{target}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{target}: {}", run.stderr);
    }
    // An IPv6 zone is accepted, as getaddrinfo accepts it; empty host entries are sockets.
    let run = run_doctor(
        &["hostaddr=fe80::1%lo port=1", "--timeout", "2"],
        home.path(),
        None,
        &[],
    );
    assert_ne!(run.code, 3, "{}", run.stderr);
    let run = run_doctor(
        &["host=,, port=1", "--format", "json"],
        home.path(),
        None,
        &[],
    );
    assert!(run.stdout.contains(".s.PGSQL.1"), "{}", run.stdout);
}

//! The command line: usage errors, help, colour, multi-host and Unix-socket targets.

use std::process::Command;

use crate::support::doctor::{assert_agrees_with_psql, binary, run_bare, run_doctor};
use crate::support::pg::{run_with_timeout, scrub_pg_env, tls_server, PgConfig, PgServer};
use crate::support::pki::Ca;

#[test]
fn usage_errors_exit_3_with_libpq_wording() {
    let cases = [
        (
            "host=h sslmode=Require",
            "invalid sslmode value: \"Require\"",
        ),
        ("db.example.com:99999", "invalid port number: \"99999\""),
        (
            "postgresql://[::1/db",
            "end of string reached when looking for matching \"]\"",
        ),
        ("host=h hots=x", "invalid connection option \"hots\""),
        (
            "postgresql://h/db?foo=1",
            "invalid URI query parameter: \"foo\"",
        ),
        (
            "host=h sslnegotiation=direct sslmode=prefer",
            "weak sslmode \"prefer\" may not be used with sslnegotiation=direct",
        ),
    ];
    for (target, message) in cases {
        let (code, _, stderr) = run_bare(&[target]);
        assert_eq!(code, 3, "{target}: {stderr}");
        assert!(stderr.contains(message), "{target}: {stderr}");
    }
    let (code, _, stderr) = run_bare(&["h", "--format", "yaml"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn help_documents_exit_statuses() {
    let (code, stdout, _) = run_bare(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("EXIT STATUS"));
    for flag in [
        "--sslmode",
        "--sslrootcert",
        "--connect-timeout",
        "--format",
        "--color",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn color_always_colours_and_never_does_not() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let (_, coloured, _) = run_bare(&[&target, "--color", "always"]);
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    let (_, plain, _) = run_bare(&[&target, "--color", "never"]);
    assert!(!plain.contains("\u{1b}["), "{plain}");
}

fn trusting_server() -> (Ca, PgServer) {
    tls_server(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    })
}

#[test]
fn multi_host_skips_the_unreachable_host_and_says_where_libpq_ends() {
    let (ca, pg) = trusting_server();
    let home = tempfile::tempdir().unwrap();
    let root = crate::support::pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!(
        "host=localhost,localhost port={closed},{} user=postgres dbname=postgres sslrootcert={}",
        pg.port,
        root.display()
    );
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let hosts = run.json["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0]["chosen"], false);
    assert!(
        hosts[0]["why"]
            .as_str()
            .unwrap()
            .contains("tcp_connect_failed"),
        "{}",
        hosts[0]
    );
    assert_eq!(hosts[1]["chosen"], true);
    assert_eq!(run.json["target"]["port"], pg.port);
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home.path(), None);
}

#[test]
fn unix_socket_is_reported_as_never_tls() {
    let (_ca, pg) = trusting_server();
    let home = tempfile::tempdir().unwrap();
    let target = format!(
        "host={} port={} user=postgres dbname=postgres",
        pg.dir.display(),
        pg.port
    );
    let run = run_doctor(
        &[&target, "--sslmode", "require", "--format", "json"],
        home.path(),
        None,
        &[],
    );
    run.expect_finding("unix_socket", "info");
    for mode in crate::support::doctor::MODES {
        assert_eq!(run.cell(mode), (Some(true), false, None), "{mode}");
    }
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home.path(), None);
}

#[test]
fn targets_file_gives_one_report_each_and_the_worst_exit_status() {
    let (ca, pg) = trusting_server();
    let home = tempfile::tempdir().unwrap();
    let root = crate::support::pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = crate::support::pki::write_file(
        home.path(),
        "targets",
        format!(
            "# production\nhost=localhost port={} user=postgres dbname=postgres sslrootcert={}\n\n127.0.0.1:{closed}\n",
            pg.port,
            root.display()
        )
        .as_bytes(),
        0o644,
    );
    let f = file.display().to_string();
    let (code, stdout, _) = run_bare(&[
        "--targets",
        &f,
        "--sslmode",
        "verify-full",
        "--format",
        "json",
    ]);
    assert_eq!(code, 2, "2 (unreachable) wins over 0: {stdout}");
    // Several targets are one JSON document: every report, then their summary.
    let fleet: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    crate::support::doctor::validate(&fleet);
    let reports = fleet["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for r in reports {
        crate::support::doctor::validate(r);
    }
    assert_eq!(reports[0]["verdict"]["exit_code"], 0);
    assert_eq!(reports[1]["verdict"]["exit_code"], 2);
    let summary = &fleet["summary"];
    assert_eq!(
        (&summary["targets"], &summary["ok"], &summary["unreachable"]),
        (&2.into(), &1.into(), &1.into()),
        "{summary}"
    );
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["codes"]["tcp_connect_failed"], 1, "{summary}");

    let bad = crate::support::pki::write_file(
        home.path(),
        "bad-targets",
        b"host=h\nhost=h sslmode=Require\n",
        0o644,
    );
    let (code, _, stderr) = run_bare(&["--targets", &bad.display().to_string()]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("bad-targets, line 2") && stderr.contains("invalid sslmode value"),
        "{stderr}"
    );
    let (code, _, stderr) = run_bare(&["--targets", "/nonexistent/targets"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("/nonexistent/targets"), "{stderr}");
}

#[test]
fn several_targets_on_the_command_line_are_one_fleet() {
    let closed = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (a, b) = (
        format!("127.0.0.1:{}", closed()),
        format!("127.0.0.1:{}", closed()),
    );
    let (code, stdout, _) = run_bare(&[&a, &b, "--format", "json"]);
    assert_eq!(code, 2, "{stdout}");
    let fleet: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    crate::support::doctor::validate(&fleet);
    assert_eq!(fleet["reports"].as_array().unwrap().len(), 2);
    assert_eq!(fleet["summary"]["unreachable"], 2);
    let (code, _, stderr) = run_bare(&[&a, "--targets", "/dev/null"]);
    assert_eq!(code, 3, "{stderr}");
    // The server log cannot be tied to one of several targets: refused, not guessed.
    let (code, _, stderr) = run_bare(&[&a, &b, "--server-log", "/dev/null"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--server-log"), "{stderr}");
    // Text closes with a summary of the fleet.
    let (_, stdout, stderr) = run_bare(&[&a, &b]);
    assert!(
        stdout.contains("Summary: 2 targets: 0 work, 0 fail, 2 unreachable"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "no progress bar in a pipe: {stderr:?}");
}

#[test]
fn several_targets_on_a_terminal_show_a_progress_bar() {
    // util-linux `script` gives the doctor a terminal.
    let command = format!(
        "{} 127.0.0.1:{} 127.0.0.1:{} --color never",
        binary().display(),
        free_port(),
        free_port()
    );
    let out = run_with_timeout(
        Command::new("script").args(["-qc", &command, "/dev/null"]),
        std::time::Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.contains("/2 targets"), "{}", out.stdout);
    assert!(out.stdout.contains("Summary: 2 targets"), "{}", out.stdout);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the doctor with its stdout a pipe whose reader is already gone (`| head` that
/// has exited).
fn into_closed_pipe(args: &[&str], home: &std::path::Path) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd)
        .env("HOME", home)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_never_panics_in_any_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let hba = crate::support::pki::write_file(
        home.path(),
        "pg_hba.conf",
        b"hostssl all all 0.0.0.0/0 scram-sha-256\n",
        0o644,
    );
    let pki_dir = home.path().join("pki");
    let closed = format!("127.0.0.1:{}", free_port());
    let targets = crate::support::pki::write_file(
        home.path(),
        "targets",
        format!("{closed}\n{closed}\n").as_bytes(),
        0o644,
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["--generate", "man"],
        vec!["--generate", "complete-bash"],
        vec!["--generate", "complete-zsh"],
        vec!["--generate", "complete-fish"],
        vec!["explain", "server_cert_expired"],
        vec!["explain", "--list"],
        vec!["explain", "--list", "--format", "json"],
        vec![
            "pki",
            pki_dir.to_str().unwrap(),
            "--server-name",
            "db.example.com",
        ],
        vec!["hba", "lint", hba.to_str().unwrap()],
        vec!["hba", "lint", "--format", "json", hba.to_str().unwrap()],
        vec![&closed, "--timeout", "3"],
        vec![&closed, "--timeout", "3", "--format", "json"],
        vec![
            "--targets",
            targets.to_str().unwrap(),
            "--timeout",
            "3",
            "--format",
            "junit",
        ],
        vec!["demo"],
    ];
    for args in cases {
        let (code, stderr) = into_closed_pipe(&args, home.path());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(code, 101, "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn format_is_honoured_or_refused_on_every_subcommand() {
    let home = tempfile::tempdir().unwrap();
    for (args, allowed) in [
        (vec!["pki", "/nonexistent/pki"], vec!["text"]),
        (vec!["demo"], vec!["text"]),
        (vec!["explain", "server_cert_expired"], vec!["text", "json"]),
        (
            vec!["hba", "lint", "/nonexistent/pg_hba.conf"],
            vec!["text", "json"],
        ),
    ] {
        for format in ["json", "ndjson", "junit", "prometheus"] {
            if allowed.contains(&format) {
                continue;
            }
            let mut full = args.clone();
            full.extend(["--format", format]);
            let (code, stdout, stderr) = run_bare(&full);
            assert_eq!(code, 3, "{full:?}: {stdout}{stderr}");
            assert!(
                stderr.contains(&format!("--format {format} is not one of them")),
                "{full:?}: {stderr}"
            );
        }
    }
    drop(home);
}

#[test]
fn a_unix_socket_failure_has_its_own_code() {
    let home = tempfile::tempdir().unwrap();
    let socket_dir = home.path().join("no-server-here");
    std::fs::create_dir(&socket_dir).unwrap();
    let target = format!("host={} port=5432 user=postgres", socket_dir.display());
    let run = run_doctor(&[&target, "--format", "json"], home.path(), None, &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let finding = run.expect_finding("socket_connect_failed", "error");
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains(".s.PGSQL.5432"),
        "{finding}"
    );
    assert!(
        run.finding("tcp_connect_failed").is_none(),
        "{}",
        run.stdout
    );
}

#[test]
fn a_silent_admin_server_stays_inside_the_deadlines() {
    let home = tempfile::tempdir().unwrap();
    // Accepts (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
        silent.local_addr().unwrap().port()
    );
    let closed = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let run = run_doctor(
        &[&closed, "--admin", &admin, "--timeout", "3"],
        home.path(),
        None,
        &[],
    );
    let one = started.elapsed();
    assert!(
        one < std::time::Duration::from_secs(5),
        "one target took {one:?}: {}",
        run.stdout
    );

    let targets = crate::support::pki::write_file(
        home.path(),
        "targets",
        format!("{closed}\n{closed}\n").as_bytes(),
        0o644,
    );
    let started = std::time::Instant::now();
    let run = run_doctor(
        &[
            "--targets",
            targets.to_str().unwrap(),
            "--admin",
            &admin,
            "--timeout",
            "20",
            "--run-timeout",
            "3",
        ],
        home.path(),
        None,
        &[],
    );
    let fleet = started.elapsed();
    assert!(
        fleet < std::time::Duration::from_secs(6),
        "the run took {fleet:?}: {}",
        run.stdout
    );
    drop(silent);
}

//! The command line: usage errors, help, colour, multi-host and Unix-socket targets.

use std::process::Command;

use crate::support::doctor::{assert_agrees_with_psql, binary, run_doctor};
use crate::support::pg::{run_with_timeout, scrub_pg_env, tls_server, PgConfig, PgServer};
use crate::support::pki::Ca;

fn raw(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd).env("HOME", home.path()).args(args);
    let out = run_with_timeout(&mut cmd, std::time::Duration::from_secs(30));
    (
        out.status.and_then(|s| s.code()).unwrap_or(-1),
        out.stdout,
        out.stderr,
    )
}

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
        let (code, _, stderr) = raw(&[target]);
        assert_eq!(code, 3, "{target}: {stderr}");
        assert!(stderr.contains(message), "{target}: {stderr}");
    }
    let (code, _, stderr) = raw(&["h", "--format", "yaml"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn help_documents_exit_statuses() {
    let (code, stdout, _) = raw(&["--help"]);
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
    let (_, coloured, _) = raw(&[&target, "--color", "always"]);
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    let (_, plain, _) = raw(&[&target, "--color", "never"]);
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
    let (code, stdout, _) = raw(&[
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
    let (code, _, stderr) = raw(&["--targets", &bad.display().to_string()]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("bad-targets, line 2") && stderr.contains("invalid sslmode value"),
        "{stderr}"
    );
    let (code, _, stderr) = raw(&["--targets", "/nonexistent/targets"]);
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
    let (code, stdout, _) = raw(&[&a, &b, "--format", "json"]);
    assert_eq!(code, 2, "{stdout}");
    let fleet: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    crate::support::doctor::validate(&fleet);
    assert_eq!(fleet["reports"].as_array().unwrap().len(), 2);
    assert_eq!(fleet["summary"]["unreachable"], 2);
    let (code, _, stderr) = raw(&[&a, "--targets", "/dev/null"]);
    assert_eq!(code, 3, "{stderr}");
    // The server log cannot be tied to one of several targets: refused, not guessed.
    let (code, _, stderr) = raw(&[&a, &b, "--server-log", "/dev/null"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--server-log"), "{stderr}");
    // Text closes with a summary of the fleet.
    let (_, stdout, stderr) = raw(&[&a, &b]);
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

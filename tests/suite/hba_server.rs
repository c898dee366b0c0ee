//! Issue 4 against the real server: the line the doctor's evaluator picks (shown with --hba)
//! is the line the server logs ("Connection matched pg_hba.conf line N"), and hba lint
//! agrees with what the server refuses to load.

use crate::support::doctor::run_doctor;
use crate::support::pg::{tls_server, PgConfig, PgServer};
use crate::support::pki;

const PASSWORD: &str = "hba-test-pw-1";

fn server(hba: &str) -> PgServer {
    tls_server(PgConfig {
        hba: hba.into(),
        setup_sql: vec![
            format!("CREATE ROLE u1 LOGIN PASSWORD '{PASSWORD}'"),
            "CREATE DATABASE app".into(),
            "CREATE DATABASE \"app db\"".into(),
        ],
        ..Default::default()
    })
    .1
}

/// The line numbers the server logged for auth failures after `offset`.
fn logged_lines(pg: &PgServer, offset: usize) -> Vec<usize> {
    pg.log()[offset..]
        .lines()
        .filter_map(|l| l.split("Connection matched pg_hba.conf line ").nth(1))
        .filter_map(|rest| rest.split(':').next()?.trim().parse().ok())
        .collect()
}

/// Runs the doctor with a wrong password and --hba pointing at the server's own file;
/// returns (line the doctor names, lines the server logged).
fn compare(
    pg: &PgServer,
    db: &str,
    sslmode: &str,
) -> (Option<usize>, Vec<usize>, serde_json::Value) {
    let home = tempfile::tempdir().unwrap();
    let pass = pki::write_file(home.path(), "pgpass", b"*:*:*:u1:wrong-password\n", 0o600);
    let hba_path = pg.data_dir().join("pg_hba.conf");
    let offset = pg.log().len();
    let target = format!("host=localhost port={} user=u1 dbname='{db}'", pg.port);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            sslmode,
            "--format",
            "json",
            "--hba",
            &hba_path.display().to_string(),
            "--pg-version",
            &pg.version.to_string(),
        ],
        home.path(),
        Some(&pass),
        &[],
    );
    // The log line is written as the backend exits; give it a moment.
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = logged_lines(pg, offset);
        if !logged.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let finding = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "password_failed")
        .cloned()
        .unwrap_or_else(|| panic!("no password_failed:\n{}", run.stdout));
    let line = crate::support::doctor::evidence(&finding, "hba_line")
        .as_u64()
        .map(|n| n as usize);
    (line, logged, finding)
}

#[test]
fn quoting_continuation_ipv4_ipv6_samehost_and_ssl_order_match_the_server() {
    let hba = "\
host    all       u1 ::1/128       scram-sha-256
hostssl all       u1 127.0.0.1/32  scram-sha-256
host    \"app db\" u1 127.0.0.1/32  scram-sha-256
host    all       u1 \\
        samehost                   scram-sha-256
host    all       u1 127.0.0.1/32  scram-sha-256
";
    let pg = server(hba);
    for (db, sslmode, why) in [
        (
            "app db",
            "disable",
            "quoted database name, IPv6 line skipped, hostssl skipped",
        ),
        ("app", "disable", "continued samehost line"),
        ("app", "require", "hostssl line for TLS"),
    ] {
        let (doctor, server, finding) = compare(&pg, db, sslmode);
        assert_eq!(server.len(), 1, "{why}: server logged {server:?}");
        assert_eq!(
            doctor,
            Some(server[0]),
            "{why}: doctor named {doctor:?}, server logged {server:?}\n{finding}"
        );
    }
}

#[test]
fn ordering_with_reject_and_no_entry_near_misses() {
    let hba = "\
host    all  u1     127.0.0.1/32 reject
host    all  u1     127.0.0.1/32 scram-sha-256
hostssl app  other  127.0.0.1/32 scram-sha-256
";
    let pg = server(hba);
    let home = tempfile::tempdir().unwrap();
    let hba_path = pg.data_dir().join("pg_hba.conf").display().to_string();
    let target = format!("host=localhost port={} user=u1 dbname=app", pg.port);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "disable",
            "--format",
            "json",
            "--hba",
            &hba_path,
            "--pg-version",
            "15",
        ],
        home.path(),
        None,
        &[],
    );
    let f = run.expect_finding("hba_reject", "error");
    // Line 1 of the server's file is the harness's own `local all postgres trust`.
    assert_eq!(crate::support::doctor::evidence(f, "hba_line"), 2, "{f}");

    let target = format!("host=localhost port={} user=nobody dbname=app", pg.port);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "require",
            "--format",
            "json",
            "--hba",
            &hba_path,
            "--pg-version",
            "15",
        ],
        home.path(),
        None,
        &[],
    );
    let f = run.expect_finding("hba_no_entry", "error");
    assert!(
        crate::support::doctor::evidence(f, "near_miss")
            .as_str()
            .unwrap()
            .contains("user \"nobody\""),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("hostssl app nobody 127.0.0.1/32 scram-sha-256"),
        "{f}"
    );
}

#[test]
fn the_deciding_line_is_reported_for_a_working_connection() {
    let pg = server("hostssl all all 127.0.0.1/32 trust\n");
    let home = tempfile::tempdir().unwrap();
    let hba_path = pg.data_dir().join("pg_hba.conf").display().to_string();
    let target = format!("host=localhost port={} user=u1 dbname=app", pg.port);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "require",
            "--format",
            "json",
            "--hba",
            &hba_path,
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let f = run.expect_finding("hba_rule", "info");
    assert_eq!(crate::support::doctor::evidence(f, "hba_line"), 2);
}

#[test]
fn lint_agrees_with_what_the_server_refuses_to_load() {
    let pg = server("host all all 127.0.0.1/32 trust\n");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("hostssl all all 127.0.0.1/32 trust clientcert=1\n", true),
        ("host all all 127.0.0.1/32 cert\n", true),
        ("hostssl all all 127.0.0.1 trust\n", true),
        (
            "hostssl all all 127.0.0.1/32 trust clientcert=verify-full\n",
            false,
        ),
    ];
    for (i, (line, refused)) in cases.iter().enumerate() {
        let text = format!("local all postgres trust\n{line}");
        let file = pki::write_file(dir.path(), &format!("hba{i}.conf"), text.as_bytes(), 0o644);
        let lint = run_doctor(
            &[
                "hba",
                "lint",
                &file.display().to_string(),
                "--pg-version",
                "15",
                "--format",
                "json",
            ],
            dir.path(),
            None,
            &[],
        );
        let lint_refuses = lint.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "hba_parse_error");
        // The server's own parser: pg_hba_file_rules reads the file as it is on disk.
        pg.write_server_file("data/pg_hba.conf", text.as_bytes(), 0o600);
        let errors = pg.sql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL");
        let server_refuses = errors.trim() != "0";
        // clientcert values set no error text in pg_hba_file_rules (see the reference); the
        // reload is what refuses them.
        let reload_refused = {
            let offset = pg.log().len();
            pg.sql("SELECT pg_reload_conf()");
            std::thread::sleep(std::time::Duration::from_millis(300));
            pg.log()[offset..].contains("was not reloaded")
        };
        assert_eq!(lint_refuses, *refused, "lint on {line}: {}", lint.stdout);
        assert_eq!(
            server_refuses || reload_refused,
            *refused,
            "server on {line}"
        );
        assert_eq!(lint.code, if *refused { 1 } else { 0 }, "{line}");
    }
}

#[test]
fn lint_on_the_guides_examples() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str, extra: &[&str]| {
        let file = pki::write_file(dir.path(), "pg_hba.conf", text.as_bytes(), 0o644);
        let path = file.display().to_string();
        let mut args = vec!["hba", "lint", path.as_str(), "--format", "json"];
        args.extend_from_slice(extra);
        run_doctor(&args, dir.path(), None, &[])
    };
    let codes = |r: &crate::support::doctor::DoctorRun| -> Vec<String> {
        r.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    let r = run("hostssl all all 0.0.0.0/0 trust\n", &[]);
    assert_eq!(r.code, 1);
    assert!(
        codes(&r).contains(&"hba_insecure_trust".into()),
        "{:?}",
        codes(&r)
    );

    let r = run("hostssl all postgres 0.0.0.0/0 md5 clientcert=1\n", &[]);
    assert_eq!(r.code, 1);
    assert!(codes(&r).contains(&"hba_parse_error".into()));
    let r = run(
        "hostssl all postgres 0.0.0.0/0 md5 clientcert=1\n",
        &["--pg-version", "13"],
    );
    assert_eq!(r.code, 0);
    assert!(
        codes(&r).contains(&"hba_obsolete_clientcert".into())
            && codes(&r).contains(&"hba_weak_password_method".into()),
        "{:?}",
        codes(&r)
    );

    let r = run(
        "hostnossl all all 0.0.0.0/0 reject\nhostssl all all 0.0.0.0/0 cert map=ssl clientcert=1\n",
        &[],
    );
    assert_eq!(r.code, 1);
    let f = &r.json["findings"][0];
    assert_eq!(f["code"], "hba_parse_error");
    assert_eq!(crate::support::doctor::evidence(f, "line"), 2);

    let conf = pki::write_file(
        dir.path(),
        "postgresql.conf",
        b"ssl = on\nssl_ca_file = ''\n",
        0o644,
    );
    let ident = pki::write_file(
        dir.path(),
        "pg_ident.conf",
        b"other /^nocapture$ \\1\n",
        0o644,
    );
    let r = run(
        "hostssl all all 10.0.0.0/8 cert map=ssl\nhost all all 10.0.0.0/8 scram-sha-256\nhost app bob 10.1.0.0/16 md5\n",
        &["--conf", &conf.display().to_string(), "--ident", &ident.display().to_string()],
    );
    let c = codes(&r);
    for code in [
        "hba_cert_needs_ca",
        "ident_no_match",
        "hba_shadowed_rule",
        "hba_plaintext_allowed",
        "hba_weak_password_method",
    ] {
        assert!(c.contains(&code.to_string()), "{code} missing from {c:?}");
    }
}

#[test]
fn unreadable_hba_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_doctor(
        &["hba", "lint", "/nonexistent/pg_hba.conf"],
        dir.path(),
        None,
        &[],
    );
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("/nonexistent/pg_hba.conf"),
        "{}",
        r.stderr
    );
    let r = run_doctor(
        &["127.0.0.1:1", "--hba", "/nonexistent/pg_hba.conf"],
        dir.path(),
        None,
        &[],
    );
    assert_eq!(r.code, 3);
}

#[test]
fn server_log_reasons_are_quoted() {
    // Method password: the server logs "Password does not match" (SCRAM logs no detail).
    let pg = server("hostssl all u1 127.0.0.1/32 password\nhost all all 127.0.0.1/32 trust\n");
    let home = tempfile::tempdir().unwrap();
    let pass = pki::write_file(home.path(), "pgpass", b"*:*:*:u1:wrong-password\n", 0o600);
    let target = format!("host=localhost port={} user=u1 dbname=app", pg.port);
    let log = pg.log_path().display().to_string();
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "require",
            "--format",
            "json",
            "--server-log",
            &log,
        ],
        home.path(),
        Some(&pass),
        &[],
    );
    let f = run.expect_finding("server_log_reason", "info");
    assert_eq!(crate::support::doctor::evidence(f, "hba_line"), 2, "{f}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("Password does not match for user \"u1\""),
        "{f}"
    );
    let failed = run.expect_finding("password_failed", "error");
    assert!(
        crate::support::doctor::evidence(failed, "server_log")
            .as_str()
            .unwrap()
            .contains("Password does not match"),
        "{failed}"
    );
}

/// PostgreSQL 16+ logs `Connection matched file "F" line N: "..."`.
fn logged_file_lines(pg: &PgServer, offset: usize) -> Vec<(String, usize)> {
    pg.log()[offset..]
        .lines()
        .filter_map(|l| l.split("Connection matched file \"").nth(1))
        .filter_map(|rest| {
            let (file, after) = rest.split_once("\" line ")?;
            Some((
                file.to_string(),
                after.split(':').next()?.trim().parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn regex_and_include_match_the_postgresql_17_server() {
    let (_ca, pg) = tls_server(PgConfig {
        hba: "host all all 127.0.0.1/32 scram-sha-256\n".into(),
        setup_sql: vec![
            format!("CREATE ROLE u1 LOGIN PASSWORD '{PASSWORD}'"),
            format!("CREATE ROLE svc_reader LOGIN PASSWORD '{PASSWORD}'"),
            "CREATE DATABASE app_42".into(),
            "CREATE DATABASE other".into(),
        ],
        pg17: true,
        ..Default::default()
    });
    // The included file must exist before the server reads the rules that include it.
    pg.write_server_file(
        "data/extra.conf",
        b"# included\nhost all /^svc_ 127.0.0.1/32 scram-sha-256\n",
        0o600,
    );
    pg.write_hba_and_reload("include extra.conf\nhost /^app_[0-9]+$ all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n");
    let hba_path = pg.data_dir().join("pg_hba.conf").display().to_string();
    let home = tempfile::tempdir().unwrap();
    for (user, db, expect_file) in [
        ("svc_reader", "other", "extra.conf"),
        ("u1", "app_42", "pg_hba.conf"),
        ("u1", "other", "pg_hba.conf"),
    ] {
        let pass = pki::write_file(
            home.path(),
            "pgpass",
            format!("*:*:*:{user}:wrong\n").as_bytes(),
            0o600,
        );
        let offset = pg.log().len();
        let target = format!("host=localhost port={} user={user} dbname={db}", pg.port);
        let run = run_doctor(
            &[
                &target,
                "--sslmode",
                "disable",
                "--format",
                "json",
                "--hba",
                &hba_path,
            ],
            home.path(),
            Some(&pass),
            &[],
        );
        let mut logged = Vec::new();
        for _ in 0..50 {
            logged = logged_file_lines(&pg, offset);
            if !logged.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let f = run.expect_finding("password_failed", "error");
        assert_eq!(logged.len(), 1, "{user}/{db}: {logged:?}");
        let (file, line) = &logged[0];
        assert!(
            file.ends_with(expect_file),
            "{user}/{db}: server used {file}"
        );
        assert_eq!(
            crate::support::doctor::evidence(f, "hba_file")
                .as_str()
                .unwrap(),
            file,
            "{user}/{db}: {f}"
        );
        assert_eq!(
            crate::support::doctor::evidence(f, "hba_line")
                .as_u64()
                .unwrap(),
            *line as u64,
            "{user}/{db}: {f}"
        );
    }
}

#[test]
fn admin_reads_the_rules_and_warns_when_they_are_not_in_force() {
    let pg =
        server("hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    let home = tempfile::tempdir().unwrap();
    let admin = format!(
        "host={} port={} user=postgres dbname=postgres",
        pg.dir.display(),
        pg.port
    );
    let target = format!("host=localhost port={} user=u1 dbname=app", pg.port);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "require",
            "--format",
            "json",
            "--admin",
            &admin,
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let f = run.expect_finding("hba_rule", "info");
    assert_eq!(crate::support::doctor::evidence(f, "hba_line"), 2, "{f}");
    assert!(run.finding("hba_rules_stale").is_none(), "{}", run.stdout);

    // Edited on disk, not reloaded: the view shows the new file, the server runs the old rules.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pg.write_server_file("data/pg_hba.conf", b"local all postgres trust\nhost all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 cert\n", 0o600);
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "require",
            "--format",
            "json",
            "--admin",
            &admin,
        ],
        home.path(),
        None,
        &[],
    );
    run.expect_finding("hba_rules_stale", "warning");
    let f = run.expect_finding("hba_parse_error", "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("cert authentication is only supported on hostssl connections"),
        "{f}"
    );
    // The connection itself still works: the old rules are in force.
    assert_eq!(run.cell("require"), (Some(true), true, None));
}

#[test]
fn admin_without_the_right_to_read_the_rules() {
    let pg = server("host all all 127.0.0.1/32 trust\n");
    let home = tempfile::tempdir().unwrap();
    let admin = format!(
        "host=localhost port={} user=u1 dbname=app sslmode=disable",
        pg.port
    );
    let target = format!("host=localhost port={} user=u1 dbname=app", pg.port);
    let run = run_doctor(
        &[&target, "--format", "json", "--admin", &admin],
        home.path(),
        None,
        &[],
    );
    let f = run.expect_finding("admin_connection_failed", "warning");
    assert!(
        f["summary"].as_str().unwrap().contains("permission denied"),
        "{f}"
    );
}

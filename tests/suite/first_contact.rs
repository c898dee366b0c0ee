//! What a newcomer reads first: the headline states the diagnosis in the doctor's words,
//! a refusal of plaintext by a hostssl-only server is the configuration doing its job (no
//! fix that opens plaintext), a user taken from libpq's default is said to be one, and a
//! successful login says which authentication ran.

use crate::support::doctor::{evidence, run_doctor, DoctorRun};
use crate::support::pg::{tls_server, PgConfig, PgServer};
use crate::support::pki::write_file;

struct Setup {
    pg: PgServer,
    home: tempfile::TempDir,
    root: std::path::PathBuf,
}

fn hostssl_only(hba: &str) -> Setup {
    let (ca, pg) = tls_server(PgConfig {
        hba: hba.into(),
        setup_sql: vec!["create role app login password 'app-pw-19'".into()],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let root = write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    Setup { pg, home, root }
}

impl Setup {
    fn run(&self, conninfo: &str, extra: &[&str]) -> DoctorRun {
        let target = format!(
            "host=localhost port={} sslrootcert={} {conninfo}",
            self.pg.port,
            self.root.display()
        );
        let mut args = vec![target.as_str(), "--format", "json"];
        args.extend(extra);
        run_doctor(&args, self.home.path(), None, &[])
    }
}

#[test]
fn a_hostssl_only_refusal_of_plaintext_is_the_configuration_doing_its_job() {
    let setup = hostssl_only("hostssl all all 127.0.0.1/32 trust\n");
    let run = setup.run("user=app dbname=postgres", &["--sslmode", "verify-full"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let refusal = run.expect_finding("hba_no_entry", "info");
    assert!(
        refusal["fix"].is_null(),
        "no fix for a refusal that is intended: {refusal}"
    );
    let summary = refusal["summary"].as_str().unwrap();
    assert!(summary.contains("plaintext is refused"), "{summary}");
    assert!(summary.contains("only over TLS"), "{summary}");

    // With the file given, the doctor names the hostssl line and still suggests no
    // plaintext line.
    let hba = write_file(
        setup.home.path(),
        "pg_hba.conf",
        b"hostssl all all 127.0.0.1/32 trust\n",
        0o644,
    );
    let run = setup.run(
        "user=app dbname=postgres",
        &["--sslmode", "verify-full", "--hba", hba.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let refusal = run.expect_finding("hba_no_entry", "info");
    assert!(refusal["fix"].is_null(), "{refusal}");

    // sslmode=disable needs plaintext: then the fix says so, the TLS way first.
    let run = setup.run("user=app dbname=postgres", &["--sslmode", "disable"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let refusal = run.expect_finding("hba_no_entry", "error");
    let fix = refusal["fix"].as_str().unwrap();
    let hostssl = fix.find("`hostssl ").expect("the hostssl way");
    let host = fix
        .find("`host ")
        .expect("the plaintext line, for a client that needs it");
    assert!(hostssl < host, "{fix}");
    assert!(fix.contains("sslmode=disable"), "{fix}");
}

#[test]
fn a_user_from_libpqs_default_is_said_to_be_one() {
    let setup = hostssl_only("hostssl all all 127.0.0.1/32 trust\n");
    // No user: libpq takes the operating-system user, which has no role on this server.
    let run = setup.run("dbname=postgres", &["--sslmode", "verify-full"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let os_user = run.json["target"]["user"].as_str().unwrap().to_string();
    let headline = run.json["verdict"]["summary"].as_str().unwrap();
    assert!(headline.contains("No user was given"), "{headline}");
    assert!(headline.contains(&format!("\"{os_user}\"")), "{headline}");
    assert!(headline.contains("-U NAME"), "{headline}");
    // The TLS facts are still reported.
    assert!(
        run.json["tls"]["version"].is_string(),
        "{}",
        run.json["tls"]
    );
    assert!(!run.json["server_chain"].as_array().unwrap().is_empty());
}

#[test]
fn a_server_without_tls_is_worded_for_the_mode_requested() {
    let pg = crate::support::pg::PgServer::start(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let target = format!("host=127.0.0.1 port={} dbname=postgres", pg.port);
    let run = run_doctor(&[&target, "--format", "json"], home.path(), None, &[]);
    let news = run.expect_finding("server_ssl_unsupported", "warning");
    let summary = news["summary"].as_str().unwrap();
    assert!(!summary.contains("SSL was required"), "{summary}");
    assert!(
        summary.contains("sslmode=prefer connects without encryption"),
        "{summary}"
    );
    // Under require it is the headline.
    let run = run_doctor(
        &[&target, "--format", "json", "--sslmode", "require"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 1);
    let headline = run.json["verdict"]["summary"].as_str().unwrap();
    assert!(
        headline.contains("server does not support SSL"),
        "{headline}"
    );
}

#[test]
fn a_login_says_which_authentication_ran() {
    let setup = hostssl_only(
        "hostssl postgres app 127.0.0.1/32 scram-sha-256\nhostssl all all 127.0.0.1/32 trust\n",
    );
    let pass = write_file(setup.home.path(), "pgpass", b"*:*:*:app:app-pw-19\n", 0o600);
    let target = format!(
        "host=localhost port={} sslrootcert={} user=app dbname=postgres",
        setup.pg.port,
        setup.root.display()
    );
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        setup.home.path(),
        Some(&pass),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let login = run.expect_finding("authenticated", "info");
    assert!(
        evidence(login, "authentication")
            .as_str()
            .unwrap()
            .contains("SCRAM-SHA-256"),
        "{login}"
    );
    assert_eq!(evidence(login, "channel_binding"), true, "{login}");
    assert!(
        login["summary"]
            .as_str()
            .unwrap()
            .contains("channel binding"),
        "{login}"
    );

    // trust: no password was asked, and the report says so.
    let run = setup.run(
        "user=postgres dbname=postgres",
        &["--sslmode", "verify-full"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let login = run.expect_finding("authenticated", "info");
    assert!(
        login["summary"]
            .as_str()
            .unwrap()
            .contains("no password was asked"),
        "{login}"
    );
    // A refused login names the method that ran too.
    let wrong = write_file(setup.home.path(), "wrong", b"*:*:*:app:nope\n", 0o600);
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        setup.home.path(),
        Some(&wrong),
        &[],
    );
    let refused = run.expect_finding("password_failed", "error");
    assert!(
        evidence(refused, "authentication")
            .as_str()
            .unwrap()
            .contains("SCRAM"),
        "{refused}"
    );
}

/// The report as an 80×24 terminal shows it: run in a pseudo-terminal of 80 columns.
fn on_an_80_column_terminal(args: &[&str], home: &std::path::Path) -> String {
    on_an_80_column_terminal_with(args, home, "")
}

/// [`on_an_80_column_terminal`] with `VAR='value' ` assignments before the command.
fn on_an_80_column_terminal_with(args: &[&str], home: &std::path::Path, env: &str) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let command = format!(
        "stty cols 80 rows 24; {env}HOME='{}' NO_COLOR=1 '{}' {}",
        home.display(),
        crate::support::doctor::binary().display(),
        quoted.join(" ")
    );
    let mut script = std::process::Command::new("script");
    crate::support::pg::scrub_pg_env(&mut script).args(["-qec", &command, "/dev/null"]);
    let out = crate::support::pg::run_with_timeout(&mut script, std::time::Duration::from_secs(60));
    out.stdout.replace("\r\n", "\n")
}

#[test]
fn the_verdict_and_the_first_fix_are_on_the_last_screen_folded_to_the_terminal() {
    let setup = hostssl_only("hostssl all all 127.0.0.1/32 trust\n");
    let other = crate::support::pki::Ca::root("Some Other CA");
    let wrong_root = write_file(
        setup.home.path(),
        "other.crt",
        other.issued.cert_pem.as_bytes(),
        0o644,
    );
    let target = format!(
        "host=localhost port={} user=app dbname=postgres sslmode=verify-full sslrootcert={}",
        setup.pg.port,
        wrong_root.display()
    );
    let screen = on_an_80_column_terminal(&[&target], setup.home.path());
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines.len() > 24, "a whole report: {screen}");
    for line in &lines {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line:?}"
        );
    }
    // What the terminal still shows when the run ends: its last 24 lines.
    let last_screen = lines[lines.len().saturating_sub(23)..].join("\n");
    assert!(
        last_screen.contains("FAIL  sslmode=verify-full fails"),
        "{last_screen}"
    );
    assert!(last_screen.contains("fix first:"), "{last_screen}");
    assert!(
        last_screen.contains("pgtls-doctor explain server_cert_unknown_ca"),
        "{last_screen}"
    );

    // In a pipe the lines stay whole (grep, CI logs), and the closing lines are there too.
    let run = run_doctor(&[&target], setup.home.path(), None, &[]);
    assert!(
        run.stdout.lines().any(|l| l.chars().count() > 80),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("more:"),
        "{}",
        run.stdout
    );
}

/// The twenty failures people meet most, each run in an 80-column terminal: the last
/// screen (24 lines) holds the verdict and, where a finding has one, the fix to do first,
/// and no line is wider than the terminal.
#[test]
fn twenty_common_failures_end_with_the_verdict_and_the_fix_on_an_80_by_24_screen() {
    use crate::support::pki::{Ca, LeafSpec};
    let ca = Ca::root("Screen CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let mut expired_spec = LeafSpec::server("localhost", &["localhost"], &["127.0.0.1"]);
    expired_spec.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    expired_spec.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = ca.issue(&expired_spec);
    let hba = "hostssl app alice 127.0.0.1/32 scram-sha-256\n\
               hostssl certdb all 127.0.0.1/32 cert\n\
               hostssl all postgres 127.0.0.1/32 trust\n";
    let setup_sql = vec![
        "create role alice login password 'alice-pw'".into(),
        "create role bob login".into(),
        "create database app".into(),
        "create database certdb".into(),
    ];
    let main = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(leaf.pair()),
        ca_file: Some(ca.issued.cert_pem.clone()),
        hba: hba.into(),
        setup_sql,
        ..Default::default()
    });
    let stale = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(expired.pair()),
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let plain = PgServer::start(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let file = |name: &str, body: &str, mode: u32| {
        write_file(dir, name, body.as_bytes(), mode)
            .display()
            .to_string()
    };
    let root = file("root.crt", &ca.issued.cert_pem, 0o644);
    let other_ca = Ca::root("Another CA");
    let other_root = file("other.crt", &other_ca.issued.cert_pem, 0o644);
    let client = |name: &str, issuer: &Ca, cn: &str| {
        let issued = issuer.issue(&LeafSpec::client(cn));
        let (cert, key) = issued.pair();
        (
            file(&format!("{name}.crt"), &cert, 0o644),
            file(&format!("{name}.key"), &key, 0o600),
        )
    };
    let (bob_crt, bob_key) = client("bob", &ca, "bob");
    let (alice_crt, _) = client("alice", &ca, "alice");
    let (foreign_crt, foreign_key) = client("foreign", &other_ca, "alice");
    let mut old = LeafSpec::client("alice");
    old.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    old.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let old = ca.issue(&old);
    let (old_crt, old_key) = (
        file("old.crt", &old.pair().0, 0o644),
        file("old.key", &old.pair().1, 0o600),
    );
    let bad_pass = file("badpass", "*:*:*:alice:wrong\n", 0o600);
    let at = |pg: &PgServer, rest: &str| format!("host=localhost port={} {rest}", pg.port);
    let closed = crate::support::pg::free_port();
    let socket_dir = file("not-a-socket-dir", "", 0o644);
    // (what, target, variables for the doctor)
    let cases: Vec<(&str, String, String)> = vec![
        ("root file of another CA", at(&main, &format!("user=postgres sslrootcert={other_root}")), String::new()),
        ("no root file", at(&main, "user=postgres"), String::new()),
        ("host name not in the certificate", format!("host=db.example.com hostaddr=127.0.0.1 port={} user=postgres sslrootcert={root}", main.port), String::new()),
        ("wrong password", at(&main, &format!("user=alice dbname=app sslrootcert={root}")), format!("PGPASSFILE='{bad_pass}' ")),
        ("no password", at(&main, &format!("user=alice dbname=app sslrootcert={root}")), String::new()),
        ("no such role", at(&main, &format!("user=nobody dbname=app sslrootcert={root}")), String::new()),
        ("no pg_hba.conf line", at(&main, &format!("user=bob dbname=app sslrootcert={root}")), String::new()),
        ("no such database", at(&main, &format!("user=postgres dbname=nodb sslrootcert={root}")), String::new()),
        ("sslmode=disable on a hostssl-only server", at(&main, &format!("user=postgres sslmode=disable sslrootcert={root}")), String::new()),
        ("closed port", format!("host=127.0.0.1 port={closed} user=postgres"), String::new()),
        ("client certificate CN is not the user", at(&main, &format!("user=alice dbname=certdb sslrootcert={root} sslcert={bob_crt} sslkey={bob_key}")), String::new()),
        ("no client certificate", at(&main, &format!("user=alice dbname=certdb sslrootcert={root}")), String::new()),
        ("client certificate from another CA", at(&main, &format!("user=alice dbname=certdb sslrootcert={root} sslcert={foreign_crt} sslkey={foreign_key}")), String::new()),
        ("expired client certificate", at(&main, &format!("user=alice dbname=certdb sslrootcert={root} sslcert={old_crt} sslkey={old_key}")), String::new()),
        ("client key of another certificate", at(&main, &format!("user=alice dbname=certdb sslrootcert={root} sslcert={alice_crt} sslkey={bob_key}")), String::new()),
        ("expired server certificate", at(&stale, &format!("user=postgres sslrootcert={root}")), String::new()),
        ("server without TLS at require", format!("host=127.0.0.1 port={} user=postgres sslmode=require", plain.port), String::new()),
        ("no user given", at(&main, &format!("dbname=app sslrootcert={root}")), String::new()),
        ("sslrootcert=system with a private CA", at(&main, "user=postgres sslrootcert=system"), String::new()),
        ("no server on the Unix socket", format!("host={socket_dir}-missing port=5432 user=postgres"), String::new()),
    ];
    assert_eq!(cases.len(), 20);
    for (what, target, env) in cases {
        let mut args = vec![target.clone(), "--sslmode".into()];
        args.push(if target.contains("sslmode=") {
            target
                .split("sslmode=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        } else {
            "verify-full".into()
        });
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let screen = on_an_80_column_terminal_with(&args, dir, &env);
        let lines: Vec<&str> = screen.lines().collect();
        for line in &lines {
            assert!(
                line.chars().count() <= 80,
                "{what}: wider than 80: {line:?}"
            );
        }
        let last = lines[lines.len().saturating_sub(23)..].join("\n");
        assert!(
            last.contains("FAIL  "),
            "{what}: no verdict on the last screen:\n{last}"
        );
        assert!(
            last.contains("fix first:"),
            "{what}: no fix on the last screen:\n{last}"
        );
    }
}

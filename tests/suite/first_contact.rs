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
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let command = format!(
        "stty cols 80 rows 24; HOME='{}' NO_COLOR=1 '{}' {}",
        home.display(),
        crate::support::doctor::binary().display(),
        quoted.join(" ")
    );
    let out = crate::support::pg::run_with_timeout(
        std::process::Command::new("script").args(["-qec", &command, "/dev/null"]),
        std::time::Duration::from_secs(60),
    );
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

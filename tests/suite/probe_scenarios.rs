//! Issue 2 scenarios against a real PostgreSQL server with a PKI generated at test time.
//! Every scenario also runs the real psql at all six sslmodes and asserts the doctor's
//! cells agree with what psql actually did.

use std::path::{Path, PathBuf};

use crate::support::doctor::{assert_agrees_with_psql, run_doctor, DoctorRun};
use crate::support::pg::{PgConfig, PgServer};
use crate::support::pki::{self, chain_pem, Ca, Issued, LeafSpec};
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "correct-horse-battery-9";

const HBA: &str = "\
host      rejected  all     127.0.0.1/32 reject
hostssl   sslonly   all     127.0.0.1/32 trust
hostnossl plainonly all     127.0.0.1/32 trust
host      all       pwuser  127.0.0.1/32 scram-sha-256
host      app       alice   127.0.0.1/32 trust
host      app       ghost   127.0.0.1/32 trust
host      nosuchdb  alice   127.0.0.1/32 trust
";

fn server(cert_chain_pem: String, key_pem: String) -> PgServer {
    PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some((cert_chain_pem, key_pem)),
        hba: HBA.into(),
        setup_sql: setup_sql(),
        ..Default::default()
    })
}

fn setup_sql() -> Vec<String> {
    vec![
        "CREATE ROLE alice LOGIN".into(),
        format!("CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'"),
        "CREATE DATABASE app".into(),
        "CREATE DATABASE sslonly".into(),
        "CREATE DATABASE plainonly".into(),
        "CREATE DATABASE rejected".into(),
    ]
}

/// A server whose certificate has the validity `edit` gives it.
fn server_with_dates(edit: impl FnOnce(&mut LeafSpec)) -> (Ca, PgServer) {
    let ca = Ca::root("Doctor Test Root CA");
    let mut spec = LeafSpec::server("localhost", &["localhost"], &["127.0.0.1"]);
    edit(&mut spec);
    let leaf = ca.issue(&spec);
    let pg = server(leaf.cert_pem.clone(), leaf.key_pem.clone());
    (ca, pg)
}

fn good_server() -> (Ca, PgServer) {
    let ca = Ca::root("Doctor Test Root CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = server(leaf.cert_pem.clone(), leaf.key_pem.clone());
    (ca, pg)
}

/// A throwaway HOME, optionally with ~/.postgresql/root.crt.
fn home_with_root(root_pem: Option<&str>) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    if let Some(pem) = root_pem {
        let dir = home.path().join(".postgresql");
        std::fs::create_dir_all(&dir).unwrap();
        pki::write_file(&dir, "root.crt", pem.as_bytes(), 0o644);
    }
    home
}

fn passfile(home: &Path, password: &str) -> PathBuf {
    pki::write_file(
        home,
        "pgpass",
        format!("*:*:*:pwuser:{password}\n").as_bytes(),
        0o600,
    )
}

/// Runs the doctor (JSON) and psql at all six modes on the same settings.
fn diagnose(
    pg: &PgServer,
    conninfo: &str,
    sslmode: &str,
    home: &Path,
    pass: Option<&Path>,
) -> DoctorRun {
    let target = format!("{conninfo} port={}", pg.port);
    let run = run_doctor(
        &[&target, "--sslmode", sslmode, "--format", "json"],
        home,
        pass,
        &[],
    );
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home, pass);
    run
}

fn cells(run: &DoctorRun) -> Vec<(Option<bool>, bool)> {
    crate::support::doctor::MODES
        .iter()
        .map(|m| {
            let (ok, enc, _) = run.cell(m);
            (ok, enc)
        })
        .collect()
}

#[test]
fn verify_full_by_name_succeeds_with_default_root_file() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        cells(&run),
        vec![
            (Some(true), false),
            (Some(true), false),
            (Some(true), true),
            (Some(true), true),
            (Some(true), true),
            (Some(true), true)
        ]
    );
    assert!(
        run.finding("server_cert_rustls_differs").is_none(),
        "{}",
        run.stdout
    );
    let session = run.expect_finding("tls_session", "info");
    assert_eq!(
        crate::support::doctor::evidence(session, "server_sees_ssl"),
        true
    );
    assert!(run.json["probe"]["connections"].as_u64().unwrap() <= 2);
    // The settings say where the root file came from.
    let settings = run.json["target"]["settings"].as_array().unwrap();
    let root = settings
        .iter()
        .find(|s| s["name"] == "sslrootcert")
        .unwrap();
    assert!(
        root["source"]
            .as_str()
            .unwrap()
            .contains("~/.postgresql/root.crt"),
        "{root}"
    );
}

#[test]
fn verify_full_by_ip_address_uses_the_ip_san() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=127.0.0.1 user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.cell("verify-full"), (Some(true), true, None));
}

#[test]
fn hostname_mismatch_names_the_certificate_names() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=db.wrong.example hostaddr=127.0.0.1 user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_hostname_mismatch", "error");
    assert_eq!(
        crate::support::doctor::evidence(f, "host"),
        "db.wrong.example"
    );
    assert_eq!(
        crate::support::doctor::evidence(f, "certificate_names"),
        "localhost, 127.0.0.1"
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("(and 1 other name)"),
        "{f}"
    );
    assert_eq!(run.cell("verify-ca"), (Some(true), true, None));
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_cert_hostname_mismatch")
    );
}

#[test]
fn expired_server_certificate_and_prefer_fallback() {
    let now = OffsetDateTime::now_utc();
    let (ca, pg) = server_with_dates(|s| {
        s.not_before = now - Duration::days(400);
        s.not_after = now - Duration::days(3);
    });
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_expired", "error");
    assert!(f["summary"].as_str().unwrap().contains("days ago"), "{f}");
    assert!(crate::support::doctor::evidence(f, "not_after").is_string());
    // The root file turns verification on for prefer too, which then falls back to plaintext.
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
    assert_eq!(
        run.cell("require").2.as_deref(),
        Some("server_cert_expired")
    );
}

#[test]
fn unknown_ca_names_the_missing_issuer() {
    let (ca, pg) = good_server();
    let other = Ca::root("Some Other CA");
    let home = home_with_root(Some(&other.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-ca",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_unknown_ca", "error");
    assert!(
        crate::support::doctor::evidence(f, "missing_issuer")
            .as_str()
            .unwrap()
            .contains("Doctor Test Root CA"),
        "{f}"
    );
    assert!(
        crate::support::doctor::evidence(f, "root_file_holds")
            .as_str()
            .unwrap()
            .contains("Some Other CA"),
        "{f}"
    );
    let _ = ca;
}

#[test]
fn root_file_with_only_the_intermediate_is_a_partial_chain() {
    let root = Ca::root("Doctor Root");
    let inter = root.intermediate("Doctor Intermediate");
    let leaf = inter.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = server(chain_pem(&[&leaf, &inter.issued]), leaf.key_pem.clone());
    let home = home_with_root(Some(&inter.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_unknown_ca", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("partial chains"),
        "{f}"
    );
    assert!(f["fix"].as_str().unwrap().contains("Doctor Root"), "{f}");

    // With the real root the same chain verifies.
    let good_home = home_with_root(Some(&root.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        good_home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn missing_root_file_fails_verify_modes_only() {
    let (_ca, pg) = good_server();
    let home = home_with_root(None);
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("root_cert_missing", "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains(".postgresql/root.crt"),
        "{f}"
    );
    assert_eq!(run.cell("require"), (Some(true), true, None));
    assert_eq!(
        run.cell("verify-ca").2.as_deref(),
        Some("root_cert_missing")
    );
}

#[test]
fn ssl_off_with_require_and_with_prefer() {
    let pg = PgServer::start(PgConfig {
        ssl: false,
        hba: HBA.into(),
        setup_sql: setup_sql(),
        ..Default::default()
    });
    let home = home_with_root(None);
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "require",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    run.expect_finding("server_ssl_unsupported", "error");
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
    assert_eq!(
        run.json["probe"]["connections"], 1,
        "after 'N' libpq reuses the socket"
    );

    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "prefer",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.expect_finding("server_ssl_unsupported", "warning");
    run.expect_finding("plaintext_fallback", "warning");
}

#[test]
fn require_with_a_root_file_verifies_like_verify_ca() {
    let (_ca, pg) = good_server();
    let other = Ca::root("Some Other CA");
    let home = home_with_root(Some(&other.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "require",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_unknown_ca", "error");
    assert!(
        crate::support::doctor::evidence(f, "why_verified")
            .as_str()
            .unwrap()
            .contains("root certificate file exists"),
        "{f}"
    );
    assert_eq!(
        run.cell("require").2.as_deref(),
        Some("server_cert_unknown_ca")
    );
}

#[test]
fn prefer_falls_back_to_plaintext_after_a_verification_failure() {
    let (_ca, pg) = good_server();
    let other = Ca::root("Some Other CA");
    let home = home_with_root(Some(&other.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "prefer",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
    run.expect_finding("plaintext_fallback", "warning");
    run.expect_finding("server_cert_unknown_ca", "warning");
}

#[test]
fn guides_self_signed_certificate_copied_to_root_crt_passes_verify_full() {
    let cert: Issued = pki::self_signed_server("localhost");
    let pg = server(cert.cert_pem.clone(), cert.key_pem.clone());
    let home = home_with_root(Some(&cert.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn no_hba_entry_in_plaintext_and_in_tls() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    // hostssl only: plaintext has no entry.
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=sslonly",
        "disable",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("hba_no_entry", "error");
    assert_eq!(
        crate::support::doctor::evidence(f, "encryption"),
        "no encryption"
    );
    assert_eq!(run.cell("require"), (Some(true), true, None));
    // hostnossl only: TLS has no entry, prefer falls back to plaintext.
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=plainonly",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("hba_no_entry", "error");
    assert_eq!(
        crate::support::doctor::evidence(f, "encryption"),
        "SSL encryption"
    );
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
}

#[test]
fn hba_reject_role_missing_database_missing() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    for (conninfo, code) in [
        ("host=localhost user=alice dbname=rejected", "hba_reject"),
        ("host=localhost user=ghost dbname=app", "role_missing"),
        (
            "host=localhost user=alice dbname=nosuchdb",
            "database_missing",
        ),
    ] {
        let run = diagnose(&pg, conninfo, "verify-full", home.path(), None);
        assert_eq!(run.code, 1, "{conninfo}");
        let f = run.expect_finding(code, "error");
        assert!(
            crate::support::doctor::evidence(f, "sqlstate").is_string(),
            "{f}"
        );
        assert_eq!(run.cell("verify-full").2.as_deref(), Some(code));
    }
}

#[test]
fn password_required_failed_and_ok_through_a_passfile() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let conninfo = "host=localhost user=pwuser dbname=app";

    let run = diagnose(&pg, conninfo, "verify-full", home.path(), None);
    assert_eq!(run.code, 1);
    run.expect_finding("password_required", "error");

    let wrong = passfile(home.path(), "not-the-password");
    let run = diagnose(&pg, conninfo, "verify-full", home.path(), Some(&wrong));
    assert_eq!(run.code, 1);
    run.expect_finding("password_failed", "error");

    let right = passfile(home.path(), PASSWORD);
    let run = diagnose(&pg, conninfo, "verify-full", home.path(), Some(&right));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let settings = run.json["target"]["settings"].as_array().unwrap();
    let pw = settings.iter().find(|s| s["name"] == "password").unwrap();
    assert!(
        pw["source"].as_str().unwrap().contains("password file"),
        "{pw}"
    );
    assert!(
        !run.stdout.contains(PASSWORD),
        "the password leaked into the report"
    );

    // At verify-full the plaintext connection is never used by libpq: the doctor withholds
    // the password there, so disable and allow are undetermined, not guessed.
    assert_eq!(
        run.cell("disable").2.as_deref(),
        Some("credentials_withheld")
    );
    assert_eq!(run.cell("disable").0, None);
}

#[test]
fn text_output_leads_with_the_verdict_and_never_shows_the_password() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let target = format!(
        "postgresql://pwuser:{PASSWORD}@localhost:{}/app?sslmode=verify-full",
        pg.port
    );
    let run = run_doctor(&[&target], home.path(), None, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.lines().nth(2).unwrap().starts_with("OK"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("verify-full"));
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    assert!(
        !run.stdout.contains("\u{1b}["),
        "NO_COLOR must disable colour"
    );
}

fn home_with(root_pem: &str, crl_pem: Option<&str>) -> tempfile::TempDir {
    let home = home_with_root(Some(root_pem));
    if let Some(crl) = crl_pem {
        pki::write_file(
            &home.path().join(".postgresql"),
            "root.crl",
            crl.as_bytes(),
            0o644,
        );
    }
    home
}

#[test]
fn revoked_server_certificate_via_the_default_root_crl() {
    let ca = Ca::root("Doctor Test Root CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = server(leaf.cert_pem.clone(), leaf.key_pem.clone());
    let home = home_with(&ca.issued.cert_pem, Some(&ca.crl_pem(&[&leaf])));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-ca",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    run.expect_finding("server_cert_revoked", "error");

    // A CRL that revokes nothing lets the same chain through.
    let home = home_with(&ca.issued.cert_pem, Some(&ca.crl_pem(&[])));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-ca",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn a_crl_for_the_root_alone_breaks_a_chain_with_an_intermediate() {
    let root = Ca::root("Doctor Root");
    let inter = root.intermediate("Doctor Intermediate");
    let leaf = inter.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = server(chain_pem(&[&leaf, &inter.issued]), leaf.key_pem.clone());
    let home = home_with(&root.issued.cert_pem, Some(&root.crl_pem(&[])));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("crl_incomplete", "error");
    assert!(f["summary"].as_str().unwrap().contains("CRL"), "{f}");
}

#[test]
fn server_certificate_not_yet_valid() {
    let now = OffsetDateTime::now_utc();
    let (ca, pg) = server_with_dates(|s| {
        s.not_before = now + Duration::days(2);
        s.not_after = now + Duration::days(300);
    });
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_cert_not_yet_valid", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("in 1 day")
            || f["summary"].as_str().unwrap().contains("in 2 days"),
        "{f}"
    );
}

#[test]
fn expiring_soon_is_a_warning_that_keeps_exit_zero() {
    let now = OffsetDateTime::now_utc();
    let (ca, pg) = server_with_dates(|s| {
        s.not_after = now + Duration::days(10);
    });
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.expect_finding("server_cert_expiring_soon", "warning");
    let run = run_doctor(
        &[
            &format!("host=localhost user=alice dbname=app port={}", pg.port),
            "--warn-days",
            "5",
            "--format",
            "json",
        ],
        home.path(),
        None,
        &[],
    );
    assert!(run.finding("server_cert_expiring_soon").is_none());
}

#[test]
fn md5_cleartext_and_connection_limits() {
    let (ca, pg) = good_server();
    pg.sql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-secret-1'");
    pg.sql("CREATE ROLE clearuser LOGIN PASSWORD 'clear-secret-1'");
    pg.sql("CREATE ROLE limited LOGIN CONNECTION LIMIT 0");
    pg.write_hba_and_reload(&format!(
        "host all md5user 127.0.0.1/32 md5\nhost all clearuser 127.0.0.1/32 password\n{HBA}host app limited 127.0.0.1/32 trust\n"
    ));
    let home = home_with_root(Some(&ca.issued.cert_pem));

    let pass = pki::write_file(
        home.path(),
        "pgpass-md5",
        b"*:*:*:md5user:md5-secret-1\n",
        0o600,
    );
    let run = diagnose(
        &pg,
        "host=localhost user=md5user dbname=app",
        "prefer",
        home.path(),
        Some(&pass),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);

    // Method "password" over TLS is sent; in plaintext it is withheld without the flag.
    let pass = pki::write_file(
        home.path(),
        "pgpass-clear",
        b"*:*:*:clearuser:clear-secret-1\n",
        0o600,
    );
    let run = diagnose(
        &pg,
        "host=localhost user=clearuser dbname=app",
        "prefer",
        home.path(),
        Some(&pass),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let target = format!("host=localhost user=clearuser dbname=app port={}", pg.port);
    let run = run_doctor(
        &[&target, "--sslmode", "disable", "--format", "json"],
        home.path(),
        Some(&pass),
        &[],
    );
    assert_eq!(run.cell("disable").0, None);
    assert_eq!(
        run.cell("disable").2.as_deref(),
        Some("credentials_withheld")
    );
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "disable",
            "--format",
            "json",
            "--allow-cleartext-password",
        ],
        home.path(),
        Some(&pass),
        &[],
    );
    assert_eq!(run.cell("disable"), (Some(true), false, None));

    let run = diagnose(
        &pg,
        "host=localhost user=limited dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 1);
    run.expect_finding("too_many_connections", "error");
}

#[test]
fn sslrootcert_system_uses_ssl_cert_file_and_implies_verify_full() {
    let (ca, pg) = good_server();
    let home = home_with_root(None);
    let bundle = pki::write_file(
        home.path(),
        "bundle.pem",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let target = format!(
        "host=localhost port={} user=alice dbname=app sslrootcert=system",
        pg.port
    );
    let bundle_s = bundle.display().to_string();
    let run = run_doctor(
        &[&target, "--format", "json"],
        home.path(),
        None,
        &[("SSL_CERT_FILE", &bundle_s)],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["target"]["sslmode"], "verify-full");
    // libpq 15 (psql here) reads "system" as a file name; libpq 16+ behaves as the doctor.
}

#[test]
fn the_clock_is_injected_for_what_if_questions() {
    let (ca, pg) = good_server();
    let home = home_with_root(Some(&ca.issued.cert_pem));
    let target = format!("host=localhost user=alice dbname=app port={}", pg.port);
    // The server certificate is valid for a year: judged 400 days from now, it has expired.
    let later = (OffsetDateTime::now_utc() + Duration::days(400))
        .unix_timestamp()
        .to_string();
    let run = run_doctor(
        &[
            &target,
            "--sslmode",
            "verify-full",
            "--format",
            "json",
            "--now",
            &later,
        ],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.expect_finding("server_cert_expired", "error");
}

#[test]
fn a_p521_server_key_is_handled_as_libpq_handles_it() {
    // ring has no P-521; the doctor verifies P-521 handshake signatures through OpenSSL.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |args: &[&str]| {
        let out = crate::support::pg::run_with_timeout(
            std::process::Command::new("openssl")
                .current_dir(d)
                .args(args),
            std::time::Duration::from_secs(60),
        );
        assert!(out.success(), "openssl {args:?}: {}", out.stderr);
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=P521 Root",
    ]);
    sh(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-nodes",
        "-keyout",
        "server.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "server.csr",
    ]);
    std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "ext",
        "-out",
        "server.crt",
    ]);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let pg = server(read("server.crt"), read("server.key"));
    let home = home_with_root(Some(&read("ca.crt")));
    let run = diagnose(
        &pg,
        "host=localhost user=alice dbname=app",
        "verify-full",
        home.path(),
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["server_chain"][0]["key"], "EC P-521");
    assert_eq!(run.cell("verify-full"), (Some(true), true, None));
}

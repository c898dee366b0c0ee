//! Proves the integration-test harness itself: rcgen PKI + a real
//! PostgreSQL server + the real psql agree on the basics.

use crate::support::pg::{PgConfig, PgServer};
use crate::support::pki::{self, Ca, LeafSpec};
use crate::support::psql::run_psql;

#[test]
fn tls_server_verify_full_ok_and_plaintext_rejected_by_hba() {
    let ca = Ca::root("pgtls-doctor Test Root CA");
    let server_cert = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(server_cert.pair()),
        hba: "hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n".into(),
        setup_sql: vec![
            "CREATE ROLE alice LOGIN".into(),
            "CREATE DATABASE app OWNER alice".into(),
        ],
        ..Default::default()
    });

    let home = tempfile::tempdir().unwrap();
    let root = pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );

    let ok = run_psql(
        &pg.psql_path(),
        &format!(
            "host=localhost port={} user=alice dbname=app sslmode=verify-full sslrootcert={}",
            pg.port,
            root.display()
        ),
        home.path(),
        None,
    );
    assert!(
        ok.ok,
        "verify-full should connect: {}\nserver log:\n{}",
        ok.stderr,
        pg.log()
    );
    assert_eq!(ok.encrypted, Some(true));

    let plain = run_psql(
        &pg.psql_path(),
        &pg.conninfo("user=alice dbname=app sslmode=disable"),
        home.path(),
        None,
    );
    assert!(!plain.ok, "sslmode=disable must be rejected");
    assert_eq!(plain.encrypted, None);
    assert!(
        plain.stderr.contains("pg_hba.conf rejects"),
        "unexpected stderr: {}",
        plain.stderr
    );
    assert!(pg
        .log()
        .contains("connection authorized: user=alice database=app"));
}

#[test]
fn ssl_off_server_fails_sslmode_require() {
    let pg = PgServer::start(PgConfig {
        ssl: false,
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();

    let req = run_psql(
        &pg.psql_path(),
        &pg.conninfo("user=postgres dbname=postgres sslmode=require"),
        home.path(),
        None,
    );
    assert!(!req.ok);
    assert!(
        req.stderr.contains("server does not support SSL"),
        "unexpected stderr: {}",
        req.stderr
    );

    // And the plaintext path works, unencrypted.
    let plain = run_psql(
        &pg.psql_path(),
        &pg.conninfo("user=postgres dbname=postgres sslmode=prefer"),
        home.path(),
        None,
    );
    assert!(plain.ok, "{}", plain.stderr);
    assert_eq!(plain.encrypted, Some(false));
}

/// The harness relies on libpq finding `~/.postgresql/*` under `$HOME`
/// (run_psql's `home`), not under the passwd entry's home directory.
#[test]
fn psql_uses_home_for_dot_postgresql() {
    let ca = Ca::root("pgtls-doctor Test Root CA");
    let server_cert = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(server_cert.pair()),
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).unwrap();

    // No ~/.postgresql/root.crt: verify-ca has nothing to verify with.
    let missing = run_psql(
        &pg.psql_path(),
        &pg.conninfo("user=postgres dbname=postgres sslmode=verify-ca"),
        home.path(),
        None,
    );
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains(&dot.join("root.crt").display().to_string()),
        "libpq did not look in $HOME/.postgresql: {}",
        missing.stderr
    );

    pki::write_file(&dot, "root.crt", ca.issued.cert_pem.as_bytes(), 0o644);
    let found = run_psql(
        &pg.psql_path(),
        &pg.conninfo("user=postgres dbname=postgres sslmode=verify-ca"),
        home.path(),
        None,
    );
    assert!(found.ok, "{}", found.stderr);
    assert_eq!(found.encrypted, Some(true));
}

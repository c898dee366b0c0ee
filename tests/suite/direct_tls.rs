//! Issue 5: direct TLS (sslnegotiation=direct, PostgreSQL 17) against a real PostgreSQL 17
//! server and a PostgreSQL 15 server, compared with libpq 17's psql.

use crate::support::doctor::{assert_agrees_with_psql, run_doctor};
use crate::support::pg::{pg17_bin_dir, tls_server, PgConfig, PgServer};
use crate::support::pki::{self, Ca};

fn server(pg17: bool) -> (Ca, PgServer) {
    tls_server(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        pg17,
        ..Default::default()
    })
}

#[test]
fn direct_tls_to_postgresql_17_negotiates_alpn() {
    let (ca, pg) = server(true);
    assert_eq!(pg.version, 17);
    let home = tempfile::tempdir().unwrap();
    let root = pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let target = format!(
        "host=localhost port={} user=postgres dbname=postgres sslrootcert={} sslnegotiation=direct",
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
    assert_eq!(run.json["tls"]["alpn"], "postgresql");
    assert_eq!(run.json["probe"]["connections"], 1);
    assert_eq!(
        run.cell("prefer").2.as_deref(),
        Some("direct_tls_weak_sslmode")
    );
    // libpq 17's psql agrees at all six modes (it refuses the weak ones as well).
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home.path(), None);
}

#[test]
fn direct_tls_to_postgresql_15_is_unsupported_and_says_what_the_server_answered() {
    let (ca, pg) = server(false);
    let home = tempfile::tempdir().unwrap();
    let root = pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let target = format!(
        "host=localhost port={} user=postgres dbname=postgres sslrootcert={} sslnegotiation=direct",
        pg.port,
        root.display()
    );
    let run = run_doctor(
        &[&target, "--sslmode", "require", "--format", "json"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("direct_tls_unsupported", "error");
    assert!(
        crate::support::doctor::evidence(f, "ssl_request_answer")
            .as_str()
            .unwrap()
            .contains("'S'"),
        "{f}"
    );
    assert!(run.json["probe"]["connections"].as_u64().unwrap() <= 2);
    assert_agrees_with_psql(
        &run,
        &pg17_bin_dir().join("psql"),
        &target,
        home.path(),
        None,
    );
    assert!(pg.log().contains("invalid length of startup packet"));
}

#[test]
fn postgres_negotiation_to_postgresql_17_with_libpq_17() {
    let (ca, pg) = server(true);
    let home = tempfile::tempdir().unwrap();
    let root = pki::write_file(
        home.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let target = format!(
        "host=localhost port={} user=postgres dbname=postgres sslrootcert={}",
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
    // A PostgreSQL 17 server answers our ALPN on the SSLRequest path too.
    assert_eq!(run.json["tls"]["alpn"], "postgresql");
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home.path(), None);
}

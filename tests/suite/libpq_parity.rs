//! Issue 8: what libpq accepts, the doctor accepts. Certificates and settings users and
//! PostgreSQL's own test set-ups have every day (X.509 v1 certificates and CAs, RSA-PSS
//! keys, a hashed CRL directory, protocol-version bounds, sslrootcert=system), each against a
//! real PostgreSQL and compared with the real psql at all six sslmodes.

use std::path::Path;

use crate::support::doctor::{assert_agrees_with_psql_env, run_doctor, DoctorRun};
use crate::support::ossl_pki::{KeyKind, OsslCa, Spec};
use crate::support::pg::{PgConfig, PgServer};
use crate::support::pki::{self, Ca, Issued, LeafSpec};

const HBA: &str = "\
hostssl certdb  all 127.0.0.1/32 cert
hostssl all     all 127.0.0.1/32 trust
host    all     all 127.0.0.1/32 trust
";

fn setup_sql() -> Vec<String> {
    vec![
        "CREATE ROLE alice LOGIN".into(),
        "CREATE DATABASE app".into(),
        "CREATE DATABASE certdb".into(),
    ]
}

struct Lab {
    pg: PgServer,
    home: tempfile::TempDir,
}

impl Lab {
    /// A server with `server` as its certificate, `client_ca` as ssl_ca_file, and
    /// `root_pem` as the client's ~/.postgresql/root.crt.
    fn start(server: &Issued, root_pem: &str, client_ca: Option<&str>, extra_conf: &str) -> Lab {
        Lab::start_on(server, root_pem, client_ca, extra_conf, false)
    }

    fn start_on(
        server: &Issued,
        root_pem: &str,
        client_ca: Option<&str>,
        extra_conf: &str,
        pg17: bool,
    ) -> Lab {
        let pg = PgServer::start(PgConfig {
            ssl: true,
            server_cert: Some(server.pair()),
            ca_file: client_ca.map(String::from),
            hba: HBA.into(),
            extra_conf: extra_conf.into(),
            setup_sql: setup_sql(),
            pg17,
            ..Default::default()
        });
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".postgresql");
        std::fs::create_dir_all(&dir).unwrap();
        pki::write_file(&dir, "root.crt", root_pem.as_bytes(), 0o644);
        Lab { pg, home }
    }

    fn target(&self, user: &str, db: &str, extra: &str) -> String {
        format!(
            "host=localhost port={} user={user} dbname={db} {extra}",
            self.pg.port
        )
    }

    /// The doctor at `sslmode` in JSON, and psql at all six modes with the same settings.
    fn diagnose(&self, target: &str, sslmode: &str) -> DoctorRun {
        self.diagnose_env(target, sslmode, &[])
    }

    fn diagnose_env(&self, target: &str, sslmode: &str, env: &[(&str, &str)]) -> DoctorRun {
        let run = run_doctor(
            &[target, "--sslmode", sslmode, "--format", "json"],
            self.home.path(),
            None,
            env,
        );
        assert_agrees_with_psql_env(
            &run,
            &self.pg.psql_path(),
            target,
            self.home.path(),
            None,
            env,
        );
        run
    }

    fn client_files(&self, name: &str, issued: &Issued) -> String {
        let cert = pki::write_file(
            self.home.path(),
            &format!("{name}.crt"),
            issued.cert_pem.as_bytes(),
            0o644,
        );
        let key = pki::write_file(
            self.home.path(),
            &format!("{name}.key"),
            issued.key_pem.as_bytes(),
            0o600,
        );
        format!("sslcert={} sslkey={}", cert.display(), key.display())
    }
}

fn all_ok(run: &DoctorRun, modes: &[&str]) {
    for mode in modes {
        assert_eq!(
            run.cell(mode).0,
            Some(true),
            "{mode} should work: {}",
            serde_json::to_string_pretty(&run.json["sslmodes"]).unwrap()
        );
    }
}

fn version_of(issued: &Issued) -> i32 {
    openssl::x509::X509::from_der(&issued.cert_der)
        .unwrap()
        .version()
}

const TLS_MODES: [&str; 4] = ["prefer", "require", "verify-ca", "verify-full"];

// ---- X.509 v1 ------------------------------------------------------------------------------

#[test]
fn v1_server_certificate_from_a_v1_ca_works_at_every_mode() {
    let ca = OsslCa::root("V1 Root CA", 1);
    let leaf = ca.issue(&Spec::v1("localhost"));
    assert_eq!((version_of(&ca.issued), version_of(&leaf)), (0, 0));
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, "");
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
    assert!(run.cell("verify-full").1, "encrypted");
    assert!(
        run.finding("tls_handshake_failed").is_none(),
        "{}",
        run.stdout
    );
    // webpki (rustls-based drivers) parses only v3: the advisory says so.
    assert!(
        run.finding("server_cert_rustls_differs").is_some(),
        "{}",
        run.stdout
    );
}

#[test]
fn v1_leaf_under_a_v3_ca_and_v3_leaf_under_a_v1_ca() {
    let v3_root = Ca::root("V3 Root CA");
    let v1_leaf = OsslCa::from_rcgen(&v3_root).issue(&Spec::v1("localhost"));
    let lab = Lab::start(&v1_leaf, &v3_root.issued.cert_pem, None, "");
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
    drop(lab);

    let v1_root = OsslCa::root("V1 Root CA", 1);
    let v3_leaf = v1_root.issue(&Spec::v3_server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        KeyKind::EcP256,
    ));
    let lab = Lab::start(&v3_leaf, &v1_root.issued.cert_pem, None, "");
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
}

#[test]
fn v1_name_mismatch_is_still_a_name_mismatch() {
    let ca = OsslCa::root("V1 Root CA", 1);
    let leaf = ca.issue(&Spec::v1("db.example.com"));
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, "");
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_cert_hostname_mismatch")
    );
    all_ok(&run, &["require", "verify-ca"]);
}

#[test]
fn v1_client_certificates_from_a_v1_client_ca_behave_as_with_libpq() {
    let server_ca = OsslCa::root("V1 Server CA", 1);
    let server = server_ca.issue(&Spec::v1("localhost"));
    let client_ca = OsslCa::root("V1 Client CA", 1);
    let lab = Lab::start(
        &server,
        &server_ca.issued.cert_pem,
        Some(&client_ca.issued.cert_pem),
        "",
    );

    let alice = client_ca.issue(&Spec::v1("alice"));
    assert_eq!(version_of(&alice), 0);
    let files = lab.client_files("alice", &alice);
    let run = lab.diagnose(&lab.target("alice", "certdb", &files), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
    assert_eq!(run.json["tls"]["client_cert_sent"], true);

    // The real cause behind a v1 server, not a handshake failure.
    let bob = client_ca.issue(&Spec::v1("bob"));
    let files = lab.client_files("bob", &bob);
    let run = lab.diagnose(&lab.target("alice", "certdb", &files), "verify-full");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("client_cert_cn_mismatch"),
        "{}",
        run.stdout
    );
    assert!(
        run.finding("tls_handshake_failed").is_none(),
        "{}",
        run.stdout
    );

    // A v1 client certificate from a CA the server does not know.
    let stranger = OsslCa::root("Stranger CA", 1).issue(&Spec::v1("alice"));
    let files = lab.client_files("stranger", &stranger);
    let run = lab.diagnose(&lab.target("alice", "certdb", &files), "verify-full");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("client_cert_unknown_ca"),
        "{}",
        run.stdout
    );
}

// ---- RSA-PSS -------------------------------------------------------------------------------

#[test]
fn rsa_pss_server_key_works_under_tls_1_3() {
    let ca = Ca::root("PSS Root CA");
    let leaf = OsslCa::from_rcgen(&ca).issue(&Spec::v3_server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        KeyKind::RsaPss,
    ));
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, "");
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
    assert_eq!(run.json["tls"]["version"], "TLSv1.3", "{}", run.json["tls"]);
}

#[test]
fn rsa_pss_server_key_under_tls_1_2() {
    let ca = Ca::root("PSS Root CA");
    let leaf = OsslCa::from_rcgen(&ca).issue(&Spec::v3_server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        KeyKind::RsaPss,
    ));
    let lab = Lab::start(
        &leaf,
        &ca.issued.cert_pem,
        None,
        "ssl_max_protocol_version = 'TLSv1.2'\n",
    );
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    // rustls refuses rsa_pss_pss_* in a TLS 1.2 ServerKeyExchange; OpenSSL accepts it. The
    // TLS cells are left undetermined rather than guessed (psql connects at each of them).
    for mode in TLS_MODES {
        assert_eq!(run.cell(mode).0, None, "{mode}: {}", run.stdout);
    }
    run.expect_finding("tls_not_emulated", "error");
    assert!(
        run.finding("tls_handshake_failed").is_none(),
        "{}",
        run.stdout
    );
}

// ---- sslcrldir ------------------------------------------------------------------------------

/// A hashed CRL directory (the names `openssl rehash` gives) holding each CA's CRL.
fn crl_dir(parent: &Path, name: &str, crls: &[(&Ca, String)]) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (ca, pem) in crls {
        let file = OsslCa::from_rcgen(ca).crl_hash_name();
        pki::write_file(&dir, &file, pem.as_bytes(), 0o644);
    }
    dir
}

fn leaf_for_localhost(ca: &Ca) -> Issued {
    ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ))
}

#[test]
fn sslcrldir_revokes_the_server_certificate() {
    let ca = Ca::root("CRL Dir Root CA");
    let leaf = leaf_for_localhost(&ca);
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, "");
    let dir = crl_dir(lab.home.path(), "crls", &[(&ca, ca.crl_pem(&[&leaf]))]);
    let target = lab.target("alice", "app", &format!("sslcrldir={}", dir.display()));
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_cert_revoked")
    );
    let f = run.expect_finding("server_cert_revoked", "error");
    assert_eq!(
        crate::support::doctor::evidence(f, "crl_dir"),
        dir.display().to_string(),
        "{f}"
    );
    // The root file switches verification on for prefer too, which then falls back.
    assert_eq!(run.cell("prefer"), (Some(true), false, None));

    // The same directory from PGSSLCRLDIR.
    let target = lab.target("alice", "app", "");
    let run = lab.diagnose_env(
        &target,
        "verify-full",
        &[("PGSSLCRLDIR", dir.to_str().unwrap())],
    );
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_cert_revoked")
    );
}

#[test]
fn sslcrldir_needs_a_crl_for_every_ca_in_the_chain() {
    let root = Ca::root("CRL Dir Root CA");
    let inter = root.intermediate("CRL Dir Intermediate CA");
    let leaf = leaf_for_localhost(&inter);
    let chain = Issued {
        cert_pem: pki::chain_pem(&[&leaf, &inter.issued]),
        ..leaf.clone()
    };
    let lab = Lab::start(&chain, &root.issued.cert_pem, None, "");
    let only_root = crl_dir(lab.home.path(), "root-only", &[(&root, root.crl_pem(&[]))]);
    let target = lab.target(
        "alice",
        "app",
        &format!("sslcrldir={}", only_root.display()),
    );
    let run = lab.diagnose(&target, "verify-ca");
    assert_eq!(
        run.cell("verify-ca").2.as_deref(),
        Some("crl_incomplete"),
        "{}",
        run.stdout
    );

    let both = crl_dir(
        lab.home.path(),
        "both",
        &[(&root, root.crl_pem(&[])), (&inter, inter.crl_pem(&[]))],
    );
    let target = lab.target("alice", "app", &format!("sslcrldir={}", both.display()));
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);

    // sslcrl and sslcrldir together: the root's CRL in the file, the intermediate's in the
    // directory. Both are read; either alone leaves a CA without a CRL.
    let root_crl = pki::write_file(
        lab.home.path(),
        "root-ca.crl",
        root.crl_pem(&[]).as_bytes(),
        0o644,
    );
    let inter_only = crl_dir(
        lab.home.path(),
        "inter-only",
        &[(&inter, inter.crl_pem(&[]))],
    );
    let target = lab.target(
        "alice",
        "app",
        &format!("sslcrldir={}", inter_only.display()),
    );
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.cell("verify-full").2.as_deref(), Some("crl_incomplete"));
    let target = lab.target(
        "alice",
        "app",
        &format!(
            "sslcrl={} sslcrldir={}",
            root_crl.display(),
            inter_only.display()
        ),
    );
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    all_ok(&run, &TLS_MODES);
}

#[test]
fn sslcrldir_replaces_the_default_root_crl_and_a_missing_directory_still_checks() {
    let ca = Ca::root("CRL Dir Root CA");
    let leaf = leaf_for_localhost(&ca);
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, "");
    // ~/.postgresql/root.crl revokes the server, but libpq reads it only when neither
    // sslcrl nor sslcrldir is set.
    pki::write_file(
        &lab.home.path().join(".postgresql"),
        "root.crl",
        ca.crl_pem(&[&leaf]).as_bytes(),
        0o644,
    );
    let run = lab.diagnose(&lab.target("alice", "app", ""), "verify-full");
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_cert_revoked")
    );
    let dir = crl_dir(lab.home.path(), "crls", &[(&ca, ca.crl_pem(&[]))]);
    let target = lab.target("alice", "app", &format!("sslcrldir={}", dir.display()));
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);

    // OpenSSL adds a directory without reading it: one that does not exist still turns
    // on CRL checks, and then no certificate has a CRL.
    let missing = lab.home.path().join("no-such-dir");
    let target = lab.target("alice", "app", &format!("sslcrldir={}", missing.display()));
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("crl_incomplete"),
        "{}",
        run.stdout
    );
}

// ---- ssl_min_protocol_version / ssl_max_protocol_version ------------------------------------

fn good_lab(extra_conf: &str) -> (Ca, Lab) {
    let ca = Ca::root("Bounds Root CA");
    let leaf = ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let lab = Lab::start(&leaf, &ca.issued.cert_pem, None, extra_conf);
    (ca, lab)
}

#[test]
fn protocol_bounds_are_applied_to_the_handshake() {
    let (_ca, lab) = good_lab("");
    let target = lab.target(
        "alice",
        "app",
        "ssl_min_protocol_version=TLSv1.2 ssl_max_protocol_version=TLSv1.2",
    );
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json["tls"]["version"], "TLSv1.2", "{}", run.json["tls"]);
    let session = run.expect_finding("tls_session", "info");
    assert_eq!(
        crate::support::doctor::evidence(session, "server_sees_version"),
        "TLSv1.2",
        "{session}"
    );

    // The same bound from the environment.
    let target = lab.target("alice", "app", "");
    let run = lab.diagnose_env(
        &target,
        "verify-full",
        &[("PGSSLMAXPROTOCOLVERSION", "TLSv1.2")],
    );
    assert_eq!(run.json["tls"]["version"], "TLSv1.2", "{}", run.json["tls"]);
}

#[test]
fn a_minimum_above_the_servers_maximum_fails_as_libpq_fails() {
    let (_ca, lab) = good_lab("ssl_max_protocol_version = 'TLSv1.2'\n");
    let target = lab.target("alice", "app", "ssl_min_protocol_version=TLSv1.3");
    let run = lab.diagnose(&target, "require");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("require").2.as_deref(),
        Some("tls_version_unsupported")
    );
    // prefer falls back to plaintext, as libpq does.
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
}

#[test]
fn a_maximum_below_tls_1_2_is_judged_as_libpq_fails_it() {
    let (_ca, lab) = good_lab("");
    let target = lab.target(
        "alice",
        "app",
        "ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1",
    );
    // psql: "SSL error: tlsv1 alert protocol version / This may indicate that the server
    // does not support any SSL protocol version between TLSv1 and TLSv1.1."
    let run = lab.diagnose(&target, "require");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("require").2.as_deref(),
        Some("tls_version_unsupported")
    );
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
    let f = run.expect_finding("tls_version_unsupported", "error");
    assert!(
        crate::support::doctor::evidence(f, "libpq_says")
            .as_str()
            .unwrap()
            .contains("between TLSv1 and TLSv1.1"),
        "{f}"
    );
}

#[test]
fn bad_protocol_values_are_usage_errors_in_libpqs_words() {
    let home = tempfile::tempdir().unwrap();
    for (target, message) in [
        ("host=127.0.0.1 port=1 ssl_min_protocol_version=TLSv9", "invalid \"ssl_min_protocol_version\" value: \"TLSv9\""),
        ("host=127.0.0.1 port=1 ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2", "invalid SSL protocol version range"),
    ] {
        let run = run_doctor(&[target], home.path(), None, &[]);
        assert_eq!(run.code, 3, "{target}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(message), "{target}: {}", run.stderr);
    }
}

// ---- sslrootcert=system (libpq 16+) ---------------------------------------------------------

#[test]
fn sslrootcert_system_refuses_every_mode_but_verify_full_as_libpq_17_does() {
    let ca = Ca::root("System Root CA");
    let leaf = leaf_for_localhost(&ca);
    let lab = Lab::start_on(&leaf, &ca.issued.cert_pem, None, "", true);
    let bundle = pki::write_file(
        lab.home.path(),
        "bundle.pem",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let bundle = bundle.display().to_string();
    let env = [("SSL_CERT_FILE", bundle.as_str())];
    let target = lab.target("alice", "app", "sslrootcert=system");
    // Compared with psql 17 at all six modes: five are usage errors, verify-full connects.
    let run = lab.diagnose_env(&target, "verify-full", &env);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.cell("verify-full"), (Some(true), true, None));
    for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
        assert_eq!(
            run.cell(mode).2.as_deref(),
            Some("system_root_weak_sslmode"),
            "{mode}: {}",
            run.stdout
        );
        assert_eq!(run.cell(mode).0, Some(false), "{mode}");
    }
    let f = run.expect_finding("system_root_weak_sslmode", "info");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("may not be used with sslrootcert=system"),
        "{f}"
    );
}

// ---- hba lint --conf follows postgresql.conf's includes -------------------------------------

#[test]
fn hba_lint_reads_ssl_ca_file_from_an_included_file_as_the_server_does() {
    let server_ca = Ca::root("Include Server CA");
    let client_ca = Ca::root("Include Client CA");
    let leaf = leaf_for_localhost(&server_ca);
    // The harness writes ssl_ca_file = '' into postgresql.conf; the include after it sets
    // the real one, as a conf.d/ layout does.
    let lab = Lab::start(
        &leaf,
        &server_ca.issued.cert_pem,
        None,
        "include_if_exists 'tls/ca.conf'\n",
    );
    let ca_path = lab.pg.write_server_file(
        "data/client-ca.crt",
        client_ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    std::fs::create_dir_all(lab.pg.data_dir().join("tls")).unwrap();
    lab.pg.write_server_file(
        "data/tls/ca.conf",
        format!("ssl_ca_file = '{}'\n", ca_path.display()).as_bytes(),
        0o644,
    );
    lab.pg.reload();

    // The server uses the included setting: a certificate login works.
    let alice = client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.client_files("alice", &alice);
    let run = lab.diagnose(&lab.target("alice", "certdb", &files), "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);

    let hba = lab.pg.data_dir().join("pg_hba.conf").display().to_string();
    let conf = lab
        .pg
        .data_dir()
        .join("postgresql.conf")
        .display()
        .to_string();
    let lint = run_doctor(
        &["hba", "lint", &hba, "--conf", &conf, "--format", "json"],
        lab.home.path(),
        None,
        &[],
    );
    let codes: Vec<&str> = lint.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(!codes.contains(&"hba_cert_needs_ca"), "{}", lint.stdout);

    // Without the include, the same rules do need a CA file, and the lint says so.
    let bare = pki::write_file(
        lab.home.path(),
        "bare.conf",
        b"ssl = on\nssl_ca_file = ''\n",
        0o644,
    );
    let lint = run_doctor(
        &[
            "hba",
            "lint",
            &hba,
            "--conf",
            &bare.display().to_string(),
            "--format",
            "json",
        ],
        lab.home.path(),
        None,
        &[],
    );
    assert!(lint.stdout.contains("hba_cert_needs_ca"), "{}", lint.stdout);
}

// ---- the rest of libpq's keywords -----------------------------------------------------------

/// A peer that answers the SSLRequest with 'S' and keeps the ClientHello bytes it receives.
fn client_hello_recorder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut tcp) = stream else { return };
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request = [0u8; 8];
            if tcp.read_exact(&mut request).is_err() || request[4..] != [0x04, 0xd2, 0x16, 0x2f] {
                continue;
            }
            let _ = tcp.write_all(b"S");
            let mut hello = vec![0u8; 4096];
            let n = tcp.read(&mut hello).unwrap_or(0);
            keep.lock().unwrap().extend_from_slice(&hello[..n]);
        }
    });
    (port, seen)
}

#[test]
fn sslsni_puts_the_host_name_in_the_client_hello_unless_it_is_0() {
    let home = tempfile::tempdir().unwrap();
    for (sni, expect) in [("1", true), ("0", false)] {
        let (port, seen) = client_hello_recorder();
        let target = format!("host=localhost port={port} user=alice sslmode=require sslsni={sni}");
        let run = run_doctor(&[&target, "--timeout", "5"], home.path(), None, &[]);
        assert_ne!(run.code, 0, "{}", run.stdout);
        let hello = seen.lock().unwrap().clone();
        assert!(!hello.is_empty(), "no ClientHello arrived");
        let has_name = hello.windows(9).any(|w| w == b"localhost");
        assert_eq!(has_name, expect, "sslsni={sni}");
    }
}

#[test]
fn options_are_sent_in_the_startup_message_as_libpq_sends_them() {
    let (_ca, lab) = good_lab("");
    // The server refuses an unknown parameter in options: every mode fails, as with psql.
    let target = lab.target("alice", "app", "options='-c no_such_parameter=1'");
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("no_such_parameter"), "{}", run.stdout);
    // A good one is applied: the session works at every mode.
    let target = lab.target("alice", "app", "options='-c statement_timeout=5s'");
    let run = lab.diagnose(&target, "verify-full");
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn settings_the_doctor_does_not_emulate_are_named_in_the_report() {
    let home = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            "host=127.0.0.1 port=1 target_session_attrs=read-only",
            &[],
            "target_session_attrs",
        ),
        (
            "host=127.0.0.1,127.0.0.2 port=1 load_balance_hosts=random",
            &[],
            "load_balance_hosts",
        ),
        (
            "host=127.0.0.1 port=1 require_auth=scram-sha-256",
            &[],
            "require_auth",
        ),
        (
            "host=127.0.0.1 port=1 replication=database",
            &[],
            "replication",
        ),
        ("host=/tmp port=1 requirepeer=postgres", &[], "requirepeer"),
        (
            "host=127.0.0.1 port=1",
            &[("KRB5CCNAME", "FILE:/tmp/some-cache")],
            "gssencmode",
        ),
    ];
    for (target, env, keyword) in cases {
        let run = run_doctor(&[target, "--format", "json"], home.path(), None, env);
        let f = run.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "setting_not_emulated")
            .unwrap_or_else(|| panic!("{target}: no setting_not_emulated: {}", run.stdout));
        assert_eq!(f["severity"], "warning");
        assert_eq!(
            crate::support::doctor::evidence(f, "keyword"),
            keyword,
            "{f}"
        );
        assert!(
            crate::support::doctor::evidence(f, "why")
                .as_str()
                .unwrap()
                .len()
                > 20,
            "{f}"
        );
    }
    // Defaults, and settings with no effect, carry no such finding.
    for target in [
        "host=127.0.0.1 port=1 target_session_attrs=any load_balance_hosts=disable",
        "host=127.0.0.1 port=1 requirepeer=postgres sslcompression=1 keepalives=0",
    ] {
        let run = run_doctor(&[target, "--format", "json"], home.path(), None, &[]);
        assert!(
            run.finding("setting_not_emulated").is_none(),
            "{target}: {}",
            run.stdout
        );
    }
}

#[test]
fn gssencmode_require_without_a_credential_cache_fails_before_connecting() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert!(
        !Path::new(&format!("/tmp/krb5cc_{uid}")).exists(),
        "this machine has a Kerberos credential cache"
    );
    let target = "host=127.0.0.1 port=1 gssencmode=require";
    let run = run_doctor(
        &[target],
        home.path(),
        None,
        &[("KRB5_CONFIG", "/nonexistent")],
    );
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let message = "GSSAPI encryption required but no credential cache";
    assert!(run.stderr.contains(message), "{}", run.stderr);
    let psql17 = crate::support::pg::pg17_bin_dir().join("psql");
    let real = crate::support::psql::run_psql_env(
        &psql17,
        target,
        home.path(),
        None,
        &[("KRB5_CONFIG", "/nonexistent")],
    );
    assert!(
        !real.ok && real.stderr.contains(message),
        "psql 17: {}",
        real.stderr
    );
}

//! Issue 3: client certificates against a real PostgreSQL server with ssl_ca_file and
//! ssl_crl_file, pg_hba lines for cert, cert map=, clientcert=verify-ca/verify-full and
//! scram-sha-256 clientcert=verify-full, and a pg_ident map with a literal and a regex line.
//! Every scenario is also run through the real psql at all six sslmodes (same files).

use std::path::Path;
use std::process::Command;

use crate::support::doctor::{assert_agrees_with_psql, run_doctor, DoctorRun};
use crate::support::pg::{run_with_timeout, PgConfig, PgServer};
use crate::support::pki::{self, Ca, Issued, LeafSpec};
use time::{Duration, OffsetDateTime};

const ALICE_PASSWORD: &str = "alice-scram-pw-42";
const KEY_PASSPHRASE: &str = "key-passphrase-73";

const HBA: &str = "\
hostssl certdb  all 127.0.0.1/32 cert
hostssl mapdb   all 127.0.0.1/32 cert map=m
hostssl vcadb   all 127.0.0.1/32 trust clientcert=verify-ca
hostssl vfulldb all 127.0.0.1/32 trust clientcert=verify-full
hostssl scramdb all 127.0.0.1/32 scram-sha-256 clientcert=verify-full
hostssl trustdb all 127.0.0.1/32 trust
host    all     all 127.0.0.1/32 trust
";

const IDENT: &str = "\
m  /^(.*)-admin$  \\1
m  carol          alice
";

struct Lab {
    server_ca: Ca,
    client_ca: Ca,
    revoked: Issued,
    pg: PgServer,
    home: tempfile::TempDir,
}

fn lab_with(extra_conf: &str, with_ca_file: bool) -> Lab {
    let server_ca = Ca::root("Lab Server CA");
    let client_ca = Ca::root("Lab Client CA");
    let server_cert = server_ca.issue(&LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let revoked = client_ca.issue(&LeafSpec::client("alice"));
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(server_cert.pair()),
        ca_file: with_ca_file.then(|| client_ca.issued.cert_pem.clone()),
        crl_file: with_ca_file.then(|| client_ca.crl_pem(&[&revoked])),
        hba: HBA.into(),
        extra_conf: extra_conf.into(),
        setup_sql: vec![
            "CREATE ROLE alice LOGIN".into(),
            format!("ALTER ROLE alice PASSWORD '{ALICE_PASSWORD}'"),
            "CREATE ROLE bob LOGIN".into(),
            "CREATE DATABASE certdb".into(),
            "CREATE DATABASE mapdb".into(),
            "CREATE DATABASE vcadb".into(),
            "CREATE DATABASE vfulldb".into(),
            "CREATE DATABASE scramdb".into(),
            "CREATE DATABASE trustdb".into(),
        ],
        pg17: false,
    });
    pg.write_server_file("data/pg_ident.conf", IDENT.as_bytes(), 0o600);
    pg.reload();
    let home = tempfile::tempdir().unwrap();
    let pgdir = home.path().join(".postgresql");
    std::fs::create_dir_all(&pgdir).unwrap();
    pki::write_file(
        &pgdir,
        "root.crt",
        server_ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    Lab {
        server_ca,
        client_ca,
        revoked,
        pg,
        home,
    }
}

fn lab() -> Lab {
    lab_with("", true)
}

impl Lab {
    /// Writes a certificate (chain) and key into HOME; returns the conninfo fragment.
    fn files(&self, name: &str, cert_pem: &str, key_pem: &[u8], key_mode: u32) -> String {
        let cert = pki::write_file(
            self.home.path(),
            &format!("{name}.crt"),
            cert_pem.as_bytes(),
            0o644,
        );
        let key = pki::write_file(self.home.path(), &format!("{name}.key"), key_pem, key_mode);
        format!("sslcert={} sslkey={}", cert.display(), key.display())
    }

    fn client(&self, name: &str, issued: &Issued) -> String {
        self.files(name, &issued.cert_pem, issued.key_pem.as_bytes(), 0o600)
    }

    fn target(&self, user: &str, db: &str, extra: &str) -> String {
        format!(
            "host=localhost port={} user={user} dbname={db} {extra}",
            self.pg.port
        )
    }

    /// The doctor in JSON at `sslmode`, and psql at all six modes with the same settings.
    fn diagnose(
        &self,
        user: &str,
        db: &str,
        extra: &str,
        sslmode: &str,
        pass: Option<&Path>,
    ) -> DoctorRun {
        let target = self.target(user, db, extra);
        let run = run_doctor(
            &[&target, "--sslmode", sslmode, "--format", "json"],
            self.home.path(),
            pass,
            &[],
        );
        assert_agrees_with_psql(&run, &self.pg.psql_path(), &target, self.home.path(), pass);
        assert_no_secrets(&run);
        run
    }
}

fn assert_no_secrets(run: &DoctorRun) {
    for secret in [ALICE_PASSWORD, KEY_PASSPHRASE, "PRIVATE KEY"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} leaked:\n{}",
            run.stdout
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_with_timeout(
        Command::new("openssl").current_dir(dir).args(args),
        std::time::Duration::from_secs(60),
    );
    assert!(out.success(), "openssl {args:?}: {}", out.stderr);
}

fn issue_with(ca: &Ca, cn: &str, edit: impl FnOnce(&mut LeafSpec)) -> Issued {
    let mut spec = LeafSpec::client(cn);
    edit(&mut spec);
    ca.issue(&spec)
}

// ---- success cases -------------------------------------------------------------------------

#[test]
fn cert_method_accepts_a_matching_cn_and_shows_what_the_server_saw() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.client("alice", &alice);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let session = run.expect_finding("tls_session", "info");
    assert_eq!(
        crate::support::doctor::evidence(session, "server_sees_client_dn"),
        "/CN=alice",
        "{session}"
    );
    assert!(
        crate::support::doctor::evidence(session, "server_sees_issuer_dn")
            .as_str()
            .unwrap()
            .contains("Lab Client CA")
    );
    assert_eq!(run.json["tls"]["client_cert_sent"], true);
    assert!(run.json["tls"]["client_ca_names"][0]
        .as_str()
        .unwrap()
        .contains("Lab Client CA"));
}

#[test]
fn mapped_cns_succeed_through_pg_ident_regex_and_literal_lines() {
    let lab = lab();
    for cn in ["alice-admin", "carol"] {
        let cert = lab.client_ca.issue(&LeafSpec::client(cn));
        let files = lab.client(cn, &cert);
        let run = lab.diagnose("alice", "mapdb", &files, "verify-full", None);
        assert_eq!(run.code, 0, "{cn}: {}", run.stdout);
    }
}

#[test]
fn a_certificate_without_any_eku_is_accepted() {
    let lab = lab();
    let cert = issue_with(&lab.client_ca, "alice", |s| s.client_auth = false);
    assert!(pki_has_no_eku(&cert));
    let files = lab.client("noeku", &cert);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.finding("client_cert_wrong_purpose").is_none());
}

fn pki_has_no_eku(cert: &Issued) -> bool {
    let summary = pgtls_doctor::x509::summarize(&cert.cert_der).unwrap();
    summary.extended_key_usage.is_none()
}

#[test]
fn encrypted_keys_in_every_format_load_with_the_right_sslpassword() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let dir = lab.home.path();
    std::fs::write(dir.join("plain.key"), &alice.key_pem).unwrap();
    let pass = format!("pass:{KEY_PASSPHRASE}");
    let formats: [(&str, Vec<&str>, &str); 4] = [
        (
            "pbes2.key",
            vec![
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                "plain.key",
                "-passout",
                &pass,
                "-out",
                "pbes2.key",
            ],
            "ENCRYPTED PRIVATE KEY",
        ),
        (
            "pbe3des.key",
            vec![
                "pkcs8",
                "-topk8",
                "-v1",
                "PBE-SHA1-3DES",
                "-in",
                "plain.key",
                "-passout",
                &pass,
                "-out",
                "pbe3des.key",
            ],
            "ENCRYPTED PRIVATE KEY",
        ),
        (
            "legacy-des3.key",
            vec![
                "ec",
                "-in",
                "plain.key",
                "-des3",
                "-passout",
                &pass,
                "-out",
                "legacy-des3.key",
            ],
            "Proc-Type: 4,ENCRYPTED",
        ),
        (
            "legacy-aes.key",
            vec![
                "ec",
                "-in",
                "plain.key",
                "-aes256",
                "-passout",
                &pass,
                "-out",
                "legacy-aes.key",
            ],
            "Proc-Type: 4,ENCRYPTED",
        ),
    ];
    let cert = pki::write_file(dir, "alice.crt", alice.cert_pem.as_bytes(), 0o644);
    for (file, args, marker) in formats {
        openssl(dir, &args);
        let key = dir.join(file);
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        assert!(
            std::fs::read_to_string(&key).unwrap().contains(marker),
            "{file}"
        );
        let files = format!(
            "sslcert={} sslkey={} sslpassword={KEY_PASSPHRASE}",
            cert.display(),
            key.display()
        );
        let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
        assert_eq!(run.code, 0, "{file}: {}", run.stdout);

        // Without the passphrase, or with a wrong one: client_key_encrypted, and allow/prefer
        // fall back to plaintext exactly as psql does.
        let wrong = format!(
            "sslcert={} sslkey={} sslpassword=wrong-one",
            cert.display(),
            key.display()
        );
        let run = lab.diagnose("alice", "certdb", &wrong, "verify-full", None);
        assert_eq!(run.code, 1);
        run.expect_finding("client_key_encrypted", "error");
        assert_eq!(run.cell("prefer"), (Some(true), false, None));
    }
}

// ---- one test per code ---------------------------------------------------------------------

#[test]
fn client_cert_missing_when_the_server_requires_one() {
    let lab = lab();
    let run = lab.diagnose("alice", "vcadb", "", "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_missing", "error");
    assert!(
        crate::support::doctor::evidence(f, "why_none_was_sent")
            .as_str()
            .unwrap()
            .contains("postgresql.crt"),
        "{f}"
    );

    // sslcert pointing nowhere: no certificate is sent, said as info.
    let run = lab.diagnose(
        "alice",
        "trustdb",
        "sslcert=/nonexistent/alice.crt",
        "verify-full",
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.expect_finding("client_cert_missing", "info");
}

#[test]
fn client_cert_unreadable_falls_back_like_libpq_and_pkcs12_is_explained() {
    let lab = lab();
    let files = lab.files(
        "garbage",
        "this is not a certificate\n",
        b"nor a key\n",
        0o600,
    );
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    run.expect_finding("client_cert_unreadable", "error");
    assert_eq!(run.cell("allow"), (Some(true), false, None));
    assert_eq!(run.cell("prefer"), (Some(true), false, None));

    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let dir = lab.home.path();
    pki::write_file(dir, "p12.crt", alice.cert_pem.as_bytes(), 0o644);
    pki::write_file(dir, "p12.key", alice.key_pem.as_bytes(), 0o600);
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "p12.crt",
            "-inkey",
            "p12.key",
            "-out",
            "alice.p12",
            "-passout",
            &format!("pass:{KEY_PASSPHRASE}"),
        ],
    );
    let files = format!(
        "sslcert={0}/alice.p12 sslkey={0}/alice.p12 sslpassword={KEY_PASSPHRASE}",
        dir.display()
    );
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    let f = run.expect_finding("client_cert_unreadable", "error");
    assert!(f["fix"].as_str().unwrap().contains("openssl pkcs12"), "{f}");
    let p12 = run.expect_finding("client_cert_pkcs12", "info");
    assert_eq!(
        crate::support::doctor::evidence(p12, "certificate_subject"),
        "CN=alice",
        "{p12}"
    );
    assert!(
        p12["summary"].as_str().unwrap().contains("would pass"),
        "{p12}"
    );
}

#[test]
fn client_cert_expired() {
    let lab = lab();
    let now = OffsetDateTime::now_utc();
    let cert = issue_with(&lab.client_ca, "alice", |s| {
        s.not_before = now - Duration::days(100);
        s.not_after = now - Duration::days(2);
    });
    let files = lab.client("expired", &cert);
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_expired", "error");
    assert!(f["summary"].as_str().unwrap().contains("days ago"), "{f}");
}

#[test]
fn client_cert_not_yet_valid() {
    let lab = lab();
    let now = OffsetDateTime::now_utc();
    let cert = issue_with(&lab.client_ca, "alice", |s| {
        s.not_before = now + Duration::days(3);
        s.not_after = now + Duration::days(300);
    });
    let files = lab.client("future", &cert);
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_not_yet_valid", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("not valid until"),
        "{f}"
    );
}

#[test]
fn client_cert_unknown_ca() {
    let lab = lab();
    let other = Ca::root("Stranger CA");
    let cert = other.issue(&LeafSpec::client("alice"));
    let files = lab.client("stranger", &cert);
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_unknown_ca", "error");
    assert!(
        crate::support::doctor::evidence(f, "server_accepts_issuers")
            .as_str()
            .unwrap()
            .contains("Lab Client CA"),
        "{f}"
    );
    assert!(
        crate::support::doctor::evidence(f, "certificate_issuer")
            .as_str()
            .unwrap()
            .contains("Stranger CA"),
        "{f}"
    );
}

#[test]
fn client_cert_revoked() {
    let lab = lab();
    let files = lab.client("revoked", &lab.revoked);
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    run.expect_finding("client_cert_revoked", "error");
}

#[test]
fn client_cert_wrong_purpose() {
    let lab = lab();
    let cert = issue_with(&lab.client_ca, "alice", |s| {
        s.client_auth = false;
        s.server_auth = true;
    });
    let files = lab.client("serveronly", &cert);
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_wrong_purpose", "error");
    assert!(
        crate::support::doctor::evidence(f, "extended_key_usage")
            .as_str()
            .unwrap()
            .contains("serverAuth"),
        "{f}"
    );
}

#[test]
fn client_cert_cn_mismatch_under_cert_trust_and_scram() {
    let lab = lab();
    let bob = lab.client_ca.issue(&LeafSpec::client("bob"));
    let files = lab.client("bob", &bob);

    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_cn_mismatch", "error");
    assert_eq!(crate::support::doctor::evidence(f, "certificate_cn"), "bob");
    // The headline is the diagnosis (the CN and the user), not the server's FATAL again.
    let headline = run.json["verdict"]["summary"].as_str().unwrap();
    assert!(
        headline.contains("CN \"bob\" is not the user \"alice\""),
        "{headline}"
    );
    assert!(!headline.contains("FATAL"), "{headline}");
    assert_eq!(crate::support::doctor::evidence(f, "cn_equals_user"), false);

    let run = lab.diagnose("alice", "vfulldb", &files, "verify-full", None);
    let f = run.expect_finding("client_cert_cn_mismatch", "error");
    let headline = run.json["verdict"]["summary"].as_str().unwrap();
    assert!(headline.contains("CN \"bob\""), "{headline}");
    assert!(
        crate::support::doctor::evidence(f, "cause")
            .as_str()
            .unwrap()
            .starts_with("certain"),
        "{f}"
    );

    // The right password, a valid SCRAM final message, then 28P01: certainly the CN check.
    let pass = pki::write_file(
        lab.home.path(),
        "pgpass",
        format!("*:*:*:alice:{ALICE_PASSWORD}\n").as_bytes(),
        0o600,
    );
    let run = lab.diagnose("alice", "scramdb", &files, "verify-full", Some(&pass));
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_cn_mismatch", "error");
    assert!(
        crate::support::doctor::evidence(f, "cause")
            .as_str()
            .unwrap()
            .starts_with("certain"),
        "{f}"
    );

    // A wrong password gives 28P01 without a SASL final message: that is password_failed.
    let wrong = pki::write_file(
        lab.home.path(),
        "pgpass-wrong",
        b"*:*:*:alice:not-it\n",
        0o600,
    );
    let run = lab.diagnose("alice", "scramdb", &files, "verify-full", Some(&wrong));
    run.expect_finding("password_failed", "error");
}

#[test]
fn client_cert_expiring_soon() {
    let lab = lab();
    let now = OffsetDateTime::now_utc();
    let cert = issue_with(&lab.client_ca, "alice", |s| {
        s.not_after = now + Duration::days(5)
    });
    let files = lab.client("soon", &cert);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.expect_finding("client_cert_expiring_soon", "warning");
}

#[test]
fn client_key_missing() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let cert = pki::write_file(
        lab.home.path(),
        "lonely.crt",
        alice.cert_pem.as_bytes(),
        0o644,
    );
    let files = format!(
        "sslcert={} sslkey={}/no-such.key",
        cert.display(),
        lab.home.path().display()
    );
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_key_missing", "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("certificate present, but not private key file"),
        "{f}"
    );
}

#[test]
fn client_key_mismatch() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let other = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.files("mismatch", &alice.cert_pem, other.key_pem.as_bytes(), 0o600);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_key_mismatch", "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("key values mismatch"),
        "{f}"
    );
}

#[test]
fn client_key_permissions() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.files("open", &alice.cert_pem, alice.key_pem.as_bytes(), 0o644);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_key_permissions", "error");
    assert!(f["fix"].as_str().unwrap().starts_with("chmod 0600"), "{f}");
    // libpq falls back to plaintext at allow and prefer after this client-side failure.
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
}

#[test]
fn client_key_weak() {
    let lab = lab();
    let dir = lab.home.path();
    pki::write_file(
        dir,
        "ca.crt",
        lab.client_ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    pki::write_file(
        dir,
        "ca.key",
        lab.client_ca.issued.key_pem.as_bytes(),
        0o600,
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "weak.key",
            "-subj",
            "/CN=alice",
            "-out",
            "weak.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "weak.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "weak.crt",
        ],
    );
    std::fs::set_permissions(
        dir.join("weak.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let files = format!("sslcert={0}/weak.crt sslkey={0}/weak.key", dir.display());
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_key_weak", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("ee key too small"),
        "{f}"
    );
    assert_eq!(run.cell("prefer"), (Some(true), false, None));
}

#[test]
fn client_key_encrypted_without_sslpassword() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let dir = lab.home.path();
    std::fs::write(dir.join("plain.key"), &alice.key_pem).unwrap();
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "plain.key",
            "-passout",
            &format!("pass:{KEY_PASSPHRASE}"),
            "-out",
            "enc.key",
        ],
    );
    std::fs::set_permissions(
        dir.join("enc.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cert = pki::write_file(dir, "enc.crt", alice.cert_pem.as_bytes(), 0o644);
    let target = lab.target(
        "alice",
        "certdb",
        &format!(
            "sslcert={} sslkey={}/enc.key",
            cert.display(),
            dir.display()
        ),
    );
    // psql would prompt for the passphrase here, so only the doctor runs.
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        dir,
        None,
        &[],
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_key_encrypted", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("no sslpassword"),
        "{f}"
    );
}

#[test]
fn server_without_ssl_ca_file() {
    let lab = lab_with("", false);
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.client("alice", &alice);
    // It never asks for the certificate: a warning, and the session still works on trust.
    let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.expect_finding("server_no_client_ca", "warning");
    assert_eq!(run.json["tls"]["client_ca_names"], serde_json::Value::Null);
    // A clientcert line then fails with F0000.
    let run = lab.diagnose("alice", "vcadb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_ca_missing", "error");
    assert_eq!(crate::support::doctor::evidence(f, "sqlstate"), "F0000");
}

#[test]
fn sslcertmode_require_against_a_server_that_never_asks() {
    let lab = lab_with("", false);
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.client("alice", &alice);
    // libpq 16+ only (psql 15 here does not know sslcertmode), so the doctor runs alone.
    let target = lab.target("alice", "trustdb", &format!("{files} sslcertmode=require"));
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        lab.home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("server_no_client_ca")
    );
}

#[test]
fn channel_binding_required_but_not_possible() {
    let lab = lab();
    let run = lab.diagnose(
        "alice",
        "trustdb",
        "channel_binding=require",
        "verify-full",
        None,
    );
    assert_eq!(run.code, 1);
    let f = run.expect_finding("channel_binding_failed", "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("without channel binding"),
        "{f}"
    );
    // And with SCRAM-SHA-256-PLUS it works.
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let files = lab.client("alice", &alice);
    let pass = pki::write_file(
        lab.home.path(),
        "pgpass",
        format!("*:*:*:alice:{ALICE_PASSWORD}\n").as_bytes(),
        0o600,
    );
    let run = lab.diagnose(
        "alice",
        "scramdb",
        &format!("{files} channel_binding=require"),
        "verify-full",
        Some(&pass),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

// ---- TLS 1.2 against TLS 1.3 ---------------------------------------------------------------

fn faulty_certs(lab: &Lab) -> Vec<(&'static str, String)> {
    let now = OffsetDateTime::now_utc();
    let expired = issue_with(&lab.client_ca, "alice", |s| {
        s.not_before = now - Duration::days(100);
        s.not_after = now - Duration::days(2);
    });
    let stranger = Ca::root("Stranger CA").issue(&LeafSpec::client("alice"));
    vec![
        ("client_cert_expired", lab.client("t-expired", &expired)),
        (
            "client_cert_unknown_ca",
            lab.client("t-stranger", &stranger),
        ),
        ("client_cert_revoked", lab.client("t-revoked", &lab.revoked)),
    ]
}

#[test]
fn same_faults_same_codes_under_tls_1_2_and_1_3_and_prefer_differs() {
    let tls13 = lab();
    let tls12 = lab_with("ssl_max_protocol_version = 'TLSv1.2'\n", true);
    for (lab, version) in [(&tls13, "TLSv1.3"), (&tls12, "TLSv1.2")] {
        for (code, files) in faulty_certs(lab) {
            let run = lab.diagnose("alice", "trustdb", &files, "verify-full", None);
            assert_eq!(run.code, 1, "{version} {code}");
            run.expect_finding(code, "error");
            let prefer = run.cell("prefer");
            if version == "TLSv1.2" {
                // The alert comes during the handshake: prefer falls back to plaintext.
                assert_eq!(prefer, (Some(true), false, None), "{version} {code}");
            } else {
                // The alert comes after the handshake: no fallback.
                assert_eq!(prefer.0, Some(false), "{version} {code}");
                assert_eq!(prefer.2.as_deref(), Some(code), "{version} {code}");
            }
        }
    }
    let _ = (&tls13.server_ca, &tls12.server_ca);
}

#[test]
fn no_passphrase_or_key_bytes_in_any_output() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let dir = lab.home.path();
    std::fs::write(dir.join("plain.key"), &alice.key_pem).unwrap();
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "plain.key",
            "-passout",
            &format!("pass:{KEY_PASSPHRASE}"),
            "-out",
            "enc.key",
        ],
    );
    std::fs::set_permissions(
        dir.join("enc.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cert = pki::write_file(dir, "enc.crt", alice.cert_pem.as_bytes(), 0o644);
    let target = format!(
        "postgresql://alice:{ALICE_PASSWORD}@localhost:{}/scramdb?sslcert={}&sslkey={}/enc.key&sslpassword={KEY_PASSPHRASE}",
        lab.pg.port,
        cert.display(),
        dir.display()
    );
    let key_body: String = alice.key_pem.lines().nth(1).unwrap().to_string();
    for format in ["text", "json"] {
        let run = run_doctor(
            &[&target, "--format", format, "--color", "always"],
            dir,
            None,
            &[("PGPASSWORD", ALICE_PASSWORD)],
        );
        assert_eq!(run.code, 0, "{}", run.stdout);
        for secret in [ALICE_PASSWORD, KEY_PASSPHRASE, key_body.as_str()] {
            assert!(!run.stdout.contains(secret), "{format}: leaked {secret}");
            assert!(!run.stderr.contains(secret), "{format}: leaked {secret}");
        }
    }
}

#[test]
fn unencrypted_keys_in_pkcs1_sec1_and_der_and_a_chain_in_the_certificate_file() {
    let lab = lab();
    let dir = lab.home.path();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    std::fs::write(dir.join("plain.key"), &alice.key_pem).unwrap();
    let cert = pki::write_file(dir, "alice.crt", alice.cert_pem.as_bytes(), 0o644);
    openssl(dir, &["ec", "-in", "plain.key", "-out", "sec1.key"]);
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "plain.key",
            "-outform",
            "DER",
            "-out",
            "key.der",
        ],
    );
    for (file, marker) in [
        ("sec1.key", Some("BEGIN EC PRIVATE KEY")),
        ("key.der", None),
    ] {
        let key = dir.join(file);
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if let Some(m) = marker {
            assert!(std::fs::read_to_string(&key).unwrap().contains(m));
        }
        let files = format!("sslcert={} sslkey={}", cert.display(), key.display());
        let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
        assert_eq!(run.code, 0, "{file}: {}", run.stdout);
    }

    // RSA in PKCS#1 ("BEGIN RSA PRIVATE KEY"), signed by the (EC) client CA.
    pki::write_file(
        dir,
        "ca.crt",
        lab.client_ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    pki::write_file(
        dir,
        "ca.key",
        lab.client_ca.issued.key_pem.as_bytes(),
        0o600,
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rsa8.key",
            "-subj",
            "/CN=alice",
            "-out",
            "rsa.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "rsa.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "rsa.crt",
        ],
    );
    openssl(
        dir,
        &["rsa", "-in", "rsa8.key", "-traditional", "-out", "rsa1.key"],
    );
    std::fs::set_permissions(
        dir.join("rsa1.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert!(std::fs::read_to_string(dir.join("rsa1.key"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let files = format!("sslcert={0}/rsa.crt sslkey={0}/rsa1.key", dir.display());
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);

    // A certificate file holding leaf + intermediate; the server trusts only the root. With
    // the lab's ssl_crl_file (a CRL from the root alone) OpenSSL wants a CRL from the
    // intermediate too, and answers unknown_ca: the finding names that possibility.
    let inter = lab.client_ca.intermediate("Lab Client Intermediate");
    let leaf = inter.issue(&LeafSpec::client("alice"));
    let chain = pki::chain_pem(&[&leaf, &inter.issued]);
    let files = lab.files("chained", &chain, leaf.key_pem.as_bytes(), 0o600);
    let run = lab.diagnose("alice", "certdb", &files, "verify-full", None);
    assert_eq!(run.code, 1);
    let f = run.expect_finding("client_cert_unknown_ca", "error");
    assert!(
        crate::support::doctor::evidence(f, "also_possible")
            .as_str()
            .unwrap()
            .contains("ssl_crl_file"),
        "{f}"
    );

    // Without a server CRL the chain is accepted.
    let no_crl = lab_with("ssl_crl_file = ''\n", true);
    let inter2 = no_crl.client_ca.intermediate("Lab Client Intermediate");
    let leaf2 = inter2.issue(&LeafSpec::client("alice"));
    let chain2 = pki::chain_pem(&[&leaf2, &inter2.issued]);
    let files2 = no_crl.files("chained2", &chain2, leaf2.key_pem.as_bytes(), 0o600);
    let run = no_crl.diagnose("alice", "certdb", &files2, "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn client_files_from_the_default_path_and_from_pgsslcert() {
    let lab = lab();
    let alice = lab.client_ca.issue(&LeafSpec::client("alice"));
    let pgdir = lab.home.path().join(".postgresql");
    pki::write_file(&pgdir, "postgresql.crt", alice.cert_pem.as_bytes(), 0o644);
    pki::write_file(&pgdir, "postgresql.key", alice.key_pem.as_bytes(), 0o600);
    let run = lab.diagnose("alice", "certdb", "", "verify-full", None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let settings = run.json["target"]["settings"].as_array().unwrap();
    let cert = settings.iter().find(|s| s["name"] == "sslcert").unwrap();
    assert!(
        cert["source"]
            .as_str()
            .unwrap()
            .contains("~/.postgresql/postgresql.crt"),
        "{cert}"
    );

    // PGSSLCERT/PGSSLKEY win over the default files.
    let bob = lab.client_ca.issue(&LeafSpec::client("bob"));
    let c = pki::write_file(lab.home.path(), "bob.crt", bob.cert_pem.as_bytes(), 0o644);
    let k = pki::write_file(lab.home.path(), "bob.key", bob.key_pem.as_bytes(), 0o600);
    let target = lab.target("bob", "certdb", "");
    let (cs, ks) = (c.display().to_string(), k.display().to_string());
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        lab.home.path(),
        None,
        &[("PGSSLCERT", &cs), ("PGSSLKEY", &ks)],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let session = run.expect_finding("tls_session", "info");
    assert_eq!(
        crate::support::doctor::evidence(session, "server_sees_client_dn"),
        "/CN=bob"
    );
}

#[test]
fn a_p521_client_key_leaves_the_tls_verdicts_undetermined() {
    // libpq signs with P-521; ring cannot. The doctor must not pretend to know the answer.
    let lab = lab();
    let dir = lab.home.path();
    pki::write_file(
        dir,
        "ca.crt",
        lab.client_ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    pki::write_file(
        dir,
        "ca.key",
        lab.client_ca.issued.key_pem.as_bytes(),
        0o600,
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-521",
            "-nodes",
            "-keyout",
            "p521.key",
            "-subj",
            "/CN=alice",
            "-out",
            "p521.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "p521.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "p521.crt",
        ],
    );
    std::fs::set_permissions(
        dir.join("p521.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let target = lab.target(
        "alice",
        "certdb",
        &format!("sslcert={0}/p521.crt sslkey={0}/p521.key", dir.display()),
    );
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", "--format", "json"],
        dir,
        None,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.cell("verify-full"),
        (None, true, Some("client_key_unsupported".into()))
    );
    run.expect_finding("client_key_unsupported", "error");
}

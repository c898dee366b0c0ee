//! Hostile TLS peers and hostile protocol replies that a real server never produces.

use std::time::Duration;

use crate::support::doctor::run_doctor;
use crate::support::fake_peer::{error_response, spawn, Step};
use crate::support::pki::{Ca, LeafSpec};
use crate::support::tls_peer::{self, After};

fn doctor(
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
    home: &std::path::Path,
) -> crate::support::doctor::DoctorRun {
    let target = format!("host=localhost port={port} user=alice dbname=app");
    let mut args = vec![target.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let run = run_doctor(&args, home, None, env);
    crate::support::doctor::assert_within_deadline(&run, &args);
    run
}

fn leaf_peer(spec: LeafSpec, after: After) -> (Ca, u16) {
    let ca = Ca::root("Hostile CA");
    let leaf = ca.issue(&spec);
    let port = tls_peer::spawn(vec![leaf.cert_der.clone()], leaf.key_pem.clone(), after);
    (ca, port)
}

#[test]
fn close_at_once() {
    let port = spawn(vec![Step::Close], 2);
    let home = tempfile::tempdir().unwrap();
    let run = doctor(port, &[], &[], home.path());
    assert_eq!(run.code, 2, "{}", run.stdout);
    run.expect_finding("not_postgres", "error");
}

#[test]
fn tls_only_port_is_named_and_direct_negotiation_suggested() {
    // What a TLS server answers to an SSLRequest it reads as a broken record: an alert.
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]),
            Step::Close,
        ],
        2,
    );
    let home = tempfile::tempdir().unwrap();
    let run = doctor(port, &[], &[], home.path());
    assert_eq!(run.code, 2);
    let f = run.expect_finding("not_postgres", "error");
    assert!(
        f["fix"].as_str().unwrap().contains("sslnegotiation=direct"),
        "{f}"
    );
}

#[test]
fn slowloris_reply_and_handshake_end_at_the_deadline() {
    let mut dribble = vec![Step::Read(8)];
    for b in b"N\0\0\0\x10" {
        dribble.push(Step::Sleep(Duration::from_secs(1)));
        dribble.push(Step::Send(vec![*b]));
    }
    let port = spawn(dribble, 2);
    let home = tempfile::tempdir().unwrap();
    let run = doctor(
        port,
        &[
            "--sslmode",
            "prefer",
            "--connect-timeout",
            "2",
            "--timeout",
            "6",
        ],
        &[],
        home.path(),
    );
    assert!(
        run.elapsed < Duration::from_secs(12),
        "took {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.expect_finding("connect_timeout", "error");

    let mut handshake = vec![Step::Read(8), Step::Send(b"S".to_vec())];
    for b in [0x16u8, 0x03, 0x03, 0x00, 0x40, 0x02, 0x00] {
        handshake.push(Step::Sleep(Duration::from_secs(1)));
        handshake.push(Step::Send(vec![b]));
    }
    let port = spawn(handshake, 2);
    let run = doctor(
        port,
        &["--sslmode", "require", "--timeout", "3"],
        &[],
        home.path(),
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    let f = run.expect_finding("connect_timeout", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("TLS handshake"),
        "{f}"
    );
}

#[test]
fn handshake_that_stops_halfway() {
    let port = spawn(
        // After the ClientHello's record header: half a ServerHello, then nothing.
        vec![
            Step::Read(8),
            Step::Send(b"S".to_vec()),
            Step::Read(5),
            Step::Send(vec![0x16, 0x03, 0x03, 0x00, 0x50, 0x02, 0x00, 0x00]),
            Step::Sleep(Duration::from_secs(20)),
        ],
        2,
    );
    let home = tempfile::tempdir().unwrap();
    let run = doctor(
        port,
        &["--sslmode", "require", "--timeout", "3"],
        &[],
        home.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.expect_finding("connect_timeout", "error");
    assert!(run.elapsed < Duration::from_secs(10));
}

#[test]
fn error_response_without_terminator_invalid_utf8_and_a_megabyte_of_fields() {
    let home = tempfile::tempdir().unwrap();
    // No terminator and invalid UTF-8: the message is still shown.
    let body = b"SFATAL\0C28000\0Mbad \xff\xfe bytes";
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(body);
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"N".to_vec()),
            Step::ReadStartup,
            Step::Send(msg),
            Step::Close,
        ],
        2,
    );
    let run = doctor(port, &["--sslmode", "prefer"], &[], home.path());
    assert_eq!(run.code, 1);
    let f = run.expect_finding("server_refused", "error");
    assert!(
        crate::support::doctor::evidence(f, "server_message")
            .as_str()
            .unwrap()
            .starts_with("bad"),
        "{f}"
    );

    // Just over 1 MiB of fields: refused by the length check, never allocated.
    let big = "x".repeat((1 << 20) + 16);
    let port = spawn(
        vec![
            Step::Read(8),
            Step::Send(b"N".to_vec()),
            Step::ReadStartup,
            Step::Send(error_response("28000", &big)),
            Step::Close,
        ],
        2,
    );
    let run = doctor(port, &["--sslmode", "prefer"], &[], home.path());
    assert_eq!(run.code, 1);
    run.expect_finding("protocol_violation", "error");
}

#[test]
fn sasl_with_an_unknown_mechanism() {
    let (_ca, port) = leaf_peer(
        LeafSpec::server("localhost", &["localhost"], &[]),
        After::UnknownSasl,
    );
    let home = tempfile::tempdir().unwrap();
    let run = doctor(
        port,
        &["--sslmode", "require"],
        &[("PGPASSWORD", "secret-1")],
        home.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("auth_method_unsupported", "error");
    assert!(f["summary"].as_str().unwrap().contains("FOO-MECH"), "{f}");
}

#[test]
fn scram_server_final_with_a_bad_signature_is_not_success() {
    let (_ca, port) = leaf_peer(
        LeafSpec::server("localhost", &["localhost"], &[]),
        After::BadScramSignature,
    );
    let home = tempfile::tempdir().unwrap();
    let run = doctor(
        port,
        &["--sslmode", "require"],
        &[("PGPASSWORD", "secret-1")],
        home.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("scram_server_proof_invalid", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("did not prove"),
        "{f}"
    );
    assert!(!run.stdout.contains("secret-1"));
}

#[test]
fn a_chain_of_fifty_certificates() {
    let root = Ca::root("Deep Root");
    let mut cas = vec![root.intermediate("Deep 1")];
    for i in 2..=49 {
        let next = cas.last().unwrap().intermediate(&format!("Deep {i}"));
        cas.push(next);
    }
    let leaf = cas
        .last()
        .unwrap()
        .issue(&LeafSpec::server("localhost", &["localhost"], &[]));
    let mut chain = vec![leaf.cert_der.clone()];
    chain.extend(cas.iter().rev().map(|c| c.issued.cert_der.clone()));
    assert_eq!(chain.len(), 50);
    let port = tls_peer::spawn(chain, leaf.key_pem.clone(), After::Close);
    let home = tempfile::tempdir().unwrap();
    let root_file = crate::support::pki::write_file(
        home.path(),
        "root.crt",
        root.issued.cert_pem.as_bytes(),
        0o644,
    );
    let rf = format!("--sslrootcert={}", root_file.display());
    let run = doctor(
        port,
        &["--sslmode", "verify-full", &rf, "--timeout", "20"],
        &[],
        home.path(),
    );
    assert_eq!(run.json["server_chain"].as_array().unwrap().len(), 50);
    // The chain verifies; the peer then hangs up, which is what the verdict names.
    assert_eq!(
        run.cell("verify-full").2.as_deref(),
        Some("connection_lost"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_64_kib_certificate_and_a_nul_in_the_names() {
    let names: Vec<String> = (0..2600)
        .map(|i| format!("host-{i:05}.example.test"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut spec = LeafSpec::server("localhost", &refs, &[]);
    spec.dns.push("localhost".into());
    let (_ca, port) = leaf_peer(spec, After::Close);
    let home = tempfile::tempdir().unwrap();
    let run = doctor(
        port,
        &["--sslmode", "require", "--timeout", "10"],
        &[],
        home.path(),
    );
    assert!(matches!(run.code, 1 | 2), "{}", run.stdout);
    let codes: Vec<&str> = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"tls_handshake_failed") || codes.contains(&"connection_lost"),
        "{codes:?}"
    );

    let ca = Ca::root("Nul CA");
    let leaf = ca.issue(&LeafSpec::server(
        "good.example\0.evil.example",
        &["good.example\0.evil.example"],
        &[],
    ));
    let port = tls_peer::spawn(
        vec![leaf.cert_der.clone()],
        leaf.key_pem.clone(),
        After::Close,
    );
    let root_file = crate::support::pki::write_file(
        home.path(),
        "nul-root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    let rf = format!("--sslrootcert={}", root_file.display());
    let target = format!("host=good.example hostaddr=127.0.0.1 port={port} user=alice dbname=app");
    let run = run_doctor(
        &[&target, "--sslmode", "verify-full", &rf, "--format", "json"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("server_cert_hostname_mismatch", "error");
    assert!(
        f["summary"].as_str().unwrap().contains("embedded null"),
        "{f}"
    );
}

#[test]
fn a_sha1_signature_is_too_weak_for_security_level_2() {
    // A real PostgreSQL server refuses to load such a certificate, so a scripted peer serves it.
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let sh = |args: &[&str]| {
        let out = crate::support::pg::run_with_timeout(
            std::process::Command::new("openssl")
                .current_dir(dir)
                .args(args),
            Duration::from_secs(60),
        );
        assert!(out.success(), "openssl {args:?}: {}", out.stderr);
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=Weak Digest CA",
    ]);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("leaf.key"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    sh(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "leaf.csr",
    ]);
    sh(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-sha1",
        "-days",
        "30",
        "-extfile",
        "ext",
        "-out",
        "leaf.crt",
    ]);
    let pem = std::fs::read(dir.join("leaf.crt")).unwrap();
    let der = pgtls_doctor::trust::pem_certificates(&pem)
        .unwrap()
        .remove(0);
    let port = tls_peer::spawn(vec![der], leaf_key.serialize_pem(), After::Close);
    let rf = format!("--sslrootcert={}", dir.join("ca.crt").display());
    let run = doctor(port, &["--sslmode", "verify-ca", &rf], &[], dir);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = run.expect_finding("server_cert_weak_key", "error");
    assert!(
        crate::support::doctor::evidence(f, "openssl_error")
            .as_str()
            .unwrap()
            .contains("too weak"),
        "{f}"
    );
}

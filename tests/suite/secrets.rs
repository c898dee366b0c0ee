//! Issue 5: secrets in every input channel at once never appear in any output.

use crate::support::doctor::run_doctor;
use crate::support::pg::{tls_server, PgConfig};
use crate::support::pki::{self, LeafSpec};

const SECRETS: [&str; 6] = [
    "Conninfo-Secret-11",
    "Env-Secret-22",
    "Pgpass-Secret-33",
    "Sslpassword-Secret-44",
    "Admin-Uri-Secret-55",
    "Service-Secret-66",
];

#[test]
fn no_secret_from_any_channel_reaches_stdout_stderr_or_json() {
    let (ca, pg) = tls_server(PgConfig {
        hba: "host all all 127.0.0.1/32 scram-sha-256\n".into(),
        setup_sql: vec![
            format!("CREATE ROLE u1 LOGIN PASSWORD '{}'", SECRETS[0]),
            format!("ALTER ROLE postgres PASSWORD '{}'", SECRETS[4]),
        ],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    pki::write_file(
        home.path(),
        ".pgpass",
        format!("*:*:*:*:{}\n", SECRETS[2]).as_bytes(),
        0o600,
    );
    let service = pki::write_file(
        home.path(),
        "services.conf",
        format!("[svc]\npassword={}\nsslmode=require\n", SECRETS[5]).as_bytes(),
        0o600,
    );
    let client = ca.issue(&LeafSpec::client("u1"));
    let cert = pki::write_file(home.path(), "c.crt", client.cert_pem.as_bytes(), 0o644);
    let key = pki::write_file(home.path(), "c.key", client.key_pem.as_bytes(), 0o600);
    let target = format!(
        "host=localhost port={} user=u1 dbname=postgres password={} service=svc sslcert={} sslkey={}",
        pg.port,
        SECRETS[0],
        cert.display(),
        key.display()
    );
    let admin = format!(
        "postgresql://postgres:{}@localhost:{}/postgres?sslmode=require",
        SECRETS[4], pg.port
    );
    let sslpassword = format!("--sslpassword={}", SECRETS[3]);
    let service_env = service.display().to_string();
    let env = [
        ("PGPASSWORD", SECRETS[1]),
        ("PGSERVICEFILE", service_env.as_str()),
    ];
    for format in ["text", "json"] {
        let run = run_doctor(
            &[
                &target,
                "--format",
                format,
                "--color",
                "always",
                &sslpassword,
                "--admin",
                &admin,
            ],
            home.path(),
            Some(&home.path().join(".pgpass")),
            &env,
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        for secret in SECRETS {
            assert!(!run.stdout.contains(secret), "{format}: {secret} in stdout");
            assert!(!run.stderr.contains(secret), "{format}: {secret} in stderr");
        }
        if format == "json" {
            let settings = run.json["target"]["settings"].as_array().unwrap();
            let pw = settings.iter().find(|s| s["name"] == "password").unwrap();
            assert_eq!(pw["value"], "<redacted>", "{pw}");
            assert_eq!(pw["source"], "connection string");
            // The --admin connection read the rules with its own password.
            assert!(run.finding("hba_rule").is_some(), "{}", run.stdout);
        }
    }
    // Usage errors quote the URI as libpq does, without its password.
    let run = run_doctor(
        &[&format!("postgresql://u1:{}@[::1/db", SECRETS[0])],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 3);
    assert!(!run.stderr.contains(SECRETS[0]), "{}", run.stderr);
    assert!(run.stderr.contains("u1:<redacted>@"), "{}", run.stderr);
}

/// A pgbouncer.ini or an auth_file given where the doctor expects pg_hba.conf, pg_ident.conf
/// or a targets file: its unparsable lines are reported without their passwords, hashes or
/// verifiers, in every format, and an auth_file entry is never taken for a host name.
#[test]
fn credentials_in_the_wrong_file_are_never_echoed() {
    let home = tempfile::tempdir().unwrap();
    let ini = pki::write_file(
        home.path(),
        "pgbouncer.ini",
        b"[databases]\napp = host=db password=Ini-Secret-77 user=app\n[pgbouncer]\nauth_file = users.txt\n",
        0o600,
    );
    let users = pki::write_file(
        home.path(),
        "users.txt",
        b"\"app\" \"md5aabbccddeeff00112233445566778899\"\n\"bob\" \"SCRAM-SHA-256$4096:c2FsdA==$Verifier-Secret-88:c2VydmVy\"\n\"carol\" \"Plain-Secret-99\"\n",
        0o600,
    );
    let secrets = [
        "Ini-Secret-77",
        "aabbccddeeff0011",
        "Verifier-Secret-88",
        "Plain-Secret-99",
    ];
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let target = format!("127.0.0.1:{closed}");
    let (ini, users) = (ini.to_str().unwrap(), users.to_str().unwrap());
    let runs: Vec<Vec<&str>> = vec![
        vec!["hba", "lint", ini],
        vec!["hba", "lint", "--format", "json", ini],
        vec!["hba", "lint", users],
        vec!["hba", "lint", "--format", "json", users],
        vec![&target, "--hba", ini, "--format", "json", "--timeout", "3"],
        vec![&target, "--hba", users, "--timeout", "3"],
        vec!["--targets", users, "--timeout", "3"],
        vec!["--targets", users, "--format", "junit", "--timeout", "3"],
    ];
    for args in runs {
        let run = run_doctor(&args, home.path(), None, &[]);
        for secret in secrets {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{args:?} shows {secret}:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    let run = run_doctor(&["--targets", users], home.path(), None, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("auth_file entry"), "{}", run.stderr);
}

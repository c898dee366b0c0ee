//! `--check`: only the connections libpq makes at the requested sslmode. Against a server
//! whose pg_hba.conf has only hostssl lines it leaves no FATAL or ERROR in the server's log,
//! where the full six-mode diagnosis leaves "no pg_hba.conf entry ... no encryption".

use crate::support::doctor::{assert_agrees_with_psql, run_doctor, DoctorRun};
use crate::support::pg::{tls_server, PgConfig, PgServer};
use crate::support::pki::write_file;

fn log_lines_after(pg: &PgServer, offset: usize) -> Vec<String> {
    // The backend writes its last lines as it exits; give them a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    pg.log()[offset..]
        .lines()
        .filter(|l| l.contains("FATAL:") || l.contains("ERROR:"))
        .map(String::from)
        .collect()
}

fn diagnose(target: &str, mode: &str, check: bool, home: &std::path::Path) -> DoctorRun {
    let mut args = vec![target, "--sslmode", mode, "--format", "json"];
    if check {
        args.push("--check");
    }
    run_doctor(&args, home, None, &[])
}

#[test]
fn check_leaves_no_fatal_in_a_hostssl_only_servers_log() {
    let (ca, pg) = tls_server(PgConfig {
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let root = write_file(
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

    // The full diagnosis tries plaintext too, and the server logs its refusal.
    let offset = pg.log().len();
    let full = diagnose(&target, "prefer", false, home.path());
    assert_eq!(full.code, 0, "{}", full.stdout);
    let logged = log_lines_after(&pg, offset);
    assert!(
        logged.iter().any(|l| l.contains("no pg_hba.conf entry")),
        "{logged:?}"
    );

    for mode in ["prefer", "require", "verify-ca", "verify-full"] {
        let offset = pg.log().len();
        let run = diagnose(&target, mode, true, home.path());
        assert_eq!(run.code, 0, "{mode}: {}", run.stdout);
        assert_eq!(run.cell(mode), (Some(true), true, None), "{mode}");
        assert_eq!(
            run.json["probe"]["connections"], 1,
            "{mode}: one connection"
        );
        let logged = log_lines_after(&pg, offset);
        assert!(logged.is_empty(), "{mode}: the check left {logged:?}");
        // What needs a plaintext connection is undetermined, not guessed.
        assert_eq!(run.cell("disable").0, None, "{mode}");
        assert_eq!(run.cell("disable").2.as_deref(), Some("not_probed"));
    }
    // Against psql, the requested mode's verdict (and every determined one) agrees.
    let run = diagnose(&target, "verify-full", true, home.path());
    assert_agrees_with_psql(&run, &pg.psql_path(), &target, home.path(), None);
}

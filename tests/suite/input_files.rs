//! Issue 5: every file option against garbage, binary data, empty files, directories,
//! unreadable paths and files of gigabytes. Files libpq reads give findings naming the file;
//! files only the doctor reads give exit 3 naming the file. Never a panic, never a hang.

use std::path::{Path, PathBuf};

use crate::support::doctor::run_doctor;
use crate::support::pg::{tls_server, PgConfig};
use crate::support::pki::{self, LeafSpec};

/// The bad inputs, each as a path.
fn bad_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let empty = pki::write_file(dir, "empty", b"", 0o600);
    let binary = pki::write_file(
        dir,
        "binary",
        &[0u8, 0xff, 0x13, 0x37, 0, 1, 2, 3, 0x80, 0x81],
        0o600,
    );
    let garbage = pki::write_file(
        dir,
        "garbage",
        b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
        0o600,
    );
    let directory = dir.join("a-directory");
    std::fs::create_dir_all(&directory).unwrap();
    // Through a regular file: ENOTDIR, unreadable even for root.
    let unreadable = empty.join("below-a-file");
    let huge = dir.join("huge");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(3 << 30).unwrap(); // 3 GiB, sparse
    std::fs::set_permissions(&huge, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    vec![
        ("empty", empty),
        ("binary", binary),
        ("garbage", garbage),
        ("directory", directory),
        ("unreadable", unreadable),
        ("huge", huge),
    ]
}

fn codes(run: &crate::support::doctor::DoctorRun) -> Vec<String> {
    run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str().map(String::from))
        .collect()
}

fn names_the_file(run: &crate::support::doctor::DoctorRun, path: &Path) -> bool {
    let p = path.display().to_string();
    run.stdout.contains(&p) || run.stderr.contains(&p)
}

#[test]
fn files_libpq_reads_give_findings_naming_the_file() {
    let (ca, pg) = tls_server(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let root = pki::write_file(dir, "root.crt", ca.issued.cert_pem.as_bytes(), 0o644);
    let client = ca.issue(&LeafSpec::client("postgres"));
    let cert = pki::write_file(dir, "client.crt", client.cert_pem.as_bytes(), 0o644);
    let target = format!(
        "host=localhost port={} user=postgres dbname=postgres",
        pg.port
    );
    for (what, bad) in bad_files(dir) {
        let b = bad.display().to_string();
        let r = root.display().to_string();
        let c = cert.display().to_string();
        let cases: [(&str, Vec<String>, &[&str]); 4] = [
            (
                "sslrootcert",
                vec![format!("--sslrootcert={b}")],
                &["root_cert_unreadable", "root_cert_missing"],
            ),
            (
                "sslcert",
                vec![format!("--sslcert={b}"), format!("--sslrootcert={r}")],
                &["client_cert_unreadable", "client_key_missing"],
            ),
            (
                "sslkey",
                vec![
                    format!("--sslcert={c}"),
                    format!("--sslkey={b}"),
                    format!("--sslrootcert={r}"),
                ],
                &["client_key_unreadable", "client_key_missing"],
            ),
            (
                "sslcrl",
                vec![format!("--sslcrl={b}"), format!("--sslrootcert={r}")],
                &["crl_ignored"],
            ),
        ];
        for (option, flags, expected) in cases {
            let mut args = vec![
                target.as_str(),
                "--sslmode",
                "verify-full",
                "--format",
                "json",
            ];
            args.extend(flags.iter().map(String::as_str));
            let run = run_doctor(&args, dir, None, &[]);
            assert!(
                matches!(run.code, 0 | 1),
                "{option} {what}: exit {}\n{}",
                run.code,
                run.stderr
            );
            let found = codes(&run);
            // sslcert through a non-directory is "no certificate" (libpq does the same), and a
            // CRL path that does not exist is not used at all: neither has anything to name.
            let silent = what == "unreadable" && matches!(option, "sslcert" | "sslcrl");
            if silent {
                continue;
            }
            assert!(
                found.iter().any(|c| expected.contains(&c.as_str())),
                "{option} {what}: {found:?}\n{}",
                run.stdout
            );
            assert!(
                names_the_file(&run, &bad),
                "{option} {what}: the file is not named\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn files_only_the_doctor_reads_are_usage_errors_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    for (what, bad) in bad_files(dir) {
        let b = bad.display().to_string();
        for args in [
            vec!["hba", "lint", b.as_str()],
            vec!["127.0.0.1:1", "--hba", b.as_str()],
            vec!["127.0.0.1:1", "--server-log", b.as_str()],
        ] {
            let run = run_doctor(&args, dir, None, &[]);
            // An empty or garbage pg_hba.conf is readable: it is reported as a lint error.
            let readable_text = matches!(what, "empty" | "garbage") && args[0] == "hba";
            if readable_text {
                assert_eq!(run.code, 1, "{args:?}: {}", run.stdout);
                assert!(
                    run.stdout.contains("hba_parse_error"),
                    "{args:?}: {}",
                    run.stdout
                );
                continue;
            }
            // A server log is read from its tail, bounded, so any readable file will do (real
            // logs run to gigabytes); an empty or garbage --hba is readable text too.
            let runs = matches!(what, "empty" | "garbage")
                || (args[1] == "--server-log" && matches!(what, "binary" | "huge"));
            if runs {
                assert!(
                    matches!(run.code, 1 | 2),
                    "{args:?}: {} {}",
                    run.code,
                    run.stderr
                );
                continue;
            }
            assert_eq!(
                run.code, 3,
                "{args:?} ({what}): {}\n{}",
                run.stdout, run.stderr
            );
            assert!(
                run.stderr.contains(&b),
                "{args:?} ({what}) does not name the file: {}",
                run.stderr
            );
        }
    }
}

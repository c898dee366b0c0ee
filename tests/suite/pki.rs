//! `pki DIR`: what it writes, installed into a real PostgreSQL with the commands it printed,
//! gets psql a verify-full session with the `cert` method, and the doctor finds nothing wrong.

use std::process::Command;

use crate::support::doctor::{binary, run_doctor};
use crate::support::pg::{run_with_timeout, PgConfig, PgServer};
use crate::support::psql::run_psql;

/// The lines of the printed section that starts with `# {title}`, up to the blank line.
fn section<'a>(printed: &'a str, title: &str) -> Vec<&'a str> {
    printed
        .lines()
        .skip_while(|l| !l.starts_with(&format!("# {title}")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn what_pki_prints_installs_and_verifies_with_the_cert_method() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "skipped: the printed `install -o postgres` commands need root (CI runs as root)"
        );
        return;
    }
    let pg = PgServer::start(PgConfig {
        setup_sql: vec!["CREATE ROLE alice LOGIN".into()],
        ..Default::default()
    });
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("pki");
    let out = run_with_timeout(
        Command::new(binary()).args([
            "pki",
            dir.to_str().unwrap(),
            "--server-name",
            "localhost",
            "--server-ip",
            "127.0.0.1",
            "--client",
            "alice",
            "--server-dir",
            pg.data_dir().to_str().unwrap(),
            "--port",
            &pg.port.to_string(),
            "--client-network",
            "127.0.0.1/32",
        ]),
        std::time::Duration::from_secs(30),
    );
    assert!(out.success(), "pki failed: {}", out.stderr);
    let printed = out.stdout;

    // The commands, run as printed.
    let installs = section(&printed, "On the server");
    assert_eq!(installs.len(), 3, "{printed}");
    for line in &installs {
        assert!(
            line.starts_with("install -o postgres -g postgres -m 06"),
            "{line}"
        );
        let run = Command::new("sh").args(["-c", line]).output().unwrap();
        assert!(
            run.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let conf = section(&printed, "postgresql.conf");
    let mut settings = conf.join("\n");
    settings.push('\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(pg.data_dir().join("postgresql.conf"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, settings.as_bytes()))
        .unwrap();
    let hba = section(&printed, "pg_hba.conf");
    assert!(hba.iter().any(|l| l.ends_with(" cert")), "{printed}");
    pg.write_hba_and_reload(&hba.join("\n"));

    // psql, with the connection string printed for alice.
    let psql_line = section(&printed, "alice, with libpq")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no psql line:\n{printed}"));
    // The words as a shell reads the printed line.
    let words = shell_words(psql_line);
    assert_eq!(words[0], "psql", "{psql_line}");
    let conninfo = words[1].as_str();
    assert!(conninfo.contains("sslmode=verify-full"), "{conninfo}");
    let psql = run_psql(&pg.psql_path(), conninfo, home.path(), None);
    assert!(psql.ok, "psql refused: {}", psql.stderr);
    assert_eq!(psql.encrypted, Some(true));

    // The doctor, with the check it printed: no error, no warning.
    let check = section(&printed, "Check it")[0];
    let words = shell_words(check);
    assert_eq!(words[0], "pgtls-doctor", "{check}");
    let target = words[1].as_str();
    let run = run_doctor(
        &[target, "--sslmode", "verify-full", "--format", "json"],
        home.path(),
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let findings = run.json["findings"].as_array().unwrap();
    let serious: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
    assert_eq!(run.cell("verify-full"), (Some(true), true, None));
}

/// The words of a printed command line, as sh reads them (quotes removed, nothing run).
fn shell_words(line: &str) -> Vec<String> {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("for w in {line}; do printf '%s\\0' \"$w\"; done"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn pki(args: &[&str]) -> crate::support::pg::CmdOutput {
    run_with_timeout(
        Command::new(binary()).arg("pki").args(args),
        std::time::Duration::from_secs(60),
    )
}

#[test]
fn a_refused_request_writes_nothing_and_never_panics() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("pki");
    let d = dir.to_str().unwrap();
    for (args, says) in [
        (
            vec![d, "--server-name", "x", "--client", "ca"],
            "would overwrite the ca.* files",
        ),
        (
            vec![d, "--server-name", "x", "--client", "server"],
            "server.* files",
        ),
        (
            vec![d, "--server-name", "x", "--client", "al", "--client", "al"],
            "named twice",
        ),
        (
            vec![d, "--server-name", "x", "--ca-days", "3000000"],
            "at most 36500",
        ),
    ] {
        let out = pki(&args);
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(3),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!dir.exists(), "{args:?} wrote {}", dir.display());
    }
    // A rerun after a refusal works: nothing was left to refuse it.
    let out = pki(&[d, "--server-name", "x", "--client", "alice"]);
    assert!(out.success(), "{}", out.stderr);
}

#[test]
fn printed_commands_quote_every_path_for_the_shell() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("my pki");
    let out = pki(&[
        dir.to_str().unwrap(),
        "--server-name",
        "localhost",
        "--client",
        "alice",
        "--server-dir",
        "/srv/$(id) pg",
    ]);
    assert!(out.success(), "{}", out.stderr);
    let printed = out.stdout;
    let installs: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("install "))
        .collect();
    assert_eq!(installs.len(), 3, "{printed}");
    for line in installs {
        // As the shell reads it: the paths whole, `$(id)` never run.
        let words = shell_words(line);
        assert_eq!(words.len(), 9, "{line}: {words:?}");
        assert!(
            words[7].starts_with(&dir.display().to_string()),
            "{line}: {words:?}"
        );
        assert!(words[8].starts_with("/srv/$(id) pg/"), "{line}: {words:?}");
    }
    let psql = printed.lines().find(|l| l.starts_with("psql ")).unwrap();
    let words = shell_words(psql);
    assert_eq!(words.len(), 2, "{psql}");
    assert!(words[1].contains("sslrootcert='"), "{psql}");
    assert!(words[1].contains("my pki/ca.crt'"), "{psql}");
    let conf = section(&printed, "postgresql.conf");
    assert!(
        conf.contains(&"ssl_cert_file = '/srv/$(id) pg/server.crt'"),
        "{conf:?}"
    );
    let jdbc = printed.lines().find(|l| l.starts_with("jdbc:")).unwrap();
    assert!(jdbc.contains("my%20pki"), "{jdbc}");
    assert!(!jdbc.contains(' '), "{jdbc}");
}

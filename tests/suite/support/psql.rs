//! Run the real `psql` (libpq) as the reference client for differential
//! tests: whatever pgtls-doctor says about a connection should agree with
//! what libpq actually does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::pg::{run_with_timeout, scrub_pg_env};

/// The query psql runs: `t` if the session is encrypted, `f` if not.
pub const SSL_QUERY: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

/// What happened when psql tried to connect.
#[derive(Clone, Debug)]
pub struct PsqlOutcome {
    /// psql exited with status 0.
    pub ok: bool,
    /// When `ok`: whether the session was TLS-encrypted.
    pub encrypted: Option<bool>,
    /// psql's stderr (libpq's error message when `!ok`).
    pub stderr: String,
}

/// Run `psql -w -X -At -c "<SSL_QUERY>" "<conninfo>"`.
///
/// The environment is the test's minus every `PG*` variable, plus
/// `HOME=home` (libpq's `~/.postgresql/{root.crt,root.crl,postgresql.crt,
/// postgresql.key}` and `~/.pgpass` are looked up there), `PGPASSFILE` =
/// `passfile` or a path that does not exist, `PGCONNECT_TIMEOUT=10` and
/// `LC_ALL=C`. psql is killed after 30 s.
pub fn run_psql(psql: &Path, conninfo: &str, home: &Path, passfile: Option<&Path>) -> PsqlOutcome {
    run_psql_env(psql, conninfo, home, passfile, &[])
}

/// [`run_psql`] with extra environment variables (PGSSLCRLDIR and the like).
pub fn run_psql_env(
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
    env: &[(&str, &str)],
) -> PsqlOutcome {
    let nopass = home.join(".pgtls-doctor-test-no-such-pgpass");
    let mut cmd = Command::new(psql);
    scrub_pg_env(&mut cmd)
        .env("HOME", home)
        .env("PGPASSFILE", passfile.unwrap_or(&nopass))
        .env("PGCONNECT_TIMEOUT", "10")
        .envs(env.iter().copied())
        .args(["-w", "-X", "-At", "-c", SSL_QUERY])
        .arg(conninfo);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    let ok = out.success();
    let mut stderr = out.stderr;
    if out.timed_out {
        stderr.push_str("\n[test harness: psql killed after 30 s]\n");
    }
    PsqlOutcome {
        ok,
        encrypted: ok.then(|| out.stdout.trim() == "t"),
        stderr,
    }
}

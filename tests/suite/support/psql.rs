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

/// How psql tells whether its session is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslSeenBy {
    /// The server's pg_stat_ssl row (psql's connection is the server's backend's).
    Server,
    /// libpq itself (`\conninfo` prints "SSL connection"), then `select 1`: behind a
    /// pooler, pg_stat_ssl describes the pooler's connection to the server instead.
    Client,
}

/// [`run_psql`] with extra environment variables (PGSSLCRLDIR and the like).
pub fn run_psql_env(
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
    env: &[(&str, &str)],
) -> PsqlOutcome {
    run_psql_seen_by(psql, conninfo, home, passfile, env, SslSeenBy::Server)
}

/// [`run_psql_env`], with the encryption read as `seen_by` says.
pub fn run_psql_seen_by(
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
    env: &[(&str, &str)],
    seen_by: SslSeenBy,
) -> PsqlOutcome {
    let nopass = home.join(".pgtls-doctor-test-no-such-pgpass");
    let mut cmd = Command::new(psql);
    scrub_pg_env(&mut cmd)
        .env("HOME", home)
        .env("PGPASSFILE", passfile.unwrap_or(&nopass))
        .env("PGCONNECT_TIMEOUT", "10")
        .envs(env.iter().copied())
        .args(["-w", "-X", "-At"])
        .args(match seen_by {
            SslSeenBy::Server => vec!["-c", SSL_QUERY],
            SslSeenBy::Client => vec!["-c", "\\conninfo", "-c", "select 1"],
        })
        .arg(conninfo);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    let ok = out.success();
    let mut stderr = out.stderr;
    if out.timed_out {
        stderr.push_str("\n[test harness: psql killed after 30 s]\n");
    }
    PsqlOutcome {
        ok,
        encrypted: ok.then(|| match seen_by {
            SslSeenBy::Server => out.stdout.trim() == "t",
            SslSeenBy::Client => out.stdout.contains("SSL connection ("),
        }),
        stderr,
    }
}

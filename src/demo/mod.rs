//! `pgtls-doctor demo`: the first run. A throwaway PostgreSQL on this machine with a PKI made
//! on the spot and the mistakes the guides lead people into (fixtures/demo/scenarios.json),
//! each diagnosed beside what psql says for the same connection. Every process, port and
//! file it makes is removed at the end, on error and on Ctrl-C; `--keep` leaves the server.

pub mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::app::{RunContext, RunOptions};
use crate::catalogue::Code;
use crate::pki;
use crate::plan::{Environment, FlagSettings};
use crate::render::Colour;
use server::{Server, ServerError};

/// The scenarios, compiled in from the file the tests read too.
const SCENARIOS: &str = include_str!("../../fixtures/demo/scenarios.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    pub user: String,
    pub cert: String,
    pub root: String,
    pub host: String,
    #[serde(default)]
    pub hba_edit: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// The code the verify-full cell fails with; None: it works.
    pub expect: Option<String>,
    /// Codes the report must also carry.
    #[serde(default)]
    pub also: Vec<String>,
}

#[derive(Deserialize)]
struct ScenarioFile {
    scenarios: Vec<Scenario>,
}

pub fn scenarios() -> Vec<Scenario> {
    serde_json::from_str::<ScenarioFile>(SCENARIOS)
        .expect("fixtures/demo/scenarios.json is valid (a unit test checks it)")
        .scenarios
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("could not make the demo's certificates: {0}")]
    Pki(String),
    #[error(transparent)]
    Certificates(#[from] crate::pki::PkiError),
    #[error("could not write the output: {0}")]
    Write(#[from] std::io::Error),
}

pub struct DemoOptions {
    /// Leave the server running and say how to connect.
    pub keep: bool,
    pub colour: Colour,
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

fn write_private(path: &Path, contents: &str, mode: u32) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The server's rules before any scenario edits them.
const HBA: &str = "hostssl app alice 127.0.0.1/32 cert\nhostssl app bob 127.0.0.1/32 cert\n";

/// Sets the server up: PKI, configuration, roles.
fn set_up(server: &mut Server) -> Result<(), DemoError> {
    let (demo_ca, demo_ca_pem, _) = pki::ca("Demo CA", 30)?;
    let (_, other_ca_pem, _) = pki::ca("Some Other CA", 30)?;
    // The server certificate names localhost only: connecting to 127.0.0.1 fails verify-full.
    let host = "localhost"
        .to_string()
        .try_into()
        .map_err(|e: rcgen::Error| DemoError::Pki(e.to_string()))?;
    let server_cert = pki::leaf(
        &demo_ca,
        "localhost",
        vec![SanType::DnsName(host)],
        ExtendedKeyUsagePurpose::ServerAuth,
        days(-1),
        days(30),
    )?;
    let crt = server.write_server_file("server.crt", server_cert.cert_pem.as_bytes(), 0o644)?;
    let key = server.write_server_file(
        "server.key",
        server_cert.key.serialize_pem().as_bytes(),
        0o600,
    )?;
    let ca_file = server.write_server_file("root.crt", demo_ca_pem.as_bytes(), 0o644)?;
    let client = server.client_dir();
    write_private(&client.join("ca.crt"), &demo_ca_pem, 0o644)?;
    write_private(&client.join("other-ca.crt"), &other_ca_pem, 0o644)?;
    for (name, cn, valid) in [
        ("alice", "alice", (-1, 30)),
        ("bob", "bob", (-1, 30)),
        ("carol", "carol", (-1, 30)),
        ("alice-expired", "alice", (-30, -2)),
    ] {
        let made = pki::leaf(
            &demo_ca,
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            days(valid.0),
            days(valid.1),
        )?;
        write_private(&client.join(format!("{name}.crt")), &made.cert_pem, 0o644)?;
        write_private(
            &client.join(format!("{name}.key")),
            &made.key.serialize_pem(),
            0o600,
        )?;
    }
    let conf = format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
        crt.display(),
        key.display(),
        ca_file.display()
    );
    server.start(&conf, HBA)?;
    for sql in [
        "CREATE ROLE alice LOGIN",
        "CREATE ROLE bob LOGIN",
        "CREATE ROLE carol LOGIN",
        "CREATE DATABASE app",
    ] {
        server.sql(sql)?;
    }
    Ok(())
}

/// The connection string of a scenario.
fn conninfo(s: &Scenario, port: u16, client: &Path) -> String {
    let file = |name: &str| client.join(name).display().to_string();
    format!(
        "host={} port={port} user={} dbname=app sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        s.host,
        s.user,
        file(&format!("{}.crt", s.root)),
        file(&format!("{}.crt", s.cert)),
        file(&format!("{}.key", s.cert)),
    )
}

/// What psql says for the same connection: its error, or that it connected.
fn psql_says(bin_dir: &Path, conninfo: &str, home: &Path) -> String {
    let mut cmd = std::process::Command::new(bin_dir.join("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("PGPASSFILE", home.join("no-passfile"))
        .env("PGCONNECT_TIMEOUT", "10")
        .env("LC_ALL", "C")
        .args(["-w", "-X", "-At", "-c", "SELECT 'connected as ' || current_user || ', TLS ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
        .arg(conninfo);
    match server::run(&mut cmd, Duration::from_secs(30)) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("(psql did not run: {e})"),
    }
}

/// The outcome of one scenario.
pub struct Outcome {
    pub name: String,
    pub as_expected: bool,
}

pub fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<Vec<Outcome>, DemoError> {
    let result = run_scenarios(options, out);
    // After a signal the handler's thread owns the exit (130), whatever happened here.
    yield_to_interrupt();
    result
}

fn run_scenarios(options: &DemoOptions, out: &mut dyn Write) -> Result<Vec<Outcome>, DemoError> {
    let bin_dir = server::find_binaries()?;
    let mut server = Server::create(bin_dir.clone())?;
    let _interrupts = on_interrupt(server.leftovers.clone());
    set_up(&mut server)?;
    let version = server.sql("SHOW server_version").unwrap_or_default();
    writeln!(
        out,
        "pgtls-doctor demo: PostgreSQL {} on 127.0.0.1:{}, files in {}\n",
        version.trim(),
        server.port,
        server.leftovers.dir.display()
    )?;
    let client = server.client_dir();
    let scenarios = scenarios();
    let mut outcomes = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        if s.hba_edit.as_deref() == Some("clientcert=1") {
            // The guides' old spelling: PostgreSQL 14+ refuses the file and keeps the old rules.
            server.write_hba(&HBA.replacen(" cert\n", " cert clientcert=1\n", 1))?;
            server.reload()?;
        }
        let target = conninfo(s, server.port, &client);
        writeln!(out, "── {}/{}  {}", i + 1, scenarios.len(), s.title)?;
        writeln!(out, "   {target}\n")?;
        writeln!(out, "psql says:")?;
        for line in psql_says(&bin_dir, &target, &client).lines() {
            writeln!(out, "   {}", crate::untrusted::for_terminal(line))?;
        }
        writeln!(out, "\npgtls-doctor says:")?;
        let report = diagnose(s, &target, &server, &client)?;
        crate::render::text::summary(&report, options.colour, out)?;
        let as_expected = expected(s, &report);
        if !as_expected {
            writeln!(
                out,
                "   (the demo expected {}; this machine differs)",
                s.expect.as_deref().unwrap_or("a working connection")
            )?;
        }
        if s.hba_edit.is_some() {
            writeln!(out, "\n`pgtls-doctor hba lint` on the edited file:")?;
            lint_summary(&server, major_version(&version), options.colour, out)?;
        }
        writeln!(out)?;
        outcomes.push(Outcome {
            name: s.name.clone(),
            as_expected,
        });
    }
    if options.keep {
        server.keep();
        writeln!(
            out,
            "The server keeps running (--keep). Connect with:\n   psql \"{}\"\nas the superuser:\n   psql -h {} -p {} -U postgres\nStop it and remove every file with:\n   {} -D {} stop -m fast && rm -rf {}",
            conninfo(&scenarios[0], server.port, &client),
            server.socket_dir.display(),
            server.port,
            bin_dir.join("pg_ctl").display(),
            server.leftovers.data().display(),
            server.leftovers.dir.display()
        )?;
    } else {
        writeln!(
            out,
            "Done: the server is stopped and {} is removed.",
            server.leftovers.dir.display()
        )?;
    }
    Ok(outcomes)
}

fn expected(s: &Scenario, report: &crate::report::Report) -> bool {
    let cell = report.sslmodes.verify_full;
    let cell_ok = match &s.expect {
        None => cell.ok == Some(true),
        Some(code) => cell.code.map(Code::as_str) == Some(code.as_str()),
    };
    cell_ok
        && s.also
            .iter()
            .all(|c| report.findings.iter().any(|f| f.code.as_str() == c))
}

fn diagnose(
    s: &Scenario,
    target: &str,
    server: &Server,
    home: &Path,
) -> std::io::Result<crate::report::Report> {
    let env = Environment {
        vars: Default::default(),
        home: Some(home.to_path_buf()),
        os_user: Some(s.user.clone()),
    };
    let plan = match crate::plan::resolve(target, &FlagSettings::default(), &env) {
        Ok(plan) => plan,
        Err(e) => unreachable!("the demo's own conninfo is valid: {e}"),
    };
    let admin = s.admin.then(|| {
        crate::plan::resolve(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                server.socket_dir.display(),
                server.port
            ),
            &FlagSettings::default(),
            &env,
        )
        .ok()
    });
    let options = RunOptions {
        now: OffsetDateTime::now_utc().unix_timestamp(),
        timeout: Duration::from_secs(20),
        warn_days: 0,
        allow_cleartext_password: false,
        hba: None,
        server_log: Some(server.log_path()),
        admin: admin.flatten(),
        only_requested: false,
        pooler: None,
        pooler_log: None,
    };
    crate::probe::block_on(async {
        let context = RunContext::prepare(options, crate::slots::Slots::unlimited(), None).await;
        crate::app::run(&plan, &context, None).await
    })
}

/// "15.14 (Debian 15.14-0+deb12u1)" → 15; the demo's own server, so 17 if it cannot tell.
fn major_version(version: &str) -> u32 {
    version
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(17)
}

/// The edited pg_hba.conf linted as the demo's server (its major version) reads it.
fn lint_summary(
    server: &Server,
    pg_version: u32,
    colour: Colour,
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    let path: PathBuf = server.leftovers.data().join("pg_hba.conf");
    match crate::hba::load_hba(&path, pg_version) {
        Ok(file) => {
            let findings = crate::hba::lint::lint(&file, None, None, pg_version);
            let report = crate::report::lint_report(&path, pg_version, file.rules.len(), &findings);
            crate::render::text::lint(&report, colour, out)?;
        }
        Err(e) => writeln!(out, "   {e}")?,
    }
    Ok(())
}

/// Set once a signal arrived: the handler's thread then owns the exit, and the main thread,
/// whose server it is tearing down, must not exit first with an error of its own.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called on the main thread's way out with an error: after a signal, waits for the
/// handler to finish the clean-up and exit 130.
pub fn yield_to_interrupt() {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stop the server, remove the files, exit 130.
fn on_interrupt(leftovers: server::Leftovers) -> Option<std::thread::JoinHandle<()>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
    Some(std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            let message = format!(
                "pgtls-doctor demo: interrupted; the server is stopped and {} is removed",
                leftovers.dir.display()
            );
            leftovers.cleanup_and_exit(130, &message);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenarios_file_is_valid_and_names_real_codes() {
        let all = scenarios();
        assert!(all.len() >= 7);
        for s in &all {
            for code in s.expect.iter().chain(&s.also) {
                assert!(Code::parse(code).is_some(), "{}: {code}", s.name);
            }
            assert!(["ca", "other-ca"].contains(&s.root.as_str()), "{}", s.name);
            assert!(
                ["alice", "bob", "carol", "alice-expired"].contains(&s.cert.as_str()),
                "{}",
                s.name
            );
        }
    }
}

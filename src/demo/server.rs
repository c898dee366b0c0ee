//! The demo's throwaway PostgreSQL: found on this machine, created in a private temporary
//! directory, run as the postgres user when we are root (PostgreSQL refuses to run as
//! root), on 127.0.0.1 and a free port, and stopped and removed by `Drop`, by `cleanup`
//! (from the signal handler) or by the next demo if this one was killed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why the demo has no server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no PostgreSQL server binaries found (looked in $PGTLS_DEMO_PG_BIN, /usr/lib/postgresql/*/bin and `pg_config --bindir`): install them with `apt-get install postgresql` (Debian, Ubuntu) or `dnf install postgresql-server`, or run ./scripts/install-deps.sh")]
    NoBinaries,
    #[error("running as root, but there is no postgres user to run the server as (PostgreSQL refuses to run as root): create it, or run the demo as an ordinary user")]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Step { what: String, detail: String },
}

fn step(what: &str, detail: impl Into<String>) -> ServerError {
    ServerError::Step {
        what: what.into(),
        detail: detail.into(),
    }
}

/// A command's output within a deadline (the child is killed after it: a TimedOut error).
pub fn run(cmd: &mut Command, limit: Duration) -> std::io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait()? {
            Some(_) => return child.wait_with_output(),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", limit.as_secs()),
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The directory with `postgres`, `initdb`, `pg_ctl` and `psql`.
pub fn find_binaries() -> Result<PathBuf, ServerError> {
    let has = |d: &Path| {
        ["postgres", "initdb", "pg_ctl", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("PGTLS_DEMO_PG_BIN").map(PathBuf::from) {
        return if has(&dir) {
            Ok(dir)
        } else {
            Err(ServerError::NoBinaries)
        };
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    candidates.sort();
    if let Some((_, dir)) = candidates.pop() {
        return Ok(dir);
    }
    let bindir = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match bindir {
        Some(dir) if has(&dir) => Ok(dir),
        _ => Err(ServerError::NoBinaries),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The postgres user's uid and gid, when we are root.
fn server_ids() -> Result<Option<(u32, u32)>, ServerError> {
    if !is_root() {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(ServerError::NoPostgresUser);
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

/// What identifies a demo's server, for cleaning up from anywhere (a signal handler's thread).
#[derive(Debug, Clone)]
pub struct Leftovers {
    pub bin_dir: PathBuf,
    pub dir: PathBuf,
}

impl Leftovers {
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the server (immediately) and removes every file of the demo. One clean-up at a
    /// time: the signal handler's and the main thread's never interleave.
    pub fn cleanup(&self) {
        let _only_one = CLEANING.lock().unwrap_or_else(|e| e.into_inner());
        self.clean();
    }

    /// Cleans up and ends the process with `status`, never letting another clean-up start.
    pub fn cleanup_and_exit(&self, status: i32, message: &str) -> ! {
        let _only_one = CLEANING.lock().unwrap_or_else(|e| e.into_inner());
        self.clean();
        eprintln!("{message}");
        std::process::exit(status)
    }

    fn clean(&self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = run(
                server_cmd(&self.bin_dir.join("pg_ctl"), is_root())
                    .arg("-D")
                    .arg(self.data())
                    .args(["-m", "immediate", "-w", "-t", "10", "stop"]),
                Duration::from_secs(20),
            );
        }
        // A process still closing may add a file while the tree goes: try again briefly.
        for _ in 0..20 {
            match fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return,
            }
        }
    }
}

/// Held while a clean-up runs.
static CLEANING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn server_cmd(bin: &Path, as_postgres: bool) -> Command {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    // Our working directory may be closed to the postgres user.
    cmd.current_dir("/");
    cmd.env("LC_ALL", "C");
    cmd
}

/// The prefix of every demo directory, so a later demo can sweep what a killed one left.
pub const DIR_PREFIX: &str = "pgtls-doctor-demo-";

/// A running demo server.
pub struct Server {
    pub leftovers: Leftovers,
    pub port: u16,
    /// The Unix socket directory (the superuser connects there, trust).
    pub socket_dir: PathBuf,
    ids: Option<(u32, u32)>,
    /// `--keep`: Drop leaves the server running.
    kept: bool,
}

impl Server {
    /// A fresh, private directory: `client/` for the client's files (ours, 0700), `server/`
    /// for the server's (postgres's).
    pub fn create(bin_dir: PathBuf) -> Result<Server, ServerError> {
        let ids = server_ids()?;
        sweep_leftovers();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{nanos}", std::process::id()));
        fs::create_dir(&dir)
            .map_err(|e| step(&format!("creating {}", dir.display()), e.to_string()))?;
        // First: the marker that lets a later demo of this user sweep it if this one is killed.
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(MARKER))
            .map_err(|e| step("writing the demo's marker", e.to_string()))?;
        let server = Server {
            leftovers: Leftovers {
                bin_dir,
                dir: dir.clone(),
            },
            port: 0,
            socket_dir: dir.join("server"),
            ids,
            kept: false,
        };
        // The top directory must let the postgres user through to server/; client/ stays ours.
        set_mode(&dir, if ids.is_some() { 0o711 } else { 0o700 })?;
        fs::create_dir(dir.join("client")).map_err(|e| step("creating client/", e.to_string()))?;
        set_mode(&dir.join("client"), 0o700)?;
        fs::create_dir(dir.join("server")).map_err(|e| step("creating server/", e.to_string()))?;
        set_mode(&dir.join("server"), 0o700)?;
        server.own(&dir.join("server"))?;
        // initdb fills an empty data directory the server's user owns.
        fs::create_dir(dir.join("data")).map_err(|e| step("creating data/", e.to_string()))?;
        set_mode(&dir.join("data"), 0o700)?;
        server.own(&dir.join("data"))?;
        Ok(server)
    }

    pub fn client_dir(&self) -> PathBuf {
        self.leftovers.dir.join("client")
    }

    fn server_dir(&self) -> PathBuf {
        self.leftovers.dir.join("server")
    }

    fn own(&self, path: &Path) -> Result<(), ServerError> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| step(&format!("chown {}", path.display()), e.to_string()))?;
        }
        Ok(())
    }

    /// Writes a file the server reads.
    pub fn write_server_file(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<PathBuf, ServerError> {
        let path = self.server_dir().join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, contents)
            .map_err(|e| step(&format!("writing {}", path.display()), e.to_string()))?;
        set_mode(&path, mode)?;
        self.own(&path)?;
        Ok(path)
    }

    /// initdb, the configuration (TLS with the given files) and pg_hba.conf, then start.
    pub fn start(&mut self, conf: &str, hba: &str) -> Result<(), ServerError> {
        let data = self.leftovers.data();
        let as_postgres = self.ids.is_some();
        let initdb = run(
            server_cmd(&self.leftovers.bin_dir.join("initdb"), as_postgres)
                .arg("-D")
                .arg(&data)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]),
            Duration::from_secs(120),
        )
        .map_err(|e| step("initdb", e.to_string()))?;
        if !initdb.status.success() {
            return Err(step(
                "initdb",
                String::from_utf8_lossy(&initdb.stderr).into_owned(),
            ));
        }
        let mut settings = format!(
            "\n# pgtls-doctor demo\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             log_connections = on\nfsync = off\nmax_connections = 20\nshared_buffers = '16MB'\nlc_messages = 'C'\n",
            self.socket_dir.display()
        );
        settings.push_str(conf);
        append(&data.join("postgresql.conf"), &settings)?;
        self.write_hba(hba)?;
        let log = self.log_path();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| step("finding a free port", e.to_string()))?;
            let out = run(
                server_cmd(&self.leftovers.bin_dir.join("pg_ctl"), as_postgres)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!("-p {port}"))
                    .arg("start"),
                Duration::from_secs(75),
            )
            .map_err(|e| step("pg_ctl start", e.to_string()))?;
            if out.status.success() {
                self.port = port;
                return Ok(());
            }
            let logged = fs::read_to_string(&log).unwrap_or_default();
            if !logged.contains("Address already in use") {
                return Err(step("pg_ctl start", logged));
            }
        }
        Err(step("pg_ctl start", "no free port after five tries"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.server_dir().join("server.log")
    }

    pub fn write_hba(&self, hba: &str) -> Result<(), ServerError> {
        let path = self.leftovers.data().join("pg_hba.conf");
        let text = format!("local all postgres trust\n{hba}");
        fs::write(&path, text).map_err(|e| step("writing pg_hba.conf", e.to_string()))?;
        set_mode(&path, 0o600)?;
        self.own(&path)
    }

    /// Runs SQL as the superuser over the Unix socket.
    pub fn sql(&self, sql: &str) -> Result<String, ServerError> {
        let out = run(
            Command::new(self.leftovers.bin_dir.join("psql"))
                .env_remove("PGPASSWORD")
                .env("PGCONNECT_TIMEOUT", "10")
                .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&self.socket_dir)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ]),
            Duration::from_secs(30),
        )
        .map_err(|e| step("psql", e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(step(
                &format!("SQL {sql}"),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    /// Reloads the configuration and waits until the postmaster has done so.
    pub fn reload(&self) -> Result<(), ServerError> {
        let before = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        self.sql("SELECT pg_reload_conf()")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = fs::read(self.log_path()).unwrap_or_default();
            let tail = String::from_utf8_lossy(log.get(before as usize..).unwrap_or_default());
            if tail.contains("received SIGHUP") {
                // The postmaster accepts the next connection only after the reload.
                self.sql("SELECT 1")?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(step(
            "reload",
            "the server did not log the reload within 10 s",
        ))
    }
}

impl Server {
    /// Leaves the server and its files for the user (`--keep`).
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.kept {
            self.leftovers.cleanup();
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ServerError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| step(&format!("chmod {}", path.display()), e.to_string()))
}

fn append(path: &Path, text: &str) -> Result<(), ServerError> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| step(&format!("writing {}", path.display()), e.to_string()))
}

/// Removes what an earlier demo of this user left when it was killed: only a directory
/// this user owns (not a link), holding the marker the demo writes, whose demo process is
/// gone. A server still running there is stopped only when it is truly that directory's
/// postmaster (its working directory is that data directory), never the process a planted
/// postmaster.pid names.
fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let pid: i32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        let dir = entry.path();
        if alive || !made_by_this_user(&dir) {
            continue;
        }
        stop_own_postmaster(&dir.join("data"));
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The marker file every demo directory gets first.
const MARKER: &str = ".pgtls-doctor-demo";

/// A real directory (not a link) owned by this user, with the marker this user's demo wrote.
fn made_by_this_user(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let ours = |path: &Path, dir: bool| {
        fs::symlink_metadata(path).is_ok_and(|m| {
            m.uid() == me
                && if dir {
                    m.file_type().is_dir()
                } else {
                    m.file_type().is_file()
                }
        })
    };
    ours(dir, true) && ours(&dir.join(MARKER), false)
}

/// Stops the postmaster of `data` when one still runs: the pid its postmaster.pid names, if
/// that process's working directory is `data` itself (a postmaster runs in its data
/// directory). Anything else is left alone.
fn stop_own_postmaster(data: &Path) {
    let Ok(text) = crate::files::read_limited(&data.join("postmaster.pid"), 4096) else {
        return;
    };
    let pid: i32 = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let runs_here = pid > 0
        && match (
            fs::read_link(format!("/proc/{pid}/cwd")),
            fs::canonicalize(data),
        ) {
            (Ok(cwd), Ok(data)) => cwd == data,
            _ => false,
        };
    if !runs_here {
        return;
    }
    // SAFETY: SIGQUIT to the postmaster of our own leftover data directory (checked above).
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    for _ in 0..100 {
        // SAFETY: signal 0 only checks whether it still exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

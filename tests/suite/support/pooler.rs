//! Real poolers in front of the harness's servers: Debian's PgBouncer, started as the
//! server's user in a temporary directory on a free port, and stopped on drop (also when a
//! test fails).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pg::{chmod, chown_to_server, free_port, server_cmd, PgServer};

/// The PgBouncer binary (Debian's pgbouncer package).
pub fn pgbouncer_bin() -> PathBuf {
    let bin = PathBuf::from("/usr/sbin/pgbouncer");
    assert!(
        bin.exists(),
        "pgbouncer is not installed: run scripts/install-deps.sh (Debian's pgbouncer package)"
    );
    bin
}

/// How a PgBouncer is set up.
pub struct BouncerConfig {
    /// Lines for the [pgbouncer] section (auth_type, client_tls_*, server_tls_*, ...).
    pub settings: String,
    /// Users listed in auth_file, with an empty password.
    pub users: Vec<String>,
    /// `(cert_pem, key_pem)` for client_tls_cert_file / client_tls_key_file.
    pub tls: Option<(String, String)>,
    /// client_tls_ca_file contents.
    pub client_ca: Option<String>,
    /// server_tls_ca_file contents (what PgBouncer trusts for the server's certificate).
    pub server_ca: Option<String>,
    /// auth_hba_file contents (for auth_type = hba).
    pub hba: Option<String>,
}

pub struct PgBouncer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer with one database, `app`, on `server`. Panics with its log when it
    /// does not come up.
    pub fn start(server: &PgServer, cfg: BouncerConfig) -> PgBouncer {
        let tmp = tempfile::Builder::new()
            .prefix("pgtls-doctor-test-pgbouncer-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        chmod(&dir, 0o755);
        chown_to_server(&dir);
        let write = |name: &str, contents: &str, mode: u32| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            chmod(&path, mode);
            chown_to_server(&path);
            path
        };
        let userlist: String = cfg
            .users
            .iter()
            .map(|u| format!("\"{u}\" \"\"\n"))
            .collect();
        let auth_file = write("userlist.txt", &userlist, 0o600);
        let mut tls = String::new();
        if let Some((cert, key)) = &cfg.tls {
            let c = write("pooler.crt", cert, 0o644);
            let k = write("pooler.key", key, 0o600);
            tls.push_str(&format!(
                "client_tls_cert_file = {}\nclient_tls_key_file = {}\n",
                c.display(),
                k.display()
            ));
        }
        if let Some(ca) = &cfg.client_ca {
            let p = write("client-ca.crt", ca, 0o644);
            tls.push_str(&format!("client_tls_ca_file = {}\n", p.display()));
        }
        if let Some(hba) = &cfg.hba {
            let p = write("pgbouncer_hba.conf", hba, 0o644);
            tls.push_str(&format!("auth_hba_file = {}\n", p.display()));
        }
        if let Some(ca) = &cfg.server_ca {
            let p = write("server-ca.crt", ca, 0o644);
            tls.push_str(&format!("server_tls_ca_file = {}\n", p.display()));
        }
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let ini = format!(
                "[databases]\napp = host=127.0.0.1 port={} dbname=app\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_file = {}\nlogfile = {}\npidfile = {}\nclient_login_timeout = 3\n\
                 server_login_retry = 1\n{tls}{}\n",
                server.port,
                auth_file.display(),
                dir.join("pgbouncer.log").display(),
                dir.join("pgbouncer.pid").display(),
                cfg.settings
            );
            let ini_path = write("pgbouncer.ini", &ini, 0o600);
            let mut cmd: Command = server_cmd(&pgbouncer_bin());
            cmd.arg(&ini_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            let child = cmd.spawn().expect("spawn pgbouncer");
            let mut bouncer = PgBouncer {
                port,
                dir: dir.clone(),
                child,
                _tmp: tempfile::tempdir().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    bouncer._tmp = tmp;
                    return bouncer;
                }
                if let Ok(Some(_)) = bouncer.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_log = bouncer.log();
        }
        panic!("PgBouncer did not start:\n{last_log}");
    }

    /// PgBouncer's own log.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("pgbouncer.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    pub fn conninfo(&self, extra: &str) -> String {
        format!("host=localhost port={} dbname=app {extra}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes the signal on; the process group catches both.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// How a pgpool-II is set up (raw mode, one backend, health checks and failover off).
pub struct PgpoolConfig {
    /// pool_hba.conf (enable_pool_hba = on).
    pub pool_hba: String,
    /// `(cert_pem, key_pem)` for ssl_cert / ssl_key; None: ssl = off.
    pub tls: Option<(String, String)>,
    /// ssl_ca_cert contents (the CA for client certificates).
    pub client_ca: Option<String>,
}

/// A running pgpool-II (Debian's pgpool2 4.3); stopped on drop.
pub struct Pgpool {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

impl Pgpool {
    pub fn start(server: &PgServer, cfg: PgpoolConfig) -> Pgpool {
        let bin = PathBuf::from("/usr/sbin/pgpool");
        assert!(
            bin.exists(),
            "pgpool is not installed: run scripts/install-deps.sh (Debian's pgpool2 package)"
        );
        let tmp = tempfile::Builder::new()
            .prefix("pgtls-doctor-test-pgpool-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        chmod(&dir, 0o755);
        chown_to_server(&dir);
        let write = |name: &str, contents: &str, mode: u32| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            chmod(&path, mode);
            chown_to_server(&path);
            path
        };
        let hba = write("pool_hba.conf", &cfg.pool_hba, 0o644);
        let pcp = write("pcp.conf", "", 0o644);
        let mut ssl = String::from("ssl = off\n");
        if let Some((cert, key)) = &cfg.tls {
            let c = write("pooler.crt", cert, 0o644);
            let k = write("pooler.key", key, 0o600);
            ssl = format!(
                "ssl = on\nssl_cert = '{}'\nssl_key = '{}'\n",
                c.display(),
                k.display()
            );
        }
        if let Some(ca) = &cfg.client_ca {
            let p = write("client-ca.crt", ca, 0o644);
            ssl.push_str(&format!("ssl_ca_cert = '{}'\n", p.display()));
        }
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let pcp_port = free_port();
            let conf = format!(
                "backend_clustering_mode = 'raw'\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
                 unix_socket_directories = '{d}'\npcp_listen_addresses = ''\npcp_port = {pcp_port}\n\
                 pcp_socket_dir = '{d}'\nbackend_hostname0 = '127.0.0.1'\nbackend_port0 = {}\n\
                 backend_weight0 = 1\nbackend_flag0 = 'DISALLOW_TO_FAILOVER'\nenable_pool_hba = on\n\
                 pool_passwd = ''\nnum_init_children = 8\nmax_pool = 1\npid_file_name = '{d}/pgpool.pid'\n\
                 logdir = '{d}'\nlog_destination = 'stderr'\nfailover_on_backend_error = off\n\
                 health_check_period = 0\nsr_check_period = 0\nconnection_cache = off\n\
                 load_balance_mode = off\n{ssl}",
                server.port,
                d = dir.display()
            );
            let conf_path = write("pgpool.conf", &conf, 0o644);
            let log = std::fs::File::create(dir.join("pgpool.log")).unwrap();
            let mut cmd: Command = server_cmd(&bin);
            cmd.arg("-n")
                .arg("-f")
                .arg(&conf_path)
                .arg("-F")
                .arg(&pcp)
                .arg("-a")
                .arg(&hba)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            let child = cmd.spawn().expect("spawn pgpool");
            let mut pool = Pgpool {
                port,
                dir: dir.clone(),
                child,
                _tmp: None,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    pool._tmp = Some(tmp);
                    return pool;
                }
                if let Ok(Some(_)) = pool.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = pool.log();
        }
        panic!("pgpool-II did not start:\n{last_log}");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgpool.log")).unwrap_or_default()
    }

    pub fn conninfo(&self, extra: &str) -> String {
        format!("host=localhost port={} dbname=app {extra}", self.port)
    }
}

impl Drop for Pgpool {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // pgpool's children are in the same group: none may outlive the test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

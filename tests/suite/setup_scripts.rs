//! The set-up scripts on a machine that already runs PostgreSQL, the way Debian runs it
//! (`pg_createcluster` + `pg_ctlcluster start`): the quick start must leave that cluster
//! running and its start.conf as it was; a package install keeps only its own new cluster
//! from starting. apt-get, systemctl, service and update-rc.d are stand-ins that record
//! what they were asked; the clusters, pg_ctlcluster and pg_lsclusters are real.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::pg::{free_port, run_with_timeout, CmdOutput};

const VERSION: &str = "15";

/// A cluster made as Debian makes one, dropped (stopped first) when the test ends.
struct DebianCluster {
    name: String,
}

impl DebianCluster {
    fn start(tag: &str) -> DebianCluster {
        let name = format!("pgtlsdoctor{tag}{}", std::process::id());
        let port = free_port().to_string();
        let created = run(Command::new("pg_createcluster").args([VERSION, &name, "-p", &port]));
        assert!(created.success(), "pg_createcluster: {}", created.stderr);
        let cluster = DebianCluster { name };
        let started = run(Command::new("pg_ctlcluster").args([VERSION, &cluster.name, "start"]));
        assert!(started.success(), "pg_ctlcluster start: {}", started.stderr);
        assert!(cluster.is_online(), "the cluster did not start");
        cluster
    }

    fn start_conf(&self) -> PathBuf {
        Path::new("/etc/postgresql")
            .join(VERSION)
            .join(&self.name)
            .join("start.conf")
    }

    fn is_online(&self) -> bool {
        let listed = run(Command::new("pg_lsclusters").args(["--no-header", VERSION, &self.name]));
        listed.stdout.contains("online")
    }
}

impl Drop for DebianCluster {
    fn drop(&mut self) {
        let _ = run(Command::new("pg_dropcluster").args(["--stop", VERSION, &self.name]));
    }
}

fn run(cmd: &mut Command) -> CmdOutput {
    run_with_timeout(cmd, Duration::from_secs(120))
}

/// A PATH directory whose apt-get, systemctl, service and update-rc.d only append their
/// command line to `calls`. apt-get also runs `on_install` (a shell line) for `install`,
/// standing in for a package's postinst.
struct StandIns {
    dir: tempfile::TempDir,
}

impl StandIns {
    fn new(on_install: &str) -> StandIns {
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = dir.path().join("calls");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("bin dir");
        for tool in [
            "apt-get",
            "systemctl",
            "service",
            "update-rc.d",
            "invoke-rc.d",
        ] {
            let hook = if tool == "apt-get" { on_install } else { "" };
            let script = format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\ncase \"$*\" in *install*) {hook} ;; esac\nexit 0\n",
                calls.display()
            );
            let path = bin.join(tool);
            fs::write(&path, script).expect("write stand-in");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        StandIns { dir }
    }

    /// PATH with the stand-ins first and then the machine's own.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// A PATH that lacks the test toolchain (testssl, promtool, the poolers, zsh, groff):
    /// the machine of a user who has PostgreSQL and nothing of ours.
    fn path_without_test_tools(&self) -> String {
        let tools = self.dir.path().join("tools");
        fs::create_dir_all(&tools).expect("tools dir");
        for tool in [
            "bash",
            "sh",
            "env",
            "dirname",
            "id",
            "pkg-config",
            "psql",
            "dpkg-query",
            "grep",
            "awk",
            "pg_lsclusters",
            "pg_ctlcluster",
            "perl",
            "ls",
            "tr",
            "cat",
            "sed",
            "rm",
            "chmod",
            "python3",
        ] {
            if let Some(real) = which(tool) {
                let _ = std::os::unix::fs::symlink(real, tools.join(tool));
            }
        }
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            tools.display()
        )
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_quick_start_leaves_a_running_debian_cluster_untouched() {
    let cluster = DebianCluster::start("qs");
    let start_conf_before = fs::read(cluster.start_conf()).expect("start.conf");
    let stand_ins = StandIns::new("");
    let out = run(Command::new("bash")
        .arg(repo().join("scripts/install-deps.sh"))
        .env_clear()
        .env("PATH", stand_ins.path_without_test_tools())
        .env("HOME", "/root"));
    assert!(
        out.success(),
        "install-deps.sh failed: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        cluster.is_online(),
        "the user's cluster was stopped; the scripts asked: {}",
        stand_ins.calls()
    );
    assert_eq!(
        fs::read(cluster.start_conf()).expect("start.conf"),
        start_conf_before,
        "the user's start.conf was rewritten"
    );
    let calls = stand_ins.calls();
    for forbidden in ["systemctl", "service ", "update-rc.d", "invoke-rc.d"] {
        assert!(
            !calls.contains(forbidden),
            "the quick start called {forbidden}: {calls}"
        );
    }
    // What the quick start needs is here: it installs nothing, least of all the test
    // toolchain.
    assert!(!calls.contains("apt-get install"), "{calls}");
}

#[test]
fn a_package_install_keeps_only_its_own_new_cluster_from_starting() {
    let existing = DebianCluster::start("old");
    let start_conf_before = fs::read(existing.start_conf()).expect("start.conf");
    // The stand-in apt-get does what postgresql's postinst does: a new cluster, started.
    let new_name = format!("pgtlsdoctornew{}", std::process::id());
    let new_cluster = DebianCluster {
        name: new_name.clone(),
    };
    let postinst = format!(
        "pg_createcluster {VERSION} {new_name} -p {} --start >/dev/null 2>&1",
        free_port()
    );
    let stand_ins = StandIns::new(&postinst);
    let script = format!(
        ". '{}'; install_without_starting pgtls-doctor-no-such-package",
        repo().join("scripts/lib/packages.sh").display()
    );
    let out = run(Command::new("bash")
        .args(["-c", &script])
        .env("PATH", stand_ins.path()));
    assert!(out.success(), "install_without_starting: {}", out.stderr);
    assert!(
        stand_ins.calls().contains("apt-get install"),
        "{}",
        stand_ins.calls()
    );
    assert!(existing.is_online(), "the existing cluster was stopped");
    assert_eq!(
        fs::read(existing.start_conf()).expect("start.conf"),
        start_conf_before
    );
    assert!(
        !new_cluster.is_online(),
        "the cluster the install made still runs"
    );
    assert_eq!(
        fs::read_to_string(new_cluster.start_conf())
            .expect("new start.conf")
            .trim(),
        "manual"
    );
}

#[test]
fn install_sh_takes_a_prefix_and_uninstalls_exactly_what_it_installed() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let own_file = prefix.path().join("bin/someone-elses-tool");
    fs::create_dir_all(own_file.parent().unwrap()).unwrap();
    fs::write(&own_file, "not ours").unwrap();
    let binary = crate::support::doctor::binary();
    let install = |extra: &[&str]| {
        run(Command::new("bash")
            .arg(repo().join("scripts/install.sh"))
            .args(["--prefix", prefix.path().to_str().unwrap()])
            .args(["--binary", binary.to_str().unwrap()])
            .args(extra))
    };
    let out = install(&[]);
    assert!(out.success(), "install.sh: {}", out.stderr);
    let expected = [
        "bin/pgtls-doctor",
        "share/man/man1/pgtls-doctor.1",
        "share/bash-completion/completions/pgtls-doctor",
        "share/zsh/site-functions/_pgtls-doctor",
        "share/fish/vendor_completions.d/pgtls-doctor.fish",
    ];
    for file in expected {
        let path = prefix.path().join(file);
        assert!(path.is_file(), "{file} was not installed: {}", out.stderr);
    }
    let version = run(Command::new(prefix.path().join("bin/pgtls-doctor")).arg("--version"));
    assert!(
        version.stdout.starts_with("pgtls-doctor "),
        "{}",
        version.stdout
    );

    let out = install(&["--uninstall"]);
    assert!(out.success(), "install.sh --uninstall: {}", out.stderr);
    for file in expected {
        assert!(!prefix.path().join(file).exists(), "{file} was left behind");
    }
    assert_eq!(fs::read_to_string(&own_file).unwrap(), "not ours");
    let again = install(&["--uninstall"]);
    assert_eq!(
        again.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        again.stderr
    );
}

#[test]
fn doctor_sh_runs_the_binary_cargo_built_in_cargo_target_dir() {
    // A stand-in cargo "builds" a binary that says where it was found.
    let stand_ins = StandIns::new("");
    let target = tempfile::tempdir().expect("tempdir");
    let cargo = stand_ins.dir.path().join("bin/cargo");
    fs::write(
        &cargo,
        "#!/bin/sh\nmkdir -p \"$CARGO_TARGET_DIR/release\"\nprintf '#!/bin/sh\\necho built-in-target-dir \"$@\"\\n' > \"$CARGO_TARGET_DIR/release/pgtls-doctor\"\nchmod +x \"$CARGO_TARGET_DIR/release/pgtls-doctor\"\n",
    )
    .unwrap();
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(Command::new("bash")
        .arg(repo().join("scripts/doctor.sh"))
        .arg("--version")
        .env("PATH", stand_ins.path())
        .env("HOME", target.path())
        .env("CARGO_TARGET_DIR", target.path()));
    assert!(out.success(), "doctor.sh: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "built-in-target-dir --version");
}

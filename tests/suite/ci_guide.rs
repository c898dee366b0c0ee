//! docs/guides/ci.md's GitLab CI and GitHub Actions jobs: their YAML parses, and their
//! commands run, in order, against a real TLS server, with the doctor installed from an
//! archive made by scripts/release.sh and downloaded through the URL the job names. Only
//! the image's own package installation (apt-get) is skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::pg::{run_with_timeout, scrub_pg_env, tls_server, PgConfig, PgServer};
use crate::support::pki::write_file;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first ```yaml block after `heading` in the guide, parsed.
fn job_yaml(heading: &str) -> Yaml {
    let guide = fs::read_to_string(repo().join("docs/guides/ci.md")).unwrap();
    let section = guide
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no section {heading}"));
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .unwrap_or_else(|| panic!("no yaml block under {heading}"));
    let mut docs = YamlLoader::load_from_str(block)
        .unwrap_or_else(|e| panic!("{heading}: the YAML does not parse: {e}\n{block}"));
    assert_eq!(docs.len(), 1, "{heading}: one document");
    docs.remove(0)
}

/// What a job's commands run against: a TLS server, an endpoints file in a workspace, and
/// the doctor packed by release.sh, served as a file:// URL.
struct Stage {
    _pg: PgServer,
    workspace: tempfile::TempDir,
    archive_url: String,
    _dist: tempfile::TempDir,
}

fn stage() -> Stage {
    let (ca, pg) = tls_server(PgConfig {
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let workspace = tempfile::tempdir().unwrap();
    let root = write_file(
        workspace.path(),
        "root.crt",
        ca.issued.cert_pem.as_bytes(),
        0o644,
    );
    fs::create_dir(workspace.path().join("deploy")).unwrap();
    fs::write(
        workspace.path().join("deploy/db-endpoints.txt"),
        format!(
            "# the deploy's endpoints\nhost=localhost port={} user=postgres dbname=postgres sslrootcert={}\n",
            pg.port,
            root.display()
        ),
    )
    .unwrap();
    let dist = tempfile::tempdir().unwrap();
    let packed = run_with_timeout(
        Command::new("bash")
            .arg(repo().join("scripts/release.sh"))
            .arg("--binary")
            .arg(crate::support::doctor::binary())
            .arg("--out")
            .arg(dist.path()),
        Duration::from_secs(60),
    );
    assert!(packed.success(), "release.sh: {}", packed.stderr);
    let archive = PathBuf::from(packed.stdout.trim());
    assert!(archive.is_file(), "{}", packed.stdout);
    Stage {
        _pg: pg,
        workspace,
        archive_url: format!("file://{}", archive.display()),
        _dist: dist,
    }
}

/// Runs one job command with bash, as the runners do, in the workspace.
fn sh(stage: &Stage, command: &str, env: &[(String, String)]) -> (i32, String) {
    let mut cmd = Command::new("bash");
    scrub_pg_env(&mut cmd)
        .args(["-eo", "pipefail", "-c", command])
        .current_dir(stage.workspace.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    (
        out.status.and_then(|s| s.code()).unwrap_or(-1),
        format!("{}{}", out.stdout, out.stderr),
    )
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .unwrap_or_else(|| panic!("not a list: {yaml:?}"))
        .iter()
        .map(|y| y.as_str().unwrap().to_string())
        .collect()
}

/// The JUnit file the job left: one testcase, passed.
fn assert_junit_passed(stage: &Stage) {
    let junit = fs::read_to_string(stage.workspace.path().join("pgtls-junit.xml"))
        .expect("the job wrote pgtls-junit.xml");
    assert!(
        junit.contains("tests=\"1\" failures=\"0\" errors=\"0\""),
        "{junit}"
    );
}

#[test]
fn the_gitlab_job_installs_the_archive_and_checks_the_endpoints() {
    let yaml = job_yaml("## GitLab CI");
    let job = &yaml["tls-check"];
    assert_eq!(
        job["artifacts"]["reports"]["junit"].as_str(),
        Some("pgtls-junit.xml")
    );
    assert_eq!(job["artifacts"]["when"].as_str(), Some("always"));
    let stage = stage();
    let prefix = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, value) in job["variables"].as_hash().unwrap() {
        let key = key.as_str().unwrap().to_string();
        let value = match key.as_str() {
            "PGTLS_DOCTOR_ARCHIVE_URL" => stage.archive_url.clone(),
            "PGTLS_DOCTOR_PREFIX" => prefix.path().display().to_string(),
            _ => value.as_str().unwrap().to_string(),
        };
        env.push((key, value));
    }
    assert!(
        env.iter().any(|(k, _)| k == "PGTLS_DOCTOR_PREFIX"),
        "{env:?}"
    );
    env.push((
        "PATH".into(),
        format!(
            "{}:{}",
            prefix.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        ),
    ));
    env.push(("HOME".into(), stage.workspace.path().display().to_string()));
    let mut commands = strings(&job["before_script"]);
    commands.extend(strings(&job["script"]));
    let mut ran = 0;
    for command in commands.iter().filter(|c| !c.starts_with("apt-get")) {
        let (code, output) = sh(&stage, command, &env);
        assert_eq!(code, 0, "{command}: {output}");
        ran += 1;
    }
    assert!(ran >= 3, "{commands:?}");
    assert!(prefix.path().join("bin/pgtls-doctor").is_file());
    assert!(prefix
        .path()
        .join("share/man/man1/pgtls-doctor.1")
        .is_file());
    assert_junit_passed(&stage);
}

#[test]
fn the_github_job_installs_the_archive_and_checks_the_endpoints() {
    let yaml = job_yaml("## GitHub Actions");
    let job = &yaml["jobs"]["tls-check"];
    let steps = job["steps"].as_vec().unwrap();
    let publish = steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.contains("junit")))
        .expect("a step publishes the JUnit report");
    assert_eq!(publish["if"].as_str(), Some("always()"));
    assert_eq!(
        publish["with"]["report_paths"].as_str(),
        Some("pgtls-junit.xml")
    );
    let stage = stage();
    let home = tempfile::tempdir().unwrap();
    let github_path = home.path().join("github-path");
    fs::write(&github_path, "").unwrap();
    let base_path = std::env::var("PATH").unwrap();
    let mut ran = 0;
    for step in steps.iter().filter(|s| !s["run"].is_badvalue()) {
        let command = step["run"].as_str().unwrap();
        // The runner puts what earlier steps appended to $GITHUB_PATH in front of PATH.
        let added: Vec<String> = fs::read_to_string(&github_path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let env = vec![
            ("PGTLS_DOCTOR_ARCHIVE_URL".into(), stage.archive_url.clone()),
            ("HOME".into(), home.path().display().to_string()),
            ("GITHUB_PATH".into(), github_path.display().to_string()),
            ("PATH".into(), format!("{}:{base_path}", added.join(":"))),
        ];
        let (code, output) = sh(&stage, command, &env);
        assert_eq!(code, 0, "{command}: {output}");
        ran += 1;
    }
    assert_eq!(ran, 2, "install, then check");
    assert!(home.path().join(".local/bin/pgtls-doctor").is_file());
    assert_junit_passed(&stage);
}

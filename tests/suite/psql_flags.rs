//! psql's command lines, given to the doctor: -h, -p, -U, -d and psql's [DBNAME
//! [USERNAME]] mean what they mean to psql, including psql's rule that a connection
//! string's own values win over -h, -p and -U. Each command line is run by the real psql
//! too, and the doctor must resolve the server, user and database psql connected to.

use std::process::Command;

use crate::support::doctor::{run_bare, run_doctor};
use crate::support::pg::{run_with_timeout, scrub_pg_env, PgConfig, PgServer};

const WHO: &str = "select current_user || ' ' || current_database() || ' ' || inet_server_port()";

fn server() -> PgServer {
    PgServer::start(PgConfig {
        hba: "host all all 127.0.0.1/32 trust\n".into(),
        setup_sql: vec![
            "create role app login".into(),
            "create role bob login".into(),
            "create database app".into(),
            "create database bob".into(),
            "create database mydb".into(),
        ],
        ..Default::default()
    })
}

/// "user dbname port" of psql's session for this command line, or its error.
fn psql_connects_to(pg: &PgServer, args: &[String], env: &[(&str, &str)]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(pg.psql_path());
    scrub_pg_env(&mut cmd)
        .env("HOME", home.path())
        .env("PGCONNECT_TIMEOUT", "10")
        .envs(env.iter().copied())
        .args(["-X", "-At", "-w", "-c", WHO])
        .args(args);
    let out = run_with_timeout(&mut cmd, std::time::Duration::from_secs(30));
    assert!(out.success(), "psql {args:?}: {}", out.stderr);
    out.stdout.trim().to_string()
}

/// "user dbname port" the doctor resolved, after checking that it connected too.
fn doctor_resolves(args: &[String], env: &[(&str, &str)]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
    full.extend(["--check", "--format", "json"]);
    let run = run_doctor(&full, home.path(), None, env);
    assert_eq!(run.code, 0, "{args:?}: {}\n{}", run.stdout, run.stderr);
    let target = &run.json["target"];
    format!(
        "{} {} {}",
        target["user"].as_str().unwrap(),
        target["dbname"].as_str().unwrap(),
        target["port"]
    )
}

#[test]
fn psql_command_lines_reach_what_psql_reaches() {
    let pg = server();
    let host = pg.host.as_str();
    let port = pg.port.to_string();
    let uri = format!("postgresql://bob@{host}:{port}/mydb");
    let conninfo = format!("host={host} port={port} user=bob dbname=mydb");
    let (attached_host, attached_port) = (format!("-h{host}"), format!("-p{port}"));
    type Environment<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Vec<&str>, Environment)> = vec![
        (vec!["-h", host, "-p", &port, "-U", "app"], vec![]),
        (
            vec!["-h", host, "-p", &port, "-U", "app", "-d", "mydb"],
            vec![],
        ),
        (vec!["-h", host, "-p", &port, "-U", "app", "mydb"], vec![]),
        (vec!["-h", host, "-p", &port, "mydb", "bob"], vec![]),
        (
            vec!["--host", host, "--port", &port, "--username", "app"],
            vec![],
        ),
        (vec![&attached_host, &attached_port, "-Uapp"], vec![]),
        (
            vec!["-h", host, "-p", &port, "dbname=mydb user=bob"],
            vec![],
        ),
        // psql's rule: the connection string's values win over -h, -p and -U.
        (vec!["-h", host, "-p", "1", "-U", "app", &conninfo], vec![]),
        (vec!["-U", "app", "-d", &conninfo], vec![]),
        (vec!["-d", &uri], vec![]),
        // -U wins over PGUSER, PGDATABASE fills the database.
        (
            vec!["-h", host, "-p", &port, "-U", "app"],
            vec![("PGUSER", "bob"), ("PGDATABASE", "mydb")],
        ),
        // PGHOST and PGPORT fill what -U alone leaves.
        (vec!["-U", "bob"], vec![("PGHOST", host), ("PGPORT", &port)]),
        (vec!["-w", "-h", host, "-p", &port, "-U", "bob"], vec![]),
    ];
    for (args, env) in cases {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let psql = psql_connects_to(&pg, &args, &env);
        let doctor = doctor_resolves(&args, &env);
        assert_eq!(doctor, psql, "{args:?} {env:?}");
    }
}

#[test]
fn psql_flags_never_print_the_help_and_exit_0() {
    // `-h` used to be clap's help: a CI job written with psql's flags passed, testing nothing.
    let port = crate::support::pg::free_port().to_string();
    let (code, stdout, stderr) = run_bare(&["-h", "127.0.0.1", "-p", &port, "-U", "app"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains("Usage:"), "{stdout}");
    assert!(stdout.contains(&format!("127.0.0.1:{port}")), "{stdout}");

    for (args, says) in [
        (vec!["-W", "-h", "db"], "never prompts"),
        (
            vec!["-h", "db", "-c", "select 1"],
            "-c is one of psql's own options",
        ),
        (vec!["-h", "db", "-X"], "-X is one of psql's own options"),
        (vec!["-h"], "a value is required for '--host"),
        (
            vec!["-h", "db", "mydb", "bob", "extra"],
            "extra command-line argument \"extra\"",
        ),
    ] {
        let (code, stdout, stderr) = run_bare(&args);
        assert_eq!(code, 3, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("\\n"),
            "{args:?}: escaped newlines: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }

    for help in ["-?", "--help"] {
        let (code, stdout, _) = run_bare(&[help]);
        assert_eq!(code, 0);
        assert!(stdout.contains("--host"), "{stdout}");
    }
    // `--port` is a flag of its own now, not "a similar argument exists: '--format'".
    let (code, _, stderr) = run_bare(&["--port"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("'--port <PORT>'"), "{stderr}");
}

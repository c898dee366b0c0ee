//! `explain CODE`: a known code's four parts, and the closest codes for an unknown one.

use std::process::Command;

use crate::support::doctor::binary;

fn explain(code: &str) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(["explain", code])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_known_code_is_explained_in_four_parts() {
    let (code, stdout, _) = explain("server_cert_hostname_mismatch");
    assert_eq!(code, 0);
    for heading in [
        "What psql (libpq) says",
        "How to confirm it by hand",
        "How to fix it",
    ] {
        assert!(stdout.contains(heading), "{heading}:\n{stdout}");
    }
    assert!(stdout.contains("does not match host name"), "{stdout}");
}

#[test]
fn an_unknown_code_names_the_closest() {
    let (code, stdout, stderr) = explain("client_cert_expird");
    assert_eq!(code, 3);
    assert!(stdout.is_empty());
    assert!(stderr.contains("client_cert_expired"), "{stderr}");
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn codes_are_listed_found_in_any_case_and_given_as_json() {
    let (code, list, _) = run(&["explain", "--list"]);
    assert_eq!(code, 0);
    assert!(list.lines().count() > 40, "{list}");
    assert!(
        list.lines().any(|l| l.starts_with("server_cert_expired ")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("socket_connect_failed ")),
        "{list}"
    );

    let (code, upper, _) = run(&["explain", "SERVER_CERT_EXPIRED"]);
    assert_eq!(code, 0);
    assert!(upper.starts_with("server_cert_expired"), "{upper}");

    let (code, json, _) = run(&["explain", "--format", "json", "Server_Cert_Expired"]);
    assert_eq!(code, 0);
    let entry: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(entry["code"], "server_cert_expired");
    for key in [
        "phase",
        "default_severity",
        "meaning",
        "libpq_says",
        "confirm",
        "fix",
    ] {
        assert!(
            entry[key].as_str().is_some_and(|v| v.len() >= 4),
            "{key}: {entry}"
        );
    }
    let (code, all, _) = run(&["explain", "--list", "--format", "json"]);
    assert_eq!(code, 0);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), list.lines().count());
}

#[test]
fn no_entry_holds_a_placeholder_and_every_hand_check_terminates() {
    let (_, list, _) = run(&["explain", "--list", "--format", "json"]);
    let entries: serde_json::Value = serde_json::from_str(&list).unwrap();
    for entry in entries.as_array().unwrap() {
        let text = entry.to_string();
        for placeholder in ["not written yet", "TODO", "later issue", "placeholder"] {
            assert!(!text.contains(placeholder), "{placeholder}: {entry}");
        }
        // `openssl s_client` reads stdin and waits for the server to time out unless it is
        // given an empty one.
        let confirm = entry["confirm"].as_str().unwrap();
        for recipe in confirm.split('`').skip(1).step_by(2) {
            if recipe.contains("openssl s_client") {
                assert!(recipe.contains("</dev/null"), "{}: {recipe}", entry["code"]);
            }
        }
    }
}

#[test]
fn a_hand_check_recipe_ends_by_itself_against_a_real_server() {
    use crate::support::pg::{run_with_timeout, tls_server, PgConfig};
    let (_ca, pg) = tls_server(PgConfig {
        hba: "hostssl all all 127.0.0.1/32 trust\n".into(),
        ..Default::default()
    });
    let (_, json, _) = run(&["explain", "--format", "json", "server_cert_expired"]);
    let entry: serde_json::Value = serde_json::from_str(&json).unwrap();
    let recipe = entry["confirm"]
        .as_str()
        .unwrap()
        .split('`')
        .nth(1)
        .unwrap()
        .replace("HOST:PORT", &format!("127.0.0.1:{}", pg.port));
    let out = run_with_timeout(
        Command::new("bash").args(["-c", &recipe]),
        std::time::Duration::from_secs(20),
    );
    assert!(!out.timed_out, "the recipe hangs: {recipe}");
    assert!(
        out.stdout.contains("notAfter="),
        "{recipe}: {}{}",
        out.stdout,
        out.stderr
    );
}

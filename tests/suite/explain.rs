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
        "How drivers show it",
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

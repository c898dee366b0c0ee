//! `--generate`: the man page passes groff's warnings check, and the completions load in
//! bash and zsh (scripts/install-deps.sh installs groff and zsh).

use std::process::Command;

use crate::support::doctor::binary;

fn generated(what: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let out = Command::new(binary())
        .args(["--generate", what])
        .output()
        .unwrap();
    assert!(out.status.success(), "--generate {what}");
    let dir = tempfile::tempdir().unwrap();
    let name = if what == "complete-zsh" {
        "_pgtls-doctor"
    } else {
        "generated"
    };
    let path = dir.path().join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    (dir, path)
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed: run scripts/install-deps.sh"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_string()
}

#[test]
fn the_man_page_has_no_groff_warnings() {
    let (_dir, page) = generated("man");
    let out = Command::new(tool("groff"))
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    let roff = std::fs::read_to_string(&page).unwrap();
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH \"EXAMPLES\"",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(roff.contains(section), "{section} missing");
    }
    for code in ["0", "1", "2", "3"] {
        assert!(
            roff.contains(&format!(".TP\n.B {code}\n")),
            "exit status {code}"
        );
    }
    // Every subcommand is documented here with its options; no page of its own is
    // referred to, since none is installed.
    assert!(
        !roff.contains("pgtls\\-doctor\\-"),
        "a reference to another page"
    );
    for (subcommand, options) in [
        (
            "pgtls\\-doctor hba lint",
            &["\\-\\-ident", "\\-\\-conf", "\\-\\-pg\\-version"][..],
        ),
        (
            "pgtls\\-doctor pki",
            &["\\-\\-server\\-name", "\\-\\-client", "\\-\\-days"][..],
        ),
        ("pgtls\\-doctor demo", &["\\-\\-keep"][..]),
        ("pgtls\\-doctor explain", &["\\-\\-list"][..]),
    ] {
        let section = roff
            .split(&format!(".SS \"{subcommand}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {subcommand}"));
        let section = section.split(".SS").next().unwrap();
        for option in options {
            assert!(section.contains(option), "{subcommand}: {option} missing");
        }
    }
}

#[test]
fn completions_load_in_bash_and_zsh() {
    let (_dir, bash) = generated("complete-bash");
    let out = Command::new(tool("bash"))
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p pgtls-doctor",
            bash.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pgtls-doctor"));

    let (_dir, zsh) = generated("complete-zsh");
    let out = Command::new(tool("zsh"))
        .arg("-fc")
        .arg(format!(
            "autoload -U compinit && compinit -u && source '{}' && whence -w _pgtls-doctor",
            zsh.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "_pgtls-doctor: function"
    );
}

//! Advice that never weakens security: no fix in a report suggests plaintext access, `trust`,
//! `md5`, a weaker sslmode or a weaker pooler setting than the one in force, unless the
//! requested sslmode itself needs it (sslmode=disable: then the hostssl alternative comes
//! first). Every JSON report the suite produces passes through [`assert_never_weakens`],
//! so every scenario of every test is checked.

use serde_json::Value;

use super::doctor::MODES;

fn rank(mode: &str) -> Option<usize> {
    MODES.iter().position(|m| *m == mode)
}

/// The spans of a fix written between backticks: the lines and commands it asks for.
fn commands(fix: &str) -> impl Iterator<Item = &str> {
    fix.split('`').skip(1).step_by(2)
}

/// Why `fix` weakens what `requested` asks for, if it does.
pub fn weakening(fix: &str, requested: &str) -> Option<String> {
    let requested_rank = rank(requested)?;
    for (i, _) in fix.match_indices("sslmode=") {
        let named: String = fix[i + "sslmode=".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if rank(&named).is_some_and(|r| r < requested_rank) {
            return Some(format!("suggests sslmode={named}, weaker than {requested}"));
        }
    }
    for command in commands(fix) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let method_words = ["trust", "md5", "password"];
        if words.first() == Some(&"host") || words.first() == Some(&"hostnossl") {
            // A host line admits plaintext: only sslmode=disable needs one, and then the
            // hostssl alternative must come first.
            let hostssl_first = fix
                .find("hostssl")
                .is_some_and(|h| Some(h) < fix.find(command));
            if requested != "disable" || !hostssl_first {
                return Some(format!("suggests a plaintext line `{command}`"));
            }
        }
        if words.iter().any(|w| method_words.contains(w))
            && words
                .first()
                .is_some_and(|w| w.starts_with("host") || *w == "local")
        {
            return Some(format!("suggests a weak method in `{command}`"));
        }
    }
    for phrase in [
        "lower client_tls_sslmode",
        "ssl = off",
        "clientcert=no-verify",
    ] {
        if fix.contains(phrase) {
            return Some(format!("suggests \"{phrase}\""));
        }
    }
    None
}

/// Every finding's fix in a report (and in its hosts' findings) keeps the security in force.
pub fn assert_never_weakens(report: &Value) {
    let Some(requested) = report["target"]["sslmode"].as_str() else {
        return;
    };
    let mut findings: Vec<&Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for host in report["hosts"].as_array().into_iter().flatten() {
        findings.extend(host["findings"].as_array().into_iter().flatten());
    }
    for finding in findings {
        let Some(fix) = finding["fix"].as_str() else {
            continue;
        };
        if let Some(why) = weakening(fix, requested) {
            panic!(
                "{} at sslmode={requested}: the fix {why}: {fix}",
                finding["code"]
            );
        }
    }
}

//! pgbouncer.ini as PgBouncer 1.18 reads it: `[section]` headers, `key = value` lines, `;`
//! and `#` comments; the [pgbouncer] section's settings; and its auth_file, whose lines are
//! `"user" "password"` (the password is never kept).

use std::path::Path;

use super::{beside, unquote, Kind, PoolerConfig, Setting};

pub fn load(path: &Path, text: &str) -> PoolerConfig {
    let mut settings = Vec::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if section != "pgbouncer" {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            settings.push(Setting {
                name: key.trim().to_ascii_lowercase(),
                value: unquote(value),
                file: path.to_path_buf(),
                line: i + 1,
            });
        }
    }
    let mut config = PoolerConfig {
        kind: Kind::PgBouncer,
        path: path.to_path_buf(),
        settings,
        users: None,
        users_unreadable: None,
        pool_hba: None,
    };
    if let Some(file) = config.get("auth_file").map(|s| beside(path, &s.value)) {
        match crate::files::read_text(&file) {
            Ok(text) => config.users = Some(auth_file_users(&text)),
            Err(e) => config.users_unreadable = Some(format!("{}: {e}", file.display())),
        }
    }
    config
}

/// The user names of an auth_file: the first quoted word of each line.
pub fn auth_file_users(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('"')?;
            // "" inside the name stands for one quote.
            let mut name = String::new();
            let mut chars = rest.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                        continue;
                    }
                    return Some(name);
                }
                name.push(c);
            }
            None
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pgbouncer_section_and_the_auth_file_users() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.txt"),
            "\"alice\" \"\"\n\"o\"\"brien\" \"md5abc\"\n; comment\n",
        )
        .unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        let text = "[databases]\napp = host=db\n\n[pgbouncer]\nauth_type = cert ; why\nauth_file = users.txt\nclient_tls_sslmode = 'verify-full'\n";
        std::fs::write(&ini, text).unwrap();
        let config = load(&ini, text);
        assert_eq!(config.get("auth_type").unwrap().value, "cert");
        assert_eq!(config.get("auth_type").unwrap().line, 5);
        assert_eq!(
            config.value_or("client_tls_sslmode", "disable"),
            "verify-full"
        );
        assert!(
            config.get("app").is_none(),
            "[databases] is not [pgbouncer]"
        );
        assert_eq!(config.users.unwrap(), ["alice", "o\"brien"]);
    }
}

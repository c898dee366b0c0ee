//! pgbouncer.ini as PgBouncer 1.18 reads it: `[section]` headers, `key = value` lines, `;`
//! and `#` comments; the [pgbouncer] section's settings; and its auth_file, whose lines are
//! `"user" "password"` (the password is never kept).

use std::path::Path;

use super::{beside, unquote, Kind, PoolerConfig, Setting};

pub fn load(path: &Path, text: &str) -> PoolerConfig {
    let mut settings = Vec::new();
    let mut databases = Vec::new();
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
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match section.as_str() {
            "pgbouncer" => settings.push(Setting {
                name: key.trim().to_ascii_lowercase(),
                value: unquote(value),
                file: path.to_path_buf(),
                line: i + 1,
            }),
            // A database's value is a libpq-style connection string: kept whole.
            "databases" => databases.push(Setting {
                name: key.trim().to_string(),
                value: value.trim().to_string(),
                file: path.to_path_buf(),
                line: i + 1,
            }),
            _ => {}
        }
    }
    let mut config = PoolerConfig {
        kind: Kind::PgBouncer,
        path: path.to_path_buf(),
        settings,
        users: None,
        users_unreadable: None,
        pool_hba: None,
        databases,
        hba: None,
    };
    if let Some(file) = config.get("auth_hba_file").map(|s| beside(path, &s.value)) {
        // PgBouncer 1.18 reads the PostgreSQL 15 syntax (no regular expressions, includes).
        config.hba = Some(crate::hba::load_hba(&file, 15).map_err(|e| e.to_string()));
    }
    if let Some(file) = config.get("auth_file").map(|s| beside(path, &s.value)) {
        match crate::files::read_text(&file) {
            Ok(text) => config.users = Some(auth_file_users(&text)),
            Err(e) => config.users_unreadable = Some(format!("{}: {e}", file.display())),
        }
    }
    config
}

/// PgBouncer's connection to the server for `dbname`, as a libpq connection string that
/// makes the same TLS demands: the [databases] entry (or `*`), server_tls_sslmode as the
/// sslmode, server_tls_ca_file as sslrootcert (PgBouncer verifies only at verify-ca and
/// verify-full), server_tls_cert_file/key_file as the client certificate. None when the
/// file has no entry for the database.
pub fn server_hop(config: &PoolerConfig, dbname: &str, user: &str) -> Option<ServerHop> {
    let entry = database_entry(config, dbname)?;
    let mode = config
        .value_or("server_tls_sslmode", "prefer")
        .to_ascii_lowercase();
    use crate::conninfo::quote;
    // The [databases] entry is itself libpq's key=value syntax; the rest is quoted here.
    let mut conninfo = format!(
        "dbname={} user={} {}",
        quote(dbname),
        quote(user),
        entry.value
    );
    conninfo.push_str(&format!(" sslmode={}", quote(&mode)));
    let mut cited = vec![cited_without_password(entry)];
    for name in [
        "server_tls_sslmode",
        "server_tls_ca_file",
        "server_tls_cert_file",
        "server_tls_key_file",
    ] {
        if let Some(s) = config.get(name) {
            cited.push(s.cited());
        }
    }
    if mode.starts_with("verify") {
        if let Some(ca) = config.get("server_tls_ca_file") {
            conninfo.push_str(&format!(
                " sslrootcert={}",
                quote(&beside(&config.path, &ca.value).display().to_string())
            ));
        }
    }
    if let (Some(cert), Some(key)) = (
        config.get("server_tls_cert_file"),
        config.get("server_tls_key_file"),
    ) {
        conninfo.push_str(&format!(
            " sslcert={} sslkey={}",
            quote(&beside(&config.path, &cert.value).display().to_string()),
            quote(&beside(&config.path, &key.value).display().to_string())
        ));
    }
    Some(ServerHop {
        conninfo,
        sslmode: mode,
        cited,
    })
}

/// The [databases] entry PgBouncer uses for `dbname`: the last one of that name, else `*`.
fn database_entry<'a>(config: &'a PoolerConfig, dbname: &str) -> Option<&'a Setting> {
    let named = |name: &str| config.databases.iter().rev().find(|d| d.name == name);
    named(dbname).or_else(|| named("*"))
}

/// A [databases] entry, cited with any password hidden (read with the conninfo parser,
/// so quoting cannot smuggle it past).
pub fn cited_without_password(entry: &Setting) -> String {
    let value = match crate::conninfo::parse_conninfo(&entry.value) {
        Ok(pairs) => pairs
            .iter()
            .map(|(k, v)| match k.as_str() {
                "password" => format!("{k}=<hidden>"),
                _ => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "<not shown: not a connection string>".into(),
    };
    Setting {
        value,
        ..entry.clone()
    }
    .cited()
}

/// The pooler's connection to the server, to be checked with its own TLS settings.
#[derive(Debug, Clone)]
pub struct ServerHop {
    pub conninfo: String,
    pub sslmode: String,
    /// The settings it was built from, cited.
    pub cited: Vec<String>,
}

/// Who PgBouncer looks a user up as, with auth_query, when the user is not in auth_file:
/// the [databases] entry's `auth_user=` for `dbname` (or `*`), else the global auth_user,
/// cited. None: a user missing from auth_file is unknown to PgBouncer.
pub fn auth_query_user(config: &PoolerConfig, dbname: &str) -> Option<(String, String)> {
    let per_database = database_entry(config, dbname).and_then(|e| {
        e.value.split_whitespace().find_map(|word| {
            let user = word.strip_prefix("auth_user=")?.trim_matches('\'');
            Some((user.to_string(), cited_without_password(e)))
        })
    });
    per_database.or_else(|| {
        config
            .get("auth_user")
            .filter(|s| !s.value.is_empty())
            .map(|s| (s.value.clone(), s.cited()))
    })
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
        assert_eq!(config.users.as_deref().unwrap(), ["alice", "o\"brien"]);
        let hop = server_hop(&config, "app", "alice").unwrap();
        assert_eq!(hop.sslmode, "prefer");
        assert!(hop.conninfo.contains("host=db"));
        let entry = Setting {
            name: "app".into(),
            value: "host=db password='s3 cret' user=x".into(),
            file: ini.clone(),
            line: 2,
        };
        let cited = cited_without_password(&entry);
        assert!(
            cited.starts_with("app = host=db password=<hidden> user=x"),
            "{cited}"
        );
    }

    #[test]
    fn the_second_hop_keeps_a_user_and_paths_with_blanks_and_quotes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        let text = "[databases]\n* = host=db\n[pgbouncer]\nserver_tls_sslmode = verify-full\nserver_tls_ca_file = my ca's.crt\n";
        let config = load(&ini, text);
        let hop = server_hop(&config, "app db", "app user").unwrap();
        let pairs = crate::conninfo::parse_conninfo(&hop.conninfo).unwrap();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("user"), Some("app user"), "{}", hop.conninfo);
        assert_eq!(get("dbname"), Some("app db"));
        assert!(
            get("sslrootcert").unwrap().ends_with("my ca's.crt"),
            "{}",
            hop.conninfo
        );
    }
}

//! pgpool.conf as pgpool-II 4.3 reads it (`name = value`, `#` comments, quoted strings), and
//! the pool_hba.conf beside it (pgpool-II reads the file given with -a, by default
//! pool_hba.conf in the configuration directory).

use std::path::Path;

use super::{unquote, Kind, PoolerConfig, Setting};

pub fn load(path: &Path, text: &str) -> PoolerConfig {
    let settings = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            Some(Setting {
                name: key.trim().to_ascii_lowercase(),
                value: unquote(value),
                file: path.to_path_buf(),
                line: i + 1,
            })
        })
        .collect();
    let hba_path = path
        .parent()
        .unwrap_or(Path::new("."))
        .join("pool_hba.conf");
    let pool_hba = crate::files::read_text(&hba_path).ok().map(|text| {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(i, l)| (i + 1, l.trim().to_string()))
            .collect();
        (hba_path, lines)
    });
    PoolerConfig {
        kind: Kind::Pgpool,
        path: path.to_path_buf(),
        settings,
        users: None,
        users_unreadable: None,
        pool_hba,
        databases: Vec::new(),
        hba: None,
    }
}

/// pgpool-II's connection to backend 0, as a libpq connection string that comes closest:
/// with ssl = on it sends an SSLRequest, verifies the chain (no host name, no client
/// certificate) when ssl_ca_cert is set, and continues in plaintext when the server
/// refuses TLS, which no single libpq sslmode does.
pub fn server_hop(
    config: &PoolerConfig,
    dbname: &str,
    user: &str,
) -> Option<super::pgbouncer::ServerHop> {
    let host = config.get("backend_hostname0")?;
    let port = config.value_or("backend_port0", "5432");
    let ssl = config.value_or("ssl", "off").eq_ignore_ascii_case("on");
    let ca = config.get("ssl_ca_cert");
    let (mode, root, note) = match (ssl, ca) {
        (false, _) => ("disable", None, None),
        (true, None) => ("prefer", None, Some("pgpool-II with ssl = on and no ssl_ca_cert: TLS when the server offers it, unverified, else plaintext: libpq's prefer")),
        (true, Some(ca)) => ("verify-ca", Some(super::beside(&config.path, &ca.value)), Some("no libpq sslmode matches pgpool-II here: it verifies the chain with ssl_ca_cert (no host name) but still continues in plaintext when the server refuses TLS; checked as verify-ca, the TLS half")),
    };
    use crate::conninfo::quote;
    let mut conninfo = format!(
        "host={} port={} dbname={} user={} sslmode={mode}",
        quote(&host.value),
        quote(port),
        quote(dbname),
        quote(user)
    );
    if let Some(root) = root {
        conninfo.push_str(&format!(
            " sslrootcert={}",
            quote(&root.display().to_string())
        ));
    }
    let mut cited = vec![host.cited()];
    for name in ["backend_port0", "ssl", "ssl_ca_cert"] {
        if let Some(s) = config.get(name) {
            cited.push(s.cited());
        }
    }
    if let Some(note) = note {
        cited.push(note.to_string());
    }
    Some(super::pgbouncer::ServerHop {
        conninfo,
        sslmode: mode.to_string(),
        cited,
    })
}

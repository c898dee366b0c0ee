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
    }
}

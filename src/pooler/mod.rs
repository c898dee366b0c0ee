//! A pooler's own configuration and log, when the user gives them (--pooler-config,
//! --pooler-log): read as the pooler reads them, so that a finding can name the setting or
//! line that decided it. Parsing only; the judgement uses what is here (`eval`).

pub mod lint;
pub mod log;
pub mod pgbouncer;
pub mod pgpool;

use std::path::{Path, PathBuf};

/// Which pooler a configuration file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PgBouncer,
    Pgpool,
}

/// One setting as written, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Setting {
    /// `name = value (file line N)`, for evidence.
    pub fn cited(&self) -> String {
        format!(
            "{} = {} ({} line {})",
            self.name,
            self.value,
            self.file.display(),
            self.line
        )
    }
}

/// A pooler's configuration, read.
#[derive(Debug, Clone)]
pub struct PoolerConfig {
    pub kind: Kind,
    pub path: PathBuf,
    /// The settings of its main section (PgBouncer's [pgbouncer]; all of pgpool.conf).
    pub settings: Vec<Setting>,
    /// PgBouncer's auth_file users (None when it could not be read, with why).
    pub users: Option<Vec<String>>,
    pub users_unreadable: Option<String>,
    /// pgpool-II's pool_hba.conf lines (number, text), when found beside pgpool.conf.
    pub pool_hba: Option<(PathBuf, Vec<(usize, String)>)>,
    /// PgBouncer's [databases] entries: name and connection string, as settings.
    pub databases: Vec<Setting>,
    /// PgBouncer's auth_hba_file (auth_type = hba), read with the pg_hba.conf parser: its
    /// format is a subset of PostgreSQL's. The error when it could not be read.
    pub hba: Option<Result<crate::hba::HbaFile, String>>,
}

impl PoolerConfig {
    /// The last setting of that name (later lines win, as in both poolers).
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The setting's value, or the pooler's default.
    pub fn value_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).map_or(default, |s| s.value.as_str())
    }
}

/// Why a pooler configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read pooler configuration \"{}\": {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("\"{}\" is neither a pgbouncer.ini (no [pgbouncer] section) nor a pgpool.conf (no backend_hostname0, enable_pool_hba or ssl setting)", path.display())]
    Unknown { path: PathBuf },
}

/// Reads a pgbouncer.ini or a pgpool.conf, and the files it names.
pub fn load(path: &Path) -> Result<PoolerConfig, ConfigError> {
    let text = crate::files::read_text(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let lower = text.to_ascii_lowercase();
    if lower.lines().any(|l| l.trim() == "[pgbouncer]") {
        return Ok(pgbouncer::load(path, &text));
    }
    if [
        "backend_hostname0",
        "enable_pool_hba",
        "ssl_ca_cert",
        "backend_clustering_mode",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        return Ok(pgpool::load(path, &text));
    }
    Err(ConfigError::Unknown {
        path: path.to_path_buf(),
    })
}

/// A relative path in a pooler's file is relative to the file's directory.
fn beside(config: &Path, named: &str) -> PathBuf {
    let p = Path::new(named);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// A quoted or bare value: `'x'`, `"x"` or `x`, trailing comments cut.
fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['\'', '"'] {
        if let Some(rest) = v.strip_prefix(q) {
            if let Some(end) = rest.find(q) {
                return rest[..end].to_string();
            }
        }
    }
    v.split(['#', ';']).next().unwrap_or("").trim().to_string()
}

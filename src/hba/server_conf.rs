//! The postgresql.conf settings `hba lint --conf` needs, read as the server reads the file
//! (guc-file.l): `name = value` or `name value`, quoted values with '' and backslash escapes,
//! `#` comments, and `include`, `include_if_exists` and `include_dir` (relative to the
//! including file, `.conf` files of a directory in name order, at most 10 levels deep).
//! The last occurrence of a setting wins, wherever it was included from.

use std::path::{Path, PathBuf};

use crate::files::read_text;

/// postgresql.conf settings the lint needs, with where each was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConf {
    pub ssl: Option<bool>,
    pub ssl_ca_file: Option<String>,
    /// The file and line that set ssl_ca_file.
    pub ssl_ca_file_from: Option<(PathBuf, usize)>,
}

/// PostgreSQL's CONF_FILE_MAX_DEPTH.
const MAX_DEPTH: usize = 10;
/// Files read in all: a bound on fan-out (a file that includes itself several times).
const MAX_FILES: usize = 256;

/// Reads `path` and everything it includes.
pub fn load(path: &Path) -> Result<ServerConf, super::LoadError> {
    let mut conf = ServerConf::default();
    let mut files = 0;
    read_file(path, 0, &mut files, &mut conf).map_err(super::LoadError::Include)?;
    Ok(conf)
}

/// The settings in one text, includes ignored (they need a file to be relative to).
pub fn parse(text: &str) -> ServerConf {
    let mut conf = ServerConf::default();
    for (number, line) in text.lines().enumerate() {
        if let Some((name, value)) = parse_line(line) {
            apply(&mut conf, &name, value, Path::new(""), number + 1);
        }
    }
    conf
}

fn read_file(
    path: &Path,
    depth: usize,
    files: &mut usize,
    conf: &mut ServerConf,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "could not open configuration file \"{}\": maximum nesting depth exceeded",
            path.display()
        ));
    }
    *files += 1;
    if *files > MAX_FILES {
        return Err(format!(
            "more than {MAX_FILES} configuration files included (at \"{}\")",
            path.display()
        ));
    }
    let text =
        read_text(path).map_err(|e| format!("could not read \"{}\": {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for (number, line) in text.lines().enumerate() {
        let Some((name, value)) = parse_line(line) else {
            continue;
        };
        let target = |v: &str| -> PathBuf {
            let p = Path::new(v);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        match name.as_str() {
            "include" => read_file(&target(&value), depth + 1, files, conf)?,
            "include_if_exists" => {
                let included = target(&value);
                if std::fs::metadata(&included).is_ok() {
                    read_file(&included, depth + 1, files, conf)?;
                }
            }
            "include_dir" => {
                let dir = target(&value);
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    format!(
                        "could not open configuration directory \"{}\" (included from \"{}\" line {}): {e}",
                        dir.display(),
                        path.display(),
                        number + 1
                    )
                })?;
                let mut names: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        !name.starts_with('.') && name.ends_with(".conf") && p.is_file()
                    })
                    .take(MAX_FILES + 1)
                    .collect();
                names.sort();
                for file in names {
                    read_file(&file, depth + 1, files, conf)?;
                }
            }
            _ => apply(conf, &name, value, path, number + 1),
        }
    }
    Ok(())
}

fn apply(conf: &mut ServerConf, name: &str, value: String, file: &Path, line: usize) {
    match name {
        "ssl" => {
            conf.ssl = Some(matches!(
                value.to_ascii_lowercase().as_str(),
                "on" | "true" | "yes" | "1"
            ))
        }
        "ssl_ca_file" => {
            conf.ssl_ca_file = Some(value);
            conf.ssl_ca_file_from = Some((file.to_path_buf(), line));
        }
        _ => {}
    }
}

/// One `name [=] value` line; names are case-insensitive as GUC names are.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    if name_len == 0 {
        return None;
    }
    let name = line[..name_len].to_ascii_lowercase();
    let mut rest = line[name_len..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let value = if let Some(quoted) = rest.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        loop {
            match chars.next()? {
                '\'' => {
                    if chars.clone().next() == Some('\'') {
                        chars.next();
                        out.push('\'');
                    } else {
                        break;
                    }
                }
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        out
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '#')
            .next()
            .unwrap_or("")
            .to_string()
    };
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_the_server_reads_them() {
        let conf = parse(
            "# comment\nssl = on\nssl_ca_file = '/etc/a#b/it''s.crt' # trailing\nSSL_CA_FILE '/x.crt'\n",
        );
        assert_eq!(conf.ssl, Some(true));
        assert_eq!(conf.ssl_ca_file.as_deref(), Some("/x.crt"));
        let conf = parse("ssl_ca_file = '/etc/a#b/it''s.crt' # trailing\n");
        assert_eq!(conf.ssl_ca_file.as_deref(), Some("/etc/a#b/it's.crt"));
        assert_eq!(parse("ssl off").ssl, Some(false));
    }

    #[test]
    fn includes_in_order_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("conf.d/10-ssl.conf"),
            "ssl_ca_file = 'from-dir-10'\n",
        )
        .unwrap();
        std::fs::write(
            d.join("conf.d/20-ssl.conf"),
            "ssl_ca_file = 'from-dir-20'\n",
        )
        .unwrap();
        std::fs::write(d.join("conf.d/.hidden.conf"), "ssl_ca_file = 'hidden'\n").unwrap();
        std::fs::write(d.join("conf.d/notes.txt"), "ssl_ca_file = 'txt'\n").unwrap();
        std::fs::write(
            d.join("tls.conf"),
            "ssl = on\nssl_ca_file = 'from-include'\n",
        )
        .unwrap();
        let main = d.join("postgresql.conf");
        std::fs::write(
            &main,
            "include 'tls.conf'\ninclude_if_exists = 'missing.conf'\ninclude_dir 'conf.d'\n",
        )
        .unwrap();
        let conf = load(&main).unwrap();
        assert_eq!(conf.ssl, Some(true));
        assert_eq!(conf.ssl_ca_file.as_deref(), Some("from-dir-20"));
        assert_eq!(
            conf.ssl_ca_file_from,
            Some((d.join("conf.d/20-ssl.conf"), 1))
        );

        std::fs::write(&main, "include_dir 'conf.d'\nssl_ca_file = ''\n").unwrap();
        assert_eq!(load(&main).unwrap().ssl_ca_file.as_deref(), Some(""));

        std::fs::write(&main, "include 'missing.conf'\n").unwrap();
        let err = load(&main).unwrap_err();
        assert!(err.to_string().contains("missing.conf"), "{err}");

        std::fs::write(&main, "include 'postgresql.conf'\n").unwrap();
        let err = load(&main).unwrap_err();
        assert!(
            err.to_string().contains("maximum nesting depth exceeded"),
            "{err}"
        );

        // Fan-out: four self-includes per file would be 4^10 files without the cap.
        std::fs::write(&main, "include 'postgresql.conf'\n".repeat(4)).unwrap();
        assert!(load(&main).is_err());
    }
}

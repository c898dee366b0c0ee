//! A pooler's own log (--pooler-log): the lines written while the doctor probed, tied to
//! its connections by their client address and port (PgBouncer writes
//! `C-0x...: app/alice@127.0.0.1:43062 closing because: ...`), plus the lines about its
//! own connection to the server written meanwhile. Bounded: at most 1 MiB is read.

use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const MAX_READ: u64 = 1 << 20;

/// What the pooler logged about this probe.
#[derive(Debug, Clone, Default)]
pub struct PoolerLog {
    pub path: PathBuf,
    /// Lines naming one of the probe's client ports.
    pub client_lines: Vec<String>,
    /// Lines about the pooler's server connections (TLS to the server, its login).
    pub server_lines: Vec<String>,
}

impl PoolerLog {
    /// PgBouncer's reason for refusing a certificate login, when it logged one.
    pub fn cert_reason(&self) -> Option<CertReason> {
        self.client_lines.iter().find_map(|l| {
            if l.contains("TLS certificate name mismatch") {
                Some(CertReason::NameMismatch(l.clone()))
            } else if let Some(at) = l.find("no such user: ") {
                let user = l[at + "no such user: ".len()..].trim().to_string();
                Some(CertReason::NoSuchUser(user, l.clone()))
            } else {
                None
            }
        })
    }
}

/// Why PgBouncer refused a certificate login, from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertReason {
    /// The line: "TLS certificate name mismatch".
    NameMismatch(String),
    /// The user, and the line: "no such user: carol".
    NoSuchUser(String, String),
}

pub fn size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// The log's lines since `since` that concern `clients` (the probe's local addresses).
pub fn read(path: &Path, since: Option<u64>, clients: &[SocketAddr]) -> std::io::Result<PoolerLog> {
    let mut file = crate::files::open_regular(path)?;
    let len = file.metadata()?.len();
    let start = match since {
        Some(s) if s <= len => s.max(len.saturating_sub(MAX_READ)),
        _ => len.saturating_sub(MAX_READ),
    };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    let text = crate::untrusted::decode(&bytes);
    let tags: Vec<String> = clients.iter().map(|a| format!("@{a} ")).collect();
    let mut log = PoolerLog {
        path: path.to_path_buf(),
        ..Default::default()
    };
    for line in text.lines() {
        if tags.iter().any(|t| line.contains(t.as_str())) {
            log.client_lines.push(line.trim_end().to_string());
        } else if line.contains("TLS handshake error")
            || line.contains("new connection to server")
            || line.contains("server login failed")
        {
            log.server_lines.push(line.trim_end().to_string());
        }
        if log.client_lines.len() + log.server_lines.len() >= 200 {
            break;
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tied_to_the_probes_ports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbouncer.log");
        std::fs::write(
            &path,
            "x LOG C-0x1: app/alice@127.0.0.1:43062 login attempt: db=app user=alice\n\
             x ERROR C-0x1: app/alice@127.0.0.1:43062 TLS certificate name mismatch\n\
             x ERROR C-0x2: app/bob@127.0.0.1:4306 TLS certificate name mismatch\n\
             x LOG C-0x3: (nodb)/(nouser)@127.0.0.1:43072 no such user: carol\n\
             x WARNING TLS handshake error: handshake failed: certificate verify failed\n",
        )
        .unwrap();
        let ours: SocketAddr = "127.0.0.1:43062".parse().unwrap();
        let log = read(&path, Some(0), &[ours]).unwrap();
        assert_eq!(log.client_lines.len(), 2);
        assert!(matches!(
            log.cert_reason(),
            Some(CertReason::NameMismatch(_))
        ));
        assert_eq!(log.server_lines.len(), 1);
        let carol: SocketAddr = "127.0.0.1:43072".parse().unwrap();
        let log = read(&path, Some(0), &[carol]).unwrap();
        assert_eq!(
            log.cert_reason(),
            Some(CertReason::NoSuchUser(
                "carol".into(),
                "x LOG C-0x3: (nodb)/(nouser)@127.0.0.1:43072 no such user: carol".into()
            ))
        );
    }
}

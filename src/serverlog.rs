//! `--server-log FILE`: the server's own reasons for this probe's connections, which it
//! writes to its log and never sends to the client. Reading is bounded; interpreting is pure.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// At most this much of the log is read.
const MAX_READ: u64 = 4 << 20;

/// The log lines that concern this probe, and where they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogExcerpt {
    pub source: String,
    pub lines: Vec<String>,
}

/// What the log says, interpreted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReasons {
    /// (file, line number, rule text) from `Connection matched ... line N: "..."`.
    pub matched: Option<(String, usize, String)>,
    /// The server's reasons, quoted (CN mismatch, usermap, password detail, SSL accept errors).
    pub reasons: Vec<String>,
    pub source: String,
}

/// The log's size now, so only what the probe appends is read afterwards.
pub fn size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// What the log holds since `since`: its text, whether it is the live log, and a label.
struct Appended {
    text: String,
    live: bool,
    source: String,
}

fn read_since(path: &Path, since: Option<u64>, user: &str) -> std::io::Result<Appended> {
    let mut file = crate::files::open_regular(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (start, source) = match since {
        Some(s) if s < len => (
            s,
            format!("{} (lines written during this probe)", path.display()),
        ),
        _ => (
            len.saturating_sub(256 * 1024),
            format!(
                "{} (last lines mentioning user \"{user}\"; not necessarily this probe's)",
                path.display()
            ),
        ),
    };
    let start = start.max(len.saturating_sub(MAX_READ));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            std::io::Error::new(
                e.kind(),
                "reading it would block (a special file such as /proc/kmsg)",
            )
        } else {
            e
        }
    })?;
    Ok(Appended {
        text: crate::untrusted::decode(&bytes),
        live: since.is_some_and(|s| s < len),
        source,
    })
}

/// The server's log lines for refused sessions and failed handshakes in `text`.
fn events(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("FATAL:") || l.contains("could not accept SSL connection"))
        .count()
}

/// What was appended since `since` (a live log), or else the tail of the file (a copy
/// taken later), keeping lines that mention `user`. A live log is read once the `expected`
/// lines the backends write as they exit are there, or at `wait_until`; a copy at once.
pub fn read_excerpt_expecting(
    path: &Path,
    since: Option<u64>,
    user: &str,
    expected: usize,
    wait_until: std::time::Instant,
) -> std::io::Result<LogExcerpt> {
    loop {
        let appended = read_since(path, since, user)?;
        let waiting = since.is_some()
            && events(if appended.live { &appended.text } else { "" }) < expected
            && std::time::Instant::now() < wait_until;
        if !waiting {
            return Ok(excerpt(&appended, user));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn excerpt(appended: &Appended, user: &str) -> LogExcerpt {
    let (text, live, source) = (&appended.text, appended.live, appended.source.clone());
    let mut lines: Vec<String> = Vec::new();
    let mut keep_next_detail = false;
    let mut kept_previous = false;
    for line in text.lines() {
        // A multi-line message continues on lines that start with a tab.
        if line.starts_with('\t') {
            if kept_previous {
                lines.push(line.trim().to_string());
            }
            continue;
        }
        let mentions = line.contains(&format!("user \"{user}\""))
            || line.contains(&format!("user={user}"))
            || line.contains(&format!("({user})"));
        let is_detail = line.contains("DETAIL:") || line.contains("HINT:");
        let is_ssl = line.contains("could not accept SSL connection");
        if mentions || is_ssl || (keep_next_detail && is_detail) || (live && is_detail) {
            lines.push(line.trim_end().to_string());
            keep_next_detail = mentions || is_ssl;
            kept_previous = true;
        } else {
            keep_next_detail = false;
            kept_previous = false;
        }
    }
    if !live && lines.len() > 40 {
        lines.drain(..lines.len() - 40);
    }
    LogExcerpt { source, lines }
}

/// The server's reasons in the excerpt.
pub fn interpret(excerpt: &LogExcerpt) -> LogReasons {
    let mut out = LogReasons {
        source: excerpt.source.clone(),
        ..Default::default()
    };
    const REASONS: &[&str] = &[
        "CN mismatch",
        "DN mismatch",
        "do not match",
        "no match in usermap",
        "regular expression",
        "client certificate contains no user name",
        "could not accept SSL connection",
        "does not exist.",
        "Password does not match",
        "has no password assigned",
        "has an expired password",
        "does not have a valid SCRAM secret",
        "cannot be used with MD5 authentication",
        "Client certificate verification failed",
        "Failed certificate data",
        "connection authenticated:",
    ];
    for line in &excerpt.lines {
        if let Some(rest) = line
            .split("Connection matched pg_hba.conf line ")
            .nth(1)
            .map(|r| ("pg_hba.conf".to_string(), r))
            .or_else(|| {
                // PostgreSQL 16+: Connection matched file "F" line N: "..."
                let rest = line.split("Connection matched file \"").nth(1)?;
                let (file, after) = rest.split_once("\" line ")?;
                Some((file.to_string(), after))
            })
        {
            let (file, rest) = rest;
            if let Some((number, rule)) = rest.split_once(": ") {
                if let Ok(n) = number.trim().parse() {
                    out.matched = Some((file, n, rule.trim().trim_matches('"').to_string()));
                }
            }
            continue;
        }
        if REASONS.iter().any(|r| line.contains(r)) {
            let text = line
                .split_once("FATAL:")
                .or_else(|| line.split_once("DETAIL:"))
                .or_else(|| line.split_once("LOG:"))
                .map(|(_, t)| t.trim().to_string())
                .unwrap_or_else(|| line.clone());
            if !out.reasons.contains(&text) {
                out.reasons.push(text);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_a_pg15_and_a_pg16_log() {
        let excerpt = LogExcerpt {
            source: "log".into(),
            lines: vec![
                "2026-11-23 11:50:39.107 UTC [10243] FATAL:  password authentication failed for user \"app\"".into(),
                "2026-11-23 11:50:39.107 UTC [10243] DETAIL:  Connection matched pg_hba.conf line 2: \"hostssl all all 127.0.0.1/32 scram-sha-256\"".into(),
                "2026-11-23 11:50:40.001 UTC [10250] LOG:  certificate validation (clientcert=verify-full) failed for user \"app\": CN mismatch".into(),
            ],
        };
        let r = interpret(&excerpt);
        assert_eq!(
            r.matched,
            Some((
                "pg_hba.conf".into(),
                2,
                "hostssl all all 127.0.0.1/32 scram-sha-256".into()
            ))
        );
        assert_eq!(r.reasons, vec!["certificate validation (clientcert=verify-full) failed for user \"app\": CN mismatch"]);
        let pg16 = LogExcerpt {
            source: "log".into(),
            lines: vec!["DETAIL:  Connection matched file \"/etc/pg_hba.conf\" line 7: \"host all all all md5\"".into()],
        };
        assert_eq!(
            interpret(&pg16).matched,
            Some(("/etc/pg_hba.conf".into(), 7, "host all all all md5".into()))
        );
    }
}

//! Connection strings as libpq reads them: `key=value` conninfo, `postgresql://` URIs, and the
//! doctor's own `host[:port]` shorthand. Parsing only; where values come from and what they
//! default to is `plan.rs`.

/// Every keyword libpq 17 accepts. Unknown keywords are refused with libpq's wording.
pub const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Keywords whose values are secrets and must never be echoed.
pub const SECRET_KEYWORDS: &[&str] = &["password", "sslpassword"];

/// A connection string that libpq would refuse, worded as libpq words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConninfoError(pub String);

/// Which syntax the target was written in; it is reported as the source of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSyntax {
    Conninfo,
    Uri,
    HostPort,
}

/// Parses the TARGET argument into keyword/value pairs, in the order written.
/// A value for a conninfo string built by the doctor: single-quoted, with `\` and `'`
/// escaped, as libpq's `conninfo_parse` reads them. A user "app user" stays one value.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// libpq's `recognized_connection_string`: what psql's DBNAME (or `-d`) expands as a
/// connection string rather than taking as a database name.
pub fn is_connection_string(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://") || text.contains('=')
}

pub fn parse_target(input: &str) -> Result<(TargetSyntax, Vec<(String, String)>), ConninfoError> {
    let trimmed = input.trim();
    if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        return Ok((TargetSyntax::Uri, parse_uri(trimmed)?));
    }
    if trimmed.contains('=') {
        return Ok((TargetSyntax::Conninfo, parse_conninfo(trimmed)?));
    }
    Ok((TargetSyntax::HostPort, parse_host_port(trimmed)?))
}

fn check_keyword(key: &str) -> Result<(), ConninfoError> {
    if KEYWORDS.contains(&key) {
        Ok(())
    } else {
        Err(ConninfoError(format!(
            "invalid connection option \"{key}\""
        )))
    }
}

/// libpq's `conninfo_parse`: blanks around `=`, single quotes with backslash escapes.
pub fn parse_conninfo(input: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ConninfoError(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(next) = chars.next() {
                            value.push(next);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    other => value.push(other),
                }
            }
            if !closed {
                return Err(ConninfoError(
                    "unterminated quoted string in connection info string".into(),
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        check_keyword(&key)?;
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(input: &str, whole: &str) -> Result<String, ConninfoError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: from_str_radix alone would take "+F".
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConninfoError(format!("invalid percent-encoded token: \"{whole}\""))
                })?;
            if hex == 0 {
                return Err(ConninfoError(format!(
                    "forbidden value %00 in percent-encoded value: \"{whole}\""
                )));
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // libpq keeps the bytes as they are: a %FC in a password is the byte 0xFC.
    Ok(crate::untrusted::decode(&out))
}

/// Whether a query key, once percent-decoded as libpq decodes it, names a secret.
fn is_secret_key(raw_key: &str) -> bool {
    let decoded = percent_decode(raw_key, "").unwrap_or_else(|_| raw_key.to_string());
    SECRET_KEYWORDS.contains(&decoded.as_str())
}

/// libpq's `conninfo_uri_parse_options`.
pub fn parse_uri(raw: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    // Error messages quote the URI, as libpq's do, but never with its password.
    let shown = redact_uri(raw);
    let uri = shown.as_str();
    let rest = raw
        .strip_prefix("postgresql://")
        .or_else(|| raw.strip_prefix("postgres://"))
        .ok_or_else(|| ConninfoError(format!("invalid URI: \"{uri}\"")))?;
    let mut out: Vec<(String, String)> = Vec::new();

    // Split off the query string, then the path (database).
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    // The authority ends at the first '/' that is not inside brackets.
    let mut depth = 0;
    let mut split_at = None;
    for (i, c) in before_query.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '/' if depth == 0 => {
                split_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (authority, path) = match split_at {
        Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
        None => (before_query, None),
    };

    let hostlist = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".into(), percent_decode(user, uri)?));
            }
            if let Some(password) = password {
                out.push(("password".into(), percent_decode(password, uri)?));
            }
            &authority[at + 1..]
        }
        None => authority,
    };

    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if !hostlist.is_empty() {
        for entry in hostlist.split(',') {
            let (host, port) = if let Some(v6) = entry.strip_prefix('[') {
                let close = v6.find(']').ok_or_else(|| {
                    ConninfoError(format!(
                        "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\""
                    ))
                })?;
                let host = &v6[..close];
                if host.is_empty() {
                    return Err(ConninfoError(format!(
                        "IPv6 host address may not be empty in URI: \"{uri}\""
                    )));
                }
                let after = &v6[close + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(ConninfoError(format!(
                            "unexpected character \"{}\" at position {} in URI (expected \":\" or \"/\"): \"{uri}\"",
                            after.chars().next().unwrap_or(' '),
                            raw.len() - after.len() + 1
                        )))
                    }
                };
                // libpq decodes the bracketed address too: `[fe80::1%25eth0]` has zone eth0.
                (percent_decode(host, uri)?, port)
            } else {
                match entry.split_once(':') {
                    Some((h, p)) => (percent_decode(h, uri)?, p),
                    None => (percent_decode(entry, uri)?, ""),
                }
            };
            hosts.push(host);
            ports.push(percent_decode(port, uri)?);
        }
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        out.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
    }
    if let Some(db) = path {
        if !db.is_empty() {
            out.push(("dbname".into(), percent_decode(db, uri)?));
        }
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                ConninfoError(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
                ))
            })?;
            let key = percent_decode(key, uri)?;
            let value = percent_decode(value, uri)?;
            if key == "ssl" && value == "true" {
                out.push(("sslmode".into(), "require".into()));
                continue;
            }
            if !KEYWORDS.contains(&key.as_str()) {
                return Err(ConninfoError(format!(
                    "invalid URI query parameter: \"{key}\""
                )));
            }
            out.push((key, value));
        }
    }
    Ok(out)
}

/// The URI with its password (userinfo or `password`/`sslpassword` parameters) replaced.
pub fn redact_uri(uri: &str) -> String {
    let mut out = uri.to_string();
    if let Some(scheme_end) = uri.find("://") {
        let after = &uri[scheme_end + 3..];
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        if let Some(at) = after[..authority_end].rfind('@') {
            if let Some((user, _)) = after[..at].split_once(':') {
                out = format!(
                    "{}{user}:<redacted>{}",
                    &uri[..scheme_end + 3],
                    &after[at..]
                );
            }
        }
    }
    // Query parameters whose key decodes to a secret keyword (`%70assword` is `password`).
    let Some(query_start) = out.find('?') else {
        return out;
    };
    let (head, query) = out.split_at(query_start + 1);
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => format!("{key}=<redacted>"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}", pairs.join("&"))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
fn parse_host_port(input: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(v6) = input.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| {
            ConninfoError(format!(
                "missing \"]\" after IPv6 address in target \"{input}\""
            ))
        })?;
        let mut out = vec![("host".to_string(), host.to_string())];
        match after.strip_prefix(':') {
            Some(port) => out.push(("port".into(), port.into())),
            None if after.is_empty() => {}
            None => {
                return Err(ConninfoError(format!(
                    "unexpected \"{after}\" after IPv6 address in target \"{input}\""
                )))
            }
        }
        return Ok(out);
    }
    if input.matches(':').count() == 1 && !input.starts_with('/') {
        let (host, port) = input.split_once(':').unwrap_or((input, ""));
        return Ok(vec![
            ("host".into(), host.into()),
            ("port".into(), port.into()),
        ]);
    }
    Ok(vec![("host".into(), input.into())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn conninfo_cases() {
        type Case = (&'static str, Result<Vec<(String, String)>, &'static str>);
        let cases: &[Case] = &[
            (
                "host=db port=5433",
                Ok(pairs(&[("host", "db"), ("port", "5433")])),
            ),
            (
                "host = db  sslmode= verify-full",
                Ok(pairs(&[("host", "db"), ("sslmode", "verify-full")])),
            ),
            (
                "password='it''s' user=a",
                Err("missing \"=\" after \"'s'\" in connection info string"),
            ),
            (
                r"password='it\'s secret' user=a",
                Ok(pairs(&[("password", "it's secret"), ("user", "a")])),
            ),
            (r"dbname=a\ b", Ok(pairs(&[("dbname", "a b")]))),
            (
                "dbname='open",
                Err("unterminated quoted string in connection info string"),
            ),
            (
                "host db",
                Err("missing \"=\" after \"host\" in connection info string"),
            ),
            ("hots=db", Err("invalid connection option \"hots\"")),
            ("sslmode=", Ok(pairs(&[("sslmode", "")]))),
        ];
        for (input, expected) in cases {
            let got = parse_conninfo(input).map_err(|e| e.0);
            match expected {
                Ok(v) => assert_eq!(got.as_ref(), Ok(v), "{input}"),
                Err(msg) => assert_eq!(got.unwrap_err(), *msg, "{input}"),
            }
        }
    }

    #[test]
    fn uri_cases() {
        assert_eq!(
            parse_uri("postgresql://bob:s%40cret@db.example.com:5433/app?sslmode=verify-full")
                .unwrap(),
            pairs(&[
                ("user", "bob"),
                ("password", "s@cret"),
                ("host", "db.example.com"),
                ("port", "5433"),
                ("dbname", "app"),
                ("sslmode", "verify-full"),
            ])
        );
        assert_eq!(
            parse_uri("postgres://[::1]:5432,h2:6000/db?ssl=true").unwrap(),
            pairs(&[
                ("host", "::1,h2"),
                ("port", "5432,6000"),
                ("dbname", "db"),
                ("sslmode", "require"),
            ])
        );
        assert_eq!(
            parse_uri("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://h/?foo=bar").unwrap_err().0,
            "invalid URI query parameter: \"foo\""
        );
        assert!(parse_uri("postgresql://[::1/db")
            .unwrap_err()
            .0
            .starts_with("end of string reached when looking for matching \"]\""));
        assert_eq!(parse_uri("postgresql://").unwrap(), Vec::new());
    }

    #[test]
    fn percent_escapes_need_two_hex_digits() {
        assert!(parse_uri("postgresql://h/d%+F").is_err());
        assert_eq!(
            parse_uri("postgresql://h/d%41").unwrap(),
            pairs(&[("host", "h"), ("dbname", "dA")])
        );
    }

    #[test]
    fn uri_errors_never_quote_the_password() {
        let e = parse_uri("postgresql://bob:hunter2@[::1/db?sslpassword=k3y")
            .unwrap_err()
            .0;
        assert!(!e.contains("hunter2") && !e.contains("k3y"), "{e}");
        assert!(e.contains("bob:<redacted>@"), "{e}");
        // A percent-encoded key is still a password, and postgres:// is still a URI.
        let e = parse_uri("postgresql://u@h/db?%70assword=SECRET&%73slpassword=K3Y&%zz=1")
            .unwrap_err()
            .0;
        assert!(!e.contains("SECRET") && !e.contains("K3Y"), "{e}");
        assert_eq!(
            parse_uri("postgres://u:pw%21@h/db").unwrap(),
            vec![
                ("user".into(), "u".into()),
                ("password".into(), "pw!".into()),
                ("host".into(), "h".into()),
                ("dbname".into(), "db".into())
            ]
        );
        let raw = parse_uri("postgresql://u:Gr%FCn@h/").unwrap();
        assert_eq!(crate::untrusted::encode(&raw[1].1), b"Gr\xfcn");
    }

    #[test]
    fn host_port_shorthand() {
        assert_eq!(
            parse_target("db.example.com:5432").unwrap(),
            (
                TargetSyntax::HostPort,
                pairs(&[("host", "db.example.com"), ("port", "5432")])
            )
        );
        assert_eq!(
            parse_target("[2001:db8::1]:6432").unwrap().1,
            pairs(&[("host", "2001:db8::1"), ("port", "6432")])
        );
        assert_eq!(
            parse_target("2001:db8::1").unwrap().1,
            pairs(&[("host", "2001:db8::1")])
        );
        assert_eq!(
            parse_target("/var/run/postgresql").unwrap().1,
            pairs(&[("host", "/var/run/postgresql")])
        );
    }

    #[test]
    fn quoted_values_read_back_as_they_were() {
        for value in ["app user", "o'brien", "back\\slash", "", "=;'\\ "] {
            let parsed = parse_conninfo(&format!("user={}", quote(value))).unwrap();
            assert_eq!(
                parsed,
                vec![("user".to_string(), value.to_string())],
                "{value:?}"
            );
        }
    }
}

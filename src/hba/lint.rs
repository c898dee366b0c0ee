//! `pgtls-doctor hba lint`: what the server would refuse to load, rules that can never
//! match, and rules that are weaker than they look.

use crate::catalogue::Code;
use crate::evidence::{Evidence, Value};
use std::path::Path;

use super::{Address, ClientCert, ConnType, HbaFile, HbaRule, IdentFile, Token};
use crate::catalogue::Severity;
use crate::finding::Finding;

pub use super::server_conf::ServerConf;

fn finding(
    code: Code,
    severity: Severity,
    rule_file: &Path,
    line: usize,
    raw: &str,
    summary: String,
    fix: &str,
) -> Finding {
    Finding {
        code,
        severity,
        summary,
        evidence: vec![
            Evidence::new("file", Value::path(rule_file)),
            Evidence::new("line", Value::line(line)),
            Evidence::new("rule", raw.to_string()),
        ],
        fix: Some(fix.to_string()),
        modes: vec![],
    }
}

pub fn lint(
    hba: &HbaFile,
    ident: Option<&IdentFile>,
    conf: Option<&ServerConf>,
    pg_version: u32,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in &hba.errors {
        let mut f = finding(
            Code::HbaParseError,
            Severity::Error,
            &e.file,
            e.line_number,
            &e.raw,
            format!("{} (PostgreSQL {pg_version} refuses to load the whole file because of this line: at start the server does not start, on reload the old rules stay)", e.message),
            "fix or remove the line, then reload and check `SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL`",
        );
        if e.message.starts_with("invalid value for clientcert") {
            f.fix = Some("since PostgreSQL 14 clientcert takes verify-ca or verify-full (clientcert=1 was verify-ca; 0/no-verify: drop the option)".into());
        }
        if let Some(h) = &e.hint {
            f.evidence.push(Evidence::new("hint", h.clone()));
        }
        out.push(f);
    }
    for (i, rule) in hba.rules.iter().enumerate() {
        if let Some(earlier) = hba.rules[..i].iter().find(|e| shadows(e, rule)) {
            let mut f = finding(
                Code::HbaShadowedRule,
                Severity::Warning,
                &rule.file,
                rule.line_number,
                &rule.raw,
                format!(
                    "this rule can never match: line {} (\"{}\") matches every connection it would",
                    earlier.line_number, earlier.raw
                ),
                "move the more specific rule above the general one, or delete it",
            );
            f.evidence.push(Evidence::new(
                "shadowed_by_line",
                Value::line(earlier.line_number),
            ));
            out.push(f);
        }
        if rule.method == "trust"
            && rule.conn_type != ConnType::Local
            && rule.clientcert == ClientCert::Off
        {
            let wide = matches!(rule.address, Some(Address::All))
                || matches!(rule.address, Some(Address::Net { prefix: 0, .. }));
            let (summary, fix) = if is_loopback(rule.address.as_ref()) {
                (
                    "trust on the loopback address: every user and process on the server's own machine logs in as any matching role, with no password".to_string(),
                    "use peer over the Unix socket (`local ... peer`), or scram-sha-256 on the loopback address",
                )
            } else {
                (
                    format!(
                        "trust over the network{}: anyone who reaches the port logs in as any matching role, with no password and no certificate",
                        if wide { " from every address" } else { "" }
                    ),
                    "use scram-sha-256, or cert (hostssl ... cert), or at least trust clientcert=verify-full",
                )
            };
            out.push(finding(
                Code::HbaInsecureTrust,
                if wide {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                &rule.file,
                rule.line_number,
                &rule.raw,
                summary,
                fix,
            ));
        }
        if matches!(rule.method.as_str(), "md5" | "password") {
            let cleartext = rule.method == "password"
                && rule.conn_type != ConnType::HostSsl
                && rule.conn_type != ConnType::Local;
            out.push(finding(
                Code::HbaWeakPasswordMethod,
                Severity::Warning,
                &rule.file,
                rule.line_number,
                &rule.raw,
                if cleartext {
                    "method password sends the password in cleartext, and this line also matches unencrypted connections".into()
                } else {
                    format!("method {} is weaker than scram-sha-256", rule.method)
                },
                "use scram-sha-256 (set password_encryption = scram-sha-256 and reset the passwords; md5 lines already accept SCRAM secrets)",
            ));
        }
        if let Some(value) = &rule.obsolete_clientcert {
            out.push(finding(
                Code::HbaObsoleteClientcert,
                Severity::Warning,
                &rule.file,
                rule.line_number,
                &rule.raw,
                format!("clientcert={value} is accepted up to PostgreSQL 13 only; PostgreSQL 14 refuses to load the file"),
                if value == "1" { "write clientcert=verify-ca (or verify-full)" } else { "drop the clientcert option" },
            ));
        }
        let needs_ca = rule.clientcert != ClientCert::Off;
        if let Some(conf) = conf {
            if needs_ca && conf.ssl_ca_file.as_deref().unwrap_or("").is_empty() {
                out.push(finding(
                    Code::HbaCertNeedsCa,
                    Severity::Error,
                    &rule.file,
                    rule.line_number,
                    &rule.raw,
                    "this rule checks client certificates, but postgresql.conf sets no ssl_ca_file: every connection it matches fails with \"client certificates can only be checked if a root certificate store is available\"".into(),
                    "set ssl_ca_file to the CA that issues client certificates, then reload",
                ));
            }
            if rule.conn_type == ConnType::HostSsl && conf.ssl == Some(false) {
                out.push(finding(
                    Code::HbaShadowedRule,
                    Severity::Warning,
                    &rule.file,
                    rule.line_number,
                    &rule.raw,
                    "hostssl record cannot match because SSL is disabled".into(),
                    "Set \"ssl = on\" in postgresql.conf.",
                ));
            }
        }
    }
    // TLS is wanted (hostssl lines exist), yet host lines still take plaintext, with no
    // hostnossl reject in front of them.
    let wants_tls = hba.rules.iter().any(|r| r.conn_type == ConnType::HostSsl);
    if wants_tls {
        for (i, rule) in hba.rules.iter().enumerate() {
            let guarded = hba.rules[..i].iter().any(|e| {
                e.conn_type == ConnType::HostNoSsl
                    && e.method == "reject"
                    && covers_all(&e.databases)
                    && covers_all(&e.users)
            });
            if rule.conn_type == ConnType::Host && rule.method != "reject" && !guarded {
                out.push(finding(
                    Code::HbaPlaintextAllowed,
                    Severity::Warning,
                    &rule.file,
                    rule.line_number,
                    &rule.raw,
                    "this host line accepts unencrypted connections although the file uses hostssl: a client with sslmode=prefer silently falls back to plaintext here".into(),
                    "make it hostssl, or put `hostnossl all all 0.0.0.0/0 reject` (and ::/0) above it",
                ));
                break;
            }
        }
    }
    if let Some(ident) = ident {
        for e in &ident.errors {
            out.push(finding(
                Code::HbaParseError,
                Severity::Error,
                &e.file,
                e.line_number,
                &e.raw,
                e.message.clone(),
                "fix the pg_ident.conf line; a bad line disables the maps",
            ));
        }
        for rule in &ident.rules {
            if let Some(re) = rule.system_user.regex() {
                let groups = regex::Regex::new(re)
                    .map(|r| r.captures_len() - 1)
                    .unwrap_or(0);
                if rule.pg_user.text.contains("\\1") && groups == 0 {
                    out.push(finding(
                        Code::IdentNoMatch,
                        Severity::Error,
                        &rule.file,
                        rule.line_number,
                        &rule.raw,
                        format!("regular expression \"{re}\" has no subexpressions as requested by backreference in \"{}\": this line never maps anyone", rule.pg_user.text),
                        "add a capture group, e.g. /^(.*)@example\\.com$",
                    ));
                }
            }
        }
        for rule in &hba.rules {
            if let Some(map) = &rule.map {
                if !ident.rules.iter().any(|r| &r.map == map) {
                    out.push(finding(
                        Code::IdentNoMatch,
                        Severity::Error,
                        &rule.file,
                        rule.line_number,
                        &rule.raw,
                        format!("map={map} names a map with no lines in pg_ident.conf: every connection this rule matches fails"),
                        "add the map's lines to pg_ident.conf, or fix the map name (it is case-sensitive)",
                    ));
                }
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn covers_all(tokens: &[Token]) -> bool {
    tokens.iter().any(|t| t.is_keyword("all"))
}

/// Whether `earlier` matches every connection `later` could match (a conservative check).
fn shadows(earlier: &HbaRule, later: &HbaRule) -> bool {
    let type_covers = earlier.conn_type == later.conn_type
        || (earlier.conn_type == ConnType::Host
            && matches!(later.conn_type, ConnType::HostSsl | ConnType::HostNoSsl));
    if !type_covers {
        return false;
    }
    let list_covers = |a: &[Token], b: &[Token], keyword_all: bool| {
        (keyword_all && covers_all(a) && !b.iter().any(|t| t.is_keyword("replication")))
            || b.iter().all(|t| {
                !t.text.starts_with('/')
                    && !t.text.starts_with('+')
                    && a.iter().any(|x| x.text == t.text && x.quoted == t.quoted)
            })
    };
    if !list_covers(&earlier.databases, &later.databases, true)
        || !list_covers(&earlier.users, &later.users, true)
    {
        return false;
    }
    match (&earlier.address, &later.address) {
        (None, None) => true,
        (Some(Address::All), Some(_)) => true,
        (
            Some(Address::Net { addr, prefix }),
            Some(Address::Net {
                addr: a2,
                prefix: p2,
            }),
        ) => p2 >= prefix && super::matcher::in_network(*a2, *addr, *prefix),
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// An address no other machine can come from: 127.0.0.0/8 (or a part of it), ::1/128,
/// "localhost".
fn is_loopback(address: Option<&Address>) -> bool {
    match address {
        Some(Address::Net { addr, prefix }) => {
            addr.is_loopback() && *prefix >= if addr.is_ipv4() { 8 } else { 128 }
        }
        Some(Address::Hostname(name)) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// One pg_hba.conf (with pg_ident.conf and postgresql.conf where the code needs them) per
    /// lint code.
    /// name, pg_hba.conf, pg_ident.conf, postgresql.conf, PostgreSQL version, the code.
    type Row = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        u32,
        Code,
    );

    fn table() -> Vec<Row> {
        vec![
            (
                "a netmask of 33 bits",
                "host all all 10.0.0.0/33 scram-sha-256\n",
                None,
                None,
                17,
                Code::HbaParseError,
            ),
            (
                "a line after one that takes all its connections",
                "host all all 0.0.0.0/0 scram-sha-256\nhost app alice 10.0.0.1/32 scram-sha-256\n",
                None,
                None,
                17,
                Code::HbaShadowedRule,
            ),
            (
                "trust from anywhere",
                "host all all 0.0.0.0/0 trust\n",
                None,
                None,
                17,
                Code::HbaInsecureTrust,
            ),
            (
                "md5",
                "hostssl all all 10.0.0.0/8 md5\n",
                None,
                None,
                17,
                Code::HbaWeakPasswordMethod,
            ),
            (
                "clientcert=1 on PostgreSQL 13",
                "hostssl all all 0.0.0.0/0 scram-sha-256 clientcert=1\n",
                None,
                None,
                13,
                Code::HbaObsoleteClientcert,
            ),
            (
                "cert with no ssl_ca_file",
                "hostssl all all 0.0.0.0/0 cert\n",
                None,
                Some("ssl = on\nssl_cert_file = 'server.crt'\n"),
                17,
                Code::HbaCertNeedsCa,
            ),
            (
                "hostssl for one database, host for the rest",
                "hostssl app all 0.0.0.0/0 scram-sha-256\nhost all all 0.0.0.0/0 scram-sha-256\n",
                None,
                None,
                17,
                Code::HbaPlaintextAllowed,
            ),
            (
                "a map that pg_ident.conf does not hold",
                "hostssl all all 0.0.0.0/0 cert map=certs\n",
                Some("other alice alice\n"),
                None,
                17,
                Code::IdentNoMatch,
            ),
        ]
    }

    fn run(hba: &str, ident: Option<&str>, conf: Option<&str>, version: u32) -> Vec<Finding> {
        let file = crate::hba::parse_hba(hba, Path::new("/etc/postgresql/pg_hba.conf"), version);
        let ident =
            ident.map(|t| crate::hba::parse_ident(t, Path::new("/etc/postgresql/pg_ident.conf")));
        let conf = conf.map(crate::hba::server_conf::parse);
        lint(&file, ident.as_ref(), conf.as_ref(), version)
    }

    pub(crate) fn codes_produced() -> BTreeSet<Code> {
        table()
            .into_iter()
            .flat_map(|(_, hba, ident, conf, version, _)| run(hba, ident, conf, version))
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn every_file_yields_its_code() {
        for (name, hba, ident, conf, version, code) in table() {
            let found: Vec<Code> = run(hba, ident, conf, version)
                .iter()
                .map(|f| f.code)
                .collect();
            assert!(
                found.contains(&code),
                "{name}: expected {code}, got {found:?}"
            );
        }
    }

    #[test]
    fn trust_on_the_loopback_address_is_not_called_network_access() {
        for hba in [
            "host all all 127.0.0.1/32 trust\n",
            "host all all ::1/128 trust\n",
            "host all all localhost trust\n",
        ] {
            let found = run(hba, None, None, 17);
            let trust = found
                .iter()
                .find(|f| f.code == Code::HbaInsecureTrust)
                .unwrap_or_else(|| panic!("{hba}: {found:?}"));
            assert!(
                !trust.summary.contains("network"),
                "{hba}: {}",
                trust.summary
            );
            assert!(
                trust.summary.contains("loopback"),
                "{hba}: {}",
                trust.summary
            );
        }
        let wide = run("host all all 10.0.0.0/8 trust\n", None, None, 17);
        assert!(
            wide[0].summary.contains("over the network"),
            "{}",
            wide[0].summary
        );
    }
}

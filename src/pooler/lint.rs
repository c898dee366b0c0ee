//! The mistakes people make in a pooler's configuration, as findings: TLS to the clients
//! but a weaker (or no) TLS to the server, and certificate authentication without a CA to
//! check certificates with.

use crate::catalogue::{Code, Severity};
use crate::evidence::{Evidence, Value};
use crate::finding::Finding;

use super::{Kind, PoolerConfig};

/// PgBouncer's sslmodes, weakest first (libpq's names and order).
fn rank(mode: &str) -> Option<usize> {
    [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(mode))
}

fn cite(config: &PoolerConfig, name: &str, default: &str) -> String {
    match config.get(name) {
        Some(s) => s.cited(),
        None => format!("{name} = {default} (not set: PgBouncer's default)"),
    }
}

pub fn lint(config: &PoolerConfig) -> Vec<Finding> {
    match config.kind {
        Kind::PgBouncer => pgbouncer(config),
        Kind::Pgpool => pgpool(config),
    }
}

fn pgbouncer(config: &PoolerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let client = config.value_or("client_tls_sslmode", "disable");
    let server = config.value_or("server_tls_sslmode", "prefer");
    if let (Some(c), Some(s)) = (rank(client), rank(server)) {
        if c >= 3 && s < c && (s < 3 || c >= 4) {
            let unprotected = s < 3;
            out.push(Finding {
                code: Code::PoolerConfigWeakServerTls,
                severity: Severity::Warning,
                summary: if unprotected {
                    format!("clients must use TLS to PgBouncer (client_tls_sslmode = {client}), but its connection to the server is server_tls_sslmode = {server}: what the clients protect crosses the second hop {}", if s == 0 { "in plaintext" } else { "in plaintext whenever the server does not insist on TLS" })
                } else if s == 4 {
                    format!("PgBouncer's clients verify fully (client_tls_sslmode = {client}), but server_tls_sslmode = {server} checks the server's chain and not its name: another server with a certificate from the same CA goes unnoticed")
                } else {
                    format!("PgBouncer verifies its clients' side (client_tls_sslmode = {client}) but not the server's certificate (server_tls_sslmode = {server}): a machine in the middle of the second hop goes unnoticed")
                },
                evidence: vec![
                    Evidence::new("client_side", cite(config, "client_tls_sslmode", "disable")),
                    Evidence::new("server_side", cite(config, "server_tls_sslmode", "prefer")),
                ],
                fix: Some("set server_tls_sslmode = verify-full and server_tls_ca_file to the CA that issued the server's certificate, then `RELOAD;`".into()),
                modes: vec![],
            });
        }
    }
    if config
        .value_or("auth_type", "md5")
        .eq_ignore_ascii_case("cert")
    {
        let ca = config.get("client_tls_ca_file");
        let verifies = rank(client).is_some_and(|r| r >= 4);
        if ca.is_none() || !verifies {
            out.push(Finding {
                code: Code::PoolerConfigCertWithoutCa,
                severity: Severity::Error,
                summary: match ca {
                    None => "auth_type = cert, but client_tls_ca_file is not set: PgBouncer has no CA to check client certificates with, so every certificate login fails".to_string(),
                    Some(_) => format!("auth_type = cert, but client_tls_sslmode = {client} does not ask clients for a certificate (verify-ca or verify-full does): every certificate login fails"),
                },
                evidence: vec![
                    Evidence::new("auth_type", cite(config, "auth_type", "md5")),
                    Evidence::new("client_tls_sslmode", cite(config, "client_tls_sslmode", "disable")),
                    Evidence::new(
                        "client_tls_ca_file",
                        ca.map(|s| s.cited()).unwrap_or_else(|| "not set".into()),
                    ),
                ],
                fix: Some("set client_tls_sslmode = verify-full and client_tls_ca_file to the CA that issues the client certificates, then `RELOAD;`".into()),
                modes: vec![],
            });
        }
    }
    out
}

fn pgpool(config: &PoolerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some((hba_path, lines)) = &config.pool_hba else {
        return out;
    };
    let cert_line = lines.iter().find(|(_, l)| {
        l.split_whitespace()
            .nth(4)
            .or_else(|| {
                l.split_whitespace()
                    .nth(3)
                    .filter(|_| l.starts_with("local"))
            })
            .is_some_and(|m| m == "cert")
    });
    let ssl_on = config.value_or("ssl", "off").eq_ignore_ascii_case("on");
    if let Some((number, text)) = cert_line {
        if !ssl_on || config.get("ssl_ca_cert").is_none() {
            out.push(Finding {
                code: Code::PoolerConfigCertWithoutCa,
                severity: Severity::Error,
                summary: format!("pool_hba.conf line {number} uses cert, but pgpool-II {}: every certificate login fails", if ssl_on { "has no ssl_ca_cert to check client certificates with" } else { "runs with ssl = off" }),
                evidence: vec![
                    Evidence::new("file", Value::path(hba_path)),
                    Evidence::new("line", Value::line(*number)),
                    Evidence::new("text", text.clone()),
                    Evidence::new(
                        "ssl_ca_cert",
                        config.get("ssl_ca_cert").map(|s| s.cited()).unwrap_or_else(|| "not set".into()),
                    ),
                ],
                fix: Some("set ssl = on and ssl_ca_cert to the CA that issues the client certificates in pgpool.conf, then `pgpool reload`".into()),
                modes: vec![],
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pooler::pgbouncer;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn bouncer(text: &str) -> PoolerConfig {
        pgbouncer::load(Path::new("/etc/pgbouncer/pgbouncer.ini"), text)
    }

    pub(crate) fn codes_produced() -> BTreeSet<Code> {
        let mut codes = BTreeSet::new();
        for text in [
            "[pgbouncer]\nclient_tls_sslmode = require\nserver_tls_sslmode = disable\n",
            "[pgbouncer]\nauth_type = cert\nclient_tls_sslmode = verify-full\n",
        ] {
            codes.extend(lint(&bouncer(text)).iter().map(|f| f.code));
        }
        codes
    }

    #[test]
    fn the_usual_mistakes_are_found_and_a_sound_file_passes() {
        let weak = lint(&bouncer(
            "[pgbouncer]\nclient_tls_sslmode = require\nserver_tls_sslmode = disable\n",
        ));
        assert_eq!(weak[0].code, Code::PoolerConfigWeakServerTls);
        assert!(weak[0].summary.contains("in plaintext"));
        // Unset server_tls_sslmode is PgBouncer's default, prefer.
        let default = lint(&bouncer("[pgbouncer]\nclient_tls_sslmode = verify-full\n"));
        assert_eq!(default[0].code, Code::PoolerConfigWeakServerTls);
        let unverified = lint(&bouncer(
            "[pgbouncer]\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = require\n",
        ));
        assert!(unverified[0]
            .summary
            .contains("not the server's certificate"));
        let no_ca = lint(&bouncer(
            "[pgbouncer]\nauth_type = cert\nclient_tls_sslmode = verify-full\nserver_tls_sslmode = verify-full\n",
        ));
        assert_eq!(no_ca.len(), 1);
        assert_eq!(no_ca[0].code, Code::PoolerConfigCertWithoutCa);
        let sound = lint(&bouncer(
            "[pgbouncer]\nauth_type = cert\nclient_tls_sslmode = verify-full\nclient_tls_ca_file = ca.crt\nserver_tls_sslmode = verify-full\n",
        ));
        assert!(sound.is_empty(), "{sound:?}");
    }
}

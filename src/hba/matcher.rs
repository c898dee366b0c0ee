//! `check_hba` and `check_usermap`: which rule decides a connection, and whether a
//! certificate name maps to the user. What the doctor cannot know from outside (group
//! membership, the server's interfaces, reverse DNS) is stated as an assumption.

use std::net::IpAddr;

use super::{Address, ClientCert, ClientName, ConnType, HbaRule, IdentRule, Token};

/// The connection as the server sees it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Unix-domain socket (never TLS).
    pub local: bool,
    pub ssl: bool,
    /// The client address as the server sees it (our socket's local address).
    pub client_ip: Option<IpAddr>,
    /// The server address we connected to, for `samehost`.
    pub server_ip: Option<IpAddr>,
    pub user: String,
    pub database: String,
    pub replication: bool,
}

/// The rule that decides, with what had to be assumed to pick it.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub rule: Option<&'a HbaRule>,
    pub assumptions: Vec<String>,
}

/// Why a rule did not match: the first field that differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    ConnectionType(String),
    Address(String),
    Database(String),
    User(String),
}

impl Mismatch {
    pub fn describe(&self) -> String {
        match self {
            Mismatch::ConnectionType(s)
            | Mismatch::Address(s)
            | Mismatch::Database(s)
            | Mismatch::User(s) => s.clone(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Mismatch::ConnectionType(_) => 0,
            Mismatch::Address(_) => 1,
            Mismatch::Database(_) => 2,
            Mismatch::User(_) => 3,
        }
    }
}

enum Verdict {
    Match,
    Assumed(String),
    No(Mismatch),
}

/// The first matching rule, exactly in the server's order.
pub fn decide<'a>(rules: &'a [HbaRule], conn: &Connection) -> Decision<'a> {
    let mut assumptions = Vec::new();
    for rule in rules {
        match check(rule, conn) {
            Verdict::Match => {
                return Decision {
                    rule: Some(rule),
                    assumptions,
                }
            }
            Verdict::Assumed(why) => {
                assumptions.push(format!("line {}: {why}", rule.line_number));
            }
            Verdict::No(_) => {}
        }
    }
    Decision {
        rule: None,
        assumptions,
    }
}

/// For `no pg_hba.conf entry`: the rules that came closest, with what differed.
pub fn near_misses<'a>(rules: &'a [HbaRule], conn: &Connection) -> Vec<(&'a HbaRule, Mismatch)> {
    let mut misses: Vec<(&HbaRule, Mismatch)> = rules
        .iter()
        .filter_map(|r| match check(r, conn) {
            Verdict::No(m) => Some((r, m)),
            _ => None,
        })
        .collect();
    // Rules that failed on a later field matched more of the connection.
    misses.sort_by_key(|(r, m)| (std::cmp::Reverse(m.rank()), r.line_number));
    misses.truncate(3);
    misses
}

fn check(rule: &HbaRule, conn: &Connection) -> Verdict {
    // Connection type.
    let type_ok = match rule.conn_type {
        ConnType::Local => conn.local,
        ConnType::Host => !conn.local,
        ConnType::HostSsl => !conn.local && conn.ssl,
        ConnType::HostNoSsl => !conn.local && !conn.ssl,
        ConnType::HostGssEnc => false,
        ConnType::HostNoGssEnc => !conn.local,
    };
    if !type_ok {
        let why = match (rule.conn_type, conn.local, conn.ssl) {
            (ConnType::Local, false, _) => "a local line, but the connection is TCP".to_string(),
            (_, true, _) => format!(
                "a {} line, but the connection is a Unix socket",
                rule.conn_type.as_str()
            ),
            (ConnType::HostSsl, _, false) => {
                "a hostssl line, but the connection is not encrypted".into()
            }
            (ConnType::HostNoSsl, _, true) => {
                "a hostnossl line, but the connection uses SSL".into()
            }
            (ConnType::HostGssEnc, _, _) => {
                "a hostgssenc line, but the connection is not GSS-encrypted".into()
            }
            _ => "connection type".into(),
        };
        return Verdict::No(Mismatch::ConnectionType(why));
    }
    let mut assumption = None;
    if let Some(address) = &rule.address {
        match address_matches(address, conn) {
            Some(true) => {}
            Some(false) => {
                return Verdict::No(Mismatch::Address(format!(
                    "the client address {} is not in {}",
                    conn.client_ip.map(|i| i.to_string()).unwrap_or_default(),
                    address_text(address)
                )))
            }
            None => {
                assumption = Some(format!(
                    "{} needs the server's view of the network (assumed not to match)",
                    address_text(address)
                ))
            }
        }
    }
    match db_matches(&rule.databases, conn, rule.regex) {
        Some(true) => {}
        Some(false) => {
            return Verdict::No(Mismatch::Database(format!(
                "the database \"{}\" is not in {}",
                conn.database,
                tokens_text(&rule.databases)
            )))
        }
        None => {
            assumption.get_or_insert_with(|| "samerole needs role membership, which the doctor cannot see (assumed not a member)".into());
        }
    }
    match user_matches(&rule.users, &conn.user, rule.regex) {
        Some(true) => {}
        Some(false) => {
            return Verdict::No(Mismatch::User(format!(
                "the user \"{}\" is not in {}",
                conn.user,
                tokens_text(&rule.users)
            )))
        }
        None => {
            assumption.get_or_insert_with(|| "+group needs role membership, which the doctor cannot see (assumed not a member)".into());
        }
    }
    match assumption {
        // Unknowable fields are taken as not matching: the server's own answer corrects it.
        Some(why) => Verdict::Assumed(why),
        None => Verdict::Match,
    }
}

fn address_text(address: &Address) -> String {
    match address {
        Address::All => "all".into(),
        Address::SameHost => "samehost".into(),
        Address::SameNet => "samenet".into(),
        Address::Net { addr, prefix } => format!("{addr}/{prefix}"),
        Address::Hostname(h) => h.clone(),
    }
}

fn tokens_text(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| {
            if t.quoted {
                format!("\"{}\"", t.text)
            } else {
                t.text.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Some(answer), or None when only the server can know.
fn address_matches(address: &Address, conn: &Connection) -> Option<bool> {
    let client = conn.client_ip?;
    match address {
        Address::All => Some(true),
        Address::SameHost => match conn.server_ip {
            // The server has at least the address we reached it on.
            Some(server) if server == client => Some(true),
            _ => None,
        },
        Address::SameNet => None,
        Address::Net { addr, prefix } => Some(in_network(client, *addr, *prefix)),
        Address::Hostname(_) => None,
    }
}

/// IPv4 rules never match IPv6 clients, not even IPv4-mapped ones, and the reverse.
pub fn in_network(client: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn regex_matches(re: &str, value: &str) -> bool {
    regex::Regex::new(re).is_ok_and(|r| r.is_match(value))
}

/// `check_db`.
fn db_matches(tokens: &[Token], conn: &Connection, regex: bool) -> Option<bool> {
    let mut unknown = false;
    for t in tokens {
        if conn.replication {
            if t.is_keyword("replication") {
                return Some(true);
            }
            continue;
        }
        if t.is_keyword("all") {
            return Some(true);
        }
        if t.is_keyword("sameuser") {
            if conn.database == conn.user {
                return Some(true);
            }
        } else if t.is_keyword("samerole") || t.is_keyword("samegroup") {
            // A role is a member of itself; other memberships are invisible from here.
            if conn.database == conn.user {
                return Some(true);
            }
            unknown = true;
        } else if t.is_keyword("replication") {
            continue;
        } else if let Some(re) = t.regex().filter(|_| regex) {
            if regex_matches(re, &conn.database) {
                return Some(true);
            }
        } else if t.text == conn.database {
            return Some(true);
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

/// `check_role`: +group, all, regex, then the exact (case-sensitive) name.
fn user_matches(tokens: &[Token], user: &str, regex: bool) -> Option<bool> {
    let mut unknown = false;
    for t in tokens {
        if !t.quoted && t.text.starts_with('+') {
            if &t.text[1..] == user {
                return Some(true);
            }
            unknown = true;
        } else if t.is_keyword("all") {
            return Some(true);
        } else if let Some(re) = t.regex().filter(|_| regex) {
            if regex_matches(re, user) {
                return Some(true);
            }
        } else if t.text == user {
            return Some(true);
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

/// What the method's certificate rules say about a certificate name, for a matched rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertNameVerdict {
    /// The rule does not check the certificate name.
    NotChecked,
    Accepted {
        by: String,
    },
    Refused {
        name: String,
        why: String,
    },
}

/// `CheckCertAuth` and `check_usermap` for a rule: the CN (or RFC 2253 DN) against the user,
/// through the map when the rule names one.
pub fn cert_name_verdict(
    rule: &HbaRule,
    cn: Option<&str>,
    dn: Option<&str>,
    user: &str,
    ident: &[IdentRule],
) -> CertNameVerdict {
    if rule.clientcert != ClientCert::VerifyFull {
        return CertNameVerdict::NotChecked;
    }
    let name = match rule.clientname {
        ClientName::Cn => cn,
        ClientName::Dn => dn,
    };
    let Some(name) = name else {
        return CertNameVerdict::Refused {
            name: String::new(),
            why: "the certificate has no CN (client certificate contains no user name)".into(),
        };
    };
    match &rule.map {
        None if name == user => CertNameVerdict::Accepted {
            by: "the name equals the user".into(),
        },
        None => CertNameVerdict::Refused {
            name: name.to_string(),
            why: format!(
                "provided user name ({user}) and authenticated user name ({name}) do not match"
            ),
        },
        Some(map) => match map_user(map, name, user, ident) {
            Some(line) => CertNameVerdict::Accepted {
                by: format!("pg_ident.conf line {line}"),
            },
            None => CertNameVerdict::Refused {
                name: name.to_string(),
                why: format!(
                    "no match in usermap \"{map}\" for user \"{user}\" authenticated as \"{name}\""
                ),
            },
        },
    }
}

/// The pg_ident line (number) that maps `system_user` to `pg_user` in `map`.
pub fn map_user(map: &str, system_user: &str, pg_user: &str, ident: &[IdentRule]) -> Option<usize> {
    for rule in ident.iter().filter(|r| r.map == map) {
        if let Some(re) = rule.system_user.regex() {
            let Ok(regex) = regex::Regex::new(re) else {
                continue;
            };
            let Some(caps) = regex.captures(system_user) else {
                continue;
            };
            let target = &rule.pg_user;
            let wanted = if !target.quoted
                && (target.text.starts_with('+') || target.text.starts_with('/'))
            {
                target.text.clone()
            } else if target.text.contains("\\1") {
                match caps.get(1) {
                    Some(group) => target.text.replacen("\\1", group.as_str(), 1),
                    None => continue,
                }
            } else {
                target.text.clone()
            };
            if pg_user_matches(&wanted, target.quoted, pg_user) {
                return Some(rule.line_number);
            }
        } else if rule.system_user.text == system_user
            && pg_user_matches(&rule.pg_user.text, rule.pg_user.quoted, pg_user)
        {
            return Some(rule.line_number);
        }
    }
    None
}

fn pg_user_matches(pattern: &str, quoted: bool, user: &str) -> bool {
    if !quoted && pattern == "all" {
        return true;
    }
    if !quoted {
        if let Some(re) = pattern.strip_prefix('/') {
            return regex_matches(re, user);
        }
    }
    pattern == user
}

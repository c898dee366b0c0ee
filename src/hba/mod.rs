//! pg_hba.conf and pg_ident.conf as PostgreSQL 14-17 read them (`hba.c`): tokens, quoting,
//! `\` continuation, `@file` lists, `include*` directives (16+), regular expressions (16+),
//! and every field and option check, with PostgreSQL's own error wording.

pub mod lint;
pub mod matcher;
pub mod server_conf;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use std::cell::Cell;

use crate::files::read_text;

/// One token of a field: its text, and whether it was quoted (which removes keyword meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
}

impl Token {
    /// An unquoted keyword such as `all`.
    pub fn is_keyword(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }

    /// `/regex` (PostgreSQL 16+), unquoted or quoted: the slash marks it either way.
    pub fn regex(&self) -> Option<&str> {
        self.text.strip_prefix('/')
    }
}

/// A line of tokens, each field a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLine {
    pub file: PathBuf,
    /// First physical line of the (possibly continued) line.
    pub line_number: usize,
    pub raw: String,
    pub fields: Vec<Vec<Token>>,
}

/// A parse error, located and worded as the server words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    pub line_number: usize,
    pub raw: String,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, line {} of configuration file \"{}\"",
            self.message,
            self.line_number,
            self.file.display()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
    HostGssEnc,
    HostNoGssEnc,
}

impl ConnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnType::Local => "local",
            ConnType::Host => "host",
            ConnType::HostSsl => "hostssl",
            ConnType::HostNoSsl => "hostnossl",
            ConnType::HostGssEnc => "hostgssenc",
            ConnType::HostNoGssEnc => "hostnogssenc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    All,
    SameHost,
    SameNet,
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// A host name, or a `.suffix` matching the end of the client's name.
    Hostname(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    Off,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientName {
    Cn,
    Dn,
}

/// A parsed pg_hba.conf rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    pub file: PathBuf,
    pub line_number: usize,
    pub raw: String,
    pub conn_type: ConnType,
    pub databases: Vec<Token>,
    pub users: Vec<Token>,
    pub address: Option<Address>,
    pub method: String,
    pub options: Vec<(String, String)>,
    pub clientcert: ClientCert,
    pub clientname: ClientName,
    pub map: Option<String>,
    /// `clientcert=1` and similar, accepted by PostgreSQL 13 and earlier only.
    pub obsolete_clientcert: Option<String>,
    /// `/regex` tokens are regular expressions (PostgreSQL 16+).
    pub regex: bool,
}

/// The result of reading a pg_hba.conf: rules in order, and the lines the server refuses.
#[derive(Debug, Clone, Default)]
pub struct HbaFile {
    pub rules: Vec<HbaRule>,
    pub errors: Vec<ParseError>,
    /// Warnings the server logs while loading (the line is still loaded).
    pub warnings: Vec<ParseError>,
}

/// pg_ident.conf: `MAPNAME SYSTEM-USERNAME PG-USERNAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentRule {
    pub file: PathBuf,
    pub line_number: usize,
    pub raw: String,
    pub map: String,
    pub system_user: Token,
    pub pg_user: Token,
}

#[derive(Debug, Clone, Default)]
pub struct IdentFile {
    pub rules: Vec<IdentRule>,
    pub errors: Vec<ParseError>,
}

/// The rules the probe's findings are explained with.
#[derive(Debug, Clone, Default)]
pub struct HbaContext {
    pub hba: HbaFile,
    pub ident: Option<IdentFile>,
    /// Where the rules came from ("--hba /path", "pg_hba_file_rules via --admin").
    pub source: String,
}

/// How deep include directives and @files may nest before it is surely a loop.
const MAX_DEPTH: usize = 10;

/// What one load may expand in all. Depth alone does not bound a file that includes
/// itself four times (4^10 files), nor six `@list` entries that each name six more.
const MAX_FILES: usize = 256;
const MAX_TOKENS: usize = 200_000;
const MAX_BYTES: usize = 16 << 20;

/// The expansion budget of one load, shared by every include and `@file` it follows.
#[derive(Default)]
struct Budget {
    files: Cell<usize>,
    tokens: Cell<usize>,
    bytes: Cell<usize>,
}

impl Budget {
    /// Reads an included or `@` file, counting it against the budget.
    fn read(&self, path: &Path) -> Result<String, String> {
        self.files.set(self.files.get() + 1);
        if self.files.get() > MAX_FILES {
            return Err(format!(
                "could not open file \"{}\": more than {MAX_FILES} files included in all",
                path.display()
            ));
        }
        let text = read_text(path)
            .map_err(|e| format!("could not open file \"{}\": {e}", path.display()))?;
        self.bytes.set(self.bytes.get() + text.len());
        if self.bytes.get() > MAX_BYTES {
            return Err(format!(
                "could not open file \"{}\": more than {} MiB included in all",
                path.display(),
                MAX_BYTES >> 20
            ));
        }
        Ok(text)
    }

    fn tokens(&self, n: usize) -> Result<(), String> {
        self.tokens.set(self.tokens.get() + n);
        if self.tokens.get() > MAX_TOKENS {
            return Err(format!(
                "more than {MAX_TOKENS} tokens after expanding @files and includes"
            ));
        }
        Ok(())
    }
}

/// Splits a configuration file into token lines, following `@file` references
/// (and, for pg_hba.conf, `include` directives via [`parse_hba`]).
pub fn tokenize(text: &str, file: &Path, depth: usize) -> (Vec<TokenLine>, Vec<ParseError>) {
    tokenize_with(text, file, depth, &Budget::default())
}

fn tokenize_with(
    text: &str,
    file: &Path,
    depth: usize,
    budget: &Budget,
) -> (Vec<TokenLine>, Vec<ParseError>) {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut physical = text.lines().enumerate().peekable();
    while let Some((index, first)) = physical.next() {
        let line_number = index + 1;
        let mut joined = first.to_string();
        // A trailing backslash continues the line (hba.c tokenize_auth_file).
        while joined.ends_with('\\') {
            joined.pop();
            match physical.next() {
                Some((_, next)) => joined.push_str(next),
                None => break,
            }
        }
        match tokenize_line(&joined, file, depth, budget) {
            Ok(fields) if fields.is_empty() => {}
            // What is echoed of a line never shows a credential: the file may be another
            // (a pgbouncer.ini or an auth_file given as pg_hba.conf).
            Ok(fields) => lines.push(TokenLine {
                file: file.to_path_buf(),
                line_number,
                raw: crate::untrusted::hide_credentials(joined.trim()).into_owned(),
                fields,
            }),
            Err(message) => errors.push(ParseError {
                file: file.to_path_buf(),
                line_number,
                raw: crate::untrusted::hide_credentials(joined.trim()).into_owned(),
                message: crate::untrusted::hide_credentials(&message).into_owned(),
                hint: None,
            }),
        }
    }
    (lines, errors)
}

/// One logical line into fields of comma-separated tokens (`next_field_expand`).
fn tokenize_line(
    line: &str,
    file: &Path,
    depth: usize,
    budget: &Budget,
) -> Result<Vec<Vec<Token>>, String> {
    let mut fields: Vec<Vec<Token>> = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // Skip blanks between fields.
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut field: Vec<Token> = Vec::new();
        loop {
            let (token, more) = next_token(&mut chars)?;
            if let Some(token) = token {
                budget.tokens(1)?;
                if !token.quoted && token.text.starts_with('@') && token.text.len() > 1 {
                    field.extend(expand_at_file(&token.text[1..], file, depth, budget)?);
                } else {
                    field.push(token);
                }
            }
            if !more {
                break;
            }
        }
        if !field.is_empty() {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// Reads one token; returns it and whether a comma says another item of the same field follows.
fn next_token(
    chars: &mut std::iter::Peekable<std::str::Chars>,
) -> Result<(Option<Token>, bool), String> {
    let mut text = String::new();
    let mut quoted = false;
    let mut in_quote = false;
    let mut saw_quote = false;
    while let Some(&c) = chars.peek() {
        if !in_quote && (c.is_whitespace() || c == '#') {
            break;
        }
        if !in_quote && c == ',' {
            chars.next();
            return Ok((
                Some(Token { text, quoted }).filter(|t| !t.text.is_empty() || saw_quote),
                true,
            ));
        }
        chars.next();
        if c == '"' {
            if in_quote && chars.peek() == Some(&'"') {
                // "" inside quotes is a literal quote.
                chars.next();
                text.push('"');
                continue;
            }
            in_quote = !in_quote;
            quoted = true;
            saw_quote = true;
            continue;
        }
        text.push(c);
    }
    if in_quote {
        return Err("unterminated quoted string".into());
    }
    if text.len() > 10 * 1024 {
        return Err("authentication file token too long, skipping".into());
    }
    Ok((
        Some(Token { text, quoted }).filter(|t| !t.text.is_empty() || saw_quote),
        false,
    ))
}

fn resolve_relative(name: &str, file: &Path) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// `@file`: every token in the file becomes an item of the current field.
fn expand_at_file(
    name: &str,
    file: &Path,
    depth: usize,
    budget: &Budget,
) -> Result<Vec<Token>, String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "could not open file \"{name}\": maximum nesting depth exceeded"
        ));
    }
    let path = resolve_relative(name, file);
    let text = budget.read(&path)?;
    let (lines, errors) = tokenize_with(&text, &path, depth + 1, budget);
    if let Some(e) = errors.first() {
        return Err(e.message.clone());
    }
    Ok(lines.into_iter().flat_map(|l| l.fields).flatten().collect())
}

const METHODS: &[&str] = &[
    "trust",
    "reject",
    "md5",
    "password",
    "scram-sha-256",
    "gss",
    "sspi",
    "ident",
    "peer",
    "pam",
    "bsd",
    "ldap",
    "radius",
    "cert",
];

/// Options each method accepts (besides clientcert/clientname, checked apart).
fn option_allowed(method: &str, name: &str) -> bool {
    match name {
        "map" => matches!(method, "ident" | "peer" | "gss" | "sspi" | "cert"),
        "pamservice" | "pam_use_hostname" => method == "pam",
        "include_realm" | "krb_realm" => matches!(method, "gss" | "sspi"),
        "compat_realm" | "upn_username" => method == "sspi",
        n if n.starts_with("ldap") => method == "ldap",
        n if n.starts_with("radius") => method == "radius",
        _ => false,
    }
}

/// Why a configuration file could not be loaded at all (a line the server refuses is a
/// `ParseError` of the loaded file instead).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not read \"{}\": {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An include the server would refuse too, in PostgreSQL's words.
    #[error("{0}")]
    Include(String),
}

fn read_config(path: &Path) -> Result<String, LoadError> {
    read_text(path).map_err(|source| LoadError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a pg_hba.conf file from disk (with includes), as PostgreSQL `pg_version` would.
pub fn load_hba(path: &Path, pg_version: u32) -> Result<HbaFile, LoadError> {
    let text = read_config(path)?;
    Ok(parse_hba(&text, path, pg_version))
}

pub fn parse_hba(text: &str, file: &Path, pg_version: u32) -> HbaFile {
    let mut out = HbaFile::default();
    parse_hba_into(text, file, pg_version, 0, &Budget::default(), &mut out);
    if out.rules.is_empty() && out.errors.is_empty() {
        out.errors.push(ParseError {
            file: file.to_path_buf(),
            line_number: 0,
            raw: String::new(),
            message: format!(
                "configuration file \"{}\" contains no entries",
                file.display()
            ),
            hint: None,
        });
    }
    out
}

fn parse_hba_into(
    text: &str,
    file: &Path,
    pg_version: u32,
    depth: usize,
    budget: &Budget,
    out: &mut HbaFile,
) {
    let (lines, errors) = tokenize_with(text, file, depth, budget);
    out.errors.extend(errors);
    for line in lines {
        let first = &line.fields[0][0];
        if !first.quoted
            && matches!(
                first.text.as_str(),
                "include" | "include_if_exists" | "include_dir"
            )
        {
            if pg_version < 16 {
                out.errors.push(error(
                    &line,
                    format!("invalid connection type \"{}\"", first.text),
                    None,
                ));
                continue;
            }
            include(&line, pg_version, depth, budget, out);
            continue;
        }
        match parse_hba_line(&line, pg_version) {
            Ok((rule, warning)) => {
                if let Some(w) = warning {
                    out.warnings.push(w);
                }
                out.rules.push(rule);
            }
            Err(e) => out.errors.push(e),
        }
    }
}

fn include(line: &TokenLine, pg_version: u32, depth: usize, budget: &Budget, out: &mut HbaFile) {
    let kind = line.fields[0][0].text.clone();
    let Some(target) = line.fields.get(1).and_then(|f| f.first()) else {
        out.errors.push(error(
            line,
            format!("missing filename for inclusion \"{kind}\""),
            None,
        ));
        return;
    };
    if depth >= MAX_DEPTH {
        out.errors.push(error(
            line,
            "could not open configuration file: maximum nesting depth exceeded".into(),
            None,
        ));
        return;
    }
    let path = resolve_relative(&target.text, &line.file);
    if kind == "include_dir" {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "conf")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect(),
            Err(e) => {
                out.errors.push(error(
                    line,
                    format!("could not open directory \"{}\": {e}", path.display()),
                    None,
                ));
                return;
            }
        };
        entries.sort();
        for entry in entries {
            match budget.read(&entry) {
                Ok(text) => parse_hba_into(&text, &entry, pg_version, depth + 1, budget, out),
                Err(e) => {
                    out.errors.push(error(line, e, None));
                    if budget.files.get() > MAX_FILES {
                        return;
                    }
                }
            }
        }
        return;
    }
    if kind == "include_if_exists" && std::fs::metadata(&path).is_err() {
        return;
    }
    match budget.read(&path) {
        Ok(text) => parse_hba_into(&text, &path, pg_version, depth + 1, budget, out),
        Err(e) => out.errors.push(error(line, e, None)),
    }
}

fn error(line: &TokenLine, message: String, hint: Option<String>) -> ParseError {
    ParseError {
        file: line.file.clone(),
        line_number: line.line_number,
        raw: line.raw.clone(),
        message: crate::untrusted::hide_credentials(&message).into_owned(),
        hint,
    }
}

/// `parse_hba_line`: the fields, the address, the method and its options.
pub fn parse_hba_line(
    line: &TokenLine,
    pg_version: u32,
) -> Result<(HbaRule, Option<ParseError>), ParseError> {
    let err = |message: String| error(line, message, None);
    let mut fields = line.fields.iter();
    let conn_field = fields.next().ok_or_else(|| err("empty line".into()))?;
    if conn_field.len() > 1 {
        return Err(err("multiple values specified for connection type".into()));
    }
    let conn_type = match conn_field[0].text.as_str() {
        "local" => ConnType::Local,
        "host" => ConnType::Host,
        "hostssl" => ConnType::HostSsl,
        "hostnossl" => ConnType::HostNoSsl,
        "hostgssenc" => ConnType::HostGssEnc,
        "hostnogssenc" => ConnType::HostNoGssEnc,
        other => return Err(err(format!("invalid connection type \"{other}\""))),
    };
    let databases = fields
        .next()
        .cloned()
        .ok_or_else(|| err("end-of-line before database specification".into()))?;
    let users = fields
        .next()
        .cloned()
        .ok_or_else(|| err("end-of-line before role specification".into()))?;
    for token in databases.iter().chain(users.iter()) {
        if let Some(re) = token.regex() {
            if pg_version < 16 {
                continue; // before 16 it is just a name that starts with a slash
            }
            if let Err(e) = regex::Regex::new(re) {
                return Err(err(format!("invalid regular expression \"{re}\": {e}")));
            }
        }
    }

    let address = if conn_type == ConnType::Local {
        None
    } else {
        let addr_field = fields
            .next()
            .ok_or_else(|| err("end-of-line before IP address specification".into()))?;
        if addr_field.len() > 1 {
            return Err(err("multiple values specified for host address".into()));
        }
        let token = &addr_field[0];
        Some(if token.is_keyword("all") {
            Address::All
        } else if token.is_keyword("samehost") {
            Address::SameHost
        } else if token.is_keyword("samenet") {
            Address::SameNet
        } else {
            let (host, cidr) = match token.text.split_once('/') {
                Some((h, c)) => (h, Some(c)),
                None => (token.text.as_str(), None),
            };
            match host.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix = match cidr {
                        Some(c) => c.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                            err(format!("invalid CIDR mask in address \"{}\"", token.text))
                        })?,
                        None => {
                            let mask_field = fields.next().ok_or_else(|| {
                                error(
                                    line,
                                    "end-of-line before netmask specification".into(),
                                    Some("Specify an address range in CIDR notation, or provide a separate netmask.".into()),
                                )
                            })?;
                            let mask_text = &mask_field[0].text;
                            let mask: IpAddr = mask_text.parse().map_err(|_| {
                                err(format!(
                                    "invalid IP mask \"{mask_text}\": Name or service not known"
                                ))
                            })?;
                            if mask.is_ipv4() != ip.is_ipv4() {
                                return Err(err("IP address and mask do not match".into()));
                            }
                            mask_prefix(mask)
                                .ok_or_else(|| err(format!("invalid IP mask \"{mask_text}\"")))?
                        }
                    };
                    Address::Net { addr: ip, prefix }
                }
                Err(_) if cidr.is_some() => {
                    return Err(err(format!(
                        "specifying both host name and CIDR mask is invalid: \"{}\"",
                        token.text
                    )))
                }
                Err(_) => Address::Hostname(token.text.clone()),
            }
        })
    };

    let method_field = fields
        .next()
        .ok_or_else(|| err("end-of-line before authentication method".into()))?;
    if method_field.len() > 1 {
        return Err(err(
            "multiple values specified for authentication type".into()
        ));
    }
    let mut method = method_field[0].text.clone();
    if !METHODS.contains(&method.as_str()) {
        return Err(err(format!("invalid authentication method \"{method}\"")));
    }
    if method == "ident" && conn_type == ConnType::Local {
        method = "peer".into();
    }
    if method == "peer" && conn_type != ConnType::Local {
        return Err(err(
            "peer authentication is only supported on local sockets".into(),
        ));
    }
    if method == "gss" && conn_type == ConnType::Local {
        return Err(err(
            "gssapi authentication is not supported on local sockets".into(),
        ));
    }
    if method == "cert" && conn_type != ConnType::HostSsl {
        return Err(err(
            "cert authentication is only supported on hostssl connections".into(),
        ));
    }

    let mut rule = HbaRule {
        file: line.file.clone(),
        line_number: line.line_number,
        raw: line.raw.clone(),
        conn_type,
        databases,
        users,
        address,
        method: method.clone(),
        options: Vec::new(),
        clientcert: if method == "cert" {
            ClientCert::VerifyFull
        } else {
            ClientCert::Off
        },
        clientname: ClientName::Cn,
        map: None,
        obsolete_clientcert: None,
        regex: pg_version >= 16,
    };
    for field in fields {
        for token in field {
            let (name, value) = token.text.split_once('=').ok_or_else(|| {
                err(format!(
                    "authentication option not in name=value format: {}",
                    token.text
                ))
            })?;
            rule.options.push((name.to_string(), value.to_string()));
            match name {
                "clientcert" => {
                    if conn_type != ConnType::HostSsl {
                        return Err(err("clientcert can only be configured for \"hostssl\" rows".into()));
                    }
                    let legacy = matches!(value, "1" | "0" | "no-verify");
                    match value {
                        "verify-full" => rule.clientcert = ClientCert::VerifyFull,
                        "verify-ca" if method == "cert" => {
                            return Err(err("clientcert only accepts \"verify-full\" when using \"cert\" authentication".into()))
                        }
                        "verify-ca" => rule.clientcert = ClientCert::VerifyCa,
                        _ if legacy && pg_version <= 13 => {
                            rule.obsolete_clientcert = Some(value.to_string());
                            if value == "1" {
                                rule.clientcert = ClientCert::VerifyCa;
                            } else if method == "cert" {
                                return Err(err("clientcert cannot be set to \"no-verify\" when using \"cert\" authentication".into()));
                            }
                        }
                        other => return Err(err(format!("invalid value for clientcert: \"{other}\""))),
                    }
                }
                "clientname" => {
                    if conn_type != ConnType::HostSsl {
                        return Err(err("clientname can only be configured for \"hostssl\" rows".into()));
                    }
                    rule.clientname = match value {
                        "CN" => ClientName::Cn,
                        "DN" => ClientName::Dn,
                        other => return Err(err(format!("invalid value for clientname: \"{other}\""))),
                    };
                }
                "map" => {
                    if !option_allowed(&method, "map") {
                        return Err(err("authentication option \"map\" is only valid for authentication methods ident, peer, gssapi, sspi, and cert".into()));
                    }
                    rule.map = Some(value.to_string());
                }
                other if option_allowed(&method, other) => {}
                other if METHODS.iter().any(|m| option_allowed(m, other)) => {
                    return Err(err(format!(
                        "authentication option \"{other}\" is only valid for authentication methods {}",
                        METHODS.iter().filter(|m| option_allowed(m, other)).cloned().collect::<Vec<_>>().join(", ")
                    )))
                }
                other => return Err(err(format!("unrecognized authentication option name: \"{other}\""))),
            }
        }
    }
    Ok((rule, None))
}

/// The prefix length of a contiguous netmask.
fn mask_prefix(mask: IpAddr) -> Option<u8> {
    let bits: u128 = match mask {
        IpAddr::V4(v4) => (u32::from(v4) as u128) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    };
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Reads a pg_ident.conf.
pub fn load_ident(path: &Path) -> Result<IdentFile, LoadError> {
    let text = read_config(path)?;
    Ok(parse_ident(&text, path))
}

pub fn parse_ident(text: &str, file: &Path) -> IdentFile {
    let (lines, errors) = tokenize(text, file, 0);
    let mut out = IdentFile {
        rules: Vec::new(),
        errors,
    };
    for line in lines {
        let single = |i: usize, what: &str| -> Result<Token, String> {
            let field = line
                .fields
                .get(i)
                .ok_or_else(|| format!("missing entry at end of line ({what})"))?;
            if field.len() > 1 {
                return Err("multiple values in ident field".into());
            }
            Ok(field[0].clone())
        };
        let parsed = (|| {
            let map = single(0, "map name")?;
            let system_user = single(1, "system user")?;
            let pg_user = single(2, "database user")?;
            if line.fields.len() > 3 {
                return Err("extra fields at end of line".to_string());
            }
            if let Some(re) = system_user.regex() {
                regex::Regex::new(re)
                    .map_err(|e| format!("invalid regular expression \"{re}\": {e}"))?;
            }
            Ok(IdentRule {
                file: line.file.clone(),
                line_number: line.line_number,
                raw: line.raw.clone(),
                map: map.text,
                system_user,
                pg_user,
            })
        })();
        match parsed {
            Ok(rule) => out.rules.push(rule),
            Err(message) => out.errors.push(error(&line, message, None)),
        }
    }
    out
}

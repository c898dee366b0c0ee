//! Resolves what libpq would use: the target string, then the service file, then the PG*
//! variables, then ~/.pgpass and libpq's defaults, with flags overriding all of them. Every
//! value remembers where it came from, because "require behaves like verify-ca" only makes
//! sense once the user sees that a root.crt was picked up from their home directory.

use crate::files::read_text;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conninfo::{self, ConninfoError, TargetSyntax};
use crate::sslmode::SslMode;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(String),
    Target(TargetSyntax),
    Service { file: PathBuf, service: String },
    Env(String),
    Passfile(PathBuf),
    Default(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Flag(flag) if flag.starts_with('-') => format!("flag {flag}"),
            // psql's positional DBNAME and USERNAME.
            Source::Flag(argument) => argument.clone(),
            Source::Target(TargetSyntax::Conninfo) => "connection string".into(),
            Source::Target(TargetSyntax::Uri) => "connection URI".into(),
            Source::Target(TargetSyntax::HostPort) => "target argument".into(),
            Source::Service { file, service } => {
                format!("service \"{service}\" in {}", file.display())
            }
            Source::Env(var) => format!("environment {var}"),
            Source::Passfile(path) => format!("password file {}", path.display()),
            Source::Default(why) => format!("libpq default ({why})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub source: Source,
}

/// The process environment, captured once so resolution is a pure function of it.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: BTreeMap<String, String>,
    /// The home directory libpq would use ($HOME, else the password database).
    pub home: Option<PathBuf>,
    /// The OS user name libpq uses as the default user.
    pub os_user: Option<String>,
}

impl Environment {
    /// The process environment, read as OS strings: a value that is not UTF-8 (a Latin-1
    /// PGPASSWORD) keeps its bytes, and no variable can make the doctor panic.
    pub fn capture() -> Self {
        let vars: BTreeMap<String, String> = std::env::vars_os()
            .map(|(k, v)| {
                (
                    crate::untrusted::decode_os(&k),
                    crate::untrusted::decode_os(&v),
                )
            })
            .collect();
        let (pw_home, pw_user) = passwd_entry();
        let home = vars
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or(pw_home);
        Environment {
            vars,
            home,
            os_user: pw_user,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The effective user's name and home from the password database, as libpq looks them up.
fn passwd_entry() -> (Option<PathBuf>, Option<String>) {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy the strings out
    // immediately and the process is single-threaded at this point.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return (None, None);
        }
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir)
            .to_string_lossy()
            .into_owned();
        let name = std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned();
        (Some(PathBuf::from(dir)), Some(name))
    }
}

/// Keyword ← environment variable, as in libpq's `PQconninfoOptions`.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("service", "PGSERVICE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslsni", "PGSSLSNI"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("require_auth", "PGREQUIREAUTH"),
    ("gssencmode", "PGGSSENCMODE"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("load_balance_hosts", "PGLOADBALANCEHOSTS"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("requirepeer", "PGREQUIREPEER"),
    ("krbsrvname", "PGKRBSRVNAME"),
    ("gsslib", "PGGSSLIB"),
    ("gssdelegation", "PGGSSDELEGATION"),
];

/// Debian's compiled-in socket directory (`DEFAULT_PGSOCKET_DIR`).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Settings given as flags. The doctor's own flags (`--sslmode`, `--sslrootcert`...)
/// override every other source; psql's connection flags (`-h`, `-p`, `-U`, `-d`) rank as
/// they do in psql, beneath the target's connection string and above the environment.
#[derive(Debug, Clone, Default)]
pub struct FlagSettings {
    pub values: Vec<(&'static str, &'static str, String)>,
    /// psql's flags: psql passes them to libpq before its expanded dbname, whose values win.
    pub beneath_target: Vec<(&'static str, &'static str, String)>,
}

impl FlagSettings {
    pub fn set(&mut self, keyword: &'static str, flag: &'static str, value: Option<String>) {
        if let Some(value) = value {
            self.values.push((keyword, flag, value));
        }
    }

    /// A psql connection flag: the target's connection string wins over it, as in psql.
    pub fn set_beneath_target(
        &mut self,
        keyword: &'static str,
        flag: &'static str,
        value: Option<String>,
    ) {
        // psql (libpq) ignores an empty value, so it hides nothing beneath it.
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.beneath_target.push((keyword, flag, value));
        }
    }
}

/// One host libpq would try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub hostaddr: Option<IpAddr>,
    /// The IPv6 zone of hostaddr (`fe80::1%eth0`), as an interface index; 0 for none.
    pub scope_id: u32,
    pub port: u16,
}

impl Endpoint {
    pub fn is_unix_socket(&self) -> bool {
        self.hostaddr.is_none() && (self.host.starts_with('/') || self.host.starts_with('@'))
    }

    pub fn socket_path(&self) -> PathBuf {
        Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port))
    }

    /// How libpq names the server in its messages.
    pub fn display(&self) -> String {
        if self.is_unix_socket() {
            return self.socket_path().display().to_string();
        }
        match (&self.hostaddr, self.host.contains(':')) {
            (Some(addr), _) if self.host.is_empty() => format!("{addr}:{}", self.port),
            (Some(addr), _) => format!("{} ({addr}):{}", self.host, self.port),
            (None, true) => format!("[{}]:{}", self.host, self.port),
            (None, false) => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted roots (libpq 16+).
    System,
    /// No home directory and no sslrootcert.
    Unknown,
}

/// sslcertmode (libpq 16+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertMode {
    Disable,
    Allow,
    Require,
}

/// channel_binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBindingMode {
    Disable,
    Prefer,
    Require,
}

/// A TLS protocol version as libpq's ssl_min/max_protocol_version name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// libpq's names, compared case-insensitively (`pg_strcasecmp`).
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text.to_ascii_lowercase().as_str() {
            "tlsv1" => Some(TlsVersion::V1_0),
            "tlsv1.1" => Some(TlsVersion::V1_1),
            "tlsv1.2" => Some(TlsVersion::V1_2),
            "tlsv1.3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::V1_0 => "TLSv1",
            TlsVersion::V1_1 => "TLSv1.1",
            TlsVersion::V1_2 => "TLSv1.2",
            TlsVersion::V1_3 => "TLSv1.3",
        }
    }
}

/// ssl_min_protocol_version and ssl_max_protocol_version; `None` is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolRange {
    pub min: Option<TlsVersion>,
    pub max: Option<TlsVersion>,
}

impl ProtocolRange {
    /// The versions the client may offer, of those the doctor's TLS library speaks.
    pub fn allows(&self, version: TlsVersion) -> bool {
        self.min.is_none_or(|m| version >= m) && self.max.is_none_or(|m| version <= m)
    }
}

/// What the TLS client is told besides the sslmode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsOptions {
    pub sni: bool,
    pub protocol: ProtocolRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    Postgres,
    Direct,
}

/// A secret value: kept out of Debug output so it cannot leak through logging.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The exact bytes libpq would send (a secret that was not UTF-8 stays as it was).
    pub fn bytes(&self) -> Vec<u8> {
        crate::untrusted::encode(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Everything the probe needs, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub dbname: String,
    pub password: Option<(Secret, Source)>,
    pub passfile: Option<PathBuf>,
    pub sslmode: SslMode,
    pub root: RootSpec,
    /// An explicit sslcrl, or, when neither sslcrl nor sslcrldir is set, the default
    /// ~/.postgresql/root.crl (used only when it exists).
    pub crl: Option<PathBuf>,
    /// sslcrldir: a directory of hashed CRLs.
    pub crl_dir: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub sslpassword: Option<Secret>,
    /// sslcert was given (flag, string, service or PGSSLCERT), not the default path.
    pub cert_explicit: bool,
    pub cert_mode: CertMode,
    pub channel_binding: ChannelBindingMode,
    pub sni: bool,
    pub protocol: ProtocolRange,
    pub negotiation: Negotiation,
    /// libpq's connect_timeout: per step; `None` waits forever (bounded by --timeout).
    pub connect_timeout: Option<Duration>,
    pub application_name: String,
    /// libpq's `options`, sent in the StartupMessage.
    pub options: Option<String>,
    /// Where a Kerberos credential cache may be (libpq tries GSSAPI encryption first when
    /// one exists and gssencmode is prefer, the default).
    pub gss_cache: Option<String>,
    /// Each setting with its value (secrets redacted) and source, for the report.
    pub settings: BTreeMap<String, Setting>,
    /// Things libpq would say while resolving (for example an ignored passfile).
    pub notes: Vec<String>,
    /// The passfile libpq would read could not be read here: why (cells needing a password
    /// are then undetermined).
    pub password_unknown: Option<String>,
}

/// A usage error: the wording follows libpq's where libpq has one.
pub type PlanError = ConninfoError;

fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(ConninfoError(msg.into()))
}

/// Resolves the target and flags against the environment into a [`Plan`].
pub fn resolve(target: &str, flags: &FlagSettings, env: &Environment) -> Result<Plan, PlanError> {
    // A key pasted as the target must not come back quoted in an error message.
    if crate::files::holds_private_key(target.as_bytes()) {
        return err("the target holds a private key (-----BEGIN ... PRIVATE KEY-----), not a connection string; it is not shown");
    }
    let mut settings: BTreeMap<String, Setting> = BTreeMap::new();
    for (key, flag, value) in &flags.beneath_target {
        settings.insert(
            key.to_string(),
            Setting {
                value: value.clone(),
                source: Source::Flag(flag.to_string()),
            },
        );
    }
    let (syntax, pairs) = conninfo::parse_target(target)?;
    for (key, value) in pairs {
        settings.insert(
            key,
            Setting {
                value,
                source: Source::Target(syntax),
            },
        );
    }
    for (key, flag, value) in &flags.values {
        settings.insert(
            key.to_string(),
            Setting {
                value: value.clone(),
                source: Source::Flag(flag.to_string()),
            },
        );
    }

    // Service file: fills keys not set explicitly.
    let service = settings
        .get("service")
        .map(|s| s.value.clone())
        .or_else(|| env.var("PGSERVICE").map(String::from));
    if let Some(service) = service {
        let (file, entries) = read_service(&service, env)?;
        for (key, value) in entries {
            settings.entry(key).or_insert(Setting {
                value,
                source: Source::Service {
                    file: file.clone(),
                    service: service.clone(),
                },
            });
        }
    }

    for (key, var) in ENV_VARS {
        if settings.contains_key(*key) {
            continue;
        }
        if let Some(value) = env.var(var) {
            settings.insert(
                key.to_string(),
                Setting {
                    value: value.to_string(),
                    source: Source::Env(var.to_string()),
                },
            );
        }
    }
    if !settings.contains_key("sslmode") && env.var("PGREQUIRESSL") == Some("1") {
        settings.insert(
            "sslmode".into(),
            Setting {
                value: "require".into(),
                source: Source::Env("PGREQUIRESSL".into()),
            },
        );
    }

    let get = |settings: &BTreeMap<String, Setting>, key: &str| -> Option<String> {
        settings
            .get(key)
            .map(|s| s.value.clone())
            .filter(|v| !v.is_empty())
    };
    let default =
        |settings: &mut BTreeMap<String, Setting>, key: &str, value: String, why: &str| {
            if get(settings, key).is_none() {
                settings.insert(
                    key.to_string(),
                    Setting {
                        value,
                        source: Source::Default(why.to_string()),
                    },
                );
            }
        };

    let home_pg = env.home.as_ref().map(|h| h.join(".postgresql"));

    // Root certificates, and the sslmode default that sslrootcert=system implies.
    let root = match get(&settings, "sslrootcert") {
        Some(v) if v == "system" => RootSpec::System,
        Some(v) => RootSpec::File(PathBuf::from(v)),
        None => match &home_pg {
            Some(dir) => {
                let path = dir.join("root.crt");
                default(
                    &mut settings,
                    "sslrootcert",
                    path.display().to_string(),
                    "~/.postgresql/root.crt",
                );
                RootSpec::File(path)
            }
            None => RootSpec::Unknown,
        },
    };
    if root == RootSpec::System {
        default(
            &mut settings,
            "sslmode",
            "verify-full".into(),
            "sslrootcert=system implies verify-full",
        );
    } else {
        default(&mut settings, "sslmode", "prefer".into(), "prefer");
    }
    let sslmode_text = get(&settings, "sslmode").unwrap_or_default();
    let sslmode: SslMode = sslmode_text
        .parse()
        .map_err(|_| ConninfoError(format!("invalid sslmode value: \"{sslmode_text}\"")))?;
    if root == RootSpec::System && sslmode != SslMode::VerifyFull {
        return err(format!(
            "weak sslmode \"{sslmode}\" may not be used with sslrootcert=system (use \"verify-full\")"
        ));
    }

    let negotiation = match get(&settings, "sslnegotiation").as_deref() {
        None | Some("postgres") => Negotiation::Postgres,
        Some("direct") => Negotiation::Direct,
        Some(other) => return err(format!("invalid sslnegotiation value: \"{other}\"")),
    };
    if negotiation == Negotiation::Direct && sslmode.rank() < SslMode::Require.rank() {
        return err(format!(
            "weak sslmode \"{sslmode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"
        ));
    }

    let os_user = env.os_user.clone().unwrap_or_else(|| "postgres".into());
    default(&mut settings, "user", os_user, "the operating-system user");
    let user = get(&settings, "user").unwrap_or_default();
    default(&mut settings, "dbname", user.clone(), "the user name");
    let dbname = get(&settings, "dbname").unwrap_or_default();
    default(&mut settings, "port", "5432".into(), "5432");
    default(
        &mut settings,
        "host",
        DEFAULT_SOCKET_DIR.into(),
        "the Unix socket directory",
    );

    let endpoints = endpoints(&settings)?;

    let connect_timeout = match get(&settings, "connect_timeout") {
        None => None,
        Some(v) => {
            // libpq's parse_int_param: a C int, so anything beyond 2^31-1 is invalid.
            let secs: i32 = v.trim().parse().map_err(|_| {
                ConninfoError(format!(
                    "invalid integer value \"{v}\" for connection option \"connect_timeout\""
                ))
            })?;
            // libpq: 0 or negative waits forever; anything else is at least 2 seconds.
            (secs > 0).then(|| Duration::from_secs(secs.max(2) as u64))
        }
    };

    let sni = match get(&settings, "sslsni").as_deref() {
        None | Some("1") => true,
        Some("0") => false,
        Some(other) => return err(format!("invalid sslsni value: \"{other}\"")),
    };

    let protocol = protocol_range(&settings)?;
    let gss_cache = gss_credential_cache(env);
    check_choice_settings(&settings, gss_cache.as_deref())?;

    let cert = get(&settings, "sslcert").map(PathBuf::from).or_else(|| {
        home_pg.as_ref().map(|dir| {
            let path = dir.join("postgresql.crt");
            default(
                &mut settings,
                "sslcert",
                path.display().to_string(),
                "~/.postgresql/postgresql.crt",
            );
            path
        })
    });
    let key = get(&settings, "sslkey").map(PathBuf::from).or_else(|| {
        home_pg.as_ref().map(|dir| {
            let path = dir.join("postgresql.key");
            default(
                &mut settings,
                "sslkey",
                path.display().to_string(),
                "~/.postgresql/postgresql.key",
            );
            path
        })
    });
    let crl_dir = get(&settings, "sslcrldir").map(PathBuf::from);
    let crl = get(&settings, "sslcrl").map(PathBuf::from).or_else(|| {
        if crl_dir.is_some() {
            return None;
        }
        home_pg.as_ref().map(|dir| {
            let path = dir.join("root.crl");
            default(
                &mut settings,
                "sslcrl",
                path.display().to_string(),
                "~/.postgresql/root.crl",
            );
            path
        })
    });
    let sslpassword = get(&settings, "sslpassword").map(Secret);
    let cert_explicit = settings
        .get("sslcert")
        .is_some_and(|s| !matches!(s.source, Source::Default(_)));
    let cert_mode = match get(&settings, "sslcertmode").as_deref() {
        None | Some("allow") => CertMode::Allow,
        Some("disable") => CertMode::Disable,
        Some("require") => CertMode::Require,
        Some(other) => return err(format!("invalid sslcertmode value: \"{other}\"")),
    };
    let channel_binding = match get(&settings, "channel_binding").as_deref() {
        None | Some("prefer") => ChannelBindingMode::Prefer,
        Some("disable") => ChannelBindingMode::Disable,
        Some("require") => ChannelBindingMode::Require,
        Some(other) => return err(format!("invalid channel_binding value: \"{other}\"")),
    };
    let application_name = get(&settings, "application_name")
        .or_else(|| get(&settings, "fallback_application_name"))
        .unwrap_or_else(|| "pgtls-doctor".into());

    let mut notes = Vec::new();
    let mut password_unknown = None;
    let passfile = get(&settings, "passfile")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")));
    let mut password = settings
        .get("password")
        .filter(|s| !s.value.is_empty())
        .map(|s| (Secret(s.value.clone()), s.source.clone()));
    if password.is_none() {
        if let (Some(file), Some(first)) = (&passfile, endpoints.first()) {
            let lookup_host = if first.host.is_empty() {
                first
                    .hostaddr
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "localhost".into())
            } else if first.is_unix_socket() && first.host == DEFAULT_SOCKET_DIR {
                "localhost".into()
            } else {
                first.host.clone()
            };
            match password_from_file(file, &lookup_host, first.port, &dbname, &user) {
                Ok(Some(pw)) => {
                    password = Some((Secret(pw), Source::Passfile(file.clone())));
                }
                Ok(None) => {}
                Err(PassfileProblem::LibpqIgnores(note)) => notes.push(note),
                Err(PassfileProblem::Unread(why)) => {
                    notes.push(why.clone());
                    password_unknown = Some(why);
                }
            }
        }
    }
    if let Some((_, source)) = &password {
        settings.insert(
            "password".into(),
            Setting {
                value: String::new(),
                source: source.clone(),
            },
        );
    }

    // Secrets never leave this function in the settings map.
    for key in conninfo::SECRET_KEYWORDS {
        if let Some(s) = settings.get_mut(*key) {
            s.value = "<redacted>".into();
        }
    }

    Ok(Plan {
        endpoints,
        user,
        dbname,
        password,
        passfile,
        sslmode,
        root,
        crl,
        crl_dir,
        cert,
        key,
        sslpassword,
        cert_explicit,
        cert_mode,
        channel_binding,
        sni,
        protocol,
        negotiation,
        connect_timeout,
        application_name,
        options: get(&settings, "options"),
        gss_cache,
        settings,
        notes,
        password_unknown,
    })
}

impl Plan {
    /// Whether `keyword` was given by nobody: libpq's own default filled it.
    pub fn is_libpq_default(&self, keyword: &str) -> bool {
        matches!(
            self.settings.get(keyword).map(|s| &s.source),
            Some(Source::Default(_))
        )
    }

    pub fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            sni: self.sni,
            protocol: self.protocol,
        }
    }
}

/// A Kerberos credential cache libpq's GSSAPI would find: $KRB5CCNAME, the default file
/// /tmp/krb5cc_<uid>, or a default_ccache_name configured in /etc/krb5.conf (a keyring or
/// KCM cache cannot be seen from here).
fn gss_credential_cache(env: &Environment) -> Option<String> {
    if let Some(name) = env.var("KRB5CCNAME") {
        return Some(format!("KRB5CCNAME={name}"));
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let default = PathBuf::from(format!("/tmp/krb5cc_{uid}"));
    if default.exists() {
        return Some(default.display().to_string());
    }
    let conf = env.var("KRB5_CONFIG").unwrap_or("/etc/krb5.conf");
    match read_text(Path::new(conf)) {
        Ok(text) if text.contains("default_ccache_name") => {
            Some(format!("default_ccache_name in {conf}"))
        }
        _ => None,
    }
}

/// The value checks libpq makes before connecting for the settings that choose how and
/// where to connect, in libpq 17's words.
fn check_choice_settings(
    settings: &BTreeMap<String, Setting>,
    gss_cache: Option<&str>,
) -> Result<(), PlanError> {
    let value = |key: &str| settings.get(key).map(|s| s.value.as_str());
    let one_of = |key: &str, allowed: &[&str]| -> Result<(), PlanError> {
        match value(key) {
            Some(v) if !allowed.contains(&v) => err(format!("invalid {key} value: \"{v}\"")),
            _ => Ok(()),
        }
    };
    one_of("gssencmode", &["disable", "prefer", "require"])?;
    one_of(
        "target_session_attrs",
        &[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ],
    )?;
    one_of("load_balance_hosts", &["disable", "random"])?;
    if let Some(list) = value("require_auth") {
        check_require_auth(list)?;
    }
    if value("gssencmode") == Some("require") && gss_cache.is_none() {
        return err("GSSAPI encryption required but no credential cache");
    }
    Ok(())
}

/// require_auth (libpq 16+): a comma list of methods, all negated with `!` or none.
fn check_require_auth(list: &str) -> Result<(), PlanError> {
    if list.is_empty() {
        return Ok(());
    }
    const METHODS: &[&str] = &["password", "md5", "gss", "sspi", "scram-sha-256", "none"];
    let mut seen: Vec<&str> = Vec::new();
    let mut negated = None;
    for item in list.split(',') {
        let (neg, method) = match item.strip_prefix('!') {
            Some(m) => (true, m),
            None => (false, item),
        };
        match negated {
            Some(true) if !neg => {
                return err(format!(
                    "require_auth method \"{method}\" cannot be mixed with negative methods"
                ))
            }
            Some(false) if neg => {
                return err(format!(
                    "negative require_auth method \"{method}\" cannot be mixed with non-negative methods"
                ))
            }
            _ => negated = Some(neg),
        }
        if !METHODS.contains(&method) {
            return err(format!("invalid require_auth value: \"{method}\""));
        }
        if seen.contains(&method) {
            return err(format!(
                "require_auth method \"{method}\" is specified more than once"
            ));
        }
        seen.push(method);
    }
    Ok(())
}

/// libpq's checks of ssl_min/max_protocol_version, made before it connects: each value is a
/// known name (or empty, no bound), the minimum defaults to TLSv1.2, and the range is not
/// inverted. The messages are libpq 17's.
fn protocol_range(settings: &BTreeMap<String, Setting>) -> Result<ProtocolRange, PlanError> {
    let bound = |key: &str, default: Option<TlsVersion>| -> Result<Option<TlsVersion>, PlanError> {
        match settings.get(key) {
            None => Ok(default),
            Some(s) if s.value.is_empty() => Ok(None),
            Some(s) => TlsVersion::parse(&s.value)
                .map(Some)
                .ok_or_else(|| ConninfoError(format!("invalid \"{key}\" value: \"{}\"", s.value))),
        }
    };
    let min = bound("ssl_min_protocol_version", Some(TlsVersion::V1_2))?;
    let max = bound("ssl_max_protocol_version", None)?;
    // sslVerifyProtocolRange: TLSv1 as the minimum admits any maximum, TLSv1 as the maximum
    // admits only TLSv1, otherwise the minimum may not exceed the maximum.
    let valid = match (min, max) {
        (None, _) | (_, None) | (Some(TlsVersion::V1_0), _) => true,
        (Some(_), Some(TlsVersion::V1_0)) => false,
        (Some(lo), Some(hi)) => lo <= hi,
    };
    if !valid {
        return err("invalid SSL protocol version range");
    }
    Ok(ProtocolRange { min, max })
}

/// A numeric address as getaddrinfo(AI_NUMERICHOST) takes it, IPv6 zone included
/// (`fe80::1%eth0` or `fe80::1%2`).
fn parse_hostaddr(text: &str) -> Result<(IpAddr, u32), PlanError> {
    let bad = || ConninfoError(format!("could not parse network address \"{text}\""));
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, 0));
    }
    let (addr, zone) = text.split_once('%').ok_or_else(bad)?;
    let ip: std::net::Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            let name = std::ffi::CString::new(zone).map_err(|_| bad())?;
            // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
            unsafe { libc::if_nametoindex(name.as_ptr()) }
        }
    };
    if scope == 0 {
        return Err(bad());
    }
    Ok((IpAddr::V6(ip), scope))
}

fn endpoints(settings: &BTreeMap<String, Setting>) -> Result<Vec<Endpoint>, PlanError> {
    let split = |key: &str| -> Vec<String> {
        settings
            .get(key)
            .map(|s| s.value.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let hosts = split("host");
    let hostaddrs = split("hostaddr");
    let ports = split("port");
    let count = hosts.len().max(hostaddrs.len()).max(1);
    if !hostaddrs.is_empty() && !hosts.is_empty() && hosts.len() != hostaddrs.len() {
        // libpq only counts host when it was set; with hostaddr given, host may be the default.
        let host_explicit = settings
            .get("host")
            .is_some_and(|s| !matches!(s.source, Source::Default(_)));
        if host_explicit {
            return err(format!(
                "could not match {} host names to {} hostaddr values",
                hosts.len(),
                hostaddrs.len()
            ));
        }
    }
    if ports.len() > 1 && ports.len() != count {
        return err(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        ));
    }
    let hostaddr_given = !hostaddrs.iter().all(String::is_empty);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (hostaddr, scope_id) = if hostaddr_given {
            let text = hostaddrs.get(i).cloned().unwrap_or_default();
            if text.is_empty() {
                (None, 0)
            } else {
                let (ip, scope) = parse_hostaddr(&text)?;
                (Some(ip), scope)
            }
        } else {
            (None, 0)
        };
        let host = match (hosts.get(i), hostaddr) {
            // With hostaddr, a defaulted host does not name the server.
            (Some(_), Some(_))
                if settings
                    .get("host")
                    .is_some_and(|s| matches!(s.source, Source::Default(_))) =>
            {
                String::new()
            }
            // An empty entry of a host list is libpq's default: the Unix socket directory.
            (Some(h), None) if h.is_empty() => DEFAULT_SOCKET_DIR.to_string(),
            (Some(h), _) => h.clone(),
            (None, _) => String::new(),
        };
        let port_text = if ports.len() == 1 {
            ports[0].clone()
        } else {
            ports.get(i).cloned().unwrap_or_default()
        };
        let port_text = if port_text.is_empty() {
            "5432".to_string()
        } else {
            port_text
        };
        let port: u16 = port_text
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ConninfoError(format!("invalid port number: \"{port_text}\"")))?;
        out.push(Endpoint {
            host,
            hostaddr,
            scope_id,
            port,
        });
    }
    Ok(out)
}

/// Reads one service's entries: PGSERVICEFILE or ~/.pg_service.conf, then the system file.
fn read_service(
    service: &str,
    env: &Environment,
) -> Result<(PathBuf, Vec<(String, String)>), PlanError> {
    let mut candidates = Vec::new();
    if let Some(file) = env.var("PGSERVICEFILE") {
        candidates.push((PathBuf::from(file), true));
    } else if let Some(home) = &env.home {
        candidates.push((home.join(".pg_service.conf"), false));
    }
    let sysconf = env
        .var("PGSYSCONFDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"));
    candidates.push((sysconf.join("pg_service.conf"), false));

    for (file, must_exist) in candidates {
        let text = match read_text(&file) {
            Ok(t) => t,
            Err(_) if !must_exist => continue,
            Err(e) => {
                return err(format!(
                    "service file \"{}\" not found ({e})",
                    file.display()
                ))
            }
        };
        let mut in_section = false;
        let mut entries = Vec::new();
        let mut found = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name.trim_end_matches(']');
                if in_section {
                    break;
                }
                in_section = name == service;
                found |= in_section;
                continue;
            }
            if !in_section {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                ConninfoError(format!(
                    "syntax error in service file \"{}\", line {}",
                    file.display(),
                    n + 1
                ))
            })?;
            let key = key.trim();
            if key == "service" {
                return err(format!(
                    "nested service specifications not supported in service file \"{}\", line {}",
                    file.display(),
                    n + 1
                ));
            }
            if !conninfo::KEYWORDS.contains(&key) {
                return err(format!(
                    "syntax error in service file \"{}\", line {}",
                    file.display(),
                    n + 1
                ));
            }
            entries.push((key.to_string(), value.trim().to_string()));
        }
        if found {
            return Ok((file, entries));
        }
    }
    err(format!("definition of service \"{service}\" not found"))
}

/// Reads a configuration file of at most 1 MiB, byte for byte (see `files::read_text`).
/// libpq's `passwordFromFile`: the first matching `host:port:db:user:password` line.
/// An Err is a note libpq would print (the file is then ignored).
/// Why a passfile gave no password.
enum PassfileProblem {
    /// libpq ignores the file too, with this warning: no password, determined.
    LibpqIgnores(String),
    /// The doctor could not read a file libpq would read: whether a password is there is unknown.
    Unread(String),
}

fn password_from_file(
    file: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Result<Option<String>, PassfileProblem> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        return Err(PassfileProblem::LibpqIgnores(format!(
            "password file \"{}\" is not a plain file",
            file.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(PassfileProblem::LibpqIgnores(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            file.display()
        )));
    }
    let text = read_text(file).map_err(|e| {
        PassfileProblem::Unread(format!(
            "the doctor could not read password file \"{}\" ({e}); libpq would, so whether it holds a password is not known",
            file.display()
        ))
    })?;
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], host)
            && matches(&fields[1], &port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            return Ok(Some(fields[4].clone()));
        }
    }
    Ok(None)
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if let Some(f) = fields.last_mut() {
                        f.push(next);
                    }
                }
            }
            // The password is everything after the fourth colon.
            ':' if fields.len() < 5 => fields.push(String::new()),
            other => {
                if let Some(f) = fields.last_mut() {
                    f.push(other);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: Some(PathBuf::from("/nonexistent-home")),
            os_user: Some("alice".into()),
        }
    }

    #[test]
    fn defaults_follow_libpq() {
        let plan = resolve("db.example.com", &FlagSettings::default(), &env(&[])).unwrap();
        assert_eq!(plan.user, "alice");
        assert_eq!(plan.dbname, "alice");
        assert_eq!(plan.sslmode, SslMode::Prefer);
        assert_eq!(plan.endpoints[0].port, 5432);
        assert_eq!(
            plan.root,
            RootSpec::File(PathBuf::from("/nonexistent-home/.postgresql/root.crt"))
        );
    }

    #[test]
    fn precedence_flag_target_env() {
        let mut flags = FlagSettings::default();
        flags.set("sslmode", "--sslmode", Some("verify-ca".into()));
        let plan = resolve(
            "host=h sslmode=require user=u",
            &flags,
            &env(&[
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
                ("PGSSLMODE", "disable"),
            ]),
        )
        .unwrap();
        assert_eq!(plan.sslmode, SslMode::VerifyCa);
        assert_eq!(plan.user, "u");
        assert_eq!(plan.dbname, "envdb");
        assert_eq!(
            plan.settings["dbname"].source,
            Source::Env("PGDATABASE".into())
        );
        assert_eq!(
            plan.settings["sslmode"].source,
            Source::Flag("--sslmode".into())
        );
    }

    #[test]
    fn invalid_values_use_libpq_wording() {
        let e = |t: &str| {
            resolve(t, &FlagSettings::default(), &env(&[]))
                .unwrap_err()
                .0
        };
        assert_eq!(
            e("host=h sslmode=Require"),
            "invalid sslmode value: \"Require\""
        );
        assert_eq!(e("h:99999"), "invalid port number: \"99999\"");
        assert_eq!(
            e("host=a,b port=1,2,3"),
            "could not match 3 port numbers to 2 hosts"
        );
        assert_eq!(
            e("host=h sslrootcert=system sslmode=require"),
            "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")"
        );
        for (target, message) in [
            ("host=h gssencmode=bogus", "invalid gssencmode value: \"bogus\""),
            ("host=h target_session_attrs=bogus", "invalid target_session_attrs value: \"bogus\""),
            ("host=h load_balance_hosts=bogus", "invalid load_balance_hosts value: \"bogus\""),
            ("host=h require_auth=bogus", "invalid require_auth value: \"bogus\""),
            (
                "host=h require_auth=!password,scram-sha-256",
                "require_auth method \"scram-sha-256\" cannot be mixed with negative methods",
            ),
            (
                "host=h require_auth=md5,!password",
                "negative require_auth method \"password\" cannot be mixed with non-negative methods",
            ),
            (
                "host=h require_auth=md5,md5",
                "require_auth method \"md5\" is specified more than once",
            ),
        ] {
            assert_eq!(e(target), message, "{target}");
        }
        for ok in [
            "host=h require_auth=",
            "host=h require_auth=scram-sha-256,none",
            "host=h require_auth=!password,!md5",
            "host=h target_session_attrs=prefer-standby load_balance_hosts=random gssencmode=disable",
        ] {
            assert!(resolve(ok, &FlagSettings::default(), &env(&[])).is_ok(), "{ok}");
        }
    }

    #[test]
    fn sslrootcert_system_implies_verify_full() {
        let plan = resolve(
            "host=h sslrootcert=system",
            &FlagSettings::default(),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(plan.sslmode, SslMode::VerifyFull);
        assert_eq!(plan.root, RootSpec::System);
    }

    #[test]
    fn secrets_are_redacted_in_settings() {
        let plan = resolve(
            "postgresql://u:hunter2@h/db",
            &FlagSettings::default(),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(plan.password.as_ref().unwrap().0.expose(), "hunter2");
        assert!(!format!("{plan:?}").contains("hunter2"));
    }

    #[test]
    fn pgpass_lines() {
        assert_eq!(
            split_pgpass_line(r"h:5432:*:bob:pa\:ss:word"),
            vec!["h", "5432", "*", "bob", "pa:ss:word"]
        );
    }

    #[test]
    fn protocol_versions_are_checked_as_libpq_checks_them() {
        let plan = |target: &str| resolve(target, &FlagSettings::default(), &env(&[]));
        let range = |target: &str| plan(target).unwrap().protocol;
        assert_eq!(
            range("host=h"),
            ProtocolRange {
                min: Some(TlsVersion::V1_2),
                max: None
            }
        );
        assert_eq!(
            range("host=h ssl_min_protocol_version=tlsv1.2 ssl_max_protocol_version=TLSV1.2"),
            ProtocolRange {
                min: Some(TlsVersion::V1_2),
                max: Some(TlsVersion::V1_2)
            }
        );
        assert_eq!(
            range("host=h ssl_min_protocol_version='' ssl_max_protocol_version=TLSv1").min,
            None
        );
        assert!(
            plan("host=h ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1").is_ok()
        );
        for (target, message) in [
            (
                "host=h ssl_min_protocol_version=TLSv9",
                "invalid \"ssl_min_protocol_version\" value: \"TLSv9\"",
            ),
            (
                "host=h ssl_max_protocol_version=bogus",
                "invalid \"ssl_max_protocol_version\" value: \"bogus\"",
            ),
            (
                "host=h ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
                "invalid SSL protocol version range",
            ),
            (
                "host=h ssl_max_protocol_version=TLSv1.1",
                "invalid SSL protocol version range",
            ),
            (
                "host=h ssl_min_protocol_version=TLSv1.1 ssl_max_protocol_version=TLSv1",
                "invalid SSL protocol version range",
            ),
        ] {
            assert_eq!(plan(target).unwrap_err().0, message, "{target}");
        }
        let env_range = resolve(
            "host=h",
            &FlagSettings::default(),
            &env(&[("PGSSLMAXPROTOCOLVERSION", "TLSv1.2")]),
        )
        .unwrap()
        .protocol;
        assert_eq!(env_range.max, Some(TlsVersion::V1_2));
    }

    #[test]
    fn connect_timeout_minimum_is_two_seconds() {
        let plan = resolve(
            "host=h connect_timeout=1",
            &FlagSettings::default(),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(plan.connect_timeout, Some(Duration::from_secs(2)));
        let plan = resolve(
            "host=h connect_timeout=0",
            &FlagSettings::default(),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(plan.connect_timeout, None);
    }
}

//! Command-line flags, as close to the typed flags as possible. Resolution against the
//! environment happens in `plan.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    /// One document (several targets: every report and their summary)
    Json,
    /// One line per report, then a summary line; each line has its "kind"
    Ndjson,
    /// JUnit XML, as GitLab and Jenkins read it
    Junit,
    /// Prometheus exposition text (for node_exporter's textfile collector with --output)
    Prometheus,
}

/// What makes the run's exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// An error finding (the requested connection fails or cannot be confirmed)
    Error,
    /// Also a warning finding (a certificate expiring within --warn-days, a fallback)
    Warning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// The exit statuses, as `--help` and the man page print them.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "the connection as requested works and no finding is an error"),
    ("1", "at least one error finding (the requested sslmode fails or cannot be confirmed)"),
    ("2", "no reply recognisably from PostgreSQL (refused, unresolvable, timeout, not PostgreSQL)"),
    ("3", "usage error, a file only the doctor reads is unreadable, or the output could not be written"),
];

/// Examples for the doctor's three users, as `--help` and the man page print them.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Why does psql say \"certificate verify failed\"? Every sslmode, the failing check and the fix:",
        "pgtls-doctor \"host=db.example.com user=app\" --sslmode verify-full --sslrootcert ca.crt",
    ),
    (
        "In CI after a deploy: exit 1 when the connection as deployed fails, 2 when nothing answers:",
        "pgtls-doctor --targets endpoints.txt --sslmode verify-full --format json > tls-report.json",
    ),
    (
        "For a support ticket: the whole diagnosis as JSON (passwords and keys are never shown):",
        "pgtls-doctor \"$DATABASE_URL\" --format json > pgtls-report.json",
    ),
    (
        "The lines of a pg_hba.conf the server would refuse, rules that never match, weak rules:",
        "pgtls-doctor hba lint /etc/postgresql/17/main/pg_hba.conf",
    ),
];

fn after_help() -> String {
    let mut text = String::from(
        "TARGET is host, host:port, [v6]:port, a postgres:// URI, or a key=value conninfo string.\n\
         Absent parts come from PGSERVICE, the PG* variables, ~/.pgpass and ~/.postgresql/, as libpq.\n\n\
         EXAMPLES:\n",
    );
    for (what, command) in EXAMPLES {
        text.push_str(&format!("  {what}\n    {command}\n"));
    }
    text.push_str("\nEXIT STATUS:\n");
    for (code, meaning) in EXIT_STATUS {
        text.push_str(&format!("  {code}  {meaning}\n"));
    }
    text.trim_end().to_string()
}

/// What `--generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff), for man1/pgtls-doctor.1
    Man,
    /// bash completions
    CompleteBash,
    /// zsh completions (_pgtls-doctor)
    CompleteZsh,
    /// fish completions
    CompleteFish,
}

/// Tells exactly why a PostgreSQL TLS connection fails, and proves it works when it does.
#[derive(Debug, Parser)]
#[command(
    name = "pgtls-doctor",
    version,
    after_help = after_help(),
    args_conflicts_with_subcommands = true,
    disable_help_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// host[:port], URI or conninfo string (libpq defaults when absent); several are diagnosed
    /// concurrently. With -h, -p or -d the arguments are psql's [DBNAME [USERNAME]] instead
    pub target: Vec<std::ffi::OsString>,

    /// A file of targets, one per line: each is diagnosed (JSON: one document with every report and their summary)
    #[arg(long)]
    pub targets: Option<PathBuf>,

    /// Database server host or socket directory, as psql's -h (libpq keyword host)
    #[arg(long, short = 'h', value_name = "HOSTNAME")]
    pub host: Option<String>,
    /// Database server port, as psql's -p (libpq keyword port)
    #[arg(long, short = 'p', value_name = "PORT")]
    pub port: Option<String>,
    /// Database user, as psql's -U (libpq keyword user)
    #[arg(long, short = 'U', visible_alias = "username", value_name = "USERNAME")]
    pub user: Option<String>,
    /// Database name or a connection string, as psql's -d (libpq keyword dbname)
    #[arg(long, short = 'd', value_name = "DBNAME")]
    pub dbname: Option<String>,
    /// Never prompt for a password, as psql's -w (the doctor never prompts anyway)
    #[arg(long = "no-password", short = 'w')]
    pub no_password: bool,
    /// psql's -W (prompt for a password) is refused: the doctor never prompts; give the
    /// password in PGPASSWORD or ~/.pgpass
    #[arg(long = "password", short = 'W', hide = true)]
    pub password_prompt: bool,
    /// The sslmode to judge the connection by (all six are shown)
    #[arg(long)]
    pub sslmode: Option<String>,
    /// Root certificate file, or "system"
    #[arg(long)]
    pub sslrootcert: Option<String>,
    /// Client certificate file
    #[arg(long)]
    pub sslcert: Option<String>,
    /// Client key file
    #[arg(long)]
    pub sslkey: Option<String>,
    /// Certificate revocation list file
    #[arg(long)]
    pub sslcrl: Option<String>,
    /// Directory of hashed CRLs (`openssl rehash`)
    #[arg(long)]
    pub sslcrldir: Option<String>,
    /// Passphrase of an encrypted client key (never printed)
    #[arg(long)]
    pub sslpassword: Option<String>,
    /// postgres (SSLRequest) or direct (TLS at once, PostgreSQL 17)
    #[arg(long)]
    pub sslnegotiation: Option<String>,
    /// libpq's connect_timeout in seconds, per step (0 = none; minimum 2)
    #[arg(long = "connect-timeout")]
    pub connect_timeout: Option<String>,

    /// Upper bound for the whole probe of one target, in seconds
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Several targets: how many are diagnosed at once
    #[arg(long, value_name = "N", default_value_t = crate::engine::DEFAULT_CONCURRENCY, value_parser = parse_count::<4096>)]
    pub concurrency: usize,
    /// Several targets: how many diagnoses at once on one server (address and port); each
    /// holds up to three connections, so the default stays far below max_connections = 100
    #[arg(long = "per-server", value_name = "N", default_value_t = crate::engine::DEFAULT_PER_SERVER, value_parser = parse_count::<1024>)]
    pub per_server: usize,
    /// Several targets: an upper bound for the whole run, in seconds (targets still running
    /// then end with a timeout)
    #[arg(long = "run-timeout", value_name = "SECONDS")]
    pub run_timeout: Option<f64>,
    /// Warn when a certificate expires within this many days
    #[arg(long = "warn-days", default_value_t = 30)]
    pub warn_days: i64,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    /// Connect only as an application would at the requested sslmode (the connections libpq
    /// makes, no more): no extra connection, so no FATAL line in the server's log on a
    /// healthy server; sslmodes that need another connection are left undetermined
    #[arg(long)]
    pub check: bool,
    /// Write the output to FILE instead of stdout, atomically (a temporary file, then rename)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 on an error finding (the default), or also on a warning
    #[arg(long = "fail-on", value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Colour in text output (NO_COLOR is honoured with auto)
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    /// A copy of the server's pg_hba.conf: name the line that decides each connection
    #[arg(long)]
    pub hba: Option<PathBuf>,
    /// The pooler's configuration (pgbouncer.ini with its auth_file, or pgpool.conf with the
    /// pool_hba.conf beside it): findings name the setting that decided, and its usual
    /// mistakes are reported
    #[arg(long = "pooler-config", value_name = "FILE")]
    pub pooler_config: Option<PathBuf>,
    /// The pooler's own log (PgBouncer's logfile): its reasons for this probe's connections,
    /// tied to them by client port
    #[arg(long = "pooler-log", value_name = "FILE")]
    pub pooler_log: Option<PathBuf>,
    /// A connection (conninfo or URI) that may read pg_hba_file_rules: the rules as the server reads them
    #[arg(long)]
    pub admin: Option<String>,
    /// A copy of the server's pg_ident.conf (for map= lines)
    #[arg(long)]
    pub ident: Option<PathBuf>,
    /// The server's log file: quote its reasons for this probe's connections
    #[arg(long = "server-log")]
    pub server_log: Option<PathBuf>,
    /// The server's major version, for reading --hba as it would
    #[arg(long = "pg-version", default_value_t = 17)]
    pub pg_version: u32,
    /// Send a cleartext password (method "password") even without TLS
    #[arg(long = "allow-cleartext-password")]
    pub allow_cleartext_password: bool,
    /// Write the man page or shell completions to stdout, and exit
    #[arg(long, value_enum, value_name = "WHAT")]
    pub generate: Option<Generate>,
    /// Judge certificates as of this Unix time instead of now (for tests and "what if")
    #[arg(long, hide = true)]
    pub now: Option<i64>,
    /// Print help (`-?` as in psql; `-h` is the host, as in psql)
    #[arg(short = '?', long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// pg_hba.conf tools
    Hba {
        #[command(subcommand)]
        action: HbaCommand,
    },
    /// Make a CA, a server certificate and client certificates for PostgreSQL, and print how
    /// to install and use them
    Pki(PkiArgs),
    /// The first run: a throwaway PostgreSQL on this machine with the mistakes the guides lead
    /// to, each diagnosed beside what psql says; everything it makes is removed afterwards
    Demo {
        /// Leave the server running, and print how to connect to it and how to remove it
        #[arg(long)]
        keep: bool,
    },
    /// What a finding code means, how psql shows it, how to confirm it by hand and how to fix
    /// it (`--format json`: the catalogue entry as JSON)
    Explain {
        /// A finding code, as in a report (`server_cert_expired`; any case)
        #[arg(required_unless_present = "list")]
        code: Option<String>,
        /// List every code with its phase, default severity and meaning
        #[arg(long, conflicts_with = "code")]
        list: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct PkiArgs {
    /// A new directory (made 0700), or an empty one only you can enter
    pub dir: PathBuf,
    /// A DNS name clients put in host= (repeat for several; the first is the CN)
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// An IP address clients put in host= (repeat for several)
    #[arg(long = "server-ip", value_name = "ADDRESS")]
    pub server_ips: Vec<std::net::IpAddr>,
    /// A user to make a client certificate for, CN = the user (repeat for several)
    #[arg(long = "client", value_name = "USER")]
    pub clients: Vec<String>,
    /// Validity of the server and client certificates, in days
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Validity of the CA, in days
    #[arg(long = "ca-days", default_value_t = 3650)]
    pub ca_days: u32,
    /// Encrypt the client keys with the passphrase in this file (its first line)
    #[arg(long = "passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Where the printed commands install the server's files (its data directory)
    #[arg(
        long = "server-dir",
        value_name = "DIR",
        default_value = "/var/lib/postgresql/17/main"
    )]
    pub server_dir: String,
    /// The port the printed connection strings name
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// The client network the printed pg_hba.conf lines admit
    #[arg(
        long = "client-network",
        value_name = "CIDR",
        default_value = "0.0.0.0/0"
    )]
    pub client_network: String,
}

#[derive(Debug, Subcommand)]
pub enum HbaCommand {
    /// Report lines the server would refuse, rules that never match, and weak rules
    Lint {
        /// The pg_hba.conf to check
        file: PathBuf,
        /// The pg_ident.conf that goes with it
        #[arg(long)]
        ident: Option<PathBuf>,
        /// The server's postgresql.conf (for ssl and ssl_ca_file)
        #[arg(long)]
        conf: Option<PathBuf>,
        /// Read the files as this PostgreSQL major version would
        #[arg(long = "pg-version", default_value_t = 17)]
        pg_version: u32,
    },
}

/// Parses the command line. `Ok(None)`: help or the version was printed, and the run ends
/// with exit status 0. A refused command line is a usage error whose message escapes what
/// the user typed and never echoes a private key pasted as an argument.
pub fn parse() -> Result<Option<Cli>, crate::error::ToolError> {
    use crate::error::ToolError;
    use std::io::Write;
    let e = match Cli::try_parse() {
        Ok(cli) => return Ok(Some(cli)),
        Err(e) => e,
    };
    use clap::error::ErrorKind;
    if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let pasted_key =
            std::env::args_os().any(|a| crate::files::holds_private_key(a.as_encoded_bytes()));
        return Err(ToolError::Arguments(if pasted_key {
            "pgtls-doctor: an argument holds a private key (-----BEGIN ... PRIVATE KEY-----); it is not shown. Give TARGET as a connection string".into()
        } else {
            let mut text = e.render().to_string().trim_end().to_string();
            if let Some(flag) = psql_only_flag() {
                text.push_str(&format!(
                    "\n\n  psql: {flag} is one of psql's own options; the doctor runs none of your SQL and \
                     takes psql's connection options only (-h, -p, -U, -d, -w)"
                ));
            }
            text
        }));
    }
    // Help goes to stdout: a full disk there is an error, a closed pipe is not.
    match e.print().and_then(|_| std::io::stdout().flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(ToolError::Write {
            what: "output",
            source: err,
        }),
        _ => Ok(None),
    }
}

/// psql's options that are not about the connection (`-c`, `-f`, `-X`...), when the command
/// line holds one: a usage error then says why it is refused.
fn psql_only_flag() -> Option<String> {
    const PSQL_ONLY: &[&str] = &[
        "-c",
        "-f",
        "-l",
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "-o",
        "-L",
        "-E",
        "-e",
        "-a",
        "-s",
        "-S",
        "-x",
        "-1",
        "-F",
        "-R",
        "-z",
        "-0",
        "-P",
        "-T",
        "-H",
        "-n",
        "-b",
        "--command",
        "--file",
        "--list",
        "--no-psqlrc",
        "--no-align",
        "--tuples-only",
        "--quiet",
        "--set",
        "--variable",
        "--single-transaction",
        "--csv",
        "--html",
        "--expanded",
        "--echo-all",
        "--echo-queries",
        "--echo-errors",
        "--echo-hidden",
        "--log-file",
        "--record-separator",
        "--field-separator",
        "--pset",
        "--table-attr",
        "--single-step",
        "--single-line",
        "--no-readline",
    ];
    for arg in std::env::args_os().skip(1) {
        let arg = arg.to_string_lossy().into_owned();
        let name = arg.split('=').next().unwrap_or_default();
        // Short options take their value attached, as in `-cSELECT`.
        let short = name.get(..2).filter(|_| !name.starts_with("--"));
        let found = [Some(name), short]
            .into_iter()
            .flatten()
            .find(|n| PSQL_ONLY.contains(n))
            .map(str::to_string);
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A count from 1 to MAX.
fn parse_count<const MAX: usize>(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {MAX}")),
    }
}

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use pgtls_doctor::app::{self, RunOptions};
use pgtls_doctor::cli::{Cli, Color, Command, Format, HbaCommand};
use pgtls_doctor::hba;
use pgtls_doctor::plan::{self, Environment, FlagSettings};
use pgtls_doctor::render;
use pgtls_doctor::report::exit;

/// eprintln! for messages that quote what the user or a file gave: control characters are
/// escaped, so a hostile targets file cannot rewrite the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("{}", pgtls_doctor::untrusted::for_terminal(&format!($($arg)*)))
    };
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            if code == exit::USAGE {
                // clap quotes the arguments it refused: escape them, and never echo a key.
                let pasted_key = std::env::args_os()
                    .any(|a| pgtls_doctor::files::holds_private_key(a.as_encoded_bytes()));
                if pasted_key {
                    say!("pgtls-doctor: an argument holds a private key (-----BEGIN ... PRIVATE KEY-----); it is not shown. Give TARGET as a connection string");
                } else {
                    say!("{}", e.render().to_string().trim_end());
                }
                return ExitCode::from(code);
            }
            // Help goes to stdout: a full disk or closed pipe there is an error, not success.
            let printed = e.print().and_then(|_| std::io::stdout().flush());
            if let Err(err) = printed {
                if err.kind() != std::io::ErrorKind::BrokenPipe {
                    say!("pgtls-doctor: could not write the output: {err}");
                    return ExitCode::from(exit::USAGE);
                }
            }
            return ExitCode::from(code);
        }
    };

    let use_color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    let colour = if use_color {
        render::Colour::On
    } else {
        render::Colour::Off
    };

    if let Some(Command::Hba {
        action:
            HbaCommand::Lint {
                file,
                ident,
                conf,
                pg_version,
            },
    }) = &cli.command
    {
        return lint(
            colour,
            file,
            ident.as_deref(),
            conf.as_deref(),
            *pg_version,
            cli.format,
        );
    }

    if let Some(log) = &cli.server_log {
        let readable = pgtls_doctor::files::check_readable(log);
        if let Err(e) = readable {
            say!(
                "pgtls-doctor: could not read server log \"{}\": {e}",
                log.display()
            );
            return ExitCode::from(exit::USAGE);
        }
    }
    let hba_context = match load_hba_context(&cli) {
        Ok(c) => c,
        Err(e) => {
            say!("pgtls-doctor: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };

    let mut flags = FlagSettings::default();
    flags.set("user", "--user", cli.user.clone());
    flags.set("dbname", "--dbname", cli.dbname.clone());
    flags.set("sslmode", "--sslmode", cli.sslmode.clone());
    flags.set("sslrootcert", "--sslrootcert", cli.sslrootcert.clone());
    flags.set("sslcert", "--sslcert", cli.sslcert.clone());
    flags.set("sslkey", "--sslkey", cli.sslkey.clone());
    flags.set("sslcrl", "--sslcrl", cli.sslcrl.clone());
    flags.set("sslcrldir", "--sslcrldir", cli.sslcrldir.clone());
    flags.set("sslpassword", "--sslpassword", cli.sslpassword.clone());
    flags.set(
        "sslnegotiation",
        "--sslnegotiation",
        cli.sslnegotiation.clone(),
    );
    flags.set(
        "connect_timeout",
        "--connect-timeout",
        cli.connect_timeout.clone(),
    );

    let env = Environment::capture();
    // --targets FILE: one target per line (blank lines and # comments skipped).
    let targets: Vec<String> = match &cli.targets {
        Some(_) if cli.target.is_some() => {
            say!("pgtls-doctor: give TARGET or --targets, not both");
            return ExitCode::from(exit::USAGE);
        }
        Some(file) => match plan::read_small_text(file) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
            Err(e) => {
                say!(
                    "pgtls-doctor: could not read targets file \"{}\": {e}",
                    file.display()
                );
                return ExitCode::from(exit::USAGE);
            }
        },
        // Bytes that are not UTF-8 are kept: libpq sends a Latin-1 password as it was given.
        None => vec![pgtls_doctor::untrusted::decode_os(
            cli.target.as_deref().unwrap_or_default(),
        )],
    };
    if targets.is_empty() {
        say!("pgtls-doctor: the targets file names no target");
        return ExitCode::from(exit::USAGE);
    }
    let mut plans = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        match plan::resolve(target, &flags, &env) {
            Ok(p) => plans.push(p),
            Err(e) => {
                match &cli.targets {
                    Some(file) => {
                        say!("pgtls-doctor: {}, line {}: {e}", file.display(), i + 1)
                    }
                    None => say!("pgtls-doctor: {e}"),
                }
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    let admin = match &cli.admin {
        None => None,
        Some(_) if cli.hba.is_some() => {
            say!("pgtls-doctor: --admin and --hba are two sources of the same rules; give one");
            return ExitCode::from(exit::USAGE);
        }
        Some(conninfo) => match plan::resolve(conninfo, &FlagSettings::default(), &env) {
            Ok(p) => Some(p),
            Err(e) => {
                say!("pgtls-doctor: --admin: {e}");
                return ExitCode::from(exit::USAGE);
            }
        },
    };
    if !(cli.timeout > 0.0 && cli.timeout <= MAX_TIMEOUT_SECS) {
        say!(
            "pgtls-doctor: invalid --timeout value \"{}\": must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}",
            cli.timeout
        );
        return ExitCode::from(exit::USAGE);
    }
    let now = cli.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    });
    let options = RunOptions {
        now,
        timeout: Duration::from_secs_f64(cli.timeout),
        warn_days: cli.warn_days,
        allow_cleartext_password: cli.allow_cleartext_password,
        hba: hba_context,
        server_log: cli.server_log.clone(),
        admin,
    };
    // Several targets: one report each (JSON: one document with every report and their
    // summary); the worst exit status, 2 before 1 before 0, is the run's.
    let mut write_failed = false;
    let mut stdout = std::io::stdout().lock();
    let mut reports = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let report = app::run(plan, &options);
        let written = match (cli.format, plans.len()) {
            (Format::Json, 1) => render::json::report(&report, &mut stdout),
            (Format::Json, _) => Ok(()),
            (Format::Text, _) => {
                if i > 0 {
                    let _ = writeln!(stdout);
                }
                render::text::report(&report, colour, &mut stdout)
            }
        };
        reports.push(report);
        // The verdict counts whether or not anyone reads it: a CI job piping into `head`
        // must still fail on a broken database.
        let written = written.and_then(|_| stdout.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            say!("pgtls-doctor: could not write the report: {e}");
            write_failed = true;
        }
    }
    let summary = pgtls_doctor::report::Summary::of(&reports);
    let worst = summary.exit_code;
    if cli.format == Format::Json && plans.len() > 1 {
        let fleet = pgtls_doctor::report::Fleet {
            schema_version: pgtls_doctor::report::SCHEMA_VERSION,
            tool: pgtls_doctor::report::Tool::THIS,
            reports,
            summary,
        };
        let written = render::json::fleet(&fleet, &mut stdout).and_then(|_| stdout.flush());
        if let Err(e) = written {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                say!("pgtls-doctor: could not write the report: {e}");
                write_failed = true;
            }
        }
    }
    if write_failed {
        return ExitCode::from(exit::USAGE);
    }
    ExitCode::from(worst)
}

/// The longest --timeout: a day. Larger values are refused, never turned into a panic.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// --hba/--ident: files only the doctor reads, so an unreadable one is a usage error.
fn load_hba_context(cli: &Cli) -> Result<Option<hba::HbaContext>, String> {
    let Some(path) = &cli.hba else {
        if cli.ident.is_some() {
            return Err("--ident needs --hba".into());
        }
        return Ok(None);
    };
    let file = hba::load_hba(path, cli.pg_version)?;
    let ident = cli.ident.as_deref().map(hba::load_ident).transpose()?;
    Ok(Some(hba::HbaContext {
        hba: file,
        ident,
        source: path.display().to_string(),
    }))
}

fn lint(
    colour: render::Colour,
    file: &std::path::Path,
    ident: Option<&std::path::Path>,
    conf: Option<&std::path::Path>,
    pg_version: u32,
    format: Format,
) -> ExitCode {
    let loaded = (|| -> Result<_, String> {
        let hba_file = hba::load_hba(file, pg_version)?;
        let ident_file = ident.map(hba::load_ident).transpose()?;
        let conf = conf.map(hba::server_conf::load).transpose()?;
        Ok((hba_file, ident_file, conf))
    })();
    let (hba_file, ident_file, conf) = match loaded {
        Ok(x) => x,
        Err(e) => {
            say!("pgtls-doctor: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let findings = hba::lint::lint(&hba_file, ident_file.as_ref(), conf.as_ref(), pg_version);
    let report =
        pgtls_doctor::report::lint_report(file, pg_version, hba_file.rules.len(), &findings);
    let mut stdout = std::io::stdout().lock();
    let written = match format {
        Format::Json => render::json::lint(&report, &mut stdout),
        Format::Text => render::text::lint(&report, colour, &mut stdout),
    }
    .and_then(|_| stdout.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            say!("pgtls-doctor: could not write the output: {e}");
            ExitCode::from(exit::USAGE)
        }
        _ => ExitCode::from(report.exit_code),
    }
}

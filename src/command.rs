//! One parsed command line, run: `hba lint`, or the diagnosis of one or several targets.
//! Returns the exit status, or the one error type `main` maps to one.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use crate::app::RunOptions;
use crate::cli::{Cli, Color, Command, Format, HbaCommand};
use crate::engine;
use crate::error::ToolError;
use crate::hba;
use crate::plan::{self, Environment, FlagSettings, Plan};
use crate::render::{self, Colour};
use crate::report::{self, Fleet, Summary, Tool};

/// The longest --timeout: a day. Larger values are refused, never turned into a panic.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

pub fn run(cli: &Cli) -> Result<u8, ToolError> {
    if let Some(what) = cli.generate {
        // Made whole first: clap_complete panics on a write error, such as a closed pipe.
        let mut generated = Vec::new();
        crate::generate::write(what, &mut generated).map_err(|source| ToolError::Write {
            what: "output",
            source,
        })?;
        return write_stdout(&generated);
    }
    let colour = colour(cli.color);
    if let Some(Command::Pki(args)) = &cli.command {
        only_formats("pki", cli.format, &[Format::Text])?;
        return pki(args);
    }
    if let Some(Command::Explain { code, list }) = &cli.command {
        only_formats("explain", cli.format, &[Format::Text, Format::Json])?;
        return explain(code.as_deref(), *list, cli.format);
    }
    if let Some(Command::Demo { keep }) = &cli.command {
        only_formats("demo", cli.format, &[Format::Text])?;
        let mut stdout = std::io::stdout().lock();
        let outcomes = match crate::demo::run(
            &crate::demo::DemoOptions {
                keep: *keep,
                colour,
            },
            &mut stdout,
        ) {
            // A reader that went away (`| head`) ends the demo; it cleans up as usual.
            Err(crate::demo::DemoError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(crate::report::exit::OK)
            }
            other => other?,
        };
        // 0 when every scenario came out as the demo says it does.
        return Ok(if outcomes.iter().all(|o| o.as_expected) {
            crate::report::exit::OK
        } else {
            crate::report::exit::PROBLEM
        });
    }
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
        only_formats("hba lint", cli.format, &[Format::Text, Format::Json])?;
        return lint(
            file,
            ident.as_deref(),
            conf.as_deref(),
            *pg_version,
            cli.format,
            colour,
        );
    }
    refuse_output_over_an_input(cli)?;
    let targets = targets(cli)?;
    let several = targets.count != Some(1);
    if several && cli.server_log.is_some() {
        // The log does not say which target a line belongs to (yet: the backend PID of each
        // connection would), so quoting it for several targets could blame the wrong one.
        return Err(ToolError::Usage(
            "--server-log explains one target's connections; with several targets (or --targets) it cannot tell whose a log line is: give one target".into(),
        ));
    }
    let options = run_options(cli)?;
    let run_ends = match cli.run_timeout {
        None => None,
        Some(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => {
            Some(std::time::Instant::now() + Duration::from_secs_f64(secs))
        }
        Some(secs) => {
            return Err(ToolError::Usage(format!(
                "invalid --run-timeout value \"{secs}\": must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}"
            )))
        }
    };
    let now = options.now;
    let count = targets.count;
    // One target: its --timeout bounds the whole run, the --admin connection included.
    let run_ends = match (count, cli.admin.is_some()) {
        (Some(1), true) => {
            let own = std::time::Instant::now() + options.timeout;
            Some(run_ends.map_or(own, |ends| ends.min(own)))
        }
        _ => run_ends,
    };
    diagnose(
        targets,
        options,
        engine::Settings {
            concurrency: cli.concurrency,
            per_server: cli.per_server,
            run_ends,
            targets: count,
        },
        &Output {
            format: cli.format,
            colour,
            file: cli.output.as_deref(),
            fail_on: cli.fail_on,
            now,
        },
    )
}

/// Colour on a terminal unless NO_COLOR is set; `--color` decides otherwise.
fn colour(choice: Color) -> Colour {
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    if on {
        Colour::On
    } else {
        Colour::Off
    }
}

/// The flags that stand for conninfo keywords, with the name each is reported under, and
/// the target strings. psql's connection flags (-h, -p, -U, -d) rank as in psql, beneath
/// the target's own values; the doctor's flags override everything.
fn connection_arguments(cli: &Cli) -> Result<(FlagSettings, Vec<String>), ToolError> {
    if cli.password_prompt {
        return Err(ToolError::Usage(
            "-W/--password (psql's password prompt) is not supported: the doctor never prompts. \
             Give the password in PGPASSWORD or ~/.pgpass, not on the command line"
                .into(),
        ));
    }
    let mut flags = FlagSettings::default();
    let keywords: [(&str, &str, &Option<String>); 9] = [
        ("sslmode", "--sslmode", &cli.sslmode),
        ("sslrootcert", "--sslrootcert", &cli.sslrootcert),
        ("sslcert", "--sslcert", &cli.sslcert),
        ("sslkey", "--sslkey", &cli.sslkey),
        ("sslcrl", "--sslcrl", &cli.sslcrl),
        ("sslcrldir", "--sslcrldir", &cli.sslcrldir),
        ("sslpassword", "--sslpassword", &cli.sslpassword),
        ("sslnegotiation", "--sslnegotiation", &cli.sslnegotiation),
        ("connect_timeout", "--connect-timeout", &cli.connect_timeout),
    ];
    for (keyword, flag, value) in keywords {
        flags.set(keyword, flag, value.clone());
    }
    flags.set_beneath_target("host", "--host", cli.host.clone());
    flags.set_beneath_target("port", "--port", cli.port.clone());
    let arguments: Vec<String> = cli
        .target
        .iter()
        .map(|t| crate::untrusted::decode_os(t))
        .collect();
    let psql_style = cli.host.is_some() || cli.port.is_some() || cli.dbname.is_some();
    if !psql_style {
        flags.set_beneath_target("user", "--user", cli.user.clone());
        return Ok((flags, arguments));
    }
    let (dbname, user) = psql_positionals(cli, arguments)?;
    flags.set_beneath_target("user", user.1, user.0);
    // psql's DBNAME (or -d) is expanded when it is a connection string: it is the target.
    match dbname {
        (Some(text), _) if crate::conninfo::is_connection_string(&text) => Ok((flags, vec![text])),
        (text, label) => {
            flags.set_beneath_target("dbname", label, text);
            Ok((flags, Vec::new()))
        }
    }
}

/// A value and the name it is reported under (`--user`, `USERNAME argument`).
type Labelled = (Option<String>, &'static str);

/// psql's reading of its arguments: the first is DBNAME unless -d gave one, the next
/// USERNAME unless -U did.
fn psql_positionals(cli: &Cli, arguments: Vec<String>) -> Result<(Labelled, Labelled), ToolError> {
    let mut dbname = (cli.dbname.clone(), "--dbname");
    let mut user = (cli.user.clone(), "--user");
    for word in arguments {
        if dbname.0.is_none() {
            dbname = (Some(word), "DBNAME argument");
        } else if user.0.is_none() {
            user = (Some(word), "USERNAME argument");
        } else {
            return Err(ToolError::Usage(format!(
                "extra command-line argument \"{word}\": with -h, -p or -d the arguments are \
                 psql's [DBNAME [USERNAME]]; give several targets as connection strings, or with --targets"
            )));
        }
    }
    Ok((dbname, user))
}

/// The targets: TARGET arguments resolved at once (a bad one stops the run before any
/// probe), or the lines of --targets, read and resolved as the engine needs them.
struct Targets {
    source: engine::Targets,
    /// How many, when known before the run (the arguments).
    count: Option<usize>,
}

fn targets(cli: &Cli) -> Result<Targets, ToolError> {
    // Bytes that are not UTF-8 are kept: libpq sends a Latin-1 password as it was given.
    let (flags, mut arguments) = connection_arguments(cli)?;
    let env = Environment::capture();
    let Some(file) = cli.targets.clone() else {
        if arguments.is_empty() {
            arguments.push(String::new());
        }
        let plans = arguments
            .iter()
            .map(|target| {
                plan::resolve(target, &flags, &env)
                    .map_err(|source| ToolError::Plan { prefix: "", source })
            })
            .collect::<Result<Vec<Plan>, ToolError>>()?;
        return Ok(Targets {
            count: Some(plans.len()),
            source: Box::new(plans.into_iter().map(Ok)),
        });
    };
    if !arguments.is_empty() {
        return Err(ToolError::Usage(
            "give TARGET (or psql's DBNAME) or --targets, not both".into(),
        ));
    }
    let unreadable = |path: &Path, source| ToolError::Unreadable {
        what: "targets file",
        path: path.to_path_buf(),
        source,
    };
    let lines = crate::files::TextLines::open(&file).map_err(|e| unreadable(&file, e))?;
    // One target per line; blank lines and # comments skipped; a line that names no
    // target is reported with its number and the others still run.
    let source =
        lines.filter_map(move |line| match line {
            Err(e) => Some(Err(unreadable(&file, e))),
            Ok((_, text)) if text.trim().is_empty() || text.trim().starts_with('#') => None,
            // Never sent to a resolver, never echoed: a user and a password.
            Ok((number, text)) if crate::untrusted::is_auth_file_entry(&text) => {
                Some(Err(ToolError::Usage(format!(
                    "{}, line {number}: a PgBouncer auth_file entry (a user and a password or hash), not a target; it is not shown",
                    file.display()
                ))))
            }
            Ok((number, text)) => Some(plan::resolve(text.trim(), &flags, &env).map_err(
                |source| ToolError::Target {
                    file: file.clone(),
                    line: number,
                    source,
                },
            )),
        });
    Ok(Targets {
        source: Box::new(source),
        count: None,
    })
}

/// The options every target shares, checked.
fn run_options(cli: &Cli) -> Result<RunOptions, ToolError> {
    if let Some(log) = &cli.server_log {
        crate::files::check_readable(log).map_err(|source| ToolError::Unreadable {
            what: "server log",
            path: log.clone(),
            source,
        })?;
    }
    let hba = load_hba_context(cli)?;
    let admin = match &cli.admin {
        None => None,
        Some(_) if cli.hba.is_some() => {
            return Err(ToolError::Usage(
                "--admin and --hba are two sources of the same rules; give one".into(),
            ))
        }
        Some(conninfo) => Some(
            plan::resolve(conninfo, &FlagSettings::default(), &Environment::capture()).map_err(
                |source| ToolError::Plan {
                    prefix: "--admin: ",
                    source,
                },
            )?,
        ),
    };
    if !(cli.timeout > 0.0 && cli.timeout <= MAX_TIMEOUT_SECS) {
        return Err(ToolError::Usage(format!(
            "invalid --timeout value \"{}\": must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}",
            cli.timeout
        )));
    }
    let now = cli.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    });
    Ok(RunOptions {
        now,
        timeout: Duration::from_secs_f64(cli.timeout),
        warn_days: cli.warn_days,
        allow_cleartext_password: cli.allow_cleartext_password,
        hba,
        server_log: cli.server_log.clone(),
        admin,
        only_requested: cli.check,
        pooler: cli
            .pooler_config
            .as_deref()
            .map(crate::pooler::load)
            .transpose()
            .map_err(|e| ToolError::Usage(e.to_string()))?,
        pooler_log: match &cli.pooler_log {
            Some(log) => {
                crate::files::check_readable(log).map_err(|source| ToolError::Unreadable {
                    what: "pooler log",
                    path: log.clone(),
                    source,
                })?;
                Some(log.clone())
            }
            None => None,
        },
    })
}

/// --hba/--ident: files only the doctor reads, so an unreadable one is a usage error.
fn load_hba_context(cli: &Cli) -> Result<Option<hba::HbaContext>, ToolError> {
    let Some(path) = &cli.hba else {
        if cli.ident.is_some() {
            return Err(ToolError::Usage("--ident needs --hba".into()));
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

/// How the reports are written.
struct Output<'a> {
    format: Format,
    colour: Colour,
    /// --output FILE: written at the end, atomically.
    file: Option<&'a Path>,
    fail_on: crate::cli::FailOn,
    /// The run's clock (the Prometheus text's last-run time).
    now: i64,
}

/// The width of the terminal stdout is, when it is one.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize, which a zeroed one is a valid place for.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (got == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The run's exit status for one report: its own, or 1 for a warning with --fail-on warning.
fn exit_status(report: &report::Report, fail_on: crate::cli::FailOn) -> u8 {
    let warned = report
        .findings
        .iter()
        .any(|f| f.severity == crate::catalogue::Severity::Warning);
    match report.verdict.exit_code {
        report::exit::OK if warned && fail_on == crate::cli::FailOn::Warning => {
            report::exit::PROBLEM
        }
        code => code,
    }
}

/// Text and NDJSON stream each report as it completes; JSON (several targets), JUnit and
/// Prometheus are written once every report is in. The worst exit status, 2 before 1
/// before 0, is the run's.
fn diagnose(
    targets: Targets,
    options: RunOptions,
    settings: engine::Settings,
    output: &Output,
) -> Result<u8, ToolError> {
    let mut buffer: Vec<u8> = Vec::new();
    // Buffered, and flushed after each report: a JSON document is one write, not one a line.
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // Text on a terminal folds to its width; anywhere else lines stay whole.
    let mut stdout: Box<dyn Write> = match terminal_width() {
        Some(width) if output.format == Format::Text => {
            Box::new(render::fold::Fold::new(stdout, width))
        }
        _ => Box::new(stdout),
    };
    let sink: &mut dyn Write = if output.file.is_some() {
        &mut buffer
    } else {
        &mut *stdout
    };
    let known = targets.count;
    // Formats written as one document at the end keep every report; the others keep only
    // the summary, so a fleet of any size streams in little memory.
    let keep_reports = match output.format {
        Format::Json => known != Some(1),
        Format::Junit | Format::Prometheus => true,
        Format::Text | Format::Ndjson => false,
    };
    let mut kept: Vec<(usize, report::Report)> = Vec::new();
    let mut single: Option<report::Report> = None;
    let mut summary = Summary::default();
    let mut soonest = report::SoonestExpiries::default();
    let mut unusable = 0usize;
    let mut write_error = None;
    let mut exit_code = report::exit::OK;
    let mut written_reports = 0usize;
    // With --output, a line per target for stderr (a CI log), worst first at the end.
    let mut stderr_lines: Vec<(std::cmp::Reverse<u8>, usize, String)> = Vec::new();
    // Several targets on a terminal: a progress bar on stderr. Never in a pipe.
    let progress = (known != Some(1) && std::io::stderr().is_terminal()).then(|| {
        // A targets file is read as the run goes: its length is not known in advance.
        let (bar, template) = match known {
            Some(n) => (
                indicatif::ProgressBar::new(n as u64),
                "{bar:30} {pos}/{len} targets {elapsed}",
            ),
            None => (
                indicatif::ProgressBar::no_length(),
                "{spinner} {pos} targets done {elapsed}",
            ),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let ran = engine::run(targets.source, options, settings, |outcome| {
        let (index, report) = match outcome {
            engine::Outcome::Unusable { error, .. } => {
                unusable += 1;
                let line = error.for_stderr();
                match &progress {
                    Some(bar) => bar.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
                return true;
            }
            engine::Outcome::Report { index, report } => (index, *report),
        };
        if let Some(bar) = &progress {
            bar.inc(1);
        }
        let mut write = || {
            match output.format {
                Format::Ndjson => render::ndjson::report(&report, sink),
                Format::Text => (if written_reports > 0 {
                    writeln!(sink)
                } else {
                    Ok(())
                })
                .and_then(|_| render::text::report(&report, output.colour, sink)),
                _ => Ok(()),
            }
            .and_then(|_| sink.flush())
        };
        // The bar steps aside while a report is written to the same terminal.
        let written = match &progress {
            Some(bar) => bar.suspend(&mut write),
            None => write(),
        };
        written_reports += 1;
        // The verdict counts whether or not anyone reads it: a CI job piping into `head`
        // must still fail on a broken database.
        let status = exit_status(&report, output.fail_on);
        exit_code = report::worst_exit(exit_code, status);
        if output.file.is_some() {
            stderr_lines.push((
                std::cmp::Reverse(report::exit_rank(status)),
                index,
                render::text::one_line(&report),
            ));
        }
        summary.add(&report);
        soonest.add(&report);
        if keep_reports {
            kept.push((index, report));
        } else if single.is_none() && output.format == Format::Json {
            single = Some(report);
        }
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => false,
            Err(e) => {
                write_error = Some(e);
                false
            }
            Ok(()) => true,
        }
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    ran.map_err(|source| ToolError::Write {
        what: "report (the engine could not start)",
        source,
    })?;
    if summary.targets == 0 && unusable == 0 && write_error.is_none() {
        return Err(ToolError::Usage("the targets file names no target".into()));
    }
    // The documents list the targets in the order they were given, whatever finished first.
    kept.sort_by_key(|(index, _)| *index);
    let reports: Vec<report::Report> = kept.into_iter().map(|(_, r)| r).collect();
    // Lines the doctor could not probe end the run with a usage error: the documents say so.
    summary.exit_code = if unusable > 0 {
        report::exit::USAGE
    } else {
        exit_code
    };
    let written = match output.format {
        Format::Json => match single {
            Some(report) => render::json::report(&report, sink),
            None => render::json::fleet(
                &Fleet {
                    schema_version: report::SCHEMA_VERSION,
                    tool: Tool::THIS,
                    reports,
                    summary,
                },
                sink,
            ),
        },
        Format::Ndjson => render::ndjson::summary(&summary, sink),
        Format::Text if known != Some(1) => {
            render::text::fleet_summary(&summary, &soonest, output.colour, sink)
        }
        Format::Text => Ok(()),
        Format::Junit => render::junit::write(
            &reports,
            output.fail_on == crate::cli::FailOn::Warning,
            sink,
        ),
        Format::Prometheus => render::prometheus::write(&reports, output.now, sink),
    }
    .and_then(|_| sink.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => write_error = Some(e),
        _ => {}
    }
    if let (Some(file), None) = (output.file, &write_error) {
        write_atomically(file, &buffer)?;
        stderr_lines.sort();
        let mut stderr = std::io::stderr().lock();
        for (_, _, line) in &stderr_lines {
            // A closed stderr loses the summary, never the report already written.
            let _ = writeln!(stderr, "{line}");
        }
        let _ = writeln!(
            stderr,
            "pgtls-doctor: {} target(s) written to {}",
            stderr_lines.len(),
            crate::untrusted::for_terminal(&file.display().to_string())
        );
    }
    if let Some(source) = write_error {
        return Err(ToolError::Write {
            what: "report",
            source,
        });
    }
    if unusable > 0 {
        return Err(ToolError::Usage(format!(
            "{unusable} line(s) of the targets file name no target the doctor can probe (each named above); the others were diagnosed"
        )));
    }
    Ok(exit_code)
}

/// Writes FILE as a whole or not at all (what node_exporter's textfile collector needs: it
/// never reads half a file), never through a planted link (atomic_write.rs).
fn write_atomically(file: &Path, contents: &[u8]) -> Result<(), ToolError> {
    crate::atomic_write::write_replacing(file, contents).map_err(|source| ToolError::Write {
        what: "output file",
        source: std::io::Error::new(source.kind(), format!("{}: {source}", file.display())),
    })
}

/// `--output` naming a file the doctor reads would replace that input with the report:
/// refused before anything runs.
fn refuse_output_over_an_input(cli: &Cli) -> Result<(), ToolError> {
    let Some(output) = &cli.output else {
        return Ok(());
    };
    let files = [
        ("--sslrootcert", &cli.sslrootcert),
        ("--sslcert", &cli.sslcert),
        ("--sslkey", &cli.sslkey),
        ("--sslcrl", &cli.sslcrl),
    ];
    let inputs = [
        ("--targets", cli.targets.as_deref()),
        ("--hba", cli.hba.as_deref()),
        ("--ident", cli.ident.as_deref()),
        ("--server-log", cli.server_log.as_deref()),
        ("--pooler-config", cli.pooler_config.as_deref()),
        ("--pooler-log", cli.pooler_log.as_deref()),
    ]
    .into_iter()
    .chain(files.map(|(flag, path)| (flag, path.as_deref().map(Path::new))))
    .filter_map(|(flag, path)| path.map(|p| (flag, p)));
    match inputs
        .into_iter()
        .find(|(_, input)| crate::atomic_write::same_file(output, input))
    {
        Some((flag, _)) => Err(ToolError::Usage(format!(
            "--output \"{}\" is the file given to {flag}: the report would replace it; write the report elsewhere",
            output.display()
        ))),
        None => Ok(()),
    }
}

/// A subcommand that writes only some formats refuses the others, rather than ignore them.
fn only_formats(subcommand: &str, format: Format, allowed: &[Format]) -> Result<(), ToolError> {
    if allowed.contains(&format) {
        return Ok(());
    }
    let names: Vec<String> = allowed
        .iter()
        .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_string()))
        .collect();
    let given = format
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    Err(ToolError::Usage(format!(
        "{subcommand} writes {}; --format {given} is not one of them",
        names.join(" or ")
    )))
}

/// `explain CODE` (any case), or `explain --list`; an unknown code is a usage error that
/// names the closest known ones.
fn explain(code: Option<&str>, list: bool, format: Format) -> Result<u8, ToolError> {
    let text = match (code, list) {
        (_, true) => match format {
            Format::Json => crate::explain::list_json(),
            _ => crate::explain::list_text(),
        },
        (Some(code), false) => {
            let Some(known) = crate::catalogue::Code::parse(&code.trim().to_ascii_lowercase())
            else {
                let closest: Vec<&str> = crate::explain::closest(code)
                    .iter()
                    .map(|c| c.as_str())
                    .collect();
                return Err(ToolError::Usage(format!(
                    "unknown finding code \"{code}\"; the closest known codes: {} (`pgtls-doctor explain --list` lists them all)",
                    closest.join(", ")
                )));
            };
            match format {
                Format::Json => crate::explain::json(known),
                _ => crate::explain::text(known),
            }
        }
        (None, false) => return Err(ToolError::Usage("explain needs a CODE, or --list".into())),
    };
    write_stdout(text.as_bytes())
}

/// Everything a subcommand prints, at once; a closed pipe is not an error.
fn write_stdout(bytes: &[u8]) -> Result<u8, ToolError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ToolError::Write {
            what: "output",
            source: e,
        }),
        _ => Ok(crate::report::exit::OK),
    }
}

/// `pki DIR`: the files, then how to install and use them.
fn pki(args: &crate::cli::PkiArgs) -> Result<u8, ToolError> {
    let passphrase = match &args.passphrase_file {
        None => None,
        Some(file) => {
            let text = crate::files::read_text(file).map_err(|source| ToolError::Unreadable {
                what: "passphrase file",
                path: file.clone(),
                source,
            })?;
            let first = text.lines().next().unwrap_or_default();
            if first.is_empty() {
                return Err(ToolError::Usage(format!(
                    "the passphrase file \"{}\" is empty",
                    file.display()
                )));
            }
            Some(crate::plan::Secret::new(first))
        }
    };
    let written = crate::pki::make(&crate::pki::PkiRequest {
        dir: args.dir.clone(),
        server_names: args.server_names.clone(),
        server_addresses: args.server_ips.clone(),
        clients: args.clients.clone(),
        days: args.days,
        ca_days: args.ca_days,
        passphrase,
        server_dir: args.server_dir.clone(),
        port: args.port,
        client_network: args.client_network.clone(),
    })?;
    let mut text = String::from("# Wrote (keys 0600):\n");
    for file in &written.files {
        text.push_str(&format!("#   {}\n", file.display()));
    }
    text.push('\n');
    text.push_str(&written.instructions);
    // Paths and names are the user's, shown line by line with control characters escaped.
    let shown: String = text
        .lines()
        .map(|line| format!("{}\n", crate::untrusted::for_terminal(line)))
        .collect();
    write_stdout(shown.as_bytes())
}

fn lint(
    file: &Path,
    ident: Option<&Path>,
    conf: Option<&Path>,
    pg_version: u32,
    format: Format,
    colour: Colour,
) -> Result<u8, ToolError> {
    let hba_file = hba::load_hba(file, pg_version)?;
    let ident_file = ident.map(hba::load_ident).transpose()?;
    let conf = conf.map(hba::server_conf::load).transpose()?;
    let findings = hba::lint::lint(&hba_file, ident_file.as_ref(), conf.as_ref(), pg_version);
    let report = report::lint_report(file, pg_version, hba_file.rules.len(), &findings);
    let mut stdout = std::io::stdout().lock();
    let written = match format {
        Format::Text => render::text::lint(&report, colour, &mut stdout),
        // The lint report is one document; the machine formats all get its JSON.
        _ => render::json::lint(&report, &mut stdout),
    }
    .and_then(|_| stdout.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ToolError::Write {
            what: "output",
            source: e,
        }),
        _ => Ok(report.exit_code),
    }
}

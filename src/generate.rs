//! `--generate`: the man page and shell completions, from the clap definitions, so they
//! never drift from `--help`.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{Cli, Generate, EXAMPLES, EXIT_STATUS};

pub fn write(what: Generate, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    match what {
        Generate::Man => man(command, out),
        Generate::CompleteBash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, out);
            Ok(())
        }
        Generate::CompleteZsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, name, out);
            Ok(())
        }
        Generate::CompleteFish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, name, out);
            Ok(())
        }
    }
}

/// The man page: clap_mangen's sections, with EXAMPLES and EXIT STATUS written here (the
/// same text as `--help`) in place of the after-help paragraph.
fn man(command: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let command = command
        .after_help(None::<&str>)
        .after_long_help(None::<&str>);
    let page = clap_mangen::Man::new(command.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    // clap_mangen's own section points at a page per subcommand (pgtls-doctor-pki(1)) that
    // is never installed; each subcommand is documented here instead, with its options.
    writeln!(out, ".SH \"COMMANDS\"")?;
    subcommands(&command, "pgtls-doctor", out)?;
    writeln!(out, ".SH \"TARGET\"")?;
    writeln!(
        out,
        "TARGET is host, host:port, [v6]:port, a postgres:// URI, or a key=value conninfo string. \
         Absent parts come from PGSERVICE, the PG* variables, ~/.pgpass and ~/.postgresql/, as libpq."
    )?;
    writeln!(out, ".SH \"EXAMPLES\"")?;
    for (what, example) in EXAMPLES {
        writeln!(
            out,
            ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE",
            roff_text(what),
            roff_text(example)
        )?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in EXIT_STATUS {
        writeln!(out, ".TP\n.B {code}\n{}", roff_text(meaning))?;
    }
    writeln!(out, ".SH \"SEE ALSO\"")?;
    writeln!(out, ".BR psql (1),")?;
    writeln!(out, ".BR openssl-s_client (1)")?;
    page.render_version_section(out)?;
    Ok(())
}

/// Each subcommand (and theirs, as `hba lint`): its synopsis, description and options.
fn subcommands(parent: &clap::Command, path: &str, out: &mut dyn Write) -> io::Result<()> {
    for sub in parent.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            subcommands(sub, &path, out)?;
            continue;
        }
        let arguments: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "help")
            .collect();
        let positionals: Vec<String> = arguments
            .iter()
            .filter(|a| a.is_positional())
            .map(|a| format!("<{}>", a.get_id().as_str().to_uppercase()))
            .collect();
        writeln!(
            out,
            ".SS \"{}\"\n\\fB{}\\fR [\\fIOPTIONS\\fR] {}",
            roff_text(&path),
            roff_text(&path),
            roff_text(&positionals.join(" "))
        )?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, ".PP\n{}", roff_text(&about.to_string()))?;
        }
        for arg in arguments {
            writeln!(out, ".TP\n{}", argument_names(arg))?;
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                writeln!(out, "{}", roff_text(&help.to_string()))?;
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                writeln!(out, "(default: {})", roff_text(&defaults.join(", ")))?;
            }
        }
    }
    Ok(())
}

/// `\fB\-s\fR, \fB\-\-long\fR \fIVALUE\fR`, or `\fINAME\fR` for a positional argument.
fn argument_names(arg: &clap::Arg) -> String {
    if arg.is_positional() {
        return format!("\\fI{}\\fR", arg.get_id().as_str().to_uppercase());
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("\\fB\\-{short}\\fR"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", roff_text(long)));
    }
    let mut text = names.join(", ");
    if arg.get_action().takes_values() {
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        text.push_str(&format!(" \\fI{}\\fR", roff_text(&value)));
    }
    text
}

/// Text safe in a roff line: backslashes doubled, a leading dot or quote escaped, and
/// hyphens written as the minus sign commands need.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

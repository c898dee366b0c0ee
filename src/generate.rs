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
    page.render_subcommands_section(out)?;
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

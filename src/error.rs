//! The one error type the command line maps to an exit status: usage errors and the files
//! only the doctor reads (exit 3). What a probe finds is never an error here: it is a
//! finding in the report.

use std::io;
use std::path::PathBuf;

use crate::report::exit;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// clap's own message about the command line, shown as it is.
    #[error("{0}")]
    Arguments(String),
    /// The command line, or a value in it, is refused (libpq's words where libpq refuses it).
    #[error("{0}")]
    Usage(String),
    /// A file only the doctor reads cannot be read.
    #[error("could not read {what} \"{}\": {source}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// pg_hba.conf, pg_ident.conf or postgresql.conf cannot be loaded.
    #[error(transparent)]
    Rules(#[from] crate::hba::LoadError),
    /// A target in a targets file is refused.
    #[error("{}, line {line}: {source}", file.display())]
    Target {
        file: PathBuf,
        line: usize,
        #[source]
        source: crate::plan::PlanError,
    },
    /// The target or --admin connection string is refused.
    #[error("{prefix}{source}")]
    Plan {
        prefix: &'static str,
        #[source]
        source: crate::plan::PlanError,
    },
    /// The demo could not run (no PostgreSQL binaries, or a step failed).
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    /// `pki` wrote nothing.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The report could not be written (a full disk; a closed pipe is not an error).
    #[error("could not write the {what}: {source}")]
    Write {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl ToolError {
    /// The exit status this error ends the run with.
    pub fn exit_code(&self) -> u8 {
        exit::USAGE
    }

    /// The text for stderr: prefixed with the program's name, and with control characters
    /// escaped, since it may quote a hostile file or argument. clap's own message keeps its
    /// lines (its usage and tips), each escaped.
    pub fn for_stderr(&self) -> String {
        match self {
            ToolError::Arguments(text) => text
                .lines()
                .map(crate::untrusted::for_terminal)
                .collect::<Vec<_>>()
                .join("\n"),
            other => crate::untrusted::for_terminal(&format!("pgtls-doctor: {other}")).into_owned(),
        }
    }
}

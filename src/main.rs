//! The command line: parse, run, map the one error type to an exit status. The work is in
//! the library (`command::run`).

use std::process::ExitCode;

use pgtls_doctor::{cli, command, report::exit};

fn main() -> ExitCode {
    let result = match cli::parse() {
        Ok(Some(cli)) => command::run(&cli),
        Ok(None) => Ok(exit::OK),
        Err(e) => Err(e),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("{}", e.for_stderr());
            ExitCode::from(e.exit_code())
        }
    }
}

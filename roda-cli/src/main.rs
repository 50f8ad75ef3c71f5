//! `roda`: inspect, tail, measure and verify Roda store files (journals and slot stores)
//! without knowing their record type. `roda help` lists the commands, `roda help COMMAND`
//! (or `roda COMMAND --help`) tells one's options.
//!
//! Exit status: 0 ok, 1 `verify` found a problem, 2 a usage, I/O or file format error.
//! A usage error is reported in clap's format (`error: ...`, the usage, a hint); any
//! other error in one line on stderr: `roda: PATH: what went wrong`.
#![deny(unsafe_code)]

mod cli;
mod commands;
mod format;
mod human;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use roda_store::RodaError;

/// Why a command stopped early.
#[derive(Debug)]
pub enum Failure {
    /// Arguments that do not fit the file, found once it is open (exit 2).
    Usage(String),
    /// The store file could not be opened or read (exit 2).
    Store { path: PathBuf, error: RodaError },
    /// Writing the output failed (a closed pipe ends the command quietly, exit 0).
    Output(io::Error),
    /// `verify` found a problem and reported it (exit 1).
    Problem,
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn main() -> ExitCode {
    // A usage error exits here, with status 2; `--help` and `--version` with 0.
    let command = <cli::Cli as clap::Parser>::parse().command;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = commands::run(command, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Whatever was reported before the failure still goes out; a closed pipe
            // here is no news.
            let _ = out.flush();
            fail(failure)
        }
    }
}

/// Reports `failure` on stderr in one line and returns its exit status.
fn fail(failure: Failure) -> ExitCode {
    match failure {
        Failure::Usage(message) => {
            eprintln!("roda: {message}");
            ExitCode::from(2)
        }
        Failure::Store { path, error } => {
            eprintln!("roda: {}: {error}", path.display());
            ExitCode::from(2)
        }
        // `roda tail -f FILE | head`: the reader went away, which ends the command.
        Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Failure::Output(e) => {
            eprintln!("roda: cannot write the output: {e}");
            ExitCode::from(2)
        }
        Failure::Problem => ExitCode::from(1),
    }
}

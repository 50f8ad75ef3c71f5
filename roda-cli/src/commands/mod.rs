//! The subcommands, one file each, and what they share.

mod inspect;
pub mod metrics;
mod segdir;
mod stats;
mod tail;
mod top;
mod verify;

use std::io::Write;
use std::path::Path;

use roda_store::{StoreFile, StoreKind};

use crate::cli::{Cli, Command};
use crate::Failure;

/// Runs `command`, writing its report to `out`.
pub fn run(command: Command, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::Version => writeln!(out, "roda {}", env!("CARGO_PKG_VERSION"))?,
        Command::Inspect(common) => inspect::run(&common, out)?,
        Command::Tail { common, options } => tail::run(&common, &options, out)?,
        Command::Stats { common, options } => stats::run(&common, &options, out)?,
        Command::Verify(common) => verify::run(&common, out)?,
        Command::Top { path, options } => top::run(&path, &options, out)?,
        Command::Metrics { path, options } => metrics::run(&path, &options, out)?,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "roda", out);
        }
    }
    Ok(())
}

/// A counters file that could not be opened or read.
fn counters_failure(path: &Path, error: roda_store::RodaError) -> Failure {
    Failure::Store {
        path: path.into(),
        error,
    }
}

/// The one line `main` reports for `failure` (without the `roda: ` prefix).
fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Usage(message) => message.clone(),
        Failure::Store { path, error } => format!("{}: {error}", path.display()),
        Failure::Output(e) => format!("cannot write the output: {e}"),
        Failure::Problem => "a problem was found".into(),
    }
}

/// Writes `value` as one line of JSON.
fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// Opens the store file at `path`, any kind, read-only.
fn open(path: &Path) -> Result<StoreFile, Failure> {
    StoreFile::open(path).map_err(|error| Failure::Store {
        path: path.into(),
        error,
    })
}

/// `journal` or `slots`.
fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Journal => "journal",
        StoreKind::Slots => "slots",
    }
}

/// What a slot store holds right now: slots set (version above 0) and torn slots, by
/// their sequence words (a cheap scan: one atomic load per slot, no payload copies).
struct SlotCensus {
    set: u64,
    /// Completed sets over all slots: what a set rate is measured from.
    sets: u64,
    torn: u64,
}

fn slot_census(file: &StoreFile) -> SlotCensus {
    let mut census = SlotCensus {
        set: 0,
        sets: 0,
        torn: 0,
    };
    for index in 0..file.header().capacity {
        let seq = file.slot_sequence(index).unwrap_or(0);
        let version = (seq & !TORN_BIT) / 2;
        census.sets += version;
        if version > 0 {
            census.set += 1;
        }
        if seq & (TORN_BIT | 1) != 0 {
            census.torn += 1;
        }
    }
    census
}

/// Bit 63 of a slot's sequence word: flagged torn (see docs/file-format.md).
const TORN_BIT: u64 = 1 << 63;

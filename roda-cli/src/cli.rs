//! The command line: commands, options and their help, declared with clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::format::Format;

/// Inspect, tail, measure and verify Roda store files (journals and slot stores)
/// without knowing their record type.
#[derive(Debug, Parser)]
#[command(
    name = "roda",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "FILE is a store file, or the directory of a segmented journal (for tail, a \
                  segment file stands for its directory).\n\n\
                  Exit status: 0 ok, 1 verify found a problem, 2 a usage, I/O or file format \
                  error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Header fields, fill, writer and validation of a store file; for a DIR, its segments
    Inspect(Common),
    /// Print records (journal) or set slots (slot store); for a DIR, the records across
    /// segments in sequence order
    Tail {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: TailOptions,
    },
    /// Append (or set) rate, fill and time to full; for a DIR, records retained, append
    /// rate, segment files and writer
    Stats {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: StatsOptions,
    },
    /// Scan the whole file; exit 1 at the first problem found; for a DIR, every segment
    /// header and an unbroken run
    Verify(Common),
    /// Watch a pipeline's counters file live: per-stage rate, lag, fill and back-pressure
    ///
    /// FILE is the counters file a pipeline writes (StageEngine::metrics_file). q quits.
    Top {
        /// A pipeline's counters file
        #[arg(value_name = "FILE")]
        path: PathBuf,
        #[command(flatten)]
        options: TopOptions,
    },
    /// Print a pipeline's counters file in the Prometheus text format (0.0.4)
    ///
    /// On stdout; with --output into a file (for node_exporter's textfile collector);
    /// with --listen served over HTTP at /metrics.
    Metrics {
        /// A pipeline's counters file
        #[arg(value_name = "FILE")]
        path: PathBuf,
        #[command(flatten)]
        options: MetricsOptions,
    },
    /// Print a completion script for SHELL on stdout
    ///
    /// For example `roda completions bash > /etc/bash_completion.d/roda`.
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the version
    #[command(hide = true)]
    Version,
}

/// What every file command takes.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct Common {
    /// A store file, or the directory of a segmented journal
    #[arg(value_name = "FILE")]
    pub path: PathBuf,
    /// Machine-readable output (one JSON object per line)
    #[arg(long)]
    pub json: bool,
}

/// Options of `tail`.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct TailOptions {
    /// Keep printing new records (or changed slots) as they come; for a DIR, across rolls
    /// (records the writer recycled before they were read are skipped, said on stderr)
    #[arg(short, long)]
    pub follow: bool,
    /// Start at record SEQ (slot index for slot stores)
    #[arg(long, value_name = "SEQ", value_parser = parse_u64)]
    pub from: Option<u64>,
    /// Journals, without --from: the last N records; slot stores print every set slot
    #[arg(short = 'n', long, value_name = "N", default_value = "10", value_parser = parse_u64)]
    pub lines: u64,
    /// hex | u64 | f64 | fields=TYPE,TYPE,... (TYPE: u8 u16 u32 u64 i8 i16 i32 i64 f32
    /// f64, read back to back in native byte order); default u64 when the record is a
    /// whole number of 8-byte words, else hex
    #[arg(long, value_name = "FORMAT", value_parser = Format::parse)]
    pub format: Option<Format>,
}

/// Options of `stats`.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct StatsOptions {
    /// Time between samples: 1s, 250ms, 2m, 0.5 (seconds)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after N samples (default: until interrupted)
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,
}

/// Options of `top`.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct TopOptions {
    /// Time between two refreshes (with --once: between its two samples)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print one snapshot, with rates from two samples, instead of the live view
    #[arg(long)]
    pub once: bool,
    /// With --once: the snapshot as one JSON object
    #[arg(long, requires = "once")]
    pub json: bool,
}

/// Options of `metrics`.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct MetricsOptions {
    /// Write the metrics to PATH through a temporary file and a rename, so a reader never
    /// sees a partial file
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    pub output: Option<PathBuf>,
    /// Serve the metrics over HTTP at http://ADDR/metrics until stopped (ADDR such as
    /// 127.0.0.1:9464; port 0 picks a free port, printed on stdout)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// A non-negative whole number; `_` may group digits (`1_000_000`).
pub fn parse_u64(text: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| "not a non-negative whole number".to_owned())
}

/// A whole number of at least 1.
fn parse_count(text: &str) -> Result<u64, String> {
    match parse_u64(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// `1s`, `250ms`, `2m`, `1.5` (seconds), `10us`; at least 1 ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || "not a duration like 1s, 250ms or 2m".to_owned();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    if !(0.001..=1e9).contains(&seconds) {
        return Err("out of range (1ms to 1e9 s)".into());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("roda").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(
            match parse(&["inspect", "a.roda", "--json"]).unwrap() {
                Command::Inspect(c) => c,
                other => panic!("{other:?}"),
            },
            Common {
                path: "a.roda".into(),
                json: true
            }
        );
        match parse(&["tail", "-f", "--from=5", "x", "--format", "fields=u64,f64"]).unwrap() {
            Command::Tail { common, options } => {
                assert_eq!(common.path, PathBuf::from("x"));
                assert!(options.follow);
                assert_eq!(options.from, Some(5));
                assert_eq!(options.lines, 10);
                assert!(options.format.is_some());
            }
            other => panic!("{other:?}"),
        }
        match parse(&["tail", "x", "-n", "1_000"]).unwrap() {
            Command::Tail { options, .. } => assert_eq!(options.lines, 1000),
            other => panic!("{other:?}"),
        }
        match parse(&["stats", "x", "--interval", "250ms", "--count", "3"]).unwrap() {
            Command::Stats { options, .. } => {
                assert_eq!(options.interval, Duration::from_millis(250));
                assert_eq!(options.count, Some(3));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["stats", "x"]).unwrap() {
            Command::Stats { options, .. } => {
                assert_eq!(options.interval, Duration::from_secs(1));
                assert_eq!(options.count, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["verify", "--", "-odd"]).unwrap() {
            Command::Verify(c) => assert_eq!(c.path, PathBuf::from("-odd")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["completions", "bash"]).unwrap(),
            Command::Completions { .. }
        ));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["frobnicate", "x"],
            &["inspect"],
            &["inspect", "a", "b"],
            &["inspect", "x", "-f"],
            &["tail", "x", "--from"],
            &["tail", "x", "--from", "-1"],
            &["tail", "x", "--format", "u7"],
            &["stats", "x", "--interval", "soon"],
            &["stats", "x", "--count", "0"],
            &["verify", "x", "--json=yes"],
            &["completions", "tcsh"],
            &["top"],
            &["top", "f", "--json"],
            &["metrics", "f", "--output", "x", "--listen", "127.0.0.1:0"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }
}

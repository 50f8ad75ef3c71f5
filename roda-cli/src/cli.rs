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
    /// Replicate a journal through NATS JetStream
    #[cfg(feature = "bridge")]
    #[command(subcommand)]
    Bridge(BridgeCommand),
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

    #[cfg(feature = "bridge")]
    #[test]
    fn bridge_import_options() {
        let args = [
            "bridge",
            "import",
            "out",
            "--stream",
            "S",
            "--subject",
            "s.x",
        ];
        match parse(&args).unwrap() {
            Command::Bridge(BridgeCommand::Import(i)) => {
                assert_eq!(i.path, PathBuf::from("out"));
                assert_eq!(
                    (i.nats.stream.as_str(), i.nats.subject.as_str()),
                    ("S", "s.x")
                );
                assert_eq!((i.follow, i.journal_id, i.capacity), (false, None, None));
                assert_eq!((i.segment_records, i.keep_last), (1 << 20, None));
            }
            other => panic!("{other:?}"),
        }
        let more = [
            "-f",
            "--journal-id",
            "0xbeef",
            "--capacity",
            "1_000",
            "--creds",
            "c",
        ];
        match parse(&[&args[..], &more[..]].concat()).unwrap() {
            Command::Bridge(BridgeCommand::Import(i)) => {
                assert_eq!(
                    (i.follow, i.journal_id, i.capacity),
                    (true, Some(0xbeef), Some(1000))
                );
                assert_eq!(i.nats.creds, Some(PathBuf::from("c")));
            }
            other => panic!("{other:?}"),
        }
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
            #[cfg(feature = "bridge")]
            &["bridge", "import", "--stream", "S", "--subject", "s"],
            #[cfg(feature = "bridge")]
            &[
                "bridge",
                "import",
                "o",
                "--stream",
                "S",
                "--subject",
                "s",
                "--capacity",
                "9",
                "--keep-last",
                "3",
            ],
            #[cfg(feature = "bridge")]
            &[
                "bridge",
                "import",
                "o",
                "--stream",
                "S",
                "--subject",
                "s",
                "--journal-id",
                "0",
            ],
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

/// `roda bridge ...`.
#[cfg(feature = "bridge")]
#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Publish a journal's records to a JetStream subject in batches, exactly once
    ///
    /// Resumes after the subject's last batch; without --follow, exits once every record
    /// present at the start is acknowledged. Progress goes to stderr every second.
    Export(BridgeExport),
    /// Append a JetStream subject's batches to a local journal with the same sequences,
    /// exactly once
    ///
    /// OUT is a journal file or a segmented journal's directory; when missing it is
    /// created with the shape and journal id of the subject's batches: a directory (or,
    /// with --capacity, a plain file). Resumes after OUT's last record; without
    /// --follow, exits once OUT holds everything the subject held at the start.
    /// Progress goes to stderr every second.
    Import(BridgeImport),
}

/// `roda bridge import`'s arguments.
#[cfg(feature = "bridge")]
#[derive(Clone, Debug, Args)]
pub struct BridgeImport {
    /// The journal file or segmented journal directory to append to (created if missing)
    #[arg(value_name = "OUT")]
    pub path: PathBuf,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Keep importing new batches (stop with Ctrl-C; a restart resumes exactly)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The journal id in hex a new OUT gets (default: the source's, from the batches)
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub journal_id: Option<u64>,
    /// Create a missing OUT as a plain journal file of N records (the subject must
    /// start at record 0) instead of a segmented directory
    #[arg(long, value_name = "N", value_parser = parse_count, conflicts_with_all = ["segment_records", "keep_last"])]
    pub capacity: Option<u64>,
    /// Records per segment file of a new OUT directory (the subject's first record must
    /// be a multiple of it)
    #[arg(long, value_name = "N", value_parser = parse_count, default_value = "1048576")]
    pub segment_records: u64,
    /// A new OUT directory keeps only its last K segment files (default: all of them)
    #[arg(long, value_name = "K", value_parser = parse_count)]
    pub keep_last: Option<u64>,
}

/// `roda bridge export`'s arguments.
#[cfg(feature = "bridge")]
#[derive(Clone, Debug, Args)]
pub struct BridgeExport {
    /// A journal file, or the directory of a segmented journal
    #[arg(value_name = "JOURNAL")]
    pub path: PathBuf,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Keep following the journal (stop with Ctrl-C; a restart resumes exactly)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The journal id in hex, for journals created without one (the same every time)
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub journal_id: Option<u64>,
    /// Continue with the oldest retained record when a segmented journal recycled
    /// records before they were exported (says what was skipped)
    #[arg(long)]
    pub skip_lagged: bool,
    /// Largest batch in bytes (lowered to the server's max_payload)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// How long a partial batch waits for more records
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2ms")]
    pub linger: Duration,
    /// Batches awaiting their acknowledgement, at most
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub in_flight: usize,
    /// Duplicate window of a stream the export creates
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub duplicate_window: Duration,
    /// Replicas of a stream the export creates (3 on a three-node cluster)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub replicas: usize,
}

/// Where the NATS server is and how to reach it.
#[cfg(feature = "bridge")]
#[derive(Clone, Debug, Args)]
pub struct NatsArgs {
    /// Server URL(s), comma-separated
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The JetStream stream (created by export when missing: file storage, limits retention)
    #[arg(long, value_name = "NAME")]
    pub stream: String,
    /// The subject carrying the journal's batches
    #[arg(long, value_name = "SUBJ")]
    pub subject: String,
    /// A .creds file (JWT and nkey seed)
    #[arg(long, value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// PEM root certificates to trust for TLS
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM client key for mutual TLS (with --tls-cert)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS
    #[arg(long)]
    pub require_tls: bool,
}

#[cfg(feature = "bridge")]
fn parse_hex(text: &str) -> Result<u64, String> {
    let digits = text.trim_start_matches("0x");
    match u64::from_str_radix(digits, 16) {
        Ok(0) => Err("a journal id is not 0".into()),
        Ok(id) => Ok(id),
        Err(e) => Err(format!("not a hexadecimal journal id: {e}")),
    }
}

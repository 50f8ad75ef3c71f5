//! Command-line parsing, by hand: four subcommands with a few options each need no
//! argument-parsing dependency.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::format::Format;

/// The usage text printed by `roda help` and after a usage error.
pub const USAGE: &str = "\
usage: roda <command> FILE [options]

FILE is a store file, or the directory of a segmented journal (DIR below; for tail, a
segment file stands for its directory).

commands:
  inspect FILE                 header fields, fill, writer and validation of a store file;
                               for a DIR, its segments
  tail FILE [options]          print records (journal) or set slots (slot store); for a
                               DIR, the records across segments in sequence order
      -f, --follow             keep printing new records (or changed slots) as they come;
                               for a DIR, across rolls (records the writer recycled
                               before they were read are skipped, said on stderr)
      --from SEQ               start at record SEQ (slot index for slot stores)
      -n, --lines N            journals, without --from: the last N records (default
                               10); slot stores print every set slot
      --format FORMAT          hex | u64 | f64 | fields=TYPE,TYPE,...
                               (TYPE: u8 u16 u32 u64 i8 i16 i32 i64 f32 f64, read back to
                               back in native byte order); default u64 when the record is
                               a whole number of 8-byte words, else hex
  stats FILE [options]         append (or set) rate, fill and time to full; for a DIR,
                               records retained, append rate, segment files and writer
      --interval DURATION      time between samples: 1s (default), 250ms, 2m, 0.5
      --count N                stop after N samples (default: until interrupted)
  verify FILE                  scan the whole file; exit 1 at the first problem found;
                               for a DIR, every segment header and an unbroken run
  help                         this text

options for every command:
  --json                       machine-readable output (one JSON object per line)

exit status: 0 ok, 1 verify found a problem, 2 usage, I/O or file format error";

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
    /// `roda inspect FILE`.
    Inspect(Common),
    /// `roda tail FILE ...`.
    Tail(Common, Tail),
    /// `roda stats FILE ...`.
    Stats(Common, Stats),
    /// `roda verify FILE`.
    Verify(Common),
}

/// What every file command takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Common {
    /// The store file.
    pub path: PathBuf,
    /// JSON output instead of text.
    pub json: bool,
}

/// Options of `tail`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tail {
    /// Keep printing new records.
    pub follow: bool,
    /// First record (or slot index) to print.
    pub from: Option<u64>,
    /// Without `from`: how many of the last records to print.
    pub lines: u64,
    /// How to decode a record's bytes; `None`: chosen from the record size.
    pub format: Option<Format>,
}

/// Options of `stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Time between two samples.
    pub interval: Duration,
    /// Number of samples to print; `None`: until interrupted.
    pub count: Option<u64>,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let command = match args.next() {
        None => return Err("no command given".into()),
        Some(c) => c
            .into_string()
            .map_err(|c| format!("unknown command {}", c.to_string_lossy()))?,
    };
    match command.as_str() {
        "help" | "-h" | "--help" => return Ok(Command::Help),
        "version" | "-V" | "--version" => return Ok(Command::Version),
        "inspect" | "tail" | "stats" | "verify" => {}
        other => return Err(format!("unknown command '{other}'")),
    }

    let mut path: Option<PathBuf> = None;
    let mut json = false;
    let mut tail = Tail {
        follow: false,
        from: None,
        lines: 10,
        format: None,
    };
    let mut stats = Stats {
        interval: Duration::from_secs(1),
        count: None,
    };
    let mut only_paths = false;
    while let Some(arg) = args.next() {
        let text = match arg.to_str() {
            Some(text) if !only_paths && text.starts_with('-') && text != "-" => text.to_owned(),
            // Not an option: the file (paths need not be UTF-8).
            _ => {
                if path.is_some() {
                    return Err(format!(
                        "unexpected argument '{}': give one FILE",
                        arg.to_string_lossy()
                    ));
                }
                path = Some(PathBuf::from(arg));
                continue;
            }
        };
        // `--name=value` or `--name value`.
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value)),
            _ => (text.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline {
                Some(v) => Ok(v.to_owned()),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{name} needs {what}")),
            }
        };
        match name.as_str() {
            "--" => only_paths = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "-f" | "--follow" if command == "tail" => tail.follow = true,
            "--from" if command == "tail" => {
                tail.from = Some(parse_u64(&value("a record sequence")?, "--from")?)
            }
            "-n" | "--lines" if command == "tail" => {
                tail.lines = parse_u64(&value("a number of records")?, "--lines")?
            }
            "--format" if command == "tail" => {
                tail.format = Some(Format::parse(&value("a format")?)?);
            }
            "--interval" if command == "stats" => {
                stats.interval = parse_duration(&value("a duration")?)?
            }
            "--count" if command == "stats" => {
                let n = parse_u64(&value("a number of samples")?, "--count")?;
                if n == 0 {
                    return Err("--count must be at least 1".into());
                }
                stats.count = Some(n);
            }
            _ => return Err(format!("unknown option '{name}' for {command}")),
        }
        if inline.is_some()
            && !matches!(
                name.as_str(),
                "--from" | "--lines" | "--format" | "--interval" | "--count"
            )
        {
            return Err(format!("option '{name}' takes no value"));
        }
    }
    let path = path.ok_or_else(|| format!("{command} needs a FILE"))?;
    let common = Common { path, json };
    Ok(match command.as_str() {
        "inspect" => Command::Inspect(common),
        "tail" => Command::Tail(common, tail),
        "stats" => Command::Stats(common, stats),
        _ => Command::Verify(common),
    })
}

fn parse_u64(text: &str, option: &str) -> Result<u64, String> {
    text.replace('_', "")
        .parse()
        .map_err(|_| format!("{option}: '{text}' is not a non-negative whole number"))
}

/// `1s`, `250ms`, `2m`, `1.5` (seconds), `10us`; at least 1 ms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--interval: '{text}' is not a duration like 1s, 250ms or 2m");
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
        return Err(format!(
            "--interval: '{text}' is out of range (1ms to 1e9 s)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(
            parse_str(&["inspect", "a.roda", "--json"]).unwrap(),
            Command::Inspect(Common {
                path: "a.roda".into(),
                json: true
            })
        );
        match parse_str(&["tail", "-f", "--from=5", "x", "--format", "fields=u64,f64"]).unwrap() {
            Command::Tail(c, t) => {
                assert_eq!(c.path, PathBuf::from("x"));
                assert!(t.follow);
                assert_eq!(t.from, Some(5));
                assert!(t.format.is_some());
            }
            other => panic!("{other:?}"),
        }
        match parse_str(&["stats", "x", "--interval", "250ms", "--count", "3"]).unwrap() {
            Command::Stats(_, s) => {
                assert_eq!(s.interval, Duration::from_millis(250));
                assert_eq!(s.count, Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_str(&["help"]).unwrap(), Command::Help);
        assert_eq!(parse_str(&["verify", "--help"]).unwrap(), Command::Help);
        assert_eq!(
            parse_str(&["verify", "--", "-odd"]).unwrap(),
            Command::Verify(Common {
                path: "-odd".into(),
                json: false
            })
        );
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
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?}");
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

//! `roda tail FILE [-f]`: a journal's records, or a slot store's set slots, decoded.
//! `roda tail DIR [-f]` (or a segment file of it): a segmented journal's records across
//! its segments, in sequence order.
//!
//! Following (`-f`) a journal written with waking on (`options().wake(true)`, header
//! flag bit 1) sleeps on its wake word: the writer's next publish (or roll into the
//! next segment, or close) wakes it within microseconds, and an idle follower costs
//! nothing. Other files, slot stores, and files this user may not open for writing
//! (registering as a sleeper writes a header word; a warning says so once) are polled
//! every 10 ms: a sleep, not a spin. Each batch of new lines is flushed at once,
//! terminal or pipe alike, like `tail -f`; nothing else (no progress line) is ever
//! printed on stdout.
//!
//! A segmented journal's records are copied and validated against their segment's
//! generation (`StoreFile::copy_record`): a record its writer recycled before it could
//! be read is skipped, never printed torn, and one line on stderr says how many were
//! skipped and where printing continues: one line per gap in the output, written when
//! printing resumes (or when the command ends), however many segments the gap spans.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use roda_store::{RodaError, SlotSnapshot, StoreFile, StoreKind};

use serde::Serialize;

use super::segdir::{dir_of, SegmentDir};
use super::{json_line, open};
use crate::cli::{Common, TailOptions};
use crate::format::{human_values, Format, Value};
use crate::Failure;

/// One record in JSON.
#[derive(Serialize)]
struct RecordJson<'a> {
    seq: u64,
    values: &'a [Value],
}

/// One slot in JSON: a value with its version, or torn.
#[derive(Serialize)]
struct SlotJson<'a> {
    slot: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    torn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<&'a [Value]>,
}

/// Pause between two polls while following.
const POLL: Duration = Duration::from_millis(10);
/// Longest sleep on a wake word before looking again on its own (a net: the writer's
/// publish wakes the follower).
const WAKE_NET: Duration = Duration::from_millis(100);
/// Most records printed between two flushes while catching up.
const BATCH: u64 = 4096;

/// Prints records (or slots) and, with `-f`, keeps following.
pub fn run(common: &Common, options: &TailOptions, out: &mut dyn Write) -> Result<(), Failure> {
    if common.path.is_dir() {
        return segmented(&common.path, common, options, out);
    }
    let file = open(&common.path)?;
    let h = file.header();
    if h.segment {
        // One segment of a segmented journal: tail the journal, across its segments.
        drop(file);
        return segmented(&dir_of(&common.path), common, options, out);
    }
    let printer = Printer::new(common, options, h.record_size)?;
    match h.kind {
        StoreKind::Journal => journal(&file, options, &printer, out),
        StoreKind::Slots => slots(&file, options, &printer, out),
    }
}

struct Printer {
    format: Format,
    json: bool,
}

impl Printer {
    fn new(common: &Common, options: &TailOptions, record_size: u64) -> Result<Printer, Failure> {
        let format = options
            .format
            .clone()
            .unwrap_or_else(|| Format::default_for(record_size));
        format.check(record_size).map_err(Failure::Usage)?;
        Ok(Printer {
            format,
            json: common.json,
        })
    }

    fn record(&self, out: &mut dyn Write, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
        let values = self.format.decode(bytes);
        if self.json {
            json_line(
                out,
                &RecordJson {
                    seq,
                    values: &values,
                },
            )
        } else {
            writeln!(out, "{seq:>10}  {}", human_values(&values))
        }
    }

    fn slot(
        &self,
        out: &mut dyn Write,
        index: u64,
        snapshot: SlotSnapshot,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        match (snapshot, self.json) {
            (SlotSnapshot::Empty, _) => Ok(()),
            (SlotSnapshot::Torn, false) => writeln!(out, "{index:>10}  {:>8}  torn", "-"),
            (SlotSnapshot::Torn, true) => json_line(
                out,
                &SlotJson {
                    slot: index,
                    torn: Some(true),
                    version: None,
                    values: None,
                },
            ),
            (SlotSnapshot::Value { version }, false) => {
                let values = self.format.decode(bytes);
                writeln!(
                    out,
                    "{index:>10}  {:>8}  {}",
                    format!("v{version}"),
                    human_values(&values)
                )
            }
            (SlotSnapshot::Value { version }, true) => {
                let values = self.format.decode(bytes);
                json_line(
                    out,
                    &SlotJson {
                        slot: index,
                        torn: None,
                        version: Some(version),
                        values: Some(&values),
                    },
                )
            }
        }
    }
}

fn journal(
    file: &StoreFile,
    options: &TailOptions,
    printer: &Printer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let published = file.published();
    let mut next = options
        .from
        .unwrap_or_else(|| published.saturating_sub(options.lines));
    loop {
        let published = file.published();
        while next < published {
            let end = published.min(next + BATCH);
            for seq in next..end {
                let bytes = file.record_bytes(seq).expect("below the published count");
                printer.record(out, seq, bytes)?;
            }
            next = end;
            out.flush()?;
        }
        if !options.follow {
            return Ok(());
        }
        if file.wakes_on_publish() {
            file.wait_published(published, WAKE_NET);
        } else {
            std::thread::sleep(POLL);
        }
    }
}

/// Waits for record `seq` of the segmented journal `dir` to be published: on the wake
/// word of the segment file it will be in, or of the one before it while its own does
/// not exist yet (the writer wakes that one when it rolls); a poll without wake words.
fn wait_segmented(dir: &mut SegmentDir, seq: u64) {
    let s = dir.segment_records;
    let first = seq - seq % s;
    let (file, seen) = match dir.holding(first) {
        Some(file) => (file, seq - first),
        None => match first.checked_sub(s).and_then(|prev| dir.holding(prev)) {
            Some(file) => (file, s),
            None => {
                std::thread::sleep(POLL);
                return;
            }
        },
    };
    if file.wakes_on_publish() {
        file.wait_published(seen, WAKE_NET);
    } else {
        std::thread::sleep(POLL);
    }
}

/// What reading one record of a segmented journal found.
enum Fetch {
    /// The record's validated copy is in the buffer.
    Record,
    /// Not published yet.
    Wait,
    /// The record is no longer retained: the oldest retained one after it.
    Skip(u64),
}

/// Reads record `seq` of the segmented journal `dir` into `buf`.
fn fetch(dir: &mut SegmentDir, seq: u64, buf: &mut Vec<u8>) -> Result<Fetch, Failure> {
    let s = dir.segment_records;
    let first = seq - seq % s;
    // Where to look: the files mapped already, then a new listing (a new file, or a
    // renamed one), then the segment's own name (a listing taken while the writer
    // creates or renames files may miss one that existed all along).
    for attempt in 0..3 {
        match attempt {
            0 => {}
            1 => dir.refresh()?,
            _ => {
                if !dir.find_named(first)? {
                    break;
                }
            }
        }
        let Some(file) = dir.holding(first) else {
            continue;
        };
        match file.copy_record(seq, buf) {
            Ok(true) => return Ok(Fetch::Record),
            // Not published yet, if the file still holds the segment (its writer may
            // have started recycling it since `holding` looked).
            Ok(false) if file.first_sequence() == Some(first) => return Ok(Fetch::Wait),
            Ok(false) => {}
            // The writer recycled the segment: everything up to its end is gone (the next
            // fetch finds out whether the segments after it are).
            Err(RodaError::Lagged { .. }) => return Ok(Fetch::Skip(first.saturating_add(s))),
            Err(error) => {
                return Err(Failure::Store {
                    path: file.path().into(),
                    error,
                })
            }
        }
    }
    // None holds it: gone if a newer segment exists (recycled, or a file deleted),
    // else not written yet.
    Ok(match dir.next_after(first) {
        Some(next) => Fetch::Skip(next),
        None => Fetch::Wait,
    })
}

/// Prints a segmented journal's records from the directory `path`, following it with
/// `-f` across rolls.
fn segmented(
    path: &Path,
    common: &Common,
    options: &TailOptions,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut dir = SegmentDir::open(path)?;
    let printer = Printer::new(common, options, dir.record_size)?;
    let retained = dir.retained();
    let oldest = retained.oldest.unwrap_or(0);
    let next = options
        .from
        .unwrap_or_else(|| retained.end.saturating_sub(options.lines).max(oldest));
    // Without -f: what was published when the command started, as for a journal.
    let stop = if options.follow {
        u64::MAX
    } else {
        retained.end
    };
    print_segmented(
        next,
        stop,
        options.follow,
        &mut dir,
        fetch,
        wait_segmented,
        &printer,
        out,
        &mut std::io::stderr(),
    )
}

/// Prints records `next .. stop` as `fetch` finds them, reporting skipped records on
/// `lagged` (stderr); with `follow`, waits for records not published yet, else stops
/// at the first.
///
/// Each gap in the output gets exactly one line on `lagged`, written when printing
/// resumes after it (or when the command ends): several skips in a row (the writer
/// recycled the segment a skip landed on before it could be read) are one gap, and
/// the line says where printing really continues.
#[allow(clippy::too_many_arguments)]
fn print_segmented<S>(
    mut next: u64,
    stop: u64,
    follow: bool,
    source: &mut S,
    mut fetch: impl FnMut(&mut S, u64, &mut Vec<u8>) -> Result<Fetch, Failure>,
    mut wait: impl FnMut(&mut S, u64),
    printer: &Printer,
    out: &mut dyn Write,
    lagged: &mut dyn Write,
) -> Result<(), Failure> {
    let mut buf = Vec::new();
    let mut unflushed = 0;
    // The first record skipped since the last one printed, if any.
    let mut gap_from = None;
    let result = loop {
        if next >= stop {
            break Ok(());
        }
        let fetched = match fetch(source, next, &mut buf) {
            Ok(fetched) => fetched,
            Err(failure) => break Err(failure),
        };
        match fetched {
            Fetch::Record => {
                if let Some(from) = gap_from.take() {
                    report_gap(lagged, from, next);
                }
                printer.record(out, next, &buf)?;
                next += 1;
                unflushed += 1;
                if unflushed == BATCH {
                    out.flush()?;
                    unflushed = 0;
                }
            }
            Fetch::Skip(to) => {
                // What was printed before the gap goes out before the line about it.
                out.flush()?;
                unflushed = 0;
                gap_from.get_or_insert(next);
                next = to;
            }
            Fetch::Wait => {
                out.flush()?;
                unflushed = 0;
                if !follow {
                    break Ok(());
                }
                wait(source, next);
            }
        }
    };
    if let Some(from) = gap_from {
        report_gap(lagged, from, next);
    }
    result?;
    out.flush()?;
    Ok(())
}

/// Says on `lagged` that records `from .. to` were recycled unread.
fn report_gap(lagged: &mut dyn Write, from: u64, to: u64) {
    // Not an error: the command goes on. A closed stderr is no reason to stop.
    let _ = writeln!(
        lagged,
        "roda: lagged: {} records recycled before they could be read; continuing at {to}",
        to - from
    );
}

fn slots(
    file: &StoreFile,
    options: &TailOptions,
    printer: &Printer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let capacity = file.header().capacity;
    let first = options.from.unwrap_or(0).min(capacity);
    // The sequence word each slot had when last printed (0 if never): a slot is printed
    // again when its word changes. Kept for printed slots only: the header's slot count
    // (any number, in a sparse or damaged file) sizes nothing.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut bytes = Vec::new();
    loop {
        let mut printed = false;
        for index in first..capacity {
            let seq = file.slot_sequence(index).unwrap_or(0);
            if seq == seen.get(&index).copied().unwrap_or(0) {
                continue;
            }
            let snapshot = file
                .read_slot(index, &mut bytes)
                .unwrap_or(SlotSnapshot::Empty);
            // Remember the word the snapshot came from (it may be newer than `seq`).
            let last = match snapshot {
                SlotSnapshot::Value { version } => version.saturating_mul(2),
                _ => file.slot_sequence(index).unwrap_or(0),
            };
            seen.insert(index, last);
            printer.slot(out, index, snapshot, &bytes)?;
            printed = true;
        }
        if printed {
            out.flush()?;
        }
        if !options.follow {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roda_store::{Retention, SegmentedJournal};

    /// What `print_segmented` wrote: the sequences printed, and the stderr lines.
    fn printed(out: &[u8], lagged: &[u8]) -> (Vec<u64>, Vec<String>) {
        let seqs = String::from_utf8_lossy(out)
            .lines()
            .map(|line| {
                let words: Vec<u64> = line
                    .split_whitespace()
                    .map(|w| w.parse().unwrap())
                    .collect();
                // Records hold their own sequence: never a stale or foreign one.
                assert_eq!(words[0], words[1], "{line}");
                words[0]
            })
            .collect();
        let lines = String::from_utf8_lossy(lagged)
            .lines()
            .map(String::from)
            .collect();
        (seqs, lines)
    }

    /// A `KeepLast(2)` ring of 4-record segments whose writer runs ahead between two
    /// reads of the tail, twice in a row before the tail reads anything: the first skip
    /// lands on the oldest retained segment, which is recycled too before the tail gets
    /// to it. Stdout shows one gap, so stderr must say one line for it, with where
    /// printing really continues.
    #[test]
    fn consecutive_skips_are_reported_as_one_gap() {
        for follow in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("ring");
            let mut journal =
                SegmentedJournal::<[u64; 2]>::create(&path, 4, Retention::KeepLast(2)).unwrap();
            let append_up_to = |journal: &mut SegmentedJournal<[u64; 2]>, end: u64| {
                while journal.len() < end {
                    let seq = journal.len();
                    journal.append(&[seq, seq]);
                }
            };
            append_up_to(&mut journal, 6);
            let mut dir = SegmentDir::open(&path).unwrap();
            let printer = Printer {
                format: Format::U64,
                json: false,
            };
            let (mut out, mut lagged) = (Vec::new(), Vec::new());
            let mut waits = 0;
            let result = print_segmented(
                0,
                u64::MAX,
                follow,
                &mut (),
                |_, seq, buf| {
                    match seq {
                        // Segment 4 .. 8 is recycled under the tail: it skips to 12, the
                        // oldest segment retained then...
                        5 => append_up_to(&mut journal, 20),
                        // ...which is recycled too before the tail reads it.
                        12 => append_up_to(&mut journal, 30),
                        _ => {}
                    }
                    let fetched = fetch(&mut dir, seq, buf)?;
                    if let Fetch::Wait = fetched {
                        waits += 1;
                        if waits == 2 {
                            // Following: nothing more comes; end the command here.
                            return Err(Failure::Problem);
                        }
                    }
                    Ok(fetched)
                },
                |_, _| std::thread::sleep(POLL),
                &printer,
                &mut out,
                &mut lagged,
            );
            assert_eq!(result.is_err(), follow, "{result:?}");
            let (seqs, lines) = printed(&out, &lagged);
            assert_eq!(
                seqs,
                [0, 1, 2, 3, 4, 24, 25, 26, 27, 28, 29],
                "follow {follow}"
            );
            assert_eq!(
                lines,
                [
                    "roda: lagged: 19 records recycled before they could be read; \
                  continuing at 24"
                ],
                "follow {follow}"
            );
        }
    }

    /// Runs `print_segmented` from 0 on a scripted `fetch`: `script(seq, call)` says what
    /// the `call`-th fetch of `seq` (from 0) finds; `None` fails the command there.
    fn scripted(
        follow: bool,
        script: impl Fn(u64, usize) -> Option<Fetch>,
    ) -> (bool, Vec<u64>, Vec<String>) {
        let printer = Printer {
            format: Format::U64,
            json: false,
        };
        let mut calls = HashMap::new();
        let (mut out, mut lagged) = (Vec::new(), Vec::new());
        let result = print_segmented(
            0,
            u64::MAX,
            follow,
            &mut (),
            |_, seq, buf| {
                let call = calls.entry(seq).or_insert(0);
                let fetched = script(seq, *call).ok_or(Failure::Problem)?;
                *call += 1;
                if let Fetch::Record = fetched {
                    buf.clear();
                    buf.extend([seq, seq].iter().flat_map(|w| w.to_le_bytes()));
                }
                Ok(fetched)
            },
            |_, _| std::thread::sleep(POLL),
            &printer,
            &mut out,
            &mut lagged,
        );
        let (seqs, lines) = printed(&out, &lagged);
        (result.is_ok(), seqs, lines)
    }

    fn gap_line(n: u64, to: u64) -> String {
        format!("roda: lagged: {n} records recycled before they could be read; continuing at {to}")
    }

    /// A skip, a wait at the record it landed on (not published yet), and a skip from
    /// there (recycled before the next poll): still one gap, said once, when printing
    /// resumes; not when the follower starts waiting.
    #[test]
    fn a_gap_across_a_wait_is_reported_once() {
        let (ok, seqs, lines) = scripted(true, |seq, call| match (seq, call) {
            (0 | 1 | 16, _) => Some(Fetch::Record),
            (2, _) => Some(Fetch::Skip(8)),
            (8, 0) => Some(Fetch::Wait),
            (8, _) => Some(Fetch::Skip(16)),
            // Following: wait once at the end, then end the command.
            (17, 0) => Some(Fetch::Wait),
            _ => None,
        });
        assert!(!ok);
        assert_eq!(seqs, [0, 1, 16]);
        assert_eq!(lines, [gap_line(14, 16)]);
    }

    /// A gap the command ends in is reported too: without -f at the first record not
    /// published, and when reading fails.
    #[test]
    fn a_gap_at_the_end_is_reported() {
        let (ok, seqs, lines) = scripted(false, |seq, _| match seq {
            0 => Some(Fetch::Record),
            1 => Some(Fetch::Skip(4)),
            4 => Some(Fetch::Skip(8)),
            8 => Some(Fetch::Wait),
            _ => None,
        });
        assert!(ok);
        assert_eq!(seqs, [0]);
        assert_eq!(lines, [gap_line(7, 8)]);
        let (ok, seqs, lines) = scripted(true, |seq, _| match seq {
            0 => Some(Fetch::Record),
            1 => Some(Fetch::Skip(4)),
            _ => None,
        });
        assert!(!ok);
        assert_eq!(seqs, [0]);
        assert_eq!(lines, [gap_line(3, 4)]);
    }
}

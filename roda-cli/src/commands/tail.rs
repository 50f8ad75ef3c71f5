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
//! skipped and where printing continues.

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
    let mut next = options
        .from
        .unwrap_or_else(|| retained.end.saturating_sub(options.lines).max(oldest));
    // Without -f: what was published when the command started, as for a journal.
    let stop = if options.follow {
        u64::MAX
    } else {
        retained.end
    };
    let mut buf = Vec::new();
    let mut unflushed = 0;
    while next < stop {
        match fetch(&mut dir, next, &mut buf)? {
            Fetch::Record => {
                printer.record(out, next, &buf)?;
                next += 1;
                unflushed += 1;
                if unflushed == BATCH {
                    out.flush()?;
                    unflushed = 0;
                }
            }
            Fetch::Skip(to) => {
                out.flush()?;
                unflushed = 0;
                // Not an error: the command goes on. A closed stderr is no reason to stop.
                let _ = writeln!(
                    std::io::stderr(),
                    "roda: lagged: {} records recycled before they could be read; \
                     continuing at {to}",
                    to - next
                );
                next = to;
            }
            Fetch::Wait => {
                out.flush()?;
                unflushed = 0;
                if !options.follow {
                    break;
                }
                wait_segmented(&mut dir, next);
            }
        }
    }
    out.flush()?;
    Ok(())
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

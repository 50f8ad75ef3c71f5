//! `roda tail FILE [-f]`: a journal's records, or a slot store's set slots, decoded.
//!
//! Following (`-f`) polls the published count (or the slots' sequence words) every
//! 10 ms: a sleep, not a spin, so a follower costs next to nothing while the writer is
//! idle. Each batch of new lines is flushed at once, terminal or pipe alike, like
//! `tail -f`; nothing else (no progress line) is ever printed.

use std::io::Write;
use std::time::Duration;

use roda_store::{SlotSnapshot, StoreFile, StoreKind};

use super::open;
use crate::args::{Common, Tail};
use crate::format::{human_values, json_values, Format};
use crate::{json, Failure};

/// Pause between two polls while following.
const POLL: Duration = Duration::from_millis(10);
/// Most records printed between two flushes while catching up.
const BATCH: u64 = 4096;

/// Prints records (or slots) and, with `-f`, keeps following.
pub fn run(common: &Common, options: &Tail, out: &mut dyn Write) -> Result<(), Failure> {
    let file = open(&common.path)?;
    let h = file.header();
    let format = options
        .format
        .clone()
        .unwrap_or_else(|| Format::default_for(h.record_size));
    format.check(h.record_size).map_err(Failure::Usage)?;
    let printer = Printer {
        format,
        json: common.json,
    };
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
    fn record(&self, out: &mut dyn Write, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
        let values = self.format.decode(bytes);
        if self.json {
            let line = json::Object::new()
                .u64("seq", seq)
                .raw("values", json_values(&values))
                .finish();
            writeln!(out, "{line}")
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
            (SlotSnapshot::Torn, true) => {
                let line = json::Object::new()
                    .u64("slot", index)
                    .bool("torn", true)
                    .finish();
                writeln!(out, "{line}")
            }
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
                let line = json::Object::new()
                    .u64("slot", index)
                    .u64("version", version)
                    .raw("values", json_values(&values))
                    .finish();
                writeln!(out, "{line}")
            }
        }
    }
}

fn journal(
    file: &StoreFile,
    options: &Tail,
    printer: &Printer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if file.header().segment {
        // A KeepLast writer recycles segments in place: their records are read with a
        // validating follower, not viewed as bytes.
        return Err(Failure::Store {
            path: file.path().into(),
            error: roda_store::RodaError::LayoutMismatch {
                field: "segment",
                expected: 0,
                found: 1,
            },
        });
    }
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
        std::thread::sleep(POLL);
    }
}

fn slots(
    file: &StoreFile,
    options: &Tail,
    printer: &Printer,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let capacity = file.header().capacity;
    let first = options.from.unwrap_or(0).min(capacity);
    // The sequence word each slot had when last printed: a slot is printed again when
    // its word changes.
    let mut seen = vec![0u64; (capacity - first) as usize];
    let mut bytes = Vec::new();
    loop {
        let mut printed = false;
        for (index, last) in (first..capacity).zip(seen.iter_mut()) {
            let seq = file.slot_sequence(index).unwrap_or(0);
            if seq == *last {
                continue;
            }
            let snapshot = file
                .read_slot(index, &mut bytes)
                .unwrap_or(SlotSnapshot::Empty);
            // Remember the word the snapshot came from (it may be newer than `seq`).
            *last = match snapshot {
                SlotSnapshot::Value { version } => version * 2,
                _ => file.slot_sequence(index).unwrap_or(0),
            };
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

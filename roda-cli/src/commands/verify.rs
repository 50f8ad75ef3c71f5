//! `roda verify FILE`: scans a whole store file and reports the first problem.
//!
//! Checked, in order:
//! 1. the header: every check of a typed open except the record type (magic, format
//!    version, byte order, kind, record size, alignment and stride consistent with each
//!    other, data offset, capacity) and the file's length against the header;
//! 2. a journal's write sequence: at most the capacity;
//! 3. a slot store's slots: no sequence word flagged torn (bit 63) or left odd by a
//!    writer that is gone (an odd slot of a live writer is a `set` under way: verify
//!    waits for it, as a reader does).
//!
//! Not checked: the contents of journal records. Format version 1 stores no checksum,
//! so a record's bytes cannot be told right from wrong; records below the write sequence
//! are complete by the publish protocol (the writer publishes only written records).
//!
//! Exit status 0 when sound, 1 at the first problem (reported on stdout), 2 when the
//! file cannot be read at all (missing, no permission: an I/O error, not a verdict).

use std::io::Write;

use roda_store::{RodaError, SlotSnapshot, StoreFile, StoreKind};

use super::kind_name;
use crate::args::Common;
use crate::{human, json, Failure};

/// Verifies one file.
pub fn run(common: &Common, out: &mut dyn Write) -> Result<(), Failure> {
    let file = match StoreFile::open(&common.path) {
        Ok(file) => file,
        // Could not read it: no verdict on its contents.
        Err(error @ RodaError::Io { .. }) => {
            return Err(Failure::Store {
                path: common.path.clone(),
                error,
            })
        }
        Err(error) => return report(common, out, None, Err(error.to_string())),
    };
    let verdict = check(&file);
    report(common, out, Some(&file), verdict)
}

/// The first problem of `file`, or a summary of what was checked.
fn check(file: &StoreFile) -> Result<String, String> {
    let h = file.header();
    match h.kind {
        StoreKind::Journal => {
            let seq = file.write_sequence();
            if seq > h.capacity {
                return Err(format!(
                    "write sequence {seq} exceeds the capacity {}: the header is damaged",
                    h.capacity
                ));
            }
            Ok(format!(
                "{} of {} records published (record contents carry no checksum in format \
                 version 1 and are not checked)",
                human::count(seq),
                human::count(h.capacity)
            ))
        }
        StoreKind::Slots => {
            let mut bytes = Vec::new();
            let mut set = 0;
            for index in 0..h.capacity {
                let seq = file.slot_sequence(index).unwrap_or(0);
                // Odd or flagged: read it as a reader would, which waits for a live
                // writer's set to finish and reports a dead writer's as torn.
                let snapshot = if seq & ((1 << 63) | 1) != 0 {
                    file.read_slot(index, &mut bytes)
                        .unwrap_or(SlotSnapshot::Empty)
                } else if seq == 0 {
                    SlotSnapshot::Empty
                } else {
                    SlotSnapshot::Value { version: seq / 2 }
                };
                match snapshot {
                    SlotSnapshot::Torn => {
                        return Err(format!(
                            "slot {index} is torn: its writer died in the middle of setting \
                             it (sequence word {seq:#x}); the next writer lists it in \
                             torn_slots() and a set repairs it"
                        ))
                    }
                    SlotSnapshot::Value { .. } => set += 1,
                    SlotSnapshot::Empty => {}
                }
            }
            Ok(format!(
                "{} of {} slots set, none torn",
                human::count(set),
                human::count(h.capacity)
            ))
        }
    }
}

fn report(
    common: &Common,
    out: &mut dyn Write,
    file: Option<&StoreFile>,
    verdict: Result<String, String>,
) -> Result<(), Failure> {
    let path = common.path.to_string_lossy();
    if common.json {
        let mut o = json::Object::new()
            .str("path", &path)
            .bool("ok", verdict.is_ok());
        if let Some(file) = file {
            o = o.str("kind", kind_name(file.header().kind));
        }
        o = match &verdict {
            Ok(summary) => o.str("summary", summary),
            Err(problem) => o.str("problem", problem),
        };
        writeln!(out, "{}", o.finish())?;
    } else {
        match (&verdict, file) {
            (Ok(summary), Some(file)) => writeln!(
                out,
                "{path}: ok: {}, header valid, file length {} bytes as the header requires; {summary}",
                kind_name(file.header().kind),
                human::count(file.file_len())
            )?,
            (Ok(summary), None) => writeln!(out, "{path}: ok: {summary}")?,
            (Err(problem), _) => writeln!(out, "{path}: PROBLEM: {problem}")?,
        }
    }
    match verdict {
        Ok(_) => Ok(()),
        Err(_) => Err(Failure::Problem),
    }
}

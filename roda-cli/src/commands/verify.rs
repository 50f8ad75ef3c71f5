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
//! `roda verify DIR` checks a segmented journal's directory: every segment file as
//! above plus its segment header (a journal segment, the same record size, segment size
//! and retention as the others, a first sequence that is a multiple of the segment size
//! and matches the file's name), at most k files for `KeepLast(k)`, and that the
//! segments holding records form an unbroken run of sequences, every one but the newest
//! full. A live writer may roll while the files are read: a problem found then is
//! checked again before it is reported.
//!
//! Exit status 0 when sound, 1 at the first problem (reported on stdout), 2 when the
//! file cannot be read at all (missing, no permission: an I/O error, not a verdict).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use roda_store::{RodaError, SlotSnapshot, StoreFile, StoreKind};

use serde::Serialize;

use super::segdir::{list, no_segments, retention_name};
use super::{json_line, kind_name};
use crate::cli::Common;
use crate::{human, Failure};

/// The verdict in JSON: `summary` when sound, `problem` when not.
#[derive(Serialize)]
struct VerdictJson<'a> {
    path: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
}

impl<'a> VerdictJson<'a> {
    fn new(path: &'a str, kind: Option<&'static str>, verdict: &'a Result<String, String>) -> Self {
        VerdictJson {
            path,
            ok: verdict.is_ok(),
            kind,
            summary: verdict.as_ref().ok().map(String::as_str),
            problem: verdict.as_ref().err().map(String::as_str),
        }
    }
}

/// Verifies one file.
pub fn run(common: &Common, out: &mut dyn Write) -> Result<(), Failure> {
    if common.path.is_dir() {
        return run_dir(common, out);
    }
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
        let kind = file.map(|file| kind_name(file.header().kind));
        json_line(out, &VerdictJson::new(&path, kind, &verdict))?;
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

/// Sequences of a segmented journal stay below 2^63 (docs/file-format.md).
const SEQUENCE_LIMIT: u64 = 1 << 63;

/// Checks of a directory made while its writer may be rolling.
const DIR_ATTEMPTS: usize = 20;

/// Verifies a segmented journal's directory.
fn run_dir(common: &Common, out: &mut dyn Write) -> Result<(), Failure> {
    let mut attempt = 1;
    let verdict = loop {
        let (verdict, writer_alive) = check_dir(&common.path)?;
        if verdict.is_ok() || !writer_alive || attempt == DIR_ATTEMPTS {
            break verdict;
        }
        // The writer may have rolled while the headers were read: look again.
        attempt += 1;
        std::thread::sleep(Duration::from_millis(10));
    };
    let path = common.path.to_string_lossy();
    if common.json {
        json_line(
            out,
            &VerdictJson::new(&path, Some("segmented journal"), &verdict),
        )?;
    } else {
        match &verdict {
            Ok(summary) => writeln!(out, "{path}: ok: segmented journal, {summary}")?,
            Err(problem) => writeln!(out, "{path}: PROBLEM: {problem}")?,
        }
    }
    match verdict {
        Ok(_) => Ok(()),
        Err(_) => Err(Failure::Problem),
    }
}

/// The first problem of the directory `dir`, or a summary; and whether a writer runs.
/// `Err` only when the directory or a file cannot be read at all.
fn check_dir(dir: &Path) -> Result<(Result<String, String>, bool), Failure> {
    let listed = list(dir)?;
    let mut files = Vec::with_capacity(listed.len());
    for l in &listed {
        let name = l.path.file_name().unwrap_or_default().to_string_lossy();
        match StoreFile::open(&l.path) {
            Ok(file) => files.push((l.name, name.into_owned(), file)),
            // Renamed away since the listing (a recycle): the next attempt sees it.
            Err(RodaError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    Err(format!("segment file {name} disappeared while it was read")),
                    true,
                ))
            }
            Err(error @ RodaError::Io { .. }) => {
                return Err(Failure::Store {
                    path: l.path.clone(),
                    error,
                })
            }
            Err(error) => return Ok((Err(format!("segment file {name}: {error}")), false)),
        }
    }
    let Some((_, _, first_file)) = files.first() else {
        return Err(no_segments(dir));
    };
    let writer_alive = files.iter().any(|(_, _, f)| f.writer_alive());
    let h0 = first_file.header();
    let s = h0.capacity;
    let verdict = (|| {
        let mut held = Vec::new();
        for (name_seq, name, file) in &files {
            let h = file.header();
            if h.kind != StoreKind::Journal || !h.segment {
                return Err(format!(
                    "segment file {name} is a {} file, not a segment of a segmented \
                     journal; move it out of the directory",
                    kind_name(h.kind)
                ));
            }
            let shape = |h: &roda_store::HeaderInfo| {
                (
                    h.record_size,
                    h.record_align,
                    h.schema,
                    h.capacity,
                    h.retention,
                )
            };
            if shape(&h) != shape(&h0) {
                return Err(format!(
                    "segment file {name} holds {} records of {} bytes (schema {}, {}) but \
                     {} holds {} records of {} bytes (schema {}, {}): it does not belong \
                     to this journal; move it out of the directory",
                    h.capacity,
                    h.record_size,
                    h.schema,
                    retention_name(h.retention),
                    files[0].1,
                    h0.capacity,
                    h0.record_size,
                    h0.schema,
                    retention_name(h0.retention)
                ));
            }
            let written = file.write_sequence();
            if written > s {
                return Err(format!(
                    "segment file {name}: write sequence {written} exceeds the segment \
                     size {s}: the header is damaged"
                ));
            }
            let Some(first) = file.first_sequence() else {
                continue; // a spare, or a recycle cut short: holds nothing
            };
            if first >= SEQUENCE_LIMIT {
                return Err(format!(
                    "segment file {name}: first sequence {first} is beyond 2^63, where no \
                     segment can start: the header is damaged"
                ));
            }
            if first % s != 0 {
                return Err(format!(
                    "segment file {name}: first sequence {first} is not a multiple of \
                     the segment size {s}: the header is damaged"
                ));
            }
            if first != *name_seq {
                return Err(format!(
                    "segment file {name} holds segment {first} but is named for \
                     {name_seq}: followers look segments up by name; rename it {first:020}.roda"
                ));
            }
            held.push((first, written, name.clone()));
        }
        if h0.retention > 0 && files.len() as u64 > h0.retention {
            return Err(format!(
                "{} segment files for {}: the writer refuses to open the directory; \
                 move away the files that do not belong to this journal",
                files.len(),
                retention_name(h0.retention)
            ));
        }
        held.sort_unstable();
        for pair in held.windows(2) {
            let ((a, written, a_name), (b, _, b_name)) = (&pair[0], &pair[1]);
            if a == b {
                return Err(format!(
                    "segment files {a_name} and {b_name} both hold segment {a}: \
                     move away the one that does not belong to this journal"
                ));
            }
            if b - a != s {
                return Err(format!(
                    "records {}..{b} are missing between segment files {a_name} and \
                     {b_name}: the retained segments do not form an unbroken run (a \
                     segment file was deleted or lost); readers skip the gap",
                    a + s
                ));
            }
            if *written != s {
                return Err(format!(
                    "segment file {a_name} holds {written} of {s} records but a newer \
                     segment exists: the header is damaged"
                ));
            }
        }
        let range = match (held.first(), held.last()) {
            (Some((oldest, _, _)), Some((newest, n, _))) => format!(
                "records {}..{} retained in an unbroken run of {} segments",
                human::count(*oldest),
                human::count(newest + n),
                held.len()
            ),
            _ => "no records retained".to_owned(),
        };
        Ok(format!(
            "{}, {} segment files of {} records ({} bytes each), every header valid; \
             {range} (record contents carry no checksum in format version 1 and are not \
             checked)",
            retention_name(h0.retention),
            files.len(),
            human::count(s),
            h0.record_size
        ))
    })();
    Ok((verdict, writer_alive))
}

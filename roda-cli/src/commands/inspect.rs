//! `roda inspect FILE`: the header fields, how full the store is, who writes it; for a
//! segment of a segmented journal also its first sequence and retention.
//! `roda inspect DIR` summarises a segmented journal's directory, one line per segment.

use std::io::Write;
use std::path::Path;

use roda_store::{StoreFile, StoreKind};

use serde::Serialize;

use super::segdir::{parse_name, retention_name};
use super::{json_line, kind_name, open, slot_census};
use crate::cli::Common;
use crate::{human, Failure};

/// `roda inspect --json DIR`.
#[derive(Serialize)]
struct DirJson<'a> {
    path: &'a str,
    kind: &'static str,
    segment_files: u64,
    segment_records: u64,
    record_size: u64,
    schema: u64,
    retention: String,
    /// `null` when no segment holds records.
    oldest: Option<u64>,
    published: u64,
    writer_alive: bool,
}

/// `roda inspect --json FILE`.
#[derive(Serialize)]
struct FileJson<'a> {
    path: &'a str,
    kind: &'static str,
    version: u64,
    record_size: u64,
    record_align: u64,
    stride: u64,
    capacity: u64,
    schema: u64,
    length: u64,
    fill: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    torn_slots: Option<u64>,
    created_unix_nanos: u64,
    created: String,
    writer_pid: u64,
    writer_alive: bool,
    data_offset: u64,
    file_len: u64,
    #[serde(flatten)]
    segment: Option<SegmentJson>,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// The fields only a segment of a segmented journal has.
#[derive(Serialize)]
struct SegmentJson {
    segment: bool,
    /// `null` while the segment holds no records.
    first_sequence: Option<u64>,
    retention: String,
}

/// Whether `name` is a segment file name: `{20 digits}.roda`.
fn is_segment_name(name: &str) -> bool {
    parse_name(name.as_ref()).is_some()
}

/// Summarises the segmented journal in directory `dir`.
fn run_dir(dir: &Path, json_out: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let store_err = |error| Failure::Store {
        path: dir.into(),
        error,
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| store_err(roda_store::RodaError::io(dir, e)))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_segment_name(n))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(store_err(roda_store::RodaError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no segment files ({20 digits}.roda): not a segmented journal directory",
            ),
        )));
    }
    let mut segments = Vec::new();
    for name in &names {
        let file = open(&dir.join(name))?;
        segments.push((name.clone(), file));
    }
    let held: Vec<&(String, StoreFile)> = segments
        .iter()
        .filter(|(_, f)| f.first_sequence().is_some())
        .collect();
    let oldest = held.iter().filter_map(|(_, f)| f.first_sequence()).min();
    let end = held
        .iter()
        // Saturating: a damaged header may say any first sequence.
        .filter_map(|(_, f)| Some(f.first_sequence()?.saturating_add(f.published())))
        .max();
    let h = segments[0].1.header();
    let writer = segments
        .iter()
        .map(|(_, f)| (f.writer_pid(), f.writer_alive()))
        .find(|(pid, _)| *pid != 0);
    if json_out {
        let (oldest, published) = match (oldest, end) {
            (Some(oldest), Some(end)) => (Some(oldest), end),
            _ => (None, 0),
        };
        json_line(
            out,
            &DirJson {
                path: &dir.to_string_lossy(),
                kind: "segmented journal",
                segment_files: segments.len() as u64,
                segment_records: h.capacity,
                record_size: h.record_size,
                schema: h.schema,
                retention: retention_name(h.retention),
                oldest,
                published,
                writer_alive: writer.is_some_and(|(_, alive)| alive),
            },
        )?;
        return Ok(());
    }
    writeln!(out, "{:<10} {}", "directory", dir.display())?;
    writeln!(
        out,
        "{:<10} segmented journal, {}, {} segment files of {} records ({} bytes each)",
        "kind",
        retention_name(h.retention),
        segments.len(),
        human::count(h.capacity),
        h.record_size
    )?;
    let range = match (oldest, end) {
        (Some(oldest), Some(end)) => format!(
            "records {}..{} retained ({} records)",
            human::count(oldest),
            human::count(end),
            human::count(end - oldest)
        ),
        _ => "no records".into(),
    };
    writeln!(out, "{:<10} {range}", "records")?;
    let writer = match writer {
        None => "none (closed cleanly)".to_owned(),
        Some((pid, true)) => format!("pid {pid} (running)"),
        Some((pid, false)) => format!("pid {pid} (not running)"),
    };
    writeln!(out, "{:<10} {writer}", "writer")?;
    for (name, file) in &segments {
        let state = match file.first_sequence() {
            Some(first) => format!(
                "first {}, {} records",
                human::count(first),
                human::count(file.published())
            ),
            None => "no records (spare, or being recycled)".into(),
        };
        writeln!(out, "  {name}  {state}")?;
    }
    Ok(())
}

/// Prints the header and state of one store file.
pub fn run(common: &Common, out: &mut dyn Write) -> Result<(), Failure> {
    if common.path.is_dir() {
        return run_dir(&common.path, common.json, out);
    }
    let file = open(&common.path)?;
    let h = file.header();
    let pid = file.writer_pid();
    let alive = file.writer_alive();
    let (length, torn) = match h.kind {
        StoreKind::Journal => (file.published(), None),
        StoreKind::Slots => {
            let census = slot_census(&file);
            (census.set, Some(census.torn))
        }
    };
    let write_sequence = file.write_sequence();
    // `StoreFile::open` validated the header; a journal's write sequence is the one
    // live field it does not check (a follower clamps it).
    let problem = (h.kind == StoreKind::Journal && write_sequence > h.capacity).then(|| {
        format!(
            "write sequence {write_sequence} exceeds the capacity {}",
            h.capacity
        )
    });

    if common.json {
        json_line(
            out,
            &FileJson {
                path: &common.path.to_string_lossy(),
                kind: kind_name(h.kind),
                version: u64::from(h.version),
                record_size: h.record_size,
                record_align: h.record_align,
                stride: h.stride,
                capacity: h.capacity,
                schema: h.schema,
                length,
                fill: human::fraction(length, h.capacity),
                torn_slots: torn,
                created_unix_nanos: h.created_unix_nanos,
                created: human::utc(h.created_unix_nanos),
                writer_pid: u64::from(pid),
                writer_alive: alive,
                data_offset: h.data_offset,
                file_len: file.file_len(),
                segment: h.segment.then(|| SegmentJson {
                    segment: true,
                    first_sequence: file.first_sequence(),
                    retention: retention_name(h.retention),
                }),
                valid: problem.is_none(),
                problem,
            },
        )?;
        return Ok(());
    }

    let unit = match h.kind {
        StoreKind::Journal => "records",
        StoreKind::Slots => "slots",
    };
    let writer = match (pid, alive) {
        (0, _) => "none (closed cleanly)".to_owned(),
        (pid, true) => format!("pid {pid} (running)"),
        (pid, false) => format!("pid {pid} (not running: it stopped without closing the file)"),
    };
    let length_line = match (h.kind, torn) {
        (StoreKind::Slots, Some(torn)) if torn > 0 => format!(
            "{} slots set ({} full), {torn} torn",
            human::count(length),
            human::percent(length, h.capacity)
        ),
        (StoreKind::Slots, _) => format!(
            "{} slots set ({} full)",
            human::count(length),
            human::percent(length, h.capacity)
        ),
        (StoreKind::Journal, _) => format!(
            "{} records ({} full)",
            human::count(length),
            human::percent(length, h.capacity)
        ),
    };
    let rows = [
        ("file", common.path.display().to_string()),
        (
            "kind",
            format!("{} (format version {})", kind_name(h.kind), h.version),
        ),
        (
            "record",
            format!(
                "{} bytes, align {}, stride {}",
                h.record_size, h.record_align, h.stride
            ),
        ),
        ("capacity", format!("{} {unit}", human::count(h.capacity))),
        ("schema", h.schema.to_string()),
        ("length", length_line),
        (
            "segment",
            match (h.segment, file.first_sequence()) {
                (false, _) => "no (a plain store)".to_owned(),
                (true, Some(first)) => format!(
                    "first sequence {first} (records {first}..{}), retention {}",
                    first.saturating_add(length),
                    retention_name(h.retention)
                ),
                (true, None) => format!(
                    "holds no records (a spare, or being recycled), retention {}",
                    retention_name(h.retention)
                ),
            },
        ),
        ("created", human::utc(h.created_unix_nanos)),
        ("writer", writer),
        (
            "file size",
            format!(
                "{} ({} bytes, data at {})",
                human::bytes(file.file_len()),
                human::count(file.file_len()),
                h.data_offset
            ),
        ),
        (
            "header",
            match &problem {
                None => "valid".to_owned(),
                Some(problem) => format!("INVALID: {problem}"),
            },
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<10} {value}")?;
    }
    Ok(())
}

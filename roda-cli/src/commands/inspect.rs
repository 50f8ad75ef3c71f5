//! `roda inspect FILE`: the header fields, how full the store is, who writes it.

use std::io::Write;

use roda_store::StoreKind;

use super::{kind_name, open, slot_census};
use crate::args::Common;
use crate::{human, json, Failure};

/// Prints the header and state of one store file.
pub fn run(common: &Common, out: &mut dyn Write) -> Result<(), Failure> {
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
        let mut o = json::Object::new()
            .str("path", &common.path.to_string_lossy())
            .str("kind", kind_name(h.kind))
            .u64("version", u64::from(h.version))
            .u64("record_size", h.record_size)
            .u64("record_align", h.record_align)
            .u64("stride", h.stride)
            .u64("capacity", h.capacity)
            .u64("schema", h.schema)
            .u64("length", length)
            .f64("fill", human::fraction(length, h.capacity));
        if let Some(torn) = torn {
            o = o.u64("torn_slots", torn);
        }
        o = o
            .u64("created_unix_nanos", h.created_unix_nanos)
            .str("created", &human::utc(h.created_unix_nanos))
            .u64("writer_pid", u64::from(pid))
            .bool("writer_alive", alive)
            .u64("data_offset", h.data_offset)
            .u64("file_len", file.file_len())
            .bool("valid", problem.is_none());
        if let Some(problem) = &problem {
            o = o.str("problem", problem);
        }
        writeln!(out, "{}", o.finish())?;
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

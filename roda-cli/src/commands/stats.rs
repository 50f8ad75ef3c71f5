//! `roda stats FILE [--interval 1s] [--count N]`: how fast a store is being written,
//! how full it is and, for a journal, when it will be full at the current rate.
//!
//! Samples the store every interval and prints one line per interval (a table with a
//! header for people, one JSON object per line with `--json`): a steady, low-volume
//! stream whether the output is a terminal or a pipe. Runs until interrupted unless
//! `--count` bounds it.
//!
//! `roda stats DIR` samples a segmented journal's directory instead: the records it
//! retains (oldest and newest sequence), the append rate, its segment files and whether
//! its writer runs. A segmented journal never fills up: it recycles or archives.

use std::io::Write;
use std::time::Instant;

use roda_store::{StoreFile, StoreKind};

use serde::Serialize;

use super::segdir::{retention_name, Retained, SegmentDir};
use super::{json_line, open, slot_census};
use crate::cli::{Common, StatsOptions};
use crate::{human, Failure};

/// One sample of a journal in JSON.
#[derive(Serialize)]
struct JournalJson {
    time_unix_nanos: u64,
    records: u64,
    appends_per_sec: f64,
    fill: f64,
    /// `null` when it never fills (no appends right now).
    seconds_to_full: Option<f64>,
}

/// One sample of a slot store in JSON.
#[derive(Serialize)]
struct SlotsJson {
    time_unix_nanos: u64,
    slots_set: u64,
    sets_per_sec: f64,
    fill: f64,
    /// Always `null`: a slot store never fills up.
    seconds_to_full: Option<f64>,
}

/// One sample of a segmented journal's directory in JSON.
#[derive(Serialize)]
struct DirJson {
    time_unix_nanos: u64,
    oldest: Option<u64>,
    newest: Option<u64>,
    published: u64,
    retained: u64,
    appends_per_sec: f64,
    segment_files: u64,
    segment_records: u64,
    retention: String,
    writer_pid: u64,
    writer_alive: bool,
}

/// One observation of the store.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    /// Journal: records published. Slots: completed sets over all slots.
    written: u64,
    /// Journal: records published. Slots: slots set at least once.
    used: u64,
}

fn sample(file: &StoreFile) -> Sample {
    let at = Instant::now();
    match file.header().kind {
        StoreKind::Journal => {
            let published = file.published();
            Sample {
                at,
                written: published,
                used: published,
            }
        }
        StoreKind::Slots => {
            let census = slot_census(file);
            Sample {
                at,
                written: census.sets,
                used: census.set,
            }
        }
    }
}

/// Prints one line per interval.
pub fn run(common: &Common, options: &StatsOptions, out: &mut dyn Write) -> Result<(), Failure> {
    if common.path.is_dir() {
        return run_dir(common, options, out);
    }
    let file = open(&common.path)?;
    let h = file.header();
    let journal = h.kind == StoreKind::Journal;
    if !common.json {
        writeln!(
            out,
            "{:<8}  {:>14}  {:>12}  {:>7}  {:>12}",
            "time",
            if journal { "records" } else { "slots set" },
            if journal { "appends/s" } else { "sets/s" },
            "fill",
            "full in"
        )?;
        out.flush()?;
    }
    let mut previous = sample(&file);
    let mut printed = 0;
    while options.count.is_none_or(|count| printed < count) {
        std::thread::sleep(options.interval);
        let now = sample(&file);
        let seconds = now.at.duration_since(previous.at).as_secs_f64();
        let rate = now.written.saturating_sub(previous.written) as f64 / seconds;
        // Slot stores never fill up; a journal fills at the current rate, if any.
        let remaining = h.capacity.saturating_sub(now.used);
        let full_in = match (journal, remaining) {
            (false, _) => None,
            (true, 0) => Some(0.0),
            (true, _) if rate > 0.0 => Some(remaining as f64 / rate),
            (true, _) => Some(f64::INFINITY),
        };
        let clock = human::now_unix_nanos();
        if common.json {
            let fill = human::fraction(now.used, h.capacity);
            // `null` when it never fills (slot stores, or no appends right now).
            let seconds_to_full = full_in.filter(|s| s.is_finite());
            if journal {
                json_line(
                    out,
                    &JournalJson {
                        time_unix_nanos: clock,
                        records: now.used,
                        appends_per_sec: rate,
                        fill,
                        seconds_to_full,
                    },
                )?;
            } else {
                json_line(
                    out,
                    &SlotsJson {
                        time_unix_nanos: clock,
                        slots_set: now.used,
                        sets_per_sec: rate,
                        fill,
                        seconds_to_full,
                    },
                )?;
            }
        } else {
            let full_in = match full_in {
                None => "-".to_owned(),
                Some(0.0) => "full".to_owned(),
                Some(s) => human::duration(s),
            };
            writeln!(
                out,
                "{:<8}  {:>14}  {:>12}  {:>7}  {:>12}",
                human::time_of_day(clock),
                human::count(now.used),
                human::count(rate.round() as u64),
                human::percent(now.used, h.capacity),
                full_in
            )?;
        }
        out.flush()?;
        previous = now;
        printed += 1;
    }
    Ok(())
}

/// One observation of a segmented journal's directory.
struct DirSample {
    at: Instant,
    retained: Retained,
    files: usize,
    writer: Option<(u32, bool)>,
}

fn dir_sample(dir: &mut SegmentDir) -> Result<DirSample, Failure> {
    dir.refresh()?;
    Ok(DirSample {
        at: Instant::now(),
        retained: dir.retained(),
        files: dir.files(),
        writer: dir.writer(),
    })
}

/// Prints one line per interval about the segmented journal in the directory.
fn run_dir(common: &Common, options: &StatsOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let mut dir = SegmentDir::open(&common.path)?;
    let retention = retention_name(dir.retention);
    if !common.json {
        writeln!(
            out,
            "{}: segmented journal, {retention}, segments of {} records of {} bytes",
            common.path.display(),
            human::count(dir.segment_records),
            dir.record_size
        )?;
        writeln!(
            out,
            "{:<8}  {:>14}  {:>14}  {:>14}  {:>12}  {:>5}  writer",
            "time", "oldest", "newest", "retained", "appends/s", "files"
        )?;
        out.flush()?;
    }
    let mut previous = dir_sample(&mut dir)?;
    let mut printed = 0;
    while options.count.is_none_or(|count| printed < count) {
        std::thread::sleep(options.interval);
        let now = dir_sample(&mut dir)?;
        let seconds = now.at.duration_since(previous.at).as_secs_f64();
        let rate = now.retained.end.saturating_sub(previous.retained.end) as f64 / seconds;
        let r = now.retained;
        // The oldest and newest record retained, if any.
        let range = r
            .oldest
            .filter(|&oldest| oldest < r.end)
            .map(|o| (o, r.end - 1));
        let retained = r.records;
        let clock = human::now_unix_nanos();
        if common.json {
            json_line(
                out,
                &DirJson {
                    time_unix_nanos: clock,
                    oldest: range.map(|r| r.0),
                    newest: range.map(|r| r.1),
                    published: r.end,
                    retained,
                    appends_per_sec: rate,
                    segment_files: now.files as u64,
                    segment_records: dir.segment_records,
                    retention: retention.clone(),
                    writer_pid: now.writer.map_or(0, |(pid, _)| u64::from(pid)),
                    writer_alive: now.writer.is_some_and(|(_, alive)| alive),
                },
            )?;
        } else {
            let seq = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), human::count);
            let writer = match now.writer {
                None => "none".to_owned(),
                Some((pid, true)) => format!("pid {pid} (running)"),
                Some((pid, false)) => format!("pid {pid} (not running)"),
            };
            writeln!(
                out,
                "{:<8}  {:>14}  {:>14}  {:>14}  {:>12}  {:>5}  {writer}",
                human::time_of_day(clock),
                seq(range.map(|r| r.0)),
                seq(range.map(|r| r.1)),
                human::count(retained),
                human::count(rate.round() as u64),
                now.files,
            )?;
        }
        out.flush()?;
        previous = now;
        printed += 1;
    }
    Ok(())
}

//! `roda stats FILE [--interval 1s] [--count N]`: how fast a store is being written,
//! how full it is and, for a journal, when it will be full at the current rate.
//!
//! Samples the store every interval and prints one line per interval (a table with a
//! header for people, one JSON object per line with `--json`): a steady, low-volume
//! stream whether the output is a terminal or a pipe. Runs until interrupted unless
//! `--count` bounds it.

use std::io::Write;
use std::time::Instant;

use roda_store::{StoreFile, StoreKind};

use super::{open, slot_census};
use crate::args::{Common, Stats};
use crate::{human, json, Failure};

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
pub fn run(common: &Common, options: &Stats, out: &mut dyn Write) -> Result<(), Failure> {
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
    while options.count.map_or(true, |count| printed < count) {
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
            let line = json::Object::new()
                .u64("time_unix_nanos", clock)
                .u64(if journal { "records" } else { "slots_set" }, now.used)
                .f64(
                    if journal {
                        "appends_per_sec"
                    } else {
                        "sets_per_sec"
                    },
                    rate,
                )
                .f64("fill", human::fraction(now.used, h.capacity))
                // `null` when it never fills (slot stores, or no appends right now).
                .opt_f64("seconds_to_full", full_in.filter(|s| s.is_finite()))
                .finish();
            writeln!(out, "{line}")?;
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

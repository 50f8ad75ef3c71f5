//! `roda-bench`: Roda's workloads against the original implementation and peer queues.
//!
//! ```text
//! cargo run --release -p roda-bench -- <workload> [--events N] [--runs K] [--rounds N] [--secs S]
//!   sensor | service-health   pipelines, Roda (plain and bounded journals) vs the original
//!                             (roda-state 0.1), to true completion
//!   spsc                      one producer, one consumer, 24-byte records, Roda vs peers
//!   hop                       one-way latency by ping-pong, p50/p99/p99.9
//!   append                    append latency percentiles, max and minor faults per journal
//!                             kind and option, files on disk and on tmpfs
//!   slots                     SlotStore: one writer over 10,000 slots, one sampling reader
//!   bridge                    roda-bridge export/import vs bare async-nats on a local
//!                             nats-server -js (skipped, saying why, without one)
//!   report                    all of the above at report size; writes docs/benchmarks.md and .svg
//! ```
//! Each workload ends with `RESULT <workload> <impl> <metric>=<value> ...` lines.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod append;
mod bridge;
mod hop;
mod measure;
mod pipelines;
mod report;
mod ring;
mod slots;
mod spsc;

use std::time::Duration;

use measure::{measure, median_run, stats, Run};
use pipelines::Workload;

/// Command-line settings.
#[derive(Clone, Debug)]
pub struct Args {
    pub workload: String,
    pub events: Option<u64>,
    pub runs: usize,
    pub rounds: Option<u64>,
    pub secs: Option<f64>,
    pub only: Option<String>,
    pub out: String,
}

fn usage(problem: &str) -> ! {
    eprintln!("roda-bench: {problem}");
    eprintln!(
        "usage: roda-bench <sensor|service-health|spsc|hop|append|slots|bridge|report> [--events N] [--runs K] \
         [--rounds N] [--secs S] [--impl NAME] [--out DIR]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let workload = it.next().unwrap_or_else(|| usage("which workload?"));
    let mut args = Args {
        workload,
        events: None,
        runs: 3,
        rounds: None,
        secs: None,
        only: None,
        out: "docs".into(),
    };
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let num = |v: String| -> u64 {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {v}")))
        };
        match flag.as_str() {
            "--events" => args.events = Some(num(value())),
            "--runs" => args.runs = num(value()).max(1) as usize,
            "--rounds" => args.rounds = Some(num(value())),
            "--secs" => {
                let v = value();
                args.secs = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage(&format!("not a number: {v}"))),
                )
            }
            "--impl" => args.only = Some(value()),
            "--out" => args.out = value(),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    args
}

/// All runs of one implementation of one workload.
#[derive(Clone, Debug)]
pub struct Series {
    pub workload: String,
    pub implementation: String,
    pub runs: Vec<Run>,
    /// The unrecorded first run in the process, where there is one (pipelines): the
    /// cold cost, first touch of memory included.
    pub first: Option<Run>,
}

impl Series {
    pub fn median_rate(&self) -> f64 {
        stats(self.runs.iter().map(Run::per_sec)).median
    }

    fn print(&self, unit: &str) {
        let s = stats(self.runs.iter().map(Run::per_sec));
        let m = median_run(&self.runs);
        println!(
            "  {:<20} median {:>9.2} M {unit}/s  (min {:.2}, max {:.2})  minflt {}  majflt {}  peak RSS {:.0} MB (+{:.0} MB over the start)",
            self.implementation,
            s.median / 1e6,
            s.min / 1e6,
            s.max / 1e6,
            m.minflt,
            m.majflt,
            m.peak_rss as f64 / 1e6,
            m.rss_growth() as f64 / 1e6
        );
        println!(
            "RESULT {} {} {unit}_per_s={:.0} min={:.0} max={:.0} minflt={} majflt={} peak_rss_bytes={} rss_growth_bytes={} runs={}",
            self.workload,
            self.implementation,
            s.median,
            s.min,
            s.max,
            m.minflt,
            m.majflt,
            m.peak_rss,
            m.rss_growth(),
            self.runs.len()
        );
    }
}

pub fn pipeline(workload: Workload, events: u64, runs: usize, only: Option<&str>) -> Vec<Series> {
    println!(
        "{}: {events} events, {runs} runs; clock from engine creation until the last stage \
         has counted every item it must receive",
        workload.name()
    );
    let inputs = workload.inputs(events);
    let mut out = Vec::new();
    for (name, f) in [
        (
            "roda",
            pipelines::run_roda as fn(Workload, &[pipelines::Reading]) -> _,
        ),
        ("roda-bounded", pipelines::run_roda_bounded),
        ("original", pipelines::run_original),
    ] {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        // One unrecorded run first: the first touch of memory in a fresh VM or process
        // costs far more than any later one, and would penalise whichever runs first.
        let warm = measure(|| f(workload, &inputs));
        println!(
            "    {name} warm-up (not counted): {:.2} M events/s",
            warm.per_sec() / 1e6
        );
        let runs: Vec<Run> = (0..runs)
            .map(|i| {
                let r = measure(|| f(workload, &inputs));
                println!(
                    "    {name} run {}: {:.2} M events/s ({:.3} s)",
                    i + 1,
                    r.per_sec() / 1e6,
                    r.elapsed.as_secs_f64()
                );
                r
            })
            .collect();
        let series = Series {
            workload: workload.name().into(),
            implementation: name.into(),
            runs,
            first: Some(warm),
        };
        series.print("events");
        out.push(series);
    }
    out
}

/// Append latency and faults per journal kind, in each place files can live.
pub fn append_workload(events: u64, only: Option<&str>) -> Vec<append::AppendRun> {
    println!(
        "append: {events} timed appends of 24-byte records per journal, writer alone (timer included, ~20 ns); \
         rings after one untimed pass over the ring"
    );
    let mut out = Vec::new();
    for kind in append::Kind::ALL {
        if only.is_some_and(|o| o != kind.name()) {
            continue;
        }
        let places = append::places();
        let places = if !kind.uses_files() {
            &places[..1]
        } else {
            &places[..]
        };
        for (place, base) in places {
            let run = append::run(kind, base, place, events);
            run.print();
            out.push(run);
        }
    }
    out
}

pub fn spsc(n: u64, runs: usize, only: Option<&str>) -> Vec<Series> {
    println!("spsc: {n} messages of 24 bytes, {runs} runs; producer and consumer pinned to distinct cores");
    let mut out = Vec::new();
    for name in spsc::IMPLS {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let runs: Vec<Run> = (0..runs).map(|_| measure(|| spsc::run(name, n))).collect();
        let series = Series {
            workload: "spsc".into(),
            implementation: name.into(),
            runs,
            first: None,
        };
        series.print("msg");
        out.push(series);
    }
    out
}

/// Latency percentiles of one implementation (median over runs), nanoseconds.
#[derive(Clone, Debug)]
pub struct HopResult {
    pub implementation: String,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

pub fn hop(rounds: u64, runs: usize, only: Option<&str>) -> Vec<HopResult> {
    println!(
        "hop: {rounds} round trips, {runs} runs; one-way latency = round trip / 2, threads pinned"
    );
    let mut out = Vec::new();
    for name in hop::IMPLS {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let hists: Vec<_> = (0..runs).map(|_| hop::run(name, rounds)).collect();
        let q = |p: f64| stats(hists.iter().map(|h| h.value_at_quantile(p) as f64)).median;
        let r = HopResult {
            implementation: name.into(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
        };
        println!(
            "  {:<20} p50 {:>7.0} ns  p99 {:>7.0} ns  p99.9 {:>8.0} ns",
            name, r.p50, r.p99, r.p999
        );
        println!(
            "RESULT hop {name} p50_ns={:.0} p99_ns={:.0} p999_ns={:.0} runs={runs}",
            r.p50, r.p99, r.p999
        );
        out.push(r);
    }
    out
}

/// SlotStore figures (medians over runs).
#[derive(Clone, Debug)]
pub struct SlotsResult {
    pub reads_per_s: f64,
    pub writes_per_s: f64,
    pub retries_per_read: f64,
    pub torn: u64,
}

pub fn slots(secs: f64, runs: usize) -> SlotsResult {
    println!(
        "slots: {} slots, one writer, one sampling reader, {secs} s, {runs} runs",
        slots::SLOTS
    );
    let all: Vec<_> = (0..runs)
        .map(|_| slots::run(Duration::from_secs_f64(secs)))
        .collect();
    let r = SlotsResult {
        reads_per_s: stats(all.iter().map(|r| r.reads as f64 / r.elapsed.as_secs_f64())).median,
        writes_per_s: stats(
            all.iter()
                .map(|r| r.writes as f64 / r.elapsed.as_secs_f64()),
        )
        .median,
        retries_per_read: stats(all.iter().map(|r| r.retries as f64 / r.reads.max(1) as f64))
            .median,
        torn: all.iter().map(|r| r.torn).sum(),
    };
    println!(
        "  reads {:.1} M/s, writes {:.1} M/s, retries per read {:.6}, torn or wrong reads {}",
        r.reads_per_s / 1e6,
        r.writes_per_s / 1e6,
        r.retries_per_read,
        r.torn
    );
    println!(
        "RESULT slots roda reads_per_s={:.0} writes_per_s={:.0} retries_per_read={:.6} torn={} runs={runs}",
        r.reads_per_s, r.writes_per_s, r.retries_per_read, r.torn
    );
    assert_eq!(r.torn, 0, "a slot read was torn");
    r
}

fn main() {
    let args = parse();
    // Read the usable cores before any thread is pinned.
    measure::cores();
    println!("machine: {}", measure::machine());
    let only = args.only.as_deref();
    match args.workload.as_str() {
        "sensor" => {
            pipeline(
                Workload::Sensor,
                args.events.unwrap_or(100_000_000),
                args.runs,
                only,
            );
        }
        "service-health" => {
            pipeline(
                Workload::ServiceHealth,
                args.events.unwrap_or(100_000_000),
                args.runs,
                only,
            );
        }
        "spsc" => {
            spsc(args.events.unwrap_or(50_000_000), args.runs, only);
        }
        "hop" => {
            hop(args.rounds.unwrap_or(1_000_000), args.runs, only);
        }
        "slots" => {
            slots(args.secs.unwrap_or(2.0), args.runs);
        }
        "append" => {
            append_workload(args.events.unwrap_or(10_000_000), only);
        }
        "bridge" => {
            bridge::run(args.events.unwrap_or(10_000_000), args.runs);
        }
        "report" => report::run(&args),
        other => usage(&format!("unknown workload {other}")),
    }
}

#[cfg(test)]
mod tests {
    //! Every workload runs to completion at a tiny size and checks its own results
    //! (lost or reordered messages, wrong counts and torn slots fail the run).
    use super::*;
    use std::sync::Mutex;

    /// The workloads pin busy-spinning threads to the same two cores; run them one at a
    /// time so they never wait on each other's time slices.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn pipelines_complete_for_every_implementation() {
        let _one = serial();
        for w in [Workload::Sensor, Workload::ServiceHealth] {
            // More inputs than a bounded ring holds: its segments are recycled.
            let inputs = w.inputs(600_000);
            assert_eq!(pipelines::run_roda(w, &inputs).0, 600_000);
            assert_eq!(pipelines::run_roda_bounded(w, &inputs).0, 600_000);
            let inputs = w.inputs(20_000);
            assert_eq!(pipelines::run_original(w, &inputs).0, 20_000);
        }
    }

    #[test]
    fn every_spsc_implementation_delivers_everything() {
        let _one = serial();
        for name in spsc::IMPLS {
            assert_eq!(spsc::run(name, 50_000).0, 50_000, "{name}");
        }
    }

    #[test]
    fn every_hop_implementation_echoes_in_order() {
        let _one = serial();
        for name in hop::IMPLS {
            let h = hop::run(name, 1_000);
            assert_eq!(h.len(), 1_000, "{name}");
        }
    }

    #[test]
    fn slots_never_tear() {
        let _one = serial();
        let r = slots::run(Duration::from_millis(50));
        assert!(r.reads > 0 && r.writes > 0);
        assert_eq!(r.torn, 0);
    }

    #[test]
    fn stats_are_median_min_max() {
        let s = stats([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(stats([1.0, 2.0, 3.0, 4.0]).median, 2.5);
    }
}

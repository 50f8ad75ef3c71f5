//! `roda-bench`: Roda's workloads against the original implementation and peer queues.
//!
//! ```text
//! cargo run --release -p roda-bench -- <workload> [--events N] [--runs K] [--procs P] [--rounds N] [--secs S]
//!   sensor | service-health   pipelines, outputs received as they go: Roda (default and
//!                             bounded layouts) vs the original (roda-state 0.1), to true
//!                             completion
//!   sensor-drain | service-health-drain
//!                             pipelines, send every input and then receive every output:
//!                             Roda (default layout) vs the original; clock to the last receive
//!                             (pipelines: each implementation runs in P fresh child
//!                             processes, alternating; the headline is their first runs)
//!   spsc                      one producer, one consumer, 24-byte records, Roda vs peers
//!   hop                       one-way latency by ping-pong, p50/p99/p99.9
//!   append                    append latency percentiles, max and minor faults per journal
//!                             kind and option, files on disk and on tmpfs
//!   slots                     SlotStore: one writer over 10,000 slots, one sampling reader
//!   wake                      sparse traffic (gaps 1 ms, 200 µs, 50 µs) through a 2-stage
//!                             pipeline: latency send -> receive and idle CPU, Roda vs
//!                             blocking channels and the disruptor's sleeping strategy,
//!                             plus a cross-process wake row (--safety-ms sets Roda's
//!                             safety timeout, --events the events per gap)
//!   bridge                    roda-bridge export/import vs bare async-nats on a local
//!                             nats-server -js (skipped, saying why, without one)
//!   report                    all of the above at report size; writes docs/benchmarks.md and .svg
//! ```
//! Each workload ends with `RESULT <workload> <impl> <metric>=<value> ...` lines.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod append;
mod block_ring;
mod bridge;
mod hop;
mod measure;
mod pipelines;
mod report;
mod ring;
mod slots;
mod spsc;
mod wake;

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
    /// Fresh processes per pipeline implementation.
    pub procs: usize,
    /// This process is a child running one pipeline implementation.
    pub child: bool,
    pub only: Option<String>,
    pub out: String,
    /// `wake`: Roda's safety timeout (default: the library's).
    pub safety: Option<Duration>,
}

fn usage(problem: &str) -> ! {
    eprintln!("roda-bench: {problem}");
    eprintln!(
        "usage: roda-bench <sensor|service-health|sensor-drain|service-health-drain|spsc|hop|append|slots|wake|bridge|report> \
         [--events N] [--runs K] [--procs P] [--rounds N] [--secs S] [--impl NAME] [--out DIR] [--safety-ms MS]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let mut workload = it.next().unwrap_or_else(|| usage("which workload?"));
    // `child WORKLOAD`: one fresh process of a pipeline workload (see `child`).
    let child = workload == "child";
    if child {
        workload = it.next().unwrap_or_else(|| usage("child: which workload?"));
    }
    let mut args = Args {
        workload,
        child,
        events: None,
        runs: 3,
        rounds: None,
        secs: None,
        procs: 3,
        only: None,
        out: "docs".into(),
        safety: None,
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
            "--procs" => args.procs = num(value()).max(1) as usize,
            "--impl" => args.only = Some(value()),
            "--out" => args.out = value(),
            "--safety-ms" => args.safety = Some(Duration::from_millis(num(value()))),
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
    /// Warm runs (pipelines: the runs after the first in each process).
    pub runs: Vec<Run>,
    /// Pipelines: the first run of each fresh process, the cold cost a user sees (first
    /// touch of memory included). Empty for the other workloads.
    pub firsts: Vec<Run>,
}

impl Series {
    /// The median of the warm runs.
    pub fn median_rate(&self) -> f64 {
        stats(self.runs.iter().map(Run::per_sec)).median
    }

    /// The headline: the median first run in a fresh process where there are some,
    /// else the warm median.
    pub fn headline_rate(&self) -> f64 {
        if self.firsts.is_empty() {
            self.median_rate()
        } else {
            stats(self.firsts.iter().map(Run::per_sec)).median
        }
    }

    fn print(&self, unit: &str) {
        if !self.firsts.is_empty() {
            let f = stats(self.firsts.iter().map(Run::per_sec));
            let m = median_run(&self.firsts);
            println!(
                "  {:<20} first runs (fresh processes) median {:>9.2} M {unit}/s  (min {:.2}, max {:.2})  peak RSS +{:.0} MB",
                self.implementation,
                f.median / 1e6,
                f.min / 1e6,
                f.max / 1e6,
                m.rss_growth() as f64 / 1e6
            );
            println!(
                "RESULT {} {} first_{unit}_per_s={:.0} min={:.0} max={:.0} rss_growth_bytes={} processes={}",
                self.workload,
                self.implementation,
                f.median,
                f.min,
                f.max,
                m.rss_growth(),
                self.firsts.len()
            );
        }
        if self.runs.is_empty() {
            return;
        }
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

/// A pipeline workload by name: the workload, and whether it is the send-all-then-drain
/// shape.
pub fn pipeline_workload(name: &str) -> Option<(Workload, bool)> {
    match name {
        "sensor" => Some((Workload::Sensor, false)),
        "service-health" => Some((Workload::ServiceHealth, false)),
        "sensor-drain" => Some((Workload::Sensor, true)),
        "service-health-drain" => Some((Workload::ServiceHealth, true)),
        _ => None,
    }
}

/// The implementations of a pipeline workload shape.
pub fn pipeline_impls(drain: bool) -> &'static [&'static str] {
    if drain {
        &["roda", "original", "one-thread"]
    } else {
        &["roda", "roda-bounded", "original", "one-thread"]
    }
}

/// Runs implementation `name` of a pipeline workload once; `expected` is the outputs a
/// drain must receive.
pub fn run_pipeline(
    workload: Workload,
    drain: bool,
    name: &str,
    inputs: &[pipelines::Reading],
    expected: u64,
) -> (u64, Duration) {
    match (drain, name) {
        (false, "roda") => pipelines::run_roda(workload, inputs),
        (false, "roda-bounded") => pipelines::run_roda_bounded(workload, inputs),
        (false, "original") => pipelines::run_original(workload, inputs),
        (true, "roda") => pipelines::run_roda_drain(workload, inputs, expected),
        (true, "original") => pipelines::run_original_drain(workload, inputs, expected),
        (_, "one-thread") => pipelines::run_one_thread(workload, inputs),
        _ => usage(&format!("no implementation {name} of this workload")),
    }
}

/// `roda-bench child WORKLOAD IMPL --events N --runs K`: one fresh process runs one
/// implementation: its first run, then K warm runs, each printed as a `CHILD` line.
fn child(args: &Args) {
    let (workload, drain) =
        pipeline_workload(&args.workload).unwrap_or_else(|| usage("child: which workload?"));
    let name = args
        .only
        .clone()
        .unwrap_or_else(|| usage("child: which --impl?"));
    let inputs = workload.inputs(args.events.unwrap_or(1_000_000));
    let expected = if drain {
        pipelines::expected_outputs(workload, &inputs)
    } else {
        0
    };
    for k in 0..=args.runs {
        let r = measure(|| run_pipeline(workload, drain, &name, &inputs, expected));
        println!(
            "CHILD {} {} {} {} {} {} {}",
            if k == 0 { "first" } else { "warm" },
            r.ops,
            r.elapsed.as_nanos(),
            r.minflt,
            r.majflt,
            r.peak_rss,
            r.start_rss
        );
    }
}

/// Parses a `CHILD` line: whether it is a first run, and the run.
fn parse_child_line(line: &str) -> Option<(bool, Run)> {
    let mut f = line.strip_prefix("CHILD ")?.split(' ');
    let first = f.next()? == "first";
    let mut n = || f.next()?.parse::<u64>().ok();
    Some((
        first,
        Run {
            ops: n()?,
            elapsed: Duration::from_nanos(n()?),
            minflt: n()?,
            majflt: n()?,
            peak_rss: n()?,
            start_rss: n()?,
        },
    ))
}

/// A pipeline workload: every implementation in `procs` fresh child processes each,
/// alternating (one process of each in turn, the order reversed every other round),
/// each process one first run (the headline: what a user sees) and `warm` more.
pub fn pipeline(
    workload_name: &str,
    events: u64,
    warm: usize,
    procs: usize,
    only: Option<&str>,
) -> Vec<Series> {
    let (_, drain) = pipeline_workload(workload_name)
        .unwrap_or_else(|| usage(&format!("unknown workload {workload_name}")));
    let cores = measure::cores().len();
    println!(
        "{workload_name}: {events} events; each implementation in {procs} fresh processes \
         (alternating), each a first run and {warm} warm; {}; the sender and the stage threads \
         share {cores} cores",
        if drain {
            "send every input, then receive every output: clock from engine creation to the last receive"
        } else {
            "clock from engine creation until the last stage has counted every item it must receive"
        }
    );
    let impls: Vec<&str> = pipeline_impls(drain)
        .iter()
        .copied()
        .filter(|name| only.map_or(true, |o| o == *name))
        .collect();
    let exe = std::env::current_exe().expect("the roda-bench executable");
    let mut series: Vec<Series> = impls
        .iter()
        .map(|name| Series {
            workload: workload_name.into(),
            implementation: (*name).into(),
            runs: Vec::new(),
            firsts: Vec::new(),
        })
        .collect();
    for round in 0..procs {
        let mut order: Vec<usize> = (0..impls.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let name = impls[i];
            let output = std::process::Command::new(&exe)
                .args([
                    "child",
                    workload_name,
                    "--impl",
                    name,
                    "--events",
                    &events.to_string(),
                    "--runs",
                    &warm.to_string(),
                ])
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("start a roda-bench child process");
            assert!(
                output.status.success(),
                "{workload_name} {name}: the child process failed ({})",
                output.status
            );
            for (first, run) in String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(parse_child_line)
            {
                println!(
                    "    {name} process {} {}: {:.2} M events/s ({:.3} s, +{:.0} MB RSS)",
                    round + 1,
                    if first { "first run" } else { "warm run" },
                    run.per_sec() / 1e6,
                    run.elapsed.as_secs_f64(),
                    run.rss_growth() as f64 / 1e6
                );
                if first {
                    series[i].firsts.push(run);
                } else {
                    series[i].runs.push(run);
                }
            }
        }
    }
    for s in &series {
        assert_eq!(
            s.firsts.len(),
            procs,
            "{}: a first run per process",
            s.implementation
        );
        s.print("events");
    }
    series
}

/// Append latency and faults per journal kind, in each place files can live.
pub fn append_workload(events: u64, only: Option<&str>) -> Vec<append::AppendRun> {
    println!(
        "append: {events} timed appends of 24-byte records per journal, writer alone (timer included, ~20 ns); \
         rings after one untimed pass over the ring"
    );
    let mut out = Vec::new();
    for kind in append::Kind::all() {
        if only.is_some_and(|o| !kind.selected_by(o)) {
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

/// The implementations of `all` that `only` selects, and the order of run `k`: runs
/// alternate between implementations (one run of each in turn, the order reversed every
/// other round), so that a machine that drifts (frequency, a neighbour's load, where the
/// hypervisor places the two vCPUs) moves every implementation alike.
fn alternating<'a>(all: &[&'a str], only: Option<&str>, k: usize) -> Vec<(usize, &'a str)> {
    let mut order: Vec<(usize, &str)> = all
        .iter()
        .copied()
        .filter(|name| only.map_or(true, |o| o == *name))
        .enumerate()
        .collect();
    if k % 2 == 1 {
        order.reverse();
    }
    order
}

pub fn spsc(n: u64, runs: usize, only: Option<&str>) -> Vec<Series> {
    println!(
        "spsc: {n} messages of 24 bytes, {runs} runs of each implementation, alternating; \
         producer and consumer pinned to distinct cores"
    );
    let names = alternating(&spsc::IMPLS, only, 0);
    let mut out: Vec<Series> = names
        .iter()
        .map(|(_, name)| Series {
            workload: "spsc".into(),
            implementation: (*name).into(),
            runs: Vec::new(),
            firsts: Vec::new(),
        })
        .collect();
    for k in 0..runs {
        for (i, name) in alternating(&spsc::IMPLS, only, k) {
            let run = measure(|| spsc::run(name, n));
            println!(
                "    {name} run {}: {:.2} M msg/s",
                k + 1,
                run.per_sec() / 1e6
            );
            out[i].runs.push(run);
        }
    }
    for series in &out {
        series.print("msg");
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
        "hop: {rounds} round trips, {runs} runs of each implementation, alternating; one-way \
         latency = round trip / 2, threads pinned"
    );
    let names = alternating(&hop::IMPLS, only, 0);
    let mut hists: Vec<Vec<_>> = names.iter().map(|_| Vec::new()).collect();
    for k in 0..runs {
        for (i, name) in alternating(&hop::IMPLS, only, k) {
            let hist = hop::run(name, rounds);
            println!(
                "    {name} run {}: p50 {} ns, p99 {} ns",
                k + 1,
                hist.value_at_quantile(0.5),
                hist.value_at_quantile(0.99)
            );
            hists[i].push(hist);
        }
    }
    let mut out = Vec::new();
    for ((_, name), hists) in names.iter().zip(&hists) {
        let q = |p: f64| stats(hists.iter().map(|h| h.value_at_quantile(p) as f64)).median;
        let r = HopResult {
            implementation: (*name).into(),
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
    // `wake-writer PATH EVENTS GAP_NS`: the writer process of the wake workload's
    // cross-process row.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("wake-writer") {
        let n = |i: usize| -> u64 {
            argv.get(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage("wake-writer PATH EVENTS GAP_NS"))
        };
        wake::cross_process_writer(&argv[2], n(3), Duration::from_nanos(n(4)));
        return;
    }
    let args = parse();
    // Read the usable cores before any thread is pinned.
    measure::cores();
    println!("machine: {}", measure::machine());
    let only = args.only.as_deref();
    if args.child {
        child(&args);
        return;
    }
    match args.workload.as_str() {
        name if pipeline_workload(name).is_some() => {
            let (_, drain) = pipeline_workload(name).expect("checked");
            let events = args.events.unwrap_or(if drain {
                report::DRAIN_EVENTS
            } else {
                report::PIPELINE_EVENTS
            });
            pipeline(
                name,
                events,
                args.runs.div_ceil(args.procs),
                args.procs,
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
            let runs = append_workload(args.events.unwrap_or(10_000_000), only);
            print!("{}", append::markdown(&runs, &measure::machine()));
        }
        "wake" => {
            wake::workload(
                args.events.unwrap_or(2_000),
                args.runs,
                Duration::from_secs_f64(args.secs.unwrap_or(1.0)),
                args.safety,
                only,
            );
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
    fn append_rows_cover_every_journal_option_and_place() {
        let _one = serial();
        let runs = append_workload(20_000, None);
        let places = append::places().len();
        // Clock-only and the two in-memory journals once, the three file journals in
        // each place; each with populate and pretouch off and on (not the clock).
        assert_eq!(runs.len(), 1 + 2 * 4 + 3 * 4 * places);
        for r in &runs {
            assert_eq!(r.appends, 20_000, "{}", r.kind.name());
            assert!(r.p50 <= r.p999 && r.p999 <= r.p9999 && r.p9999 <= r.max);
        }
        let md = append::markdown(&runs, "test machine");
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            runs.len() + 1
        );
        assert!(md.contains("| clock-only | - |"));
        assert!(md.contains("| keepall-file+populate+pretouch | tmpfs |") || places == 1);
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
            // Send all, then drain: every predicted output arrives, and no more.
            let inputs = w.inputs(200_000);
            let expected = pipelines::expected_outputs(w, &inputs);
            assert!(expected > 0);
            assert_eq!(pipelines::run_roda_drain(w, &inputs, expected).0, 200_000);
            let inputs = w.inputs(20_000);
            let expected = pipelines::expected_outputs(w, &inputs);
            assert_eq!(
                pipelines::run_original_drain(w, &inputs, expected).0,
                20_000
            );
        }
    }

    #[test]
    fn child_lines_parse_back() {
        let (first, run) = parse_child_line("CHILD first 10 2000000000 3 4 5000 1000").unwrap();
        assert!(first);
        assert_eq!((run.ops, run.minflt, run.majflt), (10, 3, 4));
        assert_eq!(run.per_sec(), 5.0);
        assert_eq!(run.rss_growth(), 4000);
        assert!(parse_child_line("CHILD warm 1 2").is_none());
        assert!(parse_child_line("RESULT x").is_none());
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
    fn every_wake_implementation_delivers_in_order() {
        let _one = serial();
        for name in wake::IMPLS {
            let (h, cpu) = wake::run(
                name,
                Duration::from_micros(50),
                20,
                Duration::from_millis(20),
                Some(Duration::from_secs(10)),
            );
            assert_eq!(h.len(), 20, "{name}");
            assert!(cpu.is_finite(), "{name}");
        }
        let h = wake::cross_process(20, Duration::from_micros(200), Duration::from_secs(10));
        assert_eq!(h.len(), 20);
    }

    /// The writer process of the cross-process wake test (started by it, with the
    /// journal's path, the record count and the gap in an environment variable).
    #[test]
    #[ignore = "the writer process of every_wake_implementation_delivers_in_order"]
    fn wake_writer_process() {
        let Ok(spec) = std::env::var(wake::WRITER_ENV) else {
            return;
        };
        let parts: Vec<&str> = spec.split(' ').collect();
        let n = |i: usize| parts[i].parse::<u64>().expect("a number");
        wake::cross_process_writer(parts[0], n(1), Duration::from_nanos(n(2)));
    }

    #[test]
    fn stats_are_median_min_max() {
        let s = stats([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(stats([1.0, 2.0, 3.0, 4.0]).median, 2.5);
    }

    #[test]
    fn runs_alternate_between_implementations() {
        let all = ["a", "b", "c"];
        assert_eq!(
            super::alternating(&all, None, 0),
            vec![(0, "a"), (1, "b"), (2, "c")]
        );
        assert_eq!(
            super::alternating(&all, None, 1),
            vec![(2, "c"), (1, "b"), (0, "a")]
        );
        // Indices count the selected implementations only, as the series do.
        assert_eq!(super::alternating(&all, Some("b"), 1), vec![(0, "b")]);
    }
}

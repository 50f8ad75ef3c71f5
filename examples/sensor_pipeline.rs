//! The reference sensor workload: readings flow through a two-stage pipeline that
//! summarises each sensor per 100 ms window and raises an alert when a window's average
//! jumps by more than 50%.
//!
//! cargo run --release --example sensor_pipeline [-- --events N] [--pin] [--bounded]
//!     [--metrics FILE]
//!
//! By default (`with_capacity`) the journals between stages are rings of about 4 MiB
//! recycled in place, and the last journal (the alerts) is elastic: it holds the alerts
//! not received yet, which this program receives as they come. With `--bounded` every
//! journal is a ring of 4 segments of 65,536 records, the last one too. Either way any
//! number of events runs in the same few MB: `-- --events 1000000000` streams a billion
//! readings.
//!
//! `--metrics FILE` publishes the pipeline's counters in FILE while it runs (sampled at
//! 10 Hz by a thread of its own): watch it with `roda top FILE`, export it with
//! `roda metrics FILE`.
//!
//! Stage 1: `stateful`, keyed by (sensor, timestamp floored to 100_000), folds
//! min/max/sum/count into a 64-byte `Summary`, emitted after every reading.
//! Stage 2: `delta` on the sensor: a 32-byte `Alert` when the average grew by more
//! than 50% since that sensor's previous summary.
//!
//! The clock runs from engine creation until `await_idle` reports (exactly) that every
//! stage has consumed everything sent.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use roda::prelude::*;

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sensor_id: u64,
    value: f64,
    timestamp: u64,
}

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Summary {
    sensor_id: u64,
    window: u64,
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    avg: f64,
    last_timestamp: u64,
}

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Alert {
    sensor_id: u64,
    window: u64,
    previous_avg: f64,
    current_avg: f64,
}

const _: () = assert!(std::mem::size_of::<Summary>() == 64);
const _: () = assert!(std::mem::size_of::<Alert>() == 32);

const WINDOW: u64 = 100_000;
const PATTERN: [(u64, f64, u64); 4] = [
    (1, 10.0, 10_000),
    (1, 12.0, 20_000),
    (1, 20.0, 110_000),
    (1, 22.0, 120_000),
];

/// Records per segment and segments per ring of `--bounded` pipelines.
const SEGMENT_RECORDS: usize = 1 << 16;
const SEGMENTS: usize = 4;

struct Args {
    events: u64,
    pin: bool,
    bounded: bool,
    metrics: Option<String>,
}

fn parse_args() -> Args {
    let mut events = 100_000_000u64;
    let mut pin = false;
    let mut bounded = false;
    let mut metrics = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => {
                events = args
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| usage("--events needs a number"));
            }
            "--pin" => pin = true,
            "--bounded" => bounded = true,
            "--metrics" => {
                metrics = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--metrics needs a FILE")),
                )
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if events == 0 {
        usage("--events must be at least 1");
    }
    Args {
        events,
        pin,
        bounded,
        metrics,
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("sensor_pipeline: {problem}");
    }
    eprintln!(
        "usage: cargo run --release --example sensor_pipeline -- [--events N] [--pin] [--bounded] \
         [--metrics FILE]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

fn main() {
    let Args {
        events,
        pin,
        bounded,
        metrics,
    } = parse_args();
    let progress = ProgressLine::new();
    let start = Instant::now();

    let engine = if bounded {
        StageEngine::<Reading, Reading>::bounded(SEGMENT_RECORDS, SEGMENTS)
    } else {
        StageEngine::<Reading, Reading>::with_capacity(events as usize)
    };
    let engine = engine.name("sensor_pipeline").with_pinning(if pin {
        Pinning::Auto
    } else {
        Pinning::None
    });
    let engine = match &metrics {
        Some(path) => engine.metrics_file(path),
        None => engine,
    };
    let mut engine = engine
        .add_stage(
            stateful(
                |r: &Reading| (r.sensor_id, r.timestamp / WINDOW * WINDOW),
                |r: &Reading| Summary {
                    sensor_id: r.sensor_id,
                    window: r.timestamp / WINDOW * WINDOW,
                    min: r.value,
                    max: r.value,
                    sum: r.value,
                    count: 1,
                    avg: r.value,
                    last_timestamp: r.timestamp,
                },
                |s: &mut Summary, r: &Reading| {
                    s.min = s.min.min(r.value);
                    s.max = s.max.max(r.value);
                    s.sum += r.value;
                    s.count += 1;
                    s.avg = s.sum / s.count as f64;
                    s.last_timestamp = r.timestamp;
                },
            )
            .with_capacity(1024),
        )
        .stage_name("summaries")
        .add_stage(
            delta(
                |s: &Summary| s.sensor_id,
                |current: Summary, previous: Option<Summary>| {
                    let previous = previous?;
                    (current.avg > previous.avg * 1.5).then_some(Alert {
                        sensor_id: current.sensor_id,
                        window: current.window,
                        previous_avg: previous.avg,
                        current_avg: current.avg,
                    })
                },
            )
            .with_capacity(1024),
        )
        .stage_name("alerts");

    // Alerts are received as they come (a bounded pipeline needs that: its last ring
    // holds only so many; the default's elastic output then stays small) and counted.
    let mut alerts = Alerts::default();
    for i in 0..events {
        let (sensor_id, value, timestamp) = PATTERN[(i % 4) as usize];
        let reading = Reading {
            sensor_id,
            value,
            timestamp,
        };
        // A bounded pipeline's rings are small: alerts are received while `send` waits.
        engine.send_receiving(&reading, |alert: &Alert| alerts.take(alert));
        if i % (1 << 12) == 0 {
            alerts.receive(&mut engine);
            if i % (1 << 20) == 0 && i > 0 {
                progress.show(&engine, events, start);
            }
        }
    }
    while !engine.await_idle(Duration::from_millis(if bounded { 1 } else { 500 })) {
        if let Some(err) = engine.first_panic() {
            eprintln!("\nsensor_pipeline: {err}");
            std::process::exit(1);
        }
        alerts.receive(&mut engine);
        progress.show(&engine, events, start);
    }
    alerts.receive(&mut engine);
    let elapsed = start.elapsed();
    progress.clear();

    println!(
        "{events} events in {:.3} s: {:.2} M events/s (engine creation to exact idle)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("alerts: {}", alerts.count);
    if let Some(a) = alerts.last {
        println!(
            "last alert: sensor {} window {}: average {:.2} -> {:.2}",
            a.sensor_id, a.window, a.previous_avg, a.current_avg
        );
    }
    print!("{}", StageMetrics::table(&engine.metrics()));
    if let Some(kb) = peak_rss_kb() {
        println!(
            "peak RSS: {:.1} MB (journals: {})",
            kb as f64 / 1024.0,
            if bounded {
                format!("bounded, {SEGMENTS} segments × {SEGMENT_RECORDS} records")
            } else {
                "rings between stages, elastic output".to_string()
            }
        );
    }
    if let Err(err) = engine.shutdown() {
        eprintln!("sensor_pipeline: {err}");
        std::process::exit(1);
    }
}

/// Alerts received so far.
#[derive(Default)]
struct Alerts {
    count: u64,
    last: Option<Alert>,
}

impl Alerts {
    fn take(&mut self, alert: &Alert) {
        self.count += 1;
        self.last = Some(*alert);
    }

    /// Receives every alert ready now.
    fn receive(&mut self, engine: &mut StageEngine<Reading, Alert>) {
        while let Some(alert) = engine.try_receive() {
            self.take(&alert);
        }
    }
}

/// The process's peak resident set (VmHWM), where /proc tells it.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A progress line on stderr: rewritten in place on a terminal, one line a second otherwise.
struct ProgressLine {
    terminal: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl ProgressLine {
    fn new() -> Self {
        ProgressLine {
            terminal: std::io::stderr().is_terminal(),
            last: std::cell::Cell::new(None),
        }
    }

    fn show<I: Record, O: Record>(&self, engine: &StageEngine<I, O>, events: u64, start: Instant) {
        let now = Instant::now();
        if self
            .last
            .get()
            .is_some_and(|t| now - t < Duration::from_secs(1))
        {
            return;
        }
        self.last.set(Some(now));
        let done = engine.metrics().last().map_or(0, |m| m.processed);
        let line = format!(
            "sent {:>6.1}%  done {:>6.1}%  {:>6.1} s",
            engine.sent() as f64 * 100.0 / events as f64,
            done as f64 * 100.0 / events as f64,
            start.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    fn clear(&self) {
        if self.terminal && self.last.get().is_some() {
            eprint!("\r{:60}\r", "");
        }
    }
}

//! The `wake` workload: sparse traffic through a 2-stage pipeline (map, map), one event
//! at a time with a gap before each, end-to-end latency from the send to the receive,
//! and the CPU an idle pipeline costs; Roda's default pipeline against two threads
//! joined by blocking channels (crossbeam-channel, std mpsc) and the disruptor crate
//! with its sleeping wait strategy. Plus a cross-process row: a writer process appends
//! to a file journal with waking on, this process reads it with `next_timeout`, and
//! each record carries its CLOCK_MONOTONIC append time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use roda::prelude::*;

/// The gaps between events.
pub const GAPS: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_micros(200),
    Duration::from_micros(50),
];

/// The in-process implementations.
pub const IMPLS: [&str; 4] = ["roda", "crossbeam-channel", "std-mpsc", "disruptor-sleep"];

/// The disruptor's sleep between empty polls (its `Sleep` strategy), also used by the
/// thread receiving from it.
const DISRUPTOR_SLEEP: Duration = Duration::from_micros(50);

/// Events sent before the recorded ones (threads started, caches and pages warm).
const WARM_UP: u64 = 50;

/// One event: a sequence number and two payload words the stages change.
type Event = [u64; 3];

fn stage1(e: &Event) -> Event {
    [e[0], e[1].wrapping_mul(31).wrapping_add(7), e[2] ^ e[0]]
}

fn stage2(e: &Event) -> Event {
    [e[0], e[1] ^ 0x5555, e[2].wrapping_add(e[1])]
}

/// The result of one implementation at one gap.
#[derive(Clone, Debug)]
pub struct WakeResult {
    pub implementation: String,
    pub gap: Duration,
    /// Latency quantiles, nanoseconds.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    /// CPU per stage while the pipeline sat idle, percent of one core.
    pub idle_cpu_percent: f64,
}

/// A pipeline of two stages fed and drained by the calling thread.
trait Pipeline {
    fn send(&mut self, e: &Event);
    /// Blocks until the next output.
    fn receive(&mut self) -> Event;
}

struct Roda(StageEngine<Event, Event>);
impl Pipeline for Roda {
    fn send(&mut self, e: &Event) {
        self.0.send(e);
    }
    fn receive(&mut self) -> Event {
        self.0.receive()
    }
}

/// Two threads joined by blocking channels.
struct Channels<S, R> {
    send: S,
    receive: R,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A stage of the channel pipelines on a thread of its own: receives, applies `stage`,
/// sends on, until either side is closed.
fn stage_thread(
    mut receive: impl FnMut() -> Option<Event> + Send + 'static,
    mut send: impl FnMut(Event) -> bool + Send + 'static,
    stage: fn(&Event) -> Event,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(e) = receive() {
            if !send(stage(&e)) {
                break;
            }
        }
    })
}

fn crossbeam() -> Channels<crossbeam_channel::Sender<Event>, crossbeam_channel::Receiver<Event>> {
    let (s0, r0) = crossbeam_channel::bounded::<Event>(1024);
    let (s1, r1) = crossbeam_channel::bounded::<Event>(1024);
    let (s2, r2) = crossbeam_channel::bounded::<Event>(1024);
    let t1 = stage_thread(move || r0.recv().ok(), move |e| s1.send(e).is_ok(), stage1);
    let t2 = stage_thread(move || r1.recv().ok(), move |e| s2.send(e).is_ok(), stage2);
    Channels {
        send: s0,
        receive: r2,
        threads: vec![t1, t2],
    }
}

impl Pipeline for Channels<crossbeam_channel::Sender<Event>, crossbeam_channel::Receiver<Event>> {
    fn send(&mut self, e: &Event) {
        self.send.send(*e).expect("stage 1 runs");
    }
    fn receive(&mut self) -> Event {
        self.receive.recv().expect("stage 2 runs")
    }
}

fn std_mpsc() -> Channels<std::sync::mpsc::SyncSender<Event>, std::sync::mpsc::Receiver<Event>> {
    let (s0, r0) = std::sync::mpsc::sync_channel::<Event>(1024);
    let (s1, r1) = std::sync::mpsc::sync_channel::<Event>(1024);
    let (s2, r2) = std::sync::mpsc::sync_channel::<Event>(1024);
    let t1 = stage_thread(move || r0.recv().ok(), move |e| s1.send(e).is_ok(), stage1);
    let t2 = stage_thread(move || r1.recv().ok(), move |e| s2.send(e).is_ok(), stage2);
    Channels {
        send: s0,
        receive: r2,
        threads: vec![t1, t2],
    }
}

impl Pipeline for Channels<std::sync::mpsc::SyncSender<Event>, std::sync::mpsc::Receiver<Event>> {
    fn send(&mut self, e: &Event) {
        self.send.send(*e).expect("stage 1 runs");
    }
    fn receive(&mut self) -> Event {
        self.receive.recv().expect("stage 2 runs")
    }
}

/// The disruptor crate: three rings, each stage an event handler on its own thread
/// (the `Sleep` wait strategy) publishing into the next ring; the calling thread polls
/// the last ring, sleeping as the strategy does between empty polls. Dropping the
/// input producer stops stage 1, whose drop of the middle producer stops stage 2.
struct Disruptor {
    input: disruptor::SingleProducer<Event, disruptor::SingleConsumerBarrier>,
    output: disruptor::EventPoller<Event, disruptor::SingleProducerBarrier>,
}

fn disruptor_pipeline() -> Disruptor {
    use disruptor::Producer;
    let (output, out_builder) =
        disruptor::build_single_producer(1024, || [0u64; 3], disruptor::BusySpin)
            .new_event_poller();
    let mut to_output = out_builder.build();
    let sleep = disruptor::Sleep::new(DISRUPTOR_SLEEP);
    let mut to_middle = disruptor::build_single_producer(1024, || [0u64; 3], sleep)
        .handle_events_with(move |e: &Event, _seq: i64, _end: bool| {
            let out = stage2(e);
            to_output.publish(|slot| *slot = out);
        })
        .build();
    let input = disruptor::build_single_producer(1024, || [0u64; 3], sleep)
        .handle_events_with(move |e: &Event, _seq: i64, _end: bool| {
            let out = stage1(e);
            to_middle.publish(|slot| *slot = out);
        })
        .build();
    Disruptor { input, output }
}

impl Pipeline for Disruptor {
    fn send(&mut self, e: &Event) {
        use disruptor::Producer;
        self.input.publish(|slot| *slot = *e);
    }
    fn receive(&mut self) -> Event {
        loop {
            if let Ok(mut events) = self.output.poll() {
                if let Some(e) = (&mut events).next() {
                    return *e;
                }
            }
            std::thread::sleep(DISRUPTOR_SLEEP);
        }
    }
}

/// CPU time of this process so far (user + system).
fn cpu_time() -> Duration {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1_000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Sends `events` events one at a time, `gap` apart, through `pipeline`; the latency
/// histogram (ns) of send to receive, then the pipeline's CPU per stage (percent of a
/// core) over `idle` with nothing sent (this thread sleeps meanwhile).
fn drive(
    pipeline: &mut dyn Pipeline,
    gap: Duration,
    events: u64,
    idle: Duration,
) -> (Histogram<u64>, f64) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("histogram");
    for i in 0..events + WARM_UP {
        std::thread::sleep(gap);
        let event = [i, i * 3, i * 5];
        let start = Instant::now();
        pipeline.send(&event);
        let out = pipeline.receive();
        let took = start.elapsed().as_nanos() as u64;
        assert_eq!(out, stage2(&stage1(&event)), "a wrong or reordered output");
        if i >= WARM_UP {
            hist.record(took.max(1)).expect("record");
        }
    }
    // Let every thread run out of spinning before the idle clock starts.
    std::thread::sleep(Duration::from_millis(20));
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    std::thread::sleep(idle);
    let cpu = cpu_time().saturating_sub(cpu0);
    let per_stage = cpu.as_secs_f64() / t0.elapsed().as_secs_f64() / 2.0 * 100.0;
    (hist, per_stage)
}

/// Runs implementation `name` at `gap`: `events` recorded events, then `idle` of
/// idleness. `safety` sets Roda's safety timeout (None: the default).
pub fn run(
    name: &str,
    gap: Duration,
    events: u64,
    idle: Duration,
    safety: Option<Duration>,
) -> (Histogram<u64>, f64) {
    match name {
        "roda" => {
            let mut wait = WaitStrategy::default();
            if let Some(safety) = safety {
                wait = wait.with_safety_timeout(safety);
            }
            let engine = StageEngine::<Event, Event>::with_capacity(1 << 16)
                .with_wait_strategy(wait)
                .add_stage(map(stage1))
                .add_stage(map(stage2));
            let mut pipeline = Roda(engine);
            let result = drive(&mut pipeline, gap, events, idle);
            pipeline.0.shutdown().expect("no stage panicked");
            result
        }
        "crossbeam-channel" => {
            let mut pipeline = crossbeam();
            let result = drive(&mut pipeline, gap, events, idle);
            let Channels { send, threads, .. } = pipeline;
            drop(send);
            threads.into_iter().for_each(|t| t.join().expect("stage"));
            result
        }
        "std-mpsc" => {
            let mut pipeline = std_mpsc();
            let result = drive(&mut pipeline, gap, events, idle);
            let Channels { send, threads, .. } = pipeline;
            drop(send);
            threads.into_iter().for_each(|t| t.join().expect("stage"));
            result
        }
        "disruptor-sleep" => {
            let mut pipeline = disruptor_pipeline();
            // Dropping the producer joins the handler thread.
            drive(&mut pipeline, gap, events, idle)
        }
        other => panic!("unknown wake implementation {other}"),
    }
}

/// CLOCK_MONOTONIC now, nanoseconds: comparable across processes of one machine.
fn monotonic_nanos() -> u64 {
    let ts =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The writer process of the cross-process row: opens the journal at `path` for
/// writing, says READY on stdout, waits `gap` before each of `events` appends, each
/// record its sequence and its CLOCK_MONOTONIC append time.
pub fn cross_process_writer(path: &str, events: u64, gap: Duration) {
    let mut journal = JournalStore::<[u64; 2]>::open(path).expect("open the journal to write");
    println!("READY");
    // The reader starts its timed read after it sees READY.
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..events {
        std::thread::sleep(gap);
        journal.append(&[i, monotonic_nanos()]);
    }
}

/// The writer process: this executable with the `wake-writer` command.
#[cfg(not(test))]
fn writer_command(path: &str, events: u64, gap: Duration) -> Command {
    let exe = std::env::current_exe().expect("the roda-bench executable");
    let mut command = Command::new(exe);
    command.args([
        "wake-writer",
        path,
        &events.to_string(),
        &gap.as_nanos().to_string(),
    ]);
    command
}

/// Under `cargo test` the executable is the test binary: its ignored entry point
/// `tests::wake_writer_process` is the writer, told what to write by an environment
/// variable.
#[cfg(test)]
fn writer_command(path: &str, events: u64, gap: Duration) -> Command {
    let exe = std::env::current_exe().expect("the test executable");
    let mut command = Command::new(exe);
    command
        .args([
            "--ignored",
            "--exact",
            "tests::wake_writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, format!("{path} {events} {}", gap.as_nanos()));
    command
}

/// The environment variable that makes the test binary the writer process.
#[cfg(test)]
pub const WRITER_ENV: &str = "RODA_BENCH_WAKE_WRITER";

/// The cross-process row: a child process appends `events` records `gap` apart to a
/// file journal with waking on; this process reads each with `next_timeout` (safety
/// timeout `safety`) and records append-to-read latency (ns).
pub fn cross_process(events: u64, gap: Duration, safety: Duration) -> Histogram<u64> {
    let dir = std::env::temp_dir().join(format!("roda-bench-wake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("wake.roda");
    let total = events + WARM_UP;
    // Created here (with waking on, kept in the file) and closed; the child reopens it.
    drop(
        JournalStore::<[u64; 2]>::options()
            .wake(true)
            .create(&path, total as usize)
            .expect("create the journal"),
    );
    let mut child = writer_command(path.to_str().expect("a UTF-8 temp path"), total, gap)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer process");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    loop {
        match lines.next() {
            // Under `cargo test` the line starts with the test runner's own words.
            Some(Ok(line)) if line.ends_with("READY") => break,
            Some(Ok(_)) => continue,
            _ => panic!(
                "the writer process ended before it was ready ({:?})",
                child.wait()
            ),
        }
    }
    let mut reader = JournalStore::<[u64; 2]>::options()
        .wake_safety_timeout(safety)
        .open_reader(&path)
        .expect("open the journal to read");
    assert!(
        reader.wakes_on_publish(),
        "the reader sleeps on the wake word"
    );
    let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("histogram");
    for i in 0..total {
        let [seq, stamp] = *reader
            .next_timeout(Duration::from_secs(60))
            .expect("the writer appends every record");
        let late = monotonic_nanos().saturating_sub(stamp);
        assert_eq!(seq, i, "records in order");
        if i >= WARM_UP {
            hist.record(late.max(1)).expect("record");
        }
    }
    assert!(child.wait().expect("the writer process").success());
    let _ = std::fs::remove_dir_all(&dir);
    hist
}

/// The whole workload: every implementation at every gap, `runs` times alternating
/// (the order reversed every other run), medians over runs; then the cross-process
/// row at each gap.
pub fn workload(
    events: u64,
    runs: usize,
    idle: Duration,
    safety: Option<Duration>,
    only: Option<&str>,
) -> (Vec<WakeResult>, Vec<WakeResult>) {
    println!(
        "wake: 2-stage pipelines (map, map), {events} events one at a time per gap after \
         {WARM_UP} warm-up, latency send -> receive; idle CPU over {idle:?} per stage; \
         {runs} runs alternating; Roda safety timeout {}",
        match safety {
            Some(s) => format!("{s:?}"),
            None => "default (100 ms)".into(),
        }
    );
    let impls: Vec<&str> = IMPLS
        .iter()
        .copied()
        .filter(|n| only.map_or(true, |o| o == *n))
        .collect();
    let mut results = Vec::new();
    for gap in GAPS {
        let mut per_impl: Vec<Vec<(Histogram<u64>, f64)>> = vec![Vec::new(); impls.len()];
        for round in 0..runs {
            let mut order: Vec<usize> = (0..impls.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                per_impl[i].push(run(impls[i], gap, events, idle, safety));
            }
        }
        for (name, all) in impls.iter().zip(per_impl) {
            let q = |p: f64| {
                crate::stats(all.iter().map(|(h, _)| h.value_at_quantile(p) as f64)).median
            };
            let r = WakeResult {
                implementation: (*name).into(),
                gap,
                p50: q(0.5),
                p99: q(0.99),
                p999: q(0.999),
                idle_cpu_percent: crate::stats(all.iter().map(|(_, cpu)| *cpu)).median,
            };
            r.print("wake");
            results.push(r);
        }
    }
    let mut cross = Vec::new();
    if only.map_or(true, |o| o == "roda-cross-process") {
        for gap in GAPS {
            let hists: Vec<_> = (0..runs)
                .map(|_| cross_process(events, gap, safety.unwrap_or(Duration::from_millis(100))))
                .collect();
            let q =
                |p: f64| crate::stats(hists.iter().map(|h| h.value_at_quantile(p) as f64)).median;
            let r = WakeResult {
                implementation: "roda-cross-process".into(),
                gap,
                p50: q(0.5),
                p99: q(0.99),
                p999: q(0.999),
                idle_cpu_percent: f64::NAN,
            };
            r.print("wake");
            cross.push(r);
        }
    }
    (results, cross)
}

impl WakeResult {
    fn print(&self, workload: &str) {
        println!(
            "  {:<20} gap {:>6.0} µs  p50 {:>8.1} µs  p99 {:>8.1} µs  p99.9 {:>8.1} µs  idle CPU {:>5.2}% per stage",
            self.implementation,
            self.gap.as_secs_f64() * 1e6,
            self.p50 / 1e3,
            self.p99 / 1e3,
            self.p999 / 1e3,
            self.idle_cpu_percent
        );
        println!(
            "RESULT {workload} {} gap_us={:.0} p50_ns={:.0} p99_ns={:.0} p999_ns={:.0} idle_cpu_percent_per_stage={:.3}",
            self.implementation,
            self.gap.as_secs_f64() * 1e6,
            self.p50,
            self.p99,
            self.p999,
            self.idle_cpu_percent
        );
    }
}

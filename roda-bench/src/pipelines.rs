//! The sensor and service-health workloads, run by Roda and by the original
//! implementation (`roda-state` 0.1) on identical inputs and capacities, both to true
//! completion, in two shapes:
//!
//! * **as they go**: outputs are received while the inputs are sent (where the pipeline
//!   needs it); a counting `inspect` placed first in the last stage counts what reaches
//!   it, and the clock stops when that count equals what the workload must deliver
//!   there. For Roda, `await_idle` (exact) must then agree.
//! * **send all, then drain**: the program the docs teach: `with_capacity(n)`, send
//!   every input, then `receive` every output the workload must produce (predicted
//!   outside the clock by running the same stages on one thread); the clock stops at
//!   the last `receive`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};

#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct Reading {
    pub id: u64,
    pub value: f64,
    pub timestamp: u64,
}

/// The original's 64-byte summary layout, used by both implementations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct Summary {
    pub id: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
    pub window: u64,
    pub _pad: [u64; 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct Alert {
    pub id: u64,
    pub window: u64,
    pub severity: u64,
    pub _pad: u64,
}

const WINDOW: u64 = 100_000;

fn key(r: &Reading) -> (u64, u64) {
    (r.id, r.timestamp / WINDOW * WINDOW)
}

fn init(r: &Reading) -> Summary {
    Summary {
        id: r.id,
        min: r.value,
        max: r.value,
        sum: r.value,
        count: 1,
        window: r.timestamp / WINDOW * WINDOW,
        _pad: [0; 2],
    }
}

fn fold(s: &mut Summary, r: &Reading) {
    s.min = s.min.min(r.value);
    s.max = s.max.max(r.value);
    s.sum += r.value;
    s.count += 1;
}

fn alert(curr: &Summary, prev: Option<Summary>) -> Option<Alert> {
    let prev = prev?;
    (curr.sum / curr.count as f64 > prev.sum / prev.count as f64 * 1.5).then_some(Alert {
        id: curr.id,
        window: curr.window,
        severity: 1,
        _pad: 0,
    })
}

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The repeating 4-reading pattern of one sensor: stateful, then delta.
    Sensor,
    /// Two readings of service 2, then readings of service 1 at one value:
    /// dedup_by + stateful, then delta + dedup_by.
    ServiceHealth,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Sensor => "sensor",
            Workload::ServiceHealth => "service-health",
        }
    }

    /// The inputs (generated up front, outside the clock, identical for both).
    pub fn inputs(self, events: u64) -> Vec<Reading> {
        match self {
            Workload::Sensor => {
                const P: [(f64, u64); 4] = [
                    (10.0, 10_000),
                    (12.0, 20_000),
                    (20.0, 110_000),
                    (22.0, 120_000),
                ];
                (0..events)
                    .map(|i| {
                        let (value, timestamp) = P[(i % 4) as usize];
                        Reading {
                            id: 1,
                            value,
                            timestamp,
                        }
                    })
                    .collect()
            }
            Workload::ServiceHealth => {
                let mut v = vec![
                    Reading {
                        id: 2,
                        value: 10.0,
                        timestamp: 0,
                    },
                    Reading {
                        id: 2,
                        value: 100.0,
                        timestamp: 1,
                    },
                ];
                v.extend((0..events.saturating_sub(2)).map(|i| Reading {
                    id: 1,
                    value: 10.0,
                    timestamp: i,
                }));
                v
            }
        }
    }

    /// Items that must reach the last stage: one summary per input (no input repeats
    /// bytewise, so the noise filter drops none).
    pub fn expected_at_last_stage(self, inputs: &[Reading]) -> u64 {
        inputs.len() as u64
    }
}

fn wait_for(counter: &AtomicU64, expected: u64, limit: Duration) -> bool {
    let start = Instant::now();
    // Acquire pairs with the Release store in the counting inspect.
    while counter.load(Ordering::Acquire) < expected {
        if start.elapsed() > limit {
            return false;
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    true
}

const LIMIT: Duration = Duration::from_secs(600);

/// The body of the counting `inspect` placed first in the last stage, and the counter it
/// publishes to (one plain store per item, identical for both implementations).
fn counting_inspect() -> (Arc<AtomicU64>, impl FnMut(&Summary) + Send + 'static) {
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let mut seen = 0u64;
    let count = move |_: &Summary| {
        seen += 1;
        // Release pairs with the Acquire load in `wait_for`.
        c.store(seen, Ordering::Release);
    };
    (counter, count)
}

/// Records per segment and segments per ring of Roda's bounded pipelines.
pub const BOUNDED_SEGMENT_RECORDS: usize = 1 << 16;
pub const BOUNDED_SEGMENTS: usize = 4;

/// Roda's default layout (`with_capacity`: recycled rings between stages, an elastic
/// last journal; capacity = the run's inputs): returns (events, time from engine
/// creation to the last stage's count).
pub fn run_roda(workload: Workload, inputs: &[Reading]) -> (u64, Duration) {
    run_roda_in(workload, inputs, false)
}

/// Roda with bounded rings ([`BOUNDED_SEGMENTS`] × [`BOUNDED_SEGMENT_RECORDS`] records
/// per journal, recycled, back-pressured); outputs are received as the run goes.
pub fn run_roda_bounded(workload: Workload, inputs: &[Reading]) -> (u64, Duration) {
    run_roda_in(workload, inputs, true)
}

fn run_roda_in(workload: Workload, inputs: &[Reading], bounded: bool) -> (u64, Duration) {
    use roda::prelude::*;
    let expected = workload.expected_at_last_stage(inputs);
    let (counter, count) = counting_inspect();
    let start = Instant::now();
    let engine = if bounded {
        StageEngine::<Reading, Reading>::bounded(BOUNDED_SEGMENT_RECORDS, BOUNDED_SEGMENTS)
    } else {
        StageEngine::<Reading, Reading>::with_capacity(inputs.len())
    };
    let elapsed = match workload {
        Workload::Sensor => {
            let mut engine = engine.add_stage(stateful(key, init, fold)).add_stage(pipe![
                inspect(count),
                delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p))
            ]);
            drive(&mut engine, inputs, &counter, expected, start)
        }
        Workload::ServiceHealth => {
            let mut engine = engine
                .add_stage(pipe![
                    dedup_by(|r: &Reading| (r.id, (r.value * 1000.0) as u64)),
                    stateful(key, init, fold)
                ])
                .add_stage(pipe![
                    inspect(count),
                    delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p)),
                    dedup_by(|a: &Alert| a.id)
                ]);
            drive(&mut engine, inputs, &counter, expected, start)
        }
    };
    (inputs.len() as u64, elapsed)
}

/// Sends every input and waits for the last stage's count, receiving (and dropping)
/// outputs whenever a bounded pipeline needs room; returns the time since `start`,
/// after checking that `await_idle` (exact) agrees.
fn drive(
    engine: &mut roda::StageEngine<Reading, Alert>,
    inputs: &[Reading],
    counter: &AtomicU64,
    expected: u64,
    start: Instant,
) -> Duration {
    let bounded = engine.is_bounded();
    for r in inputs {
        // Receives (and drops) outputs while `send` waits for room in the input ring
        // (bounded: the last ring needs it; default: it keeps the output small).
        engine.send_receiving(r, |_: &Alert| {});
    }
    let deadline = Instant::now() + LIMIT;
    // Acquire pairs with the Release store in the counting inspect.
    while counter.load(Ordering::Acquire) < expected {
        assert!(Instant::now() < deadline, "roda did not finish");
        if bounded {
            while engine.try_receive().is_some() {}
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    let elapsed = start.elapsed();
    loop {
        let idle = engine.await_idle(Duration::from_millis(1));
        while engine.try_receive().is_some() {}
        if idle {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "await_idle disagrees with the count"
        );
    }
    elapsed
}

/// The original implementation (`roda-state` 0.1), same workload, same clock.
pub fn run_original(workload: Workload, inputs: &[Reading]) -> (u64, Duration) {
    use roda_state::{dedup_by, delta, inspect, pipe, stateful, StageEngine};
    let expected = workload.expected_at_last_stage(inputs);
    let (counter, count) = counting_inspect();
    let start = Instant::now();
    let capacity = inputs.len();
    let elapsed = match workload {
        Workload::Sensor => {
            let mut engine = StageEngine::<Reading, Reading>::with_capacity(capacity)
                .add_stage(pipe![stateful(key, init, fold)])
                .add_stage(pipe![inspect(count), delta(|s: &Summary| s.id, alert)]);
            for r in inputs {
                engine.send(r);
            }
            assert!(
                wait_for(&counter, expected, LIMIT),
                "original sensor did not finish"
            );
            start.elapsed()
        }
        Workload::ServiceHealth => {
            let mut engine = StageEngine::<Reading, Reading>::with_capacity(capacity)
                .add_stage(pipe![
                    dedup_by(|r: &Reading| (r.id, (r.value * 1000.0) as u64)),
                    stateful(key, init, fold)
                ])
                .add_stage(pipe![
                    inspect(count),
                    delta(|s: &Summary| s.id, alert),
                    dedup_by(|a: &Alert| a.id)
                ]);
            for r in inputs {
                engine.send(r);
            }
            assert!(
                wait_for(&counter, expected, LIMIT),
                "original service-health did not finish"
            );
            start.elapsed()
        }
    };
    (inputs.len() as u64, elapsed)
}

/// The compute floor: the same stages run on this thread, each output handed straight
/// to the next stage, no journal and no other thread; returns (events, time). A pipeline
/// of a thread per stage can beat it only by spreading that work over more cores: on a
/// machine of `c` cores, by at most `c`×.
pub fn run_one_thread(workload: Workload, inputs: &[Reading]) -> (u64, Duration) {
    let start = Instant::now();
    std::hint::black_box(expected_outputs(workload, std::hint::black_box(inputs)));
    (inputs.len() as u64, start.elapsed())
}

/// The outputs the workload must deliver to the receiver, by running the same stages
/// on this thread (outside any clock).
pub fn expected_outputs(workload: Workload, inputs: &[Reading]) -> u64 {
    use roda::prelude::*;
    let mut count = 0u64;
    match workload {
        Workload::Sensor => {
            let mut first = stateful(key, init, fold);
            let mut second = delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p));
            for r in inputs {
                first.process(r, &mut |s: &Summary| {
                    second.process(s, &mut |_: &Alert| count += 1)
                });
            }
        }
        Workload::ServiceHealth => {
            let mut first = pipe![
                dedup_by(|r: &Reading| (r.id, (r.value * 1000.0) as u64)),
                stateful(key, init, fold)
            ];
            let mut second = pipe![
                delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p)),
                dedup_by(|a: &Alert| a.id)
            ];
            for r in inputs {
                first.process(r, &mut |s: &Summary| {
                    second.process(s, &mut |_: &Alert| count += 1)
                });
            }
        }
    }
    count
}

/// Send all, then drain, on Roda's default layout: `with_capacity(inputs)`, every input
/// sent, then `expected` outputs received; returns (events, time from engine creation
/// to the last receive).
pub fn run_roda_drain(workload: Workload, inputs: &[Reading], expected: u64) -> (u64, Duration) {
    use roda::prelude::*;
    let start = Instant::now();
    let engine = StageEngine::<Reading, Reading>::with_capacity(inputs.len());
    let elapsed = match workload {
        Workload::Sensor => {
            let mut engine = engine
                .add_stage(stateful(key, init, fold))
                .add_stage(delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p)));
            drain_roda(&mut engine, inputs, expected, start)
        }
        Workload::ServiceHealth => {
            let mut engine = engine
                .add_stage(pipe![
                    dedup_by(|r: &Reading| (r.id, (r.value * 1000.0) as u64)),
                    stateful(key, init, fold)
                ])
                .add_stage(pipe![
                    delta(|s: &Summary| s.id, |c: Summary, p| alert(&c, p)),
                    dedup_by(|a: &Alert| a.id)
                ]);
            drain_roda(&mut engine, inputs, expected, start)
        }
    };
    (inputs.len() as u64, elapsed)
}

fn drain_roda(
    engine: &mut roda::StageEngine<Reading, Alert>,
    inputs: &[Reading],
    expected: u64,
    start: Instant,
) -> Duration {
    for r in inputs {
        engine.send(r);
    }
    for _ in 0..expected {
        std::hint::black_box(engine.receive());
    }
    let elapsed = start.elapsed();
    assert!(
        engine.await_idle(LIMIT) && engine.try_receive().is_none(),
        "roda delivered more than the workload predicts"
    );
    elapsed
}

/// Send all, then drain, on the original: `with_capacity(inputs)`, every input sent,
/// then `expected` outputs received.
pub fn run_original_drain(
    workload: Workload,
    inputs: &[Reading],
    expected: u64,
) -> (u64, Duration) {
    use roda_state::{dedup_by, delta, pipe, stateful, StageEngine};
    let start = Instant::now();
    let capacity = inputs.len();
    let elapsed = match workload {
        Workload::Sensor => {
            let mut engine = StageEngine::<Reading, Reading>::with_capacity(capacity)
                .add_stage(pipe![stateful(key, init, fold)])
                .add_stage(pipe![delta(|s: &Summary| s.id, alert)]);
            for r in inputs {
                engine.send(r);
            }
            for _ in 0..expected {
                std::hint::black_box(engine.receive());
            }
            start.elapsed()
        }
        Workload::ServiceHealth => {
            let mut engine = StageEngine::<Reading, Reading>::with_capacity(capacity)
                .add_stage(pipe![
                    dedup_by(|r: &Reading| (r.id, (r.value * 1000.0) as u64)),
                    stateful(key, init, fold)
                ])
                .add_stage(pipe![
                    delta(|s: &Summary| s.id, alert),
                    dedup_by(|a: &Alert| a.id)
                ]);
            for r in inputs {
                engine.send(r);
            }
            for _ in 0..expected {
                std::hint::black_box(engine.receive());
            }
            start.elapsed()
        }
    };
    (inputs.len() as u64, elapsed)
}

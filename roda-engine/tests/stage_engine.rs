//! StageEngine and RodaEngine behaviour: results, exact idleness, metrics, panics,
//! full journals, shutdown, pinning and wait strategies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roda_core::RodaError;
use roda_engine::{Pinning, Progress, RodaEngine, StageEngine, WaitStrategy};
use roda_pipe::{filter, inspect, map, pipe, stateful};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn no_stage_pipeline_echoes_its_input() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(8);
    assert_eq!(engine.send(&7), 0);
    assert_eq!(engine.try_send(&8).unwrap(), 1);
    assert!(engine.await_idle(LONG));
    assert_eq!(engine.receive(), 7);
    assert_eq!(engine.try_receive(), Some(8));
    assert_eq!(engine.try_receive(), None);
    assert!(engine.metrics().is_empty());
    assert_eq!((engine.sent(), engine.capacity()), (2, 8));
}

#[test]
fn stages_transform_in_order_and_receive_blocks_until_output() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(10_000)
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(pipe![filter(|x: &u64| x % 2 == 0), map(|x: &u64| x * 10)]);
    for i in 0..10_000 {
        engine.send(&i);
    }
    let mut got = Vec::new();
    for _ in 0..5_000 {
        got.push(engine.receive());
    }
    let expected: Vec<u64> = (0..10_000u64)
        .map(|x| x + 1)
        .filter(|x| x % 2 == 0)
        .map(|x| x * 10)
        .collect();
    assert_eq!(got, expected);
    assert!(engine.await_idle(LONG));
    assert_eq!(engine.try_receive(), None);
    engine.shutdown().unwrap();
}

#[test]
fn await_idle_is_exact_not_a_quiet_period_guess() {
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let mut engine = StageEngine::<u64, u64>::with_capacity(100).add_stage(map(move |x: &u64| {
        // Holds the first input until the gate opens: nothing moves meanwhile.
        while !g.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        *x
    }));
    engine.send(&1);
    engine.send(&2);
    // Nothing happens for 100 ms, yet the pipeline is not idle.
    assert!(!engine.await_idle(Duration::from_millis(100)));
    assert_eq!(engine.metrics()[0].processed, 0);
    gate.store(true, Ordering::Release);
    assert!(engine.await_idle(LONG));
    let m = &engine.metrics()[0];
    assert_eq!(
        (m.processed, m.emitted, m.input_lag, m.output_len),
        (2, 2, 0, 2)
    );
}

#[test]
fn metrics_count_processed_emitted_lag_and_fill() {
    // Rings of 1,000 records: stage 1's output is a ring, stage 2's the elastic last
    // journal with room for 500 outputs not received.
    let mut engine = StageEngine::<u64, u64>::with_capacity_and_rings(1_000, 1_000)
        .add_stage(filter(|x: &u64| x % 4 == 0))
        .add_stage_with_capacity(map(|x: &u64| x / 4), 500);
    for i in 0..1_000 {
        engine.send(&i);
    }
    assert!(engine.await_idle(LONG));
    let m = engine.metrics();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].name, "stage 1");
    assert_eq!(
        (m[0].processed, m[0].emitted, m[0].input_lag),
        (1_000, 250, 0)
    );
    // Changed on purpose: output_len is the backlog the next stage has not consumed (a
    // ring's content), no longer everything a never-wrapping journal published.
    assert_eq!((m[0].output_len, m[0].output_capacity), (0, 1_000));
    assert_eq!(
        (m[1].processed, m[1].emitted, m[1].input_lag),
        (250, 250, 0)
    );
    assert_eq!((m[1].output_len, m[1].output_capacity), (250, 500));
    assert!((m[1].output_fill() - 0.5).abs() < 1e-9);
    assert_eq!((m[0].output_high_water, m[1].output_high_water), (0, 250));
    let table = roda_engine::StageMetrics::table(&m);
    assert!(
        table.contains("stage 2") && table.contains("50.0%"),
        "{table}"
    );
    // Received outputs leave the backlog; the high-water mark stays.
    for _ in 0..100 {
        engine.receive();
    }
    let m = engine.metrics();
    assert_eq!((m[1].output_len, m[1].output_high_water), (150, 250));
}

#[test]
fn nothing_sent_before_await_idle_is_lost_by_shutdown() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(100_000)
        .add_stage(map(|x: &u64| x * 2))
        .add_stage(map(|x: &u64| x + 1));
    for i in 0..100_000 {
        engine.send(&i);
    }
    assert!(engine.await_idle(LONG));
    engine.shutdown().unwrap();
    let mut n = 0;
    while let Some(x) = engine.try_receive() {
        assert_eq!(x, n * 2 + 1);
        n += 1;
    }
    assert_eq!(n, 100_000);
}

fn panicking_pipeline() -> StageEngine<u64, u64> {
    StageEngine::<u64, u64>::with_capacity(100)
        .add_stage(map(|x: &u64| *x))
        .add_stage(inspect(|x: &u64| {
            if *x == 3 {
                panic!("cannot handle {x}");
            }
        }))
}

#[test]
fn stage_panic_makes_await_idle_false_and_shutdown_report_it() {
    let mut engine = panicking_pipeline();
    // Stages wake on every publish, so stage 2 may panic while these are sent: then
    // `try_send` reports it (where `send` would panic with it), which is not what this
    // test is about.
    for i in 0..10 {
        if let Err(e) = engine.try_send(&i) {
            assert!(matches!(e, RodaError::WorkerPanicked { .. }), "{e}");
        }
    }
    assert!(!engine.await_idle(LONG));
    match engine.first_panic() {
        Some(RodaError::WorkerPanicked { worker, message }) => {
            assert_eq!(worker, "roda stage 2");
            assert_eq!(message, "cannot handle 3");
        }
        other => panic!("{other:?}"),
    }
    let err = engine.shutdown().unwrap_err();
    assert!(err.to_string().contains("stage 2"), "{err}");
    // Shutting down again reports the same panic.
    assert!(engine.shutdown().is_err());
}

#[test]
#[should_panic(expected = "worker 'roda stage 2' panicked: cannot handle 3")]
fn stage_panic_surfaces_in_receive() {
    let mut engine = panicking_pipeline();
    for i in 3..10 {
        engine.send(&i);
    }
    engine.receive();
}

#[test]
fn full_output_journal_panics_naming_stage_and_capacity() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(10)
        .add_stage_with_capacity(stateful(|x: &u64| *x, |x: &u64| *x, |_: &mut u64, _| {}), 4);
    for i in 0..5 {
        engine.send(&i);
    }
    assert!(!engine.await_idle(LONG));
    let err = engine.shutdown().unwrap_err().to_string();
    assert!(
        err.contains("stage 1")
            && err.contains("4 outputs are not received")
            && err.contains("receive more often or raise the capacity"),
        "{err}"
    );
}

// Changed on purpose: a stageless pipeline's input is its elastic last journal, so
// the limit is on records sent and not received (not a lifetime budget).
#[test]
#[should_panic(expected = "the pipeline has no stages and holds 2 records not received")]
fn send_panics_when_the_input_is_full() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(2);
    engine.send(&1);
    engine.send(&2);
    assert!(matches!(
        engine.try_send(&3),
        Err(RodaError::Full { capacity: 2 })
    ));
    engine.send(&3);
}

#[test]
fn bad_capacity_is_an_error_or_a_clear_panic() {
    assert!(matches!(
        StageEngine::<u64, u64>::try_with_capacity(0),
        Err(RodaError::InvalidCapacity { .. })
    ));
    let engine = StageEngine::<u64, u64>::with_capacity(4);
    assert!(engine
        .try_add_stage_with_capacity(map(|x: &u64| *x), 0)
        .is_err());
}

fn run_sum(engine: StageEngine<u64, u64>) -> u64 {
    let mut engine = engine.add_stage(map(|x: &u64| x * 2)).add_stage(stateful(
        |_: &u64| 0u8,
        |x: &u64| *x,
        |sum: &mut u64, x: &u64| *sum += x,
    ));
    for i in 0..1_000 {
        engine.send(&i);
    }
    assert!(engine.await_idle(LONG));
    let mut last = 0;
    while let Some(x) = engine.try_receive() {
        last = x;
    }
    engine.shutdown().unwrap();
    last
}

#[test]
fn every_wait_strategy_preset_runs_the_pipeline() {
    let expected = (0..1_000u64).map(|x| x * 2).sum::<u64>();
    for wait in [
        WaitStrategy::BusySpin,
        WaitStrategy::Adaptive,
        WaitStrategy::LowPower,
        WaitStrategy::adaptive().with_park_max(Duration::from_micros(10)),
    ] {
        let engine = StageEngine::<u64, u64>::with_capacity(1_000).with_wait_strategy(wait);
        assert_eq!(run_sum(engine), expected, "{wait:?}");
    }
}

#[test]
fn pinning_on_and_off_gives_the_same_results() {
    let expected = (0..1_000u64).map(|x| x * 2).sum::<u64>();
    for pinning in [Pinning::None, Pinning::Auto, Pinning::Cores(vec![0])] {
        let engine = StageEngine::<u64, u64>::with_capacity(1_000).with_pinning(pinning.clone());
        assert_eq!(run_sum(engine), expected, "{pinning:?}");
    }
}

#[test]
fn roda_engine_runs_workers_reports_panics_and_makes_stores() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = RodaEngine::builder()
        .pin_auto()
        .wait_strategy(WaitStrategy::LowPower)
        .build();
    assert_eq!(engine.wait_strategy(), WaitStrategy::LowPower);
    let mut journal = engine
        .journal_at::<u64>(dir.path().join("j.roda"), 100)
        .unwrap();
    let mut slots = engine
        .slots_at::<u64>(dir.path().join("s.roda"), 4)
        .unwrap();
    let view = slots.reader();
    assert!(engine.journal::<u64>(10).is_ok() && engine.slots::<u64>(2).is_ok());
    let mut reader = journal.reader();
    let steps = Arc::new(AtomicU64::new(0));
    let s = steps.clone();
    let handle = engine
        .run_worker("copier", move || {
            s.fetch_add(1, Ordering::Relaxed);
            match reader.next() {
                Some(x) => {
                    slots.set(0, x);
                    Progress::Busy
                }
                None => Progress::Idle,
            }
        })
        .unwrap();
    assert_eq!(handle.name(), "copier");
    let exploded = Arc::new(AtomicBool::new(false));
    let e = exploded.clone();
    engine
        .run_worker("doomed", move || {
            e.store(true, Ordering::Release);
            panic!("worker exploded")
        })
        .unwrap();
    assert_eq!(engine.workers(), 2);
    journal.append(&41);
    handle.unpark();
    // Both workers must have run before shutdown (a worker stopped before its first
    // step would never panic).
    while view.get(0) != Some(41) || !exploded.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    while engine.first_panic().is_none() {
        std::thread::yield_now();
    }
    match engine.shutdown() {
        Err(RodaError::WorkerPanicked { worker, message }) => {
            assert_eq!(
                (worker.as_str(), message.as_str()),
                ("doomed", "worker exploded")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.workers(), 0);
    // Stopped workers take no more steps.
    let after = steps.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(steps.load(Ordering::Relaxed), after);
}

#[test]
fn dropping_an_engine_stops_its_workers() {
    let steps = Arc::new(AtomicU64::new(0));
    {
        let mut engine = RodaEngine::new();
        let s = steps.clone();
        engine
            .run_worker("idle", move || {
                s.fetch_add(1, Ordering::Relaxed);
                Progress::Idle
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = steps.load(Ordering::Relaxed);
    assert!(after > 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(steps.load(Ordering::Relaxed), after);
}

// ---- bounded pipelines ----

/// Emits `3x`, `3x + 1`, `3x + 2` for each input `x`.
struct Triple;

impl roda_pipe::Stage<u64, u64> for Triple {
    fn process<C: roda_pipe::Collector<u64>>(&mut self, x: &u64, out: &mut C) {
        for k in 0..3 {
            out.push(&(x * 3 + k));
        }
    }
}

/// Sends `0..n` through `engine`, receiving between sends; returns the outputs in order.
fn run_bounded(engine: &mut StageEngine<u64, u64>, n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..n {
        while engine.try_send(&i).is_err() {
            out.extend(std::iter::from_fn(|| engine.try_receive()));
        }
    }
    loop {
        let idle = engine.is_idle();
        out.extend(std::iter::from_fn(|| engine.try_receive()));
        if idle {
            return out;
        }
        assert!(engine.first_panic().is_none());
    }
}

#[test]
fn bounded_pipeline_runs_far_more_records_than_its_rings_hold() {
    let mut engine = StageEngine::<u64, u64>::bounded(64, 4)
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(pipe![filter(|x: &u64| x % 2 == 0), map(|x: &u64| x * 10)]);
    assert!(engine.is_bounded());
    assert_eq!(engine.capacity(), 256);
    let n = 200_000u64;
    let got = run_bounded(&mut engine, n);
    let expected: Vec<u64> = (0..n)
        .map(|x| x + 1)
        .filter(|x| x % 2 == 0)
        .map(|x| x * 10)
        .collect();
    assert_eq!(got, expected);
    let m = engine.metrics();
    assert_eq!((m[0].processed, m[0].emitted), (n, n));
    assert_eq!((m[1].processed, m[1].emitted), (n, n / 2));
    // Everything was read: nothing left in any ring.
    assert_eq!((m[0].output_len, m[1].output_len), (0, 0));
    assert_eq!((m[0].output_capacity, m[1].output_capacity), (256, 256));
    engine.shutdown().unwrap();
}

#[test]
fn bounded_stages_wait_for_the_receiver_without_losing_anything() {
    // A stage that emits 3 outputs per input fills its small ring long before the
    // receiver reads: it must wait, not fail or drop.
    let mut engine = StageEngine::<u64, u64>::bounded(8, 2).add_stage(Triple);
    for i in 0..10 {
        engine.send(&i);
    }
    // 30 outputs, a 16-record output ring: the stage waits for the receiver mid-batch.
    let got: Vec<u64> = (0..30).map(|_| engine.receive()).collect();
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    let got = run_bounded(&mut engine, 10_000);
    assert_eq!(got, (0..30_000).collect::<Vec<_>>());
    assert_eq!(engine.metrics()[0].emitted, 30_030);
    engine.shutdown().unwrap();
}

#[test]
fn bounded_metrics_show_the_backlog_and_await_idle_stays_exact() {
    let mut engine = StageEngine::<u64, u64>::bounded(16, 4).add_stage(map(|x: &u64| *x));
    for i in 0..40 {
        engine.send(&i);
    }
    assert!(engine.await_idle(LONG));
    let m = &engine.metrics()[0];
    assert_eq!((m.processed, m.output_len, m.output_capacity), (40, 40, 64));
    for i in 0..10 {
        assert_eq!(engine.receive(), i);
    }
    assert_eq!(engine.metrics()[0].output_len, 30);
    // 40 more outputs do not fit behind 30 unread ones in a 64-record ring: the stage
    // waits, and the pipeline cannot be idle until the receiver reads.
    for i in 40..80 {
        engine.send(&i);
    }
    assert!(!engine.await_idle(Duration::from_millis(50)));
    assert!(engine.metrics()[0].output_len <= 64);
    let mut next = 10;
    for i in 80..200 {
        while engine.try_send(&i).is_err() {
            while let Some(x) = engine.try_receive() {
                assert_eq!(x, next);
                next += 1;
            }
        }
    }
    while next < 200 {
        assert_eq!(engine.receive(), next);
        next += 1;
    }
    assert!(engine.await_idle(LONG));
    assert_eq!(engine.try_receive(), None);
    engine.shutdown().unwrap();
}

#[test]
fn bounded_send_reports_a_pipeline_stalled_on_its_own_output() {
    let mut engine = StageEngine::<u64, u64>::bounded(4, 2).add_stage(map(|x: &u64| *x));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Never receiving: 8 outputs fill the output ring, 8 inputs the input ring.
        for i in 0..100 {
            engine.send(&i);
        }
    }));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("stalled on its own output"), "{message}");
    assert!(message.contains("try_receive"), "{message}");
    // The pipeline is intact: receiving lets everything sent flow again.
    let got: Vec<u64> = (0..12).map(|_| engine.receive()).collect();
    assert_eq!(got, (0..12).collect::<Vec<_>>());
    engine.shutdown().unwrap();
}

#[test]
fn bounded_input_without_stages_frees_a_segment_at_a_time() {
    let mut engine = StageEngine::<u64, u64>::bounded(4, 2);
    for i in 0..8 {
        engine.send(&i);
    }
    assert!(matches!(
        engine.try_send(&8),
        Err(RodaError::WouldBlock { capacity: 8 })
    ));
    assert_eq!(engine.receive(), 0);
    // Reading one record frees nothing (its segment is still held) until the segment
    // is left; reading four frees a segment.
    for i in 1..5 {
        assert_eq!(engine.receive(), i);
    }
    assert_eq!(engine.send(&8), 8);
}

#[test]
fn bounded_stage_panic_surfaces_in_send_and_shutdown_does_not_hang() {
    let mut engine = StageEngine::<u64, u64>::bounded(4, 2)
        .add_stage(map(|x: &u64| *x))
        .add_stage(map(|x: &u64| {
            assert!(*x < 3, "stage 2 refuses {x}");
            *x
        }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..1_000 {
            // Receive as we go: only the panic can stop this loop.
            while engine.try_send(&i).is_err() {
                while engine.try_receive().is_some() {}
                if let Some(err) = engine.first_panic() {
                    panic!("{err}");
                }
            }
        }
        engine.send(&1_000);
    }));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("stage 2 refuses 3"), "{message}");
    assert!(!engine.await_idle(Duration::from_millis(10)));
    // Stage 1 may be waiting for room in stage 2's input forever: shutdown stops it.
    let err = engine.shutdown().unwrap_err();
    assert!(err.to_string().contains("stage 2 refuses 3"), "{err}");
}

#[test]
fn bounded_stage_waiting_for_room_stops_at_shutdown() {
    let mut engine = StageEngine::<u64, u64>::bounded(4, 2).add_stage(map(|x: &u64| *x));
    // Stage 1 fills its output ring and waits for a receiver that never comes.
    for i in 0..16 {
        engine.send(&i);
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(!engine.is_idle());
    engine.shutdown().unwrap();
    // Outputs published before shutdown stay receivable.
    assert_eq!(engine.try_receive(), Some(0));
}

#[test]
fn bounded_rings_with_custom_capacity_and_bad_shapes() {
    let mut engine = StageEngine::<u64, u64>::bounded(16, 4)
        .add_stage_with_capacity(map(|x: &u64| x + 1), 1_000);
    assert_eq!(engine.metrics()[0].output_capacity, 1_000);
    assert_eq!(
        run_bounded(&mut engine, 5_000),
        (1..=5_000).collect::<Vec<_>>()
    );
    assert!(StageEngine::<u64, u64>::try_bounded(16, 1).is_err());
    assert!(StageEngine::<u64, u64>::try_bounded(0, 4).is_err());
    let message = std::panic::catch_unwind(|| StageEngine::<u64, u64>::bounded(16, 1))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("at least 2 segments"), "{message}");
}

#[test]
fn bounded_pipeline_runs_under_every_wait_strategy() {
    for wait in [
        WaitStrategy::busy_spin(),
        WaitStrategy::adaptive(),
        WaitStrategy::low_power(),
    ] {
        let mut engine = StageEngine::<u64, u64>::bounded(32, 3)
            .with_wait_strategy(wait)
            .add_stage(map(|x: &u64| x * 2))
            .add_stage(map(|x: &u64| x + 1));
        let got = run_bounded(&mut engine, 20_000);
        assert_eq!(got.len(), 20_000);
        assert!(got.iter().enumerate().all(|(i, x)| *x == i as u64 * 2 + 1));
        engine.shutdown().unwrap();
    }
}

// ---- with_capacity: recycled rings, an elastic output ----

#[test]
fn capacity_bounds_outputs_not_received_not_the_lifetime() {
    // A stageless pipeline: 100 rounds of 8 through a capacity of 8.
    let mut engine = StageEngine::<u64, u64>::with_capacity(8);
    for round in 0..100u64 {
        for i in 0..8 {
            engine.send(&(round * 8 + i));
        }
        assert!(matches!(
            engine.try_send(&0),
            Err(RodaError::Full { capacity: 8 })
        ));
        for i in 0..8 {
            assert_eq!(engine.receive(), round * 8 + i);
        }
    }
    // With stages: 100,000 records through a capacity of 100, received as they come.
    let mut engine = StageEngine::<u64, u64>::with_capacity_and_rings(100, 16)
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(map(|x: &u64| x * 2));
    let mut next = 0u64;
    for i in 0..100_000u64 {
        engine.send(&i);
        while let Some(x) = engine.try_receive() {
            assert_eq!(x, (next + 1) * 2);
            next += 1;
        }
    }
    while next < 100_000 {
        assert_eq!(engine.receive(), (next + 1) * 2);
        next += 1;
    }
    assert!(engine.metrics()[1].output_high_water <= 100);
    engine.shutdown().unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    id: u64,
    value: f64,
    timestamp: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Summary {
    id: u64,
    window: u64,
    sum: f64,
    count: u64,
}

/// The sensor pipeline's two stages: a per-window summary, then an alert when a
/// window's mean jumps by half over the previous one.
fn sensor_stages() -> (
    impl roda_pipe::Stage<Reading, Summary> + Send + 'static,
    impl roda_pipe::Stage<Summary, Summary> + Send + 'static,
) {
    let summary = stateful(
        |r: &Reading| (r.id, r.timestamp / 100_000),
        |r: &Reading| Summary {
            id: r.id,
            window: r.timestamp / 100_000,
            sum: r.value,
            count: 1,
        },
        |s: &mut Summary, r: &Reading| {
            s.sum += r.value;
            s.count += 1;
        },
    );
    let alert = roda_pipe::delta(
        |s: &Summary| s.id,
        |c: Summary, p: Option<Summary>| {
            let p = p?;
            (c.sum / c.count as f64 > p.sum / p.count as f64 * 1.5).then_some(c)
        },
    );
    (summary, alert)
}

fn sensor_inputs(n: u64) -> Vec<Reading> {
    const P: [(f64, u64); 4] = [
        (10.0, 10_000),
        (12.0, 20_000),
        (20.0, 110_000),
        (22.0, 120_000),
    ];
    (0..n)
        .map(|i| {
            let (value, timestamp) = P[(i % 4) as usize];
            Reading {
                id: i % 3,
                value,
                timestamp: timestamp + i / 4 * 200_000,
            }
        })
        .collect()
}

#[test]
fn send_n_then_drain_a_sensor_pipeline() {
    use roda_pipe::Stage;
    let n = 200_000u64;
    let inputs = sensor_inputs(n);
    // The model: the same stages applied in order on this thread.
    let (mut summary, mut alert) = sensor_stages();
    let mut summaries: Vec<Summary> = Vec::new();
    for r in &inputs {
        summary.process(r, &mut summaries);
    }
    let mut expected: Vec<Summary> = Vec::new();
    for s in &summaries {
        alert.process(s, &mut expected);
    }
    assert!(expected.len() > 10_000, "the workload raises alerts");
    // The program the docs teach: every input sent first, then every output received.
    let (summary, alert) = sensor_stages();
    let mut engine = StageEngine::<Reading, Reading>::with_capacity(n as usize)
        .add_stage(summary)
        .add_stage(alert);
    for r in &inputs {
        engine.send(r);
    }
    let received: Vec<Summary> = (0..expected.len()).map(|_| engine.receive()).collect();
    assert_eq!(received, expected);
    assert!(engine.await_idle(LONG));
    assert_eq!(engine.try_receive(), None);
    let m = engine.metrics();
    assert_eq!(m[0].processed, n);
    // The receiver started while the stages ran: the backlog peaked below the total.
    assert!(m[1].output_high_water > 0 && m[1].output_high_water <= expected.len() as u64);
    assert_eq!(m[1].output_capacity, n as usize);
    engine.shutdown().unwrap();
}

#[test]
fn n_outputs_not_received_fit_and_one_more_panics_the_last_stage() {
    let n = 1_000u64;
    let mut engine = StageEngine::<u64, u64>::with_capacity_and_rings(n as usize, 16)
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(map(|x: &u64| x * 3));
    for i in 0..n {
        engine.send(&i);
    }
    assert!(engine.await_idle(LONG), "n outputs not received fit");
    assert_eq!(engine.metrics()[1].output_fill(), 1.0);
    engine.send(&n);
    assert!(
        !engine.await_idle(LONG),
        "output n + 1 fails the last stage"
    );
    match engine.first_panic() {
        Some(RodaError::WorkerPanicked { worker, message }) => {
            assert_eq!(worker, "roda stage 2");
            assert!(
                message.contains("stage 2")
                    && message.contains("1000 outputs are not received")
                    && message.contains("receive more often or raise the capacity"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // What was published stays receivable.
    for i in 0..n {
        assert_eq!(engine.receive(), (i + 1) * 3);
    }
    assert!(engine.shutdown().is_err());
}

fn panics_on_first_input() -> StageEngine<u64, u64> {
    StageEngine::<u64, u64>::with_capacity_and_rings(1_000, 16).add_stage(map(|x: &u64| {
        if *x == 0 {
            panic!("bad input {x}");
        }
        *x
    }))
}

#[test]
#[should_panic(expected = "StageEngine::send: worker 'roda stage 1' panicked: bad input 0")]
fn a_stage_panic_reaches_send_instead_of_a_wait_forever() {
    let mut engine = panics_on_first_input();
    // The input ring holds 16: send 17 and more must wait for room that never comes.
    for i in 0..1_000 {
        engine.send(&i);
    }
}

#[test]
fn a_stage_panic_reaches_try_send_await_idle_and_shutdown() {
    let mut engine = panics_on_first_input();
    let deadline = std::time::Instant::now() + LONG;
    let err = loop {
        match engine.try_send(&0) {
            Ok(_) => {}
            Err(RodaError::WouldBlock { .. }) => {
                assert!(std::time::Instant::now() < deadline, "no panic reported");
                std::thread::yield_now();
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, RodaError::WorkerPanicked { message, .. } if message == "bad input 0"),
        "{err}"
    );
    assert!(!engine.await_idle(LONG));
    assert!(engine.shutdown().is_err());
}

#[test]
fn send_waits_for_room_and_metrics_count_the_wait() {
    // A slow stage behind a 4-record ring: send waits, never fails.
    let mut engine =
        StageEngine::<u64, u64>::with_capacity_and_rings(10_000, 4).add_stage(map(|x: &u64| {
            std::thread::sleep(Duration::from_micros(20));
            *x
        }));
    for i in 0..2_000 {
        engine.send(&i);
    }
    assert!(engine.send_wait() > Duration::ZERO);
    assert_eq!(engine.metrics()[0].input_wait, engine.send_wait());
    for i in 0..2_000 {
        assert_eq!(engine.receive(), i);
    }
    engine.shutdown().unwrap();
}

#[test]
fn ring_size_per_stage_and_capacity_of_the_last() {
    let mut engine = StageEngine::<u64, u64>::with_capacity(77)
        .add_stage_with_capacity(map(|x: &u64| *x), 40)
        .add_stage(map(|x: &u64| *x));
    engine.send(&1);
    assert_eq!(engine.receive(), 1);
    let m = engine.metrics();
    assert_eq!((m[0].output_capacity, m[1].output_capacity), (40, 77));
    assert_eq!(engine.capacity(), 77);
    assert!(!engine.is_bounded());
}

#[test]
fn a_huge_capacity_maps_only_what_the_backlog_needs() {
    // 2^40 outputs allowed not received: the elastic output starts small and grows by
    // segments only as the receiver lags.
    let mut engine =
        StageEngine::<u64, u64>::with_capacity(1 << 40).add_stage(map(|x: &u64| x + 1));
    for i in 0..1_000u64 {
        engine.send(&i);
    }
    for i in 0..1_000u64 {
        assert_eq!(engine.receive(), i + 1);
    }
    assert_eq!(engine.capacity(), 1 << 40);
    assert_eq!(engine.metrics()[0].output_capacity, 1 << 40);
    engine.shutdown().unwrap();
}

//! Wake on publish in pipelines: idle stages and `receive` sleep on their input
//! journal's wake word, and a publish, a shutdown, a drop or a stage panic wakes them.
//!
//! Every test uses a strategy whose timers are all 10 s (park timeouts and the safety
//! timeout), so nothing but a wake-up can end a sleep early: a lost wake-up shows as a
//! wait of 10 s, a woken one ends within microseconds to milliseconds (the bounds
//! below leave room for a loaded 2-core machine). Before waking on publish an idle
//! stage slept out its park timeout, which these strategies make 10 s.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use roda_engine::{StageEngine, WaitStrategy};
use roda_pipe::map;

const TEN_S: Duration = Duration::from_secs(10);
/// A woken wait ends well within this; one left to a timer takes 10 s.
const PROMPT: Duration = Duration::from_secs(2);

/// Default spinning, then sleeps that only a wake-up ends before 10 s.
fn sleepy() -> WaitStrategy {
    WaitStrategy::adaptive()
        .with_park_min(TEN_S)
        .with_park_max(TEN_S)
        .with_safety_timeout(TEN_S)
}

/// Lets every stage and the receiver run out of spinning and fall asleep.
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}

fn two_stages(wait: WaitStrategy) -> StageEngine<u64, u64> {
    StageEngine::<u64, u64>::with_capacity(1_000)
        .with_wait_strategy(wait)
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(map(|x: &u64| x * 2))
}

#[test]
fn sparse_sends_wake_sleeping_stages_and_receive() {
    let mut engine = two_stages(sleepy());
    let mut slowest = Duration::ZERO;
    for i in 0..20u64 {
        settle(); // both stages and the receiver asleep
        let start = Instant::now();
        engine.send(&i);
        assert_eq!(engine.receive(), (i + 1) * 2);
        let took = start.elapsed();
        slowest = slowest.max(took);
        assert!(took < PROMPT, "record {i} took {took:?}: a lost wake-up");
    }
    // Each record found both stages asleep (the last stage starts at the first send,
    // so it may have slept one time fewer); a little slack for a slow machine.
    let metrics = engine.metrics();
    for stage in &metrics {
        assert!(
            stage.wakeups >= 15,
            "{} slept and was woken only {} times",
            stage.name,
            stage.wakeups
        );
    }
    println!("slowest send -> receive: {slowest:?}");
    engine.shutdown().unwrap();
}

#[test]
fn bounded_pipelines_wake_too() {
    let mut engine = StageEngine::<u64, u64>::bounded(64, 2)
        .with_wait_strategy(sleepy())
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(map(|x: &u64| x + 1));
    for i in 0..5u64 {
        settle();
        let start = Instant::now();
        engine.send(&i);
        assert_eq!(engine.receive(), i + 2);
        assert!(start.elapsed() < PROMPT, "record {i}: a lost wake-up");
    }
    engine.shutdown().unwrap();
}

#[test]
fn shutdown_wakes_sleeping_stages() {
    let mut engine = two_stages(sleepy());
    engine.send(&1);
    assert_eq!(engine.receive(), 4);
    settle();
    let start = Instant::now();
    engine.shutdown().unwrap();
    let took = start.elapsed();
    assert!(
        took < PROMPT,
        "shutdown took {took:?}: sleeping stages not woken"
    );
}

#[test]
fn drop_wakes_sleeping_stages() {
    let mut engine = two_stages(sleepy());
    engine.send(&1);
    assert_eq!(engine.receive(), 4);
    settle();
    let start = Instant::now();
    drop(engine);
    let took = start.elapsed();
    assert!(
        took < PROMPT,
        "drop took {took:?}: sleeping stages not woken"
    );
}

#[test]
fn a_stage_panic_wakes_a_sleeping_receive() {
    // Stage 2 panics on its second input while the receiver sleeps on its output.
    let mut engine = StageEngine::<u64, u64>::with_capacity(1_000)
        .with_wait_strategy(sleepy())
        .add_stage(map(|x: &u64| x + 1))
        .add_stage(map(|x: &u64| {
            if *x == 2 {
                // Late enough that the receiver is asleep by then.
                std::thread::sleep(Duration::from_millis(100));
                panic!("stage 2 refuses {x}");
            }
            *x
        }));
    engine.send(&0);
    assert_eq!(engine.receive(), 1);
    engine.send(&1);
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| engine.receive()));
    let took = start.elapsed();
    let message = *result
        .expect_err("receive panics with the stage's message")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("stage 2 refuses 2"), "{message}");
    assert!(took < PROMPT, "receive noticed the panic after {took:?}");
    // Stage 1 still sleeps on its input (its writer, this engine, is alive): the
    // shutdown must wake it too.
    settle();
    let start = Instant::now();
    assert!(engine.shutdown().is_err());
    let took = start.elapsed();
    assert!(took < PROMPT, "shutdown after a panic took {took:?}");
}

#[test]
fn a_stage_whose_upstream_panicked_stops_promptly() {
    // Stage 1 panics: its output writer is gone, so stage 2 can no longer sleep on it
    // (every sleep would end at once); it parks until the shutdown unparks it.
    let mut engine = StageEngine::<u64, u64>::with_capacity(1_000)
        .with_wait_strategy(sleepy())
        .add_stage(map(|x: &u64| {
            if *x == 1 {
                panic!("stage 1 refuses {x}");
            }
            *x
        }))
        .add_stage(map(|x: &u64| x + 10));
    engine.send(&0);
    assert_eq!(engine.receive(), 10);
    engine.send(&1);
    let deadline = Instant::now() + PROMPT;
    while engine.first_panic().is_none() {
        assert!(Instant::now() < deadline, "stage 1 did not panic");
        std::thread::sleep(Duration::from_millis(1));
    }
    settle();
    let before = engine.metrics()[1].wakeups;
    settle();
    // Parked, not spinning on a closed journal: its wake-up count stands still.
    assert_eq!(engine.metrics()[1].wakeups, before);
    let start = Instant::now();
    assert!(engine.shutdown().is_err());
    let took = start.elapsed();
    assert!(took < PROMPT, "shutdown took {took:?}");
}

#[test]
fn busy_spin_stages_never_sleep() {
    let mut engine = two_stages(WaitStrategy::busy_spin());
    for i in 0..3u64 {
        engine.send(&i);
        assert_eq!(engine.receive(), (i + 1) * 2);
    }
    settle();
    assert!(engine.metrics().iter().all(|s| s.wakeups == 0));
    engine.shutdown().unwrap();
}

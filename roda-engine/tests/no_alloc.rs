//! Steady-state pipeline steps allocate nothing: a counting global allocator (this test
//! binary only, counting every thread) sees no allocation while warmed-up stages
//! process 100,000 inputs, including `try_send`, `await_idle` and `try_receive`, in
//! `with_capacity` pipelines (rings between stages, an elastic last journal; with the
//! default rings and with tiny ones that wrap, and an output that reuses and gives back
//! segments, thousands of times) and in bounded ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use roda_engine::StageEngine;
use roda_pipe::{dedup_by, delta, map, pipe, stateful};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sensor: u64,
    value: u64,
}

const KEYS: u64 = 64;
const STEPS: u64 = 100_000;

/// Both layouts in turn. The counter is global (every thread), so this binary has no
/// test harness (`harness = false` in Cargo.toml): libtest's threads allocate for their
/// bookkeeping at moments no test controls, and nothing but this may run during a count.
fn main() {
    // Default rings (65,536 of these records each): the warm-up burst grows the elastic
    // output past the most the measured loop can leave in it (both rings' worth).
    assert_steady_state_allocates_nothing(
        || StageEngine::<Reading, Reading>::with_capacity(1 << 20),
        150_000,
        0,
    );
    // Rings of 4 × 4 records and an output in segments of 4 (4 kept as its base): rings
    // wrap, the output grows in the burst, then gives the memory back and reuses its
    // base segments as the run goes. Growth is the one thing that may allocate, so the
    // measured loop settles (await_idle, then drains) every 8 inputs: a backlog of at
    // most 8 spans at most 4 live segments (with the one of the last record received).
    assert_steady_state_allocates_nothing(
        || StageEngine::<Reading, Reading>::with_capacity_and_rings(1 << 20, 16),
        5_000,
        8,
    );
    // Rings far smaller than the run: every segment is recycled many times, and stages
    // wait for room (the back-pressure path) as well.
    assert_steady_state_allocates_nothing(
        || StageEngine::<Reading, Reading>::bounded(256, 4),
        0,
        0,
    );
    println!("no_alloc: with_capacity and bounded pipelines allocated nothing in steady state");
}

/// Builds the pipeline on `new()`'s journals, warms it up (with a burst of `burst`
/// inputs sent before any output is received), and counts allocations over the steady
/// state, waiting for idle and draining every `settle_every` inputs (0: never).
fn assert_steady_state_allocates_nothing(
    new: impl FnOnce() -> StageEngine<Reading, Reading>,
    burst: u64,
    settle_every: u64,
) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    let mut engine = new()
        .add_stage(pipe![
            dedup_by(|r: &Reading| r.sensor).with_capacity(KEYS as usize),
            stateful(
                |r: &Reading| r.sensor,
                |r: &Reading| *r,
                |s: &mut Reading, r: &Reading| s.value += r.value,
            )
            .with_capacity(KEYS as usize)
        ])
        .add_stage(pipe![
            delta(
                |r: &Reading| r.sensor,
                |c: Reading, p: Option<Reading>| {
                    p.map(|p| Reading {
                        sensor: c.sensor,
                        value: c.value - p.value,
                    })
                }
            )
            .with_capacity(KEYS as usize),
            map(|r: &Reading| *r)
        ]);
    // Warm-up: every key once through every keyed pipe, every thread started.
    for k in 0..2 * KEYS {
        engine.send(&Reading {
            sensor: k % KEYS,
            value: k,
        });
    }
    for k in 0..burst {
        engine.send(&Reading {
            sensor: k % KEYS,
            value: k,
        });
    }
    assert!(engine.await_idle(Duration::from_secs(30)));
    while engine.try_receive().is_some() {}

    COUNTING.store(true, Ordering::SeqCst);
    let mut received = 0u64;
    for i in 0..STEPS {
        let reading = Reading {
            sensor: i % KEYS,
            value: i + 1,
        };
        while engine.try_send(&reading).is_err() {
            while engine.try_receive().is_some() {
                received += 1;
            }
        }
        if settle_every > 0 && (i + 1) % settle_every == 0 {
            assert!(engine.await_idle(Duration::from_secs(30)));
        }
        while engine.try_receive().is_some() {
            received += 1;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let idle = loop {
        let idle = engine.await_idle(Duration::from_millis(1));
        while engine.try_receive().is_some() {
            received += 1;
        }
        if idle || std::time::Instant::now() > deadline {
            break idle;
        }
    };
    COUNTING.store(false, Ordering::SeqCst);
    assert!(idle);
    assert_eq!(received, STEPS);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(allocations, 0, "steady state allocated {allocations} times");
    // The counter itself works.
    COUNTING.store(true, Ordering::SeqCst);
    std::hint::black_box(vec![0u8; 64]);
    COUNTING.store(false, Ordering::SeqCst);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) >= 1);
}

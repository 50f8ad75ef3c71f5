//! Steady-state pipeline steps allocate nothing: a counting global allocator (this test
//! binary only, counting every thread) sees no allocation while warmed-up stages
//! process 100,000 inputs, including `send`, `await_idle` and `try_receive`.

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

#[test]
fn warmed_up_pipeline_allocates_nothing() {
    let mut engine = StageEngine::<Reading, Reading>::with_capacity((STEPS + 2 * KEYS) as usize)
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
    assert!(engine.await_idle(Duration::from_secs(30)));
    while engine.try_receive().is_some() {}

    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..STEPS {
        engine.send(&Reading {
            sensor: i % KEYS,
            value: i + 1,
        });
        if i % 1_000 == 0 {
            while engine.try_receive().is_some() {}
        }
    }
    let idle = engine.await_idle(Duration::from_secs(60));
    let mut received = 0u64;
    while engine.try_receive().is_some() {
        received += 1;
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(idle);
    assert!(received > 0);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(allocations, 0, "steady state allocated {allocations} times");
    // The counter itself works.
    COUNTING.store(true, Ordering::SeqCst);
    std::hint::black_box(vec![0u8; 64]);
    COUNTING.store(false, Ordering::SeqCst);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) >= 1);
}

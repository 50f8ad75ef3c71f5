//! The slot seqlock under the loom model checker: one writer, one reader, a two-word
//! record whose words must always be equal. Each known-broken variant (a fence removed
//! through `loom_hooks`) must be caught, proving the model bites.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_slots`
#![cfg(roda_loom)]

use std::cell::Cell;

use loom::thread;
use roda_store::{loom_hooks, SlotStore};

std::thread_local! {
    /// Executions explored by the last `check` on this test thread (a model that
    /// explores one execution proves nothing). loom runs a model's threads on the
    /// calling OS thread, so the thread-local sees them all.
    static EXECUTIONS: Cell<usize> = const { Cell::new(0) };
}

/// Writer sets slot 0 to `[1, 1]` then `[2, 2]`; the reader takes two snapshots, each of
/// which must be consistent, and versions must not go backwards.
fn model() {
    EXECUTIONS.with(|n| n.set(n.get() + 1));
    let mut store = SlotStore::<[u64; 2]>::in_memory(1).unwrap();
    let reader = store.reader();
    let writer = thread::spawn(move || {
        store.set(0, &[1, 1]);
        store.set(0, &[2, 2]);
    });
    let mut last = 0;
    for _ in 0..2 {
        if let Some([a, b]) = reader.get(0) {
            assert_eq!(a, b, "torn snapshot");
            assert!(a >= last, "snapshot went backwards");
            last = a;
        }
    }
    writer.join().unwrap();
    assert_eq!(reader.get(0), Some([2, 2]));
    assert_eq!(reader.version(0), 2);
}

fn check(skip_writer_fence: bool, skip_reader_fence: bool) {
    loom_hooks::set_skip_writer_fence(skip_writer_fence);
    loom_hooks::set_skip_reader_fence(skip_reader_fence);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    EXECUTIONS.with(|n| n.set(0));
    builder.check(model);
}

#[test]
fn seqlock_snapshots_are_consistent() {
    check(false, false);
    let explored = EXECUTIONS.with(Cell::get);
    assert!(explored > 100, "only {explored} executions explored");
}

#[test]
#[should_panic(expected = "torn snapshot")]
fn broken_without_reader_fence_is_caught() {
    check(false, true);
}

#[test]
#[should_panic(expected = "torn snapshot")]
fn broken_without_writer_fence_is_caught() {
    check(true, false);
}

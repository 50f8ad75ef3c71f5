//! loom model of the segmented journal's gating: a writer appends 3 records into a ring
//! of 2 one-record segments (so record 2 recycles record 0's segment) while a reader
//! follows. The writer must wait until the reader has left a segment before reusing it;
//! the reader must see every record intact and in order. The broken variant recycles
//! without checking the gate, and loom must catch the overwrite racing the reader.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_segmented`
#![cfg(roda_loom)]

mod loom_support;

use roda_store::{loom_hooks, SegmentedJournal};

/// Runs the model; returns how many executions loom explored.
fn model() -> usize {
    loom_support::explore(|| {
        let mut journal = SegmentedJournal::<[u64; 2]>::in_memory(1, 2).unwrap();
        let mut reader = journal.reader();
        let writer = loom::thread::spawn(move || {
            for i in 1..=3u64 {
                while journal.try_append(&[i, !i]).is_err() {
                    loom::thread::yield_now();
                }
            }
        });
        let mut seen = 0u64;
        while seen < 3 {
            match reader.next() {
                Some(record) => {
                    seen += 1;
                    assert_eq!(*record, [seen, !seen], "torn, overwritten or out of order");
                }
                None => loom::thread::yield_now(),
            }
        }
        writer.join().unwrap();
    })
}

#[test]
fn writer_waits_for_the_reader_before_recycling() {
    loom_support::assert_explored(model());
}

#[test]
#[should_panic(expected = "Causality violation")]
fn recycling_without_the_gate_check_is_caught() {
    loom_hooks::set_skip_gate_check(true);
    model();
}

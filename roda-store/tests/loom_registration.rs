//! loom model of gating-reader registration racing a roll: a writer appends 3 records
//! into a ring of 2 one-record segments (record 2 recycles record 0's segment) while
//! the reader's thread clones its reader (registering a new gate) and drops the
//! original. The clone lands in gate 0, below the original's gate 1, so a writer that
//! scans the gates once can check gate 0 before the clone claims it and gate 1 after
//! the original left: it would then recycle record 0 under the clone's `&T`. The
//! writer must validate its scan against the registrations (and re-scan when one
//! happened during it); the clone must see every record intact and in order. The
//! broken variant registers and scans the old way (position stored before the claim,
//! one unvalidated scan), and loom must catch the recycle racing the clone's read.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_registration`
#![cfg(roda_loom)]

mod loom_support;

use roda_store::{loom_hooks, SegmentedJournal};

/// Runs the model; returns how many executions loom explored.
fn model() -> usize {
    loom_support::explore(|| {
        let mut journal = SegmentedJournal::<[u64; 2]>::in_memory(1, 2).unwrap();
        // Loom builds have 2 gates: take gate 0, then let the reader own gate 1.
        let first = journal.reader();
        let original = journal.reader();
        drop(first);
        let writer = loom::thread::spawn(move || {
            for i in 1..=3u64 {
                while journal.try_append(&[i, !i]).is_err() {
                    loom::thread::yield_now();
                }
            }
        });
        // Registers in gate 0 at the original's position (record 0's segment).
        let mut reader = original.clone();
        drop(original);
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
fn a_reader_registered_during_a_roll_is_never_recycled_under() {
    loom_support::assert_explored(model());
}

#[test]
#[should_panic(expected = "Causality violation")]
fn registering_and_scanning_the_old_way_is_caught() {
    loom_hooks::set_unvalidated_registration(true);
    model();
}

//! loom model of a segmented journal follower's validation: a writer appends 3 records
//! into a ring of 2 one-record segments (record 2 recycles record 0's segment) while a
//! non-gating follower reads. The writer never waits; the follower must get every
//! record intact and in order, or `Lagged` for one that was recycled, never a copy
//! torn by the overwrite. The broken variants drop the writer's Release fence after it
//! changes the segment's generation, or the follower's Acquire fence before its
//! re-check; loom must find the torn copy each then lets through.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_follower`
#![cfg(roda_loom)]

mod loom_support;

use roda_store::{loom_hooks, RodaError, SegmentedJournal};

/// Runs the model; returns how many executions loom explored.
fn model() -> usize {
    loom_support::explore(|| {
        let mut journal = SegmentedJournal::<[u64; 2]>::in_memory(1, 2).unwrap();
        let mut follower = journal.follower();
        let writer = loom::thread::spawn(move || {
            for i in 0..3u64 {
                // No gating reader: the writer never waits.
                journal.try_append(&[i + 1, !(i + 1)]).unwrap();
            }
        });
        let mut next = 0u64;
        while next < 3 {
            match follower.next() {
                Ok(Some(record)) => {
                    assert_eq!(record, [next + 1, !(next + 1)], "torn or out of order");
                    next += 1;
                }
                Ok(None) => loom::thread::yield_now(),
                Err(RodaError::Lagged { missed }) => {
                    assert!(missed > 0);
                    let oldest = follower.seek_to_oldest();
                    assert!(oldest > next, "lagged at {next}, which is retained");
                    next = oldest;
                }
                Err(e) => panic!("{e}"),
            }
        }
        writer.join().unwrap();
    })
}

#[test]
fn follower_copies_are_intact_or_lagged() {
    loom_support::assert_explored(model());
}

#[test]
#[should_panic(expected = "torn")]
fn recycling_without_the_generation_fence_is_caught() {
    loom_hooks::set_skip_generation_fence(true);
    model();
}

#[test]
#[should_panic(expected = "torn")]
fn following_without_the_acquire_fence_is_caught() {
    loom_hooks::set_skip_follower_fence(true);
    model();
}

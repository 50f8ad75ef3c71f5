//! loom model of the elastic journal's growth, reuse and give-back: a writer appends 4
//! records into one-record segments under a limit of 2 un-received records, starting
//! from a single pre-mapped segment and giving spare segments back at once (no
//! hysteresis), while the reader receives them. Depending on the interleaving the
//! writer maps new segments (growth), reuses segments the reader has left, unmaps spare
//! ones (give-back), and waits on a full journal; the reader must see every record
//! intact and in order, and the writer must never overwrite a segment the reader may
//! still view. The broken variants reuse a segment after a Relaxed load of the reader's
//! count, or one record too early, and loom must catch the overwrite racing the reader.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_elastic`
#![cfg(roda_loom)]

mod loom_support;

use roda_store::{elastic_loom_hooks, ElasticJournal, RodaError};

const RECORDS: u64 = 4;

/// Runs the model; returns how many executions loom explored.
fn model() -> usize {
    loom_support::explore(|| {
        let mut journal = ElasticJournal::<[u64; 2]>::options()
            .base_segments(1)
            .give_back_after(0)
            .in_memory(1, 2)
            .unwrap();
        let mut reader = journal.reader().unwrap();
        let writer = loom::thread::spawn(move || {
            for i in 1..=RECORDS {
                loop {
                    match journal.try_append(&[i, !i]) {
                        Ok(_) => break,
                        Err(RodaError::Full { capacity: 2 }) => loom::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            journal
        });
        let mut seen = 0u64;
        while seen < RECORDS {
            match reader.next() {
                Some(record) => {
                    seen += 1;
                    assert_eq!(*record, [seen, !seen], "torn, overwritten or out of order");
                }
                None => loom::thread::yield_now(),
            }
        }
        let journal = writer.join().unwrap();
        assert!(
            journal.segments_held() <= 3,
            "at most limit / 1 + 1 segments"
        );
        drop(reader);
        drop(journal);
    })
}

#[test]
fn the_writer_reuses_only_segments_the_reader_has_left() {
    loom_support::assert_explored(model());
}

#[test]
#[should_panic(expected = "Causality violation")]
fn reuse_after_a_relaxed_load_of_the_readers_count_is_caught() {
    elastic_loom_hooks::set_relaxed_reclaim(true);
    model();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn reuse_of_the_segment_the_reader_may_still_view_is_caught() {
    elastic_loom_hooks::set_reclaim_one_early(true);
    model();
}

//! loom model of the journal's publish protocol: a writer appends while a reader in
//! another thread follows; the reader must only ever see fully written records, in
//! order. The broken variant publishes with Relaxed instead of Release, and loom must
//! catch it (records viewed without happening-after their writes).
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_journal`
#![cfg(roda_loom)]

mod loom_support;

use roda_store::{loom_hooks, JournalStore};

const RECORDS: u64 = 3;

/// Runs the model; returns how many executions loom explored.
fn model() -> usize {
    loom_support::explore(|| {
        let mut journal = JournalStore::<[u64; 2]>::in_memory(RECORDS as usize).unwrap();
        let mut reader = journal.reader();
        let writer = loom::thread::spawn(move || {
            journal.append(&[1, !1]);
            journal.append_slice(&[[2, !2], [3, !3]]);
        });
        let mut seen = 0;
        // A bounded number of polls keeps the model finite.
        for _ in 0..3 {
            let batch = reader.next_batch(2);
            for record in batch {
                seen += 1;
                assert_eq!(*record, [seen, !seen], "torn or out-of-order record");
            }
            if let Some(record) = reader.next() {
                seen += 1;
                assert_eq!(*record, [seen, !seen], "torn or out-of-order record");
            }
            loom::thread::yield_now();
        }
        writer.join().unwrap();
        // After the join everything is visible.
        while let Some(record) = reader.next() {
            seen += 1;
            assert_eq!(*record, [seen, !seen]);
        }
        assert_eq!(seen, RECORDS);
    })
}

#[test]
fn reader_sees_only_complete_records_in_order() {
    loom_support::assert_explored(model());
}

#[test]
#[should_panic(expected = "Causality violation")]
fn relaxed_publish_is_caught() {
    loom_hooks::set_relaxed_publish(true);
    model();
}

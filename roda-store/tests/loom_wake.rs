//! loom model of wake on publish: a reader sleeps on the journal's wake word with no
//! timeout at all (under loom the futex is a mutex and a condition variable that only a
//! wake-up ends), so a lost wake-up leaves it asleep forever, which loom reports as a
//! deadlock. The broken variant drops the writer's full fence between its published
//! count and its load of the waiter flag; loom must catch the lost wake-up.
//!
//! `RUSTFLAGS="--cfg roda_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p roda-store --release --test loom_wake`
#![cfg(roda_loom)]

mod loom_support;

use std::time::Duration;

use roda_store::{loom_hooks, ElasticJournal, JournalStore, SegmentedJournal};

/// Blocking reads without a deadline: only a wake-up (or a record already there) ends
/// them.
const FOREVER: Duration = Duration::MAX;

/// The writer publishes two records one by one and stays alive (it is joined only
/// after the reader has both), so only its publishes can wake the reader.
fn plain_model() -> usize {
    loom_support::explore(|| {
        let mut journal = JournalStore::<u64>::options()
            .wake(true)
            .in_memory(2)
            .unwrap();
        let mut reader = journal.reader();
        let (done_tx, done_rx) = loom::sync::mpsc::channel::<()>();
        let writer = loom::thread::spawn(move || {
            journal.append(&1);
            journal.append(&2);
            // Stay open until the reader is done: a close would wake it too.
            done_rx.recv().unwrap();
        });
        assert_eq!(reader.next_timeout(FOREVER), Some(&1));
        assert_eq!(reader.next_timeout(FOREVER), Some(&2));
        done_tx.send(()).unwrap();
        writer.join().unwrap();
    })
}

#[test]
fn a_sleeping_reader_is_always_woken() {
    loom_support::assert_explored(plain_model());
}

#[test]
#[should_panic(expected = "deadlock")]
fn publish_without_the_fence_loses_a_wake_up() {
    loom_hooks::set_skip_wake_fence(true);
    plain_model();
}

/// The writer's close wakes a reader waiting for a record that never comes.
#[test]
fn closing_the_writer_wakes_the_reader() {
    let executions = loom_support::explore(|| {
        let mut journal = JournalStore::<u64>::options()
            .wake(true)
            .in_memory(2)
            .unwrap();
        let mut reader = journal.reader();
        let writer = loom::thread::spawn(move || {
            journal.append(&1);
            drop(journal);
        });
        assert_eq!(reader.next_timeout(FOREVER), Some(&1));
        assert_eq!(reader.next_timeout(FOREVER), None);
        writer.join().unwrap();
    });
    loom_support::assert_explored(executions);
}

/// The same protocol over a segmented journal's shared core, across a roll.
fn segmented_model() -> usize {
    loom_support::explore(|| {
        let mut journal = SegmentedJournal::<u64>::options()
            .wake(true)
            .in_memory(1, 2)
            .unwrap();
        let mut follower = journal.follower();
        let (done_tx, done_rx) = loom::sync::mpsc::channel::<()>();
        let writer = loom::thread::spawn(move || {
            journal.append(&1);
            journal.append(&2);
            done_rx.recv().unwrap();
        });
        assert_eq!(follower.next_timeout(FOREVER).unwrap(), Some(1));
        assert_eq!(follower.next_timeout(FOREVER).unwrap(), Some(2));
        done_tx.send(()).unwrap();
        writer.join().unwrap();
    })
}

#[test]
fn a_sleeping_follower_is_always_woken() {
    loom_support::assert_explored(segmented_model());
}

#[test]
#[should_panic(expected = "deadlock")]
fn segmented_publish_without_the_fence_loses_a_wake_up() {
    loom_hooks::set_skip_wake_fence(true);
    segmented_model();
}

/// The same protocol over an elastic journal (a pipeline's last journal): its words
/// live in the journal's shared state; the writer rolls into a second segment between
/// the two publishes.
fn elastic_model() -> usize {
    loom_support::explore(|| {
        let mut journal = ElasticJournal::<u64>::options()
            .wake(true)
            .base_segments(2)
            .in_memory(1, 2)
            .unwrap();
        let mut reader = journal.reader().unwrap();
        let (done_tx, done_rx) = loom::sync::mpsc::channel::<()>();
        let writer = loom::thread::spawn(move || {
            journal.append(&1);
            journal.append(&2);
            done_rx.recv().unwrap();
        });
        assert_eq!(reader.next_timeout(FOREVER), Some(&1));
        assert_eq!(reader.next_timeout(FOREVER), Some(&2));
        done_tx.send(()).unwrap();
        writer.join().unwrap();
    })
}

#[test]
fn a_sleeping_elastic_reader_is_always_woken() {
    loom_support::assert_explored(elastic_model());
}

#[test]
#[should_panic(expected = "deadlock")]
fn elastic_publish_without_the_fence_loses_a_wake_up() {
    loom_hooks::set_skip_wake_fence(true);
    elastic_model();
}

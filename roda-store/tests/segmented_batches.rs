//! The unit of visibility of a segmented journal's batches (docs/segmented.md,
//! "Batches"): in the writer's process a `try_append_slice` batch appears whole, even
//! across segment ends; from the directory (other processes, recovery) a batch appears
//! segment by segment: each segment's part whole, a full segment as soon as the writer
//! rolls out of it.
#![cfg(not(roda_loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use roda_store::{Retention, RodaError, SegmentedFollower, SegmentedJournal};

const S: u64 = 4;
const BATCH: u64 = 6; // crosses a segment end every other batch
const BATCHES: u64 = if cfg!(miri) { 20 } else { 5_000 };

/// Runs a writer of `BATCHES` batches of `BATCH` records (record = its sequence) with
/// `try_append_slice` while `observe` polls, until it has seen `done` and the end.
fn write_batches(journal: SegmentedJournal<u64>, observe: impl FnOnce(&AtomicBool) + Send) {
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let writer_done = done.clone();
        scope.spawn(move || {
            let mut journal = journal;
            let mut next = 0u64;
            let mut batch = [0u64; BATCH as usize];
            for _ in 0..BATCHES {
                for (i, r) in batch.iter_mut().enumerate() {
                    *r = next + i as u64;
                }
                let mut rest = &batch[..];
                while !rest.is_empty() {
                    match journal.try_append_slice(rest) {
                        Ok(range) => rest = &rest[(range.end - range.start) as usize..],
                        Err(_) => std::thread::yield_now(),
                    }
                }
                next += BATCH;
            }
            writer_done.store(true, Ordering::Release);
        });
        observe(&done);
    });
}

#[test]
fn in_process_a_slice_appears_whole_across_segment_ends() {
    // No gating reader, so no batch is cut short by back-pressure (`try_append_slice`
    // then publishes what fit): every published count an in-process reader sees is a
    // batch end, even for the batches that cross a segment end.
    let journal = SegmentedJournal::<u64>::in_memory(S as usize, 64).unwrap();
    let mut follower = journal.follower();
    let watch = journal.watch();
    let mut seen = 0u64;
    write_batches(journal, |done| loop {
        let finished = done.load(Ordering::Acquire);
        let published = watch.published();
        assert_eq!(published % BATCH, 0, "part of a batch visible in process");
        match follower.next() {
            Ok(Some(r)) => {
                assert_eq!(r, follower.position() - 1, "records hold their sequence");
                seen += 1;
            }
            Ok(None) => {
                // The follower stopped at a published count, hence at a batch end.
                assert_eq!(
                    follower.position() % BATCH,
                    0,
                    "follower stopped inside a batch"
                );
                if finished && follower.position() == BATCHES * BATCH {
                    break;
                }
            }
            Err(RodaError::Lagged { .. }) => {
                follower.seek_to_oldest();
            }
            Err(e) => panic!("{e}"),
        }
    });
    assert!(seen > 0);
}

#[test]
fn from_the_directory_a_slice_appears_segment_by_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("batches");
    let journal =
        SegmentedJournal::<u64>::create(&dir, S as usize, Retention::KeepLast(8)).unwrap();
    let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
    let (mut batch_ends, mut segment_ends) = (0u64, 0u64);
    write_batches(journal, |done| {
        let mut expected = 0u64;
        loop {
            let finished = done.load(Ordering::Acquire);
            loop {
                match follower.next() {
                    Ok(Some(r)) => {
                        assert_eq!(r, expected);
                        expected += 1;
                    }
                    Ok(None) => break,
                    // The writer never waits for a follower: skip what it recycled.
                    Err(RodaError::Lagged { .. }) => expected = follower.seek_to_oldest(),
                    Err(e) => panic!("{e}"),
                }
            }
            // Where the visible records end: a batch end, or a segment end the writer
            // sealed when it rolled out of it in the middle of a batch.
            if expected % BATCH == 0 {
                batch_ends += 1;
            } else {
                assert_eq!(
                    expected % S,
                    0,
                    "visible up to {expected}: part of a segment's part"
                );
                segment_ends += 1;
            }
            if finished && expected == BATCHES * BATCH {
                break;
            }
        }
    });
    println!("visible ends: {batch_ends} at batch ends, {segment_ends} at segment ends only");
}

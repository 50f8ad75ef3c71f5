//! Reader APIs of plain and segmented journals and of followers at the edges of the
//! sequence space (no read may overflow into a slice or a cursor it should not have),
//! and what `SegmentedReader::seek` releases.
#![cfg(not(roda_loom))]

use roda_store::{JournalStore, Retention, RodaError, SegmentedFollower, SegmentedJournal};

#[test]
fn segmented_next_batch_of_usize_max_returns_what_is_published() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    for i in 0..3 {
        journal.append(&i);
    }
    assert_eq!(reader.next(), Some(&0));
    // `start + max` must not wrap: the batch is what is published, nothing more.
    assert_eq!(reader.next_batch(usize::MAX), &[1, 2]);
    assert_eq!(reader.next_batch(usize::MAX), &[] as &[u64]);
    for i in 3..6 {
        journal.append(&i);
    }
    // Ends at the segment end, then continues in the next segment.
    assert_eq!(reader.next_batch(usize::MAX), &[3]);
    assert_eq!(reader.next_batch(usize::MAX), &[4, 5]);
    assert_eq!(reader.get(), Some(&5));
    assert_eq!(reader.get_index(), 6);
}

#[test]
fn segmented_reader_apis_at_the_end_of_the_sequence_space() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    journal.append(&0);
    reader.seek(u64::MAX).unwrap();
    assert_eq!(reader.next(), None);
    assert_eq!(reader.next_batch(usize::MAX), &[] as &[u64]);
    assert_eq!(reader.get(), None);
    assert_eq!(reader.available(), 0);
    assert_eq!(reader.get_index(), u64::MAX);
    let clone = reader.clone();
    assert_eq!(clone.get_index(), u64::MAX);
    // A reader that far ahead holds nothing back.
    for i in 1..100 {
        journal.try_append(&i).unwrap();
    }
}

#[test]
fn plain_reader_apis_at_the_end_of_the_sequence_space() {
    let mut journal = JournalStore::<u64>::in_memory(8).unwrap();
    let mut reader = journal.reader();
    journal.append_slice(&[0, 1, 2]);
    assert_eq!(reader.next(), Some(&0));
    assert_eq!(reader.next_batch(usize::MAX), &[1, 2]);
    assert_eq!(reader.get_at(u64::MAX), None);
    reader.seek(u64::MAX);
    assert_eq!(reader.next(), None);
    assert_eq!(reader.next_batch(usize::MAX), &[] as &[u64]);
    assert_eq!(reader.get(), None);
    assert_eq!(reader.available(), 0);
}

#[test]
fn followers_at_the_end_of_the_sequence_space() {
    let tmp = tempfile::tempdir().unwrap();
    for retention in [Retention::KeepLast(2), Retention::KeepAll] {
        let dir = tmp.path().join(format!("{retention:?}"));
        let mut journal = SegmentedJournal::<u64>::create(&dir, 4, retention).unwrap();
        for i in 0..6 {
            journal.append(&i);
        }
        let mut local = journal.follower();
        let mut from_dir = SegmentedFollower::<u64>::open(&dir).unwrap();
        for follower in [&mut local, &mut from_dir] {
            let mut out = [0u64; 16];
            for seq in [u64::MAX, u64::MAX - 1, u64::MAX - 4, u64::MAX / 4 * 4] {
                follower.seek(seq);
                assert_eq!(follower.next().unwrap(), None, "{retention:?} at {seq}");
                assert_eq!(follower.next_batch(&mut out).unwrap(), 0);
                assert_eq!(follower.position(), seq);
                assert_eq!(follower.available(), 0);
            }
            follower.seek(4);
            assert_eq!(follower.next_batch(&mut out).unwrap(), 2);
            assert_eq!(out[..2], [4, 5]);
        }
    }
}

/// The reproduction: a reader that seeks past the writer must not hold the
/// segments it skipped.
#[test]
fn seek_past_the_writer_releases_the_skipped_segments() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    reader.seek(8).unwrap();
    for i in 0..8 {
        assert_eq!(journal.try_append(&i).unwrap(), i);
    }
    // Record 8 recycles segment 0, which the reader skipped.
    assert_eq!(journal.try_append(&8).unwrap(), 8);
    assert_eq!(reader.next(), Some(&8));
    // The reader now holds segment 8..12: the writer fills the ring up to it.
    for i in 9..16 {
        assert_eq!(journal.try_append(&i).unwrap(), i);
    }
    assert!(matches!(
        journal.try_append(&16),
        Err(RodaError::WouldBlock { .. })
    ));
}

#[test]
fn seek_forward_inside_the_ring_releases_and_cannot_go_back() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    for i in 0..8 {
        journal.append(&i);
    }
    assert!(
        journal.try_append(&8).is_err(),
        "the reader holds segment 0"
    );
    // Back and forth inside the segment it holds: allowed, nothing released.
    reader.seek(3).unwrap();
    reader.seek(1).unwrap();
    assert!(journal.try_append(&8).is_err());
    // Into the next segment: segment 0 is released.
    reader.seek(5).unwrap();
    assert_eq!(reader.get(), Some(&4));
    assert_eq!(journal.try_append(&8).unwrap(), 8);
    match reader.seek(3) {
        Err(RodaError::Lagged { missed }) => assert_eq!(missed, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(reader.next(), Some(&5));
}

#[test]
fn a_reader_far_ahead_waits_there_and_holds_its_segment_when_the_writer_arrives() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 3).unwrap();
    let mut reader = journal.reader();
    reader.seek(101).unwrap();
    for i in 0..101 {
        assert_eq!(
            journal.try_append(&i).unwrap(),
            i,
            "only segment 100..104 is held"
        );
    }
    assert_eq!(reader.next(), None);
    journal.try_append(&101).unwrap();
    assert_eq!(reader.next(), Some(&101));
    // The ring of 3 segments: 100..112 can be written, 112 would recycle 100..104.
    for i in 102..112 {
        journal.try_append(&i).unwrap();
    }
    assert!(journal.try_append(&112).is_err());
}

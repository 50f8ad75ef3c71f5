//! SegmentedJournal: rolls, recycling, back-pressure, readers, errors, page faults.
#![cfg(not(roda_loom))]

use roda_store::{RodaError, SegmentedJournal, SegmentedReader, MAX_READERS};

#[test]
fn a_reader_thread_follows_many_rolls_in_order() {
    const N: u64 = if cfg!(miri) { 300 } else { 1_000_000 };
    let mut journal = SegmentedJournal::<[u64; 2]>::in_memory(64, 4).unwrap();
    let mut reader = journal.reader();
    let t = std::thread::spawn(move || {
        let mut expected = 0u64;
        while expected < N {
            let batch = reader.next_batch(100);
            assert!(batch.len() <= 64, "a batch never crosses a segment end");
            for r in batch {
                assert_eq!(*r, [expected, !expected]);
                expected += 1;
            }
            if batch.is_empty() {
                std::thread::yield_now();
            }
        }
        expected
    });
    for i in 0..N {
        assert_eq!(journal.append(&[i, !i]), i);
    }
    assert_eq!(t.join().unwrap(), N);
    assert_eq!(journal.len(), N);
}

#[test]
fn a_reader_that_has_not_left_a_segment_blocks_its_recycling() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    for i in 0..8 {
        assert_eq!(journal.try_append(&i).unwrap(), i);
    }
    // Record 8 would recycle segment 0, which the reader has not left.
    match journal.try_append(&8) {
        Err(RodaError::WouldBlock { capacity }) => assert_eq!(capacity, 8),
        other => panic!("{other:?}"),
    }
    assert_eq!(journal.len(), 8, "a refused append writes nothing");
    for i in 0..4 {
        assert_eq!(reader.next(), Some(&i));
    }
    // Still in segment 0 until it reads record 4.
    assert!(journal.try_append(&8).is_err());
    assert_eq!(reader.next(), Some(&4));
    assert_eq!(journal.try_append(&8).unwrap(), 8);
    assert_eq!(journal.oldest_retained(), 4);
    // Dropping the reader frees the writer entirely.
    drop(reader);
    for i in 9..100 {
        journal.try_append(&i).unwrap();
    }
}

#[test]
fn try_append_slice_appends_what_fits() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    let items: Vec<u64> = (0..10).collect();
    assert_eq!(journal.try_append_slice(&items).unwrap(), 0..8);
    assert!(matches!(
        journal.try_append_slice(&items[8..]),
        Err(RodaError::WouldBlock { .. })
    ));
    assert_eq!(journal.try_append_slice(&[]).unwrap(), 8..8);
    assert_eq!(reader.next_batch(10), &[0, 1, 2, 3]);
    assert_eq!(reader.next_batch(10), &[4, 5, 6, 7]);
    assert_eq!(journal.try_append_slice(&items[8..]).unwrap(), 8..10);
    assert_eq!(reader.next_batch(10), &[8, 9]);
}

#[test]
fn cursor_methods_and_lag() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 3).unwrap();
    let mut reader = journal.reader();
    assert_eq!((reader.get(), reader.get_index()), (None, 0));
    for i in 0..10 {
        journal.append(&(i * 10));
    }
    assert_eq!((reader.published(), reader.available()), (10, 10));
    assert_eq!(reader.next(), Some(&0));
    assert_eq!(reader.get(), Some(&0));
    reader.seek(5).unwrap();
    assert_eq!(reader.next(), Some(&50));
    // The reader left segment 0 when it read record 5 (segment 1): it cannot go back.
    match reader.seek(2) {
        Err(RodaError::Lagged { missed }) => assert_eq!(missed, 2),
        other => panic!("{other:?}"),
    }
    // A clone is an independent reader at the same place, with its own gate.
    reader.seek(6).unwrap();
    let mut other = reader.clone();
    assert_eq!(other.next(), Some(&60));
    assert_eq!(reader.get_index(), 6);
    assert_eq!(roda_store::IterativeReadable::next(&mut reader), Some(&60));
    // Past the writer: nothing to read, and what it skipped is released for good.
    reader.seek(100).unwrap();
    assert_eq!(reader.next(), None);
    match reader.seek(6) {
        Err(RodaError::Lagged { missed }) => assert_eq!(missed, 94),
        other => panic!("{other:?}"),
    }
}

#[test]
fn new_readers_start_at_the_oldest_retained_record() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    for i in 0..20 {
        journal.append(&i);
    }
    assert_eq!(journal.oldest_retained(), 16);
    let mut reader = journal.reader();
    assert_eq!(reader.get_index(), 16);
    assert_eq!(reader.next_batch(10), &[16, 17, 18, 19]);
}

#[test]
fn bad_shapes_and_too_many_readers_are_errors() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Empty;
    assert!(matches!(
        SegmentedJournal::<Empty>::in_memory(4, 2),
        Err(RodaError::ZeroSizedRecord)
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::in_memory(4, 1),
        Err(RodaError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::in_memory(0, 2),
        Err(RodaError::InvalidCapacity { .. })
    ));
    let journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let readers: Vec<SegmentedReader<u64>> = (0..MAX_READERS).map(|_| journal.reader()).collect();
    assert!(matches!(
        journal.try_reader(),
        Err(RodaError::TooManyReaders { max: MAX_READERS })
    ));
    drop(readers);
    assert!(
        journal.try_reader().is_ok(),
        "dropped readers free their gates"
    );
}

fn thread_minor_faults() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map(|u| u.minor_page_faults())
        .unwrap_or(0)
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no page faults to count")]
fn steady_state_recycles_memory_without_page_faults() {
    const SEGMENT: usize = 64 * 1024;
    let mut journal = SegmentedJournal::<[u64; 3]>::in_memory(SEGMENT, 4).unwrap();
    let mut reader = journal.reader();
    let mut pump = |journal: &mut SegmentedJournal<[u64; 3]>, n: u64| {
        let mut sum = 0u64;
        for i in 0..n {
            while journal.try_append(&[i, i, i]).is_err() {
                while let Some(r) = reader.next() {
                    sum = sum.wrapping_add(r[0]);
                }
            }
        }
        sum
    };
    // Warm-up: every segment used once.
    pump(&mut journal, 4 * SEGMENT as u64 + 1);
    let before = thread_minor_faults();
    std::hint::black_box(pump(&mut journal, 1_000_000));
    let faults = thread_minor_faults() - before;
    assert!(
        faults < 100,
        "{faults} minor page faults over 1M recycled appends"
    );
}

// ---- Followers: non-gating, copies validated against the segment's generation -------

#[test]
fn a_follower_thread_sees_every_record_intact_or_a_clean_lag() {
    const N: u64 = if cfg!(miri) { 200 } else { 500_000 };
    // Small segments and a fast writer: the follower is lapped often.
    let mut journal = SegmentedJournal::<[u64; 2]>::in_memory(8, 2).unwrap();
    let mut follower = journal.follower();
    let t = std::thread::spawn(move || {
        let (mut expected, mut lags, mut read) = (0u64, 0u64, 0u64);
        let mut batch = [[0u64; 2]; 5];
        while expected < N {
            match follower.next_batch(&mut batch) {
                Ok(n) => {
                    for r in &batch[..n] {
                        assert_eq!(*r, [expected, !expected], "torn or out of order");
                        expected += 1;
                        read += 1;
                    }
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
                Err(RodaError::Lagged { missed }) => {
                    assert!(missed > 0);
                    lags += 1;
                    let oldest = follower.seek_to_oldest();
                    assert!(oldest > expected, "lagged, yet {expected} is retained");
                    expected = oldest;
                }
                Err(e) => panic!("{e}"),
            }
        }
        (read, lags)
    });
    for i in 0..N {
        // Never blocked by the follower.
        assert_eq!(journal.try_append(&[i, !i]).unwrap(), i);
        if i % 64 == 0 {
            std::thread::yield_now();
        }
    }
    let (read, lags) = t.join().unwrap();
    assert!(read > 0);
    println!("follower read {read} of {N} records, lagged {lags} times");
}

#[test]
fn follower_cursor_methods() {
    let mut journal = SegmentedJournal::<u32>::in_memory(3, 2).unwrap();
    let mut follower = journal.follower();
    assert_eq!((follower.position(), follower.published()), (0, 0));
    assert_eq!(follower.next().unwrap(), None);
    assert_eq!(follower.next_batch(&mut []).unwrap(), 0);
    for i in 0..5u32 {
        journal.append(&(i * 10));
    }
    assert_eq!((follower.available(), follower.oldest_retained()), (5, 0));
    assert_eq!(follower.next().unwrap(), Some(0));
    let mut out = [0u32; 10];
    // A batch ends at the segment end (3 records per segment).
    assert_eq!(follower.next_batch(&mut out).unwrap(), 2);
    assert_eq!(out[..2], [10, 20]);
    follower.seek(1);
    assert_eq!(follower.next().unwrap(), Some(10));
    // Seeking ahead of the writer waits there.
    follower.seek(6);
    assert_eq!(follower.next().unwrap(), None);
    journal.append(&50);
    journal.append(&60);
    assert_eq!(follower.next().unwrap(), Some(60));
    // Records 0..3 were recycled by record 6.
    follower.seek(2);
    assert!(matches!(
        follower.next(),
        Err(RodaError::Lagged { missed: 1 })
    ));
    assert_eq!(follower.position(), 2);
    // A follower never holds the writer back, even with readers' gates all free.
    for i in 0..100 {
        journal.try_append(&i).unwrap();
    }
    let fresh = journal.follower();
    assert_eq!(fresh.position(), journal.oldest_retained());
    assert!(format!("{fresh:?}").contains("in-process"));
}

#[test]
fn followers_of_odd_sized_records_copy_them_whole() {
    // 3, 6 and 12 byte records: copied in 1, 2 and 4 byte atomic words.
    let mut a = SegmentedJournal::<[u8; 3]>::in_memory(5, 2).unwrap();
    let mut b = SegmentedJournal::<[u16; 3]>::in_memory(5, 2).unwrap();
    let mut c = SegmentedJournal::<[u32; 3]>::in_memory(5, 2).unwrap();
    let (mut fa, mut fb, mut fc) = (a.follower(), b.follower(), c.follower());
    for i in 0..7u8 {
        a.append(&[i, i + 1, i + 2]);
        b.append(&[i.into(), 300, u16::MAX]);
        c.append(&[i.into(), 70_000, u32::MAX]);
    }
    for i in 0..5u8 {
        assert_eq!(fa.next().unwrap(), Some([i, i + 1, i + 2]));
        assert_eq!(fb.next().unwrap(), Some([i.into(), 300, u16::MAX]));
        assert_eq!(fc.next().unwrap(), Some([i.into(), 70_000, u32::MAX]));
    }
    let mut out = [[0u32; 3]; 4];
    assert_eq!(fc.next_batch(&mut out).unwrap(), 2);
    assert_eq!(out[1], [6, 70_000, u32::MAX]);
}

/// A reader that keeps finding nothing new asks the CPU for the line of the record it
/// waits for (a prefetch, after a few empty polls), inside the segment its gate holds
/// only: waiting at a segment's records, at its end (the next record opens the next
/// segment) and after a roll must not change what it sees, nor hold the writer back.
#[test]
fn a_reader_waiting_at_a_segment_end_reads_on_after_the_roll() {
    let mut journal = SegmentedJournal::<u64>::in_memory(4, 2).unwrap();
    let mut reader = journal.reader();
    for round in 0..5u64 {
        for k in 0..4 {
            for _ in 0..40 {
                assert_eq!(reader.next(), None, "round {round}, record {k}: not yet");
                assert!(reader.next_batch(8).is_empty());
            }
            journal.append(&(round * 4 + k));
            assert_eq!(reader.next(), Some(&(round * 4 + k)));
        }
        // At the segment's end: the next record lands in the other slot.
        for _ in 0..40 {
            assert_eq!(reader.next(), None);
            assert!(reader.next_batch(8).is_empty());
        }
    }
    assert_eq!(reader.get_index(), 20);
}

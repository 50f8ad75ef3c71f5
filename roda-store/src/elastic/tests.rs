//! Unit tests of the elastic journal: the exact limit, growth, reuse, give-back with
//! hysteresis, the one reader, batches.

use super::*;

fn journal(segment_records: usize, limit: usize, base: usize, after: u64) -> ElasticJournal<u64> {
    ElasticJournal::<u64>::options()
        .base_segments(base)
        .give_back_after(after)
        .in_memory(segment_records, limit)
        .unwrap()
}

#[test]
fn the_limit_is_exact_not_rounded_to_a_segment() {
    let mut journal = journal(3, 7, 1, 16);
    let mut reader = journal.reader().unwrap();
    for i in 0..7 {
        assert_eq!(journal.try_append(&i).unwrap(), i);
    }
    assert!(matches!(
        journal.try_append(&7),
        Err(RodaError::Full { capacity: 7 })
    ));
    assert_eq!(journal.len(), 7, "a refused append writes nothing");
    assert_eq!(reader.next(), Some(&0));
    assert_eq!(journal.try_append(&7).unwrap(), 7);
    assert!(journal.try_append(&8).is_err());
    let rest: Vec<u64> = std::iter::from_fn(|| reader.next().copied()).collect();
    assert_eq!(rest, (1..8).collect::<Vec<_>>());
    assert_eq!(journal.watch().high_water(), 7);
}

#[test]
#[should_panic(expected = "5 records are not received")]
fn append_past_the_limit_panics_naming_it() {
    let mut journal = journal(2, 5, 1, 16);
    for i in 0..6 {
        journal.append(&i);
    }
}

#[test]
fn a_reader_that_keeps_up_reuses_two_segments() {
    let mut journal = journal(4, 1_000, 1, 16);
    let mut reader = journal.reader().unwrap();
    let n = if cfg!(miri) { 500 } else { 10_000u64 };
    for i in 0..n {
        journal.append(&i);
        assert_eq!(reader.next(), Some(&i));
        assert!(
            journal.segments_held() <= 2,
            "held {}",
            journal.segments_held()
        );
    }
    assert_eq!(journal.watch().high_water(), 1);
}

#[test]
fn grows_while_the_reader_lags_and_gives_back_after_a_calm_stretch() {
    let mut journal = journal(4, 1_000, 1, 2);
    let mut reader = journal.reader().unwrap();
    for i in 0..100u64 {
        journal.append(&i);
    }
    assert_eq!(journal.segments_held(), 25, "one segment per 4 records");
    assert_eq!(journal.watch().segments_held(), 25);
    assert_eq!(journal.backlog(), 100);
    let batch = reader.next_batch(1_000);
    assert_eq!(
        batch,
        (0..4).collect::<Vec<_>>(),
        "a batch stays in one segment"
    );
    while reader.next().is_some() {}
    // Drained: the memory stays for two calm rolls, then goes back.
    for i in 100..108u64 {
        journal.append(&i);
        assert_eq!(reader.next(), Some(&i));
    }
    assert_eq!(
        journal.segments_held(),
        25,
        "hysteresis: kept for 2 calm rolls"
    );
    for i in 108..200u64 {
        journal.append(&i);
        assert_eq!(reader.next(), Some(&i));
    }
    assert!(
        journal.segments_held() <= 2,
        "held {}",
        journal.segments_held()
    );
    assert_eq!(journal.watch().high_water(), 100);
}

#[test]
fn a_burst_below_the_hysteresis_keeps_its_memory() {
    let mut journal = journal(4, 1_000, 1, 1_000);
    let mut reader = journal.reader().unwrap();
    let mut next = 0u64;
    for _ in 0..10 {
        for _ in 0..64 {
            journal.append(&next);
            next += 1;
        }
        let held = journal.segments_held();
        while reader.next().is_some() {}
        assert!(
            held <= 17,
            "a burst of 64 needs at most 17 segments: {held}"
        );
    }
    // Every burst reused the segments of the first: no segment was unmapped or added.
    assert_eq!(journal.segments_held(), 17);
}

#[test]
fn one_reader_at_a_time_and_a_new_one_continues() {
    let mut journal = journal(2, 10, 1, 16);
    let mut reader = journal.reader().unwrap();
    assert!(matches!(
        journal.reader(),
        Err(RodaError::TooManyReaders { max: 1 })
    ));
    for i in 0..5 {
        journal.append(&i);
    }
    assert_eq!(reader.next(), Some(&0));
    assert_eq!(reader.next(), Some(&1));
    assert_eq!(reader.get(), Some(&1));
    drop(reader);
    let mut reader = journal.reader().unwrap();
    assert_eq!(reader.get_index(), 2);
    assert_eq!(reader.available(), 3);
    assert_eq!(reader.next(), Some(&2));
}

#[test]
fn a_batch_is_published_when_dropped_and_counts_toward_the_limit() {
    let mut journal = journal(2, 5, 1, 16);
    let mut reader = journal.reader().unwrap();
    {
        let mut batch = journal.batch();
        for i in 0..5 {
            assert_eq!(batch.try_push(&i).unwrap(), i);
        }
        assert!(matches!(batch.try_push(&5), Err(RodaError::Full { .. })));
        assert_eq!(reader.next(), None, "unpublished until the batch ends");
    }
    assert_eq!(reader.published(), 5);
    assert_eq!(reader.next_batch(10), &[0, 1]);
    assert_eq!(reader.next_batch(10), &[2, 3]);
    assert_eq!(reader.next_batch(10), &[4]);
    assert_eq!(reader.next_batch(10), &[] as &[u64]);
}

#[test]
fn bad_shapes_are_errors() {
    assert!(matches!(
        ElasticJournal::<u64>::in_memory(0, 10),
        Err(RodaError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        ElasticJournal::<u64>::in_memory(10, 0),
        Err(RodaError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        ElasticJournal::<u64>::in_memory(1, usize::MAX),
        Err(RodaError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        ElasticJournal::<()>::in_memory(1, 1),
        Err(RodaError::ZeroSizedRecord)
    ));
}

#[test]
fn a_reader_thread_receives_everything_in_order() {
    let mut journal = journal(64, 10_000, 2, 4);
    let mut reader = journal.reader().unwrap();
    let n = if cfg!(miri) { 2_000 } else { 200_000u64 };
    let consumer = std::thread::spawn(move || {
        let mut expected = 0u64;
        while expected < n {
            let batch = reader.next_batch(100);
            for x in batch {
                assert_eq!(*x, expected);
                expected += 1;
            }
            if batch.is_empty() {
                std::thread::yield_now();
            }
        }
    });
    let mut i = 0;
    while i < n {
        match journal.try_append(&i) {
            Ok(_) => i += 1,
            Err(RodaError::Full { .. }) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    consumer.join().unwrap();
    assert!(journal.watch().high_water() <= 10_000);
}

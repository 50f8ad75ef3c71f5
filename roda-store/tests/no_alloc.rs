//! The hot paths of both stores allocate nothing: a counting global allocator (this
//! test binary only) counts allocations made by this thread while the measured loop runs.
#![cfg(not(roda_loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use roda_store::{ElasticJournal, JournalStore, Retention, SegmentedJournal, SlotStore};

struct Counting;

std::thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: the thread-locals may be gone while a thread shuts down.
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    f();
    ACTIVE.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sensor: u64,
    value: f64,
    timestamp: u64,
}

#[test]
fn steady_state_append_next_next_batch_allocate_nothing() {
    const STEPS: u64 = if cfg!(miri) { 200 } else { 100_000 };
    let mut journal = JournalStore::<Reading>::in_memory(3 * STEPS as usize + 16).unwrap();
    let mut follower = journal.reader();
    let mut batcher = journal.reader();
    // Warm-up outside the measurement (first touches, lazy thread-locals).
    journal.append(&Reading {
        sensor: 0,
        value: 0.0,
        timestamp: 0,
    });
    follower.next();
    batcher.next_batch(1);

    let mut checksum = 0u64;
    let allocations = allocations_during(|| {
        for i in 0..STEPS {
            let r = Reading {
                sensor: i % 7,
                value: i as f64,
                timestamp: i,
            };
            journal.append(&r);
            journal.try_append(&r).unwrap();
            journal.append_slice(&[r]);
            checksum += follower.next().map_or(0, |r| r.timestamp);
            for r in batcher.next_batch(4) {
                checksum += r.sensor;
            }
        }
    });
    assert_eq!(allocations, 0, "hot path allocated {allocations} times");
    assert!(checksum > 0);
    assert_eq!(journal.len() as u64, 3 * STEPS + 1);
}

#[test]
fn segmented_append_and_follower_reads_allocate_nothing() {
    const STEPS: u64 = if cfg!(miri) { 200 } else { 100_000 };
    let r = |i: u64| Reading {
        sensor: i % 7,
        value: i as f64,
        timestamp: i,
    };
    let mut journal = SegmentedJournal::<Reading>::in_memory(64, 4).unwrap();
    let mut follower = journal.follower();
    let mut batch = [r(0); 8];
    // Warm-up outside the measurement.
    journal.append(&r(0));
    follower.next().unwrap();
    let mut checksum = 0u64;
    let allocations = allocations_during(|| {
        for i in 0..STEPS {
            journal.append(&r(i));
            journal.try_append(&r(i)).unwrap();
            // Lagged is an outcome too: it allocates nothing either.
            match follower.next() {
                Ok(Some(x)) => checksum += x.timestamp,
                Ok(None) => {}
                Err(_) => checksum += follower.seek_to_oldest(),
            }
            checksum += follower.next_batch(&mut batch).unwrap_or(0) as u64;
        }
    });
    assert_eq!(allocations, 0, "in memory: {allocations} allocations");
    assert!(checksum > 0);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn file_backed_keep_last_append_and_roll_allocate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut journal =
        SegmentedJournal::<Reading>::create(tmp.path().join("j"), 1024, Retention::KeepLast(3))
            .unwrap();
    let mut follower = journal.follower();
    let r = |i: u64| Reading {
        sensor: i % 7,
        value: i as f64,
        timestamp: i,
    };
    // Warm-up: every file used once (and rolled into again).
    for i in 0..4 * 1024 {
        journal.append(&r(i));
    }
    follower.seek_to_oldest();
    let mut checksum = 0u64;
    let allocations = allocations_during(|| {
        for i in 0..20_000 {
            journal.append(&r(i));
            if let Ok(Some(x)) = follower.next() {
                checksum += x.sensor;
            }
        }
    });
    // Including about 20 rolls, each renaming a file.
    assert_eq!(allocations, 0, "file-backed: {allocations} allocations");
    assert!(checksum > 0);
}

/// Raw writers (records as bytes of a run-time layout) append without allocating, the
/// segmented one across rolls of a file ring too.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn raw_appends_allocate_nothing() {
    use roda_store::{RawJournal, RawSegmentedJournal, RecordLayout};
    let tmp = tempfile::tempdir().unwrap();
    let layout = RecordLayout::of::<Reading>();
    let batch: Vec<u8> = (0..64 * 24).map(|i| i as u8).collect();
    let mut plain = RawJournal::create(tmp.path().join("plain"), layout, 64 * 2000).unwrap();
    let mut ring = RawSegmentedJournal::options()
        .retention(Retention::KeepLast(3))
        .create(tmp.path().join("ring"), layout, 1000)
        .unwrap();
    // Warm-up: every ring file used once.
    for _ in 0..100 {
        plain.append(&batch).unwrap();
        ring.append(&batch).unwrap();
    }
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            plain.append(&batch).unwrap();
            ring.append(&batch).unwrap();
        }
    });
    // Including about 60 rolls of the ring, each renaming a file.
    assert_eq!(allocations, 0, "raw appends: {allocations} allocations");
    assert_eq!((plain.len(), ring.len()), (1100 * 64, 1100 * 64));
}

/// Wake on publish: appends that wake a sleeping reader (the futex path) and timed
/// reads that sleep, time out or find records allocate nothing, on either side.
#[test]
#[cfg_attr(miri, ignore = "sleeps in the kernel many times: too slow under Miri")]
fn wake_on_publish_and_timed_reads_allocate_nothing() {
    use std::time::Duration;
    const STEPS: u64 = 20_000;
    let r = |i: u64| Reading {
        sensor: i % 7,
        value: i as f64,
        timestamp: i,
    };
    let mut journal = JournalStore::<Reading>::options()
        .wake(true)
        .in_memory(STEPS as usize + 16)
        .unwrap();
    let mut reader = journal.reader();
    // Warm-up outside the measurement: a timed-out sleep and a wake-up.
    assert!(reader.next_timeout(Duration::from_micros(10)).is_none());
    journal.append(&r(0));
    assert!(reader.next_timeout(Duration::from_secs(1)).is_some());
    let follower = std::thread::spawn(move || {
        let mut seen = 1;
        let allocations = allocations_during(|| {
            while seen < STEPS {
                if reader.next_timeout(Duration::from_secs(10)).is_some() {
                    seen += 1;
                }
            }
            // A timed read that times out.
            assert!(reader.next_timeout(Duration::from_micros(100)).is_none());
        });
        (allocations, seen)
    });
    let mut segmented = SegmentedJournal::<Reading>::options()
        .wake(true)
        .in_memory(64, 4)
        .unwrap();
    let mut segmented_reader = segmented.reader();
    segmented.append(&r(0));
    segmented_reader
        .next_timeout(Duration::from_secs(1))
        .unwrap();
    let allocations = allocations_during(|| {
        for i in 1..STEPS {
            journal.append(&r(i));
            if i % 64 == 0 {
                // Let the reader fall asleep, so that the next append wakes it.
                std::thread::sleep(Duration::from_micros(50));
            }
            segmented.append(&r(i));
            assert!(segmented_reader
                .next_timeout(Duration::from_secs(1))
                .is_some());
        }
    });
    assert_eq!(
        allocations, 0,
        "writer with waking: {allocations} allocations"
    );
    let (reader_allocations, seen) = follower.join().unwrap();
    assert_eq!(seen, STEPS);
    assert_eq!(
        reader_allocations, 0,
        "timed reads: {reader_allocations} allocations"
    );
}

/// 20 bytes: two full payload words and a padded tail word.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Level {
    bid: f32,
    ask: f32,
    bid_size: u32,
    ask_size: u32,
    timestamp: u32,
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn directory_followers_waiting_at_a_segment_end_allocate_nothing() {
    const POLLS: u64 = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    for retention in [Retention::KeepAll, Retention::KeepLast(3)] {
        let dir = tmp.path().join(format!("{retention:?}"));
        let mut journal = SegmentedJournal::<u64>::create(&dir, 4, retention).unwrap();
        for i in 0..24 {
            journal.append(&i);
        }
        let mut follower = roda_store::SegmentedFollower::<u64>::open(&dir).unwrap();
        follower.seek(24);
        // Warm-up: the first poll maps or scans.
        assert_eq!(follower.next().unwrap(), None);
        let allocations = allocations_during(|| {
            for _ in 0..POLLS {
                assert_eq!(follower.next().unwrap(), None);
            }
        });
        // A rescan of the directory (at most every 100 ms, to notice removed segments)
        // allocates; a poll does not.
        assert!(
            allocations * 20 < POLLS,
            "{retention:?}: {allocations} allocations in {POLLS} polls"
        );
        journal.append(&24);
        assert_eq!(follower.next().unwrap(), Some(24));
    }
}

#[test]
fn steady_state_set_get_version_allocate_nothing() {
    const STEPS: u64 = if cfg!(miri) { 200 } else { 100_000 };
    const SLOTS: usize = 1024;
    let mut store = SlotStore::<Level>::in_memory(SLOTS).unwrap();
    let reader = store.reader();
    let level = |i: u64| Level {
        bid: i as f32,
        ask: i as f32 + 1.0,
        bid_size: i as u32,
        ask_size: i as u32 + 1,
        timestamp: i as u32,
    };
    // Warm-up outside the measurement (first touches, lazy thread-locals).
    for i in 0..SLOTS {
        store.set(i, &level(i as u64));
    }
    reader.get(0);

    let mut checksum = 0u64;
    let allocations = allocations_during(|| {
        for i in 0..STEPS {
            let index = (i as usize * 7) % SLOTS;
            store.set(index, &level(i));
            store.try_set(index, &level(i)).unwrap();
            checksum += reader.get(index).map_or(0, |l| u64::from(l.timestamp));
            checksum += reader
                .get((index + 1) % SLOTS)
                .map_or(0, |l| u64::from(l.bid_size));
            checksum += reader.version(index);
            checksum += u64::from(reader.is_torn(index));
        }
    });
    assert_eq!(allocations, 0, "hot path allocated {allocations} times");
    assert!(checksum > 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Proves the harness can fail: a Vec allocation is counted.
    let n = allocations_during(|| {
        let v = vec![1u8; 100];
        std::hint::black_box(v);
    });
    assert!(n >= 1);
}

#[test]
fn elastic_append_read_and_reuse_allocate_nothing_once_grown() {
    let mut journal = ElasticJournal::<Reading>::options()
        .give_back_after(u64::MAX)
        .in_memory(64, 4096)
        .unwrap();
    let mut reader = journal.reader().unwrap();
    let r = Reading {
        sensor: 1,
        value: 2.0,
        timestamp: 3,
    };
    // Grow past the largest backlog the measured loop reaches (growth may allocate):
    // 1,000 records span up to 17 segments of 64, depending on where they start.
    for _ in 0..1200 {
        journal.append(&r);
    }
    while reader.next().is_some() {}
    let held = journal.segments_held();
    let rounds = if cfg!(miri) { 3 } else { 200 };
    let n = allocations_during(|| {
        for round in 0..rounds {
            // Bursts up to the same backlog, drained by single and batched reads:
            // every segment is reused many times.
            for _ in 0..1000 {
                journal.append(&r);
            }
            if round % 2 == 0 {
                while reader.next().is_some() {}
            } else {
                while !reader.next_batch(100).is_empty() {}
            }
            let mut batch = journal.batch();
            for _ in 0..10 {
                batch.try_push(&r).unwrap();
            }
            drop(batch);
            while reader.next().is_some() {}
        }
    });
    assert_eq!(n, 0, "allocations in steady state");
    assert_eq!(journal.segments_held(), held, "no growth after warm-up");
}

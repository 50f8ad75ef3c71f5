//! Raw writers: journals whose records are given as bytes of a run-time layout are the
//! journals a typed writer makes (typed readers, followers and writers open them), and
//! a layout that does not match the file is a clear error.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use roda_store::{
    JournalReader, JournalStore, RawJournal, RawSegmentedJournal, RecordLayout, Retention,
    RodaError, SegmentedFollower, SegmentedJournal, StoreFile,
};

type Rec = [u64; 3];

fn rec(i: u64) -> Rec {
    [i, i.wrapping_mul(0x9E37_79B9_7F4A_7C15), !i]
}

/// The bytes of records `range`, starting one byte into a buffer (so they are not
/// aligned for `Rec`, as a network payload need not be).
fn unaligned_bytes(range: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = vec![0xee];
    for i in range {
        out.extend_from_slice(bytemuck::bytes_of(&rec(i)));
    }
    out
}

#[test]
fn a_raw_plain_journal_is_read_back_by_typed_readers_and_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("raw.roda");
    let mut raw = RawJournal::options()
        .schema(9)
        .journal_id(0xabcdef)
        .create(&path, RecordLayout::of::<Rec>(), 1000)
        .unwrap();
    let mut reader = JournalStore::<Rec>::options()
        .schema(9)
        .open_reader(&path)
        .unwrap();
    let bytes = unaligned_bytes(0..300);
    assert_eq!(raw.append(&bytes[1..]).unwrap(), 0..300);
    assert_eq!(raw.append(&[]).unwrap(), 300..300);
    assert_eq!(reader.published(), 300);
    for i in 0..300 {
        assert_eq!(reader.next(), Some(&rec(i)));
    }
    assert_eq!((raw.len(), raw.remaining()), (300, 700));
    assert_eq!(raw.header().journal_id, 0xabcdef);
    // Too many: nothing written.
    let big = unaligned_bytes(300..1001);
    assert!(matches!(
        raw.append(&big[1..]),
        Err(RodaError::Full { capacity: 1000 })
    ));
    assert_eq!(raw.len(), 300);
    drop(raw);

    // A typed writer resumes the raw-written file, and a raw writer the typed one.
    let mut typed = JournalStore::<Rec>::options()
        .schema(9)
        .open(&path)
        .unwrap();
    assert_eq!(typed.len(), 300);
    assert_eq!(typed.append(&rec(300)), 300);
    drop(typed);
    let mut raw = RawJournal::options()
        .schema(9)
        .open(&path, RecordLayout::new(24, 8).unwrap())
        .unwrap();
    assert_eq!(raw.len(), 301);
    let bytes = unaligned_bytes(301..400);
    assert_eq!(raw.append(&bytes[1..]).unwrap(), 301..400);
    drop(raw);
    let copy = JournalStore::<Rec>::options()
        .schema(9)
        .open_reader(&path)
        .unwrap();
    for i in 0..400 {
        assert_eq!(copy.get_at(i), Some(&rec(i)), "record {i}");
    }
    let file = StoreFile::open(&path).unwrap();
    assert_eq!(
        (file.header().record_size, file.header().record_align),
        (24, 8)
    );
}

#[test]
fn mismatched_layouts_and_partial_records_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("typed.roda");
    drop(JournalStore::<Rec>::create(&path, 10).unwrap());
    let err = RawJournal::open(&path, RecordLayout::new(16, 8).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            RodaError::LayoutMismatch {
                field: "record_size",
                expected: 16,
                found: 24
            }
        ),
        "{err}"
    );
    let err = RawJournal::open(&path, RecordLayout::new(24, 4).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            RodaError::LayoutMismatch {
                field: "record_align",
                ..
            }
        ),
        "{err}"
    );
    let err = RawJournal::options()
        .schema(3)
        .open(&path, RecordLayout::of::<Rec>())
        .unwrap_err();
    assert!(
        matches!(
            err,
            RodaError::LayoutMismatch {
                field: "schema",
                ..
            }
        ),
        "{err}"
    );
    // A directory's segments are checked the same way.
    let dir = tmp.path().join("dir");
    drop(SegmentedJournal::<Rec>::create(&dir, 10, Retention::KeepAll).unwrap());
    let err = RawSegmentedJournal::open(&dir, RecordLayout::new(8, 8).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            RodaError::LayoutMismatch {
                field: "record_size",
                ..
            }
        ),
        "{err}"
    );

    // Layouts no type has, and bytes that are not whole records.
    for (size, align) in [(0, 1), (24, 3), (20, 8), (8192, 8192)] {
        let err = RecordLayout::new(size, align).unwrap_err();
        assert!(
            matches!(err, RodaError::InvalidRecordLayout { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("invalid record layout"), "{err}");
    }
    let mut raw = RawJournal::open(&path, RecordLayout::of::<Rec>()).unwrap();
    let err = raw.append(&[0u8; 25]).unwrap_err();
    assert!(err.to_string().contains("whole number of records"), "{err}");
    assert_eq!(raw.len(), 0);
    let mut ring = RawSegmentedJournal::open(&dir, RecordLayout::of::<Rec>()).unwrap();
    assert!(matches!(
        ring.append(&[0u8; 23]),
        Err(RodaError::InvalidRecordLayout { .. })
    ));
}

#[test]
fn a_raw_segmented_journal_rolls_recovers_and_is_followed_by_typed_followers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("copy");
    let mut raw = RawSegmentedJournal::options()
        .retention(Retention::KeepAll)
        .journal_id(0x1234)
        .create_at(&dir, RecordLayout::of::<Rec>(), 100, 1000)
        .unwrap();
    assert_eq!(raw.journal_id(), 0x1234);
    let mut follower = SegmentedFollower::<Rec>::open(&dir).unwrap();
    // Batches crossing segment ends (250 records: two and a half segments).
    let mut next = 1000;
    for len in [250u64, 1, 99, 100, 333] {
        let bytes = unaligned_bytes(next..next + len);
        assert_eq!(raw.append(&bytes[1..]).unwrap(), next..next + len);
        next += len;
    }
    assert_eq!(raw.len(), next);
    let mut seen = 0;
    while let Some(r) = follower.next().unwrap() {
        assert_eq!(r, rec(1000 + seen));
        seen += 1;
    }
    assert_eq!(1000 + seen, next);
    drop(raw);

    // Recovery: a typed writer and a raw writer resume where the other stopped.
    let mut typed = SegmentedJournal::<Rec>::open(&dir).unwrap();
    assert_eq!((typed.len(), typed.journal_id()), (next, 0x1234));
    typed.append(&rec(next));
    next += 1;
    drop(typed);
    let mut raw = RawSegmentedJournal::open(&dir, RecordLayout::of::<Rec>()).unwrap();
    assert_eq!(raw.len(), next);
    let bytes = unaligned_bytes(next..next + 150);
    raw.append(&bytes[1..]).unwrap();
    next += 150;
    drop(raw);
    let mut follower = SegmentedFollower::<Rec>::open(&dir).unwrap();
    assert_eq!(follower.position(), 1000);
    for i in 1000..next {
        assert_eq!(follower.next().unwrap(), Some(rec(i)), "record {i}");
    }
    assert_eq!(follower.next().unwrap(), None);
}

#[test]
fn a_raw_ring_recycles_its_files_like_a_typed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ring");
    let mut raw = RawSegmentedJournal::options()
        .retention(Retention::KeepLast(3))
        .create(&dir, RecordLayout::of::<Rec>(), 64)
        .unwrap();
    for k in 0..50 {
        let bytes = unaligned_bytes(k * 40..(k + 1) * 40);
        raw.append(&bytes[1..]).unwrap();
    }
    assert_eq!(raw.len(), 2000);
    let oldest = raw.oldest_retained();
    drop(raw);
    let mut follower = SegmentedFollower::<Rec>::open(&dir).unwrap();
    assert_eq!(follower.position(), oldest);
    for i in oldest..2000 {
        assert_eq!(follower.next().unwrap(), Some(rec(i)));
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".roda")
        })
        .count();
    assert_eq!(files, 3);
}

#[test]
fn typed_writers_append_bytes_with_their_own_limits() {
    let mut journal = JournalStore::<Rec>::in_memory(10).unwrap();
    let bytes = unaligned_bytes(0..10);
    assert!(matches!(
        journal.try_append_bytes(&bytes[1..24]),
        Err(RodaError::InvalidRecordLayout { size: 24, .. })
    ));
    assert_eq!(journal.try_append_bytes(&bytes[1..]).unwrap(), 0..10);
    assert!(matches!(
        journal.try_append_bytes(&bytes[1..25]),
        Err(RodaError::Full { capacity: 10 })
    ));
    let mut reader = journal.reader();
    assert_eq!(
        reader.next_batch(10),
        &(0..10).map(rec).collect::<Vec<_>>()[..]
    );

    // A gating reader holds a ring back: what fits is appended, then WouldBlock.
    let mut ring = SegmentedJournal::<Rec>::in_memory(4, 2).unwrap();
    let mut gate = ring.reader();
    let bytes = unaligned_bytes(0..12);
    assert_eq!(ring.try_append_bytes(&bytes[1..]).unwrap(), 0..8);
    assert!(matches!(
        ring.try_append_bytes(&bytes[1 + 8 * 24..]),
        Err(RodaError::WouldBlock { .. })
    ));
    for i in 0..8 {
        assert_eq!(gate.next(), Some(&rec(i)));
    }
    assert_eq!(ring.try_append_bytes(&bytes[1 + 8 * 24..]).unwrap(), 8..12);
}

/// Minor page faults this thread has taken so far.
fn thread_minor_faults() -> i64 {
    // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; getrusage writes only it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_minflt
}

/// Large blocks of bytes go into a file journal through the file, not the mapping: the
/// writer faults no page in for them, and every reader (this process's, another
/// mapping's, the reopened file's) sees exactly the bytes, published together.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn large_byte_blocks_reach_a_file_journal_without_faulting_its_pages() {
    const N: u64 = 200_000; // 4.8 MB in blocks of 1 MiB and a tail
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bulk.roda");
    let mut journal = JournalStore::<Rec>::create(&path, N as usize + 10).unwrap();
    let mut same_process = journal.reader();
    let mut other_mapping = JournalReader::<Rec>::open(&path).unwrap();
    // A record appended through the mapping first: the two paths meet in one page.
    journal.append(&rec(0));
    let bytes = unaligned_bytes(1..N);
    let faults = thread_minor_faults();
    let mut at = 1;
    for block in bytes[1..].chunks((1 << 20) / 24 * 24) {
        let range = journal.try_append_bytes(block).unwrap();
        assert_eq!(range.start, at);
        at = range.end;
    }
    let taken = thread_minor_faults() - faults;
    assert_eq!(at, N);
    // Copied through the mapping, 4.8 MB of fresh pages fault ~1,200 times (fewer with
    // large folios, but far more than a handful).
    assert!(taken < 20, "{taken} page faults writing 4.8 MB of blocks");
    for reader in [&mut same_process, &mut other_mapping] {
        assert_eq!(reader.published(), N);
        for i in 0..N {
            assert_eq!(reader.next(), Some(&rec(i)), "record {i}");
        }
    }
    // A small block still goes through the mapping, after the large ones.
    let tail = unaligned_bytes(N..N + 10);
    assert_eq!(journal.try_append_bytes(&tail[1..]).unwrap(), N..N + 10);
    drop(journal);
    let mut reopened = JournalReader::<Rec>::open(&path).unwrap();
    assert_eq!(reopened.published(), N + 10);
    for i in 0..N + 10 {
        assert_eq!(reopened.next(), Some(&rec(i)), "record {i} after reopening");
    }
}

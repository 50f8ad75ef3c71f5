//! StoreFile: untyped, read-only access to journals and slot stores (what the `roda`
//! tool is built on): header, writer, records and slots as bytes, every open error,
//! damaged files, and reads racing a live writer.
#![cfg(not(roda_loom))]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use roda_store::{JournalStore, RodaError, SlotSnapshot, SlotStore, StoreFile, StoreKind};

/// Offsets of header words (see docs/file-format.md).
const OFF_STRIDE: u64 = 72;
const OFF_WRITER_PID: u64 = 80;
const OFF_WRITE_SEQ: u64 = 128;

fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

fn poke(path: &Path, at: u64, value: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn journal_header_writer_and_records() {
    let (_dir, path) = temp("j.roda");
    let mut journal = JournalStore::<[u64; 3]>::options()
        .schema(42)
        .create(&path, 10)
        .unwrap();
    for i in 0..4u64 {
        journal.append(&[i, i * 10, i * 100]);
    }
    let file = StoreFile::open(&path).unwrap();
    let h = file.header();
    assert_eq!(h.kind, StoreKind::Journal);
    assert_eq!(
        (h.version, h.record_size, h.record_align, h.stride),
        (1, 24, 8, 24)
    );
    assert_eq!((h.capacity, h.schema), (10, 42));
    assert_eq!(
        h,
        JournalStore::<[u64; 3]>::options()
            .schema(42)
            .open_reader(&path)
            .unwrap()
            .header()
    );
    assert_eq!(file.file_len(), h.data_offset + 10 * 24);
    assert_eq!(file.path(), path.as_path());
    assert_eq!((file.published(), file.write_sequence()), (4, 4));
    assert_eq!(words(file.record_bytes(3).unwrap()), vec![3, 30, 300]);
    assert_eq!(file.record_bytes(4), None);
    assert_eq!(file.record_bytes(u64::MAX), None);
    // Slot accessors say nothing about a journal.
    assert_eq!(file.slot_sequence(0), None);
    assert_eq!(file.read_slot(0, &mut Vec::new()), None);

    // The writer is this process, alive; the mapping follows new appends.
    assert_eq!(file.writer_pid(), std::process::id());
    assert!(file.writer_alive());
    journal.append(&[9, 9, 9]);
    assert_eq!(file.published(), 5);
    assert_eq!(words(file.record_bytes(4).unwrap()), vec![9, 9, 9]);
    // A clean close clears the pid.
    drop(journal);
    assert_eq!(file.writer_pid(), 0);
    assert!(!file.writer_alive());
    // A crashed writer leaves its pid behind; this one cannot exist (pid_max <= 2^22).
    poke(&path, OFF_WRITER_PID, 0x7fff_fff0);
    assert_eq!(file.writer_pid(), 0x7fff_fff0);
    assert!(!file.writer_alive());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn damaged_write_sequence_is_clamped() {
    let (_dir, path) = temp("j.roda");
    let mut journal = JournalStore::<u64>::create(&path, 8).unwrap();
    journal.append(&1);
    drop(journal);
    poke(&path, OFF_WRITE_SEQ, 1000);
    let file = StoreFile::open(&path).unwrap();
    assert_eq!((file.write_sequence(), file.published()), (1000, 8));
    assert!(file.record_bytes(7).is_some());
    assert!(file.record_bytes(8).is_none());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn slots_snapshots_versions_and_torn() {
    let (_dir, path) = temp("s.roda");
    // 12-byte records: the last payload word is only half used.
    let mut slots = SlotStore::<[u32; 3]>::create(&path, 4).unwrap();
    slots.set(1, &[1, 2, 3]);
    slots.set(1, &[4, 5, 6]);
    slots.set(2, &[7, 8, 9]);
    let file = StoreFile::open(&path).unwrap();
    let h = file.header();
    assert_eq!(h.kind, StoreKind::Slots);
    assert_eq!(
        (h.record_size, h.record_align, h.stride, h.capacity),
        (12, 4, 64, 4)
    );
    assert_eq!((file.published(), file.record_bytes(0)), (0, None));

    let mut out = Vec::new();
    assert_eq!(file.read_slot(0, &mut out), Some(SlotSnapshot::Empty));
    assert_eq!(
        file.read_slot(1, &mut out),
        Some(SlotSnapshot::Value { version: 2 })
    );
    assert_eq!(out, bytemuck::bytes_of(&[4u32, 5, 6]));
    assert_eq!(
        file.read_slot(2, &mut out),
        Some(SlotSnapshot::Value { version: 1 })
    );
    assert_eq!(out, bytemuck::bytes_of(&[7u32, 8, 9]));
    assert_eq!(file.read_slot(4, &mut out), None);
    assert_eq!(
        (
            file.slot_sequence(0),
            file.slot_sequence(1),
            file.slot_sequence(4)
        ),
        (Some(0), Some(4), None)
    );

    // A writer killed mid-set leaves an odd word: torn once the writer is gone.
    drop(slots);
    let slot3 = h.data_offset + 3 * h.stride;
    poke(&path, slot3, 5);
    assert_eq!(file.slot_sequence(3), Some(5));
    assert_eq!(file.read_slot(3, &mut out), Some(SlotSnapshot::Torn));
    // Flagged by a later writer (bit 63): torn at once.
    poke(&path, slot3, (1 << 63) | 5);
    assert_eq!(file.read_slot(3, &mut out), Some(SlotSnapshot::Torn));
    // The next writer lists it, and a set repairs it.
    let mut slots = SlotStore::<[u32; 3]>::open(&path).unwrap();
    assert_eq!(slots.torn_slots(), vec![3]);
    slots.set(3, &[1, 1, 1]);
    assert_eq!(
        file.read_slot(3, &mut out),
        Some(SlotSnapshot::Value { version: 3 })
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn open_errors() {
    let (dir, path) = temp("j.roda");
    let err = |p: &Path| StoreFile::open(p).unwrap_err();

    assert!(matches!(err(&path), RodaError::Io { .. }), "missing file");
    assert!(
        matches!(err(dir.path()), RodaError::Io { .. }),
        "a directory"
    );
    std::fs::write(&path, b"").unwrap();
    assert!(
        matches!(err(&path), RodaError::NotARodaFile { .. }),
        "empty"
    );
    std::fs::write(&path, b"id,price\n1,2\n").unwrap();
    assert!(matches!(err(&path), RodaError::NotARodaFile { .. }), "text");
    std::fs::write(&path, b"\x89RODA\r\n\x1a").unwrap();
    assert!(
        matches!(err(&path), RodaError::Truncated { .. }),
        "magic only"
    );
    std::fs::remove_file(&path).unwrap();

    // A whole journal, then cut short: the data area is missing.
    JournalStore::<u64>::create(&path, 1000).unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full - 1).unwrap();
    match err(&path) {
        RodaError::Truncated {
            expected, found, ..
        } => assert_eq!((expected, found), (full, full - 1)),
        other => panic!("{other}"),
    }
    file.set_len(full).unwrap();
    StoreFile::open(&path).unwrap();

    // Record fields that contradict each other: no type to compare with, still caught.
    for (at, value) in [(OFF_STRIDE, 16), (24, 0), (32, 3)] {
        poke(&path, at, value);
        assert!(
            matches!(err(&path), RodaError::Corrupted { .. }),
            "offset {at} = {value}"
        );
        // Restore: record size 8, align 8, stride 8.
        poke(&path, at, 8);
    }
    StoreFile::open(&path).unwrap();
    // A slot store's stride must be its slot size.
    let (_dir2, slots) = temp("s.roda");
    SlotStore::<u64>::create(&slots, 3).unwrap();
    poke(&slots, OFF_STRIDE, 16);
    assert!(matches!(err(&slots), RodaError::Corrupted { .. }));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn follows_a_live_journal_writer() {
    let (_dir, path) = temp("j.roda");
    const N: u64 = 200_000;
    let mut journal = JournalStore::<[u64; 2]>::create(&path, N as usize).unwrap();
    let file = StoreFile::open(&path).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            journal.append(&[i, !i]);
        }
    });
    let mut next = 0;
    while next < N {
        let published = file.published();
        for seq in next..published {
            assert_eq!(words(file.record_bytes(seq).unwrap()), vec![seq, !seq]);
        }
        next = published;
    }
    writer.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn slot_snapshots_racing_a_live_writer_are_consistent() {
    let (_dir, path) = temp("s.roda");
    const SETS: u64 = 200_000;
    let mut slots = SlotStore::<[u64; 7]>::create(&path, 2).unwrap();
    let file = StoreFile::open(&path).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 1..=SETS {
            slots.set((i % 2) as usize, &[i; 7]);
        }
    });
    let mut out = Vec::new();
    let mut last = [0u64; 2];
    while last[0] < SETS / 2 || last[1] < SETS / 2 {
        for index in 0..2 {
            match file.read_slot(index, &mut out).unwrap() {
                SlotSnapshot::Value { version } => {
                    let w = words(&out);
                    assert!(w.iter().all(|&x| x == w[0]), "torn read {w:?}");
                    assert!(version >= last[index as usize]);
                    last[index as usize] = version;
                }
                SlotSnapshot::Empty => assert_eq!(last[index as usize], 0),
                SlotSnapshot::Torn => panic!("a live writer's slot reported torn"),
            }
        }
    }
    writer.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn segment_files_describe_themselves() {
    let (_dir, path) = temp("plain.roda");
    let journal = JournalStore::<u64>::create(&path, 4).unwrap();
    let plain = StoreFile::open(&path).unwrap();
    assert!(!plain.header().segment);
    assert_eq!(
        (plain.first_sequence(), plain.header().retention),
        (None, 0)
    );
    drop(journal);
    let tmp = tempfile::tempdir().unwrap();
    let mut segmented = roda_store::SegmentedJournal::<u64>::create(
        tmp.path(),
        4,
        roda_store::Retention::KeepLast(2),
    )
    .unwrap();
    for i in 0..10 {
        segmented.append(&i);
    }
    let file = StoreFile::open(tmp.path().join(format!("{:020}.roda", 8))).unwrap();
    let h = file.header();
    assert!(h.segment);
    assert_eq!(
        (h.kind, h.capacity, h.retention),
        (StoreKind::Journal, 4, 2)
    );
    assert_eq!((file.first_sequence(), file.published()), (Some(8), 2));
    // A plain journal reader or writer refuses a segment (its sequences are not 0-based).
    let segment = tmp.path().join(format!("{:020}.roda", 4));
    assert!(matches!(
        roda_store::JournalReader::<u64>::open(&segment),
        Err(RodaError::LayoutMismatch {
            field: "segment",
            expected: 0,
            found: 1
        })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn copy_record_of_plain_journals_and_slot_stores() {
    let (_dir, path) = temp("j.roda");
    let mut journal = JournalStore::<[u32; 3]>::create(&path, 4).unwrap();
    journal.append(&[1, 2, 3]);
    let file = StoreFile::open(&path).unwrap();
    let mut out = Vec::new();
    assert!(file.copy_record(0, &mut out).unwrap());
    assert_eq!(out, bytemuck::bytes_of(&[1u32, 2, 3]));
    assert!(!file.copy_record(1, &mut out).unwrap());
    assert!(!file.copy_record(u64::MAX, &mut out).unwrap());
    journal.append(&[4, 5, 6]);
    assert!(file.copy_record(1, &mut out).unwrap());
    assert_eq!(out, bytemuck::bytes_of(&[4u32, 5, 6]));

    let (_dir2, slots) = temp("s.roda");
    SlotStore::<u64>::create(&slots, 2).unwrap().set(0, &7);
    let file = StoreFile::open(&slots).unwrap();
    assert!(!file.copy_record(0, &mut out).unwrap());
    assert_eq!(out.len(), 8);
}

/// A segment of a `KeepLast(2)` ring of 4-record segments, copied record by record while
/// the writer recycles it.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn copy_record_reports_a_recycled_segment() {
    let tmp = tempfile::tempdir().unwrap();
    // 12-byte records: copied in 4-byte words.
    let mut journal = roda_store::SegmentedJournal::<[u32; 3]>::create(
        tmp.path(),
        4,
        roda_store::Retention::KeepLast(2),
    )
    .unwrap();
    let record = |i: u64| [i as u32, !(i as u32), 3 * i as u32];
    for i in 0..6 {
        journal.append(&record(i));
    }
    let file = StoreFile::open(tmp.path().join(format!("{:020}.roda", 4))).unwrap();
    let mut out = Vec::new();
    for seq in 4..6 {
        assert!(file.copy_record(seq, &mut out).unwrap());
        assert_eq!(out, bytemuck::bytes_of(&record(seq)));
    }
    // Not written yet; outside the segment; before it (the file never held 0..4 while
    // open, but it holds newer records: those are gone as far as it can tell).
    assert!(!file.copy_record(6, &mut out).unwrap());
    assert!(!file.copy_record(8, &mut out).unwrap());
    assert!(matches!(
        file.copy_record(3, &mut out),
        Err(RodaError::Lagged { missed: 1 })
    ));
    // Fill segment 4..8 and 8..12 (recycling the other file): this file still holds 4..8.
    for i in 6..12 {
        journal.append(&record(i));
    }
    assert!(file.copy_record(7, &mut out).unwrap());
    assert_eq!(out, bytemuck::bytes_of(&record(7)));
    // Record 12 recycles this file (renamed `12`, the same mapping): 4..8 are gone.
    journal.append(&record(12));
    assert_eq!(file.first_sequence(), Some(12));
    for seq in 4..8 {
        match file.copy_record(seq, &mut out) {
            Err(RodaError::Lagged { missed }) => assert_eq!(missed, 8 - seq),
            other => panic!("record {seq}: {other:?}"),
        }
    }
    assert!(file.copy_record(12, &mut out).unwrap());
    assert_eq!(out, bytemuck::bytes_of(&record(12)));
    assert!(!file.copy_record(13, &mut out).unwrap());
    // A segment file never gives a view into itself.
    assert_eq!(file.record_bytes(12), None);
}

/// Copies racing a writer that recycles the segment all the time: every copy returned
/// is the record of its sequence, never torn or from another generation.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn copies_racing_recycles_are_never_torn() {
    let tmp = tempfile::tempdir().unwrap();
    const N: u64 = 300_000;
    let mut journal = roda_store::SegmentedJournal::<[u64; 3]>::create(
        tmp.path(),
        8,
        roda_store::Retention::KeepLast(2),
    )
    .unwrap();
    let file = StoreFile::open(tmp.path().join(format!("{:020}.roda", 0))).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            journal.append(&[i, !i, i.wrapping_mul(3)]);
        }
        journal
    });
    let mut out = Vec::new();
    let (mut copied, mut lagged) = (0u64, 0u64);
    while !writer.is_finished() || copied == 0 {
        let Some(first) = file.first_sequence() else {
            continue;
        };
        for seq in first..first + 8 {
            match file.copy_record(seq, &mut out) {
                Ok(true) => {
                    assert_eq!(words(&out), vec![seq, !seq, seq.wrapping_mul(3)]);
                    copied += 1;
                }
                Ok(false) => break,
                Err(RodaError::Lagged { missed }) => {
                    assert!((1..=8).contains(&missed));
                    lagged += 1;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let journal = writer.join().unwrap();
    assert_eq!(journal.len(), N);
    assert!(copied > 0, "copied {copied}, lagged {lagged}");
}

//! Every SlotStore / SlotReader method and every open error, on files and in memory,
//! including torn-slot detection after a writer died mid-set.
#![cfg(not(roda_loom))]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};
use roda_store::{JournalStore, RodaError, Settable, SlotReader, SlotStore, StoreKind};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Quote {
    bid: f64,
    ask: f64,
    size: u32,
    flags: u16,
    venue: u16,
}

fn quote(i: u64) -> Quote {
    Quote {
        bid: i as f64,
        ask: i as f64 + 0.5,
        size: i as u32 * 10,
        flags: i as u16,
        venue: 7,
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.roda");
    (dir, path)
}

/// Offset of the header's writer pid word (see docs/slots.md).
const OFF_WRITER_PID: u64 = 80;

/// Writes `seq` into the sequence word of slot `index` of the file at `path`, as a
/// writer killed between its two sequence stores would leave it.
fn poke_seq(path: &Path, index: usize, seq: u64) {
    let header = SlotReader::<Quote>::open(path).unwrap().header();
    let at = header.data_offset + index as u64 * header.stride;
    poke(path, at, seq);
}

fn poke(path: &Path, at: u64, value: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

#[test]
fn in_memory_set_get_version() {
    let mut s = SlotStore::<Quote>::in_memory(4).unwrap();
    assert_eq!(s.len(), 4);
    assert!(!s.is_empty());
    assert_eq!(s.path(), None);
    assert!(s.torn_slots().is_empty());
    let r = s.reader();
    assert_eq!((r.len(), r.is_empty(), r.path()), (4, false, None));
    for i in 0..4 {
        assert_eq!(r.get(i), None);
        assert_eq!(r.version(i), 0);
        assert!(!r.is_torn(i));
    }
    s.set(0, &quote(1));
    s.try_set(3, &quote(3)).unwrap();
    assert_eq!(r.get(0), Some(quote(1)));
    assert_eq!(r.get(3), Some(quote(3)));
    assert_eq!(r.get(1), None);
    s.set(0, &quote(2));
    s.set(0, &quote(5));
    assert_eq!(r.get(0), Some(quote(5)));
    assert_eq!((r.version(0), r.version(1), r.version(3)), (3, 0, 1));
    let clone = r.clone();
    assert_eq!(clone.get(0), Some(quote(5)));
    // Out of range: None / 0 / false, never a panic.
    assert_eq!((r.get(4), r.version(4), r.is_torn(4)), (None, 0, false));
    assert_eq!(r.get(usize::MAX), None);
    // A reader outlives the writer.
    drop(s);
    assert_eq!(clone.get(3), Some(quote(3)));
}

#[test]
fn try_set_out_of_range_is_an_error() {
    let mut s = SlotStore::<Quote>::in_memory(2).unwrap();
    match s.try_set(2, &quote(0)) {
        Err(RodaError::OutOfRange { index: 2, len: 2 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(s.try_set(usize::MAX, &quote(0)).is_err());
    let msg = s.try_set(9, &quote(0)).unwrap_err().to_string();
    assert!(msg.contains('9') && msg.contains('2'), "{msg}");
    assert_eq!(s.reader().version(1), 0);
}

#[test]
#[should_panic(expected = "index 5 is out of range: the store has 4 slots")]
fn set_out_of_range_panics_with_len_and_try_set() {
    let mut s = SlotStore::<Quote>::in_memory(4).unwrap();
    s.set(5, &quote(0));
}

#[test]
#[should_panic(expected = "use try_set")]
fn set_panic_suggests_try_set() {
    let mut s = SlotStore::<u8>::in_memory(1).unwrap();
    s.set(1, &0);
}

#[test]
fn settable_trait() {
    fn fill<S: Settable<u64>>(s: &mut S, n: usize) {
        for i in 0..n {
            s.set(i, &(i as u64 * 3));
        }
    }
    let mut s = SlotStore::<u64>::in_memory(5).unwrap();
    fill(&mut s, 5);
    let r = s.reader();
    assert_eq!((0..5).map(|i| r.get(i).unwrap()).sum::<u64>(), 30);
}

#[test]
fn writers_are_send_readers_send_and_clone() {
    fn send<T: Send>() {}
    fn clone<T: Clone>() {}
    send::<SlotStore<Quote>>();
    send::<SlotReader<Quote>>();
    clone::<SlotReader<Quote>>();
}

#[test]
fn strides_and_record_shapes() {
    fn check<T: roda_store::Record + PartialEq + std::fmt::Debug>(value: T, stride: u64) {
        let mut s = SlotStore::<T>::in_memory(3).unwrap();
        let h = s.header();
        assert_eq!(h.kind, StoreKind::Slots);
        assert_eq!(h.stride, stride, "{}", std::any::type_name::<T>());
        assert_eq!(h.record_size, std::mem::size_of::<T>() as u64);
        assert_eq!(h.record_align, std::mem::align_of::<T>() as u64);
        assert_eq!(h.capacity, 3);
        s.set(1, &value);
        s.set(2, &value);
        let r = s.reader();
        assert_eq!(r.get(1), Some(value));
        assert_eq!(r.get(2), Some(value));
        assert_eq!(r.get(0), None);
    }
    check(0xabu8, 64);
    check([1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 64);
    check([7u16, 8, 9], 64);
    check([u64::MAX - 1; 7], 64); // 8 + 56 = 64: one cache line
    check([5u64; 8], 128); // 8 + 64 = 72: two lines
    check([3u64; 24], 256); // 8 + 192 = 200
    check([u128::MAX / 3; 3], 64); // align 16 is fine: values are copied out
    check(quote(9), 64);
}

#[test]
fn bad_shapes_are_errors() {
    assert!(matches!(
        SlotStore::<()>::in_memory(3),
        Err(RodaError::ZeroSizedRecord)
    ));
    assert!(matches!(
        SlotStore::<u64>::in_memory(0),
        Err(RodaError::InvalidCapacity { capacity: 0, .. })
    ));
    assert!(matches!(
        SlotStore::<u64>::in_memory(usize::MAX / 16),
        Err(RodaError::InvalidCapacity { .. })
    ));
}

#[test]
fn options_builder() {
    let s = SlotStore::<u64>::options()
        .populate(true)
        .huge_pages(true)
        .lock_memory(true)
        .schema(11)
        .in_memory(64)
        .unwrap();
    assert_eq!(s.header().schema, 11);
    let _ = s.memory_locked();
    assert!(format!("{s:?}").contains("SlotStore"));
    assert!(format!("{:?}", s.reader()).contains("SlotReader"));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn file_reopen_keeps_values_and_versions() {
    let (_dir, path) = temp();
    let mut s = SlotStore::<Quote>::create(&path, 10).unwrap();
    assert_eq!(s.path(), Some(path.as_path()));
    s.set(0, &quote(1));
    s.set(9, &quote(2));
    s.set(9, &quote(3));
    s.flush().unwrap();
    s.flush().unwrap();
    drop(s);

    let r = SlotReader::<Quote>::open(&path).unwrap();
    assert_eq!(r.path(), Some(path.as_path()));
    assert_eq!(r.len(), 10);
    assert_eq!((r.get(0), r.version(0)), (Some(quote(1)), 1));
    assert_eq!((r.get(9), r.version(9)), (Some(quote(3)), 2));
    assert_eq!((r.get(5), r.version(5)), (None, 0));

    let mut s = SlotStore::<Quote>::open(&path).unwrap();
    assert!(s.torn_slots().is_empty());
    assert_eq!(s.len(), 10);
    s.set(9, &quote(4));
    // The follower opened before sees the new value through the shared mapping.
    assert_eq!((r.get(9), r.version(9)), (Some(quote(4)), 3));
    drop(s);

    let s = SlotStore::<Quote>::open_or_create(&path, 99).unwrap();
    assert_eq!(s.len(), 10, "open_or_create opens an existing file");
    assert_eq!(s.reader().get(9), Some(quote(4)));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn open_errors() {
    let (dir, path) = temp();
    assert!(matches!(
        SlotStore::<Quote>::open(&path),
        Err(RodaError::Io { .. })
    ));
    assert!(matches!(
        SlotReader::<Quote>::open(&path),
        Err(RodaError::Io { .. })
    ));
    let s = SlotStore::<Quote>::open_or_create(&path, 3).unwrap();
    assert_eq!(s.len(), 3);
    assert!(matches!(
        SlotStore::<Quote>::create(&path, 3),
        Err(RodaError::AlreadyExists { .. })
    ));
    match SlotStore::<Quote>::open(&path) {
        Err(RodaError::WriterActive { pid }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    drop(s);

    // Another record type, schema, or store kind is refused, never reinterpreted.
    match SlotStore::<[u64; 2]>::open(&path) {
        Err(RodaError::LayoutMismatch {
            field: "record_size",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match SlotStore::<Quote>::options().schema(4).open(&path) {
        Err(RodaError::LayoutMismatch {
            field: "schema", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match JournalStore::<Quote>::open(&path) {
        Err(RodaError::LayoutMismatch { field: "kind", .. }) => {}
        other => panic!("{other:?}"),
    }
    let journal_path = dir.path().join("j.roda");
    drop(JournalStore::<Quote>::create(&journal_path, 4).unwrap());
    match SlotReader::<Quote>::open(&journal_path) {
        Err(RodaError::LayoutMismatch {
            field: "kind",
            expected,
            found,
        }) => assert_eq!(
            (expected, found),
            (StoreKind::Slots as u64, StoreKind::Journal as u64)
        ),
        other => panic!("{other:?}"),
    }
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a store").unwrap();
    assert!(matches!(
        SlotStore::<Quote>::open(&junk),
        Err(RodaError::NotARodaFile { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn options_open_reader_and_schema() {
    let (_dir, path) = temp();
    let mut s = SlotStore::<u64>::options()
        .schema(5)
        .create(&path, 2)
        .unwrap();
    s.set(1, &77);
    let r = SlotStore::<u64>::options()
        .schema(5)
        .open_reader(&path)
        .unwrap();
    assert_eq!(r.get(1), Some(77));
    assert_eq!(r.header().schema, 5);
    assert!(SlotReader::<u64>::open(&path).is_err(), "schema 0 != 5");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn torn_slot_after_writer_died_is_reported_and_repaired() {
    let (_dir, path) = temp();
    let mut s = SlotStore::<Quote>::create(&path, 4).unwrap();
    s.set(1, &quote(1));
    s.set(1, &quote(2));
    s.set(2, &quote(3));
    drop(s);
    // A writer killed inside its third set of slot 1: sequence 4 -> 5, payload half done.
    poke_seq(&path, 1, 5);

    // The writer is gone (pid 0 after its clean close): torn, never returned, no spinning.
    let r = SlotReader::<Quote>::open(&path).unwrap();
    assert!(r.is_torn(1));
    assert_eq!(r.get(1), None);
    assert_eq!(r.version(1), 2, "two sets completed");
    assert_eq!(r.get(2), Some(quote(3)));
    assert!(!r.is_torn(2) && !r.is_torn(0));

    // The next writer lists it; readers (old and new) report it torn at once while
    // that writer is alive.
    let s = SlotStore::<Quote>::open(&path).unwrap();
    assert_eq!(s.torn_slots(), vec![1]);
    assert!(r.is_torn(1));
    assert_eq!(r.get(1), None);
    assert!(s.reader().is_torn(1));
    assert_eq!(s.reader().get(1), None);
    drop(s);

    // Still torn after another reopen: nothing rewrote it.
    let mut s = SlotStore::<Quote>::open(&path).unwrap();
    assert_eq!(s.torn_slots(), vec![1]);
    // A set makes it whole; its version counts the completed sets.
    s.set(1, &quote(9));
    assert!(!r.is_torn(1));
    assert_eq!((r.get(1), r.version(1)), (Some(quote(9)), 3));
    assert_eq!(s.torn_slots(), vec![1], "the list is what open found");
    drop(s);
    let s = SlotStore::<Quote>::open(&path).unwrap();
    assert!(s.torn_slots().is_empty());
    assert_eq!(s.reader().get(1), Some(quote(9)));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn odd_slot_with_dead_writer_pid_is_torn() {
    let (_dir, path) = temp();
    let mut s = SlotStore::<Quote>::create(&path, 2).unwrap();
    s.set(0, &quote(1));
    drop(s);
    poke_seq(&path, 0, 3);
    // A SIGKILLed writer never clears its pid; this one cannot exist (pid_max <= 2^22).
    poke(&path, OFF_WRITER_PID, 0x7fff_fff0);
    let r = SlotReader::<Quote>::open(&path).unwrap();
    assert!(r.is_torn(0));
    assert_eq!(r.get(0), None);
    assert_eq!(r.version(0), 1);
    // The writer's lock decides, not its pid: pid 1 always exists (a reused pid),
    // yet no writer holds the file.
    poke(&path, OFF_WRITER_PID, 1);
    assert!(r.is_torn(0));
    // A live writer mid-set is not torn, whatever pid it recorded: it will finish.
    let s = SlotStore::<Quote>::open(&path).unwrap();
    poke_seq(&path, 0, 5);
    poke(&path, OFF_WRITER_PID, 0x7fff_fff0);
    assert!(!r.is_torn(0));
    drop(s);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn follower_sees_writer_live() {
    let (_dir, path) = temp();
    let mut s = SlotStore::<u64>::create(&path, 1000).unwrap();
    let r = SlotReader::<u64>::open(&path).unwrap();
    let t = std::thread::spawn(move || {
        // Waits for the last value, checking that versions only grow.
        let mut last = 0;
        loop {
            let v = r.version(999);
            assert!(v >= last);
            last = v;
            if r.get(999) == Some(500) {
                return r.version(999);
            }
            std::thread::yield_now();
        }
    });
    for i in 1..=500u64 {
        s.set(999, &i);
    }
    assert_eq!(t.join().unwrap(), 500);
}

/// Two threads race on one in-memory slot; small enough for Miri, which checks that
/// the seqlock is free of data races and that no torn value is ever returned.
#[test]
fn racing_reader_never_sees_a_torn_value() {
    const SETS: u64 = if cfg!(miri) { 40 } else { 20_000 };
    let mut s = SlotStore::<[u64; 3]>::in_memory(2).unwrap();
    let r = s.reader();
    let reader = std::thread::spawn(move || {
        let mut seen = 0u64;
        let mut last_version = 0;
        while seen < SETS {
            if let Some([a, b, c]) = r.get(1) {
                assert!(a == b && b == c, "torn read {a} {b} {c}");
                assert!(a >= seen, "went backwards");
                seen = a;
            }
            let v = r.version(1);
            assert!(v >= last_version);
            last_version = v;
            std::thread::yield_now();
        }
    });
    for i in 1..=SETS {
        s.set(1, &[i, i, i]);
    }
    reader.join().unwrap();
}

//! Every JournalStore / JournalReader method and every open error, on files and in memory.
#![cfg(not(roda_loom))]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytemuck::{Pod, Zeroable};
use roda_store::{IterativeReadable, JournalReader, JournalStore, RodaError, StoreKind};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Rec {
    seq: u64,
    value: f64,
}

fn rec(seq: u64) -> Rec {
    Rec {
        seq,
        value: seq as f64 * 1.5,
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    (dir, path)
}

#[test]
fn in_memory_append_and_read() {
    let mut j = JournalStore::<Rec>::in_memory(4).unwrap();
    assert!(j.is_empty());
    assert_eq!((j.len(), j.capacity(), j.remaining()), (0, 4, 4));
    let mut r = j.reader();
    assert_eq!(r.next(), None);
    assert_eq!(r.get(), None);
    assert_eq!(j.append(&rec(0)), 0);
    assert_eq!(j.try_append(&rec(1)).unwrap(), 1);
    assert_eq!(r.published(), 2);
    assert_eq!(r.available(), 2);
    assert_eq!(r.next(), Some(&rec(0)));
    assert_eq!(r.get(), Some(&rec(0)));
    assert_eq!(r.get_index(), 1);
    assert_eq!(j.append_slice(&[rec(2), rec(3)]), 2..4);
    assert!(j.is_full());
    assert_eq!(j.remaining(), 0);
    assert!(matches!(
        j.try_append(&rec(4)),
        Err(RodaError::Full { capacity: 4 })
    ));
    assert!(matches!(
        j.try_append_slice(&[rec(4)]),
        Err(RodaError::Full { .. })
    ));
    assert_eq!(j.try_append_slice(&[]).unwrap(), 4..4);
    // The reader knew of 2 records when it last asked: it hands out record 1 first,
    // then asks again.
    assert_eq!(r.next_batch(2), &[rec(1)]);
    assert_eq!(r.get(), Some(&rec(1)));
    assert_eq!(r.next_batch(100), &[rec(2), rec(3)]);
    assert_eq!(r.get(), Some(&rec(3)));
    assert!(r.next_batch(100).is_empty());
    assert_eq!(r.next(), None);
    assert_eq!(r.get_index(), 4);
    assert_eq!(r.available(), 0);
    assert!(j.path().is_none());
    j.flush().unwrap();
}

#[test]
fn cursor_methods() {
    let mut j = JournalStore::<u64>::in_memory(10).unwrap();
    let mut r = j.reader();
    j.append_slice(&[10, 11, 12]);
    r.seek(2);
    assert_eq!(
        r.get(),
        Some(&11),
        "get after seek(s) is the record at s - 1"
    );
    assert_eq!(r.available(), 1);
    assert_eq!(r.next(), Some(&12));
    r.seek(0);
    assert_eq!(r.get(), None);
    r.seek(7);
    assert_eq!(r.get(), None, "record 6 is not published");
    assert_eq!(r.next(), None);
    assert_eq!(r.get_index(), 7, "None does not move the cursor");
    assert_eq!(r.available(), 0);
    assert_eq!(r.get_at(1), Some(&11));
    assert_eq!(r.get_at(3), None);
    assert_eq!(r.get_at(u64::MAX), None);
    r.seek(u64::MAX);
    assert_eq!(r.next(), None);
    assert!(r.next_batch(5).is_empty());
    // A clone is an independent cursor at the same place.
    r.seek(1);
    let mut c = r.clone();
    assert_eq!(c.next(), Some(&11));
    assert_eq!(r.get_index(), 1);
    // The trait methods agree with the inherent ones.
    assert_eq!(IterativeReadable::next(&mut r), Some(&11));
    assert_eq!(IterativeReadable::get(&r), Some(&11));
    assert_eq!(IterativeReadable::get_index(&r), 2);
    let mut a: &mut dyn roda_store::Appendable<u64> = &mut j;
    assert_eq!(a.append(&13), 3);
    a = &mut j;
    let _ = a;
}

#[test]
#[should_panic(expected = "all 2 records of its capacity are written")]
fn append_panics_when_full() {
    let mut j = JournalStore::<u64>::in_memory(2).unwrap();
    j.append(&1);
    j.append(&2);
    j.append(&3);
}

#[test]
#[should_panic(expected = "try_append")]
fn append_slice_panics_when_it_does_not_fit() {
    let mut j = JournalStore::<u64>::in_memory(2).unwrap();
    j.append_slice(&[1, 2, 3]);
}

#[test]
fn batch_that_does_not_fit_writes_nothing() {
    let mut j = JournalStore::<u64>::in_memory(2).unwrap();
    j.append(&1);
    assert!(j.try_append_slice(&[2, 3]).is_err());
    assert_eq!(j.len(), 1);
    assert_eq!(j.reader().published(), 1);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn zero_sized_and_bad_capacity() {
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct Empty;
    assert!(matches!(
        JournalStore::<Empty>::in_memory(4),
        Err(RodaError::ZeroSizedRecord)
    ));
    assert!(matches!(
        JournalStore::<u64>::in_memory(0),
        Err(RodaError::InvalidCapacity { capacity: 0, .. })
    ));
    assert!(matches!(
        JournalStore::<u64>::in_memory(usize::MAX / 4),
        Err(RodaError::InvalidCapacity { .. })
    ));
    let (_d, path) = temp();
    assert!(matches!(
        JournalStore::<Empty>::create(&path, 4),
        Err(RodaError::ZeroSizedRecord)
    ));
    assert!(!path.exists(), "a failed create leaves no file");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn create_reopen_resumes() {
    let (dir, path) = temp();
    {
        let mut j = JournalStore::<Rec>::create(&path, 100).unwrap();
        assert_eq!(j.path(), Some(path.as_path()));
        for i in 0..10 {
            j.append(&rec(i));
        }
        j.flush().unwrap();
        j.flush().unwrap();
    }
    let mut j = JournalStore::<Rec>::open(&path).unwrap();
    assert_eq!((j.len(), j.capacity()), (10, 100));
    assert_eq!(j.append(&rec(10)), 10);
    let mut r = j.reader();
    for i in 0..=10 {
        assert_eq!(r.next(), Some(&rec(i)));
    }
    drop(j);
    let j = JournalStore::<Rec>::open_or_create(&path, 5).unwrap();
    assert_eq!(
        j.capacity(),
        100,
        "open_or_create opens an existing file as is"
    );
    drop(j);
    let other = dir.path().join("new.roda");
    let j = JournalStore::<Rec>::open_or_create(&other, 5).unwrap();
    assert_eq!((j.len(), j.capacity()), (0, 5));
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn create_refuses_existing_path() {
    let (_d, path) = temp();
    drop(JournalStore::<u64>::create(&path, 8).unwrap());
    let err = JournalStore::<u64>::create(&path, 8).unwrap_err();
    assert!(matches!(err, RodaError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("open_or_create"));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn open_missing_file_is_io_error_with_path() {
    let (_d, path) = temp();
    match JournalStore::<u64>::open(&path).unwrap_err() {
        RodaError::Io {
            path: Some(p),
            source,
        } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
    assert!(JournalReader::<u64>::open(&path).is_err());
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn second_writer_is_refused_with_pid_and_reader_is_not() {
    let (_d, path) = temp();
    let mut w = JournalStore::<u64>::create(&path, 8).unwrap();
    w.append(&5);
    match JournalStore::<u64>::open(&path).unwrap_err() {
        RodaError::WriterActive { pid } => assert_eq!(pid, std::process::id()),
        other => panic!("{other}"),
    }
    assert!(matches!(
        JournalStore::<u64>::open_or_create(&path, 8),
        Err(RodaError::WriterActive { .. })
    ));
    let mut r = JournalReader::<u64>::open(&path).unwrap();
    assert_eq!(r.next(), Some(&5));
    w.append(&6);
    assert_eq!(r.next(), Some(&6), "the follower sees new records live");
    drop(w);
    // The lock is released with the writer; the reader keeps working.
    let mut w = JournalStore::<u64>::open(&path).unwrap();
    w.append(&7);
    assert_eq!(r.next(), Some(&7));
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn layout_and_schema_mismatches_are_precise() {
    let (_d, path) = temp();
    drop(
        JournalStore::<Rec>::options()
            .schema(3)
            .create(&path, 8)
            .unwrap(),
    );
    let field = |e: RodaError| match e {
        RodaError::LayoutMismatch {
            field,
            expected,
            found,
        } => (field, expected, found),
        other => panic!("{other}"),
    };
    assert_eq!(
        field(JournalStore::<Rec>::open(&path).unwrap_err()),
        ("schema", 0, 3)
    );
    assert_eq!(
        field(JournalReader::<Rec>::open(&path).unwrap_err()),
        ("schema", 0, 3)
    );
    assert_eq!(
        field(
            JournalStore::<u64>::options()
                .schema(3)
                .open(&path)
                .unwrap_err()
        ),
        ("record_size", 8, 16)
    );
    assert_eq!(
        field(
            JournalStore::<[u32; 4]>::options()
                .schema(3)
                .open(&path)
                .unwrap_err()
        ),
        ("record_align", 4, 8)
    );
    let j = JournalStore::<Rec>::options()
        .schema(3)
        .open(&path)
        .unwrap();
    let h = j.header();
    assert_eq!(
        (
            h.kind,
            h.version,
            h.record_size,
            h.record_align,
            h.capacity,
            h.schema
        ),
        (StoreKind::Journal, 1, 16, 8, 8, 3)
    );
    assert_eq!(h.data_offset % 4096, 0);
    assert!(h.created_unix_nanos > 0);
    let r = JournalStore::<Rec>::options()
        .schema(3)
        .open_reader(&path)
        .unwrap();
    assert_eq!(r.header(), h);
}

fn write_at(path: &PathBuf, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn damaged_files_are_errors_not_panics() {
    let (dir, path) = temp();
    drop(JournalStore::<u64>::create(&path, 64).unwrap());
    let full_len = std::fs::metadata(&path).unwrap().len();

    // Foreign file.
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, b"hello, this is not a journal").unwrap();
    assert!(matches!(
        JournalReader::<u64>::open(&foreign),
        Err(RodaError::NotARodaFile { .. })
    ));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        JournalStore::<u64>::open(&empty),
        Err(RodaError::NotARodaFile { .. })
    ));

    // Truncated data.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full_len - 1).unwrap();
    match JournalStore::<u64>::open(&path).unwrap_err() {
        RodaError::Truncated {
            expected, found, ..
        } => assert_eq!((expected, found), (full_len, full_len - 1)),
        other => panic!("{other}"),
    }
    f.set_len(100).unwrap();
    assert!(matches!(
        JournalReader::<u64>::open(&path),
        Err(RodaError::Truncated { .. })
    ));
    f.set_len(full_len).unwrap();
    assert!(JournalReader::<u64>::open(&path).is_ok());

    // Unknown version, wrong kind, overflowing capacity, write sequence past capacity.
    write_at(&path, 8, &9u32.to_ne_bytes());
    assert!(matches!(
        JournalStore::<u64>::open(&path),
        Err(RodaError::UnsupportedVersion {
            found: 9,
            supported: 1
        })
    ));
    write_at(&path, 8, &1u32.to_ne_bytes());
    write_at(&path, 12, &2u32.to_ne_bytes());
    assert!(matches!(
        JournalStore::<u64>::open(&path),
        Err(RodaError::LayoutMismatch { field: "kind", .. })
    ));
    write_at(&path, 12, &1u32.to_ne_bytes());
    write_at(&path, 40, &(u64::MAX / 4).to_ne_bytes());
    assert!(matches!(
        JournalStore::<u64>::open(&path),
        Err(RodaError::InvalidCapacity { .. })
    ));
    write_at(&path, 40, &64u64.to_ne_bytes());
    write_at(&path, 128, &65u64.to_ne_bytes());
    assert!(matches!(
        JournalStore::<u64>::open(&path),
        Err(RodaError::Corrupted { .. })
    ));
    // A follower never reads past the data, whatever the header says.
    let mut r = JournalReader::<u64>::open(&path).unwrap();
    assert_eq!(r.published(), 64);
    assert_eq!(r.next_batch(1000).len(), 64);
    assert_eq!(r.next(), None);
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot map files")]
fn options_apply() {
    // mlock of 64 MiB exceeds the usual 8 MiB RLIMIT_MEMLOCK of unprivileged users:
    // by default that is a warning and the journal works unlocked.
    let big = 8 << 20;
    let j = JournalStore::<u64>::options()
        .lock_memory(true)
        .populate(true)
        .huge_pages(true)
        .in_memory(big)
        .unwrap();
    assert_eq!(j.capacity(), big);
    // Root (CAP_IPC_LOCK) may lock it all; everyone else gets the fallback. Either way
    // the default and the strict option must agree.
    let required = JournalStore::<u64>::options()
        .require_locked(true)
        .in_memory(big);
    match required {
        Ok(strict) => {
            assert!(j.memory_locked());
            assert!(strict.memory_locked());
        }
        Err(err) => {
            assert!(!j.memory_locked());
            assert!(matches!(err, RodaError::MemoryLock { .. }), "{err}");
            assert!(err.to_string().contains("ulimit -l"));
        }
    }
    // A small journal locks within the limit.
    let small = JournalStore::<u64>::options()
        .require_locked(true)
        .in_memory(16)
        .unwrap();
    assert!(small.memory_locked());
    let (_d, path) = temp();
    let mut j = JournalStore::<u64>::options()
        .populate(true)
        .lock_memory(true)
        .create(&path, 16)
        .unwrap();
    j.append(&1);
    assert!(j.memory_locked());
}

#[test]
fn writers_and_readers_are_send_readers_clone() {
    fn send<T: Send>() {}
    fn clone<T: Clone>() {}
    send::<JournalStore<u64>>();
    send::<JournalReader<u64>>();
    clone::<JournalReader<u64>>();
}

#[test]
fn reader_thread_follows_writer_thread() {
    const N: u64 = if cfg!(miri) { 200 } else { 200_000 };
    let mut j = JournalStore::<Rec>::in_memory(N as usize).unwrap();
    let mut r = j.reader();
    let reader = std::thread::spawn(move || {
        let mut expected = 0;
        while expected < N {
            let batch = r.next_batch(64);
            for x in batch {
                assert_eq!(*x, rec(expected));
                expected += 1;
            }
            if batch.is_empty() {
                std::hint::spin_loop();
            }
        }
        expected
    });
    for i in 0..N {
        if i % 3 == 0 {
            j.append(&rec(i));
        } else {
            j.try_append(&rec(i)).unwrap();
        }
    }
    assert_eq!(reader.join().unwrap(), N);
}

#[test]
fn batches_publish_together_and_on_drop() {
    let mut j = JournalStore::<u64>::in_memory(4).unwrap();
    let mut r = j.reader();
    {
        let mut b = j.batch();
        assert!(b.is_empty());
        assert_eq!(b.push(&1), 0);
        assert_eq!(b.try_push(&2).unwrap(), 1);
        assert_eq!((b.len(), b.remaining(), b.capacity()), (2, 2, 4));
        assert_eq!(r.next(), None, "nothing is visible before the commit");
    } // dropped: committed
    assert_eq!(r.next_batch(10), &[1, 2]);
    let mut b = j.batch();
    b.push(&3);
    b.push(&4);
    assert!(matches!(
        b.try_push(&5),
        Err(RodaError::Full { capacity: 4 })
    ));
    assert_eq!(b.commit(), 2..4);
    assert_eq!(j.len(), 4);
    assert_eq!(j.batch().commit(), 4..4, "an empty batch publishes nothing");
    assert_eq!(r.next_batch(10), &[3, 4]);
}

#[test]
#[should_panic(expected = "all 1 records of its capacity are written")]
fn batch_push_panics_when_full() {
    let mut j = JournalStore::<u64>::in_memory(1).unwrap();
    let mut b = j.batch();
    b.push(&1);
    b.push(&2);
}

fn thread_minor_faults() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map(|u| u.minor_page_faults())
        .unwrap_or(0)
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no page faults to count")]
fn populate_prefaults_with_and_without_huge_pages() {
    const N: usize = 4 << 20; // 32 MiB of u64
    for huge in [false, true] {
        let mut j = JournalStore::<u64>::options()
            .populate(true)
            .huge_pages(huge)
            .in_memory(N)
            .unwrap();
        let before = thread_minor_faults();
        for i in 0..N as u64 {
            j.append(&i);
        }
        let faults = thread_minor_faults() - before;
        // 8,192 faults for 32 MiB of 4 KiB pages if nothing had been pre-faulted.
        assert!(
            faults < 100,
            "huge_pages({huge}): {faults} faults while appending"
        );
    }
}

/// A reader that keeps finding nothing new asks the CPU for the line of the record it
/// waits for (a prefetch, after a few empty polls); at the end of a full journal that
/// record does not exist, and waiting there, with `next` or `next_batch`, must neither
/// reach past the data area nor change what the reader sees.
#[test]
fn a_reader_waiting_at_the_end_of_a_full_journal_sees_nothing_more() {
    let mut journal = JournalStore::<Rec>::in_memory(3).unwrap();
    let mut reader = journal.reader();
    for _ in 0..40 {
        assert_eq!(reader.next(), None, "nothing published yet");
        assert!(reader.next_batch(8).is_empty());
    }
    for seq in 0..3 {
        journal.append(&rec(seq));
    }
    assert_eq!(reader.next_batch(8), &[rec(0), rec(1), rec(2)]);
    for _ in 0..40 {
        assert_eq!(reader.next(), None);
        assert!(reader.next_batch(8).is_empty());
    }
    assert_eq!(reader.get_index(), 3);
    assert_eq!(reader.get(), Some(&rec(2)));
}

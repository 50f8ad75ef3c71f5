//! Page faults on the append path: a warm recycled ring takes none, `populate(true)`
//! pre-faults for writing (not only for reading), and the pre-toucher keeps a window
//! ahead of the writer faulted in without changing a byte.
//!
//! Faults are counted for the appending thread alone (getrusage RUSAGE_THREAD), so the
//! test harness and the pre-toucher's own faults never count. The bounds are far below
//! one fault per page (1,024 to 2,048 pages here) but leave room for the test's own
//! stack and code and, in files, for the kernel's dirty tracking: a page written back
//! while the test runs (other processes' writes can start background writeback) is
//! write-protected again and takes one more fault on its next write.
#![cfg(not(miri))]

use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use roda_store::{JournalReader, JournalStore, Retention, SegmentedJournal};

type Rec = [u64; 3];

fn thread_minflt() -> u64 {
    getrusage(UsageWho::RUSAGE_THREAD)
        .expect("getrusage")
        .minor_page_faults() as u64
}

/// Minor faults the calling thread takes while `f` runs.
fn faults_of(f: impl FnOnce()) -> u64 {
    let before = thread_minflt();
    f();
    thread_minflt() - before
}

const WARM_APPENDS: u64 = 10_000_000;

/// Minor faults over `n` appends of distinct records through `append`.
fn faults_appending(n: u64, mut append: impl FnMut(&Rec)) -> u64 {
    faults_of(|| {
        for i in 0..n {
            append(&[i, 1, 2]);
        }
    })
}

/// A directory on tmpfs where there is one, for every file these tests count faults in.
/// On a disk file system the kernel's dirty tracking write-protects a shared file page
/// each time writeback cleans it, so a warm ring (or a populated journal) on disk takes
/// a fault per page after every writeback (measured with `sync` in a
/// loop: about 2,800 per million appends; the pre-toucher moves most of them to its own
/// thread): that depends on the machine's other I/O, not on Roda, and is documented in
/// docs/performance.md. Roda itself (rolls, renames, header words) must add none.
fn shm_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    println!("no writable /dev/shm: the files live in the default temporary directory");
    tempfile::tempdir().unwrap()
}

#[test]
fn a_warm_file_ring_takes_no_page_faults() {
    let dir = shm_dir();
    let mut ring =
        SegmentedJournal::<Rec>::create(dir.path().join("ring"), 1 << 14, Retention::KeepLast(4))
            .unwrap();
    let ring_len = (1u64 << 14) * 4;
    for i in 0..ring_len {
        ring.append(&[i; 3]);
    }
    let faults = faults_appending(WARM_APPENDS, |r| {
        ring.append(r);
    });
    assert!(
        faults <= 100,
        "{faults} minor faults over {WARM_APPENDS} appends into a warm KeepLast ring"
    );
}

#[test]
fn a_warm_memory_ring_takes_no_page_faults() {
    let mut ring = SegmentedJournal::<Rec>::in_memory(1 << 14, 4).unwrap();
    for i in 0..(1u64 << 16) {
        ring.append(&[i; 3]);
    }
    let faults = faults_appending(WARM_APPENDS, |r| {
        ring.append(r);
    });
    assert!(
        faults <= 100,
        "{faults} minor faults over {WARM_APPENDS} appends into a warm in-memory ring"
    );
}

/// 8 MiB of records: 2,048 pages, each of which used to take a write fault even after
/// `populate(true)` (a read prefault of a shared file mapping).
const POPULATED: usize = (8 << 20) / 24;

#[test]
fn populate_prefaults_file_journals_for_writing() {
    // On a disk file system: on tmpfs a read prefault already maps pages writable, so
    // only a disk file shows the difference. The bound allows for pages written back
    // (and write-protected again) by other processes' I/O during the test, far below
    // the 2,048 faults, one per page, that a read prefault leaves.
    let dir = tempfile::tempdir().unwrap();
    let mut journal = JournalStore::<Rec>::options()
        .populate(true)
        .create(dir.path().join("j.roda"), POPULATED)
        .unwrap();
    let faults = faults_appending(POPULATED as u64, |r| {
        journal.append(r);
    });
    assert!(
        faults <= 512,
        "{faults} minor faults over {POPULATED} appends into a populated journal file"
    );
}

#[test]
fn populate_prefaults_memory_journals_for_writing() {
    let mut journal = JournalStore::<Rec>::options()
        .populate(true)
        .in_memory(POPULATED)
        .unwrap();
    let faults = faults_appending(POPULATED as u64, |r| {
        journal.append(r);
    });
    assert!(
        faults <= 32,
        "{faults} minor faults over {POPULATED} appends"
    );
}

/// Whether every page of `len` bytes at `addr` is resident (mincore).
fn resident(addr: *const u8, len: usize) -> bool {
    let page = 4096;
    let start = addr as usize / page * page;
    let pages = (addr as usize + len - start).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore only reads the process's page tables for the range, which lies
    // inside the journal's live mapping; `vec` has one byte per page.
    let rc = unsafe { nix::libc::mincore(start as *mut _, pages * page, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().all(|b| b & 1 == 1)
}

/// A pre-touched journal: the window ahead of the writer becomes resident without the
/// writer touching it, appends across the window take (almost) no faults, and every
/// byte is what the writer wrote (records) or zero (beyond them).
fn pretouched(mut journal: JournalStore<Rec>, path: Option<&std::path::Path>) {
    const WINDOW: usize = 4 << 20;
    let records = WINDOW / 24;
    journal.append(&[7, 7, 7]);
    let reader = journal.reader();
    let base = reader.get_at(0).unwrap() as *const Rec as *const u8;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !resident(base, WINDOW) {
        assert!(
            Instant::now() < deadline,
            "the pre-toucher did not fault in the window within 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The pre-toucher never writes: the window is still all zeros (read through a
    // fresh mapping of the file where there is one).
    if let Some(path) = path {
        let bytes = std::fs::read(path).unwrap();
        let data = journal.header().data_offset as usize;
        assert!(bytes[data + 24..data + WINDOW].iter().all(|&b| b == 0));
    }
    let faults = faults_of(|| {
        for i in 1..(records as u64 - 1) {
            journal.append(&[i, i, i]);
        }
    });
    assert!(
        faults <= 64,
        "{faults} minor faults over {records} appends inside the pre-touched window"
    );
    let mut check = journal.reader();
    assert_eq!(check.next(), Some(&[7, 7, 7]));
    for i in 1..(records as u64 - 1) {
        assert_eq!(check.next(), Some(&[i, i, i]));
    }
    assert_eq!(check.next(), None);
    drop(journal); // stops and joins the pre-toucher
    if let Some(path) = path {
        let mut again = JournalReader::<Rec>::open(path).unwrap();
        assert_eq!(again.next(), Some(&[7, 7, 7]));
        assert_eq!(again.available(), records as u64 - 2);
    }
}

#[test]
fn the_pretoucher_keeps_a_window_ahead_of_a_file_journal() {
    let dir = shm_dir();
    let path = dir.path().join("j.roda");
    let journal = JournalStore::<Rec>::options()
        .pretouch(4 << 20)
        .create(&path, 1_000_000)
        .unwrap();
    pretouched(journal, Some(&path));
}

#[test]
fn the_pretoucher_keeps_a_window_ahead_of_a_memory_journal() {
    let journal = JournalStore::<Rec>::options()
        .pretouch(4 << 20)
        .in_memory(1_000_000)
        .unwrap();
    pretouched(journal, None);
}

/// A `KeepAll` journal maps a brand-new file at each roll; the pre-toucher starts over
/// in it: once the writer has rolled, the window ahead of it in the new segment becomes
/// resident without the writer touching it, and appends through it take no faults.
#[test]
fn the_pretoucher_follows_a_keep_all_journal_into_each_new_segment() {
    const SEGMENT: usize = 1 << 18; // 6 MiB of records
    const WINDOW: usize = 4 << 20;
    let dir = shm_dir();
    let mut journal = SegmentedJournal::<Rec>::options()
        .retention(Retention::KeepAll)
        .pretouch(WINDOW)
        .create(dir.path().join("archive"), SEGMENT)
        .unwrap();
    let mut reader = journal.reader();
    for round in 0..3u64 {
        let first = round * SEGMENT as u64;
        for i in 0..SEGMENT as u64 {
            journal.append(&[first + i, 0, 0]);
        }
        // Roll into the next segment (a new file) with one record.
        journal.append(&[first + SEGMENT as u64, 1, 1]);
        let mut drained = 0;
        while drained < SEGMENT {
            drained += reader.next_batch(SEGMENT - drained).len();
        }
        let rolled = first + SEGMENT as u64;
        let base = loop {
            if let Some(r) = reader.next() {
                assert_eq!(r[0], rolled);
                break r as *const Rec as *const u8;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !resident(base, WINDOW) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the new segment's window was not faulted in within 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let records = WINDOW / 24 - 2;
        let faults = faults_of(|| {
            for i in 1..records as u64 {
                journal.append(&[rolled + i, 2, 2]);
            }
        });
        assert!(
            faults <= 64,
            "round {round}: {faults} minor faults over {records} appends in a pre-touched segment"
        );
        for i in 1..records as u64 {
            assert_eq!(reader.next(), Some(&[rolled + i, 2, 2]));
        }
        // Finish the segment so the next round starts at a boundary.
        for i in records as u64..SEGMENT as u64 {
            journal.append(&[rolled + i, 3, 3]);
        }
        while reader.next().is_some() {}
    }
}

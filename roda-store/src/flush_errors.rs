//! `flush` reports a failed msync to its caller as `RodaError::Io` naming the file, for
//! every file-backed store.
//!
//! The failure is injected at the msync call site (`MappedRegion::flush`, through the
//! test-only switch `file::region::fault`): a real msync failure is EIO from the
//! writeback of a failing disk, which a test cannot provoke without a faulty block
//! device, and the easy-looking tricks do not fail msync (a file made read-only after
//! it was mapped keeps its writable mapping; msync fails with ENOMEM only on unmapped
//! addresses, which the stores never pass). The switch stands in for the system call
//! only: everything between it and the caller is the code under test.

use std::io;
use std::path::Path;

use crate::file::region::fault::{fail_fsync_with, fail_msync_with};
use crate::{JournalStore, Retention, RodaError, SegmentedJournal, SlotStore};

const EIO: i32 = 5;

/// Runs `flush` with msync failing, then working again.
fn check(what: &str, expected_path: &Path, mut flush: impl FnMut() -> crate::Result<()>) {
    fail_msync_with(Some(EIO));
    let failed = flush();
    fail_msync_with(None);
    match failed {
        Err(RodaError::Io {
            path: Some(path),
            source,
        }) => {
            assert_eq!(source.raw_os_error(), Some(EIO), "{what}: {source}");
            assert_eq!(source.kind(), io::Error::from_raw_os_error(EIO).kind());
            assert!(
                path.starts_with(expected_path),
                "{what}: the error names {path:?}, not {expected_path:?}"
            );
        }
        other => panic!("{what}: flush with a failing msync gave {other:?}"),
    }
    flush().unwrap_or_else(|e| panic!("{what}: flush after the failure: {e}"));
}

/// `flush` run with fdatasync failing (EIO), then working again.
fn failing_fsync(flush: impl FnOnce() -> crate::Result<()>) -> crate::Result<()> {
    fail_fsync_with(Some(EIO));
    let result = flush();
    fail_fsync_with(None);
    result
}

/// `failed` is the injected EIO of an fdatasync, naming the file `expected`.
fn assert_names(failed: crate::Result<()>, expected: &Path, what: &str) {
    match failed {
        Err(RodaError::Io {
            path: Some(path),
            source,
        }) => {
            assert_eq!(source.raw_os_error(), Some(EIO), "{what}: {source}");
            assert_eq!(path, expected, "{what}: the error names another file");
        }
        other => panic!("{what}: flush gave {other:?}"),
    }
}

#[test]
fn journal_flush_reports_a_failed_msync() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j.roda");
    let mut journal = JournalStore::<u64>::create(&path, 64).unwrap();
    journal.append(&1);
    check("journal", &path, || journal.flush());
}

#[test]
fn slot_store_flush_reports_a_failed_msync() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.roda");
    let mut slots = SlotStore::<u64>::create(&path, 8).unwrap();
    slots.set(3, &7);
    check("slot store", &path, || slots.flush());
}

#[test]
fn segmented_flush_reports_a_failed_msync() {
    let tmp = tempfile::tempdir().unwrap();
    for retention in [Retention::KeepLast(3), Retention::KeepAll] {
        let dir = tmp.path().join(format!("{retention:?}"));
        let mut journal = SegmentedJournal::<u64>::create(&dir, 4, retention).unwrap();
        for i in 0..10 {
            journal.append(&i);
        }
        check(&format!("{retention:?}"), &dir, || journal.flush());
    }
}

/// A `KeepAll` roll archives the oldest mapped segment (its slot maps the new file from
/// then on); `flush` must still make that segment's records durable, though no mapping
/// of it is left to msync: it syncs each segment archived since the last flush.
#[test]
fn keep_all_flush_syncs_the_segments_rolls_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let mut journal = SegmentedJournal::<u64>::create(&dir, 4, Retention::KeepAll).unwrap();
    // The records the mapped segments hold.
    let span = 4 * journal.segments() as u64;
    // Nothing archived yet: a failing fdatasync is never called.
    for i in 0..span {
        journal.append(&i);
    }
    let before = failing_fsync(|| journal.flush());
    before.unwrap_or_else(|e| panic!("flush before any segment was archived: {e}"));
    // The roll to `span` maps its segment over segment 0's slot: segment 0 is archived.
    journal.append(&span);
    let failed = failing_fsync(|| journal.flush());
    assert_names(
        failed,
        &dir.join("00000000000000000000.roda"),
        "flush after a roll archived segment 0",
    );
    // Retried after the failure, and done: a later flush has nothing archived to sync.
    journal.flush().unwrap();
    let after = failing_fsync(|| journal.flush());
    after.unwrap_or_else(|e| panic!("flush after the archive was synced: {e}"));
}

/// With a pre-toucher, the next segment's file is moved into its ring slot ahead of the
/// roll, which unmaps the archived segment there before the roll lists it for `flush`:
/// `flush` must sync that segment by name meanwhile.
#[test]
fn keep_all_flush_syncs_a_segment_unmapped_ahead_of_its_roll() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let mut journal = SegmentedJournal::<u64>::options()
        .retention(Retention::KeepAll)
        .pretouch(1 << 20)
        .create(&dir, 4)
        .unwrap();
    // The first segment whose slot held an archived one: its file replaces segment 0.
    let span = 4 * journal.segments() as u64;
    // Into the segment before it (the rolls so far used the spares made at creation).
    for i in 0..=span - 4 {
        journal.append(&i);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while journal.installed_ahead() != Some(span) {
        assert!(
            std::time::Instant::now() < deadline,
            "the file of segment {span} was not moved into its slot within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let failed = failing_fsync(|| journal.flush());
    assert_names(
        failed,
        &dir.join("00000000000000000000.roda"),
        "flush after segment 0 was unmapped ahead of its roll",
    );
    journal.flush().unwrap();
    // The roll takes the file over; every record is still there.
    let n = journal.len();
    journal.append(&n);
    journal.flush().unwrap();
    drop(journal);
    let mut follower = crate::SegmentedFollower::<u64>::open(&dir).unwrap();
    for i in 0..=n {
        assert_eq!(follower.next().unwrap(), Some(i));
    }
}

//! A segmented journal's gating readers outlive its writer handle: while any of them
//! exists the directory stays locked, so no new writer (in this process or another)
//! can recycle a segment under a `&T` they still hold.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use roda_store::{Retention, RodaError, SegmentedJournal};

const RECORDS: usize = 4;
const DIR_VAR: &str = "RODA_SEGMENTED_LOCKS_DIR";

/// Appends records until the ring has wrapped, or a reopen is refused. Returns the
/// reopen's error, if any.
fn reopen_and_wrap(dir: &std::path::Path) -> Option<RodaError> {
    match SegmentedJournal::<u64>::open(dir) {
        Err(e) => Some(e),
        Ok(mut journal) => {
            // Two segments of 4: 12 appends recycle every segment at least once.
            for i in 0..12u64 {
                let _ = journal.try_append(&(1000 + i));
            }
            None
        }
    }
}

#[test]
fn a_reader_of_a_dropped_writer_keeps_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let mut journal =
        SegmentedJournal::<u64>::create(&dir, RECORDS, Retention::KeepLast(2)).unwrap();
    let mut reader = journal.reader();
    for i in 0..RECORDS as u64 {
        journal.append(&i);
    }
    let held: &u64 = reader.next().unwrap();
    assert_eq!(*held, 0);
    drop(journal);

    let refused = reopen_and_wrap(&dir);
    // The record the reader still views is intact: nobody recycled it.
    assert_eq!(*held, 0, "a new writer recycled a segment under a live &T");
    match refused {
        Some(RodaError::WriterActive { pid }) => assert_eq!(pid, std::process::id()),
        other => panic!("reopen while an old reader lives: {other:?}"),
    }
    // Once the last reader is gone, the directory reopens and resumes.
    drop(reader);
    let mut journal = SegmentedJournal::<u64>::open(&dir).unwrap();
    assert_eq!(journal.append(&4), 4);
}

#[test]
fn a_follower_of_a_dropped_writer_does_not_keep_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let mut journal =
        SegmentedJournal::<u64>::create(&dir, RECORDS, Retention::KeepLast(2)).unwrap();
    let mut follower = journal.follower();
    let watch = journal.watch();
    journal.append(&7);
    drop(journal);
    // Followers copy and validate: they never need the old writer's lock.
    let mut reopened = SegmentedJournal::<u64>::open(&dir).unwrap();
    assert_eq!(reopened.append(&8), 1);
    assert_eq!(follower.next().unwrap(), Some(7));
    assert_eq!(watch.published(), 1);
}

/// The child: writes a few records, drops its writer but keeps a reader viewing record
/// 0, says `READY`, then waits for its stdin to close.
#[test]
#[ignore = "entry point of the cross-process lock test's child"]
fn segmented_locks_child_entry() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let mut journal =
        SegmentedJournal::<u64>::create(&dir, RECORDS, Retention::KeepLast(2)).unwrap();
    let mut reader = journal.reader();
    for i in 0..RECORDS as u64 {
        journal.append(&i);
    }
    let held = *reader.next().unwrap();
    drop(journal);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // Still the same record after the parent's attempt.
    let again = *reader.get().unwrap();
    writeln!(out, "HELD {held} {again}").unwrap();
}

#[test]
fn a_reader_in_another_process_keeps_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "segmented_locks_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("READY") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "child died early");
    }
    let refused = reopen_and_wrap(&dir);
    drop(child.stdin.take());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.contains("HELD 0 0"),
        "the child's record changed under its reader: {rest}"
    );
    match refused {
        Some(RodaError::WriterActive { pid }) => assert_eq!(pid, child.id()),
        other => panic!("reopen while another process's reader lives: {other:?}"),
    }
    // The child is gone: the directory reopens.
    SegmentedJournal::<u64>::open(&dir).unwrap();
}

//! A directory follower that has read everything and waits at a segment boundary
//! (the next segment's file does not exist yet, or is a spare) must poll cheaply: a
//! constant number of system calls per poll, not a directory scan each time.
//!
//! The count is the kernel's: `syscr` of `/proc/thread-self/io`, the read-type system
//! calls (`read`, `pread64`, ...) this thread made. A directory scan reads two header
//! words with `pread` from every segment file, and mapping a file reads its header, so
//! a poll that scans or maps shows up there; a poll that only tries to open the next
//! segment's file (one `openat`) does not. The follower may rescan the directory now
//! and then (to notice segments removed under it), so the test bounds the average.
#![cfg(all(not(roda_loom), not(miri), target_os = "linux"))]

use roda_store::{Retention, SegmentedFollower, SegmentedJournal};

const POLLS: u64 = 10_000;

/// Read-type system calls made by this thread so far.
fn reads_by_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("syscr:"))
        .expect("a syscr line")
        .trim()
        .parse()
        .unwrap()
}

/// Polls the caught-up `follower` `POLLS` times; the read syscalls those polls made.
fn reads_while_polling(follower: &mut SegmentedFollower<u64>) -> u64 {
    // What reading the counter itself costs.
    let a = reads_by_this_thread();
    let b = reads_by_this_thread();
    let overhead = b - a;
    let before = reads_by_this_thread();
    for _ in 0..POLLS {
        assert_eq!(follower.next().unwrap(), None);
    }
    let after = reads_by_this_thread();
    after - before - overhead
}

fn check(name: &str, retention: Retention, appended: u64, start: Option<u64>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    let mut journal = SegmentedJournal::<u64>::create(&dir, 4, retention).unwrap();
    for i in 0..appended {
        journal.append(&i);
    }
    let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
    match start {
        Some(seq) => follower.seek(seq),
        None => {
            let first = follower.position();
            for i in first..appended {
                assert_eq!(follower.next().unwrap(), Some(i));
            }
        }
    }
    assert_eq!(follower.position(), appended);
    let reads = reads_while_polling(&mut follower);
    println!("{name}: {reads} read syscalls in {POLLS} polls");
    assert!(
        reads * 20 < POLLS,
        "{name}: {reads} read syscalls in {POLLS} polls of a caught-up follower \
         (a directory scan per poll?)"
    );
    // Still live: the next record arrives.
    journal.append(&appended);
    assert_eq!(follower.next().unwrap(), Some(appended), "{name}");
}

#[test]
fn keep_all_boundary_before_the_next_file_exists() {
    check("keep-all-later", Retention::KeepAll, 24, None);
}

#[test]
fn keep_all_boundary_at_a_spare_file() {
    check("keep-all-spare", Retention::KeepAll, 4, None);
}

#[test]
fn keep_last_boundary_after_reading_the_ring() {
    check("keep-last-read", Retention::KeepLast(3), 24, None);
}

#[test]
fn keep_last_boundary_when_sought_to_the_end() {
    check("keep-last-sought", Retention::KeepLast(3), 24, Some(24));
}

#[test]
fn keep_last_boundary_in_the_first_lap() {
    check("keep-last-first-lap", Retention::KeepLast(3), 4, None);
}

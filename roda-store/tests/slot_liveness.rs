//! A slot reader decides whether the writer of a slot left mid-write is alive by the
//! writer's lock, never by the pid in the header: a pid means nothing in another pid
//! namespace, and a dead writer's pid may be reused by any process.
//!
//! The tests leave slot 0 mid-write by storing an odd sequence word into the file (what
//! a writer killed inside `set` leaves), then set the header's pid word to a misleading
//! value.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use roda_store::{SlotReader, SlotStore, StoreFile};

/// Offset of the writer's pid in the header (docs/file-format.md).
const OFF_WRITER_PID: u64 = 80;
const PATH_VAR: &str = "RODA_SLOT_LIVENESS_PATH";

/// Stores `seq` as slot `index`'s sequence word and `pid` as the header's writer pid.
fn tamper(path: &Path, index: u64, seq: u64, pid: u64) {
    let header = StoreFile::open(path).unwrap().header();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let slot = header.data_offset + index * header.stride;
    file.write_all_at(&seq.to_ne_bytes(), slot).unwrap();
    file.write_all_at(&pid.to_ne_bytes(), OFF_WRITER_PID)
        .unwrap();
}

/// `reader.get(index)` on another thread, or `None` if it did not return in time.
fn get_within(reader: SlotReader<u64>, index: usize, limit: Duration) -> Option<Option<u64>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(reader.get(index));
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn a_dead_writer_whose_pid_was_reused_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slots.roda");
    let mut store = SlotStore::<u64>::create(&path, 4).unwrap();
    store.set(0, &5);
    drop(store);
    // The writer is gone (its lock with it), but its pid now names a live process:
    // pid 1 always exists.
    tamper(&path, 0, 3, 1);
    let reader = SlotReader::<u64>::open(&path).unwrap();
    assert!(reader.is_torn(0), "a slot left by a dead writer is torn");
    let got = get_within(reader, 0, Duration::from_secs(10))
        .expect("get waited for a writer that is dead (its pid reused by a live process)");
    assert_eq!(got, None);
}

/// The child: holds the slot store at `path` as its writer until its stdin closes.
#[test]
#[ignore = "entry point of the slot liveness test's child"]
fn slot_liveness_child_entry() {
    let Ok(path) = std::env::var(PATH_VAR) else {
        return;
    };
    let mut store = SlotStore::<u64>::create(&path, 4).unwrap();
    store.set(0, &5);
    println!("READY");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(store);
}

#[test]
fn a_live_writer_in_another_pid_namespace_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slots.roda");
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        "slot_liveness_child_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    // The writer runs in a new pid namespace where that works (root), else as a plain
    // child; either way its recorded pid is then replaced by one that names no process
    // here, as another namespace's pid may.
    let in_namespace = Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if in_namespace {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork"]).arg(&exe).args(args);
        cmd
    } else {
        println!("no pid namespace (unshare refused): the writer runs as a plain child");
        let mut cmd = Command::new(&exe);
        cmd.args(args);
        cmd
    };
    let mut child = cmd
        .env(PATH_VAR, &path)
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
    // A set under way (odd sequence) by a writer whose pid is meaningless here: pid_max
    // is at most 2^22 on Linux.
    tamper(&path, 0, 3, 0x7fff_fff0);
    let reader = SlotReader::<u64>::open(&path).unwrap();
    let torn_while_alive = reader.is_torn(0);
    // The set completes: the reader sees it.
    tamper(&path, 0, 4, 0x7fff_fff0);
    let after = reader.get(0);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(
        !torn_while_alive,
        "a live writer was taken for dead because of its pid"
    );
    assert_eq!(after, Some(5));
}

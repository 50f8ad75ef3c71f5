//! A full disk is an error at create (or at a `KeepAll` roll), never a SIGBUS later.
//!
//! Each test mounts a 1 MiB tmpfs (root only; otherwise it skips with the reason) and
//! runs a child process (this test binary again) that creates a store larger than the
//! disk's room and fills it. The child must report `RodaError::Io` (ENOSPC); a child
//! killed by a signal fails the test instead of taking the test binary down with it.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use roda_store::{JournalStore, Retention, RodaError, SegmentedJournal, SlotStore};

const DIR_VAR: &str = "RODA_FULL_DISK_DIR";
const KIND_VAR: &str = "RODA_FULL_DISK_KIND";
const ENOSPC: i32 = 28;

/// A small tmpfs mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    _tmp: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a 1 MiB tmpfs, or says why it cannot.
    fn mount() -> Result<SmallDisk, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = tmp.path().join("disk");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mount)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting a tmpfs is not permitted here ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { _tmp: tmp, mount })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// What the child reports: `ENOSPC at <step>`, or `NO ERROR` when everything fit.
fn report(step: &str, result: Result<(), RodaError>) {
    let mut out = std::io::stdout().lock();
    match result {
        Ok(()) => writeln!(out, "RESULT NO ERROR").unwrap(),
        Err(RodaError::Io { source, .. }) if source.raw_os_error() == Some(ENOSPC) => {
            writeln!(out, "RESULT ENOSPC at {step}").unwrap()
        }
        Err(e) => writeln!(out, "RESULT other error at {step}: {e}").unwrap(),
    }
}

fn fill_journal(dir: &Path) {
    match JournalStore::<u64>::create(dir.join("big.roda"), 1_000_000) {
        Err(e) => report("create", Err(e)),
        Ok(mut journal) => {
            while !journal.is_full() {
                journal.append(&7);
            }
            report("append", Ok(()));
        }
    }
}

fn fill_slots(dir: &Path) {
    match SlotStore::<[u64; 8]>::create(dir.join("slots.roda"), 100_000) {
        Err(e) => report("create", Err(e)),
        Ok(mut slots) => {
            for i in 0..slots.len() {
                slots.set(i, &[i as u64; 8]);
            }
            report("set", Ok(()));
        }
    }
}

fn fill_segmented(dir: &Path, segment_records: usize, retention: Retention) {
    match SegmentedJournal::<u64>::create(dir.join("seg"), segment_records, retention) {
        Err(e) => report("create", Err(e)),
        Ok(mut journal) => {
            // Enough for more than the disk in any case (a KeepLast ring recycles).
            for i in 0..4_000_000u64 {
                if let Err(e) = journal.try_append(&i) {
                    report("roll", Err(e));
                    // What was appended before the error is intact.
                    let mut follower = roda_store::SegmentedFollower::<u64>::open(dir.join("seg"))
                        .expect("follow what fit");
                    for seq in 0..i {
                        assert_eq!(follower.next().unwrap(), Some(seq));
                    }
                    return;
                }
            }
            report("append", Ok(()));
        }
    }
}

/// The child's body; a no-op unless started by a test below.
#[test]
#[ignore = "entry point of the full-disk tests' child process"]
fn full_disk_child_entry() {
    let (Ok(dir), Ok(kind)) = (std::env::var(DIR_VAR), std::env::var(KIND_VAR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    match kind.as_str() {
        "journal" => fill_journal(&dir),
        "slots" => fill_slots(&dir),
        "keep_last" => fill_segmented(&dir, 100_000, Retention::KeepLast(4)),
        // 4 mapped segments of 128 KiB fit; the disk fills up at a later roll.
        "keep_all" => fill_segmented(&dir, 16 * 1024, Retention::KeepAll),
        other => panic!("unknown kind {other}"),
    }
}

/// Runs the child for `kind` on a small disk; returns its `RESULT` line, or `None` when
/// no disk could be mounted.
fn run_child(kind: &str) -> Option<String> {
    let disk = match SmallDisk::mount() {
        Ok(disk) => disk,
        Err(reason) => {
            println!("SKIP full-disk test ({kind}): {reason}");
            return None;
        }
    };
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, &disk.mount)
        .env(KIND_VAR, kind)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind}: the child died ({}) instead of reporting the full disk:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| Some(l[l.find("RESULT ")? + "RESULT ".len()..].to_string()))
        .unwrap_or_else(|| panic!("{kind}: no result from the child:\n{stdout}"));
    Some(line)
}

#[test]
fn full_disk_fails_journal_create() {
    if let Some(result) = run_child("journal") {
        assert_eq!(result, "ENOSPC at create");
    }
}

#[test]
fn full_disk_fails_slot_store_create() {
    if let Some(result) = run_child("slots") {
        assert_eq!(result, "ENOSPC at create");
    }
}

#[test]
fn full_disk_fails_keep_last_create() {
    if let Some(result) = run_child("keep_last") {
        assert_eq!(result, "ENOSPC at create");
    }
}

#[test]
fn full_disk_fails_keep_all_roll() {
    if let Some(result) = run_child("keep_all") {
        assert_eq!(result, "ENOSPC at roll");
    }
}

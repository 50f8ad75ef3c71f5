//! Wake on publish, end to end: readers sleep in timed reads and must be woken by
//! each publish, never by the safety net. Every test sets the safety timeout to 10 s,
//! and the writer publishes its next record only after the reader acknowledged the
//! previous one, so nothing but the wake-up of a publish can end the reader's sleep: a
//! lost wake-up shows as a read that returns 10 s after its record was published; a
//! woken read returns within microseconds to milliseconds (the bound below leaves room
//! for a loaded 2-core machine).
//!
//! Cross-process tests re-run this test binary as the writer (an `#[ignore]`d entry
//! point started with an environment variable), like `crash.rs`.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roda_store::{ElasticJournal, JournalReader, JournalStore, Retention, SegmentedJournal};

const SAFETY: Duration = Duration::from_secs(10);
/// A read that was woken returns well within this after its publish; one left to the
/// safety net takes 10 s.
const WOKEN_WITHIN: Duration = Duration::from_secs(2);
/// Records per run: sparse, so that the reader is asleep at almost every publish.
const RECORDS: u64 = 200;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The gap before record `i`: 0 to 2 ms, varied so publishes land at every point of
/// the reader's sleep protocol.
fn gap(i: u64) -> Duration {
    Duration::from_micros((i * 7919) % 2000)
}

/// A record: its sequence and the wall-clock time it was published at.
type Stamped = [u64; 2];

/// Appends `RECORDS` stamped records with sparse gaps through `append`, each after
/// the reader acknowledged the one before (`acked` returns then).
fn write_sparse(mut append: impl FnMut(&Stamped), mut acked: impl FnMut()) {
    for i in 0..RECORDS {
        if i > 0 {
            acked();
        }
        std::thread::sleep(gap(i));
        append(&[i, now_nanos()]);
    }
}

/// An in-process acknowledgement channel: the reader's side and the writer's wait.
fn ack_channel() -> (std::sync::mpsc::Sender<()>, impl FnMut()) {
    let (tx, rx) = std::sync::mpsc::channel();
    (tx, move || rx.recv().expect("the reader acknowledges"))
}

/// Checks one received record: in order, and received soon after its publish.
/// Publish-to-read latencies of one run, for the printed summary.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sorted = self.0.clone();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
        write!(
            f,
            "p50 {:?}, p99 {:?}, max {:?} ({} reads)",
            at(0.5),
            at(0.99),
            at(1.0),
            sorted.len()
        )
    }
}

fn check(i: u64, record: Option<Stamped>, worst: &mut Latencies) {
    let [seq, stamp] = record.unwrap_or_else(|| panic!("record {i} not received in time"));
    assert_eq!(seq, i);
    let late = Duration::from_nanos(now_nanos().saturating_sub(stamp));
    worst.0.push(late);
    assert!(
        late < WOKEN_WITHIN,
        "record {i} was read {late:?} after its publish: a lost wake-up"
    );
}

/// Sends `RECORDS` sparse records through `append` on a writer thread while `read(i)`
/// receives record `i` on this one (each acknowledged before the next is written),
/// checking each; prints the publish-to-read latencies under `label`.
fn relay(
    label: &str,
    mut append: impl FnMut(&Stamped) + Send + 'static,
    mut read: impl FnMut(u64) -> Option<Stamped>,
) {
    let (ack, acked) = ack_channel();
    let writer = std::thread::spawn(move || write_sparse(|r| append(r), acked));
    let mut worst = Latencies::default();
    for i in 0..RECORDS {
        check(i, read(i), &mut worst);
        let _ = ack.send(());
    }
    writer.join().unwrap();
    println!("{label}: wake-ups {worst}");
}

#[test]
fn in_memory_journal_wakes_a_reader_in_another_thread() {
    let journal = JournalStore::<Stamped>::options()
        .wake(true)
        .wake_safety_timeout(SAFETY)
        .in_memory(RECORDS as usize)
        .unwrap();
    assert!(journal.wakes_readers());
    let mut reader = journal.reader();
    assert!(reader.wakes_on_publish());
    let mut journal = journal;
    relay(
        "in-memory journal",
        move |r| {
            journal.append(r);
        },
        |_| reader.next_timeout(SAFETY * 3).copied(),
    );
}

#[test]
fn elastic_journal_wakes_its_reader_in_another_thread() {
    // Segments of 4 records: the writer rolls often while the reader sleeps.
    let journal = ElasticJournal::<Stamped>::options()
        .wake(true)
        .wake_safety_timeout(SAFETY)
        .in_memory(4, 16)
        .unwrap();
    assert!(journal.wakes_reader());
    let mut reader = journal.reader().unwrap();
    assert!(reader.wakes_on_publish());
    let mut journal = journal;
    relay(
        "elastic journal",
        move |r| {
            journal.append(r);
        },
        |_| reader.next_timeout(SAFETY * 3).copied(),
    );
    assert!(reader.writer_closed());
}

/// The writer's drop and an owner's `wake_reader` end a sleep long before the 10 s
/// safety timeout; without waking on, nothing is there to end it early.
#[test]
fn elastic_close_and_interrupt_wake_the_reader() {
    let journal = ElasticJournal::<u64>::options()
        .wake(true)
        .wake_safety_timeout(SAFETY)
        .in_memory(4, 16)
        .unwrap();
    let mut reader = journal.reader().unwrap();
    let watch = journal.watch();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let sleeper = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let got = reader.wait_timeout_unless(SAFETY * 3, || {
            flag.load(std::sync::atomic::Ordering::Relaxed)
        });
        (got, start.elapsed(), reader)
    });
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watch.wake_reader();
    let (got, slept, mut reader) = sleeper.join().unwrap();
    assert!(!got, "no record was published");
    assert!(slept < WOKEN_WITHIN, "interrupted after {slept:?}");
    // The writer's drop wakes a sleeping reader: the read ends with None at once.
    let sleeper = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let got = reader.next_timeout(SAFETY * 3).copied();
        (got, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(journal);
    let (got, slept) = sleeper.join().unwrap();
    assert_eq!(got, None);
    assert!(slept < WOKEN_WITHIN, "woken by the close after {slept:?}");
}

#[test]
fn file_journal_wakes_a_reader_in_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    let mut journal = JournalStore::<Stamped>::options()
        .wake(true)
        .wake_safety_timeout(SAFETY)
        .create(&path, RECORDS as usize)
        .unwrap();
    // A reader of its own mapping, as another process would have.
    let mut reader = JournalStore::<Stamped>::options()
        .wake_safety_timeout(SAFETY)
        .open_reader(&path)
        .unwrap();
    assert!(reader.wakes_on_publish());
    relay(
        "file journal",
        move |r| {
            journal.append(r);
        },
        |_| reader.next_timeout(SAFETY * 3).copied(),
    );
}

#[test]
fn segmented_journals_wake_readers_and_followers() {
    // In memory: the shared core's words; segments of 8 records, so it rolls often.
    let journal = SegmentedJournal::<Stamped>::options()
        .wake(true)
        .wake_safety_timeout(SAFETY)
        .in_memory(8, 4)
        .unwrap();
    let mut reader = journal.reader();
    let mut follower = journal.follower();
    let mut journal = journal;
    relay(
        "in-memory segmented",
        move |r| {
            journal.append(r);
        },
        // Turn by turn, the reader or the follower is the one asleep at the publish;
        // the other then finds the record there.
        |i| {
            if i % 2 == 0 {
                let got = reader.next_timeout(SAFETY * 3).copied();
                assert_eq!(follower.next().unwrap().map(|r| r[0]), Some(i));
                got
            } else {
                let got = follower.next_timeout(SAFETY * 3).unwrap();
                assert_eq!(reader.next().map(|r| r[0]), Some(i));
                got
            }
        },
    );
}

/// A follower of a segment directory, in this process, across rolls of both
/// retentions (segments of 8 records).
#[test]
fn segment_directories_wake_followers_across_rolls() {
    for retention in [Retention::KeepLast(3), Retention::KeepAll] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("seg");
        let mut journal = SegmentedJournal::<Stamped>::options()
            .wake(true)
            .retention(retention)
            .create(&dir, 8)
            .unwrap();
        let mut follower = SegmentedJournal::<Stamped>::options()
            .wake_safety_timeout(SAFETY)
            .open_follower(&dir)
            .unwrap();
        relay(
            &format!("{retention:?} directory"),
            move |r| {
                journal.append(r);
            },
            |_| follower.next_timeout(SAFETY * 3).unwrap(),
        );
    }
}

#[test]
fn closing_the_writer_wakes_sleepers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    let journal = JournalStore::<u64>::options()
        .wake(true)
        .create(&path, 8)
        .unwrap();
    let mut reader = JournalStore::<u64>::options()
        .wake_safety_timeout(SAFETY)
        .open_reader(&path)
        .unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(journal);
    });
    let start = std::time::Instant::now();
    assert_eq!(reader.next_timeout(SAFETY * 3), None);
    assert!(start.elapsed() < WOKEN_WITHIN, "{:?}", start.elapsed());
    closer.join().unwrap();
    // Closed: a timed read returns at once; a reopened writer wakes it again.
    assert_eq!(reader.next_timeout(SAFETY), None);
    let mut journal = JournalStore::<u64>::open(&path).unwrap();
    assert!(journal.wakes_readers(), "the file keeps its waking");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        journal.append(&5);
        journal
    });
    let start = std::time::Instant::now();
    assert_eq!(reader.next_timeout(SAFETY * 3), Some(&5));
    assert!(start.elapsed() < WOKEN_WITHIN, "{:?}", start.elapsed());
    drop(writer.join().unwrap());
}

#[test]
fn closing_a_segmented_writer_wakes_its_followers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("seg");
    let mut journal = SegmentedJournal::<u64>::options()
        .wake(true)
        .retention(Retention::KeepAll)
        .create(&dir, 4)
        .unwrap();
    assert!(journal.wakes_readers());
    for i in 0..10 {
        journal.append(&i);
    }
    let mut local = journal.follower();
    let mut remote = SegmentedJournal::<u64>::options()
        .wake_safety_timeout(SAFETY)
        .open_follower(&dir)
        .unwrap();
    for i in 0..10 {
        assert_eq!(local.next().unwrap(), Some(i));
        assert_eq!(remote.next_timeout(SAFETY).unwrap(), Some(i));
    }
    let in_process = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        assert_eq!(local.next_timeout(SAFETY * 3).unwrap(), None);
        start.elapsed()
    });
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(journal);
    });
    let start = std::time::Instant::now();
    assert_eq!(remote.next_timeout(SAFETY * 3).unwrap(), None);
    assert!(start.elapsed() < WOKEN_WITHIN, "{:?}", start.elapsed());
    let waited = in_process.join().unwrap();
    assert!(waited < WOKEN_WITHIN, "{waited:?}");
    closer.join().unwrap();
}

#[test]
fn timed_reads_without_waking_poll_and_time_out() {
    let mut journal = JournalStore::<u64>::in_memory(8).unwrap();
    let mut reader = journal.reader();
    assert!(!reader.wakes_on_publish());
    let start = std::time::Instant::now();
    assert_eq!(reader.next_timeout(Duration::from_millis(30)), None);
    assert!(start.elapsed() >= Duration::from_millis(30));
    journal.append_slice(&[1, 2, 3]);
    assert_eq!(
        reader.next_batch_timeout(10, Duration::from_secs(1)),
        &[1, 2, 3]
    );
    assert_eq!(
        reader.next_batch_timeout(0, Duration::from_secs(1)),
        &[] as &[u64]
    );
}

/// A sleeper that left its flag set (killed while waiting) costs the next publish one
/// wake-up; that publish clears the flag, so later publishes make no syscall.
#[test]
fn a_dead_sleepers_flag_is_cleared_by_the_next_publish() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    let mut journal = JournalStore::<u64>::options()
        .wake(true)
        .create(&path, 8)
        .unwrap();
    let flag = || {
        let mut word = [0u8; 4];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact_at(&mut word, 140)
            .unwrap();
        u32::from_ne_bytes(word)
    };
    let mut reader = JournalReader::<u64>::open(&path).unwrap();
    // Times out asleep: its flag stays set, as a killed sleeper's would.
    assert_eq!(reader.next_timeout(Duration::from_millis(5)), None);
    assert_eq!(flag(), 1);
    journal.append(&1);
    assert_eq!(flag(), 0);
}

/// A file that can only be opened read-only: the reader polls (and says so once).
#[test]
fn read_only_files_are_polled() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    let mut journal = JournalStore::<u64>::options()
        .wake(true)
        .create(&path, 8)
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        println!("skipped: this user may write read-only files (root)");
        return;
    }
    let mut reader = JournalReader::<u64>::open(&path).unwrap();
    assert!(!reader.wakes_on_publish());
    journal.append(&9);
    assert_eq!(reader.next_timeout(Duration::from_secs(5)), Some(&9));
}

const CHILD_VAR: &str = "RODA_WAKE_CHILD";

/// The cross-process tests' writer: `journal PATH` or `segments DIR`.
#[test]
#[ignore = "entry point of the wake tests' child process"]
fn wake_child_entry() {
    let Ok(arg) = std::env::var(CHILD_VAR) else {
        return;
    };
    let (kind, path) = arg.split_once(' ').unwrap();
    // The parent acknowledges each record with a line on our stdin.
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let acked = move || {
        line.clear();
        std::io::BufRead::read_line(&mut stdin, &mut line).expect("the reader acknowledges");
    };
    match kind {
        "journal" => {
            let mut journal = JournalStore::<Stamped>::open(path).unwrap();
            write_sparse(
                |r| {
                    journal.append(r);
                },
                acked,
            );
        }
        "segments" => {
            let acked = acked;
            let mut journal = SegmentedJournal::<Stamped>::open(path).unwrap();
            write_sparse(
                |r| {
                    journal.append(r);
                },
                acked,
            );
        }
        other => panic!("unknown child kind {other}"),
    }
}

fn spawn_writer(kind: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wake_child_entry",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, format!("{kind} {}", path.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Acknowledges the last record read to the child writer.
fn ack(child: &mut std::process::Child) {
    use std::io::Write;
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"\n").and_then(|()| stdin.flush()).unwrap();
}

/// Reads the child writer's records through `read` (timeout in, record out),
/// acknowledging each; the first read retries until the child has opened the journal.
fn read_from_child(
    label: &str,
    mut child: std::process::Child,
    mut read: impl FnMut(Duration) -> Option<Stamped>,
) {
    let mut worst = Latencies::default();
    let mut first = None;
    while first.is_none() {
        first = read(SAFETY);
        if first.is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(first.unwrap()[0], 0);
    for i in 1..RECORDS {
        ack(&mut child);
        check(i, read(SAFETY * 3), &mut worst);
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    println!("{label}: wake-ups {worst}");
}

#[test]
fn a_writer_process_wakes_a_reader_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.roda");
    // Created here, written by the child, which reopens it.
    drop(
        JournalStore::<Stamped>::options()
            .wake(true)
            .create(&path, RECORDS as usize)
            .unwrap(),
    );
    let mut reader = JournalStore::<Stamped>::options()
        .wake_safety_timeout(SAFETY)
        .open_reader(&path)
        .unwrap();
    assert!(reader.wakes_on_publish());
    read_from_child(
        "cross-process journal",
        spawn_writer("journal", &path),
        |timeout| reader.next_timeout(timeout).copied(),
    );
}

#[test]
fn a_segment_writer_process_wakes_a_follower_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("seg");
    drop(
        SegmentedJournal::<Stamped>::options()
            .wake(true)
            .retention(Retention::KeepAll)
            .create(&dir, 16)
            .unwrap(),
    );
    let mut follower = SegmentedJournal::<Stamped>::options()
        .wake_safety_timeout(SAFETY)
        .open_follower(&dir)
        .unwrap();
    read_from_child(
        "cross-process segments",
        spawn_writer("segments", &dir),
        |timeout| follower.next_timeout(timeout).unwrap(),
    );
}

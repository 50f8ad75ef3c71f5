//! Crash safety across processes. A child process (this test binary, re-run with an
//! environment variable) appends checksummed records and acknowledges each committed
//! sequence on its stdout pipe; the parent SIGKILLs it at random moments. After every
//! kill a fresh `open` must succeed (the lock died with the child), show every
//! acknowledged record intact and nothing torn, and appending must resume.
//!
//! Every store kind gets the treatment: plain journals (200 kills by default), slot
//! stores, `KeepLast` and `KeepAll` segment directories (100 each). `RODA_CRASH_KILLS=N`
//! sets N kills for every kind: the longer run of docs/file-format.md uses 500. The
//! plain and `KeepAll` children run a pre-toucher every other round, so kills also land
//! while it populates pages ahead of the writer and, for `KeepAll`, while it prepares
//! the next segment file (whose temporary file the next writer must remove).
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::io::{BufRead, BufReader, Read, Write};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use roda_store::{JournalReader, JournalStore};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Rec {
    seq: u64,
    a: u64,
    b: u64,
    check: u64,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Rec {
    fn new(seq: u64) -> Self {
        let a = mix(seq);
        let b = mix(a ^ 0x5bd1_e995);
        Rec {
            seq,
            a,
            b,
            check: mix(seq ^ a.rotate_left(17) ^ b.rotate_left(41)),
        }
    }
}

const CAPACITY: usize = 8 << 20;
const PATH_VAR: &str = "RODA_CRASH_CHILD_PATH";
const LIMIT_VAR: &str = "RODA_CRASH_CHILD_LIMIT";
/// When set, the child's journal runs a pre-toucher with this window (bytes): every
/// other round of the journal tests, so kills also land while it populates pages.
const PRETOUCH_VAR: &str = "RODA_CRASH_CHILD_PRETOUCH";

/// The pre-touch window the child was given (0: none).
fn child_pretouch() -> usize {
    std::env::var(PRETOUCH_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The window to give the child of `round`: on odd rounds only.
fn pretouch_for(round: u32) -> String {
    if child_pretouches(round) { 1 << 20 } else { 0 }.to_string()
}

/// Whether the child of `round` runs a pre-toucher.
fn child_pretouches(round: u32) -> bool {
    round % 2 == 1
}

/// The child's body; a no-op unless started by a parent test below.
#[test]
#[ignore = "entry point of the crash tests' child process"]
fn crash_child_entry() {
    let Ok(path) = std::env::var(PATH_VAR) else {
        return;
    };
    let limit: u64 = std::env::var(LIMIT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let mut journal = JournalStore::<Rec>::options()
        .pretouch(child_pretouch())
        .open_or_create(&path, CAPACITY)
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", journal.len()).unwrap();
    while (journal.len() as u64) < limit {
        if journal.is_full() {
            writeln!(out, "FULL").unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        }
        let seq = journal.append(&Rec::new(journal.len() as u64));
        // The record is published before it is acknowledged.
        writeln!(out, "ACK {seq}").unwrap();
    }
    writeln!(out, "DONE").unwrap();
}

/// Starts this test binary as the child running `entry`, with the store at `path` in
/// `path_var`; stdout is piped for the acknowledgements.
fn spawn_entry(entry: &str, path_var: &str, path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        entry,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(path_var, path)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Starts the child writer; `limit` makes it stop after that many records, and then its
/// acknowledgements go nowhere (nobody reads them, and a full pipe would stall it).
fn spawn_child(path: &Path, limit: Option<u64>) -> Child {
    spawn_child_with(path, limit, 0)
}

/// [`spawn_child`] for crash round `round` (odd rounds run a pre-toucher).
fn spawn_child_with(path: &Path, limit: Option<u64>, round: u32) -> Child {
    let mut cmd = spawn_entry("crash_child_entry", PATH_VAR, path);
    cmd.env(PRETOUCH_VAR, pretouch_for(round));
    if let Some(limit) = limit {
        cmd.env(LIMIT_VAR, limit.to_string()).stdout(Stdio::null());
    }
    cmd.spawn().expect("spawn the child writer")
}

/// Reads the child's output up to its `READY n` line; returns `n`.
fn wait_ready(stdout: &mut BufReader<std::process::ChildStdout>) -> u64 {
    let mut line = String::new();
    // libtest prints its own text first, on the same line as ours.
    while !line.contains("READY ") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "child died early");
    }
    let ready = &line[line.find("READY ").unwrap() + "READY ".len()..];
    ready.trim().parse().unwrap()
}

/// SIGKILLs the child after a random pause; returns the last sequence it acknowledged.
fn kill_at_random(
    mut child: Child,
    mut stdout: BufReader<std::process::ChildStdout>,
    rng: &mut XorShift,
) -> Option<u64> {
    std::thread::sleep(Duration::from_micros(rng.below(3000)));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    // The child must die of the kill: one that failed on its own (an open or append
    // error after the previous kill) is a failure, not a kill.
    if std::os::unix::process::ExitStatusExt::signal(&status) != Some(libc_sigkill()) {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("the child ended before the kill ({status}):\n{rest}\n{err}");
    }
    rest.lines()
        .filter_map(|l| l.strip_prefix("ACK ")?.parse::<u64>().ok())
        .next_back()
}

/// SIGKILL's number (9 on every Linux architecture).
fn libc_sigkill() -> i32 {
    9
}

/// Kills per store kind: `RODA_CRASH_KILLS`, else `default` (the CI figure).
fn kills(default: u32) -> u32 {
    std::env::var("RODA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seed for the kill timings, printed so a failure can be replayed by reading it.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// Checks records `from..len` of a freshly opened journal.
fn verify_range(journal: &JournalStore<Rec>, from: u64) {
    let mut reader = journal.reader();
    reader.seek(from);
    let mut seq = from;
    loop {
        let batch = reader.next_batch(4096);
        if batch.is_empty() {
            break;
        }
        for r in batch {
            assert_eq!(*r, Rec::new(seq), "record {seq} is torn or wrong");
            seq += 1;
        }
    }
    assert_eq!(seq, journal.len() as u64);
}

struct XorShift(u64);
impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkilled_writer_loses_no_acknowledged_record() {
    let rounds = kills(200);
    let seed = seed();
    println!("crash test: {rounds} kills, seed {seed}");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.roda");
    let mut verified = 0u64;
    let mut kills_mid_append = 0;

    for round in 0..rounds {
        let mut child = spawn_child_with(&path, None, round);
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let resumed_at = wait_ready(&mut stdout);
        assert_eq!(
            resumed_at,
            verified.max(resumed_at),
            "resumed before the verified end"
        );
        let last_ack = kill_at_random(child, stdout, &mut rng);
        if last_ack.is_some() {
            kills_mid_append += 1;
        }

        let journal = JournalStore::<Rec>::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        if let Some(ack) = last_ack {
            assert!(
                journal.len() as u64 > ack,
                "round {round}: acknowledged {ack} but only {} records survived",
                journal.len()
            );
        }
        verify_range(&journal, verified.min(journal.len() as u64));
        verified = journal.len() as u64;
    }
    // The whole file, once more, from a fresh handle.
    let mut journal = JournalStore::<Rec>::open(&path).unwrap();
    verify_range(&journal, 0);
    let next = journal.len() as u64;
    assert_eq!(journal.append(&Rec::new(next)), next, "appending resumes");
    println!(
        "crash test: {kills_mid_append}/{rounds} kills landed mid-append, {next} records verified"
    );
    assert!(
        kills_mid_append * 2 >= rounds,
        "too few kills landed while the child was appending ({kills_mid_append}/{rounds})"
    );
}

#[test]
fn another_process_follows_the_writer_live() {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.roda");
    // Create the file first so the follower can open it before the writer starts.
    drop(JournalStore::<Rec>::create(&path, CAPACITY).unwrap());
    let mut reader = JournalReader::<Rec>::open(&path).unwrap();
    let mut child = spawn_child(&path, Some(N));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seq = 0;
    let mut empty_polls = 0u64;
    while seq < N {
        match reader.next() {
            Some(r) => {
                assert_eq!(*r, Rec::new(seq));
                seq += 1;
            }
            None => {
                empty_polls += 1;
                assert!(Instant::now() < deadline, "writer stalled at {seq}");
                std::thread::yield_now();
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(reader.next(), None);
    assert!(
        empty_polls > 0,
        "the reader should have caught up with the live writer"
    );
}

// ---- Slot store: the same treatment -------------------------------------------------

const SLOT_PATH_VAR: &str = "RODA_CRASH_SLOTS_CHILD_PATH";
const SLOTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct SlotRec {
    n: u64,
    a: u64,
    b: u64,
    check: u64,
}

impl SlotRec {
    fn new(n: u64) -> Self {
        let r = Rec::new(n);
        SlotRec {
            n,
            a: r.a,
            b: r.b,
            check: r.check,
        }
    }
}

/// The slot child's body: sets slot `n % 64` to value `n`, acknowledging each `n`.
#[test]
#[ignore = "entry point of the slot crash test's child process"]
fn crash_slots_child_entry() {
    let Ok(path) = std::env::var(SLOT_PATH_VAR) else {
        return;
    };
    let mut slots = roda_store::SlotStore::<SlotRec>::open_or_create(&path, SLOTS).unwrap();
    let reader = slots.reader();
    // Continue after the highest value any slot holds.
    let mut n = (0..SLOTS)
        .filter_map(|i| reader.get(i))
        .map(|r| r.n + 1)
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {n}").unwrap();
    loop {
        slots.set(n as usize % SLOTS, &SlotRec::new(n));
        writeln!(out, "ACK {n}").unwrap();
        n += 1;
    }
}

#[test]
fn sigkilled_slot_writer_leaves_no_torn_value_and_keeps_acknowledged_ones() {
    let rounds = kills(100);
    let seed = seed();
    println!("slot crash test: {rounds} kills, seed {seed}");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slots.roda");
    let (mut torn_seen, mut acked_rounds) = (0, 0);
    for round in 0..rounds {
        let mut child = spawn_entry("crash_slots_child_entry", SLOT_PATH_VAR, &path)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        wait_ready(&mut stdout);
        let last_ack = kill_at_random(child, stdout, &mut rng);

        let store = roda_store::SlotStore::<SlotRec>::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        let torn = store.torn_slots();
        torn_seen += torn.len();
        let reader = store.reader();
        for i in 0..SLOTS {
            match reader.get(i) {
                Some(r) => {
                    assert_eq!(r, SlotRec::new(r.n), "round {round}: slot {i} torn");
                    assert_eq!(r.n as usize % SLOTS, i);
                }
                None => assert!(
                    reader.is_torn(i) == torn.contains(&i),
                    "round {round}: slot {i} empty but not listed consistently"
                ),
            }
        }
        if let Some(ack) = last_ack {
            acked_rounds += 1;
            let i = ack as usize % SLOTS;
            if !torn.contains(&i) {
                let held = reader.get(i).expect("acknowledged slot is set");
                assert!(held.n >= ack, "round {round}: slot {i} lost ack {ack}");
            }
        }
    }
    println!("slot crash test: {acked_rounds}/{rounds} kills mid-set, {torn_seen} torn slots found and reported");
    assert!(acked_rounds * 2 >= rounds);
    // About a quarter of the kills land inside a `set` (between its two stores).
    assert!(rounds < 100 || torn_seen > 0, "no kill landed inside a set");
}

// ---- Segmented journal directory: kills during rolls and recycles -------------------

const SEG_DIR_VAR: &str = "RODA_CRASH_SEG_DIR";
const SEG_RECORDS_VAR: &str = "RODA_CRASH_SEG_RECORDS";
/// `all` makes the segmented child use `KeepAll` instead of `KeepLast(SEG_RING)`.
const SEG_RETENTION_VAR: &str = "RODA_CRASH_SEG_RETENTION";
const SEG_RING: usize = 3;

/// The retention the segmented child asks for.
fn child_retention() -> roda_store::Retention {
    match std::env::var(SEG_RETENTION_VAR).as_deref() {
        Ok("all") => roda_store::Retention::KeepAll,
        _ => roda_store::Retention::KeepLast(SEG_RING),
    }
}

/// The segmented child's body: appends `Rec::new(seq)` to a `KeepLast(3)` (or `KeepAll`)
/// directory of small segments (a roll every few appends), acknowledging each sequence.
#[test]
#[ignore = "entry point of the segmented crash test's child process"]
fn crash_segmented_child_entry() {
    let Ok(dir) = std::env::var(SEG_DIR_VAR) else {
        return;
    };
    let records: usize = std::env::var(SEG_RECORDS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let limit: u64 = std::env::var(LIMIT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let mut journal = roda_store::SegmentedJournal::<Rec>::options()
        .retention(child_retention())
        .pretouch(child_pretouch())
        .open_or_create(&dir, records)
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", journal.len()).unwrap();
    while journal.len() < limit {
        let seq = journal
            .try_append(&Rec::new(journal.len()))
            .unwrap_or_else(|e| panic!("append after reopen failed: {e}"));
        // The record is published before it is acknowledged.
        writeln!(out, "ACK {seq}").unwrap();
    }
    writeln!(out, "DONE").unwrap();
}

#[test]
fn sigkilled_segmented_writer_recovers_at_every_roll_step() {
    const RECORDS: u64 = 8;
    let rounds = kills(100);
    let seed = seed();
    println!("segmented crash test: {rounds} kills, seed {seed}");
    let mut rng = XorShift(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("segmented");
    let (mut acked_rounds, mut mid_recycle) = (0, 0);
    let mut previous_len = 0u64;
    for round in 0..rounds {
        let mut child = spawn_entry("crash_segmented_child_entry", SEG_DIR_VAR, &dir)
            .env(SEG_RECORDS_VAR, RECORDS.to_string())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let resumed_at = wait_ready(&mut stdout);
        assert_eq!(resumed_at, previous_len, "round {round}: resumed elsewhere");
        let last_ack = kill_at_random(child, stdout, &mut rng);

        // What the kill left: a segment caught mid-recycle holds no records.
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "roda"))
            .collect();
        assert_eq!(
            files.len(),
            SEG_RING,
            "round {round}: the ring keeps its files"
        );
        let spares = files
            .iter()
            .filter(|p| {
                roda_store::StoreFile::open(p)
                    .unwrap()
                    .first_sequence()
                    .is_none()
            })
            .count();

        let journal = roda_store::SegmentedJournal::<Rec>::open(&dir)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        let len = journal.len();
        if spares > 0 && len > SEG_RING as u64 * RECORDS {
            mid_recycle += 1;
        }
        if let Some(ack) = last_ack {
            acked_rounds += 1;
            assert!(
                len > ack,
                "round {round}: acknowledged {ack} but the journal resumed at {len}"
            );
        }
        // Every retained record intact, from both kinds of follower; at least the
        // current segment and the one before it are retained (one older segment may
        // have been lost mid-recycle).
        let oldest = journal.oldest_retained();
        let current = len.saturating_sub(1) / RECORDS * RECORDS;
        assert!(
            oldest <= current.saturating_sub(RECORDS),
            "round {round}: only {oldest}..{len} retained"
        );
        let mut follower = journal.follower();
        let mut from_dir = roda_store::SegmentedFollower::<Rec>::open(&dir).unwrap();
        assert_eq!(from_dir.published(), len, "round {round}");
        from_dir.seek(oldest);
        for seq in oldest..len {
            let r = follower
                .next()
                .unwrap_or_else(|e| panic!("round {round}: {seq}: {e}"));
            assert_eq!(r, Some(Rec::new(seq)), "round {round}: record {seq}");
            assert_eq!(
                from_dir.next().unwrap(),
                Some(Rec::new(seq)),
                "round {round}"
            );
        }
        assert_eq!(follower.next().unwrap(), None);
        previous_len = len;
    }
    // Appending resumes after the last round.
    let mut journal = roda_store::SegmentedJournal::<Rec>::open(&dir).unwrap();
    let next = journal.len();
    assert_eq!(journal.append(&Rec::new(next)), next);
    println!(
        "segmented crash test: {acked_rounds}/{rounds} kills mid-append, {mid_recycle} \
         found a segment file emptied mid-recycle, {next} records appended"
    );
    assert!(acked_rounds * 2 >= rounds);
    // About half of the kills land inside a roll.
    assert!(
        rounds < 100 || mid_recycle > 0,
        "no kill landed inside a recycle"
    );
}

#[test]
fn another_process_follows_a_segmented_writer_across_rolls() {
    const N: u64 = 300_000;
    const RECORDS: usize = 1024;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    // Create the directory first so the follower can open it before the writer starts.
    drop(
        roda_store::SegmentedJournal::<Rec>::options()
            .retention(roda_store::Retention::KeepLast(SEG_RING))
            .create(&dir, RECORDS)
            .unwrap(),
    );
    let mut follower = roda_store::SegmentedFollower::<Rec>::open(&dir).unwrap();
    let mut child = spawn_entry("crash_segmented_child_entry", SEG_DIR_VAR, &dir)
        .env(SEG_RECORDS_VAR, RECORDS.to_string())
        .env(LIMIT_VAR, N.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut next, mut read, mut lags) = (0u64, 0u64, 0u64);
    let mut batch = vec![Rec::new(0); 256];
    while next < N {
        match follower.next_batch(&mut batch) {
            Ok(0) => {
                assert!(Instant::now() < deadline, "writer stalled at {next}");
                std::thread::yield_now();
            }
            Ok(n) => {
                for r in &batch[..n] {
                    assert_eq!(*r, Rec::new(next), "record {next} torn or out of order");
                    next += 1;
                }
                read += n as u64;
            }
            Err(roda_store::RodaError::Lagged { missed }) => {
                lags += 1;
                let oldest = follower.seek_to_oldest();
                assert!(oldest > next, "lagged at {next} yet {oldest} is the oldest");
                // `missed` was counted at the failed read; the writer has moved on since.
                assert!(
                    missed >= 1 && missed <= oldest - next,
                    "lagged at {next}: missed {missed}, oldest retained now {oldest}"
                );
                next = oldest;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(follower.next().unwrap(), None);
    println!("segmented follower: read {read} of {N} records across rolls, lagged {lags} times");
    assert!(read > N / 10, "the follower read too little ({read})");
}

/// The `KeepAll` wedge: a writer SIGKILLed after a roll created the next segment file
/// (or set a spare's first sequence) but before it published that segment's first
/// record must not leave a directory that no later writer can append to.
#[test]
fn sigkilled_keep_all_writer_always_resumes() {
    const RECORDS: u64 = 4;
    let rounds = kills(100);
    let seed = seed();
    println!("KeepAll crash test: {rounds} kills, seed {seed}");
    let mut rng = XorShift(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    let (mut acked_rounds, mut mid_roll, mut mid_create, mut mid_prepare) = (0, 0, 0, 0);
    let mut spare_ahead = 0;
    let mut previous_len = 0u64;
    for round in 0..rounds {
        let mut child = spawn_entry("crash_segmented_child_entry", SEG_DIR_VAR, &dir)
            .env(SEG_RECORDS_VAR, RECORDS.to_string())
            .env(SEG_RETENTION_VAR, "all")
            .env(PRETOUCH_VAR, pretouch_for(round))
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let resumed_at = wait_ready(&mut stdout);
        assert_eq!(resumed_at, previous_len, "round {round}: resumed elsewhere");
        let last_ack = kill_at_random(child, stdout, &mut rng);

        // A kill between a roll and the first record of the new segment leaves a
        // segment file that holds nothing yet at the head of the archive.
        let newest_empty = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "roda"))
            .filter_map(|p| roda_store::StoreFile::open(&p).ok())
            .filter_map(|f| Some((f.first_sequence()?, f.write_sequence())))
            .max()
            .is_some_and(|(_, written)| written == 0);

        // A kill after the pre-toucher named the next segment's file (a spare: no
        // records yet) and before the roll made it that segment leaves it named past
        // the newest segment, beyond the spares `create` made for the first window.
        let headers: Vec<(u64, Option<u64>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "roda"))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.parse().ok()?;
                let file = roda_store::StoreFile::open(&p).ok()?;
                Some((name, file.first_sequence()))
            })
            .collect();
        let newest = headers.iter().filter_map(|&(_, first)| first).max();
        if headers.iter().any(|&(name, first)| {
            first.is_none() && name >= 4 * RECORDS && newest.is_some_and(|n| name > n)
        }) {
            spare_ahead += 1;
        }

        // A kill inside the creation of a segment file leaves its temporary file.
        let temp_files = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().contains(".roda-tmp-")
                })
                .count()
        };
        if temp_files(&dir) > 0 {
            mid_create += 1;
            // With a pre-toucher the next segment's file is prepared ahead (created,
            // reserved, mapped, populated under its temporary name) while the writer
            // appends: the kill landed during that preparation or while it waited.
            if child_pretouches(round) {
                mid_prepare += 1;
            }
        }

        let mut journal = roda_store::SegmentedJournal::<Rec>::open(&dir)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        // Such files hold disk blocks (reserved at creation): the writer removes them.
        assert_eq!(temp_files(&dir), 0, "round {round}: temporary files left");
        let len = journal.len();
        if newest_empty && len > 0 {
            mid_roll += 1;
        }
        if let Some(ack) = last_ack {
            acked_rounds += 1;
            assert!(
                len > ack,
                "round {round}: acknowledged {ack} but the journal resumed at {len}"
            );
        }
        // Everything is still there, from the first record (KeepAll keeps all).
        let mut from_dir = roda_store::SegmentedFollower::<Rec>::open(&dir).unwrap();
        assert_eq!(from_dir.published(), len, "round {round}");
        from_dir.seek(0);
        for seq in 0..len {
            assert_eq!(
                from_dir
                    .next()
                    .unwrap_or_else(|e| panic!("round {round}: {seq}: {e}")),
                Some(Rec::new(seq)),
                "round {round}: record {seq}"
            );
        }
        // And the reopened writer appends, across a roll too.
        for seq in len..len + RECORDS + 1 {
            assert_eq!(
                journal
                    .try_append(&Rec::new(seq))
                    .unwrap_or_else(|e| panic!("round {round}: append {seq} after reopen: {e}")),
                seq
            );
        }
        previous_len = journal.len();
    }
    println!(
        "KeepAll crash test: {acked_rounds}/{rounds} kills mid-append, {mid_roll} left an \
         empty newest segment (killed mid-roll), {mid_create} inside a segment file's \
         creation ({mid_prepare} of them a file the pre-toucher prepared ahead), \
         {spare_ahead} after the next segment's file was named ahead, {previous_len} records"
    );
    assert!(acked_rounds * 2 >= rounds);
    assert!(
        rounds < 100 || mid_roll > 0,
        "no kill landed between a roll and its first record"
    );
    assert!(
        rounds < 100 || mid_prepare > 0,
        "no kill landed while the pre-toucher prepared the next segment file"
    );
    assert!(
        rounds < 100 || spare_ahead > 0,
        "no kill landed between the naming of the next segment's file and its roll"
    );
}

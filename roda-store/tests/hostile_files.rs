//! Hostile files: every open and every read of every store kind, on damaged copies of
//! well-formed stores, gives `Ok` or a `RodaError`, never a panic, an abort or a signal.
//!
//! A seeded, reproducible mutation harness (`hostile/corpus.rs`) damages header bytes,
//! data words and file lengths of plain journals, slot stores and segment files, and the
//! entries of segment directories (missing, extra, renamed, foreign files). Each case is
//! opened with the typed stores (`JournalStore::open`, `SlotStore::open`,
//! `SegmentedJournal::open`), the readers (`JournalReader::open`, `SlotReader::open`),
//! the followers (`SegmentedFollower::open`) and `StoreFile`, and read through every
//! reader API. Cases run in batches in a child process (this binary, re-executed), so
//! that a case which aborts or dies by a signal is reported with its seed.
//!
//! * `cargo test -p roda-store --test hostile_files`: the CI run (`DEFAULT_CASES`).
//! * `RODA_FUZZ_CASES=100000 cargo test --release -p roda-store --test hostile_files
//!   fuzz -- --nocapture`: the longer run (docs/file-format.md, "Hostile files").
//! * `RODA_FUZZ_BASE=<n>` changes the base seed (a different corpus of cases).
//! * `RODA_FUZZ_SEED=0x...` replays one case (the seed a failure names) and prints
//!   what was done to the files.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

#[path = "hostile/child.rs"]
mod child;
#[path = "hostile/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use child::{run_child, CHILD_ENV};
use corpus::{
    case_seed, entries, make_case, templates, ByteRec, Case, JournalRec, Kind, SegRec, ShortSegRec,
    SlotRec,
};
use roda_store::{
    JournalReader, JournalStore, Record, Retention, RodaError, SegmentedFollower, SegmentedJournal,
    SlotReader, SlotSnapshot, SlotStore, StoreFile,
};

/// Cases of the CI run.
const DEFAULT_CASES: u64 = 3000;
/// The base seed of the CI run (`RODA_FUZZ_BASE` to change).
const DEFAULT_BASE: u64 = 0x0DA_F022;
/// A child that prints nothing for this long is hung (a case takes milliseconds).
const STALL: Duration = Duration::from_secs(30);
/// Cases per child process.
const BATCH: u64 = 500;

/// Seeds of cases that found defects, replayed on every run. Each names what it found.
const REGRESSIONS: &[u64] = &[
    // A segment header changed to a first sequence near 2^64 while a directory follower
    // was open; a seek there, then `next_batch`: the cursor overflowed (follower.rs).
    0x829b_d45d_a28e_46a5,
    0x0ddb_b3f2_3226_200c,
    // A named pipe under a segment's name, or in place of a store file: opens blocked
    // for ever (backing.rs, files.rs).
    0xe950_aebd_7e6f_c354,
    0xd0a3_846f_c99f_a716,
    0x42e0_b248_8131_1f91,
    // Files missing from a KeepLast directory whose headers say KeepLast(4096) or
    // KeepLast(8192): the writer's open recreated thousands of files (files.rs).
    0x7bf2_4bd0_bb82_9942,
    0x6dff_a45f_56b7_e4a5,
    0x0110_fb3f_42f1_6ce4,
];

// ---------------------------------------------------------------------------------
// The child side.

/// The child process's entry point; does nothing in a normal test run.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let parts: Vec<&str> = spec.split(':').collect();
    match parts[..] {
        ["named", name] => {
            let (_, case) = NAMED
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no named case {name}"));
            progress(child::CASE, 0);
            case(tmp.path());
            progress(child::DONE, 0);
        }
        ["cases", base, start, count] => {
            let base = child::parse_seed(base).unwrap();
            let start: u64 = start.parse().unwrap();
            let count: u64 = count.parse().unwrap();
            let templates = templates(&tmp.path().join("templates"));
            for index in start..start + count {
                run_seed(case_seed(base, index), &templates, tmp.path(), false);
            }
            print_tally();
        }
        ["seeds", list] => {
            let templates = templates(&tmp.path().join("templates"));
            for seed in list.split(',').filter(|s| !s.is_empty()) {
                let seed = child::parse_seed(seed).unwrap();
                run_seed(seed, &templates, tmp.path(), true);
            }
        }
        _ => panic!("bad {CHILD_ENV}: {spec}"),
    }
}

/// Opens that succeeded and failed in this child, by API: printed as `STATS` lines at
/// its end, summed by the parent (how deep the cases reach).
static TALLY: std::sync::Mutex<BTreeMap<&'static str, (u64, u64)>> =
    std::sync::Mutex::new(BTreeMap::new());

fn tally<R>(api: &'static str, result: roda_store::Result<R>) -> roda_store::Result<R> {
    let mut t = TALLY.lock().unwrap();
    let entry = t.entry(api).or_default();
    if result.is_ok() {
        entry.0 += 1;
    } else {
        entry.1 += 1;
    }
    result
}

fn print_tally() {
    for (api, (ok, err)) in TALLY.lock().unwrap().iter() {
        println!("{}{api} {ok} {err}", child::STATS);
    }
}

fn progress(what: &str, seed: u64) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what}{seed:#x}");
    let _ = out.flush();
}

fn run_seed(seed: u64, templates: &[corpus::Template], tmp: &Path, verbose: bool) {
    progress(child::CASE, seed);
    let work = tmp.join("case");
    let mut case = make_case(seed, templates, &work);
    if verbose {
        for line in &case.log {
            println!("  {line}");
        }
    }
    exercise(&mut case);
    if verbose {
        for line in &case.log {
            println!("  {line}");
        }
    }
    let _ = fs::remove_dir_all(&work);
    progress(child::DONE, seed);
}

/// Every open and every read that applies to `case`. Readers are opened, then one of
/// the case's files is changed in place ([`Case::change_live`]), then they read.
fn exercise(case: &mut Case) {
    let path = case.path.clone();
    let path = path.as_path();
    let kind = case.kind;
    match kind {
        Kind::Journal => exercise_journal::<JournalRec>(case),
        Kind::ByteJournal => exercise_journal::<ByteRec>(case),
        Kind::Slots => exercise_slots::<SlotRec>(case),
        Kind::Segmented => exercise_dir::<SegRec>(case),
        Kind::ShortSegmented => exercise_dir::<ShortSegRec>(case),
    }
    // Every file, whatever it is, through the untyped reader and the typed readers
    // of the other kinds (which must refuse it cleanly).
    let files = if path.is_dir() {
        entries(path)
    } else {
        vec![path.to_path_buf()]
    };
    for file in &files {
        exercise_store_file(file, case);
        if kind.is_dir() {
            let _ = JournalReader::<SegRec>::open(file).map(read_journal);
            let _ = SlotReader::<SlotRec>::open(file).map(|r| read_slots(&r));
        } else {
            let _ = JournalReader::<SlotRec>::open(file).map(read_journal);
            let _ = SegmentedFollower::<SegRec>::open(file).map(read_follower);
        }
    }
}

/// Reads a journal through every `JournalReader` API.
fn read_journal<T: Record>(mut r: JournalReader<T>) {
    let published = r.published();
    let _ = (r.available(), r.capacity(), r.header(), r.path());
    let mut n = 0u64;
    while let Some(x) = r.next() {
        let _ = bytemuck::bytes_of(x).iter().map(|&b| b as u64).sum::<u64>();
        n += 1;
        assert!(n <= r.capacity() as u64, "next ran past the capacity");
    }
    let _ = r.get();
    for seq in [
        0,
        1,
        published.saturating_sub(1),
        published,
        published + 1,
        u64::MAX,
    ] {
        if let Some(x) = r.get_at(seq) {
            let _ = bytemuck::bytes_of(x).to_vec();
        }
        r.seek(seq);
        let _ = r.get();
        let _ = r.next();
        let _ = (r.available(), r.get_index());
    }
    r.seek(0);
    let batch = r.next_batch(usize::MAX);
    let _ = batch.iter().map(|x| bytemuck::bytes_of(x)[0]).max();
    r.seek(1);
    let _ = r.next_batch(3).len();
    let _ = r.get();
    let _ = format!("{r:?}");
}

fn exercise_journal<T: Record>(case: &mut Case) {
    let path = &case.path.clone();
    if let Ok(r) = tally("JournalReader::open", JournalReader::<T>::open(path)) {
        read_journal(r.clone());
        case.change_live();
        read_journal(r);
    }
    if let Ok(mut w) = tally("JournalStore::open", JournalStore::<T>::open(path)) {
        let _ = (
            w.len(),
            w.capacity(),
            w.remaining(),
            w.is_full(),
            w.header(),
        );
        read_journal(w.reader());
        for _ in 0..3 {
            let _ = w.try_append(&T::zeroed());
        }
        let _ = w.try_append_slice(&[T::zeroed(); 4]);
        let _ = w.flush();
        read_journal(w.reader());
    }
    let _ = JournalReader::<T>::open(path).map(read_journal);
}

/// Reads every slot through every `SlotReader` API.
fn read_slots<T: Record>(r: &SlotReader<T>) {
    let _ = (r.len(), r.is_empty(), r.header(), r.path());
    for i in 0..r.len() + 2 {
        let _ = (r.get(i), r.version(i), r.is_torn(i));
    }
    let _ = (
        r.get(usize::MAX),
        r.version(usize::MAX),
        r.is_torn(usize::MAX),
    );
}

fn exercise_slots<T: Record>(case: &mut Case) {
    let path = &case.path.clone();
    if let Ok(r) = tally("SlotReader::open", SlotReader::<T>::open(path)) {
        read_slots(&r);
        case.change_live();
        read_slots(&r);
    }
    if let Ok(mut w) = tally("SlotStore::open", SlotStore::<T>::open(path)) {
        let torn = w.torn_slots();
        for i in torn {
            let _ = w.try_set(i, &T::zeroed());
        }
        let _ = w.try_set(0, &T::zeroed());
        let _ = w.try_set(usize::MAX, &T::zeroed());
        read_slots(&w.reader());
        let _ = w.flush();
    }
    let _ = SlotReader::<T>::open(path).map(|r| read_slots(&r));
}

/// Reads a follower to its end, through `next` and `next_batch`, seeking past `Lagged`.
fn read_follower<T: Record>(mut f: SegmentedFollower<T>) {
    let _ = (
        f.published(),
        f.available(),
        f.oldest_retained(),
        f.position(),
    );
    let mut out = vec![T::zeroed(); 5];
    for round in 0..200 {
        let got = if round % 2 == 0 {
            f.next().map(|x| x.is_some() as usize)
        } else {
            f.next_batch(&mut out)
        };
        match got {
            Ok(0) => break,
            Ok(_) => {}
            Err(RodaError::Lagged { .. }) => {
                let _ = f.seek_to_oldest();
            }
            Err(_) => break,
        }
    }
    for seq in [0, 1, 3, 4, 5, 1 << 62, 1 << 63, u64::MAX - 1, u64::MAX] {
        f.seek(seq);
        let _ = f.next();
        let _ = f.next_batch(&mut out);
        let _ = (f.available(), f.oldest_retained());
    }
    let _ = format!("{f:?}");
}

fn exercise_dir<T: Record>(case: &mut Case) {
    let dir = &case.path.clone();
    if let Ok(mut f) = tally("SegmentedFollower::open", SegmentedFollower::<T>::open(dir)) {
        let _ = f.next();
        case.change_live();
        read_follower(f);
    }
    if let Ok(mut w) = tally("SegmentedJournal::open", SegmentedJournal::<T>::open(dir)) {
        let _ = (
            w.len(),
            w.segment_records(),
            w.segments(),
            w.oldest_retained(),
        );
        if let Ok(mut r) = w.try_reader() {
            let mut n = 0;
            while r.next().is_some() && n < 1000 {
                n += 1;
            }
            let _ = (r.get(), r.available(), r.published(), r.get_index());
            let _ = r.seek(0);
            let _ = r.next_batch(usize::MAX).len();
        }
        read_follower(w.follower());
        let span = (w.segment_records() * w.segments()) as u64;
        for _ in 0..(2 * span + 1).min(64) {
            if w.try_append(&T::zeroed()).is_err() {
                break;
            }
        }
        let _ = w.flush();
        read_follower(w.follower());
    }
    let _ = SegmentedFollower::<T>::open(dir).map(read_follower);
}

/// Reads every record and slot of any store file through `StoreFile`.
fn exercise_store_file(path: &Path, case: &mut Case) {
    let Ok(f) = tally("StoreFile::open", StoreFile::open(path)) else {
        return;
    };
    if case.rng.chance(2) {
        case.change_live();
    }
    let h = f.header();
    let _ = (f.path(), f.file_len(), f.writer_pid(), f.writer_alive());
    let _ = (f.first_sequence(), f.write_sequence(), f.published());
    let mut bytes = Vec::new();
    let published = f.published();
    let first = f.first_sequence().unwrap_or(0);
    let mut seqs: Vec<u64> = (0..published.min(64) + 2).collect();
    seqs.extend((0..h.capacity.min(64) + 2).map(|i| first.saturating_add(i)));
    seqs.extend([first.saturating_sub(1), u64::MAX - 1, u64::MAX, 1 << 63]);
    for seq in seqs {
        if let Some(b) = f.record_bytes(seq) {
            assert_eq!(b.len() as u64, h.record_size);
        }
        let _ = f.copy_record(seq, &mut bytes);
    }
    for index in (0..h.capacity.min(64) + 2).chain([u64::MAX]) {
        let _ = f.slot_sequence(index);
        if let Some(SlotSnapshot::Value { .. }) = f.read_slot(index, &mut bytes) {
            assert_eq!(bytes.len() as u64, h.record_size);
        }
    }
    let _ = format!("{f:?}");
}

// ---------------------------------------------------------------------------------
// Named cases: hand-made damage that found a defect (issue 15, item 4).

type Named = (&'static str, fn(&Path));

const NAMED: &[Named] = &[
    ("huge_retention_writer", huge_retention_writer),
    ("huge_retention_follower", huge_retention_follower),
    ("sequence_at_the_end_writer", sequence_at_the_end_writer),
    ("sequence_at_the_end_follower", sequence_at_the_end_follower),
    ("follower_sought_to_the_end", follower_sought_to_the_end),
    ("named_pipes", named_pipes),
    ("missing_files", missing_files),
    ("path_replaced_by_a_pipe", path_replaced_by_a_pipe),
];

const OFF_FIRST_SEQ: u64 = 88;
const OFF_RETENTION: u64 = 96;
const OFF_WRITE_SEQ: u64 = 128;

fn poke(path: &Path, at: u64, value: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

/// A closed `KeepLast(3)` directory of 4-record segments holding records 0..10.
fn keep_last(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("ring");
    let mut journal = SegmentedJournal::<SegRec>::create(&dir, 4, Retention::KeepLast(3)).unwrap();
    for i in 0..10u64 {
        journal.append(&[i, !i]);
    }
    dir
}

fn with_huge_retention(tmp: &Path) -> std::path::PathBuf {
    let dir = keep_last(tmp);
    for file in entries(&dir) {
        poke(&file, OFF_RETENTION, 1 << 50);
    }
    dir
}

fn huge_retention_writer(tmp: &Path) {
    let dir = with_huge_retention(tmp);
    match SegmentedJournal::<SegRec>::open(&dir) {
        Err(RodaError::Corrupted { .. }) => {}
        other => panic!("open: {:?}", other.map(|_| ())),
    }
}

fn huge_retention_follower(tmp: &Path) {
    let dir = with_huge_retention(tmp);
    match SegmentedFollower::<SegRec>::open(&dir) {
        Err(RodaError::Corrupted { .. }) => {}
        other => panic!("follower open: {:?}", other.map(|_| ())),
    }
}

/// The newest segment says it starts at the last multiple of 4 below 2^64 and is full:
/// its end, `first + written`, is 2^64.
fn with_sequence_at_the_end(tmp: &Path) -> std::path::PathBuf {
    let dir = keep_last(tmp);
    let newest = dir.join(format!("{:020}.roda", 8));
    poke(&newest, OFF_FIRST_SEQ, u64::MAX / 4 * 4);
    poke(&newest, OFF_WRITE_SEQ, 4);
    dir
}

fn sequence_at_the_end_writer(tmp: &Path) {
    let dir = with_sequence_at_the_end(tmp);
    match SegmentedJournal::<SegRec>::open(&dir) {
        Err(RodaError::Corrupted { .. }) => {}
        other => panic!("open: {:?}", other.map(|_| ())),
    }
}

fn sequence_at_the_end_follower(tmp: &Path) {
    let dir = with_sequence_at_the_end(tmp);
    // The follower reads what it can; the damaged segment is not counted.
    let mut follower = SegmentedFollower::<SegRec>::open(&dir).unwrap();
    assert!(follower.published() <= 8, "{}", follower.published());
    read_follower(follower);
}

/// A sound directory; a follower sought to the last sequences of `u64` (no file needed
/// to be damaged for its segment end to overflow).
fn follower_sought_to_the_end(tmp: &Path) {
    let dir = keep_last(tmp);
    let mut follower = SegmentedFollower::<SegRec>::open(&dir).unwrap();
    let mut out = [[0u64; 2]; 4];
    for seq in [u64::MAX - 1, u64::MAX] {
        follower.seek(seq);
        assert!(matches!(follower.next(), Ok(None)));
        assert!(matches!(follower.next_batch(&mut out), Ok(0)));
    }
}

/// Named pipes where a store file, a segment file or a segment directory should be:
/// every open refuses them at once (a plain open of a pipe waits for a writer).
fn named_pipes(tmp: &Path) {
    let mkfifo = |path: &Path| {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let pipe = tmp.join("store.roda");
    mkfifo(&pipe);
    assert!(JournalReader::<JournalRec>::open(&pipe).is_err());
    assert!(JournalStore::<JournalRec>::open(&pipe).is_err());
    assert!(SlotReader::<SlotRec>::open(&pipe).is_err());
    assert!(SlotStore::<SlotRec>::open(&pipe).is_err());
    assert!(StoreFile::open(&pipe).is_err());
    assert!(SegmentedJournal::<SegRec>::open(&pipe).is_err());
    assert!(SegmentedFollower::<SegRec>::open(&pipe).is_err());
    // A pipe under a segment's name: not a segment file, ignored like any other name.
    // Followers carry on with the files there are; the writer finds a ring file
    // missing from a journal that holds records, and refuses.
    let dir = keep_last(tmp);
    fs::remove_file(dir.join(format!("{:020}.roda", 0))).unwrap();
    mkfifo(&dir.join(format!("{:020}.roda", 0)));
    let mut follower = SegmentedFollower::<SegRec>::open(&dir).unwrap();
    assert_eq!(follower.seek_to_oldest(), 4);
    assert_eq!(follower.next().unwrap(), Some([4, !4]));
    assert!(matches!(
        SegmentedJournal::<SegRec>::open(&dir),
        Err(RodaError::Corrupted { .. })
    ));
}

/// A `KeepLast` directory missing files: completed when nothing was written yet (a
/// `create` cut short), refused once it holds records, whatever k its headers say (it
/// recreated thousands of files for a header saying `KeepLast(8192)`).
fn missing_files(tmp: &Path) {
    let seg = |dir: &Path, first: u64| dir.join(format!("{first:020}.roda"));
    let dir = keep_last(tmp);
    fs::remove_file(seg(&dir, 4)).unwrap();
    match SegmentedJournal::<SegRec>::open(&dir) {
        Err(RodaError::Corrupted { detail, .. }) => assert!(detail.contains("missing"), "{detail}"),
        other => panic!("open: {:?}", other.map(|_| ())),
    }
    for file in entries(&dir) {
        poke(&file, OFF_RETENTION, 8192);
    }
    let started = std::time::Instant::now();
    assert!(matches!(
        SegmentedJournal::<SegRec>::open(&dir),
        Err(RodaError::Corrupted { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(entries(&dir).len(), 2, "nothing created");
    // Nothing written yet: the two spares a cut-short create left out are made.
    let fresh = tmp.join("fresh");
    drop(SegmentedJournal::<SegRec>::create(&fresh, 4, Retention::KeepLast(3)).unwrap());
    fs::remove_file(seg(&fresh, 4)).unwrap();
    fs::remove_file(seg(&fresh, 8)).unwrap();
    let mut journal = SegmentedJournal::<SegRec>::open(&fresh).unwrap();
    assert_eq!(entries(&fresh).len(), 3);
    for i in 0..20u64 {
        assert_eq!(journal.try_append(&[i, !i]).unwrap(), i);
    }
    // ...but not thousands of them for a header saying KeepLast(8192).
    let huge = tmp.join("huge");
    drop(SegmentedJournal::<SegRec>::create(&huge, 4, Retention::KeepLast(2)).unwrap());
    fs::remove_file(seg(&huge, 4)).unwrap();
    poke(&seg(&huge, 0), OFF_RETENTION, 8192);
    assert!(matches!(
        SegmentedJournal::<SegRec>::open(&huge),
        Err(RodaError::Corrupted { .. })
    ));
    assert_eq!(entries(&huge).len(), 1, "nothing created");
}

/// A store file replaced by a named pipe after `StoreFile` opened it: asking whether a
/// writer holds it opens the path again, and must not wait on the pipe.
fn path_replaced_by_a_pipe(tmp: &Path) {
    let path = tmp.join("journal.roda");
    drop(JournalStore::<JournalRec>::create(&path, 4).unwrap());
    let file = StoreFile::open(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!file.writer_alive());
}

/// Runs named case `name` in a child and fails with its output unless it passed.
fn expect_clean(name: &str) {
    let outcome = run_child("child", &format!("named:{name}"), STALL);
    assert!(
        outcome.ok,
        "case {name}: {}\n{}",
        outcome.status,
        child::tail(&outcome.stderr, 15)
    );
}

#[test]
fn huge_retention_is_corrupted_not_an_abort_for_the_writer() {
    expect_clean("huge_retention_writer");
}

#[test]
fn huge_retention_is_corrupted_not_an_abort_for_a_follower() {
    expect_clean("huge_retention_follower");
}

#[test]
fn sequence_at_the_end_of_u64_is_corrupted_for_the_writer() {
    expect_clean("sequence_at_the_end_writer");
}

#[test]
fn follower_sought_to_the_end_of_u64_reads_nothing() {
    expect_clean("follower_sought_to_the_end");
}

#[test]
fn named_pipes_are_refused_without_blocking() {
    expect_clean("named_pipes");
}

#[test]
fn missing_files_are_recreated_only_before_the_first_record() {
    expect_clean("missing_files");
}

#[test]
fn store_file_replaced_by_a_pipe_is_not_waited_on() {
    expect_clean("path_replaced_by_a_pipe");
}

#[test]
fn sequence_at_the_end_of_u64_is_skipped_by_a_follower() {
    expect_clean("sequence_at_the_end_follower");
}

// ---------------------------------------------------------------------------------
// The fuzz run.

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| child::parse_seed(&v))
}

/// A failure of one case, as the parent saw it.
struct Failed {
    seed: Option<u64>,
    status: String,
    detail: String,
}

/// What a set of children did.
#[derive(Default)]
struct Run {
    failures: Vec<Failed>,
    completed: u64,
    /// Opens by API: (succeeded, refused with a `RodaError`).
    tally: BTreeMap<String, (u64, u64)>,
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.failures.extend(other.failures);
        self.completed += other.completed;
        for (api, (ok, err)) in other.tally {
            let e = self.tally.entry(api).or_default();
            e.0 += ok;
            e.1 += err;
        }
    }
}

/// Runs the cases of `spec` (`count` of them) in a child, and after a case that fails
/// the rest in a new child; stops after 10 failures.
fn run_spec(spec: &str, count: u64) -> Run {
    let mut run = Run::default();
    let outcome = run_child("child", spec, STALL);
    run.completed = outcome.started.iter().filter(|(_, done)| *done).count() as u64;
    for line in outcome.stdout.lines() {
        let Some(at) = line.find(child::STATS) else {
            continue;
        };
        let words: Vec<&str> = line[at + child::STATS.len()..].split(' ').collect();
        if let [api, ok, err] = words[..] {
            let e = run.tally.entry(api.to_owned()).or_default();
            e.0 += ok.parse::<u64>().unwrap_or(0);
            e.1 += err.parse::<u64>().unwrap_or(0);
        }
    }
    if outcome.ok && outcome.started.len() as u64 == count {
        return run;
    }
    run.failures.push(Failed {
        seed: outcome.culprit(),
        status: outcome.status.clone(),
        detail: child::tail(&outcome.stderr, 12),
    });
    // Resume after the case that failed.
    let parts: Vec<&str> = spec.split(':').collect();
    if let ["cases", base, start, _] = parts[..] {
        let start: u64 = start.parse().unwrap();
        let done = outcome.started.len() as u64;
        if done > 0 && done < count && run.failures.len() < 10 {
            let rest = run_spec(
                &format!("cases:{base}:{}:{}", start + done, count - done),
                count - done,
            );
            run.merge(rest);
        }
    }
    run
}

/// Runs `specs` on `jobs` children at a time.
fn run_batches(specs: Vec<(String, u64)>, jobs: usize) -> Run {
    let queue = std::sync::Mutex::new(specs.into_iter());
    let total = std::sync::Mutex::new(Run::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap().next();
                let Some((spec, count)) = next else {
                    return;
                };
                let run = run_spec(&spec, count);
                let mut total = total.lock().unwrap();
                total.merge(run);
                if total.failures.len() >= 10 {
                    // Enough to fix: drop the rest of the queue.
                    queue.lock().unwrap().by_ref().for_each(drop);
                }
            });
        }
    });
    total.into_inner().unwrap()
}

fn report(failures: &[Failed]) -> String {
    failures
        .iter()
        .map(|f| {
            format!(
                "case seed {}: {}\n  replay: RODA_FUZZ_SEED={} cargo test -p roda-store --test \
                 hostile_files replay -- --nocapture\n{}",
                f.seed.map_or("?".into(), |s| format!("{s:#x}")),
                f.status,
                f.seed.map_or("?".into(), |s| format!("{s:#x}")),
                f.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn fuzz_every_open_and_read() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cases = env_u64("RODA_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
    let base = env_u64("RODA_FUZZ_BASE").unwrap_or(DEFAULT_BASE);
    let started = std::time::Instant::now();
    let specs = (0..cases)
        .step_by(BATCH as usize)
        .map(|start| {
            let count = BATCH.min(cases - start);
            (format!("cases:{base:#x}:{start}:{count}"), count)
        })
        .collect();
    let jobs = env_u64("RODA_FUZZ_JOBS").unwrap_or(2) as usize;
    let run = run_batches(specs, jobs);
    eprintln!(
        "hostile files: {} of {cases} cases (base seed {base:#x}) in {:.1?}, {} failed",
        run.completed,
        started.elapsed(),
        run.failures.len()
    );
    for (api, (ok, err)) in &run.tally {
        eprintln!("  {api}: {ok} opened, {err} refused");
    }
    assert!(run.failures.is_empty(), "{}", report(&run.failures));
    assert_eq!(run.completed, cases, "every case ran");
}

#[test]
fn regressions() {
    if std::env::var(CHILD_ENV).is_ok() || REGRESSIONS.is_empty() {
        return;
    }
    let list: Vec<String> = REGRESSIONS.iter().map(|s| format!("{s:#x}")).collect();
    let run = run_spec(
        &format!("seeds:{}", list.join(",")),
        REGRESSIONS.len() as u64,
    );
    assert!(run.failures.is_empty(), "{}", report(&run.failures));
}

/// `RODA_FUZZ_SEED=0x...`: replays one case, printing what was done to the files.
#[test]
fn replay() {
    let Some(seed) = env_u64("RODA_FUZZ_SEED") else {
        return;
    };
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let outcome = run_child("child", &format!("seeds:{seed:#x}"), STALL);
    println!("{}", outcome.stdout);
    assert!(
        outcome.ok,
        "case seed {seed:#x}: {}\n{}",
        outcome.status, outcome.stderr
    );
}

/// A writer never makes a directory its own `open` would refuse as damaged.
#[test]
fn keep_last_beyond_the_limit_is_refused_at_create() {
    let tmp = tempfile::tempdir().unwrap();
    match SegmentedJournal::<SegRec>::create(tmp.path().join("d"), 4, Retention::KeepLast(65_537)) {
        Err(RodaError::InvalidCapacity { capacity, .. }) => assert_eq!(capacity, 65_537),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(entries(&tmp.path().join("d")).is_empty());
}

//! Hostile files through the `roda` command: `inspect`, `tail` (not following) and
//! `verify` on the damaged stores of roda-store's hostile-file corpus (the same cases,
//! seed for seed, as `roda-store/tests/hostile_files.rs`). Each run must end with exit
//! status 0, 1 (`verify` found a problem) or 2 (the file cannot be used, said in one
//! line on stderr), and never with a panic (status 101), an abort or a signal, nor hang.
//!
//! * `cargo test -p roda-cli --test hostile_files`: the CI run (`DEFAULT_CASES`).
//! * `RODA_FUZZ_CASES=100000 cargo test --release -p roda-cli --test hostile_files --
//!   --nocapture`: the longer run; `RODA_FUZZ_BASE` and `RODA_FUZZ_SEED` as in roda-store.

#[path = "../../roda-store/tests/hostile/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corpus::{case_seed, entries, make_case, templates, Rng, Template};

/// Cases of the CI run.
const DEFAULT_CASES: u64 = 600;
/// The same base seed as roda-store's run.
const DEFAULT_BASE: u64 = 0x0DA_F022;
/// A command that runs longer hangs (nothing here follows a file).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Seeds of cases that found defects, replayed on every run.
const REGRESSIONS: &[u64] = &[
    // A segment header saying first sequence 2^64 - 2: `inspect DIR` overflowed adding
    // its record count (inspect.rs).
    0xeb1f_42c9_0653_de18,
];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Runs `roda args...`; `Err` with a description unless it ended acceptably.
fn run_roda(args: &[&std::ffi::OsStr], allowed: &[i32]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roda"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0")
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hung for {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let err = reader.join().unwrap_or_default();
    let described = || {
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        format!("roda {}: {status}\n{err}", args.join(" "))
    };
    match status.code() {
        Some(code) if allowed.contains(&code) => {}
        _ => return Err(described()),
    }
    // An error is one line; notes (records skipped while tailing) may come on success.
    let one_error_line = status.code() != Some(2) || err.lines().count() == 1;
    if err.contains("panicked") || !one_error_line {
        return Err(described());
    }
    Ok(())
}

/// Every command on `case`'s path (and, for a directory, on one of its files).
fn exercise(path: &Path, rng: &mut Rng) -> Result<(), String> {
    exercise_with(path, rng, &[0, 2], &[0, 1, 2])
}

/// [`exercise`], accepting the exit statuses `read` (inspect, tail) and `verify`.
fn exercise_with(path: &Path, rng: &mut Rng, read: &[i32], verify: &[i32]) -> Result<(), String> {
    let mut targets: Vec<PathBuf> = vec![path.to_path_buf()];
    if path.is_dir() {
        let files = entries(path);
        if !files.is_empty() {
            targets.push(rng.pick(&files).clone());
        }
    }
    for target in &targets {
        let p = target.as_os_str();
        let s = |x: &'static str| std::ffi::OsStr::new(x);
        run_roda(&[s("inspect"), p], read)?;
        run_roda(&[s("inspect"), s("--json"), p], read)?;
        run_roda(&[s("tail"), p, s("-n"), s("1000")], read)?;
        let from = *rng.pick(&["0", "3", "9223372036854775808", "18446744073709551615"]);
        run_roda(&[s("tail"), s("--json"), p, s("--from"), s(from)], read)?;
        run_roda(&[s("tail"), p, s("--format"), s("hex")], read)?;
        run_roda(&[s("verify"), p], verify)?;
        run_roda(&[s("verify"), s("--json"), p], verify)?;
    }
    Ok(())
}

/// Runs case `seed`; `Err` with the damage done and what went wrong.
fn run_case(seed: u64, templates: &[Template], work: &Path) -> Result<(), String> {
    let mut case = make_case(seed, templates, work);
    let result = exercise(&case.path, &mut case.rng);
    let _ = std::fs::remove_dir_all(work);
    result.map_err(|e| format!("case seed {seed:#x} ({}):\n{e}", case.log.join("; ")))
}

fn run_seeds(seeds: &[u64], jobs: usize) -> (u64, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let templates = templates(&tmp.path().join("templates"));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let ran = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for job in 0..jobs.max(1) {
            let (templates, next, failures, ran) = (&templates, &next, &failures, &ran);
            let work = tmp.path().join(format!("case-{job}"));
            scope.spawn(move || loop {
                // Relaxed: a work counter; the scope's join publishes the results.
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    return;
                };
                if failures.lock().unwrap().len() >= 10 {
                    return;
                }
                if let Err(e) = run_case(seed, templates, &work) {
                    failures.lock().unwrap().push(e);
                }
                ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    (ran.into_inner(), failures.into_inner().unwrap())
}

#[test]
fn fuzz_inspect_tail_verify() {
    let started = Instant::now();
    let seeds: Vec<u64> = match env_u64("RODA_FUZZ_SEED") {
        Some(seed) => vec![seed],
        None => {
            let cases = env_u64("RODA_FUZZ_CASES").unwrap_or(DEFAULT_CASES);
            let base = env_u64("RODA_FUZZ_BASE").unwrap_or(DEFAULT_BASE);
            (0..cases).map(|i| case_seed(base, i)).collect()
        }
    };
    let jobs = env_u64("RODA_FUZZ_JOBS").unwrap_or(2) as usize;
    let (ran, failures) = run_seeds(&seeds, jobs);
    eprintln!(
        "roda on hostile files: {ran} of {} cases in {:.1?}, {} failed",
        seeds.len(),
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The harness's commands are all accepted: on the undamaged templates every one
/// succeeds (so a usage error, status 2 too, never passes for a refused file).
#[test]
fn every_command_succeeds_on_the_sound_templates() {
    let tmp = tempfile::tempdir().unwrap();
    for t in templates(&tmp.path().join("templates")) {
        for seed in 0..4 {
            exercise_with(&t.path, &mut Rng::new(seed), &[0], &[0])
                .unwrap_or_else(|e| panic!("template {}: {e}", t.name));
        }
    }
}

#[test]
fn regressions() {
    let (_, failures) = run_seeds(REGRESSIONS, 1);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A segment named for, and saying, the last segment start below 2^64, full: every
/// command reads it without overflowing, and `verify` names the damage.
#[test]
fn segment_at_the_end_of_u64() {
    use roda_store::{Retention, SegmentedJournal};
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ring");
    let mut journal =
        SegmentedJournal::<[u64; 2]>::create(&dir, 4, Retention::KeepLast(3)).unwrap();
    for i in 0..10u64 {
        journal.append(&[i, !i]);
    }
    drop(journal);
    let end = u64::MAX / 4 * 4;
    let path = dir.join(format!("{end:020}.roda"));
    std::fs::rename(dir.join(format!("{:020}.roda", 8)), &path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&end.to_ne_bytes(), 88).unwrap();
    file.write_all_at(&4u64.to_ne_bytes(), 128).unwrap();
    let s = |x: &'static str| std::ffi::OsStr::new(x);
    for p in [dir.as_os_str(), path.as_os_str()] {
        run_roda(&[s("inspect"), p], &[0]).unwrap();
        run_roda(&[s("inspect"), s("--json"), p], &[0]).unwrap();
        run_roda(&[s("tail"), p], &[0]).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_roda"))
        .args([s("verify"), dir.as_os_str()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("beyond 2^63"), "{text}");
}

/// A named pipe given as the store file, or under a segment's name: refused at once
/// with status 2 (a plain open of a pipe waits for a writer).
#[test]
fn named_pipes_are_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let pipe = tmp.path().join("store.roda");
    assert!(Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap()
        .success());
    let s = |x: &'static str| std::ffi::OsStr::new(x);
    for command in ["inspect", "tail", "verify"] {
        run_roda(&[s(command), pipe.as_os_str()], &[2]).unwrap();
    }
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let segment = dir.join(format!("{:020}.roda", 0));
    assert!(Command::new("mkfifo")
        .arg(&segment)
        .status()
        .unwrap()
        .success());
    for command in ["inspect", "tail", "verify"] {
        run_roda(&[s(command), dir.as_os_str()], &[1, 2]).unwrap();
    }
}

/// A slot store whose header declares 2^33 slots, in a sparse file of that size
/// (512 GiB, no blocks): `roda tail` must not size anything by the slot count up front
/// (it aborted allocating 64 GiB). Scanning that many slots takes minutes, so the
/// command is stopped after a few seconds: it must still be running, or have ended
/// with status 0 or 2, never by a signal.
#[test]
fn tail_of_a_huge_sparse_slot_store_does_not_abort() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.roda");
    drop(roda_store::SlotStore::<[u64; 3]>::create(&path, 8).unwrap());
    let slots: u64 = 1 << 33;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&slots.to_ne_bytes(), 40).unwrap();
    if file.set_len(4096 + slots * 64).is_err() {
        eprintln!("SKIP: this file system has no room for a 512 GiB sparse file");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_roda"))
        .args([std::ffi::OsStr::new("tail"), path.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            assert!(matches!(status.code(), Some(0 | 2)), "{status}\n{err}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

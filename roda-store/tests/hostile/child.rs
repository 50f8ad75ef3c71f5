//! Running cases in a child process: the test binary re-executes itself with an
//! environment variable naming the work, so that a case that aborts or dies by a signal
//! (SIGSEGV, SIGBUS) is reported as a failure of that case, with its seed, instead of
//! taking the whole test run down.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that tells the test binary it runs as a child, and what to do.
pub const CHILD_ENV: &str = "RODA_HOSTILE_CHILD";
/// The child's progress lines: `CASE <seed>` before each case, `DONE <seed>` after it.
pub const CASE: &str = "CASE ";
pub const DONE: &str = "DONE ";
/// The child's tally lines: `STATS <api> <opened> <refused>`.
pub const STATS: &str = "STATS ";

/// How a child ended.
pub struct Outcome {
    /// Exited with status 0.
    pub ok: bool,
    /// Status or signal, in words.
    pub status: String,
    /// The seeds the child started, in order, and whether each finished.
    pub started: Vec<(u64, bool)>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The case that was running when the child died, if any.
    pub fn culprit(&self) -> Option<u64> {
        self.started
            .iter()
            .rev()
            .find(|(_, done)| !done)
            .map(|&(s, _)| s)
    }
}

/// Runs test `test_name` of this binary in a child with `CHILD_ENV=spec`, killing it
/// when it prints nothing for `stall` (a case that hangs: one case takes milliseconds).
pub fn run_child(test_name: &str, spec: &str, stall: Duration) -> Outcome {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        // Default abort message and backtraces only: the seed says the rest.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = lines_tx.send(String::new());
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut last_output = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break format!("{status}");
        }
        while lines.try_recv().is_ok() {
            last_output = Instant::now();
        }
        if last_output.elapsed() > stall {
            let _ = child.kill();
            let _ = child.wait();
            break format!("killed: no progress for {stall:?}, a case hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let mut started: Vec<(u64, bool)> = Vec::new();
    for line in stdout.lines() {
        // libtest writes `test child ... ` before the first line of output.
        let after = |tag: &str| line.find(tag).map(|at| &line[at + tag.len()..]);
        if let Some(seed) = after(CASE).and_then(parse_seed) {
            started.push((seed, false));
        } else if let Some(seed) = after(DONE).and_then(parse_seed) {
            if let Some(last) = started.iter_mut().rev().find(|(s, _)| *s == seed) {
                last.1 = true;
            }
        }
    }
    Outcome {
        ok: status.contains("exit status: 0"),
        status,
        started,
        stdout,
        stderr,
    }
}

/// `0x1234` or `1234`.
pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

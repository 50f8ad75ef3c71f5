//! The `roda` binary, run as a user would on files made here: every command, human and
//! JSON output, `tail -f` against a live writer, and every kind of bad input (which must
//! give one line on stderr and exit status 2, never a panic).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use roda_store::{JournalStore, SlotStore};

const OFF_WRITER_PID: u64 = 80;
const OFF_WRITE_SEQ: u64 = 128;

fn roda(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roda"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run roda")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Success with nothing on stderr; returns stdout.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "{o:?}\n{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    stdout(&o)
}

/// Exit status 2, one line on stderr starting `roda: ` and containing `needle`.
fn fails(o: Output, needle: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{o:?}\n{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("roda: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

fn poke(path: &Path, at: u64, value: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

/// A record like the journal example's tick.
fn tick(i: u64) -> [u64; 3] {
    [i % 16, (100.0 + i as f64 / 4.0).to_bits(), 1 + i % 10]
}

/// A closed journal of 100 records, 25 of them written.
fn journal_file() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = temp("ticks.roda");
    let mut journal = JournalStore::<[u64; 3]>::create(&path, 100).unwrap();
    for i in 0..25 {
        journal.append(&tick(i));
    }
    (dir, path)
}

/// A closed slot store of 8 slots of [u32; 3] with slots 1 (twice) and 5 set.
fn slots_file() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = temp("book.roda");
    let mut slots = SlotStore::<[u32; 3]>::create(&path, 8).unwrap();
    slots.set(1, &[1, 2, 3]);
    slots.set(1, &[4, 5, 6]);
    slots.set(5, &[7, 8, 9]);
    (dir, path)
}

#[test]
fn inspect_journal() {
    let (_dir, path) = temp("j.roda");
    let mut journal = JournalStore::<[u64; 3]>::options()
        .schema(7)
        .create(&path, 100)
        .unwrap();
    for i in 0..25 {
        journal.append(&tick(i));
    }
    let text = ok(roda(&[&"inspect", &path]));
    for needle in [
        "kind       journal (format version 1)",
        "record     24 bytes, align 8, stride 24",
        "capacity   100 records",
        "schema     7",
        "length     25 records (25.0% full)",
        "header     valid",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // This process holds the writer.
    let running = format!("writer     pid {} (running)", std::process::id());
    assert!(text.contains(&running), "{text}");
    let json = ok(roda(&[&"inspect", &"--json", &path]));
    assert_eq!(json.lines().count(), 1);
    for needle in [
        r#""kind":"journal""#,
        r#""record_size":24"#,
        r#""capacity":100"#,
        r#""length":25"#,
        r#""fill":0.25"#,
        r#""writer_alive":true"#,
        r#""valid":true"#,
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    drop(journal);
    let text = ok(roda(&[&"inspect", &path]));
    assert!(text.contains("writer     none (closed cleanly)"), "{text}");
    // A crashed writer's pid stays behind.
    poke(&path, OFF_WRITER_PID, 0x7fff_fff0);
    let text = ok(roda(&[&"inspect", &path]));
    assert!(text.contains("(not running"), "{text}");
}

#[test]
fn inspect_slots() {
    let (_dir, path) = slots_file();
    let text = ok(roda(&[&"inspect", &path]));
    assert!(text.contains("kind       slots"), "{text}");
    assert!(
        text.contains("record     12 bytes, align 4, stride 64"),
        "{text}"
    );
    assert!(
        text.contains("length     2 slots set (25.0% full)"),
        "{text}"
    );
    let json = ok(roda(&[&"inspect", &path, &"--json"]));
    assert!(json.contains(r#""kind":"slots","#), "{json}");
    assert!(json.contains(r#""length":2,"#), "{json}");
    assert!(json.contains(r#""torn_slots":0,"#), "{json}");
}

#[test]
fn tail_journal_formats() {
    let (_dir, path) = journal_file();
    // Default: the last 10 records, as u64 words.
    let text = ok(roda(&[&"tail", &path]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert!(lines[0].trim_start().starts_with("15 "), "{text}");
    let words: Vec<&str> = lines[9].split_whitespace().collect();
    assert_eq!(words[0], "24");
    assert_eq!(words[1], "8");
    assert_eq!(words[2], (106.0f64).to_bits().to_string());

    let text = ok(roda(&[
        &"tail",
        &path,
        &"-n",
        &"2",
        &"--format",
        &"fields=u64,f64,u64",
    ]));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["23", "7", "105.75", "4"],
            vec!["24", "8", "106.0", "5"]
        ]
    );

    let text = ok(roda(&[&"tail", &path, &"--from=0", &"--format", &"f64"]));
    assert_eq!(text.lines().count(), 25);
    assert!(text.lines().nth(1).unwrap().contains("100.25"), "{text}");

    let text = ok(roda(&[
        &"tail",
        &path,
        &"--from",
        &"3",
        &"--format",
        &"hex",
    ]));
    assert_eq!(text.lines().count(), 22);
    assert!(
        text.lines().next().unwrap().contains("0300000000000000 "),
        "{text}"
    );

    let json = ok(roda(&[
        &"tail",
        &path,
        &"--from",
        &"24",
        &"--json",
        &"--format",
        &"fields=u64,f64,u32",
    ]));
    assert_eq!(json, "{\"seq\":24,\"values\":[8,106.0,5]}\n");

    // Past the end: nothing, successfully.
    assert_eq!(ok(roda(&[&"tail", &path, &"--from", &"99"])), "");
}

#[test]
fn tail_slots() {
    let (_dir, path) = slots_file();
    // 12-byte records are not whole words: hex by default.
    let text = ok(roda(&[&"tail", &path]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].trim_start().starts_with("1 "), "{text}");
    assert!(lines[0].contains("v2"), "{text}");
    assert!(lines[0].contains("0400000005000000 06000000"), "{text}");
    let json = ok(roda(&[
        &"tail",
        &path,
        &"--json",
        &"--format",
        &"fields=u32,u32,u32",
    ]));
    assert_eq!(
        json,
        "{\"slot\":1,\"version\":2,\"values\":[4,5,6]}\n{\"slot\":5,\"version\":1,\"values\":[7,8,9]}\n"
    );
    // From slot 2 on.
    let text = ok(roda(&[&"tail", &path, &"--from", &"2"]));
    assert_eq!(text.lines().count(), 1, "{text}");

    // A torn slot (writer died mid-set, pid 0) is shown as torn, never as a value.
    let header = roda_store::StoreFile::open(&path).unwrap().header();
    poke(&path, header.data_offset + 5 * header.stride, 3);
    let text = ok(roda(&[&"tail", &path]));
    assert!(text.lines().nth(1).unwrap().ends_with("torn"), "{text}");
}

/// Lines of a child's stdout, read on a thread so the test can wait with a timeout.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

fn spawn(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_roda"))
        .args(args.iter().map(|a| a.as_ref()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child` and checks it never wrote to stderr.
fn stop(child: Child) {
    let err = stop_with_stderr(child);
    assert!(err.is_empty(), "{err}");
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn tail_follow_sees_a_live_writer() {
    let (_dir, path) = temp("live.roda");
    let mut journal = JournalStore::<[u64; 2]>::create(&path, 1000).unwrap();
    journal.append(&[0, 0]);
    let mut child = spawn(&[&"tail", &"-f", &path, &"--format", &"u64"]);
    let lines = line_reader(&mut child);
    // What was there already, then each new record as it is appended.
    assert_eq!(
        lines
            .recv_timeout(WAIT)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0", "0"]
    );
    for i in 1..=20u64 {
        journal.append(&[i, i * i]);
        let line = lines
            .recv_timeout(WAIT)
            .expect("the follower printed the record");
        let words: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(words, [i, i, i * i]);
    }
    // A batch arrives whole and in order.
    journal.append_slice(&[[100, 1], [101, 2], [102, 3]]);
    for seq in 21..24 {
        let line = lines.recv_timeout(WAIT).unwrap();
        assert!(line.trim_start().starts_with(&seq.to_string()), "{line}");
    }
    stop(child);
}

/// The waiter flag (header offset 140) of the journal file at `path`.
fn waiter_flag(path: &std::path::Path) -> u32 {
    let mut word = [0u8; 4];
    match std::fs::File::open(path).map(|f| f.read_exact_at(&mut word, 140)) {
        Ok(Ok(())) => u32::from_ne_bytes(word),
        _ => 0,
    }
}

/// Waits until one of `paths` shows a sleeping reader's waiter flag.
fn await_sleeper(paths: impl Fn() -> Vec<std::path::PathBuf>) {
    let start = std::time::Instant::now();
    while !paths().iter().any(|p| waiter_flag(p) != 0) {
        assert!(start.elapsed() < WAIT, "tail -f never slept on a wake word");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn tail_follow_sleeps_on_the_wake_word() {
    let (_dir, path) = temp("wake.roda");
    let mut journal = JournalStore::<[u64; 2]>::options()
        .wake(true)
        .create(&path, 100)
        .unwrap();
    journal.append(&[0, 0]);
    let mut child = spawn(&[&"tail", &"-f", &path, &"--format", &"u64"]);
    let lines = line_reader(&mut child);
    lines.recv_timeout(WAIT).unwrap();
    for i in 1..=5u64 {
        // Idle, the follower registers as a sleeper (sets the waiter flag)...
        await_sleeper(|| vec![path.clone()]);
        // ...and the append wakes it (clearing the flag) and is printed. (The flag is not
        // checked here: the woken follower may already be asleep again, flag set.)
        journal.append(&[i, i]);
        let line = lines.recv_timeout(WAIT).unwrap();
        assert!(line.trim_start().starts_with(&i.to_string()), "{line}");
    }
    stop(child);
}

#[test]
fn tail_follow_sleeps_on_segment_wake_words_across_rolls() {
    use roda_store::{Retention, SegmentedJournal};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let mut journal = SegmentedJournal::<[u64; 3]>::options()
        .wake(true)
        .retention(Retention::KeepAll)
        .create(&dir, 4)
        .unwrap();
    journal.append(&numbered(0));
    let mut child = spawn(&[&"tail", &"-f", &dir, &"-n", &"100"]);
    let lines = line_reader(&mut child);
    assert_eq!(numbered_line(&lines.recv_timeout(WAIT).unwrap()), 0);
    let files = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "roda"))
            .collect::<Vec<_>>()
    };
    // Records 1 to 12 cross three rolls; the follower sleeps before each.
    for i in 1..13 {
        await_sleeper(files);
        journal.append(&numbered(i));
        assert_eq!(numbered_line(&lines.recv_timeout(WAIT).unwrap()), i);
    }
    stop(child);
}

#[test]
fn tail_follow_sees_slot_sets() {
    let (_dir, path) = temp("live.roda");
    let mut slots = SlotStore::<u64>::create(&path, 16).unwrap();
    let mut child = spawn(&[&"tail", &"--follow", &path, &"--json"]);
    let lines = line_reader(&mut child);
    for v in 1..=5u64 {
        slots.set(3, &(v * 11));
        let line = lines.recv_timeout(WAIT).unwrap();
        assert_eq!(
            line,
            format!("{{\"slot\":3,\"version\":{v},\"values\":[{}]}}", v * 11)
        );
        // Wait until the follower has seen this version before the next set, so no
        // version is skipped (a follower shows the latest value, like any reader).
    }
    stop(child);
}

#[test]
fn closed_pipe_ends_tail_quietly() {
    let (_dir, path) = temp("big.roda");
    let mut journal = JournalStore::<u64>::create(&path, 200_000).unwrap();
    for i in 0..200_000 {
        journal.append(&i);
    }
    let mut child = spawn(&[&"tail", &path, &"--from", &"0"]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    drop(out);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn stats_with_a_bounded_count() {
    let (_dir, path) = temp("j.roda");
    let mut journal = JournalStore::<u64>::create(&path, 1_000_000).unwrap();
    journal.append_slice(&[1; 1000]);
    let text = ok(roda(&[
        &"stats",
        &path,
        &"--interval",
        &"50ms",
        &"--count",
        &"3",
    ]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("appends/s") && lines[0].contains("full in"),
        "{text}"
    );
    assert!(lines[1].contains("1,000"), "{text}");
    assert!(lines[1].contains("0.1%"), "{text}");
    assert!(lines[1].ends_with("never"), "{text}");

    // A live writer: the rate shows and the time to full is finite.
    let writer = std::thread::spawn(move || {
        for i in 0..400u64 {
            journal.append_slice(&[i; 100]);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let json = ok(roda(&[
        &"stats",
        &path,
        &"--interval=100ms",
        &"--count=2",
        &"--json",
    ]));
    writer.join().unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 2, "{json}");
    for line in lines {
        assert!(line.starts_with("{\"time_unix_nanos\":"), "{line}");
        assert!(line.contains("\"appends_per_sec\":"), "{line}");
        assert!(!line.contains("\"appends_per_sec\":0.0"), "{line}");
        assert!(!line.contains("\"seconds_to_full\":null"), "{line}");
    }

    let (_dir2, slots) = slots_file();
    let text = ok(roda(&[
        &"stats",
        &slots,
        &"--interval",
        &"10ms",
        &"--count",
        &"1",
    ]));
    assert!(text.lines().next().unwrap().contains("sets/s"), "{text}");
    assert!(text.lines().nth(1).unwrap().ends_with('-'), "{text}");
}

#[test]
fn verify_sound_files() {
    let (_dir, path) = journal_file();
    let text = ok(roda(&[&"verify", &path]));
    assert!(text.contains(": ok: journal"), "{text}");
    assert!(text.contains("25 of 100 records published"), "{text}");
    assert!(text.contains("no checksum"), "{text}");
    let json = ok(roda(&[&"verify", &path, &"--json"]));
    assert!(json.contains("\"ok\":true"), "{json}");

    let (_dir2, slots) = slots_file();
    let text = ok(roda(&[&"verify", &slots]));
    assert!(text.contains("2 of 8 slots set, none torn"), "{text}");
}

/// Exit status 1, the problem on stdout containing `needle`.
fn problem(o: Output, needle: &str) {
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        text.contains("PROBLEM") && text.contains(needle),
        "{needle:?} in {text}"
    );
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn verify_finds_the_first_problem() {
    // A torn slot left by a dead writer.
    let (_dir, path) = slots_file();
    let header = roda_store::StoreFile::open(&path).unwrap().header();
    poke(&path, header.data_offset + 6 * header.stride, 1);
    poke(&path, header.data_offset + 7 * header.stride, 1);
    problem(roda(&[&"verify", &path]), "slot 6 is torn");
    let json = stdout(&roda(&[&"verify", &path, &"--json"]));
    assert!(
        json.contains("\"ok\":false") && json.contains("slot 6 is torn"),
        "{json}"
    );
    // Flagged torn by a later writer: bit 63.
    poke(&path, header.data_offset + 6 * header.stride, (1 << 63) | 1);
    problem(roda(&[&"verify", &path]), "slot 6 is torn");

    // A write sequence past the capacity.
    let (_dir, path) = journal_file();
    poke(&path, OFF_WRITE_SEQ, 101);
    problem(
        roda(&[&"verify", &path]),
        "write sequence 101 exceeds the capacity 100",
    );
    let text = ok(roda(&[&"inspect", &path]));
    assert!(text.contains("header     INVALID"), "{text}");

    // Truncated data, a foreign file, a bad version.
    let (_dir, path) = journal_file();
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 24)
        .unwrap();
    problem(roda(&[&"verify", &path]), "is truncated");
    std::fs::write(&path, "not a store").unwrap();
    problem(roda(&[&"verify", &path]), "not a Roda file");
    let (_dir, path) = journal_file();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&9u32.to_ne_bytes(), 8)
        .unwrap();
    problem(roda(&[&"verify", &path]), "version 9 is not supported");

    // A file that cannot be read at all is no verdict: exit 2.
    fails(roda(&[&"verify", &"/nonexistent/x.roda"]), "No such file");
}

#[test]
fn bad_files_give_one_line_and_status_2() {
    let (dir, path) = temp("bad.roda");
    let commands: [&[&str]; 4] = [
        &["inspect"],
        &["tail"],
        &["tail", "-f"],
        &["stats", "--count", "1"],
    ];
    let check = |path: &Path, needle: &str| {
        for command in commands {
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
            for a in command {
                args.push(a);
            }
            args.push(&path);
            fails(roda(&args), needle);
        }
    };
    check(&path, "No such file or directory");
    // A directory without segment files is no segmented journal.
    for command in commands.iter().chain([&["verify"][..]].iter()) {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
        for a in *command {
            args.push(a);
        }
        let dir_path = dir.path();
        args.push(&dir_path);
        fails(roda(&args), "not a segmented journal directory");
    }
    std::fs::write(&path, "").unwrap();
    check(&path, "is not a Roda file");
    std::fs::write(&path, "timestamp,price\n1,2\n").unwrap();
    check(&path, "is not a Roda file");
    std::fs::write(&path, b"\x89RODA\r\n\x1a").unwrap();
    check(&path, "is truncated");

    // A file still being created: its header is written but its data area is not
    // sized yet (Roda itself only links complete files into place; other tools may not).
    let (_dir2, real) = journal_file();
    let mut header = vec![0u8; 4096];
    std::fs::File::open(&real)
        .unwrap()
        .read_exact_at(&mut header, 0)
        .unwrap();
    std::fs::write(&path, &header).unwrap();
    check(&path, "is truncated: its header needs");

    // No permission to read. Root reads anything, so this is checked only where the
    // mode actually stops this process.
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(&real, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&path).is_err() {
        check(&path, "Permission denied");
    }
}

/// A usage error as clap reports it: exit status 2, `error: ...` on stderr containing
/// `needle`, then the usage or a hint; nothing on stdout.
fn usage_fails(o: Output, needle: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{o:?}\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(err.contains("--help"), "a hint in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
}

#[test]
fn usage_errors_give_status_2() {
    let (_dir, path) = journal_file();
    // No command: the help, on stderr.
    let o = roda(&[]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains("Usage: roda <COMMAND>"),
        "{}",
        stderr(&o)
    );
    usage_fails(
        roda(&[&"frobnicate", &path]),
        "unrecognized subcommand 'frobnicate'",
    );
    usage_fails(roda(&[&"inspect"]), "<FILE>");
    usage_fails(roda(&[&"inspect", &path, &path]), "unexpected argument");
    usage_fails(
        roda(&[&"tail", &path, &"--from"]),
        "a value is required for '--from <SEQ>'",
    );
    usage_fails(
        roda(&[&"tail", &path, &"--from", &"x"]),
        "not a non-negative whole number",
    );
    usage_fails(
        roda(&[&"tail", &path, &"--format", &"u32"]),
        "invalid value 'u32' for '--format <FORMAT>'",
    );
    usage_fails(
        roda(&[&"stats", &path, &"--interval", &"soon"]),
        "--interval",
    );
    usage_fails(
        roda(&[&"stats", &path, &"--count", &"0"]),
        "must be at least 1",
    );
    usage_fails(roda(&[&"verify", &path, &"-f"]), "unexpected argument '-f'");
    usage_fails(roda(&[&"completions", &"tcsh"]), "invalid value 'tcsh'");
    // A format that does not fit the file is found once the file is open: one line.
    fails(
        roda(&[&"tail", &path, &"--format", &"fields=u64,u64,u64,u64"]),
        "the fields take 32 bytes but a record has only 24",
    );
}

#[test]
fn help_version_and_completions() {
    let help = ok(roda(&[&"help"]));
    assert!(help.contains("Usage: roda <COMMAND>"), "{help}");
    for command in ["inspect", "tail", "stats", "verify", "completions"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    assert_eq!(ok(roda(&[&"--help"])), help);
    // Per command: `roda help COMMAND` and `roda COMMAND --help` are the same text.
    let tail = ok(roda(&[&"help", &"tail"]));
    assert!(tail.contains("Usage: roda tail [OPTIONS] <FILE>"), "{tail}");
    for option in [
        "--follow",
        "--from <SEQ>",
        "--lines <N>",
        "--format <FORMAT>",
        "--json",
    ] {
        assert!(tail.contains(option), "{option} in {tail}");
    }
    assert_eq!(ok(roda(&[&"tail", &"--help"])), tail);
    let stats = ok(roda(&[&"help", &"stats"]));
    assert!(stats.contains("--interval <DURATION>"), "{stats}");
    assert!(stats.contains("[default: 1s]"), "{stats}");
    assert!(ok(roda(&[&"--version"])).starts_with("roda "));
    assert_eq!(ok(roda(&[&"version"])), ok(roda(&[&"--version"])));
    // Completion scripts name every command.
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(roda(&[&"completions", &shell]));
        for command in ["inspect", "tail", "stats", "verify"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    let bash = ok(roda(&[&"completions", &"bash"]));
    assert!(bash.contains("complete -F _roda"), "{bash}");
}

#[test]
fn inspect_segment_file_and_directory() {
    use roda_store::{Retention, SegmentedJournal};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("segmented");
    let mut journal =
        SegmentedJournal::<[u64; 3]>::create(&dir, 10, Retention::KeepLast(3)).unwrap();
    for i in 0..45 {
        journal.append(&tick(i));
    }
    let segment = dir.join("00000000000000000040.roda");
    let text = ok(roda(&[&"inspect", &segment]));
    for needle in [
        "kind       journal (format version 1)",
        "length     5 records (50.0% full)",
        "segment    first sequence 40 (records 40..45), retention KeepLast(3)",
        "header     valid",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    let json = ok(roda(&[&"inspect", &"--json", &segment]));
    for needle in [
        r#""segment":true"#,
        r#""first_sequence":40"#,
        r#""retention":"KeepLast(3)""#,
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    let text = ok(roda(&[&"inspect", &dir]));
    for needle in [
        "segmented journal, KeepLast(3), 3 segment files of 10 records (24 bytes each)",
        "records 20..45 retained (25 records)",
        "00000000000000000020.roda  first 20, 10 records",
        "00000000000000000040.roda  first 40, 5 records",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    let json = ok(roda(&[&"inspect", &"--json", &dir]));
    assert!(json.contains(r#""oldest":20,"published":45"#), "{json}");
    // A plain journal says so; an empty directory is an error, not a panic.
    let (_d, plain) = journal_file();
    assert!(ok(roda(&[&"inspect", &plain])).contains("segment    no (a plain store)"));
    fails(roda(&[&"inspect", &tmp.path()]), "no segment files");
    // tail of a segment file is tail of its journal.
    let text = ok(roda(&[&"tail", &segment, &"-n", &"30"]));
    let first: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(first.len(), 25, "{text}");
    assert_eq!((first[0], first[24]), ("20", "44"), "{text}");
}

/// A record that says its own sequence three ways: a copy from the wrong generation or
/// torn by a recycle cannot pass for another.
fn numbered(i: u64) -> [u64; 3] {
    [i, !i, i.wrapping_mul(3)]
}

/// The sequence of a `tail` line of `numbered` records (default u64 format), checking
/// that the record is the one of that sequence.
fn numbered_line(line: &str) -> u64 {
    let words: Vec<u64> = line
        .split_whitespace()
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{line}")))
        .collect();
    assert_eq!(words.len(), 4, "{line}");
    assert_eq!(
        words[1..],
        numbered(words[0]),
        "a torn or foreign record: {line}"
    );
    words[0]
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.roda"))
}

/// A `KeepLast(3)` ring of 8-record segments after 1,003 appends (125 rolls): it retains
/// segments 984, 992 (full) and 1000 (3 records).
fn keep_last_dir() -> (
    tempfile::TempDir,
    PathBuf,
    roda_store::SegmentedJournal<[u64; 3]>,
) {
    use roda_store::{Retention, SegmentedJournal};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ring");
    let mut journal =
        SegmentedJournal::<[u64; 3]>::create(&dir, 8, Retention::KeepLast(3)).unwrap();
    for i in 0..1003 {
        journal.append(&numbered(i));
    }
    (tmp, dir, journal)
}

#[test]
fn tail_segmented_directory() {
    let (_tmp, dir, journal) = keep_last_dir();
    let seqs = |text: &str| text.lines().map(numbered_line).collect::<Vec<u64>>();
    // Exactly the retained tail, whatever -n asks beyond it.
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &dir, &"-n", &"1000"]))),
        (984..1003).collect::<Vec<_>>()
    );
    // Default: the last 10; -n N: the last N, across segments.
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &dir]))),
        (993..1003).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &dir, &"-n", &"12"]))),
        (991..1003).collect::<Vec<_>>()
    );
    assert_eq!(ok(roda(&[&"tail", &dir, &"-n", &"0"])), "");
    // The same from one of its segment files.
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &segment_path(&dir, 992), &"-n", &"4"]))),
        (999..1003).collect::<Vec<_>>()
    );
    // --json and --format as for a journal.
    let json = ok(roda(&[
        &"tail",
        &dir,
        &"-n",
        &"2",
        &"--json",
        &"--format",
        &"fields=u64,u64",
    ]));
    assert_eq!(
        json,
        format!(
            "{{\"seq\":1001,\"values\":[1001,{}]}}\n{{\"seq\":1002,\"values\":[1002,{}]}}\n",
            !1001u64, !1002u64
        )
    );
    // --from inside the retained records; past the end: nothing.
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &dir, &"--from", &"990"]))),
        (990..1003).collect::<Vec<_>>()
    );
    assert_eq!(ok(roda(&[&"tail", &dir, &"--from", &"5000"])), "");
    // --from records recycled long ago: said once on stderr, then the retained ones.
    let o = roda(&[&"tail", &dir, &"--from", &"0"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        stderr(&o),
        "roda: lagged: 984 records recycled before they could be read; continuing at 984\n"
    );
    assert_eq!(seqs(&stdout(&o)), (984..1003).collect::<Vec<_>>());
    drop(journal);
    // A closed writer changes nothing.
    assert_eq!(
        seqs(&ok(roda(&[&"tail", &dir, &"-n", &"3"]))),
        vec![1000, 1001, 1002]
    );
    // A wrong --format is a usage error, as for a journal.
    fails(
        roda(&[&"tail", &dir, &"--format", &"fields=u64,u64,u64,u64"]),
        "the fields take 32 bytes but a record has only 24",
    );
}

/// Kills `child` and returns what it wrote to stderr.
fn stop_with_stderr(mut child: Child) -> String {
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn tail_follow_segmented_across_rolls() {
    use roda_store::{Retention, SegmentedJournal};
    for retention in [Retention::KeepLast(4), Retention::KeepAll] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("live");
        let mut journal = SegmentedJournal::<[u64; 3]>::create(&dir, 16, retention).unwrap();
        for i in 0..5 {
            journal.append(&numbered(i));
        }
        let mut child = spawn(&[&"tail", &"-f", &dir, &"-n", &"100"]);
        let lines = line_reader(&mut child);
        // Read stderr as it comes: a follower that lags often must never block on a
        // full pipe.
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut err = String::new();
            stderr.read_to_string(&mut err).unwrap();
            err
        });
        let next_seq = |what: &str| {
            let line = lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("{retention:?}: no line for {what}: {e}"));
            numbered_line(&line)
        };
        for i in 0..5 {
            assert_eq!(next_seq("the records already there"), i);
        }
        // In step with the writer, across 6 rolls (new files with KeepAll, recycled and
        // renamed ones with KeepLast): every record, in order.
        for i in 5..100 {
            journal.append(&numbered(i));
            assert_eq!(next_seq("a new record"), i);
        }
        // A burst the follower may not keep up with: whatever it prints is intact and in
        // order, and every record it skips is accounted for on stderr.
        const END: u64 = 20_000;
        let writer = std::thread::spawn(move || {
            for i in 100..END {
                journal.append(&numbered(i));
                if i % 1024 == 0 {
                    // Bursts with pauses: the follower catches up at times, and races
                    // recycles at others.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            journal
        });
        let mut printed = Vec::new();
        let mut last = 99;
        while last != END - 1 {
            let seq = next_seq("the burst");
            assert!(seq > last, "{retention:?}: {seq} after {last}");
            printed.push(seq);
            last = seq;
        }
        let journal = writer.join().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let err = stderr.join().unwrap();
        assert!(!err.contains("panicked"), "{err}");
        // Gaps in stdout, and what stderr says was skipped, must match exactly: one line
        // per gap, however many segments it spans (the follower may skip to the oldest
        // retained segment and find it recycled too before it reads it).
        let mut gaps = Vec::new();
        let mut previous = 99;
        for &seq in &printed {
            if seq != previous + 1 {
                gaps.push((seq - previous - 1, seq));
            }
            previous = seq;
        }
        let said: Vec<(u64, u64)> = err
            .lines()
            .map(|line| {
                let rest = line
                    .strip_prefix("roda: lagged: ")
                    .unwrap_or_else(|| panic!("unexpected stderr line {line:?}"));
                let (n, rest) = rest
                    .split_once(" records recycled before they could be read; continuing at ")
                    .unwrap_or_else(|| panic!("{line:?}"));
                (n.parse().unwrap(), rest.parse().unwrap())
            })
            .collect();
        assert_eq!(gaps, said, "{retention:?}\n{err}");
        if retention == Retention::KeepAll {
            // Nothing is ever recycled in an archive.
            assert!(gaps.is_empty(), "{err}");
        }
        drop(journal);
    }
}

#[test]
fn stats_and_verify_segmented_directory() {
    let (_tmp, dir, journal) = keep_last_dir();
    let pid = std::process::id();
    let text = ok(roda(&[
        &"stats",
        &dir,
        &"--interval",
        &"10ms",
        &"--count",
        &"2",
    ]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].ends_with("segmented journal, KeepLast(3), segments of 8 records of 24 bytes"),
        "{text}"
    );
    for needle in [
        "oldest",
        "newest",
        "retained",
        "appends/s",
        "files",
        "writer",
    ] {
        assert!(lines[1].contains(needle), "{needle} in {text}");
    }
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        row[1..],
        [
            "984",
            "1,002",
            "19",
            "0",
            "3",
            "pid",
            &pid.to_string(),
            "(running)"
        ],
        "{text}"
    );
    let json = ok(roda(&[
        &"stats",
        &dir,
        &"--interval=10ms",
        &"--count=1",
        &"--json",
    ]));
    for needle in [
        r#""oldest":984,"newest":1002,"published":1003,"retained":19,"appends_per_sec":0.0"#,
        r#""segment_files":3,"segment_records":8,"retention":"KeepLast(3)""#,
        &format!(r#""writer_pid":{pid},"writer_alive":true"#),
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }

    let text = ok(roda(&[&"verify", &dir]));
    assert!(
        text.contains(": ok: segmented journal, KeepLast(3), 3 segment files of 8 records"),
        "{text}"
    );
    assert!(
        text.contains("records 984..1,003 retained in an unbroken run of 3 segments"),
        "{text}"
    );
    let json = ok(roda(&[&"verify", &dir, &"--json"]));
    assert!(
        json.contains(r#""ok":true,"kind":"segmented journal""#),
        "{json}"
    );
    drop(journal);
    let json = ok(roda(&[
        &"stats",
        &dir,
        &"--interval=10ms",
        &"--count=1",
        &"--json",
    ]));
    assert!(
        json.contains(r#""writer_pid":0,"writer_alive":false"#),
        "{json}"
    );

    // A segment deleted from the middle: a gap, which tail skips and says so.
    std::fs::remove_file(segment_path(&dir, 992)).unwrap();
    problem(roda(&[&"verify", &dir]), "records 992..1000 are missing");
    let json = stdout(&roda(&[&"verify", &dir, &"--json"]));
    assert!(json.contains(r#""ok":false"#), "{json}");
    let o = roda(&[&"tail", &dir, &"-n", &"100"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        stderr(&o),
        "roda: lagged: 8 records recycled before they could be read; continuing at 1000\n"
    );
    let seqs: Vec<u64> = stdout(&o).lines().map(numbered_line).collect();
    assert_eq!(seqs, (984..992).chain(1000..1003).collect::<Vec<_>>());

    // A damaged header: verify names the file (exit 1); the others refuse (exit 2).
    let (_tmp, dir, journal) = keep_last_dir();
    drop(journal);
    let bad = segment_path(&dir, 992);
    OpenOptions::new()
        .write(true)
        .open(&bad)
        .unwrap()
        .write_all_at(&9u32.to_ne_bytes(), 8)
        .unwrap();
    problem(roda(&[&"verify", &dir]), "00000000000000000992.roda");
    problem(roda(&[&"verify", &dir]), "version 9 is not supported");
    fails(roda(&[&"tail", &dir]), "version 9 is not supported");
    fails(
        roda(&[&"stats", &dir, &"--count", &"1"]),
        "version 9 is not supported",
    );

    // A damaged write sequence in the oldest segment.
    let (_tmp, dir, journal) = keep_last_dir();
    drop(journal);
    poke(&segment_path(&dir, 984), OFF_WRITE_SEQ, 5);
    problem(
        roda(&[&"verify", &dir]),
        "holds 5 of 8 records but a newer segment exists",
    );
    poke(&segment_path(&dir, 984), OFF_WRITE_SEQ, 9);
    problem(
        roda(&[&"verify", &dir]),
        "write sequence 9 exceeds the segment size 8",
    );

    // A KeepAll archive whose oldest files were deleted is still an unbroken run.
    use roda_store::{Retention, SegmentedJournal};
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let mut journal =
        SegmentedJournal::<[u64; 3]>::create(&archive, 8, Retention::KeepAll).unwrap();
    for i in 0..50 {
        journal.append(&numbered(i));
    }
    drop(journal);
    let text = ok(roda(&[&"verify", &archive]));
    assert!(
        text.contains("records 0..50 retained in an unbroken run of 7 segments"),
        "{text}"
    );
    std::fs::remove_file(segment_path(&archive, 0)).unwrap();
    std::fs::remove_file(segment_path(&archive, 8)).unwrap();
    let text = ok(roda(&[&"verify", &archive]));
    assert!(
        text.contains("records 16..50 retained in an unbroken run of 5 segments"),
        "{text}"
    );
    let seqs: Vec<u64> = ok(roda(&[&"tail", &archive, &"-n", &"1000"]))
        .lines()
        .map(numbered_line)
        .collect();
    assert_eq!(seqs, (16..50).collect::<Vec<_>>());
}

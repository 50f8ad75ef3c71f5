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
fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
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
    // A directory: `inspect` summarises segmented journal directories only.
    for command in &commands[1..] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
        for a in *command {
            args.push(a);
        }
        let dir_path = dir.path();
        args.push(&dir_path);
        fails(roda(&args), "Is a directory");
    }
    fails(
        roda(&[&"inspect", &dir.path()]),
        "not a segmented journal directory",
    );
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

#[test]
fn usage_errors_give_one_line_and_status_2() {
    let (_dir, path) = journal_file();
    fails(roda(&[]), "no command given");
    fails(
        roda(&[&"frobnicate", &path]),
        "unknown command 'frobnicate'",
    );
    fails(roda(&[&"inspect"]), "inspect needs a FILE");
    fails(roda(&[&"tail", &path, &"--from"]), "--from needs");
    fails(
        roda(&[&"tail", &path, &"--from", &"x"]),
        "not a non-negative whole number",
    );
    fails(roda(&[&"tail", &path, &"--format", &"u32"]), "--format");
    fails(
        roda(&[&"tail", &path, &"--format", &"fields=u64,u64,u64,u64"]),
        "the fields take 32 bytes but a record has only 24",
    );
    fails(
        roda(&[&"stats", &path, &"--interval", &"soon"]),
        "--interval",
    );
    fails(roda(&[&"verify", &path, &"-f"]), "unknown option '-f'");
    let help = ok(roda(&[&"help"]));
    assert!(help.contains("usage: roda <command> FILE"), "{help}");
    assert!(ok(roda(&[&"--version"])).starts_with("roda "));
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
    // tail reads plain journals: a segment is refused with a clear message, no panic.
    fails(roda(&[&"tail", &segment]), "segment of a segmented journal");
}

//! `roda bridge export` against a real `nats-server -js` (the harness of roda-bridge's
//! tests): the exported subject imports into an equal journal; usage and connection
//! errors exit 2.
#![cfg(feature = "bridge")]

#[path = "../../roda-bridge/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::{rec, NatsServer, Rec};
use roda_bridge::{ImportOptions, Importer, JournalSink};
use roda_store::{JournalReader, JournalStore, Retention, SegmentedJournal};

fn roda() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roda"))
}

#[test]
fn roda_bridge_export_publishes_a_journal_and_a_directory_exactly_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let mut journal = JournalStore::<Rec>::create(&src, 100_000).unwrap();
    for i in 0..50_000 {
        journal.append(&rec(i));
    }
    let export = |path: &std::path::Path, stream: &str| {
        roda()
            .args(["bridge", "export"])
            .arg(path)
            .args(["--nats", &server.url, "--stream", stream, "--subject"])
            .arg(format!("cli.{stream}"))
            .args(["--batch-bytes", "16384"])
            .output()
            .unwrap()
    };
    let out = export(&src, "PLAIN");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("exported records 0..50000"), "{text}");
    // Again after more appends: it resumes after the subject's last batch.
    for i in 50_000..60_000 {
        journal.append(&rec(i));
    }
    let out = export(&src, "PLAIN");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("exported records 50000..60000"), "{text}");

    let dst = tmp.path().join("dst.roda");
    let mut sink = JournalSink::new(JournalStore::<Rec>::create(&dst, 100_000).unwrap());
    let report = Importer::new(
        server.connection(),
        ImportOptions::new("PLAIN", "cli.PLAIN"),
    )
    .run(&mut sink)
    .unwrap();
    assert_eq!((report.end, report.duplicates), (60_000, 0));
    drop(sink);
    let copy = JournalReader::<Rec>::open(&dst).unwrap();
    for i in 0..60_000 {
        assert_eq!(copy.get_at(i), Some(&rec(i)));
    }

    // A segmented directory.
    let dir = tmp.path().join("ring");
    let mut ring = SegmentedJournal::<Rec>::create(&dir, 1000, Retention::KeepAll).unwrap();
    for i in 0..5500 {
        ring.append(&rec(i));
    }
    let out = export(&dir, "RING");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported records 0..5500"));
}

#[test]
fn roda_bridge_export_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    JournalStore::<Rec>::create(&src, 10).unwrap();
    // Usage: no stream.
    let out = roda()
        .args(["bridge", "export"])
        .arg(&src)
        .args(["--subject", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // No server there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = roda()
        .args(["bridge", "export"])
        .arg(&src)
        .args(["--stream", "S", "--subject", "s", "--nats"])
        .arg(format!("nats://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nats-server -js"), "{err}");
    // Not a journal.
    let out = roda()
        .args(["bridge", "export"])
        .arg(tmp.path().join("missing.roda"))
        .args(["--stream", "S", "--subject", "s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Exports `path` (a journal of any type) to `cli.{stream}` through the library.
fn export_with_library(server: &NatsServer, path: &std::path::Path, stream: &str) -> u64 {
    let mut source = roda_bridge::FileSource::open(path).unwrap();
    let mut options = roda_bridge::ExportOptions::new(stream, format!("cli.{stream}"));
    options.max_batch_bytes = 4096;
    roda_bridge::Exporter::new(server.connection(), options)
        .run(&mut source)
        .unwrap()
        .end
}

fn import(
    server: &NatsServer,
    out: &std::path::Path,
    stream: &str,
    extra: &[&str],
) -> std::process::Output {
    roda()
        .args(["bridge", "import"])
        .arg(out)
        .args(["--nats", &server.url, "--stream", stream, "--subject"])
        .arg(format!("cli.{stream}"))
        .args(extra)
        .output()
        .unwrap()
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn roda_bridge_import_copies_a_subject_into_a_new_directory_or_file_with_the_source_id() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let mut journal = JournalStore::<Rec>::create(&src, 100_000).unwrap();
    let source_id = journal.header().journal_id;
    for i in 0..30_000 {
        journal.append(&rec(i));
    }
    assert_eq!(export_with_library(&server, &src, "IMP"), 30_000);

    // A missing OUT becomes a segmented directory with the source's journal id.
    let dir = tmp.path().join("copy");
    let out = import(&server, &dir, "IMP", &["--segment-records", "4096"]);
    let text = stdout_of(&out);
    assert!(text.contains("imported records 0..30000"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty()
            || String::from_utf8_lossy(&out.stderr).contains("records/s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = SegmentedJournal::<Rec>::open(&dir).unwrap();
    assert_eq!((copy.len(), copy.journal_id()), (30_000, source_id));
    assert_eq!(copy.segment_records(), 4096);
    drop(copy);
    let mut follower = roda_store::SegmentedFollower::<Rec>::open(&dir).unwrap();
    for i in 0..30_000 {
        assert_eq!(follower.next().unwrap(), Some(rec(i)), "record {i}");
    }
    assert_eq!(follower.next().unwrap(), None);
    drop(follower);

    // Again: nothing new, nothing twice. Then more records: it resumes after OUT's end.
    let text = stdout_of(&import(&server, &dir, "IMP", &[]));
    assert!(text.contains("imported records 30000..30000"), "{text}");
    for i in 30_000..45_000 {
        journal.append(&rec(i));
    }
    assert_eq!(export_with_library(&server, &src, "IMP"), 45_000);
    let text = stdout_of(&import(&server, &dir, "IMP", &[]));
    assert!(text.contains("imported records 30000..45000"), "{text}");
    assert!(text.contains("0 duplicate records dropped"), "{text}");
    let mut follower = roda_store::SegmentedFollower::<Rec>::open(&dir).unwrap();
    for i in 0..45_000 {
        assert_eq!(follower.next().unwrap(), Some(rec(i)), "record {i}");
    }
    assert_eq!(follower.next().unwrap(), None);

    // A plain file with --capacity, its journal id set by --journal-id.
    let file = tmp.path().join("copy.roda");
    let text = stdout_of(&import(
        &server,
        &file,
        "IMP",
        &["--capacity", "50000", "--journal-id", "abc"],
    ));
    assert!(text.contains("imported records 0..45000"), "{text}");
    let copy = JournalReader::<Rec>::open(&file).unwrap();
    assert_eq!(copy.header().journal_id, 0xabc);
    for i in 0..45_000 {
        assert_eq!(copy.get_at(i), Some(&rec(i)), "record {i}");
    }
    assert_eq!(copy.published(), 45_000);
    // --journal-id names only a journal the import creates.
    let out = import(&server, &file, "IMP", &["--journal-id", "abd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("journal id"));
}

#[test]
fn roda_bridge_import_takes_any_record_type_and_refuses_a_mismatched_out() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Records of 5 bytes, alignment 1: a type the command cannot know.
    let src = tmp.path().join("odd");
    let mut ring = SegmentedJournal::<[u8; 5]>::create(&src, 1000, Retention::KeepAll).unwrap();
    let odd = |i: u64| {
        let b = i.to_le_bytes();
        [b[0], b[1], b[2], b[3], 0x5a]
    };
    for i in 0..7_000 {
        ring.append(&odd(i));
    }
    assert_eq!(export_with_library(&server, &src, "ODD"), 7_000);
    let dst = tmp.path().join("odd-copy");
    let text = stdout_of(&import(
        &server,
        &dst,
        "ODD",
        &["--segment-records", "1000"],
    ));
    assert!(text.contains("imported records 0..7000"), "{text}");
    let mut follower = roda_store::SegmentedFollower::<[u8; 5]>::open(&dst).unwrap();
    for i in 0..7_000 {
        assert_eq!(follower.next().unwrap(), Some(odd(i)), "record {i}");
    }
    let header = roda_store::StoreFile::open(dst.join("00000000000000000000.roda"))
        .unwrap()
        .header();
    assert_eq!((header.record_size, header.record_align), (5, 1));
    assert_eq!(header.journal_id, ring.journal_id());

    // An existing OUT of another record size: exit 2, naming the field.
    let other = tmp.path().join("other.roda");
    drop(JournalStore::<[u8; 6]>::create(&other, 10_000).unwrap());
    let out = import(&server, &other, "ODD", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record_size"), "{err}");
    // A plain file cannot start past record 0... (this subject starts at 0: fine), and a
    // segment size that does not divide the first record is refused before anything is
    // created; an empty subject imports nothing.
    let out = import(&server, &tmp.path().join("empty"), "EMPTY", &[]);
    assert_eq!(out.status.code(), Some(2), "a missing stream is an error");
    assert!(!tmp.path().join("empty").exists());
}

#[test]
fn roda_bridge_import_follow_keeps_importing_until_stopped() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let mut journal = JournalStore::<Rec>::create(&src, 100_000).unwrap();
    for i in 0..1_000 {
        journal.append(&rec(i));
    }
    export_with_library(&server, &src, "FOL");
    let dst = tmp.path().join("follow");
    let mut child = roda()
        .args(["bridge", "import", "-f"])
        .arg(&dst)
        .args([
            "--nats",
            &server.url,
            "--stream",
            "FOL",
            "--subject",
            "cli.FOL",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for i in 1_000..20_000 {
        journal.append(&rec(i));
    }
    export_with_library(&server, &src, "FOL");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let imported = loop {
        let n = roda_store::SegmentedFollower::<Rec>::open(&dst)
            .map(|mut f| {
                let mut n = 0;
                while let Ok(Some(r)) = f.next() {
                    assert_eq!(r, rec(n));
                    n += 1;
                }
                n
            })
            .unwrap_or(0);
        if n == 20_000 || std::time::Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(child.try_wait().unwrap().is_none(), "--follow exited");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    assert_eq!(imported, 20_000);
}

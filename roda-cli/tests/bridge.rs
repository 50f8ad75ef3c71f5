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

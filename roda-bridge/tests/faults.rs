//! Fault tests against a real `nats-server -js`: the exporter and the importer are
//! SIGKILLed at random moments (each in a child process, this test binary re-run on its
//! ignored entry point), the server is restarted mid-stream; the copy must equal the
//! source, every sequence once, byte for byte.

mod common;
mod jetstream;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{rec, NatsServer, Rec};
use jetstream::with_jetstream;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use roda_bridge::{
    BridgeError, ExportOptions, ExportReport, Exporter, ImportOptions, ImportReport, Importer,
    JournalSink, JournalSource,
};
use roda_store::{JournalReader, JournalStore};

const CAPACITY: usize = 8_000_000;
const STREAM: &str = "FAULTS";
const SUBJECT: &str = "roda.faults";
const JOURNAL_ID: u64 = 0xfa_u64 << 32 | 0x17;

fn export_options() -> ExportOptions {
    let mut o = ExportOptions::new(STREAM, SUBJECT);
    o.journal_id = Some(JOURNAL_ID);
    // Small batches: many messages, so kills land between and inside publishes.
    o.max_batch_bytes = 8 << 10;
    o.max_in_flight = 16;
    o.ack_timeout = Duration::from_secs(2);
    o
}

fn import_options(position: &Path) -> ImportOptions {
    let mut o = ImportOptions::new(STREAM, SUBJECT);
    o.position_file = Some(position.into());
    o.pull_batch = 32;
    o
}

/// The child process: `RODA_BRIDGE_CHILD=export|import`, following until killed (or,
/// with `RODA_BRIDGE_FOLLOW=0`, until done).
#[test]
#[ignore = "entry point of the fault tests' child processes"]
fn fault_child_entry() {
    let Ok(role) = std::env::var("RODA_BRIDGE_CHILD") else {
        return;
    };
    let url = std::env::var("RODA_BRIDGE_URL").unwrap();
    let path = PathBuf::from(std::env::var("RODA_BRIDGE_PATH").unwrap());
    let follow = std::env::var("RODA_BRIDGE_FOLLOW").as_deref() != Ok("0");
    let connection = roda_bridge::Connection::new(url);
    match role.as_str() {
        "export" => {
            let mut o = export_options();
            o.follow = follow;
            let mut source = JournalSource::<Rec>::open(&path).unwrap();
            let report = Exporter::new(connection, o).run(&mut source).unwrap();
            println!("exported {report:?}");
        }
        "import" => {
            let mut o = import_options(&path.with_extension("position"));
            o.follow = follow;
            let journal = JournalStore::<Rec>::open_or_create(&path, CAPACITY).unwrap();
            let mut sink = JournalSink::new(journal);
            let report = Importer::new(connection, o).run(&mut sink).unwrap();
            println!("imported {report:?}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn child(server: &NatsServer, role: &str, path: &Path, follow: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "fault_child_entry", "--nocapture"])
        .env("RODA_BRIDGE_CHILD", role)
        .env("RODA_BRIDGE_URL", &server.url)
        .env("RODA_BRIDGE_PATH", path)
        .env("RODA_BRIDGE_FOLLOW", if follow { "1" } else { "0" })
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// xorshift: kill moments that differ from run to run (the seed is printed).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("kill schedule seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Kills `child` after a random 20..200 ms; returns whether it was still running (a
/// kill mid-stream).
fn kill_later(mut child: Child, rng: &mut Rng) -> bool {
    std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
    let running = child.try_wait().unwrap().is_none();
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let status = child.wait().unwrap();
    assert!(running || status.success(), "child failed: {status}");
    running
}

/// Appends records to the source journal at about `per_ms` records a millisecond
/// until stopped; returns how many.
fn writer(path: PathBuf, per_ms: u64, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    let mut journal = JournalStore::<Rec>::open_or_create(path, CAPACITY).unwrap();
    std::thread::spawn(move || {
        let mut i = journal.len() as u64;
        while !stop.load(Ordering::Relaxed) && (i as usize) < CAPACITY - 10_000 {
            let batch: Vec<Rec> = (i..i + per_ms).map(rec).collect();
            journal.append_slice(&batch);
            i += per_ms;
            std::thread::sleep(Duration::from_millis(1));
        }
        i
    })
}

fn follow_export(
    server: &NatsServer,
    src: &Path,
    stop: Arc<AtomicBool>,
) -> JoinHandle<roda_bridge::Result<ExportReport>> {
    let mut o = export_options();
    o.follow = true;
    o.stop = Some(stop);
    let connection = server.connection();
    let mut source = JournalSource::<Rec>::open(src).unwrap();
    std::thread::spawn(move || Exporter::new(connection, o).run(&mut source))
}

fn follow_import(
    server: &NatsServer,
    dst: &Path,
    stop: Arc<AtomicBool>,
) -> JoinHandle<roda_bridge::Result<ImportReport>> {
    let mut o = import_options(&dst.with_extension("position"));
    o.follow = true;
    o.stop = Some(stop);
    let connection = server.connection();
    let dst = dst.to_path_buf();
    std::thread::spawn(move || {
        let mut sink =
            JournalSink::new(JournalStore::<Rec>::open_or_create(&dst, CAPACITY).unwrap());
        loop {
            match Importer::new(connection.clone(), o.clone()).run(&mut sink) {
                // The exporter creates the stream.
                Err(BridgeError::Config(msg)) if msg.contains("does not exist") => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => return other,
            }
        }
    })
}

/// The journal at `dst` equals `src` byte for byte, `n` records, and the subject's
/// batches cover 0..n each sequence once.
fn assert_same(server: &NatsServer, src: &Path, dst: &Path, n: u64) {
    let a = JournalReader::<Rec>::open(src).unwrap();
    let b = JournalReader::<Rec>::open(dst).unwrap();
    assert_eq!((a.published(), b.published()), (n, n));
    for i in 0..n {
        let (x, y) = (a.get_at(i).unwrap(), b.get_at(i).unwrap());
        assert!(
            x == y && *x == rec(i),
            "record {i}: source {x:?}, copy {y:?}"
        );
    }
    let batches = stream_batches(server);
    let mut next = 0;
    for &(first, count) in &batches {
        assert_eq!(
            first, next,
            "the subject's batches overlap or leave a gap at {next}"
        );
        next = first + count;
    }
    assert_eq!(next, n);
    println!(
        "{n} records in {} batches, each sequence once",
        batches.len()
    );
}

fn stream_batches(server: &NatsServer) -> Vec<(u64, u64)> {
    with_jetstream(server, |js| async move {
        use futures_util::StreamExt;
        let stream = js.get_stream(STREAM).await.unwrap();
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .unwrap();
        let total = stream.get_info().await.unwrap().state.messages as usize;
        let mut messages = consumer.messages().await.unwrap();
        let mut out = Vec::with_capacity(total);
        while out.len() < total {
            let m = messages.next().await.unwrap().unwrap();
            let h = roda_bridge::BatchHeader::from_headers(m.headers.as_ref(), m.payload.len())
                .unwrap();
            out.push((h.first, h.count));
        }
        out
    })
}

#[test]
fn exporter_sigkilled_20_times_exports_every_record_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = writer(src.clone(), 300, stop_writer.clone());
    let mut rng = Rng::new();
    let mut mid_stream = 0;
    for _ in 0..60 {
        if mid_stream == 20 {
            break;
        }
        mid_stream += kill_later(child(&server, "export", &src, true), &mut rng) as usize;
    }
    assert_eq!(mid_stream, 20, "the exporter finished before most kills");
    stop_writer.store(true, Ordering::Relaxed);
    let n = writer.join().unwrap();
    // The last run exports the rest and exits.
    let status = child(&server, "export", &src, false).wait().unwrap();
    assert!(status.success());
    let dst = tmp.path().join("dst.roda");
    let mut sink = JournalSink::new(JournalStore::<Rec>::create(&dst, CAPACITY).unwrap());
    let report = Importer::new(server.connection(), ImportOptions::new(STREAM, SUBJECT))
        .run(&mut sink)
        .unwrap();
    assert_eq!(report.duplicates, 0);
    drop(sink);
    assert_same(&server, &src, &dst, n);
}

#[test]
fn importer_sigkilled_20_times_imports_every_record_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let dst = tmp.path().join("dst.roda");
    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop_export = Arc::new(AtomicBool::new(false));
    let writer = writer(src.clone(), 300, stop_writer.clone());
    let exporter = follow_export(&server, &src, stop_export.clone());
    let mut rng = Rng::new();
    let mut mid_stream = 0;
    for _ in 0..60 {
        if mid_stream == 20 {
            break;
        }
        mid_stream += kill_later(child(&server, "import", &dst, true), &mut rng) as usize;
    }
    assert_eq!(mid_stream, 20, "the importer finished before most kills");
    stop_writer.store(true, Ordering::Relaxed);
    let n = writer.join().unwrap();
    stop_export.store(true, Ordering::Relaxed);
    assert_eq!(exporter.join().unwrap().unwrap().end, n);
    let status = child(&server, "import", &dst, false).wait().unwrap();
    assert!(status.success());
    assert_same(&server, &src, &dst, n);
}

/// Runs a writer, a following exporter and a following importer while `fault` hits the
/// server `times` times; returns (records, export report, import result).
fn under_server_faults(
    server: &mut NatsServer,
    tmp: &Path,
    times: usize,
    fault: impl Fn(&mut NatsServer),
) -> (
    u64,
    roda_bridge::Result<ExportReport>,
    roda_bridge::Result<ImportReport>,
) {
    let src = tmp.join("src.roda");
    let dst = tmp.join("dst.roda");
    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop_export = Arc::new(AtomicBool::new(false));
    let stop_import = Arc::new(AtomicBool::new(false));
    let writer = writer(src.clone(), 100, stop_writer.clone());
    let exporter = follow_export(server, &src, stop_export.clone());
    let importer = follow_import(server, &dst, stop_import.clone());
    for round in 0..times {
        std::thread::sleep(Duration::from_millis(600));
        let before = JournalReader::<Rec>::open(&dst).map_or(0, |r| r.published());
        println!("fault {round}: the copy holds {before} records");
        fault(server);
        std::thread::sleep(Duration::from_millis(200));
        server.restart();
    }
    std::thread::sleep(Duration::from_millis(600));
    stop_writer.store(true, Ordering::Relaxed);
    let n = writer.join().unwrap();
    stop_export.store(true, Ordering::Relaxed);
    let export = exporter.join().unwrap();
    if export.is_ok() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !importer.is_finished()
            && JournalReader::<Rec>::open(&dst).map_or(0, |r| r.published()) < n
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop_import.store(true, Ordering::Relaxed);
    let import = importer.join().unwrap();
    (n, export, import)
}

#[test]
fn server_restarted_3_times_mid_stream_loses_and_duplicates_nothing() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (n, export, import) = under_server_faults(&mut server, tmp.path(), 3, |s| s.stop());
    let export = export.unwrap();
    let import = import.unwrap();
    println!("export {export:?}\nimport {import:?}");
    assert_eq!((export.end, import.end, export.lost_by_server), (n, n, 0));
    // Whether a restart forced a rewind depends on timing (publishes buffered by the
    // client during the restart are often acknowledged after it): reported, not required.
    println!("exporter rewinds: {}", export.rewinds);
    assert_same(
        &server,
        &tmp.path().join("src.roda"),
        &tmp.path().join("dst.roda"),
        n,
    );
}

/// A single server killed with SIGKILL may lose what it acknowledged but had not
/// written to its files yet (JetStream syncs to disk every 2 minutes by default and
/// acknowledges before). This test reports what it sees instead of hiding it: the
/// exporter re-exports acknowledged records the server lost (`lost_by_server`), and
/// the importer fails on a gap rather than skip one.
#[test]
fn server_sigkill_losses_are_reported_never_hidden() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (n, export, import) = under_server_faults(&mut server, tmp.path(), 2, |s| s.kill());
    println!("SIGKILL: export {export:?}\nSIGKILL: import {import:?}");
    let export = export.expect("the exporter recovers from a killed server");
    if export.lost_by_server > 0 {
        println!(
            "SIGKILL: the server lost {} acknowledged records; the exporter sent them again",
            export.lost_by_server
        );
    }
    let dst = tmp.path().join("dst.roda");
    match import {
        Ok(import) => {
            assert_eq!((export.end, import.end), (n, n));
            assert_same(&server, &tmp.path().join("src.roda"), &dst, n);
        }
        Err(e @ BridgeError::Gap { .. }) => {
            println!("SIGKILL: the importer refused a gap: {e}");
            // What it imported before the gap is intact.
            let a = JournalReader::<Rec>::open(tmp.path().join("src.roda")).unwrap();
            let b = JournalReader::<Rec>::open(&dst).unwrap();
            for i in 0..b.published() {
                assert_eq!(a.get_at(i), b.get_at(i), "record {i}");
            }
        }
        Err(e) => panic!("unexpected import error: {e}"),
    }
}

//! Export and import against a real `nats-server -js` (see `common`): round trips,
//! resume, dedupe, gaps, shape and configuration checks.

mod common;
mod jetstream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{rec, NatsServer, Rec};
use jetstream::with_jetstream;
use roda_bridge::{
    BridgeError, ExportOptions, Exporter, ImportOptions, Importer, JournalSink, JournalSource,
    SegmentedSink, SegmentedSource,
};
use roda_store::{JournalReader, JournalStore, Retention, SegmentedJournal};

const JOURNAL_ID: u64 = 0x0123_4567_89ab_cdef;

fn export_options(batch_bytes: usize) -> ExportOptions {
    let mut o = ExportOptions::new("RODA", "roda.test");
    o.journal_id = Some(JOURNAL_ID);
    o.max_batch_bytes = batch_bytes;
    o
}

fn fill(path: &std::path::Path, range: std::ops::Range<u64>, capacity: usize) {
    let mut j = JournalStore::<Rec>::open_or_create(path, capacity).unwrap();
    for i in range {
        j.append(&rec(i));
    }
}

fn contents(path: &std::path::Path) -> Vec<Rec> {
    let mut r = JournalReader::<Rec>::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(x) = r.next() {
        out.push(*x);
    }
    out
}

fn expected(n: u64) -> Vec<Rec> {
    (0..n).map(rec).collect()
}

/// The subject's batches in stream RODA, as (first, count), in stream order.
fn batches(server: &NatsServer, subject: &str) -> Vec<(u64, u64)> {
    batches_in(server, "RODA", subject)
}

/// The subject's batches in `stream`, as (first, count), in stream order.
fn batches_in(server: &NatsServer, stream: &str, subject: &str) -> Vec<(u64, u64)> {
    with_jetstream(server, |js| async move {
        let stream = js.get_stream(stream).await.unwrap();
        let last = stream.get_info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            if m.subject.as_str() != subject {
                continue;
            }
            let h =
                roda_bridge::BatchHeader::from_headers(Some(&m.headers), m.payload.len()).unwrap();
            out.push((h.first, h.count));
        }
        out
    })
}

/// The journal id of the last batch on the subject `roda.test`.
fn last_journal_id(server: &NatsServer) -> u64 {
    with_jetstream(server, |js| async move {
        let stream = js.get_stream("RODA").await.unwrap();
        let m = stream
            .get_last_raw_message_by_subject("roda.test")
            .await
            .unwrap();
        let h = roda_bridge::BatchHeader::from_headers(Some(&m.headers), m.payload.len()).unwrap();
        assert_eq!(
            m.headers.get("Nats-Msg-Id").unwrap().as_str(),
            format!("{:016x}:{}", h.journal_id, h.first)
        );
        h.journal_id
    })
}

/// Each batch starts where the previous ended, from 0 to `n`: every sequence once.
fn assert_chained(batches: &[(u64, u64)], n: u64) {
    let mut next = 0;
    for &(first, count) in batches {
        assert_eq!(first, next, "batches {batches:?}");
        next = first + count;
    }
    assert_eq!(next, n);
}

#[test]
fn export_then_import_copies_a_journal_byte_for_byte() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    fill(&src, 0..100_000, 200_000);

    // The journal's own id (header offset 104) names it on the subject.
    let id = JournalReader::<Rec>::open(&src)
        .unwrap()
        .header()
        .journal_id;
    assert_ne!(id, 0);
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    let mut options = export_options(64 << 10);
    options.journal_id = None;
    let report = Exporter::new(server.connection(), options)
        .run(&mut source)
        .unwrap();
    assert_eq!((report.start, report.end, report.rewinds), (0, 100_000, 0));
    assert_eq!(last_journal_id(&server), id);
    let stored = batches(&server, "roda.test");
    assert_chained(&stored, 100_000);
    assert!(stored.len() >= 100_000 * 24 / (64 << 10));

    let dst = tmp.path().join("dst.roda");
    let mut sink = JournalSink::new(JournalStore::<Rec>::create(&dst, 200_000).unwrap());
    let report = Importer::new(server.connection(), ImportOptions::new("RODA", "roda.test"))
        .run(&mut sink)
        .unwrap();
    assert_eq!(
        (report.start, report.end, report.duplicates),
        (0, 100_000, 0)
    );
    drop(sink);
    assert_eq!(
        std::fs::read(&src).unwrap().len(),
        std::fs::read(&dst).unwrap().len()
    );
    assert_eq!(contents(&dst), expected(100_000));
}

#[test]
fn export_resumes_after_the_subjects_last_batch_and_import_after_its_journal() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let dst = tmp.path().join("dst.roda");
    let position = tmp.path().join("dst.roda.bridge");
    let mut import = ImportOptions::new("RODA", "roda.test");
    import.position_file = Some(position.clone());
    let mut total = 0;
    for round in 0..3u64 {
        fill(&src, total..total + 10_000 + round, 100_000);
        total += 10_000 + round;
        let mut source = JournalSource::<Rec>::open(&src).unwrap();
        let report = Exporter::new(server.connection(), export_options(16 << 10))
            .run(&mut source)
            .unwrap();
        assert_eq!(report.end, total);
        let mut sink =
            JournalSink::new(JournalStore::<Rec>::open_or_create(&dst, 100_000).unwrap());
        let report = Importer::new(server.connection(), import.clone())
            .run(&mut sink)
            .unwrap();
        assert_eq!(report.end, total);
        // The position file sent the consumer past what the journal held.
        assert_eq!(report.duplicates, 0, "round {round}");
    }
    assert_chained(&batches(&server, "roda.test"), total);
    assert_eq!(contents(&dst), expected(total));

    // Without the position file the import reads the stream from its start and drops
    // everything the journal holds.
    std::fs::remove_file(&position).unwrap();
    let mut sink = JournalSink::new(JournalStore::<Rec>::open(&dst).unwrap());
    let report = Importer::new(server.connection(), import.clone())
        .run(&mut sink)
        .unwrap();
    assert_eq!((report.end, report.batches), (total, 0));
    drop(sink);

    // A journal that holds a prefix, imported with the stream read from the start:
    // redelivered records are dropped, the rest appended, nothing twice.
    let partial = tmp.path().join("partial.roda");
    fill(&partial, 0..12_345, 100_000);
    let mut sink = JournalSink::new(JournalStore::<Rec>::open(&partial).unwrap());
    let report = Importer::new(server.connection(), ImportOptions::new("RODA", "roda.test"))
        .run(&mut sink)
        .unwrap();
    assert_eq!((report.end, report.duplicates), (total, 12_345));
    drop(sink);
    assert_eq!(contents(&partial), expected(total));
}

/// Whether stream `name` allows direct gets.
fn allows_direct(server: &NatsServer, name: &str) -> bool {
    with_jetstream(server, |js| async move {
        let stream = js.get_stream(name).await.unwrap();
        stream.cached_info().config.allow_direct
    })
}

/// The last batch is read raw (a direct get) from the streams the exporter creates, and
/// through the leader's API from streams made without direct gets: resume and import
/// work the same on both.
#[test]
fn resume_reads_the_last_batch_with_and_without_direct_gets() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    with_jetstream(&server, |js| async move {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "NODIRECT".into(),
            subjects: vec!["nodirect".into()],
            duplicate_window: Duration::from_secs(120),
            allow_direct: false,
            ..Default::default()
        })
        .await
        .unwrap();
    });
    for (stream, subject, direct) in [("RODA", "roda.test", true), ("NODIRECT", "nodirect", false)]
    {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.roda");
        let dst = tmp.path().join("dst.roda");
        let mut total = 0;
        for round in 0..3u64 {
            fill(&src, total..total + 7_000 + round, 100_000);
            total += 7_000 + round;
            let mut o = export_options(16 << 10);
            o.stream = stream.into();
            o.subject = subject.into();
            let mut source = JournalSource::<Rec>::open(&src).unwrap();
            let report = Exporter::new(server.connection(), o)
                .run(&mut source)
                .unwrap();
            // Resumed right after the last batch: nothing sent twice, nothing refused.
            assert_eq!(
                (report.start, report.end, report.rewinds),
                (total - 7_000 - round, total, 0),
                "{stream} round {round}"
            );
            let mut sink =
                JournalSink::new(JournalStore::<Rec>::open_or_create(&dst, 100_000).unwrap());
            let report = Importer::new(server.connection(), ImportOptions::new(stream, subject))
                .run(&mut sink)
                .unwrap();
            // The import stops at the last batch the stream held.
            assert_eq!(report.end, total, "{stream} round {round}");
        }
        assert_eq!(allows_direct(&server, stream), direct, "{stream}");
        assert_chained(&batches_in(&server, stream, subject), total);
        assert_eq!(contents(&dst), expected(total), "{stream}");
    }
}

#[test]
fn follow_mode_exports_and_imports_while_the_writer_appends() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    let dst = tmp.path().join("dst.roda");
    let n = 200_000u64;
    let mut writer = JournalStore::<Rec>::create(&src, n as usize).unwrap();
    let export_stop = Arc::new(AtomicBool::new(false));
    let import_stop = Arc::new(AtomicBool::new(false));
    let mut eo = export_options(32 << 10);
    eo.follow = true;
    eo.stop = Some(export_stop.clone());
    let conn = server.connection();
    let mut source = JournalSource::new(writer.reader());
    let exporter = std::thread::spawn(move || Exporter::new(conn, eo).run(&mut source));
    // The stream exists once the exporter started it.
    let mut io = ImportOptions::new("RODA", "roda.test");
    io.follow = true;
    io.stop = Some(import_stop.clone());
    let conn = server.connection();
    let dst2 = dst.clone();
    let importer = std::thread::spawn(move || {
        let mut sink = JournalSink::new(JournalStore::<Rec>::create(&dst2, n as usize).unwrap());
        // Wait for the stream.
        loop {
            match Importer::new(conn.clone(), io.clone()).run(&mut sink) {
                Err(BridgeError::Config(msg)) if msg.contains("does not exist") => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => return other,
            }
        }
    });
    for i in 0..n {
        writer.append(&rec(i));
        if i % 20_000 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    export_stop.store(true, Ordering::Relaxed);
    let report = exporter.join().unwrap().unwrap();
    assert_eq!(report.end, n);
    let reader = loop {
        if let Ok(r) = JournalReader::<Rec>::open(&dst) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reader.published() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "import stuck at {}",
            reader.published()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    import_stop.store(true, Ordering::Relaxed);
    let report = importer.join().unwrap().unwrap();
    assert_eq!(report.end, n);
    assert_chained(&batches(&server, "roda.test"), n);
    assert_eq!(contents(&dst), expected(n));
}

#[test]
fn segmented_journals_export_through_a_follower_and_lagging_is_an_error_or_skipped() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ring");
    // A ring of 4 segments of 1000 records.
    let mut journal = SegmentedJournal::<Rec>::create(&dir, 1000, Retention::KeepLast(4)).unwrap();
    for i in 0..3500 {
        journal.append(&rec(i));
    }
    let mut source = SegmentedSource::<Rec>::open(&dir).unwrap();
    let mut options = export_options(8 << 10);
    options.journal_id = None; // the directory's
    let report = Exporter::new(server.connection(), options).run(&mut source);
    assert_eq!(report.unwrap().end, 3500);
    assert_eq!(last_journal_id(&server), journal.journal_id());

    // The writer laps the exporter: records 3500..6000 are recycled before export
    // (4 segments of 1000 retain 6000..10000).
    for i in 3500..10_000 {
        journal.append(&rec(i));
    }
    let mut source = SegmentedSource::<Rec>::open(&dir).unwrap();
    let mut options = export_options(8 << 10);
    options.journal_id = Some(journal.journal_id());
    match Exporter::new(server.connection(), options).run(&mut source) {
        Err(e @ BridgeError::Lagged { from: 3500, .. }) => {
            assert!(e.to_string().contains("--skip-lagged"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let mut o = export_options(8 << 10);
    o.journal_id = Some(journal.journal_id());
    o.skip_lagged = true;
    let mut source = SegmentedSource::<Rec>::open(&dir).unwrap();
    let report = Exporter::new(server.connection(), o)
        .run(&mut source)
        .unwrap();
    assert_eq!((report.skipped, report.end), (2500, 10_000));

    // The importer refuses the hole.
    let mut sink = SegmentedSink::new(
        SegmentedJournal::<Rec>::create(tmp.path().join("copy"), 1000, Retention::KeepAll).unwrap(),
        0,
    );
    match Importer::new(server.connection(), ImportOptions::new("RODA", "roda.test")).run(&mut sink)
    {
        Err(BridgeError::Gap {
            expected: 3500,
            found: 6000,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.journal().len(), 3500);

    // A journal created at the first sequence the stream still holds takes the rest.
    let mut sink = SegmentedSink::new(
        SegmentedJournal::<Rec>::options()
            .retention(Retention::KeepAll)
            .create_at(tmp.path().join("tail"), 1000, 6000)
            .unwrap(),
        0,
    );
    let mut import = ImportOptions::new("RODA", "roda.test");
    import.position_file = Some(tmp.path().join("tail.position"));
    let report = Importer::new(server.connection(), import)
        .run(&mut sink)
        .unwrap();
    assert_eq!(
        (report.start, report.end, report.duplicates),
        (6000, 10_000, 3500)
    );
    let mut follower = roda_store::SegmentedFollower::<Rec>::open(tmp.path().join("tail")).unwrap();
    assert_eq!(follower.position(), 6000);
    for i in 6000..10_000 {
        assert_eq!(follower.next().unwrap(), Some(rec(i)));
    }
}

#[test]
fn mismatched_shapes_journals_and_stream_configurations_are_clear_errors() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    fill(&src, 0..1000, 1000);
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    Exporter::new(server.connection(), export_options(4096))
        .run(&mut source)
        .unwrap();

    // Another record type.
    let mut sink =
        JournalSink::new(JournalStore::<[u32; 6]>::create(tmp.path().join("a"), 10).unwrap());
    match Importer::new(server.connection(), ImportOptions::new("RODA", "roda.test")).run(&mut sink)
    {
        Err(BridgeError::Mismatch {
            field: "record_align",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Another journal onto the same subject.
    let mut o = export_options(4096);
    o.journal_id = Some(7);
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    match Exporter::new(server.connection(), o).run(&mut source) {
        Err(BridgeError::Mismatch {
            field: "journal_id",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // 0 is no journal id.
    let mut o = export_options(4096);
    o.journal_id = Some(0);
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    assert!(matches!(
        Exporter::new(server.connection(), o).run(&mut source),
        Err(BridgeError::Config(_))
    ));
    // An import from a stream that does not exist.
    let mut sink = JournalSink::new(JournalStore::<Rec>::create(tmp.path().join("b"), 10).unwrap());
    match Importer::new(server.connection(), ImportOptions::new("NOPE", "nope")).run(&mut sink) {
        Err(BridgeError::Config(msg)) => assert!(msg.contains("does not exist"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A work-queue stream would delete batches once acknowledged.
    with_jetstream(&server, |js| async move {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "WQ".into(),
            subjects: vec!["wq".into()],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let mut o = export_options(4096);
    o.stream = "WQ".into();
    o.subject = "wq".into();
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    match Exporter::new(server.connection(), o).run(&mut source) {
        Err(BridgeError::Config(msg)) => assert!(msg.contains("limits retention"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn file_sources_export_journals_of_any_record_type() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A segmented directory, read as bytes through its segment files.
    let dir = tmp.path().join("ring");
    let mut journal = SegmentedJournal::<Rec>::create(&dir, 1000, Retention::KeepLast(3)).unwrap();
    for i in 0..2500 {
        journal.append(&rec(i));
    }
    let mut source = roda_bridge::FileSource::open(&dir).unwrap();
    let mut o = export_options(4096);
    o.journal_id = None; // the directory's
    let report = Exporter::new(server.connection(), o.clone())
        .run(&mut source)
        .unwrap();
    assert_eq!(report.end, 2500);
    // It laps the exporter: a clear error, then skipped on request.
    for i in 2500..6200 {
        journal.append(&rec(i));
    }
    let mut source = roda_bridge::FileSource::open(&dir).unwrap();
    match Exporter::new(server.connection(), o.clone()).run(&mut source) {
        Err(BridgeError::Lagged { from: 2500, .. }) => {}
        other => panic!("{other:?}"),
    }
    o.skip_lagged = true;
    let mut source = roda_bridge::FileSource::open(&dir).unwrap();
    let report = Exporter::new(server.connection(), o)
        .run(&mut source)
        .unwrap();
    assert_eq!((report.skipped, report.end), (1500, 6200));
    let stored = batches(&server, "roda.test");
    let mut next = 0;
    for &(first, count) in &stored {
        assert!(
            first == next || (next == 2500 && first == 4000),
            "{stored:?}"
        );
        next = first + count;
    }
    assert_eq!(next, 6200);

    // A plain journal file.
    let src = tmp.path().join("src.roda");
    fill(&src, 0..10_000, 10_000);
    let mut o = export_options(4096);
    o.stream = "PLAIN".into();
    o.subject = "roda.plain".into();
    o.journal_id = None;
    let mut source = roda_bridge::FileSource::open(&src).unwrap();
    let report = Exporter::new(server.connection(), o)
        .run(&mut source)
        .unwrap();
    assert_eq!(report.end, 10_000);
    let dst = tmp.path().join("dst.roda");
    let mut sink = JournalSink::new(JournalStore::<Rec>::create(&dst, 10_000).unwrap());
    Importer::new(
        server.connection(),
        ImportOptions::new("PLAIN", "roda.plain"),
    )
    .run(&mut sink)
    .unwrap();
    drop(sink);
    assert_eq!(contents(&dst), expected(10_000));
}

/// A sink that blocks its thread on every batch, like a slow disk: the client stops
/// reading its socket meanwhile.
struct SlowSink(JournalSink<Rec>);

impl roda_bridge::ImportSink for SlowSink {
    fn shape(&self) -> roda_bridge::Shape {
        self.0.shape()
    }
    fn next_sequence(&self) -> u64 {
        self.0.next_sequence()
    }
    fn append(&mut self, bytes: &[u8]) -> Result<(), roda_store::RodaError> {
        std::thread::sleep(Duration::from_millis(3));
        self.0.append(bytes)
    }
}

#[test]
fn messages_a_slow_importer_was_not_delivered_are_fetched_again_not_reported_as_a_gap() {
    // The server drops what it cannot send to a client that reads too slowly (past
    // max_pending bytes): the importer must ask again, never report a gap.
    let Some(server) = NatsServer::start_with("max_pending: 262144\nmax_payload: 65536\n") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.roda");
    fill(&src, 0..16_000, 16_000);
    let mut source = JournalSource::<Rec>::open(&src).unwrap();
    Exporter::new(server.connection(), export_options(32 << 10))
        .run(&mut source)
        .unwrap();
    let dst = tmp.path().join("dst.roda");
    let mut sink = SlowSink(JournalSink::new(
        JournalStore::<Rec>::create(&dst, 16_000).unwrap(),
    ));
    let mut o = ImportOptions::new("RODA", "roda.test");
    o.pull_bytes = 4 << 20;
    let report = Importer::new(server.connection(), o)
        .run(&mut sink)
        .unwrap();
    assert_eq!(report.end, 16_000);
    println!("restarts after undelivered messages: {}", report.restarts);
    drop(sink);
    assert_eq!(contents(&dst), expected(16_000));
}

/// A journal of an unknown record type imported into through `FileSink`: created with the
/// batches' shape, first sequence and the source's id (or another), reopened with its own.
#[test]
fn file_sinks_create_and_reopen_journals_of_any_record_type() {
    use roda_bridge::{FileSink, ImportSink, NewJournal, Shape};
    let tmp = tempfile::tempdir().unwrap();
    let shape = Shape::of::<Rec>(4);
    let segmented = NewJournal::Segmented {
        segment_records: 100,
        retention: Retention::KeepAll,
    };
    // Where the subject starts decides what can hold it.
    let err = FileSink::create(
        tmp.path().join("p"),
        shape,
        &NewJournal::Plain { capacity: 10 },
        5,
        0,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("segmented journal directory"),
        "{err}"
    );
    let err = FileSink::create(tmp.path().join("d"), shape, &segmented, 150, 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("segment size"), "{err}");
    assert!(!tmp.path().join("p").exists() && !tmp.path().join("d").exists());

    let dir = tmp.path().join("d");
    let mut sink = FileSink::create(&dir, shape, &segmented, 200, JOURNAL_ID).unwrap();
    assert_eq!((sink.next_sequence(), sink.journal_id()), (200, JOURNAL_ID));
    let records: Vec<Rec> = (200..450).map(rec).collect();
    sink.append(bytemuck::cast_slice(&records)).unwrap();
    assert_eq!(sink.next_sequence(), 450);
    drop(sink);
    let sink = FileSink::open(&dir).unwrap();
    assert_eq!((sink.next_sequence(), sink.shape()), (450, shape));
    drop(sink);
    let journal = SegmentedJournal::<Rec>::options()
        .schema(4)
        .open(&dir)
        .unwrap();
    assert_eq!((journal.len(), journal.journal_id()), (450, JOURNAL_ID));

    let file = tmp.path().join("p");
    let mut sink =
        FileSink::create(&file, shape, &NewJournal::Plain { capacity: 300 }, 0, 0).unwrap();
    assert_ne!(sink.journal_id(), 0, "a random id when none is given");
    sink.append(bytemuck::cast_slice(&records)).unwrap();
    drop(sink);
    let copy = JournalStore::<Rec>::options()
        .schema(4)
        .open_reader(&file)
        .unwrap();
    assert_eq!(copy.get_at(249), Some(&rec(449)));
}

//! The counters file a pipeline writes (`StageEngine::metrics_file`), read back with
//! `CountersFile` as another process would: live samples, the exact final sample,
//! names, liveness, and the files it refuses.

use std::time::{Duration, Instant};

use roda_engine::counters_file::{COUNTERS_SCHEMA, MAX_NAME_BYTES};
use roda_engine::{CountersFile, StageEngine, StageMetrics, StageSnapshot};
use roda_pipe::{filter, map};
use roda_store::{JournalStore, RodaError, SlotStore};

const WAIT: Duration = Duration::from_secs(20);

/// Every field a stage's snapshot shares with `StageMetrics` is equal.
fn assert_same(file: &[StageSnapshot], metrics: &[StageMetrics]) {
    assert_eq!(file.len(), metrics.len());
    for (f, m) in file.iter().zip(metrics) {
        assert_eq!(f.name, m.name);
        assert_eq!(f.processed, m.processed, "{}", m.name);
        assert_eq!(f.emitted, m.emitted, "{}", m.name);
        assert_eq!(f.input_lag, m.input_lag, "{}", m.name);
        assert_eq!(f.output_len, Some(m.output_len), "{}", m.name);
        assert_eq!(f.output_capacity, m.output_capacity as u64, "{}", m.name);
        assert_eq!(f.waiting_for_room, m.waiting_for_room, "{}", m.name);
        assert_eq!(f.panicked, m.panicked, "{}", m.name);
    }
}

#[test]
fn after_shutdown_the_file_equals_metrics() {
    let dir = tempfile::tempdir().unwrap();
    for bounded in [false, true] {
        let path = dir.path().join(format!("p{bounded}.counters"));
        let engine = if bounded {
            StageEngine::<u64, u64>::bounded(64, 4)
        } else {
            StageEngine::<u64, u64>::with_capacity(100_000)
        };
        let mut engine = engine
            .name("numbers")
            .metrics_file(&path)
            .metrics_interval(Duration::from_millis(5))
            .add_stage(filter(|x: &u64| x % 3 != 0))
            .stage_name("drop threes")
            .add_stage(map(|x: &u64| x * 2));
        let mut received = 0u64;
        for i in 0..30_000u64 {
            engine.send_receiving(&i, |_| received += 1);
        }
        if bounded {
            // Drain: a bounded pipeline's last ring holds the stage back otherwise.
            let deadline = Instant::now() + WAIT;
            loop {
                let idle = engine.is_idle();
                while engine.try_receive().is_some() {
                    received += 1;
                }
                if idle {
                    break;
                }
                assert!(Instant::now() < deadline);
            }
            assert_eq!(received, 20_000);
        } else {
            // Leave outputs unreceived: the last journal's length shows them.
            assert!(engine.await_idle(WAIT));
            for _ in 0..1000 {
                engine.receive();
            }
        }
        engine.shutdown().unwrap();
        let metrics = engine.metrics();
        let snapshot = CountersFile::open(&path).unwrap().snapshot().unwrap();
        assert_same(&snapshot.stages, &metrics);
        assert_eq!(snapshot.stages[0].name, "drop threes");
        assert_eq!(snapshot.stages[1].name, "stage 2");
        assert_eq!(snapshot.stages[0].processed, 30_000);
        assert_eq!(snapshot.stages[1].processed, 20_000);
        assert_eq!(snapshot.name, "numbers");
        assert_eq!(snapshot.pid, std::process::id());
        assert!(snapshot.finished);
        assert!(snapshot.samples >= 2, "{snapshot:?}");
        assert_eq!(snapshot.sample_interval, Duration::from_millis(5));
        // A clean close clears the writer.
        assert!(!snapshot.writer_alive);
    }
}

#[test]
fn a_running_pipeline_is_sampled_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.counters");
    let mut engine = StageEngine::<u64, u64>::with_capacity(1_000_000)
        .metrics_file(&path)
        .metrics_interval(Duration::from_millis(10))
        .add_stage(map(|x: &u64| x + 1));
    let file = CountersFile::open(&path).unwrap();
    // The first sample is there as soon as metrics_file returns.
    let first = file.snapshot().unwrap();
    assert_eq!(first.name, "pipeline");
    assert!(first.writer_alive);
    assert!(!first.finished);
    let mut sent = 0u64;
    for round in 1..=3u64 {
        for _ in 0..1000 {
            engine.send(&sent);
            sent += 1;
        }
        assert!(engine.await_idle(WAIT));
        // The sampler catches up within a few intervals.
        let deadline = Instant::now() + WAIT;
        loop {
            let s = file.snapshot().unwrap();
            if s.stages.len() == 1 && s.stages[0].processed == round * 1000 {
                assert_eq!(s.stages[0].emitted, round * 1000);
                assert_eq!(s.stages[0].output_len, Some(round * 1000));
                assert_eq!(s.stages[0].output_capacity, 1_000_000);
                assert!(s.writer_alive);
                break;
            }
            assert!(Instant::now() < deadline, "never sampled: {s:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let before = file.snapshot().unwrap().samples;
    std::thread::sleep(Duration::from_millis(100));
    assert!(file.snapshot().unwrap().samples > before);
    // A second pipeline cannot write the same file while this one runs.
    let second = StageEngine::<u64, u64>::with_capacity(10).try_metrics_file(&path);
    assert!(
        matches!(second, Err(RodaError::WriterActive { .. })),
        "{second:?}"
    );
    drop(engine);
    // Dropped without shutdown: still a final sample and a clean close.
    let last = file.snapshot().unwrap();
    assert!(last.finished);
    assert!(!last.writer_alive);
    assert_eq!(last.stages[0].processed, 3000);
    // The next run takes the file over.
    let engine = StageEngine::<u64, u64>::with_capacity(10)
        .name("second run")
        .metrics_file(&path);
    let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
    assert_eq!(s.name, "second run");
    assert!(s.stages.is_empty(), "{s:?}");
    drop(engine);
}

#[test]
fn a_panicked_stage_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.counters");
    let mut engine = StageEngine::<u64, u64>::with_capacity(100)
        .metrics_file(&path)
        .add_stage(map(|x: &u64| *x))
        .add_stage(map(|x: &u64| {
            assert!(*x != 7, "seven");
            *x
        }))
        .stage_name("no sevens");
    for i in 0..10 {
        engine.send(&i);
    }
    assert!(!engine.await_idle(Duration::from_secs(5)));
    assert!(engine.shutdown().is_err());
    let metrics = engine.metrics();
    assert!(!metrics[0].panicked);
    assert!(metrics[1].panicked);
    let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
    assert_same(&s.stages, &metrics);
    assert!(s.stages[1].panicked);
}

#[test]
fn long_names_are_cut_and_many_stages_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.counters");
    let long = "x".repeat(MAX_NAME_BYTES + 50);
    let mut engine = StageEngine::<u64, u64>::with_capacity(100)
        .metrics_file(&path)
        .name(&long)
        .add_stage(map(|x: &u64| *x))
        .stage_name("é");
    engine.shutdown().unwrap();
    let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
    assert_eq!(s.name.len(), MAX_NAME_BYTES);
    assert_eq!(s.stages[0].name, "é");
}

#[test]
fn other_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots.roda");
    let store = SlotStore::<[u64; 32]>::create(&slots, 64).unwrap();
    let err = CountersFile::open(&slots).unwrap_err().to_string();
    assert!(err.contains("not a pipeline counters file"), "{err}");
    drop(store);
    let journal = dir.path().join("journal.roda");
    JournalStore::<u64>::create(&journal, 8).unwrap();
    let err = CountersFile::open(&journal).unwrap_err().to_string();
    assert!(
        err.contains("a journal, not a pipeline counters file"),
        "{err}"
    );
    // The right schema but never sampled (no header slot): a clear error too.
    let empty = dir.path().join("empty.counters");
    let store = SlotStore::<[u64; 32]>::options()
        .schema(COUNTERS_SCHEMA)
        .create(&empty, 64)
        .unwrap();
    let err = CountersFile::open(&empty)
        .unwrap()
        .snapshot()
        .unwrap_err()
        .to_string();
    assert!(err.contains("has not written its first sample"), "{err}");
    drop(store);
    assert!(matches!(
        CountersFile::open(dir.path().join("missing")),
        Err(RodaError::Io { .. })
    ));
}

#[test]
fn stages_report_their_threads_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steps.counters");
    let mut engine = StageEngine::<u64, u64>::with_capacity(10_000)
        .metrics_file(&path)
        .add_stage(map(|x: &u64| *x));
    for i in 0..5_000 {
        engine.send(&i);
    }
    assert!(engine.await_idle(WAIT));
    engine.shutdown().unwrap();
    let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
    let stage = &s.stages[0];
    // At most BATCH (1024) inputs a step: at least 5 busy steps, each one of them a
    // step that consumed something.
    assert!((5..=5_000).contains(&stage.busy_iterations), "{stage:?}");
    assert!(stage.idle_iterations > 0, "{stage:?}");
    assert!(s.workers.is_empty());
}

#[test]
fn stages_report_their_wake_ups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wakeups.counters");
    let mut engine = StageEngine::<u64, u64>::with_capacity(100)
        .metrics_file(&path)
        .add_stage(map(|x: &u64| *x));
    for i in 0..3 {
        // Sparse: the stage runs out of spinning and sleeps before each send.
        std::thread::sleep(std::time::Duration::from_millis(20));
        engine.send(&i);
        assert_eq!(engine.receive(), i);
    }
    let in_memory = engine.metrics()[0].wakeups;
    assert!(in_memory >= 2, "slept and woken only {in_memory} times");
    engine.shutdown().unwrap();
    let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
    // The final sample is taken after the stage stopped: it has every wake-up.
    assert!(s.stages[0].wakeups >= in_memory, "{:?}", s.stages[0]);
    assert_eq!(s.stages[0].wakeups, engine.metrics()[0].wakeups);
}

#[test]
fn a_roda_engine_publishes_its_workers() {
    use roda_engine::{Progress, RodaEngine};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.counters");
    let mut engine = RodaEngine::new();
    let mut left = 1_000u64;
    engine
        .run_worker("before the file", move || {
            Progress::from_work(
                left > 0 && {
                    left -= 1;
                    true
                },
            )
        })
        .unwrap();
    engine.set_name("ingest");
    engine.set_metrics_interval(Duration::from_millis(5));
    engine.metrics_file(&path).unwrap();
    engine
        .run_worker("after the file", || Progress::Idle)
        .unwrap();
    let file = CountersFile::open(&path).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let s = file.snapshot().unwrap();
        if s.workers.len() == 2
            && s.workers[0].busy_iterations == 1_000
            && s.workers[1].idle_iterations > 0
        {
            assert!(s.writer_alive);
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown().unwrap();
    let s = file.snapshot().unwrap();
    assert_eq!(s.name, "ingest");
    assert!(s.finished && !s.writer_alive);
    assert!(s.stages.is_empty());
    let names: Vec<&str> = s.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["before the file", "after the file"]);
    assert_eq!(s.workers[0].busy_iterations, 1_000);
    assert!(s.workers[0].idle_iterations > 0);
    assert_eq!(s.workers[1].busy_iterations, 0);
    assert!(s.workers[1].idle_iterations > 0);
}

#[test]
fn a_running_pipeline_reports_its_elastic_output_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backlog.counters");
    let mut engine = StageEngine::<u64, u64>::with_capacity(1_000)
        .metrics_file(&path)
        .metrics_interval(Duration::from_millis(1))
        .add_stage(map(|x: &u64| *x))
        .add_stage(map(|x: &u64| *x));
    for i in 0..100 {
        engine.send(&i);
    }
    assert!(engine.await_idle(Duration::from_secs(10)));
    for _ in 0..40 {
        engine.receive();
    }
    // While it runs, the sampler knows the last journal's backlog (the elastic output
    // publishes what was received) and the ring's (what stage 2 has not consumed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = CountersFile::open(&path).unwrap().snapshot().unwrap();
        if s.stages.len() == 2 && s.stages[1].output_len == Some(60) {
            assert_eq!(s.stages[0].output_len, Some(0));
            assert_eq!(s.stages[1].output_capacity, 1_000);
            break;
        }
        assert!(Instant::now() < deadline, "never sampled: {:?}", s.stages);
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.shutdown().unwrap();
}

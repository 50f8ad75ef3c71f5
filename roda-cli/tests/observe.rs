//! `roda top` and `roda metrics` against a pipeline that runs while they read its
//! counters file: the live view in a pseudo-terminal (script(1), rendered with a
//! terminal emulator), `--once --json`, Prometheus text checked with a parser, the
//! textfile output and the HTTP endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roda_engine::{CountersFile, StageEngine, StageMetrics};
use roda_pipe::{filter, map};

const WAIT: Duration = Duration::from_secs(30);

fn roda() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roda"))
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    roda()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run roda")
}

fn ok(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{o:?}\n{err}");
    assert!(o.stderr.is_empty(), "{err}");
    String::from_utf8(o.stdout).unwrap()
}

/// A two-stage bounded pipeline fed without pause on a thread of its own until stopped,
/// writing its counters file every 20 ms. Stopping it shuts it down and returns its
/// final `metrics()`.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<StageMetrics>>>,
}

impl Running {
    fn start(path: &Path, name: &str) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready) = mpsc::channel();
        let file_path = path.to_path_buf();
        let name = name.to_owned();
        let thread = std::thread::spawn(move || {
            let mut engine = StageEngine::<u64, u64>::bounded(1024, 4)
                .name(&name)
                .metrics_file(&file_path)
                .metrics_interval(Duration::from_millis(20))
                .add_stage(filter(|x: &u64| !x.is_multiple_of(4)))
                .stage_name("keep three in four")
                .add_stage(map(|x: &u64| x * 2))
                .stage_name("double");
            ready_tx.send(()).unwrap();
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                engine.send_receiving(&i, |_| {});
                i += 1;
                if i.is_multiple_of(1024) {
                    while engine.try_receive().is_some() {}
                }
            }
            // Drain, so every stage consumed everything: then the file's counters are
            // the pipeline's exact totals.
            loop {
                let idle = engine.is_idle();
                while engine.try_receive().is_some() {}
                if idle {
                    break;
                }
            }
            engine.shutdown().unwrap();
            engine.metrics()
        });
        ready.recv_timeout(WAIT).expect("the pipeline started");
        // The sampler shows both stages, named, within a sample or two.
        let file = CountersFile::open(path).unwrap();
        let deadline = Instant::now() + WAIT;
        let named = |s: roda_engine::PipelineSnapshot| {
            s.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
                == ["keep three in four", "double"]
        };
        while !named(file.snapshot().unwrap()) {
            assert!(Instant::now() < deadline, "the stages never showed");
            std::thread::sleep(Duration::from_millis(5));
        }
        Running {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<StageMetrics> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.counters");
    (dir, path)
}

/// The samples of a Prometheus text exposition, parsed by a Prometheus text parser.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of `metric` for stage `stage`.
fn stage_value(scrape: &prometheus_parse::Scrape, metric: &str, stage: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get("stage") == Some(stage))
        .unwrap_or_else(|| panic!("no {metric} for {stage}"));
    match sample.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[test]
fn top_once_json_measures_live_rates() {
    let (_dir, path) = temp();
    let running = Running::start(&path, "numbers");
    let json = ok(run(&[
        &"top",
        &path,
        &"--once",
        &"--json",
        &"--interval",
        &"300ms",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["pipeline"], "numbers");
    assert_eq!(v["status"], "running");
    assert_eq!(v["pid"], std::process::id());
    assert!(v["measured_seconds"].as_f64().unwrap() > 0.1, "{v}");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "keep three in four");
    assert_eq!(stages[1]["name"], "double");
    for s in stages {
        assert!(s["rate_per_sec"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["processed"].as_u64().unwrap() > 0, "{s}");
    }
    // The text table says the same.
    let text = ok(run(&[&"top", &path, &"--once", &"--interval", &"100ms"]));
    assert!(text.starts_with("pipeline numbers  pid "), "{text}");
    assert!(text.contains("running  2 stages"), "{text}");
    assert!(text.contains("keep three in four"), "{text}");
    assert!(text.contains("wakes/s"), "{text}");
    running.stop();
    let json = ok(run(&[
        &"top",
        &path,
        &"--once",
        &"--json",
        &"--interval",
        &"10ms",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"], "finished");
    // --json alone is a usage error: it needs --once.
    let o = run(&[&"top", &path, &"--json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_the_pipeline() {
    let (dir, path) = temp();
    let running = Running::start(&path, "numbers");
    // Live counters move from one scrape to the next.
    let deadline = Instant::now() + WAIT;
    let (text, live) = loop {
        let text = ok(run(&[&"metrics", &path]));
        let live = scrape(&text);
        if stage_value(&live, "roda_stage_processed_total", "double") > 0.0 {
            break (text, live);
        }
        assert!(Instant::now() < deadline, "nothing processed:\n{text}");
    };
    for metric in [
        "roda_pipeline_up",
        "roda_stage_processed_total",
        "roda_stage_lag",
    ] {
        assert!(live.docs.contains_key(metric), "HELP for {metric}");
    }
    let up = live
        .samples
        .iter()
        .find(|s| s.metric == "roda_pipeline_up")
        .unwrap();
    assert_eq!(up.value, prometheus_parse::Value::Gauge(1.0));
    assert_eq!(up.labels.get("pipeline"), Some("numbers"));
    assert!(
        text.contains("# TYPE roda_stage_processed_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE roda_stage_lag gauge\n"), "{text}");

    let metrics = running.stop();
    // After shutdown the file holds the pipeline's exact totals.
    let text = ok(run(&[&"metrics", &path]));
    let done = scrape(&text);
    for (i, m) in metrics.iter().enumerate() {
        let value = |metric| stage_value(&done, metric, &m.name);
        assert_eq!(value("roda_stage_processed_total"), m.processed as f64);
        assert_eq!(value("roda_stage_emitted_total"), m.emitted as f64);
        assert_eq!(value("roda_stage_wakeups_total"), m.wakeups as f64);
        assert_eq!(value("roda_stage_lag"), m.input_lag as f64);
        assert_eq!(value("roda_stage_output_records"), m.output_len as f64);
        assert_eq!(
            value("roda_stage_output_capacity"),
            m.output_capacity as f64
        );
        let index = done
            .samples
            .iter()
            .find(|s| s.labels.get("stage") == Some(m.name.as_str()))
            .unwrap()
            .labels
            .get("index")
            .unwrap()
            .to_owned();
        assert_eq!(index, (i + 1).to_string());
    }
    let snapshot = CountersFile::open(&path).unwrap().snapshot().unwrap();
    assert!(snapshot.finished && !snapshot.writer_alive);
    assert!(
        text.contains("roda_pipeline_up{pipeline=\"numbers\"} 0\n"),
        "{text}"
    );

    // --output: the same text, through a temporary file renamed into place.
    let out = dir.path().join("roda.prom");
    assert_eq!(ok(run(&[&"metrics", &path, &"--output", &out])), "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[test]
fn label_values_are_escaped() {
    let (_dir, path) = temp();
    let mut engine = StageEngine::<u64, u64>::with_capacity(16)
        .name("say \"hi\"\\\nthere")
        .metrics_file(&path)
        .add_stage(map(|x: &u64| *x))
        .stage_name("a\\b");
    engine.shutdown().unwrap();
    let text = ok(run(&[&"metrics", &path]));
    assert!(
        text.contains(
            r#"roda_stage_processed_total{pipeline="say \"hi\"\\\nthere",stage="a\\b",index="1"} 0"#
        ),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP roda_")
                || line.starts_with("# TYPE roda_")
                || line.starts_with("roda_"),
            "{line}"
        );
    }
}

fn http_get(addr: &str, target: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn metrics_are_served_over_http() {
    let (_dir, path) = temp();
    let running = Running::start(&path, "served");
    let mut child = roda()
        .args([
            "metrics".as_ref(),
            path.as_os_str(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let (head, body) = http_get(&addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let first = stage_value(&scrape(&body), "roda_stage_processed_total", "double");
    // Each scrape reads the file anew.
    std::thread::sleep(Duration::from_millis(100));
    let (_, body) = http_get(&addr, "/metrics");
    let second = stage_value(&scrape(&body), "roda_stage_processed_total", "double");
    assert!(second > first, "{first} then {second}");
    let (head, _) = http_get(&addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    child.kill().unwrap();
    child.wait().unwrap();
    running.stop();
}

#[test]
fn other_files_are_refused_with_one_line() {
    let (dir, path) = temp();
    let slots = dir.path().join("slots.roda");
    let store = roda_store::SlotStore::<[u64; 32]>::create(&slots, 64).unwrap();
    for o in [
        run(&[&"top", &slots, &"--once"]),
        run(&[&"metrics", &slots]),
    ] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("roda: "), "{err}");
        assert!(err.contains("not a pipeline counters file"), "{err}");
    }
    drop(store);
    let o = run(&[&"metrics", &path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"));
    // The live view needs a terminal: piped, it says what to use instead.
    let mut engine = StageEngine::<u64, u64>::with_capacity(16).metrics_file(&path);
    let o = run(&[&"top", &path]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("roda: roda top draws on a terminal"),
        "{err}"
    );
    assert!(err.contains("--once"), "{err}");
    engine.shutdown().unwrap();
}

/// Runs `roda top` in a pseudo-terminal of 80x24 through script(1) and returns the
/// child and a channel of its terminal output.
fn top_in_a_terminal(path: &Path) -> (Child, mpsc::Receiver<Vec<u8>>) {
    let command = format!(
        "stty rows 24 cols 80; exec '{}' top '{}' --interval 100ms",
        env!("CARGO_BIN_EXE_roda"),
        path.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs roda top in a pseudo-terminal");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (child, rx)
}

#[test]
fn top_shows_every_stage_live_in_an_80x24_terminal() {
    let (_dir, path) = temp();
    let running = Running::start(&path, "numbers");
    let (mut child, output) = top_in_a_terminal(&path);
    let mut screen = vt100::Parser::new(
        std::num::NonZeroU16::new(24).unwrap(),
        std::num::NonZeroU16::new(80).unwrap(),
        0,
    );
    // Wait for a screen with both stages and measured rates.
    let deadline = Instant::now() + WAIT;
    let contents = loop {
        if let Ok(bytes) = output.recv_timeout(Duration::from_millis(100)) {
            screen.process(&bytes);
        }
        let contents = screen.screen().contents();
        let rates: Vec<&str> = contents
            .lines()
            .filter(|l| l.starts_with("keep three in four ") || l.starts_with("double "))
            .collect();
        let moving = rates.len() == 2
            && rates.iter().all(|l| {
                l.split_whitespace()
                    .nth(if l.starts_with("double") { 1 } else { 4 })
                    .is_some_and(|rate| rate != "0")
            });
        if moving && contents.contains("double: rate") {
            break contents;
        }
        assert!(Instant::now() < deadline, "no live screen:\n{contents}");
    };
    assert!(contents.contains("roda top  numbers"), "{contents}");
    assert!(contents.contains("running"), "{contents}");
    assert!(contents.contains("q quit"), "{contents}");
    // Nothing was drawn past 80x24: the emulator would have scrolled the title away.
    assert!(
        contents.lines().next().unwrap().starts_with("roda top"),
        "{contents}"
    );
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "q did not quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    running.stop();
}

#[test]
fn a_roda_engine_s_workers_show_in_top_and_metrics() {
    use roda_engine::{Progress, RodaEngine};
    let (_dir, path) = temp();
    let mut engine = RodaEngine::new();
    engine.set_name("ingest");
    engine.set_metrics_interval(Duration::from_millis(20));
    engine.metrics_file(&path).unwrap();
    let mut n = 0u64;
    engine
        .run_worker("poller", move || {
            n += 1;
            Progress::from_work(n.is_multiple_of(2))
        })
        .unwrap();
    let json = ok(run(&[
        &"top",
        &path,
        &"--once",
        &"--json",
        &"--interval",
        &"300ms",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{v}");
    assert_eq!(workers[0]["name"], "poller");
    assert!(workers[0]["busy_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let text = ok(run(&[&"top", &path, &"--once", &"--interval", &"10ms"]));
    assert!(text.contains("\npoller "), "{text}");
    engine.shutdown().unwrap();
    let text = ok(run(&[&"metrics", &path]));
    let scrape = scrape(&text);
    let busy = scrape
        .samples
        .iter()
        .find(|s| s.metric == "roda_worker_busy_iterations_total")
        .unwrap();
    assert_eq!(busy.labels.get("worker"), Some("poller"));
    assert_eq!(busy.labels.get("pipeline"), Some("ingest"));
    match busy.value {
        prometheus_parse::Value::Counter(v) => assert!(v > 0.0),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_pipeline_whose_process_died_is_shown_dead() {
    use std::os::unix::fs::FileExt;
    let (_dir, path) = temp();
    let mut engine = StageEngine::<u64, u64>::with_capacity(16)
        .name("crashed")
        .metrics_file(&path)
        .add_stage(map(|x: &u64| *x));
    engine.shutdown().unwrap();
    // What a process killed mid-run leaves: no final sample (header word 8 is 0) and
    // its pid in the store header (offset 80), no longer running.
    let header = roda_store::StoreFile::open(&path).unwrap().header();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let finished_word = header.data_offset + 8 + 8 * 8;
    file.write_all_at(&0u64.to_ne_bytes(), finished_word)
        .unwrap();
    file.write_all_at(&0x7fff_fff0u64.to_ne_bytes(), 80)
        .unwrap();
    let json = ok(run(&[
        &"top",
        &path,
        &"--once",
        &"--json",
        &"--interval",
        &"10ms",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"], "dead", "{v}");
    let text = ok(run(&[&"top", &path, &"--once", &"--interval", &"10ms"]));
    // The pid the pipeline recorded in its header slot (this process here).
    let dead = format!(
        "DEAD: pid {} stopped without shutting down",
        std::process::id()
    );
    assert!(text.contains(&dead), "{text}");
    let text = ok(run(&[&"metrics", &path]));
    assert!(
        text.contains("roda_pipeline_up{pipeline=\"crashed\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("roda_pipeline_finished{pipeline=\"crashed\"} 0\n"),
        "{text}"
    );
}

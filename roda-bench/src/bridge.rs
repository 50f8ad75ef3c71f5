//! `bridge`: roda-bridge against bare async-nats on a local `nats-server -js`.
//!
//! * export: a journal of 24-byte records published by the exporter, against a bare
//!   async-nats publisher of the same batches (same size, same message-id headers, the
//!   same acknowledgements in flight) read from the same journal;
//! * import: the importer into a new journal, against a bare pull loop that fetches
//!   the same messages, acknowledges them and copies their payload;
//! * end to end: a writer appends at a steady rate while a following exporter and a
//!   following importer copy the journal; records/s and the lag from append to import
//!   (p50/p99) are reported separately.
//!
//! Skipped, with the reason printed, when `nats-server` cannot be started.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use roda::prelude::*;
use roda_bridge::{
    BatchHeader, Connection, ExportOptions, Exporter, ImportOptions, Importer, JournalSink,
    JournalSource, Shape,
};

/// Records of 24 bytes; field 0 carries the append time (ns) in the end-to-end run.
type Rec = [u64; 3];
const BATCH_BYTES: usize = 1 << 20;
const IN_FLIGHT: usize = 64;

/// One measurement: records per second of each side.
#[derive(Clone, Debug)]
pub struct BridgeResult {
    pub export_per_s: f64,
    pub bare_publish_per_s: f64,
    pub import_per_s: f64,
    pub bare_fetch_per_s: f64,
    /// The bare pull loop writing each payload into a file (pwrite) instead of memory:
    /// the page-cache copy any file importer makes, for context. 0 when read back from
    /// older output.
    pub bare_file_per_s: f64,
    pub e2e_per_s: f64,
    pub lag_p50_us: f64,
    pub lag_p99_us: f64,
    /// CPU time per record (ns) of this process (client) and of the server, medians, for
    /// export, bare publish, import and bare fetch: less disturbed by other load on the
    /// machine than the rates. Absent (0) when read back from older output.
    pub cpu_ns: [(f64, f64); 4],
    /// Seconds of every round, in the order run, for export, bare publish, import, bare
    /// fetch and bare fetch into a file: a median hides a mode that only some rounds
    /// fall into. Empty when read back from older output.
    pub rounds_s: [Vec<f64>; 5],
}

/// CPU seconds used so far by this process and by the process `server` (user + system).
fn cpu_seconds(server: u32) -> (f64, f64) {
    let client =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        });
    // Fields 14 and 15 of /proc/PID/stat (after the parenthesised name): utime, stime in
    // clock ticks.
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let server = std::fs::read_to_string(format!("/proc/{server}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0);
    (client, server)
}

/// Runs `f` (which returns its own timed seconds) and adds the CPU time of this process
/// and of the server during it.
/// Writes every dirty page back before a timed side starts: each side copies 240 MB
/// through the server's store and a journal file, and the kernel's writeback of one
/// side's pages would otherwise land in the next side's clock (single runs moved by up to
/// 3x). Both sides settle alike.
fn settle() {
    nix::unistd::sync();
    std::thread::sleep(Duration::from_millis(50));
}

fn with_cpu(server: u32, f: impl FnOnce() -> f64) -> (f64, f64, f64) {
    settle();
    let (c0, s0) = cpu_seconds(server);
    let secs = f();
    let (c1, s1) = cpu_seconds(server);
    (secs, c1 - c0, s1 - s0)
}

struct Server {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Server {
    fn start() -> std::result::Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("roda-bench-nats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!("cannot start nats-server ({e}); install it: apt-get install nats-server")
            })?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("Server is ready") {
                break;
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("nats-server did not start:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server {
            child,
            dir,
            url: format!("nats://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads the `RESULT bridge ...` lines `run` prints (a fresh process's output).
pub fn parse_results(text: &str) -> Option<BridgeResult> {
    let field = |side: &str, key: &str| -> Option<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("RESULT bridge {side} ")))?;
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(BridgeResult {
        export_per_s: field("export", "records_per_s")?,
        bare_publish_per_s: field("export", "bare_publish_records_per_s")?,
        import_per_s: field("import", "records_per_s")?,
        bare_fetch_per_s: field("import", "bare_fetch_records_per_s")?,
        bare_file_per_s: field("import", "bare_file_records_per_s").unwrap_or(0.0),
        e2e_per_s: field("end-to-end", "records_per_s")?,
        lag_p50_us: field("end-to-end", "lag_p50_us")?,
        lag_p99_us: field("end-to-end", "lag_p99_us")?,
        cpu_ns: [
            ("export", "cpu_ns"),
            ("export", "bare_cpu_ns"),
            ("import", "cpu_ns"),
            ("import", "bare_cpu_ns"),
        ]
        .map(|(side, key)| {
            let pair = |k: String| field(side, &k).unwrap_or(0.0);
            (pair(format!("{key}_client")), pair(format!("{key}_server")))
        }),
        rounds_s: [
            ("export", "rounds_s"),
            ("export", "bare_rounds_s"),
            ("import", "rounds_s"),
            ("import", "bare_rounds_s"),
            ("import", "bare_file_rounds_s"),
        ]
        .map(|(side, key)| rounds(text, side, key)),
    })
}

/// The comma-separated list `key=a,b,c` of the `RESULT bridge {side}` line.
fn rounds(text: &str, side: &str, key: &str) -> Vec<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("RESULT bridge {side} ")))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        })
        .map_or(Vec::new(), |list| {
            list.split(',').filter_map(|x| x.parse().ok()).collect()
        })
}

fn rec(i: u64) -> Rec {
    [i, i.wrapping_mul(0x9E37_79B9_7F4A_7C15), !i]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs the workload with `records` records; `None` (after printing why) without a server.
pub fn run(records: u64, runs: usize) -> Option<BridgeResult> {
    let server = match Server::start() {
        Ok(s) => s,
        Err(why) => {
            println!("SKIP bridge: {why}");
            return None;
        }
    };
    let dir = server.dir.clone();
    let src = dir.join("src.roda");
    {
        let mut j = JournalStore::<Rec>::create(&src, records as usize).expect("source journal");
        let all: Vec<Rec> = (0..records).map(rec).collect();
        j.append_slice(&all);
    }
    let connection = Connection::new(server.url.clone());

    // Rounds on fresh streams, the order alternating, so neither side reads what the
    // other warmed; the median of each is reported.
    let (mut export, mut bare_pub, mut import, mut bare_fetch_t, mut bare_file) =
        (vec![], vec![], vec![], vec![], vec![]);
    let pid = server.child.id();
    for round in 0..runs.max(1) {
        let ours = format!("EXPORT{round}");
        let theirs = format!("BARE{round}");
        let export_once = || {
            let mut o = ExportOptions::new(ours.clone(), format!("bench.{ours}"));
            o.journal_id = Some(1);
            o.max_batch_bytes = BATCH_BYTES;
            o.max_in_flight = IN_FLIGHT;
            let mut source = JournalSource::<Rec>::open(&src).expect("source");
            let t = Instant::now();
            let report = Exporter::new(connection.clone(), o)
                .run(&mut source)
                .expect("export");
            assert_eq!(report.end, records);
            t.elapsed().as_secs_f64()
        };
        let bare_once = || runtime().block_on(bare_publish(&server.url, &src, records, &theirs));
        if round % 2 == 0 {
            export.push(with_cpu(pid, export_once));
            bare_pub.push(with_cpu(pid, bare_once));
        } else {
            bare_pub.push(with_cpu(pid, bare_once));
            export.push(with_cpu(pid, export_once));
        }
        let import_once = || {
            let dst = dir.join(format!("dst{round}.roda"));
            let mut sink = JournalSink::new(
                JournalStore::<Rec>::create(&dst, records as usize).expect("copy"),
            );
            // CPU over the timed import only (not the copy's creation, check and removal),
            // as the bare loop counts its own.
            settle();
            let (c0, s0) = cpu_seconds(pid);
            let t = Instant::now();
            let report = Importer::new(
                connection.clone(),
                ImportOptions::new(ours.clone(), format!("bench.{ours}")),
            )
            .run(&mut sink)
            .expect("import");
            let secs = t.elapsed().as_secs_f64();
            let (c1, s1) = cpu_seconds(pid);
            assert_eq!(report.end, records);
            drop(sink);
            let copy = JournalReader::<Rec>::open(&dst).expect("copy");
            for i in (0..records).step_by(997) {
                assert_eq!(copy.get_at(i), Some(&rec(i)), "record {i} of the copy");
            }
            drop(copy);
            let _ = std::fs::remove_file(&dst);
            (secs, c1 - c0, s1 - s0)
        };
        let fetch_once =
            || runtime().block_on(bare_fetch(&server.url, records, &theirs, pid, None));
        let bare_copy = dir.join(format!("bare{round}.bin"));
        let file_once = || {
            let side = runtime().block_on(bare_fetch(
                &server.url,
                records,
                &theirs,
                pid,
                Some(&bare_copy),
            ));
            let _ = std::fs::remove_file(&bare_copy);
            side
        };
        if round % 2 == 0 {
            import.push(import_once());
            bare_fetch_t.push(fetch_once());
            bare_file.push(file_once());
        } else {
            bare_file.push(file_once());
            bare_fetch_t.push(fetch_once());
            import.push(import_once());
        }
        runtime().block_on(async {
            let js = jetstream::new(
                async_nats::connect(server.url.as_str())
                    .await
                    .expect("connect"),
            );
            let _ = js.delete_stream(&ours).await;
            let _ = js.delete_stream(&theirs).await;
        });
    }
    let median = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ns = |s: f64| s * 1e9 / records as f64;
    let medians = |v: &[(f64, f64, f64)]| {
        (
            median(v.iter().map(|r| r.0).collect()),
            (
                ns(median(v.iter().map(|r| r.1).collect())),
                ns(median(v.iter().map(|r| r.2).collect())),
            ),
        )
    };
    let ((export_s, export_cpu), (bare_publish_s, bare_publish_cpu)) =
        (medians(&export), medians(&bare_pub));
    let ((import_s, import_cpu), (bare_fetch_s, bare_fetch_cpu)) =
        (medians(&import), medians(&bare_fetch_t));

    // End to end.
    let (e2e_per_s, p50, p99) = end_to_end(&connection, &dir, records.min(5_000_000));

    let per = |s: f64| records as f64 / s;
    let r = BridgeResult {
        export_per_s: per(export_s),
        bare_publish_per_s: per(bare_publish_s),
        import_per_s: per(import_s),
        bare_fetch_per_s: per(bare_fetch_s),
        bare_file_per_s: per(median(bare_file.iter().map(|r| r.0).collect())),
        e2e_per_s,
        lag_p50_us: p50,
        lag_p99_us: p99,
        cpu_ns: [export_cpu, bare_publish_cpu, import_cpu, bare_fetch_cpu],
        rounds_s: [&export, &bare_pub, &import, &bare_fetch_t, &bare_file]
            .map(|v| v.iter().map(|r| r.0).collect()),
    };
    print!("{}", result_lines(&r, runs));
    Some(r)
}

/// Round seconds with `decimals` decimals, joined by `separator`.
pub fn rounds_list(seconds: &[f64], decimals: usize, separator: &str) -> String {
    seconds
        .iter()
        .map(|s| format!("{s:.decimals$}"))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The `RESULT bridge ...` lines of a result (read back by [`parse_results`]).
pub fn result_lines(r: &BridgeResult, runs: usize) -> String {
    let c = &r.cpu_ns;
    let [export, bare_publish, import, bare_fetch, bare_file] =
        r.rounds_s.each_ref().map(|v| rounds_list(v, 3, ","));
    format!(
        "RESULT bridge export records_per_s={:.0} bare_publish_records_per_s={:.0} ratio={:.2} runs={runs} \
         cpu_ns_client={:.1} cpu_ns_server={:.1} bare_cpu_ns_client={:.1} bare_cpu_ns_server={:.1} \
         rounds_s={export} bare_rounds_s={bare_publish}\n\
         RESULT bridge import records_per_s={:.0} bare_fetch_records_per_s={:.0} ratio={:.2} runs={runs} \
         cpu_ns_client={:.1} cpu_ns_server={:.1} bare_cpu_ns_client={:.1} bare_cpu_ns_server={:.1} \
         rounds_s={import} bare_rounds_s={bare_fetch} bare_file_records_per_s={:.0} \
         bare_file_rounds_s={bare_file}\n\
         RESULT bridge end-to-end records_per_s={:.0} lag_p50_us={:.0} lag_p99_us={:.0}\n",
        r.export_per_s,
        r.bare_publish_per_s,
        r.export_per_s / r.bare_publish_per_s,
        c[0].0,
        c[0].1,
        c[1].0,
        c[1].1,
        r.import_per_s,
        r.bare_fetch_per_s,
        r.import_per_s / r.bare_fetch_per_s,
        c[2].0,
        c[2].1,
        c[3].0,
        c[3].1,
        r.bare_file_per_s,
        r.e2e_per_s,
        r.lag_p50_us,
        r.lag_p99_us
    )
}

type AckFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<
                    jetstream::publish::PublishAck,
                    jetstream::context::PublishError,
                >,
            > + Send,
    >,
>;

/// Publishes the journal's records in batches of the exporter's size with the same
/// headers and acknowledgements in flight, reading them from the journal the same way.
async fn bare_publish(url: &str, src: &Path, records: u64, name: &str) -> f64 {
    // Timed from the connection on, as the exporter is.
    let t = Instant::now();
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("bench.{name}")],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("stream");
    let per_batch = (BATCH_BYTES.min(client.server_info().max_payload - 1024) / 24) as u64;
    let mut reader = JournalReader::<Rec>::open(src).expect("source");
    let shape = Shape::of::<Rec>(0);
    let mut acks: futures_util::stream::FuturesOrdered<AckFuture> =
        futures_util::stream::FuturesOrdered::new();
    let mut first = 0;
    while first < records {
        let batch = reader.next_batch(per_batch as usize);
        let header = BatchHeader {
            journal_id: 2,
            first,
            count: batch.len() as u64,
            shape,
        };
        let payload = bytes::Bytes::copy_from_slice(bytemuck::cast_slice(batch));
        first += batch.len() as u64;
        if acks.len() == IN_FLIGHT {
            acks.next().await.expect("an ack").expect("acknowledged");
        }
        let message = PublishMessage::build()
            .payload(payload)
            .headers(header.to_headers());
        let ack = js
            .send_publish(format!("bench.{name}"), message)
            .await
            .expect("publish");
        acks.push_back(std::future::IntoFuture::into_future(ack));
    }
    while let Some(ack) = acks.next().await {
        ack.expect("acknowledged");
    }
    t.elapsed().as_secs_f64()
}

/// Fetches the exported stream with a pull consumer, acknowledging each message and
/// copying its payload (into memory, or with `into` into that new file at the next
/// offset, as pwrite), until every record is in.
async fn bare_fetch(
    url: &str,
    records: u64,
    name: &str,
    server: u32,
    into: Option<&Path>,
) -> (f64, f64, f64) {
    settle();
    // Timed from the connection on, as the importer is; CPU over the same span.
    let (c0, s0) = cpu_seconds(server);
    let t = Instant::now();
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let stream = js.get_stream(name).await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            filter_subject: format!("bench.{name}"),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .stream()
        // The importer's pull sizes: 64 messages, 8 MiB.
        .max_messages_per_batch(64)
        .max_bytes_per_batch(8 << 20)
        .messages()
        .await
        .expect("messages");
    let file = into.map(|path| std::fs::File::create(path).expect("the bare copy's file"));
    let mut out: Vec<u8> = Vec::with_capacity(if file.is_some() {
        0
    } else {
        records as usize * 24
    });
    let mut copied = 0u64;
    while copied < records * 24 {
        let m = messages.next().await.expect("a message").expect("fetched");
        match &file {
            Some(file) => std::os::unix::fs::FileExt::write_all_at(file, &m.payload, copied)
                .expect("the bare copy's write"),
            None => out.extend_from_slice(&m.payload),
        }
        copied += m.payload.len() as u64;
        m.ack().await.expect("acked");
    }
    let secs = t.elapsed().as_secs_f64();
    let (c1, s1) = cpu_seconds(server);
    (secs, c1 - c0, s1 - s0)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A writer appends `records` at about 2M records/s (in bursts of 2,000 a millisecond)
/// while a following exporter and importer copy them; a reader of the copy measures
/// the lag from append to import. Returns (records/s, lag p50 µs, lag p99 µs).
fn end_to_end(connection: &Connection, dir: &Path, records: u64) -> (f64, f64, f64) {
    let src = dir.join("e2e-src.roda");
    let dst = dir.join("e2e-dst.roda");
    let mut writer = JournalStore::<Rec>::create(&src, records as usize).expect("source");
    let stop_export = Arc::new(AtomicBool::new(false));
    let stop_import = Arc::new(AtomicBool::new(false));
    let mut eo = ExportOptions::new("E2E", "bench.e2e");
    eo.journal_id = Some(3);
    eo.follow = true;
    eo.linger = Duration::from_millis(1);
    eo.stop = Some(stop_export.clone());
    let mut source = JournalSource::new(writer.reader());
    let c = connection.clone();
    let exporter = std::thread::spawn(move || Exporter::new(c, eo).run(&mut source));
    let mut io = ImportOptions::new("E2E", "bench.e2e");
    io.follow = true;
    io.stop = Some(stop_import.clone());
    let c = connection.clone();
    let dst2 = dst.clone();
    let importer = std::thread::spawn(move || {
        let mut sink =
            JournalSink::new(JournalStore::<Rec>::create(&dst2, records as usize).expect("copy"));
        loop {
            match Importer::new(c.clone(), io.clone()).run(&mut sink) {
                Err(roda_bridge::BridgeError::Config(m)) if m.contains("does not exist") => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                other => return other,
            }
        }
    });
    // The copy's reader: lag of every 100th record, from its append time to when the
    // reader sees it in the copy.
    let lag_reader = std::thread::spawn(move || {
        let mut reader = loop {
            if let Ok(r) = JournalReader::<Rec>::open(&dst) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let mut lags = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
        let deadline = Instant::now() + Duration::from_secs(120);
        while reader.get_index() < records && Instant::now() < deadline {
            let start = reader.get_index();
            let got = reader.next_batch(1 << 16);
            let now = now_ns();
            for (k, r) in got.iter().enumerate() {
                if (start + k as u64) % 100 == 0 {
                    let _ = lags.record(now.saturating_sub(r[0]) / 1000);
                }
            }
            if got.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (reader.get_index(), lags)
    });
    let t = Instant::now();
    let mut i = 0;
    let mut batch = Vec::with_capacity(2000);
    while i < records {
        batch.clear();
        let now = now_ns();
        batch.extend((i..(i + 2000).min(records)).map(|k| [now, k, !k]));
        i += batch.len() as u64;
        writer.append_slice(&batch);
        std::thread::sleep(Duration::from_millis(1));
    }
    let (copied, lags) = lag_reader.join().expect("lag reader");
    let secs = t.elapsed().as_secs_f64();
    stop_export.store(true, Ordering::Relaxed);
    stop_import.store(true, Ordering::Relaxed);
    exporter.join().expect("exporter").expect("export");
    importer.join().expect("importer").expect("import");
    assert_eq!(copied, records, "the end-to-end copy is incomplete");
    (
        records as f64 / secs,
        lags.value_at_quantile(0.5) as f64,
        lags.value_at_quantile(0.99) as f64,
    )
}

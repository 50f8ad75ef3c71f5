//! Append latency, one writer alone: every append timed on its own (the timer's own
//! cost, about 20 ns, is inside every figure), with the minor page faults the writer
//! took, per journal kind and option, in files on the project's file system and on
//! tmpfs (`/dev/shm`), and in anonymous memory.
//!
//! `RODA_BENCH_APPEND_HUGE_PAGES=1` asks every journal for transparent huge pages
//! (`huge_pages(true)`), to compare.
//!
//! Recycled rings are measured in steady state: one full pass over the ring first (not
//! timed), so every segment has been used once; then `events` timed appends.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use roda::{JournalStore, Retention, SegmentedJournal};

/// A 24-byte record, the size of the other workloads' messages.
type Rec = [u64; 3];

/// Records per segment of the rings (1.5 MiB of 24-byte records).
const SEGMENT_RECORDS: usize = 1 << 16;
/// Segments of a `KeepLast` ring and of an in-memory ring.
const RING_SEGMENTS: usize = 4;
/// The pre-toucher's window.
const PRETOUCH: usize = 4 << 20;

/// The journal a configuration appends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// No journal: the timer around an empty step, the floor of every other row.
    ClockOnly,
    /// `JournalStore::in_memory(events)`.
    PlainMemory,
    /// `JournalStore::create(path, events)`.
    PlainFile,
    /// `SegmentedJournal::in_memory(SEGMENT_RECORDS, RING_SEGMENTS)`, warm.
    RingMemory,
    /// `SegmentedJournal::create(dir, SEGMENT_RECORDS, KeepLast(RING_SEGMENTS))`, warm.
    KeepLast,
    /// `SegmentedJournal::create(dir, SEGMENT_RECORDS, KeepAll)`.
    KeepAll,
}

impl Journal {
    pub fn name(self) -> &'static str {
        match self {
            Journal::ClockOnly => "clock-only",
            Journal::PlainMemory => "plain-memory",
            Journal::PlainFile => "plain-file",
            Journal::RingMemory => "ring-memory",
            Journal::KeepLast => "keeplast-file",
            Journal::KeepAll => "keepall-file",
        }
    }

    pub fn uses_files(self) -> bool {
        matches!(
            self,
            Journal::PlainFile | Journal::KeepLast | Journal::KeepAll
        )
    }
}

/// One configuration of the workload: a journal with `populate` and the pre-toucher
/// on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub journal: Journal,
    pub populate: bool,
    pub pretouch: bool,
}

impl Kind {
    /// The clock-only baseline, then every journal with populate and pretouch off and
    /// on.
    pub fn all() -> Vec<Kind> {
        let mut out = vec![Kind {
            journal: Journal::ClockOnly,
            populate: false,
            pretouch: false,
        }];
        for journal in [
            Journal::PlainMemory,
            Journal::PlainFile,
            Journal::RingMemory,
            Journal::KeepLast,
            Journal::KeepAll,
        ] {
            for (populate, pretouch) in [(false, false), (true, false), (false, true), (true, true)]
            {
                out.push(Kind {
                    journal,
                    populate,
                    pretouch,
                });
            }
        }
        out
    }

    /// `journal[+populate][+pretouch]`.
    pub fn name(self) -> String {
        let mut name = self.journal.name().to_owned();
        if self.populate {
            name.push_str("+populate");
        }
        if self.pretouch {
            name.push_str("+pretouch");
        }
        name
    }

    /// Whether `only` (a full name, or a journal name for all its variants) selects it.
    pub fn selected_by(self, only: &str) -> bool {
        only == self.name() || only == self.journal.name()
    }

    /// The pre-toucher's window this configuration asks for (0: none).
    fn pretouch(self) -> usize {
        if self.pretouch {
            PRETOUCH
        } else {
            0
        }
    }

    pub fn uses_files(self) -> bool {
        self.journal.uses_files()
    }
}

/// What one configuration measured.
#[derive(Clone, Debug)]
pub struct AppendRun {
    pub kind: Kind,
    /// Load average (1 minute) when the configuration started.
    pub load: f64,
    /// Where its files lived ("memory" for anonymous memory).
    pub place: String,
    pub appends: u64,
    /// Percentiles in nanoseconds: p50, p99, p99.9, p99.99, max.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    /// Appends that took 100 µs or more.
    pub over_100us: u64,
    /// Minor page faults taken by the writer thread during the timed appends.
    pub minflt: u64,
    /// Times the scheduler took the CPU from the writer thread (involuntary context
    /// switches) during the timed appends.
    pub preempted: u64,
    /// Steal time of the VM's CPUs during the timed appends (the hypervisor running
    /// something else), ms.
    pub steal_ms: u64,
    /// CPU time of the writer thread, and of every other thread of the process (the
    /// pre-toucher, where there is one), during the timed appends.
    pub writer_cpu_ns: u64,
    pub other_cpu_ns: u64,
}

/// CPU time (user + system) of the whole process and of the calling thread, in ns.
fn cpu_ns() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    let ns = |who| {
        getrusage(who).map_or(0, |u| {
            let t = |tv: nix::sys::time::TimeVal| {
                tv.tv_sec() as u64 * 1_000_000_000 + tv.tv_usec() as u64 * 1000
            };
            t(u.user_time()) + t(u.system_time())
        })
    };
    (ns(UsageWho::RUSAGE_SELF), ns(UsageWho::RUSAGE_THREAD))
}

/// Minor faults and involuntary context switches of the calling thread so far.
fn thread_minflt() -> (u64, u64) {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).map_or((0, 0), |u| {
        (
            u.minor_page_faults() as u64,
            u.involuntary_context_switches() as u64,
        )
    })
}

/// Time the hypervisor ran something else on this VM's CPUs (steal, all CPUs), in ms.
fn steal_ms() -> u64 {
    // /proc/stat: "cpu user nice system idle iowait irq softirq steal ...", in ticks
    // of 10 ms (USER_HZ 100).
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(8)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |ticks| ticks * 10)
}

/// The places to put files: the project's file system (`target/`) and tmpfs.
pub fn places() -> Vec<(String, PathBuf)> {
    let mut out = vec![(
        "disk".to_owned(),
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())),
    )];
    if Path::new("/dev/shm").is_dir() {
        out.push(("tmpfs".to_owned(), PathBuf::from("/dev/shm")));
    }
    out
}

/// Times `events` appends into a journal of `kind` with files under `base`.
pub fn run(kind: Kind, base: &Path, place: &str, events: u64) -> AppendRun {
    let load = load_average();
    let dir = tempdir_in(base);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
    let mut item: Rec = [0; 3];
    let mut cpu = (0u64, 0u64);
    let mut sched = (0u64, 0u64);
    let mut time = |append: &mut dyn FnMut(&Rec)| -> u64 {
        let (all0, me0) = cpu_ns();
        let steal0 = steal_ms();
        let (f0, cs0) = thread_minflt();
        for i in 0..events {
            item[0] = i;
            let t = Instant::now();
            append(&item);
            let ns = t.elapsed().as_nanos() as u64;
            hist.saturating_record(ns.max(1));
        }
        let (f1, cs1) = thread_minflt();
        let (all1, me1) = cpu_ns();
        cpu = (me1 - me0, (all1 - all0).saturating_sub(me1 - me0));
        sched = (cs1 - cs0, steal_ms().saturating_sub(steal0));
        f1 - f0
    };
    let cap = events as usize;
    let minflt = match kind.journal {
        Journal::ClockOnly => time(&mut |r| {
            std::hint::black_box(r);
        }),
        Journal::PlainMemory => {
            let mut j = JournalStore::<Rec>::options()
                .populate(kind.populate)
                .pretouch(kind.pretouch())
                .huge_pages(huge_pages())
                .in_memory(cap)
                .expect("journal");
            settle(kind);
            time(&mut |r| {
                j.append(r);
            })
        }
        Journal::PlainFile => {
            let mut j = JournalStore::<Rec>::options()
                .populate(kind.populate)
                .pretouch(kind.pretouch())
                .huge_pages(huge_pages())
                .create(dir.join("plain.roda"), cap)
                .expect("journal file");
            settle(kind);
            time(&mut |r| {
                j.append(r);
            })
        }
        Journal::RingMemory | Journal::KeepLast | Journal::KeepAll => {
            let options = SegmentedJournal::<Rec>::options()
                .populate(kind.populate)
                .pretouch(kind.pretouch())
                .huge_pages(huge_pages());
            let mut j = match kind.journal {
                Journal::RingMemory => options.in_memory(SEGMENT_RECORDS, RING_SEGMENTS),
                Journal::KeepLast => options
                    .retention(Retention::KeepLast(RING_SEGMENTS))
                    .create(dir.join("ring"), SEGMENT_RECORDS),
                _ => options
                    .retention(Retention::KeepAll)
                    .create(dir.join("archive"), SEGMENT_RECORDS),
            }
            .expect("segmented journal");
            if kind.journal == Journal::KeepAll {
                settle(kind);
            } else {
                // One full pass: every segment of the ring used once (not timed).
                for i in 0..(SEGMENT_RECORDS * RING_SEGMENTS) as u64 {
                    j.append(&[i; 3]);
                }
            }
            time(&mut |r| {
                j.append(r);
            })
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    AppendRun {
        kind,
        load,
        place: if kind.uses_files() {
            place.to_owned()
        } else if kind.journal == Journal::ClockOnly {
            "-".to_owned()
        } else {
            "memory".to_owned()
        },
        appends: events,
        p50: hist.value_at_quantile(0.5),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        p9999: hist.value_at_quantile(0.9999),
        max: hist.max(),
        over_100us: hist.count_between(100_000, u64::MAX),
        minflt,
        preempted: sched.0,
        steal_ms: sched.1,
        writer_cpu_ns: cpu.0,
        other_cpu_ns: cpu.1,
    }
}

/// Whether the journals ask for transparent huge pages (`RODA_BENCH_APPEND_HUGE_PAGES=1`).
fn huge_pages() -> bool {
    std::env::var("RODA_BENCH_APPEND_HUGE_PAGES").is_ok_and(|v| v == "1")
}

/// The 1-minute load average (0 where /proc/loadavg is missing).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// With a pre-toucher, gives it time to fill its first window (as a program would
/// between creating a journal and its first burst).
fn settle(kind: Kind) {
    if kind.pretouch() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A fresh directory under `base` for one run's files.
fn tempdir_in(base: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base.join(format!("roda-bench-append-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    dir
}

impl AppendRun {
    pub fn print(&self) {
        println!(
            "  {:<38} {:<6} p50 {:>4} ns  p99 {:>5} ns  p99.9 {:>6} ns  p99.99 {:>7} ns  max {:>9} ns  >100us {:>3}  minflt {:>6}  preempted {:>3}  steal {:>4} ms  cpu writer {:>5} ms, others {:>4} ms  load {:.2}",
            self.kind.name(),
            self.place,
            self.p50,
            self.p99,
            self.p999,
            self.p9999,
            self.max,
            self.over_100us,
            self.minflt,
            self.preempted,
            self.steal_ms,
            self.writer_cpu_ns / 1_000_000,
            self.other_cpu_ns / 1_000_000,
            self.load
        );
        println!(
            "RESULT append {}@{} p50_ns={} p99_ns={} p999_ns={} p9999_ns={} max_ns={} over_100us={} minflt={} preempted={} steal_ms={} writer_cpu_ns={} other_cpu_ns={} appends={} load={:.2}",
            self.kind.name(),
            self.place,
            self.p50,
            self.p99,
            self.p999,
            self.p9999,
            self.max,
            self.over_100us,
            self.minflt,
            self.preempted,
            self.steal_ms,
            self.writer_cpu_ns,
            self.other_cpu_ns,
            self.appends,
            self.load
        );
    }
}

/// The report's section for `runs` (also printed by `roda-bench append`).
pub fn markdown(runs: &[AppendRun], machine: &str) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let events = runs.first().map_or(0, |r| r.appends);
    let (lo, hi) = runs.iter().fold((f64::MAX, 0f64), |(lo, hi), r| {
        (lo.min(r.load), hi.max(r.load))
    });
    let _ = writeln!(md, "\n## Append: latency and page faults per append\n");
    let _ = writeln!(
        md,
        "{events} appends of 24-byte records per row, the writer alone, each append timed on \
         its own (`Instant` around it: the clock-only row is that timer around nothing, the \
         floor of every row). Rings (`ring-memory`, `keeplast-file`) after one untimed pass; \
         segments of 65,536 records; pre-toucher window 4 MiB. Faults, involuntary context \
         switches (preempted) and CPU are the writer thread's; steal is the VM's. Machine: \
         {machine}; load average {lo:.2}–{hi:.2} during the rows. \
         `cargo run --release -p roda-bench -- append --events {events}`.\n"
    );
    let _ = writeln!(
        md,
        "| journal | files | p50 ns | p99.9 ns | p99.99 ns | max µs | ≥100 µs | writer faults | preempted | steal ms | pre-toucher CPU ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.kind.name(),
            r.place,
            r.p50,
            r.p999,
            r.p9999,
            r.max as f64 / 1000.0,
            r.over_100us,
            r.minflt,
            r.preempted,
            r.steal_ms,
            if r.kind.pretouch {
                (r.other_cpu_ns / 1_000_000).to_string()
            } else {
                String::new()
            }
        );
    }
    md
}

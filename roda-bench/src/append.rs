//! Append latency, one writer alone: every append timed on its own (the timer's own
//! cost, about 20 ns, is inside every figure), with the minor page faults the writer
//! took, per journal kind and option, in files on the project's file system and on
//! tmpfs (`/dev/shm`), and in anonymous memory.
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

/// One configuration of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `JournalStore::in_memory(events)`.
    PlainMemory,
    /// `JournalStore::create(path, events)`, defaults.
    PlainFile,
    /// `JournalStore::options().populate(true).create(path, events)`.
    PlainFilePopulate,
    /// `JournalStore::options().pretouch(PRETOUCH).in_memory(events)`.
    PlainMemoryPretouch,
    /// `JournalStore::options().pretouch(PRETOUCH).create(path, events)`.
    PlainFilePretouch,
    /// `SegmentedJournal::in_memory(SEGMENT_RECORDS, RING_SEGMENTS)`, warm.
    RingMemory,
    /// `SegmentedJournal::create(dir, SEGMENT_RECORDS, KeepLast(RING_SEGMENTS))`, warm.
    RingFile,
    /// The same with `pretouch(PRETOUCH)`.
    RingFilePretouch,
    /// `SegmentedJournal::create(dir, SEGMENT_RECORDS, KeepAll)`.
    ArchiveFile,
    /// The same with `pretouch(PRETOUCH)`.
    ArchiveFilePretouch,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::PlainMemory,
        Kind::PlainMemoryPretouch,
        Kind::PlainFile,
        Kind::PlainFilePopulate,
        Kind::PlainFilePretouch,
        Kind::RingMemory,
        Kind::RingFile,
        Kind::RingFilePretouch,
        Kind::ArchiveFile,
        Kind::ArchiveFilePretouch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PlainMemory => "plain-memory",
            Kind::PlainFile => "plain-file",
            Kind::PlainFilePopulate => "plain-file-populate",
            Kind::PlainMemoryPretouch => "plain-memory-pretouch",
            Kind::PlainFilePretouch => "plain-file-pretouch",
            Kind::RingMemory => "ring-memory",
            Kind::RingFile => "keeplast-file",
            Kind::RingFilePretouch => "keeplast-file-pretouch",
            Kind::ArchiveFile => "keepall-file",
            Kind::ArchiveFilePretouch => "keepall-file-pretouch",
        }
    }

    /// The pre-toucher's window this configuration asks for (0: none).
    fn pretouch(self) -> usize {
        match self {
            Kind::PlainMemoryPretouch
            | Kind::PlainFilePretouch
            | Kind::RingFilePretouch
            | Kind::ArchiveFilePretouch => PRETOUCH,
            _ => 0,
        }
    }

    pub fn uses_files(self) -> bool {
        !matches!(
            self,
            Kind::PlainMemory | Kind::PlainMemoryPretouch | Kind::RingMemory
        )
    }
}

/// What one configuration measured.
#[derive(Clone, Debug)]
pub struct AppendRun {
    pub kind: Kind,
    /// Where its files lived ("memory" for anonymous memory).
    pub place: String,
    pub appends: u64,
    /// Percentiles in nanoseconds: p50, p99, p99.9, p99.99, max.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    /// Minor page faults taken by the writer thread during the timed appends.
    pub minflt: u64,
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

/// Minor faults of the calling thread so far.
fn thread_minflt() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map_or(0, |u| u.minor_page_faults() as u64)
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
    let dir = tempdir_in(base);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
    let mut item: Rec = [0; 3];
    let mut cpu = (0u64, 0u64);
    let mut time = |append: &mut dyn FnMut(&Rec)| -> u64 {
        let (all0, me0) = cpu_ns();
        let f0 = thread_minflt();
        for i in 0..events {
            item[0] = i;
            let t = Instant::now();
            append(&item);
            let ns = t.elapsed().as_nanos() as u64;
            hist.saturating_record(ns.max(1));
        }
        let faults = thread_minflt() - f0;
        let (all1, me1) = cpu_ns();
        cpu = (me1 - me0, (all1 - all0).saturating_sub(me1 - me0));
        faults
    };
    let cap = events as usize;
    let minflt = match kind {
        Kind::PlainMemory | Kind::PlainMemoryPretouch => {
            let mut j = JournalStore::<Rec>::options()
                .pretouch(kind.pretouch())
                .in_memory(cap)
                .expect("journal");
            settle(kind);
            time(&mut |r| {
                j.append(r);
            })
        }
        Kind::PlainFile | Kind::PlainFilePopulate | Kind::PlainFilePretouch => {
            let mut j = JournalStore::<Rec>::options()
                .populate(kind == Kind::PlainFilePopulate)
                .pretouch(kind.pretouch())
                .create(dir.join("plain.roda"), cap)
                .expect("journal file");
            settle(kind);
            time(&mut |r| {
                j.append(r);
            })
        }
        Kind::RingMemory
        | Kind::RingFile
        | Kind::RingFilePretouch
        | Kind::ArchiveFile
        | Kind::ArchiveFilePretouch => {
            let options = SegmentedJournal::<Rec>::options().pretouch(kind.pretouch());
            let mut j = match kind {
                Kind::RingMemory => options.in_memory(SEGMENT_RECORDS, RING_SEGMENTS),
                Kind::RingFile | Kind::RingFilePretouch => options
                    .retention(Retention::KeepLast(RING_SEGMENTS))
                    .create(dir.join("ring"), SEGMENT_RECORDS),
                _ => options
                    .retention(Retention::KeepAll)
                    .create(dir.join("archive"), SEGMENT_RECORDS),
            }
            .expect("segmented journal");
            if matches!(kind, Kind::ArchiveFile | Kind::ArchiveFilePretouch) {
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
        place: if kind.uses_files() {
            place.to_owned()
        } else {
            "memory".to_owned()
        },
        appends: events,
        p50: hist.value_at_quantile(0.5),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        p9999: hist.value_at_quantile(0.9999),
        max: hist.max(),
        minflt,
        writer_cpu_ns: cpu.0,
        other_cpu_ns: cpu.1,
    }
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
            "  {:<22} {:<6} p50 {:>4} ns  p99 {:>5} ns  p99.9 {:>6} ns  p99.99 {:>7} ns  max {:>9} ns  minflt {:>6}  cpu writer {:>5} ms, others {:>4} ms",
            self.kind.name(),
            self.place,
            self.p50,
            self.p99,
            self.p999,
            self.p9999,
            self.max,
            self.minflt,
            self.writer_cpu_ns / 1_000_000,
            self.other_cpu_ns / 1_000_000
        );
        println!(
            "RESULT append {}@{} p50_ns={} p99_ns={} p999_ns={} p9999_ns={} max_ns={} minflt={} writer_cpu_ns={} other_cpu_ns={} appends={}",
            self.kind.name(),
            self.place,
            self.p50,
            self.p99,
            self.p999,
            self.p9999,
            self.max,
            self.minflt,
            self.writer_cpu_ns,
            self.other_cpu_ns,
            self.appends
        );
    }
}

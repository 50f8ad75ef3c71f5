//! What every workload reports beside its throughput: page faults, peak RSS, the
//! machine; and the statistics over repeated runs.

use std::time::Duration;

/// Page faults so far (getrusage RUSAGE_SELF): (minor, major).
pub fn faults() -> (u64, u64) {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => (u.minor_page_faults() as u64, u.major_page_faults() as u64),
        Err(_) => (0, 0),
    }
}

/// Resets the process's peak RSS (VmHWM) so the next run reports its own peak.
pub fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets the peak resident set size.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in bytes (VmHWM).
pub fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// Resident set size now, in bytes (VmRSS).
pub fn rss() -> u64 {
    status_bytes("VmRSS:")
}

/// A kB field of /proc/self/status, in bytes; 0 where it cannot be read.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One measured run of one implementation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    /// Operations (events, messages) completed.
    pub ops: u64,
    /// Time the clock covered.
    pub elapsed: Duration,
    pub minflt: u64,
    pub majflt: u64,
    pub peak_rss: u64,
    /// Resident set size when the run started (inputs generated up front included), so
    /// `peak_rss - start_rss` is what the run itself added.
    pub start_rss: u64,
}

impl Run {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// What the run added to the resident set at its peak.
    pub fn rss_growth(&self) -> u64 {
        self.peak_rss.saturating_sub(self.start_rss)
    }
}

/// Measures `f` (which returns the number of operations and the time its clock
/// covered), with page faults and peak RSS around it.
pub fn measure(f: impl FnOnce() -> (u64, Duration)) -> Run {
    reset_peak_rss();
    let start_rss = rss();
    let (min0, maj0) = faults();
    let (ops, elapsed) = f();
    let (min1, maj1) = faults();
    Run {
        ops,
        elapsed,
        minflt: min1 - min0,
        majflt: maj1 - maj0,
        peak_rss: peak_rss(),
        start_rss,
    }
}

/// Median, min and max of a metric over runs.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(values: impl IntoIterator<Item = f64>) -> Stats {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Stats {
        median,
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
    }
}

/// The median run by throughput (its faults and RSS are the ones reported).
pub fn median_run(runs: &[Run]) -> Run {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
    sorted[sorted.len() / 2]
}

/// CPU model and core count of this machine.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{model}, {cores} cores, Linux {kernel}")
}

/// Pins the calling thread to `core` when the machine has it; returns whether it did.
/// Only worker threads are pinned, never the main thread, so every workload starts from
/// the same affinity.
pub fn pin(core: usize) -> bool {
    cores().contains(&core) && core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// The cores this process may use, read once before any thread is pinned (a pinned
/// thread would only see its own core).
pub fn cores() -> &'static [usize] {
    static CORES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| {
        core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect()
    })
}

/// Cores for a producer and a consumer: distinct when the machine has two.
pub fn two_cores() -> (usize, usize) {
    match cores() {
        [a, b, ..] => (*a, *b),
        [a] => (*a, *a),
        [] => (0, 0),
    }
}

//! The pre-toucher: a background thread that keeps a window of pages ahead of a
//! journal's writer faulted in for writing, so appends never stop for a page fault.
//!
//! It asks the kernel to populate pages (madvise MADV_POPULATE_WRITE) and never reads
//! or writes a record byte itself: the file's contents, the write sequence and crash
//! recovery are exactly what they would be without it. It follows the published count
//! (one Acquire load per check), so a batch not yet published only delays it.
//!
//! A plain journal is one region; a segmented journal's writer moves from segment to
//! segment, and a `KeepAll` journal maps a brand-new file at each roll: the pre-toucher
//! follows the segment being written (never the next one, which may still map an
//! archived file) and starts over at each new segment, which the roll wakes it for.
//! Once it has caught up with a `KeepAll` writer it also prepares the next segment
//! file (created, reserved, mapped on its own, its first window populated, then named
//! as a spare), so the roll only moves its mapping over the ring slot, and it closes
//! the file the last roll archived: the writer's roll names, creates and closes no
//! file.

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::file::region::Region;

/// Pages populated per madvise call: small enough to stay ahead of a writer that is
/// close behind, large enough that the call's fixed cost is a small share.
const CHUNK: usize = 256 * 1024;
const PAGE: usize = 4096;
/// Shortest sleep between checks while the writer moves (the pace follows its rate),
/// and the longest sleep, when it idles.
const BUSY_SLEEP: Duration = Duration::from_micros(100);
const IDLE_SLEEP: Duration = Duration::from_millis(10);

/// A running pre-toucher; stops and joins its thread when dropped.
pub(crate) struct Pretoucher {
    stop: Arc<AtomicBool>,
    /// Set while the thread sleeps because the writer stood still: only then does a
    /// roll wake it (see [`wake`](Self::wake)).
    idle: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pretoucher {
    /// Starts a thread keeping `window` bytes past the writer's position populated.
    pub(crate) fn start<W: Followed>(core: Arc<W>, window: usize) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let flags = (Arc::clone(&stop), Arc::clone(&idle));
        let thread = std::thread::Builder::new()
            .name("roda-pretouch".into())
            .spawn(move || run(core.as_ref(), window, &flags.0, &flags.1))?;
        Ok(Pretoucher {
            stop,
            idle,
            thread: Some(thread),
        })
    }

    /// The writer moved to a new segment: wakes the thread if it sleeps because the
    /// writer stood still. A thread following a moving writer sleeps until about when
    /// the writer reaches the end of its segment and finds the new one by itself:
    /// waking it costs the writer a system call and, on a virtual machine, an
    /// interrupt sent to another CPU (tens of µs), on every roll.
    pub(crate) fn wake(&self) {
        // Relaxed: a hint; a wake missed (the thread just decided to sleep) only
        // delays it by one idle sleep, after which it finds the new segment.
        if !self.idle.load(StdOrdering::Relaxed) {
            return;
        }
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Pretoucher {
    fn drop(&mut self) {
        // Relaxed: the flag carries no data; join below is the synchronisation.
        self.stop.store(true, StdOrdering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Where a writer is: the region it writes, its byte offset there, the end of what is
/// worth touching, and which contents the region holds now (a segment's first
/// sequence; it changes when the writer moves on).
pub(crate) struct Position<'a> {
    pub(crate) region: &'a dyn Region,
    pub(crate) at: usize,
    pub(crate) end: usize,
    pub(crate) epoch: u64,
}

/// A store whose writer a pre-toucher can follow. `None`: the writer is between
/// segments (the next one is not mapped for it yet).
pub(crate) trait Followed: Send + Sync + 'static {
    fn position(&self) -> Option<Position<'_>>;

    /// Prepares what the writer needs after the region of `epoch` (a `KeepAll`
    /// journal's next segment file), with its first `window` bytes populated.
    fn prepare_next(&self, epoch: u64, window: usize) -> roda_core::Result<()> {
        let _ = (epoch, window);
        Ok(())
    }
}

fn run<W: Followed>(core: &W, window: usize, stop: &AtomicBool, idle: &AtomicBool) {
    // Bytes touched in the region of `epoch`.
    let mut touched = 0usize;
    let mut epoch = u64::MAX;
    let mut sleep = BUSY_SLEEP;
    let mut last = (u64::MAX, 0usize);
    // When `last` was seen.
    let mut checked = Instant::now();
    // The epoch whose successor was prepared (or failed to be).
    let mut prepared = u64::MAX;
    // Relaxed: see `Drop`.
    while !stop.load(StdOrdering::Relaxed) {
        let Some(p) = core.position() else {
            std::thread::park_timeout(BUSY_SLEEP);
            continue;
        };
        if p.epoch != epoch {
            epoch = p.epoch;
            touched = 0;
        }
        // The writer may have run past what was touched: never touch behind it.
        touched = touched.max(p.at / PAGE * PAGE);
        let target = p.at.saturating_add(window).min(p.end);
        if touched < target {
            let len = (target - touched).min(CHUNK);
            if let Err(e) = p.region.prefault_range(touched, len) {
                log::warn!("roda: the pre-toucher stops ({e}); pages fault on first use");
                return;
            }
            touched += len;
            sleep = BUSY_SLEEP;
            continue;
        }
        // Caught up: prepare what comes after this region, once.
        if prepared != p.epoch {
            prepared = p.epoch;
            if let Err(e) = core.prepare_next(p.epoch, window) {
                log::warn!("roda: the pre-toucher could not prepare the next segment ({e})");
            }
            continue;
        }
        // Caught up: sleep longer while the writer stands still (a roll wakes the
        // thread then); while it moves, sleep until it has used about half of what
        // lies touched ahead of it, at the rate it moved since the last check: near a
        // segment's end the checks come closer, so the thread finds the next segment
        // soon after the roll without the writer waking it. Each wake-up may take a
        // CPU from the writer (on a busy machine, a woken thread preempts the running
        // one), so it wakes no more often than the window needs: a few hundred times
        // a second at full speed with a 4 MiB window, instead of every 100 µs.
        let now = (p.epoch, p.at);
        let elapsed = checked.elapsed();
        let still = now == last;
        sleep = if still {
            (sleep * 2).min(IDLE_SLEEP)
        } else if now.0 == last.0 && now.1 > last.1 {
            let moved = (now.1 - last.1) as f64;
            let ahead = touched.saturating_sub(p.at) as f64;
            Duration::try_from_secs_f64(elapsed.as_secs_f64() * ahead / 2.0 / moved)
                .unwrap_or(BUSY_SLEEP)
                .clamp(BUSY_SLEEP, IDLE_SLEEP)
        } else {
            BUSY_SLEEP
        };
        last = now;
        checked = Instant::now();
        // Relaxed: a hint for `Pretoucher::wake`.
        idle.store(still, StdOrdering::Relaxed);
        std::thread::park_timeout(sleep);
        idle.store(false, StdOrdering::Relaxed);
    }
}

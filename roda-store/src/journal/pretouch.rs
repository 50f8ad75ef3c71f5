//! The pre-toucher: a background thread that keeps a window of pages ahead of a
//! journal's writer faulted in for writing, so appends never stop for a page fault.
//!
//! It asks the kernel to populate pages (madvise MADV_POPULATE_WRITE) and never reads
//! or writes a record byte itself: the file's contents, the write sequence and crash
//! recovery are exactly what they would be without it. It follows the published count
//! (one Acquire load per check), so a batch not yet published only delays it.

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::journal::core::JournalCore;

/// Pages populated per madvise call: small enough to stay ahead of a writer that is
/// close behind, large enough that the call's fixed cost is a small share.
const CHUNK: usize = 256 * 1024;
const PAGE: usize = 4096;
/// Sleep between checks while the writer moves, and the longest sleep when it idles.
const BUSY_SLEEP: Duration = Duration::from_micros(100);
const IDLE_SLEEP: Duration = Duration::from_millis(10);

/// A running pre-toucher; stops and joins its thread when dropped.
pub(crate) struct Pretoucher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pretoucher {
    /// Starts a thread keeping `window` bytes past the writer's position populated.
    pub(crate) fn start<T: Send + Sync + 'static>(
        core: Arc<JournalCore<T>>,
        window: usize,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("roda-pretouch".into())
            .spawn(move || run(&core, window, &flag))?;
        Ok(Pretoucher {
            stop,
            thread: Some(thread),
        })
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

/// Byte offsets (from the region's start) of the writer's position and of the data end.
fn positions<T>(core: &JournalCore<T>) -> (usize, usize) {
    let size = std::mem::size_of::<T>();
    let data = core.backing.info.data_offset as usize;
    let end = data + core.capacity() * size;
    (data + core.published() as usize * size, end)
}

fn run<T>(core: &JournalCore<T>, window: usize, stop: &AtomicBool) {
    let region = core.backing.region.as_ref();
    let (start, end) = positions(core);
    let mut touched = start / PAGE * PAGE;
    let mut sleep = BUSY_SLEEP;
    let mut last = start;
    // Relaxed: see `Drop`.
    while !stop.load(StdOrdering::Relaxed) && touched < end {
        let (pos, _) = positions(core);
        // The writer may have run past what was touched: never touch behind it.
        touched = touched.max(pos / PAGE * PAGE);
        let target = pos.saturating_add(window).min(end);
        if touched < target {
            let len = (target - touched).min(CHUNK);
            if let Err(e) = region.prefault_range(touched, len) {
                log::warn!("roda: the pre-toucher stops ({e}); pages fault on first use");
                return;
            }
            touched += len;
            sleep = BUSY_SLEEP;
            continue;
        }
        // Caught up: sleep longer while the writer stands still.
        sleep = if pos == last {
            (sleep * 2).min(IDLE_SLEEP)
        } else {
            BUSY_SLEEP
        };
        last = pos;
        std::thread::park_timeout(sleep);
    }
}

//! Switches that break the elastic journal's reuse protocol on purpose, compiled only
//! under `--cfg roda_loom`, so its loom model can prove it catches a broken protocol
//! (a thread-local switch affects the calling test's model only).

use std::cell::Cell;

std::thread_local! {
    static RELAXED_RECLAIM: Cell<bool> = const { Cell::new(false) };
    static RECLAIM_ONE_EARLY: Cell<bool> = const { Cell::new(false) };
}

/// Makes the writer load the reader's received count with Relaxed instead of Acquire
/// before it reuses segments.
pub fn set_relaxed_reclaim(on: bool) {
    RELAXED_RECLAIM.with(|c| c.set(on));
}

pub(crate) fn relaxed_reclaim() -> bool {
    RELAXED_RECLAIM.with(|c| c.get())
}

/// Makes the writer reuse the segment of the last record the reader received (which
/// the reader may still view).
pub fn set_reclaim_one_early(on: bool) {
    RECLAIM_ONE_EARLY.with(|c| c.set(on));
}

pub(crate) fn reclaim_one_early() -> bool {
    RECLAIM_ONE_EARLY.with(|c| c.get())
}

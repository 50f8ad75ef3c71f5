//! Switches that break Roda's protocols on purpose, compiled only under
//! `--cfg roda_loom`, so the loom models can prove they catch a broken protocol.
//! loom runs a model's threads on the calling OS thread, so a thread-local switch set
//! by one test affects that test's model only.

use std::cell::Cell;

std::thread_local! {
    static RELAXED_PUBLISH: Cell<bool> = const { Cell::new(false) };
}

/// Makes the journal publish its write sequence with Relaxed instead of Release.
pub fn set_relaxed_publish(on: bool) {
    RELAXED_PUBLISH.with(|c| c.set(on));
}

pub(crate) fn relaxed_publish() -> bool {
    RELAXED_PUBLISH.with(|c| c.get())
}

std::thread_local! {
    static SKIP_WRITER_FENCE: Cell<bool> = const { Cell::new(false) };
    static SKIP_READER_FENCE: Cell<bool> = const { Cell::new(false) };
}

/// Makes the slot writer skip its Release fence after the odd sequence store.
pub fn set_skip_writer_fence(on: bool) {
    SKIP_WRITER_FENCE.with(|c| c.set(on));
}

pub(crate) fn skip_writer_fence() -> bool {
    SKIP_WRITER_FENCE.with(|c| c.get())
}

/// Makes slot readers skip their Acquire fence before the second sequence load.
pub fn set_skip_reader_fence(on: bool) {
    SKIP_READER_FENCE.with(|c| c.set(on));
}

pub(crate) fn skip_reader_fence() -> bool {
    SKIP_READER_FENCE.with(|c| c.get())
}

std::thread_local! {
    static SKIP_GATE_CHECK: Cell<bool> = const { Cell::new(false) };
}

/// Makes the segmented journal's writer recycle segments without checking the readers'
/// gates.
pub fn set_skip_gate_check(on: bool) {
    SKIP_GATE_CHECK.with(|c| c.set(on));
}

pub(crate) fn skip_gate_check() -> bool {
    SKIP_GATE_CHECK.with(|c| c.get())
}

std::thread_local! {
    static SKIP_GENERATION_FENCE: Cell<bool> = const { Cell::new(false) };
}

/// Makes the segmented journal's writer overwrite a recycled segment without the
/// Release fence after it changes the segment's generation (so followers could accept
/// a copy torn by the overwrite).
pub fn set_skip_generation_fence(on: bool) {
    SKIP_GENERATION_FENCE.with(|c| c.set(on));
}

pub(crate) fn skip_generation_fence() -> bool {
    SKIP_GENERATION_FENCE.with(|c| c.get())
}

std::thread_local! {
    static SKIP_FOLLOWER_FENCE: Cell<bool> = const { Cell::new(false) };
}

/// Makes segmented-journal followers skip their Acquire fence before re-checking a
/// segment's generation.
pub fn set_skip_follower_fence(on: bool) {
    SKIP_FOLLOWER_FENCE.with(|c| c.set(on));
}

pub(crate) fn skip_follower_fence() -> bool {
    SKIP_FOLLOWER_FENCE.with(|c| c.get())
}

std::thread_local! {
    static UNVALIDATED_REGISTRATION: Cell<bool> = const { Cell::new(false) };
}

/// Makes segmented-journal readers register the old way (position stored before the
/// claim of a gate, no registration count) and the writer scan the gates once without
/// validating the scan against registrations made during it.
pub fn set_unvalidated_registration(on: bool) {
    UNVALIDATED_REGISTRATION.with(|c| c.set(on));
}

pub(crate) fn unvalidated_registration() -> bool {
    UNVALIDATED_REGISTRATION.with(|c| c.get())
}

std::thread_local! {
    static SKIP_WAKE_FENCE: Cell<bool> = const { Cell::new(false) };
}

/// Makes a journal with waking on publish without the full fence between its
/// published count and its load of the waiter flag (so a sleeper can miss its wake-up).
pub fn set_skip_wake_fence(on: bool) {
    SKIP_WAKE_FENCE.with(|c| c.set(on));
}

pub(crate) fn skip_wake_fence() -> bool {
    SKIP_WAKE_FENCE.with(|c| c.get())
}

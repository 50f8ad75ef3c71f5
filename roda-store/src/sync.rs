//! The atomics Roda's protocols are written against: std's, or loom's under
//! `--cfg roda_loom` so the same protocol code runs inside the loom model checker.

#[cfg(not(roda_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(roda_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

//! # Roda
//!
//! Ultra-low-latency streaming on one machine: a single writer appends fixed-size
//! records into a memory-mapped journal, any number of readers (threads or other
//! processes) follow it with their own cursors, and indexed state lives in seqlocked
//! slot stores. Journal files outlive their writer: records survive a crash of the
//! process, another process can follow a file live, and a run can be replayed from it.
//! A `StageEngine` pipeline's journals live in its process's memory instead (recycled
//! rings and an elastic output): to keep or share a stream, a stage appends it to a file.
//!
//! This umbrella crate re-exports the member crates as modules ([`core`], [`store`],
//! [`pipe`](mod@pipe), [`engine`]) and the everyday names at its root and in [`prelude`].
//!
//! ```
//! use roda::prelude::*;
//!
//! # fn main() -> roda::Result<()> {
//! let mut journal = JournalStore::<u64>::in_memory(1024)?;
//! let mut reader = journal.reader();
//! journal.append(&42);
//! assert_eq!(reader.next(), Some(&42));
//! # Ok(()) }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

/// The record bound, store traits and error type (`roda-core`).
pub use roda_core as core;
/// Engines, pipelines, wait strategies and pinning (`roda-engine`).
pub use roda_engine as engine;
/// Stages, pipes and the `pipe!` macro (`roda-pipe`).
pub use roda_pipe as pipe;
/// Journal and slot stores (`roda-store`).
pub use roda_store as store;

pub use roda_core::{bytemuck, Appendable, IterativeReadable, Record, Result, RodaError, Settable};
pub use roda_engine::{
    Backoff, EngineBuilder, Pinning, Progress, RodaEngine, StageEngine, StageMetrics, WaitStrategy,
    WakeSource, WorkerHandle,
};
pub use roda_pipe::{
    dedup_by, delta, filter, filter_map, inspect, map, pipe, stateful, Collector, Stage,
};
pub use roda_store::{
    ElasticJournal, ElasticReader, HeaderInfo, JournalOptions, JournalReader, JournalStore,
    Retention, SegmentedFollower, SegmentedJournal, SegmentedOptions, SegmentedReader, SlotOptions,
    SlotReader, SlotStore, StoreKind, StoreOptions,
};

/// Everything a typical program needs: `use roda::prelude::*;`.
///
/// Holds no module re-exports (a glob import of a module named `core` would shadow the
/// built-in `core`).
pub mod prelude {
    pub use roda_core::{Appendable, IterativeReadable, Record, Result, RodaError, Settable};
    pub use roda_engine::{Pinning, Progress, RodaEngine, StageEngine, StageMetrics, WaitStrategy};
    pub use roda_pipe::{
        dedup_by, delta, filter, filter_map, inspect, map, pipe, stateful, Collector, Stage,
    };
    pub use roda_store::{
        JournalOptions, JournalReader, JournalStore, Retention, SegmentedFollower,
        SegmentedJournal, SegmentedReader, SlotOptions, SlotReader, SlotStore, StoreOptions,
    };
}

/// The README's code blocks, compiled and run as doc-tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The code blocks of `docs/segmented.md`, run as doc-tests too.
#[doc = include_str!("../docs/segmented.md")]
#[cfg(doctest)]
pub struct SegmentedDocDoctests;

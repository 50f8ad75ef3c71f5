//! Roda's stores: memory-mapped, persistent, lock-free on the data path.
//!
//! * [`JournalStore`] / [`JournalReader`]: an append-only journal with one writer and
//!   any number of readers, each with its own cursor, viewing records in place as `&T`.
//! * [`SlotStore`] / [`SlotReader`]: a fixed array of slots, each overwritten in place
//!   by one writer under a per-slot seqlock; readers take consistent snapshots by value.
//! * [`StoreFile`]: any store file opened read-only without its record type, for tools;
//!   [`RawJournal`] and [`RawSegmentedJournal`] write journals of such a type (records
//!   as bytes of a run-time [`RecordLayout`]).
//! * [`ElasticJournal`] / [`ElasticReader`]: an in-memory journal for one reader that
//!   grows while the reader lags and gives memory back once it has caught up, holding at
//!   most a limit of records not received (a pipeline's last journal).
//!
//! Stores live in memory-mapped files (or anonymous memory). A file-backed journal
//! survives a crash of its writer, another process can follow it live, and a run can be
//! replayed from it; in-memory stores (and `ElasticJournal`, always in memory) are gone
//! with their process.
//! The file layout is documented in `docs/file-format.md`; the memory-ordering
//! protocol in `docs/memory-model.md`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]
// Under loom only the heap backend is built: the file machinery is compiled but unused.
#![cfg_attr(roda_loom, allow(dead_code, unused_imports))]

mod elastic;
mod file;
#[cfg(not(roda_loom))]
mod inspect;
mod journal;
mod segmented;
mod slots;
mod sync;
mod wake;

#[cfg(all(test, not(roda_loom), not(miri)))]
mod flush_errors;

#[cfg(roda_loom)]
#[doc(hidden)]
pub mod loom_hooks;

#[cfg(roda_loom)]
#[doc(hidden)]
pub use elastic::loom_hooks as elastic_loom_hooks;

pub use elastic::{
    ElasticBatch, ElasticJournal, ElasticOptions, ElasticReader, ElasticWatch, MAX_ELASTIC_SEGMENTS,
};
pub use file::header::{HeaderInfo, StoreKind};
pub use file::options::{Retention, StoreOptions};
#[cfg(not(roda_loom))]
pub use inspect::{SlotSnapshot, StoreFile};
pub use journal::{AppendBatch, JournalOptions, JournalReader, JournalStore};
#[cfg(not(roda_loom))]
pub use journal::{RawJournal, RawJournalOptions, RecordLayout};
pub use roda_core::{Appendable, IterativeReadable, Record, Result, RodaError, Settable};
#[cfg(not(roda_loom))]
pub use segmented::{RawSegmentedJournal, RawSegmentedOptions};
pub use segmented::{
    SegmentedBatch, SegmentedFollower, SegmentedJournal, SegmentedOptions, SegmentedReader,
    SegmentedWatch, MAX_READERS,
};
pub use slots::{SlotOptions, SlotReader, SlotStore};

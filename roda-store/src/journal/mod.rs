//! The plain journal: one writer ([`JournalStore`]) appending into a fixed-capacity
//! region, and cursors ([`JournalReader`]) following it zero-copy.
//!
//! `core` holds the publish protocol (the write sequence and record access) that the
//! segmented journal reuses for each of its segments.

pub(crate) mod core;
#[cfg(not(roda_loom))]
pub(crate) mod raw;
pub(crate) mod reader;
pub(crate) mod store;

#[cfg(not(roda_loom))]
pub use self::raw::{RawJournal, RawJournalOptions, RecordLayout};
pub use self::reader::JournalReader;
pub use self::store::{AppendBatch, JournalOptions, JournalStore};

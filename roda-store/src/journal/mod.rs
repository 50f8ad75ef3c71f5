//! The plain journal: one writer ([`JournalStore`]) appending into a fixed-capacity
//! region, and cursors ([`JournalReader`]) following it zero-copy.
//!
//! `core` holds the publish protocol (the write sequence and record access) that the
//! segmented journal reuses for each of its segments.

pub(crate) mod core;
pub(crate) mod reader;
pub(crate) mod store;

pub use self::reader::JournalReader;
pub use self::store::{AppendBatch, JournalOptions, JournalStore};

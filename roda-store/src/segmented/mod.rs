//! The segmented journal: a ring (or archive) of plain-journal segments, in memory or
//! one file per segment, with gating readers and followers that never hold the writer.

pub(crate) mod core;
pub(crate) mod files;
pub(crate) mod follower;
pub(crate) mod journal;
#[cfg(not(roda_loom))]
pub(crate) mod raw;
pub(crate) mod reader;

pub use self::core::MAX_READERS;
pub use self::follower::SegmentedFollower;
pub use self::journal::{SegmentedBatch, SegmentedJournal, SegmentedOptions, SegmentedWatch};
#[cfg(not(roda_loom))]
pub use self::raw::{RawSegmentedJournal, RawSegmentedOptions};
pub use self::reader::SegmentedReader;

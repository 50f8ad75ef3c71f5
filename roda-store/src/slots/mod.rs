//! The slot store: a fixed array of slots written in place under a per-slot seqlock
//! ([`SlotStore`]), read as consistent snapshots ([`SlotReader`]).

pub(crate) mod reader;
pub(crate) mod seqlock;
pub(crate) mod store;

pub use self::reader::SlotReader;
pub use self::store::{SlotOptions, SlotStore};

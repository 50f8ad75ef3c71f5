//! Roda beyond one machine: journals exported to and imported from NATS JetStream.
//!
//! An [`Exporter`] follows a journal (a plain file through a reader, a segmented
//! directory through a follower: the writer is never held back) and publishes its
//! records in batches to a JetStream subject; an [`Importer`] appends a subject's
//! batches to a local journal with the same sequences. Together they copy a journal
//! exactly once: the exporter's batches are chained by message id so the server stores
//! them in order and once each, and the importer drops what its journal already holds
//! and fails on a gap. See `docs/bridge.md` for the message format and the argument.
//!
//! ```no_run
//! use roda_bridge::{Connection, ExportOptions, Exporter, JournalSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut source = JournalSource::<[u64; 3]>::open("ticks.roda")?;
//! let mut options = ExportOptions::new("TICKS", "roda.ticks");
//! options.journal_id = Some(0x5eed); // the same id every time this journal is exported
//! let report = Exporter::new(Connection::new("nats://127.0.0.1:4222"), options)
//!     .run(&mut source)?;
//! println!("exported records {}..{}", report.start, report.end);
//! # Ok(()) }
//! ```
//!
//! This crate is the only one of Roda's that depends on tokio and async-nats; the
//! blocking [`Exporter::run`] and [`Importer::run`] drive a runtime of their own on the
//! calling thread.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
mod export;
pub mod format;
mod import;
mod nats;
mod sink;
mod source;

pub use error::{BridgeError, Result};
pub use export::{ExportOptions, ExportProgress, ExportReport, Exporter};
pub use format::{BatchHeader, Shape};
pub use import::{ImportOptions, ImportProgress, ImportReport, Importer};
pub use nats::{Connection, StreamSettings};
pub use sink::{FileSink, ImportSink, JournalSink, NewJournal, SegmentedSink};
pub use source::{ExportSource, FileSource, JournalSource, SegmentedSource};

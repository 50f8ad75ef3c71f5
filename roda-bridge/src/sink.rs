//! What an import writes: [`ImportSink`], implemented by [`JournalSink`] (a plain
//! journal) and [`SegmentedSink`] (a segmented journal).

use roda_core::{Record, RodaError};
use roda_store::{JournalStore, SegmentedJournal};

use crate::format::Shape;

/// A journal being imported into: appends records given as bytes.
pub trait ImportSink {
    /// The records' shape.
    fn shape(&self) -> Shape;
    /// The sequence of the next record appended (the journal's length).
    fn next_sequence(&self) -> u64;
    /// Appends whole records given as bytes (a multiple of the record size, in the
    /// journal's byte order), published together.
    fn append(&mut self, bytes: &[u8]) -> Result<(), RodaError>;
}

/// Casts `bytes` to records, through `scratch` when they are not aligned for `T`.
fn records<'a, T: Record>(bytes: &'a [u8], scratch: &'a mut Vec<T>) -> &'a [T] {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(records) => records,
        Err(_) => {
            let n = bytes.len() / std::mem::size_of::<T>();
            scratch.clear();
            scratch.resize(n, T::zeroed());
            bytemuck::cast_slice_mut::<T, u8>(scratch).copy_from_slice(bytes);
            scratch
        }
    }
}

/// A plain journal file imported into (its sequences start at 0).
pub struct JournalSink<T: Record> {
    journal: JournalStore<T>,
    scratch: Vec<T>,
}

impl<T: Record> JournalSink<T> {
    /// Imports into `journal`.
    pub fn new(journal: JournalStore<T>) -> Self {
        JournalSink {
            journal,
            scratch: Vec::new(),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &JournalStore<T> {
        &self.journal
    }

    /// Gives the journal back.
    pub fn into_inner(self) -> JournalStore<T> {
        self.journal
    }
}

impl<T: Record> ImportSink for JournalSink<T> {
    fn shape(&self) -> Shape {
        Shape::of::<T>(self.journal.header().schema)
    }
    fn next_sequence(&self) -> u64 {
        self.journal.len() as u64
    }
    fn append(&mut self, bytes: &[u8]) -> Result<(), RodaError> {
        let items = records::<T>(bytes, &mut self.scratch);
        self.journal.try_append_slice(items).map(|_| ())
    }
}

/// A segmented journal imported into.
pub struct SegmentedSink<T: Record> {
    journal: SegmentedJournal<T>,
    schema: u64,
    scratch: Vec<T>,
}

impl<T: Record> SegmentedSink<T> {
    /// Imports into `journal`, created with schema id `schema`.
    pub fn new(journal: SegmentedJournal<T>, schema: u64) -> Self {
        SegmentedSink {
            journal,
            schema,
            scratch: Vec::new(),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &SegmentedJournal<T> {
        &self.journal
    }

    /// Gives the journal back.
    pub fn into_inner(self) -> SegmentedJournal<T> {
        self.journal
    }
}

impl<T: Record> ImportSink for SegmentedSink<T> {
    fn shape(&self) -> Shape {
        Shape::of::<T>(self.schema)
    }
    fn next_sequence(&self) -> u64 {
        self.journal.len()
    }
    fn append(&mut self, bytes: &[u8]) -> Result<(), RodaError> {
        let mut items = records::<T>(bytes, &mut self.scratch);
        // A gating reader may hold a ring back: append what fits, wait for the rest.
        while !items.is_empty() {
            match self.journal.try_append_slice(items) {
                Ok(done) => items = &items[(done.end - done.start) as usize..],
                Err(RodaError::WouldBlock { .. }) => {
                    std::thread::sleep(std::time::Duration::from_micros(200))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

//! What an import writes: [`ImportSink`], implemented by [`JournalSink`] (a plain
//! journal) and [`SegmentedSink`] (a segmented journal) for a program that knows the
//! record type, and by [`FileSink`] (either, records as bytes of the layout the batches
//! carry) for tools that do not.

use roda_core::{Record, RodaError};
use std::path::{Path, PathBuf};

use roda_store::{
    JournalStore, RawJournal, RawSegmentedJournal, RecordLayout, Retention, SegmentedJournal,
    StoreFile,
};

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

/// A plain journal file imported into (its sequences start at 0).
pub struct JournalSink<T: Record> {
    journal: JournalStore<T>,
}

impl<T: Record> JournalSink<T> {
    /// Imports into `journal`.
    pub fn new(journal: JournalStore<T>) -> Self {
        JournalSink { journal }
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
        // One copy, from the message's payload (at any alignment) into the journal.
        self.journal.try_append_bytes(bytes).map(|_| ())
    }
}

/// A segmented journal imported into.
pub struct SegmentedSink<T: Record> {
    journal: SegmentedJournal<T>,
    schema: u64,
}

impl<T: Record> SegmentedSink<T> {
    /// Imports into `journal`, created with schema id `schema`.
    pub fn new(journal: SegmentedJournal<T>, schema: u64) -> Self {
        SegmentedSink { journal, schema }
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
        let mut rest = bytes;
        let size = std::mem::size_of::<T>();
        // A gating reader may hold a ring back: append what fits, wait for the rest.
        while !rest.is_empty() {
            match self.journal.try_append_bytes(rest) {
                Ok(done) => rest = &rest[(done.end - done.start) as usize * size..],
                Err(RodaError::WouldBlock { .. }) => {
                    std::thread::sleep(std::time::Duration::from_micros(200))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A journal of any record type imported into, as bytes: a plain journal file or a
/// segmented journal's directory, written through roda-store's raw writers (the files a
/// typed writer of the same layout makes). For tools that do not know the record type,
/// like the `roda` command; a program that knows it imports through [`JournalSink`] or
/// [`SegmentedSink`].
pub struct FileSink {
    shape: Shape,
    writer: RawWriter,
}

enum RawWriter {
    Plain(RawJournal),
    Segmented(RawSegmentedJournal),
}

/// Where and how [`FileSink::create`] makes a new journal.
#[derive(Clone, Debug)]
pub enum NewJournal {
    /// A plain journal file of this many records (an import into it starts at 0).
    Plain {
        /// Records the file holds.
        capacity: usize,
    },
    /// A segmented journal directory.
    Segmented {
        /// Records per segment file.
        segment_records: usize,
        /// What the directory keeps.
        retention: Retention,
    },
}

impl FileSink {
    /// Opens the existing journal at `path` (a plain journal file, or a segmented
    /// journal's directory) for writing, with the record layout and schema its header
    /// says; batches of another shape are then refused by the importer.
    pub fn open(path: impl AsRef<Path>) -> roda_core::Result<FileSink> {
        let path = path.as_ref();
        let header = if path.is_dir() {
            first_segment_header(path)?
        } else {
            StoreFile::open(path)?.header()
        };
        let layout = RecordLayout::of_header(&header)?;
        let writer = if path.is_dir() {
            RawWriter::Segmented(
                RawSegmentedJournal::options()
                    .schema(header.schema)
                    .open(path, layout)?,
            )
        } else {
            RawWriter::Plain(
                RawJournal::options()
                    .schema(header.schema)
                    .open(path, layout)?,
            )
        };
        Ok(FileSink {
            shape: shape_of(&header),
            writer,
        })
    }

    /// Creates a journal at `path` for batches of `shape` (as a
    /// [`BatchHeader`](crate::BatchHeader) carries it) whose first record has sequence `first`, with
    /// journal id `journal_id` (0: a random one). A plain journal must start at 0; a
    /// segmented one at a multiple of its segment size.
    pub fn create(
        path: impl AsRef<Path>,
        shape: Shape,
        new: &NewJournal,
        first: u64,
        journal_id: u64,
    ) -> crate::Result<FileSink> {
        let path = path.as_ref();
        let store = |e: RodaError| crate::BridgeError::Store(e);
        if shape.little_endian != cfg!(target_endian = "little") {
            return Err(crate::BridgeError::Mismatch {
                field: "byte_order",
                local: if cfg!(target_endian = "little") {
                    "le"
                } else {
                    "be"
                }
                .into(),
                remote: if shape.little_endian { "le" } else { "be" }.into(),
            });
        }
        let size = usize::try_from(shape.record_size).unwrap_or(usize::MAX);
        let align = usize::try_from(shape.record_align).unwrap_or(usize::MAX);
        let layout = RecordLayout::new(size, align).map_err(store)?;
        let writer = match *new {
            NewJournal::Plain { capacity } => {
                if first != 0 {
                    return Err(crate::BridgeError::Config(format!(
                        "the stream's first batch starts at record {first}, and a plain \
                         journal starts at record 0: import into a segmented journal \
                         directory instead (it can start at {first})"
                    )));
                }
                RawWriter::Plain(
                    RawJournal::options()
                        .schema(shape.schema)
                        .journal_id(journal_id)
                        .create(path, layout, capacity)
                        .map_err(store)?,
                )
            }
            NewJournal::Segmented {
                segment_records,
                retention,
            } => {
                if segment_records == 0 || !first.is_multiple_of(segment_records as u64) {
                    return Err(crate::BridgeError::Config(format!(
                        "the stream's first batch starts at record {first}, which is not a \
                         multiple of the segment size {segment_records}: choose a segment \
                         size that divides {first}"
                    )));
                }
                RawWriter::Segmented(
                    RawSegmentedJournal::options()
                        .schema(shape.schema)
                        .journal_id(journal_id)
                        .retention(retention)
                        .create_at(path, layout, segment_records, first)
                        .map_err(store)?,
                )
            }
        };
        Ok(FileSink { shape, writer })
    }

    /// The journal id the journal carries.
    pub fn journal_id(&self) -> u64 {
        match &self.writer {
            RawWriter::Plain(j) => j.header().journal_id,
            RawWriter::Segmented(j) => j.journal_id(),
        }
    }

    /// The path of the journal file or directory.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.writer {
            RawWriter::Plain(j) => j.path().map(Into::into),
            RawWriter::Segmented(j) => j.dir().map(Into::into),
        }
    }
}

impl ImportSink for FileSink {
    fn shape(&self) -> Shape {
        self.shape
    }
    fn next_sequence(&self) -> u64 {
        match &self.writer {
            RawWriter::Plain(j) => j.len(),
            RawWriter::Segmented(j) => j.len(),
        }
    }
    fn append(&mut self, bytes: &[u8]) -> Result<(), RodaError> {
        match &mut self.writer {
            RawWriter::Plain(j) => j.append(bytes).map(|_| ()),
            RawWriter::Segmented(j) => {
                let size = j.layout().size();
                let mut rest = bytes;
                // A raw writer has no gating readers: an early end is an I/O error
                // rolling into a new segment file, returned by the next call.
                while !rest.is_empty() {
                    let done = j.append(rest)?;
                    rest = &rest[(done.end - done.start) as usize * size..];
                }
                Ok(())
            }
        }
    }
}

fn shape_of(header: &roda_store::HeaderInfo) -> Shape {
    Shape {
        record_size: header.record_size,
        record_align: header.record_align,
        schema: header.schema,
        little_endian: cfg!(target_endian = "little"),
    }
}

/// The header of a segment file of directory `dir`.
fn first_segment_header(dir: &Path) -> roda_core::Result<roda_store::HeaderInfo> {
    let entries = std::fs::read_dir(dir).map_err(|e| RodaError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| RodaError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.len() == 25
            && name.ends_with(".roda")
            && name[..20].bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(StoreFile::open(&path)?.header());
        }
    }
    Err(RodaError::io(
        dir,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no segment files ({20 digits}.roda) in this directory",
        ),
    ))
}

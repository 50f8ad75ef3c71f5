//! [`RawJournal`]: the writer of a plain journal whose record type is known only at run
//! time (a size and an alignment), appending records given as bytes; and
//! [`RecordLayout`], that size and alignment.
//!
//! Tools that copy journals without knowing their type (the `roda` command's bridge
//! import) write through it. The file is the one a `JournalStore<T>` of a type with that
//! layout writes: same header, same data layout, same publish protocol (records written
//! past the published count, then one Release store of the count), so typed readers and
//! writers open it like any other.

use std::ops::Range;
use std::path::Path;

use roda_core::{Record, Result, RodaError};

use crate::file::header::{HeaderInfo, Shape, StoreKind, MAX_ALIGN};
use crate::file::options::{Settings, StoreOptions};
use crate::journal::store::JournalStore;

/// The size and alignment of a record type known only at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordLayout {
    size: usize,
    align: usize,
}

impl RecordLayout {
    /// A layout of `size` bytes aligned to `align`, as `size_of` and `align_of` of a
    /// Rust type give them: `size` at least 1 and a multiple of `align`, `align` a power
    /// of two up to 4096. Anything else is `Err(InvalidRecordLayout)`.
    ///
    /// ```
    /// use roda_store::RecordLayout;
    ///
    /// assert_eq!(RecordLayout::new(24, 8).unwrap(), RecordLayout::of::<[u64; 3]>());
    /// assert!(RecordLayout::new(20, 8).is_err()); // no Rust type has this layout
    /// ```
    pub fn new(size: usize, align: usize) -> Result<RecordLayout> {
        let bad = |reason| {
            Err(RodaError::InvalidRecordLayout {
                size: size as u64,
                align: align as u64,
                reason,
            })
        };
        if size == 0 {
            return bad("a record needs at least one byte");
        }
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return bad("the alignment must be a power of two up to 4096");
        }
        if size % align != 0 {
            return bad("the size must be a multiple of the alignment, as a Rust type's is");
        }
        Ok(RecordLayout { size, align })
    }

    /// The layout of `T`.
    pub fn of<T: Record>() -> RecordLayout {
        RecordLayout {
            size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
        }
    }

    /// The layout a store file's header records.
    pub fn of_header(header: &HeaderInfo) -> Result<RecordLayout> {
        let size = usize::try_from(header.record_size).unwrap_or(usize::MAX);
        let align = usize::try_from(header.record_align).unwrap_or(usize::MAX);
        RecordLayout::new(size, align)
    }

    /// Bytes per record.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The alignment.
    pub fn align(&self) -> usize {
        self.align
    }

    /// How many whole records `bytes` holds; `Err(InvalidRecordLayout)` when its length
    /// is not a multiple of the record size.
    #[inline]
    pub(crate) fn count(&self, bytes: &[u8]) -> Result<usize> {
        if bytes.len() % self.size != 0 {
            return Err(self.not_whole());
        }
        Ok(bytes.len() / self.size)
    }

    fn not_whole(&self) -> RodaError {
        not_whole(self.size, self.align)
    }

    /// The shape a journal (or a segment file, when `segment`) of this layout has.
    pub(crate) fn shape(&self, settings: &Settings, segment: bool) -> Shape {
        Shape {
            kind: StoreKind::Journal,
            record_size: self.size as u64,
            record_align: self.align as u64,
            stride: self.size as u64,
            schema: settings.schema,
            segment,
            wake: settings.wake,
        }
    }
}

/// The error for bytes that are not a whole number of records of `size` bytes.
#[cold]
pub(crate) fn not_whole(size: usize, align: usize) -> RodaError {
    RodaError::InvalidRecordLayout {
        size: size as u64,
        align: align as u64,
        reason: "the bytes appended are not a whole number of records: pass a multiple \
                 of the record size",
    }
}

/// Options of a [`RawJournal`]: see [`RawJournal::options`].
pub type RawJournalOptions = StoreOptions<RawJournal>;

impl RawJournalOptions {
    /// A new journal file of `capacity` records of `layout`; fails with `AlreadyExists`
    /// if `path` exists.
    pub fn create(
        self,
        path: impl AsRef<Path>,
        layout: RecordLayout,
        capacity: usize,
    ) -> Result<RawJournal> {
        let shape = layout.shape(&self.settings, false);
        let claim = crate::file::backing::create(path.as_ref(), shape, capacity, &self.settings)?;
        RawJournal::from_store(JournalStore::from_claim(claim, &self.settings)?, layout)
    }

    /// Reopens the journal file at `path` for writing, resuming after its last committed
    /// record. Fails with `LayoutMismatch` when the file's record size, alignment or
    /// schema differ from `layout` and these options' schema, and with `WriterActive`
    /// while another writer holds it.
    pub fn open(self, path: impl AsRef<Path>, layout: RecordLayout) -> Result<RawJournal> {
        let shape = layout.shape(&self.settings, false);
        let claim = crate::file::backing::open_writer(path.as_ref(), shape, &self.settings)?;
        RawJournal::from_store(JournalStore::from_claim(claim, &self.settings)?, layout)
    }

    /// [`open`](Self::open) if `path` exists, else [`create`](Self::create).
    pub fn open_or_create(
        self,
        path: impl AsRef<Path>,
        layout: RecordLayout,
        capacity: usize,
    ) -> Result<RawJournal> {
        let shape = layout.shape(&self.settings, false);
        let claim =
            crate::file::backing::open_or_create(path.as_ref(), shape, capacity, &self.settings)?;
        RawJournal::from_store(JournalStore::from_claim(claim, &self.settings)?, layout)
    }
}

/// The writer of a plain journal file whose records are given as bytes, for programs
/// that learn the record layout at run time. It writes exactly what
/// [`JournalStore`] writes for a type of that layout (and takes the same writer lock),
/// so a `JournalReader<T>` or `JournalStore<T>` of such a type opens the file.
///
/// ```
/// use roda_store::{JournalReader, RawJournal, RecordLayout};
///
/// # fn main() -> roda_core::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let path = tmp.path().join("pairs.roda");
/// let mut raw = RawJournal::create(&path, RecordLayout::new(16, 8)?, 100)?;
/// let records: [[u64; 2]; 2] = [[1, 2], [3, 4]];
/// assert_eq!(raw.append(bytemuck::cast_slice(&records))?, 0..2);
///
/// let mut reader = JournalReader::<[u64; 2]>::open(&path)?;
/// assert_eq!(reader.next_batch(10), &records);
/// # Ok(()) }
/// ```
pub struct RawJournal {
    store: JournalStore<u8>,
    layout: RecordLayout,
}

impl RawJournal {
    /// A builder for the settings beyond the plain constructors (schema, journal id,
    /// memory locking, pre-faulting, wake on publish), as for [`JournalStore::options`].
    pub fn options() -> RawJournalOptions {
        StoreOptions::default()
    }

    /// Creates a journal file of `capacity` records of `layout` at `path`; see
    /// [`JournalStore::create`].
    pub fn create(
        path: impl AsRef<Path>,
        layout: RecordLayout,
        capacity: usize,
    ) -> Result<RawJournal> {
        Self::options().create(path, layout, capacity)
    }

    /// Reopens the journal file at `path` (records of `layout`, schema 0) for writing;
    /// see [`RawJournalOptions::open`].
    pub fn open(path: impl AsRef<Path>, layout: RecordLayout) -> Result<RawJournal> {
        Self::options().open(path, layout)
    }

    fn from_store(store: JournalStore<u8>, layout: RecordLayout) -> Result<RawJournal> {
        Ok(RawJournal { store, layout })
    }

    /// Appends the whole records in `bytes` (native byte order, back to back, any
    /// alignment) and publishes them together with one Release store; returns their
    /// sequences. `Err(Full)` (nothing written) when they do not all fit;
    /// `Err(InvalidRecordLayout)` when `bytes` is not a whole number of records.
    /// Allocates nothing.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) -> Result<Range<u64>> {
        self.layout.count(bytes)?;
        self.store.append_raw(bytes, self.layout.size)
    }

    /// The records' layout.
    pub fn layout(&self) -> RecordLayout {
        self.layout
    }

    /// Records appended so far.
    pub fn len(&self) -> u64 {
        self.store.len() as u64
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The fixed number of records the journal holds.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// Records that can still be appended.
    pub fn remaining(&self) -> usize {
        self.store.remaining()
    }

    /// The header fields (record size and alignment, schema, journal id, ...).
    pub fn header(&self) -> HeaderInfo {
        self.store.header()
    }

    /// The file's path.
    pub fn path(&self) -> Option<&Path> {
        self.store.path()
    }

    /// Writes the appended records to disk and waits (msync); see
    /// [`JournalStore::flush`].
    pub fn flush(&mut self) -> Result<()> {
        self.store.flush()
    }
}

impl std::fmt::Debug for RawJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawJournal")
            .field("path", &self.path())
            .field("layout", &self.layout)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

//! [`SlotStore`]: the single writer of a fixed array of seqlocked slots.

use std::path::Path;
use std::sync::Arc;

use roda_core::{Record, Result, RodaError, Settable};

use crate::file::backing::{Backing, Claimed};
use crate::file::header::{slot_shape, HeaderInfo};
use crate::file::lock::WriterLock;
use crate::file::options::StoreOptions;
use crate::slots::reader::SlotReader;
use crate::slots::seqlock::SlotCore;

/// Options for a [`SlotStore`] or a [`SlotReader`]: see [`StoreOptions`].
pub type SlotOptions<T> = StoreOptions<SlotStore<T>>;

/// The writer of a fixed array of `T` slots, in memory or in a file, each slot holding
/// the latest value `set` into it.
///
/// One writer sets slots; any number of [`SlotReader`]s (in this process through
/// [`reader`](Self::reader), in others through [`SlotReader::open`]) take consistent
/// snapshots of them by value.
///
/// # SlotStore or JournalStore?
///
/// A [`JournalStore`](crate::JournalStore) keeps every record ever appended, in order:
/// use it when readers must see every event (trades, orders, a replayable log). A
/// `SlotStore` keeps only the latest value of each of a fixed number of slots: use it
/// for state that is overwritten in place and where only the current value matters
/// (top of book per symbol, the last position of each vehicle, a configuration table).
/// It never fills up, and a reader always gets the current value in O(1).
///
/// # Snapshot semantics
///
/// [`SlotReader::get`] returns a consistent copy of the slot's last completed `set`:
/// never a mix of two sets (a "torn" value). A reader may miss intermediate versions
/// when the writer sets a slot several times between two reads; [`SlotReader::version`]
/// tells how many sets have completed. Readers copy the record out by value (through
/// 8-byte atomic loads), so they never hold a view that the writer could change.
/// Readers never block the writer: a reader that races a `set` simply retries.
///
/// # Crashes
///
/// A writer killed in the middle of a `set` leaves that slot with an odd sequence.
/// Readers never return such a slot: once they find its writer gone they report it
/// torn ([`SlotReader::is_torn`], `get` returns `None`). The next writer to open the
/// file lists those slots in [`SlotStore::torn_slots`] so the application can rewrite
/// them; a `set` makes the slot whole again.
///
/// # Slot store layout
///
/// After the header page (kind = 2), slot `i` starts at `data_offset + i * stride`:
/// an 8-byte sequence word, then the record's bytes padded with zeros to whole 8-byte
/// words. The stride is 64 (one cache line per slot) when `8 + padded payload <= 64`,
/// else that size rounded up to a multiple of 64. See `docs/slots.md`.
///
/// Records of any alignment (up to 4096) are stored: readers copy them out into a
/// properly aligned value and never view them in place.
///
/// ```
/// use roda_store::SlotStore;
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Quote { bid: f64, ask: f64 }
///
/// # fn main() -> roda_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("quotes.roda");
///
/// let mut quotes = SlotStore::<Quote>::create(&path, 100)?;
/// let reader = quotes.reader();
/// assert_eq!(reader.get(7), None); // never set
/// quotes.set(7, &Quote { bid: 99.5, ask: 100.0 });
/// quotes.set(7, &Quote { bid: 99.6, ask: 100.1 });
/// assert_eq!(reader.get(7), Some(Quote { bid: 99.6, ask: 100.1 }));
/// assert_eq!(reader.version(7), 2);
/// drop(quotes);
///
/// // Values and versions survive a reopen.
/// let quotes = SlotStore::<Quote>::open(&path)?;
/// assert_eq!(quotes.reader().get(7), Some(Quote { bid: 99.6, ask: 100.1 }));
/// assert!(quotes.torn_slots().is_empty());
/// # Ok(()) }
/// ```
pub struct SlotStore<T: Record> {
    core: Arc<SlotCore<T>>,
    /// Each slot's sequence word as this writer last stored it: the writer is the only
    /// one to change them, so setting a slot never loads shared memory.
    seqs: Box<[u64]>,
    lock: Option<WriterLock>,
    torn: Vec<usize>,
    dir_synced: bool,
}

impl<T: Record> SlotOptions<T> {
    /// A store of `slots` slots in anonymous memory (gone when the last handle drops).
    pub fn in_memory(self, slots: usize) -> Result<SlotStore<T>> {
        let shape = slot_shape::<T>(&self.settings)?;
        SlotStore::from_claim(Backing::in_memory(shape, slots, &self.settings)?, false)
    }

    /// A new slot file of `slots` slots; fails with `AlreadyExists` if `path` exists.
    #[cfg(not(roda_loom))]
    pub fn create(self, path: impl AsRef<Path>, slots: usize) -> Result<SlotStore<T>> {
        let shape = slot_shape::<T>(&self.settings)?;
        SlotStore::from_claim(
            crate::file::backing::create(path.as_ref(), shape, slots, &self.settings)?,
            false,
        )
    }

    /// Reopens a slot file for writing; its values and versions are kept.
    #[cfg(not(roda_loom))]
    pub fn open(self, path: impl AsRef<Path>) -> Result<SlotStore<T>> {
        let shape = slot_shape::<T>(&self.settings)?;
        SlotStore::from_claim(
            crate::file::backing::open_writer(path.as_ref(), shape, &self.settings)?,
            true,
        )
    }

    /// [`open`](Self::open) if the file exists, else [`create`](Self::create).
    #[cfg(not(roda_loom))]
    pub fn open_or_create(self, path: impl AsRef<Path>, slots: usize) -> Result<SlotStore<T>> {
        let shape = slot_shape::<T>(&self.settings)?;
        SlotStore::from_claim(
            crate::file::backing::open_or_create(path.as_ref(), shape, slots, &self.settings)?,
            true,
        )
    }

    /// A read-only reader of the slot file at `path` (no lock taken).
    #[cfg(not(roda_loom))]
    pub fn open_reader(self, path: impl AsRef<Path>) -> Result<SlotReader<T>> {
        SlotReader::open_with(path.as_ref(), &self.settings)
    }
}

impl<T: Record> SlotStore<T> {
    /// A builder for the settings beyond the plain constructors: memory locking,
    /// pre-faulting, huge pages and the schema id.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let slots = roda_store::SlotStore::<[u64; 4]>::options()
    ///     .populate(true)
    ///     .schema(3)
    ///     .in_memory(1000)?;
    /// assert_eq!(slots.len(), 1000);
    /// assert_eq!(slots.header().schema, 3);
    /// # Ok(()) }
    /// ```
    pub fn options() -> SlotOptions<T> {
        StoreOptions::default()
    }

    /// A store of `slots` slots in anonymous memory, shared by this process's readers
    /// only and gone when the last handle drops.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut slots = roda_store::SlotStore::<u64>::in_memory(8)?;
    /// slots.set(3, &42);
    /// assert_eq!(slots.reader().get(3), Some(42));
    /// # Ok(()) }
    /// ```
    pub fn in_memory(slots: usize) -> Result<Self> {
        Self::options().in_memory(slots)
    }

    /// Creates a slot file of `slots` slots at `path` and takes its writer lock. Fails
    /// with `AlreadyExists` if the path exists. Every slot starts never set. The file's
    /// blocks are reserved on disk at once: a disk without room is an `Io` error here,
    /// never a SIGBUS at a later `set`.
    #[cfg(not(roda_loom))]
    pub fn create(path: impl AsRef<Path>, slots: usize) -> Result<Self> {
        Self::options().create(path, slots)
    }

    /// Reopens the slot file at `path` for writing, keeping every value and version.
    /// Fails with `WriterActive` while another writer (in any process) holds it, and
    /// with a precise error if the file is not a slot store of `T` records. Slots left
    /// mid-write by a writer that died are listed by [`torn_slots`](Self::torn_slots).
    #[cfg(not(roda_loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::options().open(path)
    }

    /// [`open`](Self::open) if `path` exists, else [`create`](Self::create) with `slots`.
    #[cfg(not(roda_loom))]
    pub fn open_or_create(path: impl AsRef<Path>, slots: usize) -> Result<Self> {
        Self::options().open_or_create(path, slots)
    }

    fn from_claim(claim: Claimed, scan: bool) -> Result<Self> {
        let core = SlotCore::new(claim.backing);
        // The writer holds the lock, so no set is under way: every odd slot was left by
        // a writer that died mid-set.
        let (seqs, torn) = core.open_sequences(scan);
        Ok(SlotStore {
            core: Arc::new(core),
            seqs,
            lock: claim.lock,
            torn,
            dir_synced: false,
        })
    }

    /// Stores `item` in slot `index`; readers see either the previous value or this one,
    /// never a mix.
    ///
    /// # Panics
    /// When `index >= len()`; use [`try_set`](Self::try_set) to handle that instead.
    #[inline]
    #[track_caller]
    pub fn set(&mut self, index: usize, item: &T) {
        if index >= self.core.len() {
            out_of_range(index, self.core.len());
        }
        self.write(index, item);
    }

    /// Stores `item` in slot `index`, or returns `Err(OutOfRange)` when `index >= len()`.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut slots = roda_store::SlotStore::<u32>::in_memory(2)?;
    /// slots.try_set(1, &5)?;
    /// assert!(matches!(
    ///     slots.try_set(2, &5),
    ///     Err(roda_store::RodaError::OutOfRange { index: 2, len: 2 })
    /// ));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_set(&mut self, index: usize, item: &T) -> Result<()> {
        if index >= self.core.len() {
            return Err(RodaError::OutOfRange {
                index,
                len: self.core.len(),
            });
        }
        self.write(index, item);
        Ok(())
    }

    #[inline]
    fn write(&mut self, index: usize, item: &T) {
        let seq = &mut self.seqs[index];
        *seq = self.core.write(index, *seq, item);
    }

    /// The fixed number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the store has no slots (never true: a store has at least one slot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// A new reader of this store.
    pub fn reader(&self) -> SlotReader<T> {
        SlotReader::new(Arc::clone(&self.core))
    }

    /// Slots found left mid-write (odd sequence) when this writer opened the file: a
    /// previous writer died during their `set`. Readers report them torn until they are
    /// set again; the list is not updated by later sets. Empty for new stores.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let slots = roda_store::SlotStore::<u64>::in_memory(4)?;
    /// assert!(slots.torn_slots().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn torn_slots(&self) -> Vec<usize> {
        self.torn.clone()
    }

    /// Writes every slot to the file and waits for the disk (msync), so the values
    /// survive power loss; the first call also syncs the directory entry of a new file.
    /// A no-op for in-memory stores. Not needed to survive a process crash.
    pub fn flush(&mut self) -> Result<()> {
        let path = self.core.backing.path.clone();
        let io = |source| RodaError::Io {
            path: path.clone(),
            source,
        };
        self.core.backing.region.flush().map_err(io)?;
        #[cfg(not(roda_loom))]
        if let (false, Some(path)) = (self.dir_synced, path.as_deref()) {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        self.dir_synced = true;
        Ok(())
    }

    /// The file's path, `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.core.backing.path.as_deref()
    }

    /// The header fields of the store (`capacity` is the number of slots).
    pub fn header(&self) -> HeaderInfo {
        self.core.backing.info
    }

    /// Whether the store's memory is locked into RAM (see `options().lock_memory`).
    pub fn memory_locked(&self) -> bool {
        self.core.backing.memory_locked
    }
}

impl<T: Record> Drop for SlotStore<T> {
    fn drop(&mut self) {
        if self.lock.is_some() {
            self.core.backing.clear_writer();
        }
    }
}

impl<T: Record> Settable<T> for SlotStore<T> {
    #[inline]
    fn set(&mut self, index: usize, item: &T) {
        SlotStore::set(self, index, item)
    }
}

impl<T: Record> std::fmt::Debug for SlotStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotStore")
            .field("path", &self.path())
            .field("len", &self.len())
            .field("torn_slots", &self.torn.len())
            .finish()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_range(index: usize, len: usize) -> ! {
    panic!(
        "SlotStore index {index} is out of range: the store has {len} slots (0..{len}). \
         Create the store with more slots, or use try_set to handle an out-of-range index"
    )
}

//! [`SlotReader`]: consistent snapshots of a slot store's slots, in the writer's
//! process or another.

use std::path::Path;
use std::sync::Arc;

use roda_core::Record;

use crate::file::header::{slot_shape, HeaderInfo};
use crate::file::options::Settings;
use crate::slots::seqlock::{Read, SlotCore};

/// A reader of a slot store: takes consistent snapshots of slots by value. Readers
/// never block the writer or each other, hold no position, and are cheap to clone.
///
/// [`get`](Self::get) copies the slot's last completed `set` out through 8-byte atomic
/// loads and validates it against the slot's sequence, retrying while a `set` is under
/// way: it never returns a mix of two sets, though it may skip versions that were
/// overwritten between two reads.
///
/// ```
/// # fn main() -> roda_core::Result<()> {
/// let mut slots = roda_store::SlotStore::<[u32; 3]>::in_memory(10)?;
/// let reader = slots.reader();
/// assert_eq!((reader.get(0), reader.version(0)), (None, 0));
/// slots.set(0, &[1, 2, 3]);
/// assert_eq!((reader.get(0), reader.version(0)), (Some([1, 2, 3]), 1));
/// assert_eq!(reader.get(10), None); // out of range
/// assert!(!reader.is_torn(0));
/// # Ok(()) }
/// ```
pub struct SlotReader<T: Record> {
    core: Arc<SlotCore<T>>,
}

impl<T: Record> SlotReader<T> {
    pub(crate) fn new(core: Arc<SlotCore<T>>) -> Self {
        SlotReader { core }
    }

    /// Reads the slot file at `path` read-only, usually from another process than the
    /// writer's. Takes no lock; sees each `set` as soon as it completes.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("state.roda");
    /// let mut writer = roda_store::SlotStore::<u64>::create(&path, 4)?;
    /// let reader = roda_store::SlotReader::<u64>::open(&path)?;
    /// writer.set(2, &9);
    /// assert_eq!(reader.get(2), Some(9));
    /// # Ok(()) }
    /// ```
    #[cfg(not(roda_loom))]
    pub fn open(path: impl AsRef<Path>) -> roda_core::Result<Self> {
        Self::open_with(path.as_ref(), &Settings::default())
    }

    /// Opens a reader of the slot file at `path` with the given settings.
    #[cfg(not(roda_loom))]
    pub(crate) fn open_with(path: &Path, settings: &Settings) -> roda_core::Result<Self> {
        let shape = slot_shape::<T>(settings)?;
        let backing = crate::file::backing::open_reader(path, shape, settings)?;
        Ok(SlotReader::new(Arc::new(SlotCore::new(backing))))
    }

    /// A consistent snapshot of slot `index`: the value of its last completed `set`.
    /// `None` when the slot was never set, when `index >= len()`, or when the slot is
    /// torn (left mid-write by a writer that died; see [`is_torn`](Self::is_torn)).
    ///
    /// While a `set` of the slot is under way the read retries (spinning, then yielding);
    /// the writer is never blocked.
    #[inline]
    pub fn get(&self, index: usize) -> Option<T> {
        if index >= self.core.len() {
            return None;
        }
        match self.core.read(index) {
            Read::Value(value) => Some(value),
            Read::Empty | Read::Torn => None,
        }
    }

    /// [`get`](Self::get), also returning how many times the read was retried because a
    /// `set` of the same slot raced it (0 almost always). For diagnostics and
    /// benchmarks: a high count means readers and the writer fight over hot slots.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut slots = roda_store::SlotStore::<u64>::in_memory(4)?;
    /// slots.set(1, &7);
    /// assert_eq!(slots.reader().get_with_retries(1), (Some(7), 0));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn get_with_retries(&self, index: usize) -> (Option<T>, u32) {
        if index >= self.core.len() {
            return (None, 0);
        }
        match self.core.read_counted(index) {
            (Read::Value(value), retries) => (Some(value), retries),
            (Read::Empty | Read::Torn, retries) => (None, retries),
        }
    }

    /// The number of completed `set`s of slot `index` (0 if never set or out of range).
    #[inline]
    pub fn version(&self, index: usize) -> u64 {
        if index >= self.core.len() {
            return 0;
        }
        self.core.version(index)
    }

    /// Whether slot `index` was left mid-write by a writer that is gone (its process
    /// died during the `set`). Such a slot reads as `None` until it is set again.
    /// `false` out of range, and `false` for a slot a live writer is setting right now.
    pub fn is_torn(&self, index: usize) -> bool {
        index < self.core.len() && self.core.is_torn(index)
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

    /// The file's path, `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.core.backing.path.as_deref()
    }

    /// The store's header fields.
    pub fn header(&self) -> HeaderInfo {
        self.core.backing.info
    }
}

impl<T: Record> Clone for SlotReader<T> {
    fn clone(&self) -> Self {
        SlotReader {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Record> std::fmt::Debug for SlotReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotReader")
            .field("path", &self.path())
            .field("len", &self.len())
            .finish()
    }
}

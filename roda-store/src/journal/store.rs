//! [`JournalStore`]: the single writer of an append-only journal.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use roda_core::{Appendable, Record, Result, RodaError};

use crate::file::backing::{Backing, Claimed};
use crate::file::header::{HeaderInfo, Shape};
use crate::file::lock::WriterLock;
use crate::file::options::{Settings, StoreOptions};
#[cfg(not(roda_loom))]
use crate::file::pretouch::Pretoucher;
use crate::journal::core::JournalCore;
use crate::journal::reader::JournalReader;

/// Options for a [`JournalStore`] or a [`JournalReader`]: see [`StoreOptions`].
pub type JournalOptions<T> = StoreOptions<JournalStore<T>>;

/// Blocks of bytes at least this large (`try_append_bytes`) go into a file-backed
/// journal through the file rather than through the mapping (see `append_raw`).
#[cfg(not(roda_loom))]
const WRITE_THROUGH_FILE: usize = 64 << 10;

/// The writer of an append-only journal of `T` records, in memory or in a file.
///
/// One writer appends; any number of [`JournalReader`]s (in this process through
/// [`reader`](Self::reader), in others through [`JournalReader::open`]) follow it, each
/// with its own cursor, viewing records in place as `&T`. A journal has a fixed
/// capacity and never wraps: the record with sequence `s` stays at position `s`.
///
/// Durability: every appended record is in the file's shared mapping at once, so it
/// survives a crash of this process (even SIGKILL); [`flush`](Self::flush) makes it
/// survive power loss too.
///
/// ```
/// use roda_store::JournalStore;
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Trade { price: f64, qty: u64 }
///
/// # fn main() -> roda_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("trades.roda");
///
/// let mut journal = JournalStore::<Trade>::create(&path, 1024)?;
/// let mut reader = journal.reader();
/// assert_eq!(journal.append(&Trade { price: 10.5, qty: 3 }), 0);
/// assert_eq!(reader.next(), Some(&Trade { price: 10.5, qty: 3 }));
/// assert_eq!(reader.next(), None);
/// drop(journal);
///
/// // Reopened, the writer resumes after the last committed record.
/// let mut journal = JournalStore::<Trade>::open(&path)?;
/// assert_eq!(journal.len(), 1);
/// assert_eq!(journal.append(&Trade { price: 11.0, qty: 1 }), 1);
/// # Ok(()) }
/// ```
pub struct JournalStore<T: Record> {
    core: Arc<JournalCore<T>>,
    /// Records written and published; kept locally so appending never reads shared memory.
    len: u64,
    lock: Option<WriterLock>,
    dir_synced: bool,
    /// Keeps pages ahead of the writer faulted in, when asked for (`pretouch`).
    #[cfg(not(roda_loom))]
    _pretoucher: Option<Pretoucher>,
}

/// The shape of a plain journal of `T` (a segmented journal's files say `segment`).
fn shape<T: Record>(settings: &Settings) -> Result<Shape> {
    crate::file::header::journal_shape::<T>(settings, false)
}

impl<T: Record> JournalOptions<T> {
    /// A journal of `capacity` records in anonymous memory (gone when the last handle drops).
    pub fn in_memory(self, capacity: usize) -> Result<JournalStore<T>> {
        let shape = shape::<T>(&self.settings)?;
        JournalStore::from_claim(
            Backing::in_memory(shape, capacity, &self.settings)?,
            &self.settings,
        )
    }

    /// A new journal file of `capacity` records; fails with `AlreadyExists` if `path` exists.
    #[cfg(not(roda_loom))]
    pub fn create(self, path: impl AsRef<Path>, capacity: usize) -> Result<JournalStore<T>> {
        let shape = shape::<T>(&self.settings)?;
        JournalStore::from_claim(
            crate::file::backing::create(path.as_ref(), shape, capacity, &self.settings)?,
            &self.settings,
        )
    }

    /// Reopens a journal file for writing, resuming after its last committed record.
    #[cfg(not(roda_loom))]
    pub fn open(self, path: impl AsRef<Path>) -> Result<JournalStore<T>> {
        let shape = shape::<T>(&self.settings)?;
        JournalStore::from_claim(
            crate::file::backing::open_writer(path.as_ref(), shape, &self.settings)?,
            &self.settings,
        )
    }

    /// [`open`](Self::open) if the file exists, else [`create`](Self::create).
    #[cfg(not(roda_loom))]
    pub fn open_or_create(
        self,
        path: impl AsRef<Path>,
        capacity: usize,
    ) -> Result<JournalStore<T>> {
        let shape = shape::<T>(&self.settings)?;
        JournalStore::from_claim(
            crate::file::backing::open_or_create(path.as_ref(), shape, capacity, &self.settings)?,
            &self.settings,
        )
    }

    /// A read-only follower of the journal file at `path` (no lock taken).
    #[cfg(not(roda_loom))]
    pub fn open_reader(self, path: impl AsRef<Path>) -> Result<JournalReader<T>> {
        JournalReader::open_with(path.as_ref(), &self.settings)
    }
}

impl<T: Record> JournalStore<T> {
    /// A builder for the settings beyond the plain constructors: memory locking,
    /// pre-faulting, huge pages and the schema id.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let journal = roda_store::JournalStore::<u64>::options()
    ///     .populate(true)
    ///     .lock_memory(true) // a refused mlock is a logged warning, not an error
    ///     .schema(7)
    ///     .in_memory(4096)?;
    /// assert_eq!(journal.capacity(), 4096);
    /// # Ok(()) }
    /// ```
    pub fn options() -> JournalOptions<T> {
        StoreOptions::default()
    }

    /// A journal of `capacity` records in anonymous memory, shared by this process's
    /// readers only and gone when the last handle drops.
    pub fn in_memory(capacity: usize) -> Result<Self> {
        Self::options().in_memory(capacity)
    }

    /// Creates a journal file of `capacity` records at `path` and takes its writer lock.
    /// Fails with `AlreadyExists` if the path exists. The file's full size is reserved
    /// on disk up front (its blocks allocated), so a disk without room is an `Io` error
    /// here rather than a SIGBUS at some later append; see docs/file-format.md.
    #[cfg(not(roda_loom))]
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self> {
        Self::options().create(path, capacity)
    }

    /// Reopens the journal file at `path` for writing, resuming after the last committed
    /// record. Fails with `WriterActive` while another writer (in any process) holds it,
    /// and with a precise error if the file is not a journal of `T` records.
    #[cfg(not(roda_loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::options().open(path)
    }

    /// [`open`](Self::open) if `path` exists, else [`create`](Self::create) with `capacity`.
    #[cfg(not(roda_loom))]
    pub fn open_or_create(path: impl AsRef<Path>, capacity: usize) -> Result<Self> {
        Self::options().open_or_create(path, capacity)
    }

    pub(crate) fn from_claim(claim: Claimed, settings: &Settings) -> Result<Self> {
        let core = JournalCore::with_settings(claim.backing, settings);
        // The writer is alone (it holds the lock), so the stored count is final.
        let stored = core.published_raw();
        if stored > core.capacity() as u64 {
            return Err(RodaError::Corrupted {
                path: core.backing.path.clone().unwrap_or_default(),
                detail: format!(
                    "write sequence {stored} exceeds the capacity {}",
                    core.capacity()
                ),
            });
        }
        if let Some(wake) = &core.wake {
            wake.open();
        }
        let core = Arc::new(core);
        #[cfg(not(roda_loom))]
        let pretoucher = match settings.pretouch {
            0 => None,
            window => Some(
                Pretoucher::start(Arc::clone(&core), window).map_err(|source| RodaError::Io {
                    path: core.backing.path.clone(),
                    source,
                })?,
            ),
        };
        #[cfg(roda_loom)]
        let _ = settings;
        Ok(JournalStore {
            core,
            len: stored,
            lock: claim.lock,
            dir_synced: false,
            #[cfg(not(roda_loom))]
            _pretoucher: pretoucher,
        })
    }

    /// Appends `item` and returns its sequence.
    ///
    /// # Panics
    /// When the journal is full. That is the journal's documented policy: capacity is
    /// chosen up front and running out is a sizing bug. Use
    /// [`try_append`](Self::try_append) to handle it instead.
    #[inline]
    pub fn append(&mut self, item: &T) -> u64 {
        let seq = self.len;
        if seq >= self.core.capacity() as u64 {
            full(self.core.capacity());
        }
        self.write_one(seq, item);
        seq
    }

    /// Appends `item` and returns its sequence, or `Err(Full)` when there is no room.
    #[inline]
    pub fn try_append(&mut self, item: &T) -> Result<u64> {
        let seq = self.len;
        if seq >= self.core.capacity() as u64 {
            return Err(RodaError::Full {
                capacity: self.core.capacity(),
            });
        }
        self.write_one(seq, item);
        Ok(seq)
    }

    #[inline]
    fn write_one(&mut self, seq: u64, item: &T) {
        // SAFETY: seq < capacity (checked by the callers); `&mut self` makes this the only
        // writer, and record `seq` is not published yet, so no reader views it.
        unsafe { self.core.write(seq as usize, item) };
        self.len = seq + 1;
        self.core.publish(self.len);
    }

    /// Appends all of `items` and publishes them together with one Release store:
    /// readers see none of the batch or all of it. Returns the batch's sequences.
    ///
    /// # Panics
    /// When the batch does not fit (nothing is written then); see
    /// [`try_append_slice`](Self::try_append_slice).
    #[inline]
    pub fn append_slice(&mut self, items: &[T]) -> Range<u64> {
        if items.len() > self.remaining() {
            full(self.core.capacity());
        }
        self.write_batch(items)
    }

    /// Like [`append_slice`](Self::append_slice), but returns `Err(Full)` (writing
    /// nothing) when the batch does not fit.
    #[inline]
    pub fn try_append_slice(&mut self, items: &[T]) -> Result<Range<u64>> {
        if items.len() > self.remaining() {
            return Err(RodaError::Full {
                capacity: self.core.capacity(),
            });
        }
        Ok(self.write_batch(items))
    }

    #[inline]
    fn write_batch(&mut self, items: &[T]) -> Range<u64> {
        let start = self.len;
        for (i, item) in items.iter().enumerate() {
            // SAFETY: start + items.len() <= capacity (checked by the callers); the only
            // writer; none of these records is published yet.
            unsafe { self.core.write(start as usize + i, item) };
        }
        self.len = start + items.len() as u64;
        if !items.is_empty() {
            self.core.publish(self.len);
        }
        start..self.len
    }

    /// Starts a batch of appends that readers see all at once: the batch's records are
    /// published with one Release store when it is committed or dropped. Pipelines use it
    /// to publish everything one input produced together.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::JournalStore::<u64>::in_memory(8)?;
    /// let reader = journal.reader();
    /// let mut batch = journal.batch();
    /// batch.push(&1);
    /// batch.push(&2);
    /// assert_eq!(reader.published(), 0); // not visible yet
    /// assert_eq!(batch.commit(), 0..2);
    /// assert_eq!(reader.published(), 2);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn batch(&mut self) -> AppendBatch<'_, T> {
        let end = self.len;
        AppendBatch { journal: self, end }
    }

    /// Records appended (and published) so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing has been appended yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed number of records the journal holds.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Records that can still be appended.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.core.capacity() - self.len as usize
    }

    /// Whether no record can be appended.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.remaining() == 0
    }

    /// A new reader whose cursor starts at sequence 0.
    pub fn reader(&self) -> JournalReader<T> {
        JournalReader::new(Arc::clone(&self.core))
    }

    /// Writes every appended record to the file and waits for the disk (msync), so the
    /// records survive power loss; the first call also syncs the directory entry of a
    /// new file. A no-op for in-memory journals. Not needed to survive a process crash.
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

    /// The file's path, `None` for an in-memory journal.
    pub fn path(&self) -> Option<&Path> {
        self.core.backing.path.as_deref()
    }

    /// The header fields of the journal.
    pub fn header(&self) -> HeaderInfo {
        self.core.backing.info
    }

    /// Whether the writer wakes sleeping readers on publish (see `options().wake`).
    pub fn wakes_readers(&self) -> bool {
        self.core.wake.is_some()
    }

    /// Whether the journal's memory is locked into RAM (see `options().lock_memory`).
    pub fn memory_locked(&self) -> bool {
        self.core.backing.memory_locked
    }
}

/// Records given as bytes: [`try_append_bytes`](JournalStore::try_append_bytes), and the
/// writer of a [`RawJournal`](crate::RawJournal) (a `JournalStore<u8>` whose records
/// have a size known only at run time: every count is in records, the header says the
/// record size).
impl<T: Record> JournalStore<T> {
    /// Appends the records whose bytes are `bytes` (native byte order, back to back, at
    /// any alignment: a network payload, a buffer read from a file) with one copy, and
    /// publishes them together with one Release store. Returns their sequences;
    /// `Err(Full)` (nothing written) when they do not all fit, and
    /// `Err(InvalidRecordLayout)` when `bytes` is not a whole number of records.
    ///
    /// Into a journal file, a block of 64 KiB or more is written through the file
    /// (`pwrite`) rather than through the mapping: the kernel then fills page-cache
    /// pages without first faulting each one in and zeroing it, which makes bulk copies
    /// (an import) several times cheaper. Readers see the same pages either way; a
    /// failed write (a full disk) is `Err(Io)`, with nothing published.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::JournalStore::<u32>::in_memory(8)?;
    /// let records: [u32; 2] = [1, 2];
    /// // Their bytes, one byte into a buffer: not aligned for u32.
    /// let mut payload = vec![0u8];
    /// payload.extend_from_slice(bytemuck::cast_slice(&records));
    /// assert_eq!(journal.try_append_bytes(&payload[1..])?, 0..2);
    /// assert_eq!(journal.reader().next_batch(2), &records);
    /// # Ok(()) }
    /// ```
    #[cfg(not(roda_loom))]
    #[inline]
    pub fn try_append_bytes(&mut self, bytes: &[u8]) -> Result<Range<u64>> {
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 {
            return Err(crate::journal::raw::not_whole(
                size,
                std::mem::align_of::<T>(),
            ));
        }
        self.append_raw(bytes, size)
    }

    /// Appends the `bytes.len() / record_size` whole records in `bytes` and publishes
    /// them with one Release store (none of them when they do not all fit: `Err(Full)`).
    /// `record_size` is the header's, and `bytes.len()` a multiple of it (the caller's
    /// checks).
    #[cfg(not(roda_loom))]
    #[inline]
    pub(crate) fn append_raw(&mut self, bytes: &[u8], record_size: usize) -> Result<Range<u64>> {
        debug_assert!(record_size as u64 == self.core.backing.info.record_size);
        debug_assert!(bytes.len() % record_size == 0);
        let count = bytes.len() / record_size;
        if count > self.remaining() {
            return Err(RodaError::Full {
                capacity: self.core.capacity(),
            });
        }
        let start = self.len;
        if count > 0 {
            let offset = start as usize * record_size;
            match &self.lock {
                // A large block into a file: written through the file (pwrite) into the
                // page cache pages the mapping shows. Copying through the mapping would
                // first fault every untouched page in, which makes the kernel zero it
                // before the copy overwrites it (2-10x the cost of the copy); a write of
                // whole pages needs no zeroing. Nothing is published until the write
                // returned, and the Release store below orders it for readers as it does
                // a copy (the kernel's stores precede it in this thread).
                Some(lock) if bytes.len() >= WRITE_THROUGH_FILE => {
                    let at = self.core.backing.info.data_offset + offset as u64;
                    std::os::unix::fs::FileExt::write_all_at(lock.file(), bytes, at).map_err(
                        |source| RodaError::Io {
                            path: self.core.backing.path.clone(),
                            source,
                        },
                    )?;
                }
                // SAFETY: records start .. start + count lie inside the data area (count
                // <= remaining, so (start + count) * record_size <= capacity * stride, and
                // the stride of a journal is its record size); `&mut self` makes this the
                // only writer and none of these records is published yet, so no reader
                // views them; `bytes` is a separate borrow, so the ranges do not overlap.
                _ => unsafe {
                    let dst = self.core.data_ptr().as_ptr().cast::<u8>().add(offset);
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
                },
            }
            self.len = start + count as u64;
            self.core.publish(self.len);
        }
        Ok(start..self.len)
    }
}

/// Appends published together; see [`JournalStore::batch`]. Dropping the batch commits it.
pub struct AppendBatch<'a, T: Record> {
    journal: &'a mut JournalStore<T>,
    /// One past the last record written by this batch.
    end: u64,
}

impl<T: Record> AppendBatch<'_, T> {
    /// Writes `item` (unpublished until the batch commits) and returns its sequence.
    ///
    /// # Panics
    /// When the journal is full, like [`JournalStore::append`].
    #[inline]
    pub fn push(&mut self, item: &T) -> u64 {
        if self.end >= self.journal.core.capacity() as u64 {
            full(self.journal.core.capacity());
        }
        self.write(item)
    }

    /// Writes `item`, or returns `Err(Full)` when the journal has no room.
    #[inline]
    pub fn try_push(&mut self, item: &T) -> Result<u64> {
        if self.end >= self.journal.core.capacity() as u64 {
            return Err(RodaError::Full {
                capacity: self.journal.core.capacity(),
            });
        }
        Ok(self.write(item))
    }

    #[inline]
    fn write(&mut self, item: &T) -> u64 {
        let seq = self.end;
        // SAFETY: seq < capacity (checked by the callers); the batch borrows the writer
        // mutably, so it is the only writer; records from `journal.len` on are unpublished.
        unsafe { self.journal.core.write(seq as usize, item) };
        self.end = seq + 1;
        seq
    }

    /// Records written by this batch so far.
    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.journal.len) as usize
    }

    /// Whether nothing was written yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.journal.len
    }

    /// Records that can still be written.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.journal.core.capacity() - self.end as usize
    }

    /// The journal's capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.journal.core.capacity()
    }

    /// Publishes the batch (one Release store) and returns its sequences.
    #[inline]
    pub fn commit(self) -> Range<u64> {
        let start = self.journal.len;
        let end = self.end;
        drop(self);
        start..end
    }
}

impl<T: Record> Drop for AppendBatch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.end != self.journal.len {
            self.journal.len = self.end;
            self.journal.core.publish(self.end);
        }
    }
}

impl<T: Record> Drop for JournalStore<T> {
    fn drop(&mut self) {
        // Sleeping readers return instead of waiting for a writer that is gone.
        if let Some(wake) = &self.core.wake {
            wake.close();
        }
        if self.lock.is_some() {
            self.core.backing.clear_writer();
        }
    }
}

impl<T: Record> Appendable<T> for JournalStore<T> {
    #[inline]
    fn append(&mut self, item: &T) -> u64 {
        JournalStore::append(self, item)
    }
}

impl<T: Record> std::fmt::Debug for JournalStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("path", &self.path())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn full(capacity: usize) -> ! {
    panic!(
        "JournalStore is full: all {capacity} records of its capacity are written. \
         Create the journal with a larger capacity, or use try_append to handle a full journal"
    )
}

//! [`JournalReader`]: a cursor over a journal, in the writer's process or another.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roda_core::{IterativeReadable, Record, Result};

use crate::file::header::{journal_shape, HeaderInfo};
use crate::file::options::Settings;
use crate::journal::core::{JournalCore, Waiting};

/// A reader of a journal with its own cursor. Readers never block the writer or each
/// other; cloning one gives an independent cursor at the same position.
///
/// Records are viewed in place (`&T` into the mapping), never copied. A record, once
/// published, is never written again, so the views stay valid as long as the borrow.
///
/// ```
/// # fn main() -> roda_core::Result<()> {
/// let mut journal = roda_store::JournalStore::<u64>::in_memory(100)?;
/// let mut reader = journal.reader();
/// journal.append_slice(&[1, 2, 3, 4]);
/// assert_eq!(reader.next(), Some(&1));
/// assert_eq!(reader.next_batch(10), &[2, 3, 4]);
/// assert_eq!(reader.get(), Some(&4));
/// assert_eq!(reader.next(), None);
/// reader.seek(1);
/// assert_eq!((reader.get_index(), reader.available()), (1, 3));
/// assert_eq!(reader.get_at(3), Some(&4));
/// # Ok(()) }
/// ```
pub struct JournalReader<T: Record> {
    core: Arc<JournalCore<T>>,
    /// Sequence of the next record to read.
    cursor: u64,
    /// The published count as last loaded: records below it need no atomic load.
    known: u64,
    /// Empty polls since the count last moved (when to prefetch, `wait_for`).
    waiting: Waiting,
}

impl<T: Record> JournalReader<T> {
    pub(crate) fn new(core: Arc<JournalCore<T>>) -> Self {
        JournalReader {
            core,
            cursor: 0,
            known: 0,
            waiting: Waiting::default(),
        }
    }

    /// Follows the journal file at `path` read-only, usually from another process than
    /// the writer's. Takes no lock; sees each record as soon as the writer publishes it.
    #[cfg(not(roda_loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), &Settings::default())
    }

    /// Opens a reader of the journal file at `path` with the given settings.
    #[cfg(not(roda_loom))]
    pub(crate) fn open_with(path: &Path, settings: &Settings) -> Result<Self> {
        let shape = journal_shape::<T>(settings, false)?;
        let backing = crate::file::backing::open_reader(path, shape, settings)?;
        Ok(JournalReader::new(Arc::new(JournalCore::with_settings(
            backing, settings,
        ))))
    }

    /// Refreshes the cached published count; returns it.
    #[inline]
    fn refresh(&mut self) -> u64 {
        self.known = self.core.published();
        self.known
    }

    /// A poll found record `seq` unpublished. Once polls keep finding nothing, asks for
    /// the record's line, so that it travels beside the published count instead of
    /// after it (`prefetch_for_read`, `PREFETCH_AFTER_EMPTY_POLLS`).
    #[inline]
    fn wait_for(&mut self, seq: u64) {
        if self.waiting.empty_poll() {
            self.core.prefetch_record(seq as usize);
        }
    }

    /// Whether the record at `seq` is published.
    #[inline]
    fn is_published(&self, seq: u64) -> bool {
        seq < self.known || seq < self.core.published()
    }

    /// The record at the cursor, advancing past it; `None`, without moving, when the
    /// writer has not published it yet.
    #[inline]
    #[allow(clippy::should_implement_trait)] // lends `&T` from `&mut self`: not an Iterator
    pub fn next(&mut self) -> Option<&T> {
        let seq = self.cursor;
        if seq >= self.known {
            if seq >= self.refresh() {
                self.wait_for(seq);
                return None;
            }
            self.waiting.reset();
        }
        self.cursor = seq + 1;
        // SAFETY: seq < known, a value returned by `published`.
        Some(unsafe { self.core.record(seq as usize) })
    }

    /// Up to `max` published records from the cursor as one contiguous slice, advancing
    /// past them; empty only when nothing new is published (or `max` is 0).
    ///
    /// Like a short `read`, a batch may hold fewer records than are published by now: the
    /// reader first hands out what it already knows is published and asks the writer's
    /// published count again only once that is used up. Each such question moves the
    /// writer's cache line to the reader's core, so asking once per exhausted batch
    /// instead of once per call keeps a reader that is behind from slowing the writer.
    #[inline]
    pub fn next_batch(&mut self, max: usize) -> &[T] {
        let start = self.cursor;
        let max = max as u64;
        if self.known <= start {
            if self.refresh() <= start {
                self.wait_for(start);
                return &[];
            }
            self.waiting.reset();
        }
        let len = self.known.saturating_sub(start).min(max);
        if len == 0 {
            return &[];
        }
        self.cursor = start + len;
        // SAFETY: start + len <= known, a value returned by `published`.
        unsafe { self.core.records(start as usize, len as usize) }
    }

    /// Waits up to `timeout` for a record at the cursor to be published; whether one
    /// is. Does not move the cursor. See [`next_timeout`](Self::next_timeout) for how
    /// it waits.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let core = &self.core;
        crate::wake::wait_for_record(
            core.wake.as_ref(),
            timeout,
            self.cursor,
            &mut self.known,
            || core.published(),
            || false,
        )
    }

    /// The record at the cursor, advancing past it, waiting up to `timeout` for the
    /// writer to publish it; `None` when the time is up first, or (with waking on) at
    /// once when the writer has closed the journal (dropped its `JournalStore`) and
    /// nothing is left.
    ///
    /// How it waits: a journal created with waking on (`options().wake(true)`) lets the
    /// reader sleep in the kernel (a futex on the header's wake word) until the
    /// writer's next publish wakes it, typically within a few microseconds to tens of
    /// microseconds (the scheduler's wake-up latency), across processes too. The reader
    /// re-checks the published count after every wake-up, so a spurious wake-up (a
    /// signal, a publish another reader consumed, the safety timeout) never returns
    /// `None` early: only the deadline or a closed writer does. While sleeping it also
    /// re-checks at least every safety timeout (`options().wake_safety_timeout`, 100 ms
    /// by default), a net against a lost wake-up. Without waking on, or when the file
    /// can only be mapped read-only, it polls with sleeps of up to 1 ms instead.
    ///
    /// `next_timeout(Duration::MAX)` waits without a deadline.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::JournalStore::<u64>::options()
    ///     .wake(true)
    ///     .in_memory(16)?;
    /// let mut reader = journal.reader();
    /// let writer = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(10));
    ///     journal.append(&7);
    /// });
    /// assert_eq!(reader.next_timeout(Duration::from_secs(10)), Some(&7));
    /// writer.join().unwrap(); // the writer is dropped: it has closed the journal
    /// assert_eq!(reader.next_timeout(Duration::from_secs(10)), None); // at once
    /// # Ok(()) }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<&T> {
        if self.wait_timeout(timeout) {
            self.next()
        } else {
            None
        }
    }

    /// Like [`next_batch`](Self::next_batch), waiting up to `timeout` (as
    /// [`next_timeout`](Self::next_timeout) does) while nothing new is published.
    pub fn next_batch_timeout(&mut self, max: usize, timeout: Duration) -> &[T] {
        if max > 0 && self.wait_timeout(timeout) {
            self.next_batch(max)
        } else {
            &[]
        }
    }

    /// Whether this reader sleeps on the journal's wake word in its timed reads (the
    /// journal has waking on and this process could map its header writable); false:
    /// it polls.
    pub fn wakes_on_publish(&self) -> bool {
        self.core.wake.is_some()
    }

    /// The record the last read ended on: the one [`next`](Self::next) returned, the last
    /// of a [`next_batch`](Self::next_batch), or after [`seek(s)`](Self::seek) the record
    /// at `s - 1`; `None` at sequence 0 or when that record is not published.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        let seq = self.cursor.checked_sub(1)?;
        self.get_at(seq)
    }

    /// The cursor: records consumed, which is the sequence of the next record to read.
    #[inline]
    pub fn get_index(&self) -> u64 {
        self.cursor
    }

    /// The record with sequence `seq`, if published; does not move the cursor.
    #[inline]
    pub fn get_at(&self, seq: u64) -> Option<&T> {
        if !self.is_published(seq) {
            return None;
        }
        // SAFETY: seq is below a value returned by `published`.
        Some(unsafe { self.core.record(seq as usize) })
    }

    /// Moves the cursor to `seq`, which may lie beyond what is published (reads then wait
    /// for the writer to get there).
    #[inline]
    pub fn seek(&mut self, seq: u64) {
        self.cursor = seq;
    }

    /// Records published but not yet read: the reader's lag.
    #[inline]
    pub fn available(&self) -> u64 {
        self.core.published().saturating_sub(self.cursor)
    }

    /// Records the writer has published.
    #[inline]
    pub fn published(&self) -> u64 {
        self.core.published()
    }

    /// The journal's fixed capacity in records.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The file's path, `None` for an in-memory journal.
    pub fn path(&self) -> Option<&Path> {
        self.core.backing.path.as_deref()
    }

    /// The journal's header fields.
    pub fn header(&self) -> HeaderInfo {
        self.core.backing.info
    }
}

impl<T: Record> Clone for JournalReader<T> {
    fn clone(&self) -> Self {
        JournalReader {
            core: Arc::clone(&self.core),
            cursor: self.cursor,
            known: self.known,
            waiting: self.waiting,
        }
    }
}

impl<T: Record> IterativeReadable<T> for JournalReader<T> {
    #[inline]
    fn next(&mut self) -> Option<&T> {
        JournalReader::next(self)
    }

    #[inline]
    fn get(&self) -> Option<&T> {
        JournalReader::get(self)
    }

    #[inline]
    fn get_index(&self) -> u64 {
        JournalReader::get_index(self)
    }
}

impl<T: Record> std::fmt::Debug for JournalReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("path", &self.path())
            .field("cursor", &self.cursor)
            .field("published", &self.published())
            .finish()
    }
}

//! How a store's memory is set up: mlock, pre-faulting, huge pages, schema id.

use std::fmt;
use std::marker::PhantomData;

/// The memory settings themselves, shared by every kind of store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) lock_memory: bool,
    pub(crate) require_locked: bool,
    pub(crate) populate: bool,
    pub(crate) huge_pages: bool,
    pub(crate) schema: u64,
    /// Bytes kept faulted in ahead of a journal's writer by a background thread (0: off).
    pub(crate) pretouch: usize,
    /// A segmented journal's retention, when set through its options.
    pub(crate) retention: Option<Retention>,
    /// New journals carry wake words and wake sleeping readers on publish.
    pub(crate) wake: bool,
    /// A sleeping reader's safety timeout (None: the default, 100 ms).
    pub(crate) wake_safety: Option<std::time::Duration>,
    /// The journal id of a new journal (0: a random one).
    pub(crate) journal_id: u64,
}

impl Settings {
    /// The safety timeout of sleeping readers.
    pub(crate) fn safety_timeout(&self) -> std::time::Duration {
        self.wake_safety
            .unwrap_or(crate::wake::DEFAULT_SAFETY_TIMEOUT)
    }
}

/// A builder for store `S` (`JournalStore<T>` or `SlotStore<T>`) with settings beyond
/// the plain constructors. Get one from `JournalStore::options()` or
/// `SlotStore::options()`; it ends in one of the same constructors (`in_memory`,
/// `create`, `open`, `open_or_create`, and `open_reader` for a read-only follower).
///
/// All settings are off by default: plain constructors neither lock nor pre-fault.
pub struct StoreOptions<S> {
    pub(crate) settings: Settings,
    _store: PhantomData<fn() -> S>,
}

impl<S> Clone for StoreOptions<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for StoreOptions<S> {}

impl<S> fmt::Debug for StoreOptions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}

impl<S> Default for StoreOptions<S> {
    fn default() -> Self {
        StoreOptions {
            settings: Settings::default(),
            _store: PhantomData,
        }
    }
}

impl<S> StoreOptions<S> {
    /// Locks the store's pages into RAM (mlock) so the hot path never takes a major
    /// page fault. When the kernel refuses (RLIMIT_MEMLOCK is often only 8 MiB), a
    /// warning is logged and the store works unlocked, unless
    /// [`require_locked`](Self::require_locked) is set.
    pub fn lock_memory(mut self, yes: bool) -> Self {
        self.settings.lock_memory = yes;
        self
    }

    /// Makes a failed mlock an error (`RodaError::MemoryLock`) instead of a warning.
    /// Implies [`lock_memory`](Self::lock_memory).
    pub fn require_locked(mut self, yes: bool) -> Self {
        self.settings.require_locked = yes;
        if yes {
            self.settings.lock_memory = true;
        }
        self
    }

    /// Pre-faults every page at creation, for writing (MADV_POPULATE_WRITE; a read
    /// prefault on kernels before 5.14), moving the page-fault cost from the first
    /// appends to the constructor. The constructor then takes time and memory in
    /// proportion to the store's size; for a large journal see
    /// [`pretouch`](Self::pretouch), which faults pages in just ahead of the writer.
    pub fn populate(mut self, yes: bool) -> Self {
        self.settings.populate = yes;
        self
    }

    /// Asks for transparent huge pages (madvise MADV_HUGEPAGE): fewer TLB misses on
    /// large stores. Where the kernel declines, a warning is logged.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.settings.huge_pages = yes;
        self
    }

    /// Keeps `bytes` ahead of the writer faulted in for writing, from a background
    /// thread (`roda-pretouch`) that follows the published count, so appends never stop
    /// for a page fault: for plain journals (file or memory) and segmented journals,
    /// where it follows the writer into each segment (a recycled ring needs it only for
    /// its first pass). For a `KeepAll` journal it also prepares the next segment file
    /// ahead (created, reserved, mapped, its first window populated), so a roll only
    /// links that file into place and moves its mapping over the segment's; without a
    /// pre-toucher the roll builds the file itself, on the append path. 0, the
    /// default, turns it off. The thread only asks the kernel to populate pages (MADV_POPULATE_WRITE); it
    /// never reads or writes a record, so file contents and crash recovery are
    /// unchanged. It sleeps while the writer stands still (10 ms at most between
    /// checks) and stops when the journal is full or dropped. A few MiB suffice: the
    /// window only has to cover what the writer appends between two of its checks
    /// (100 µs while the writer moves). Slot stores ignore it.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::JournalStore::<u64>::options()
    ///     .pretouch(4 << 20)
    ///     .in_memory(1_000_000)?;
    /// journal.append(&1);
    /// # Ok(()) }
    /// ```
    pub fn pretouch(mut self, bytes: usize) -> Self {
        self.settings.pretouch = bytes;
        self
    }

    /// An application-chosen id of the record schema, stored in the header. Opening a
    /// file written with another schema id fails with `LayoutMismatch { field: "schema" }`,
    /// so a record type whose fields changed meaning but not size is still caught.
    pub fn schema(mut self, id: u64) -> Self {
        self.settings.schema = id;
        self
    }

    /// Wake on publish (journals only; off by default): a new journal carries a wake
    /// word and a waiter flag (header flag bit 1), and each publish (an append, a
    /// slice or a committed batch) ends with a full fence and one load of the flag,
    /// plus a FUTEX_WAKE when a reader sleeps. Readers' timed reads
    /// (`next_timeout`) then sleep in the kernel and wake within microseconds of the
    /// publish, in this process or another. Without it, timed reads poll with sleeps
    /// of up to 1 ms and appends pay nothing.
    ///
    /// Off by default because the fence is the largest part of a per-record append
    /// (see `docs/memory-model.md`, "Wake on publish", for the measurement); turn it on
    /// for sparse traffic read by sleeping readers. Opening an existing file keeps
    /// the file's own choice.
    pub fn wake(mut self, yes: bool) -> Self {
        self.settings.wake = yes;
        self
    }

    /// The journal id a new journal gets (journals only; default: a random one). A copy
    /// of a journal made elsewhere (an import through `roda-bridge`) takes its source's
    /// id this way, so that exporting the copy again names the same journal. 0 means a
    /// random id. Opening an existing file keeps the file's own id.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let journal = roda_store::JournalStore::<u64>::options()
    ///     .journal_id(0x5eed)
    ///     .create(tmp.path().join("copy.roda"), 16)?;
    /// assert_eq!(journal.header().journal_id, 0x5eed);
    /// # Ok(()) }
    /// ```
    pub fn journal_id(mut self, id: u64) -> Self {
        self.settings.journal_id = id;
        self
    }

    /// How long a sleeping reader waits at most before it re-checks on its own, even if
    /// no wake-up came (default 100 ms). A net against a lost wake-up, never the way
    /// readers learn of new records: a longer value costs nothing while wake-ups work.
    /// Applies to the readers this store (or reader open) makes.
    pub fn wake_safety_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.settings.wake_safety = Some(timeout);
        self
    }
}

/// What a file-backed [`SegmentedJournal`](crate::SegmentedJournal) keeps on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// A ring of `k` segment files (k >= 2): on each roll the oldest file is recycled
    /// in place (renamed and its header rewritten, its mapping kept), so the journal
    /// takes a fixed amount of disk and, once every file was used, no page faults.
    KeepLast(usize),
    /// An archive: every segment stays on disk as its own file; the writer maps a new
    /// file per segment and keeps only the last few mapped (older ones are read with
    /// [`SegmentedFollower::open`](crate::SegmentedFollower::open)).
    KeepAll,
}

//! [`SegmentedJournal`]: the writer of a segmented journal and its options.

use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;

use roda_core::{Record, Result, RodaError};

use crate::file::backing::Backing;
use crate::file::header::{journal_shape, NO_RECORDS};
use crate::file::options::{Retention, Settings};
use crate::journal::core::JournalCore;
use crate::segmented::core::{check_ring, max_readers, Gate, Padded, SegmentedCore};
use crate::segmented::files::SegmentFiles;
use crate::segmented::follower::SegmentedFollower;
use crate::segmented::reader::SegmentedReader;
use crate::sync::{fence, AtomicU64, Ordering};

/// Options of a [`SegmentedJournal`]: see [`SegmentedJournal::options`].
pub type SegmentedOptions<T> = crate::file::options::StoreOptions<SegmentedJournal<T>>;

impl<T: Record> SegmentedOptions<T> {
    /// The retention of a file-backed journal (default `KeepLast(4)` on `create`). On
    /// `open` the directory's own policy applies; setting a different one here makes
    /// `open` fail with `LayoutMismatch { field: "retention" }`.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.settings.retention = Some(retention);
        self
    }

    /// Creates a file-backed segmented journal in directory `dir` (created if missing)
    /// with segments of `segment_records` records and the configured retention, and
    /// takes its writer lock. Fails with `AlreadyExists` if `dir` already holds
    /// segment files.
    #[cfg(not(roda_loom))]
    pub fn create(
        self,
        dir: impl AsRef<std::path::Path>,
        segment_records: usize,
    ) -> Result<SegmentedJournal<T>> {
        self.create_at(dir, segment_records, 0)
    }

    /// [`create`](Self::create) for a journal whose first record has sequence `first`
    /// (a multiple of `segment_records`, else `InvalidCapacity`): its first `append`
    /// returns `first`, and readers and followers start there. A copy of another
    /// journal made from a later point keeps that journal's sequences this way.
    ///
    /// ```
    /// use roda_store::{Retention, SegmentedFollower, SegmentedJournal};
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("copy");
    /// let mut journal = SegmentedJournal::<u64>::options()
    ///     .retention(Retention::KeepAll)
    ///     .create_at(&dir, 100, 5000)?;
    /// assert_eq!(journal.append(&7), 5000);
    /// let mut follower = SegmentedFollower::<u64>::open(&dir)?;
    /// assert_eq!((follower.position(), follower.next()?), (5000, Some(7)));
    /// # Ok(()) }
    /// ```
    #[cfg(not(roda_loom))]
    pub fn create_at(
        self,
        dir: impl AsRef<std::path::Path>,
        segment_records: usize,
        first: u64,
    ) -> Result<SegmentedJournal<T>> {
        let shape = journal_shape::<T>(&self.settings, true)?;
        SegmentedJournal::create_shaped(dir.as_ref(), shape, &self.settings, segment_records, first)
    }

    /// Reopens the file-backed segmented journal in `dir` for writing: takes its lock
    /// (`WriterActive` while another writer holds it, or while gating readers of a
    /// dropped writer still exist: they keep the directory locked, see
    /// [`SegmentedJournal::reader`]), recovers from the segment headers and resumes
    /// after the last committed record.
    #[cfg(not(roda_loom))]
    pub fn open(self, dir: impl AsRef<std::path::Path>) -> Result<SegmentedJournal<T>> {
        let shape = journal_shape::<T>(&self.settings, true)?;
        SegmentedJournal::open_shaped(dir.as_ref(), shape, &self.settings)
    }

    /// [`open`](Self::open) if `dir` holds segment files, else [`create`](Self::create).
    #[cfg(not(roda_loom))]
    pub fn open_or_create(
        self,
        dir: impl AsRef<std::path::Path>,
        segment_records: usize,
    ) -> Result<SegmentedJournal<T>> {
        let dir = dir.as_ref();
        let exists = dir.is_dir() && !crate::segmented::files::scan(dir)?.is_empty();
        if exists {
            self.open(dir)
        } else {
            self.create(dir, segment_records)
        }
    }

    /// A follower of the file-backed segmented journal in `dir` (usually written by
    /// another process) with these options' schema and wake safety timeout; see
    /// [`SegmentedFollower::open`].
    #[cfg(not(roda_loom))]
    pub fn open_follower(self, dir: impl AsRef<std::path::Path>) -> Result<SegmentedFollower<T>> {
        SegmentedFollower::open_with(dir.as_ref(), &self.settings)
    }

    /// A segmented journal in anonymous memory: `segments` segments of
    /// `segment_records` records each, recycled in turn.
    pub fn in_memory(self, segment_records: usize, segments: usize) -> Result<SegmentedJournal<T>> {
        SegmentedJournal::build(&self.settings, segment_records, segments)
    }
}

/// [`SegmentedJournal`]: an unbounded stream in bounded memory (and bounded disk, or an
/// archive). Records live in a ring of fixed-size segments sharing one `u64` sequence
/// space; when the writer fills a segment it rolls into the next, reusing (recycling)
/// the oldest one in place, without unmapping it, so a long-running stream keeps the
/// same hot pages and takes no page faults once every segment has been used once.
///
/// Segments live in anonymous memory ([`SegmentedJournal::in_memory`]) or in a directory
/// of segment files ([`SegmentedJournal::create`] / [`open`](SegmentedJournal::open)) kept
/// under a [`Retention`] policy: `KeepLast(k)` recycles a ring of k files in place,
/// `KeepAll` archives every segment as its own file. See `docs/segmented.md` for when
/// to use which, and `docs/file-format.md` for the directory layout and crash recovery.
///
/// Two kinds of readers:
///
/// * Gating readers ([`SegmentedReader`], from [`reader`](SegmentedJournal::reader)) view
///   records in place (`&T`) and hold the writer back: it never recycles a segment a
///   reader has not left; when it would have to, `try_append` returns
///   `Err(WouldBlock)` and `append` waits (back-pressure, as in a Disruptor ring).
/// * Followers ([`SegmentedFollower`], from [`follower`](SegmentedJournal::follower) or,
///   in any process, [`SegmentedFollower::open`]) never hold the writer back. They return
///   copies validated against the segment's generation, and `Err(Lagged)` when the writer
///   recycled what they wanted (retention, as in a log).
///
/// Publishing and gating are lock-free: one Release store per append (or per batch; a
/// file-backed journal also stores the segment's own count), one Release store per
/// segment a reader leaves, and the writer reads the readers' positions only when it
/// rolls into a segment.
///
/// Back-pressured, in memory:
///
/// ```
/// use roda_store::SegmentedJournal;
///
/// # fn main() -> roda_core::Result<()> {
/// let mut journal = SegmentedJournal::<u64>::in_memory(1024, 4)?;
/// let mut reader = journal.reader();
/// let mut sum = 0;
/// for i in 0..10_000u64 {
///     while journal.try_append(&i).is_err() {
///         // The ring is full of records the reader has not read: drain it.
///         while let Some(x) = reader.next() {
///             sum += *x;
///         }
///     }
/// }
/// while let Some(x) = reader.next() {
///     sum += *x;
/// }
/// assert_eq!(sum, (0..10_000).sum::<u64>());
/// # Ok(()) }
/// ```
///
/// Retained on disk, followed from another process (here the same one):
///
/// ```
/// use roda_store::{Retention, RodaError, SegmentedFollower, SegmentedJournal};
///
/// # fn main() -> roda_core::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path().join("prices");
/// let mut journal = SegmentedJournal::<[f64; 2]>::create(&dir, 4096, Retention::KeepLast(4))?;
/// let mut follower = SegmentedFollower::<[f64; 2]>::open(&dir)?;
/// for i in 0..100_000 {
///     journal.append(&[i as f64, 1.0]); // never waits for the follower
/// }
/// // The follower was too slow: the records it wanted are recycled.
/// assert!(matches!(follower.next(), Err(RodaError::Lagged { .. })));
/// let oldest = follower.seek_to_oldest();
/// assert_eq!(follower.next()?, Some([oldest as f64, 1.0]));
/// # Ok(()) }
/// ```
///
/// # Example
///
/// ```
/// use roda_store::SegmentedJournal;
///
/// # fn main() -> roda_core::Result<()> {
/// // 4 segments of 1,024 records: at most 4,096 records in memory, an unbounded stream.
/// let mut journal = SegmentedJournal::<u64>::in_memory(1024, 4)?;
/// let mut reader = journal.reader();
/// let mut expected = 0;
/// for i in 0..100_000u64 {
///     // The reader holds the writer back: drain it before the ring is full.
///     while journal.try_append(&i).is_err() {
///         while let Some(x) = reader.next() {
///             assert_eq!(*x, expected);
///             expected += 1;
///         }
///     }
/// }
/// while let Some(x) = reader.next() {
///     assert_eq!(*x, expected);
///     expected += 1;
/// }
/// assert_eq!(expected, 100_000);
/// # Ok(()) }
/// ```
pub struct SegmentedJournal<T: Record> {
    core: Arc<SegmentedCore<T>>,
    /// Next sequence to write.
    seq: u64,
    /// First sequence of the segment being written, and one past its last.
    segment_start: u64,
    segment_end: u64,
    /// Ring slot of the segment being written (kept, so appends divide nothing).
    slot: usize,
    /// That segment's data area (kept, so appends load nothing to find it).
    data: SegmentData<T>,
    /// The CPU can prefetch lines ahead of the writer for writing (`prefetch_for_write`).
    prefetch: bool,
    /// The directory, for a file-backed journal.
    files: Option<Box<SegmentFiles>>,
    /// Keeps pages ahead of the writer faulted in, when asked for (`pretouch`).
    #[cfg(not(roda_loom))]
    pretoucher: Option<crate::file::pretouch::Pretoucher>,
}

/// The data area of the segment a writer fills: a pointer into a segment its `core`
/// owns, so that an append finds it without loading anything.
#[derive(Clone, Copy)]
struct SegmentData<T>(NonNull<T>);

// SAFETY: the pointer targets memory owned by the writer's `Arc<SegmentedCore>` (alive
// as long as the writer); only the writer's `&mut self` methods write through it, so
// moving the writer to another thread moves its only user. `T: Send` by `Record`.
unsafe impl<T: Send> Send for SegmentData<T> {}
// SAFETY: nothing reads or writes through a shared `&SegmentData`: `&self` methods of
// the writer never use it.
unsafe impl<T: Sync> Sync for SegmentData<T> {}

impl<T: Record> SegmentedJournal<T> {
    /// A builder for the memory settings (huge pages, populate, lock, schema).
    pub fn options() -> SegmentedOptions<T> {
        crate::file::options::StoreOptions::default()
    }

    /// `segments` segments of `segment_records` records in anonymous memory.
    pub fn in_memory(segment_records: usize, segments: usize) -> Result<Self> {
        Self::options().in_memory(segment_records, segments)
    }

    fn build(settings: &Settings, segment_records: usize, segments: usize) -> Result<Self> {
        // In memory the wake words live in the shared core, not in each segment.
        let segment_settings = Settings {
            wake: false,
            ..*settings
        };
        let shape = journal_shape::<T>(&segment_settings, false)?;
        check_ring(segment_records, segments)?;
        let segments = (0..segments)
            .map(|_| {
                Ok(JournalCore::new(
                    Backing::in_memory(shape, segment_records, settings)?.backing,
                ))
            })
            .collect::<Result<Box<[_]>>>()?;
        let mut journal = Self::assemble(segments, segment_records as u64, 0, 0, None);
        journal.set_wake(settings.wake, settings);
        for slot in 1..journal.core.segments.len() {
            // Relaxed: nothing is shared yet (the Arc publishes the core).
            journal
                .core
                .generation(slot)
                .store(NO_RECORDS, Ordering::Relaxed);
        }
        journal.with_settings(settings)
    }

    /// Creates a file-backed journal of segment files of `shape` (the typed options, or
    /// a raw writer's run-time layout).
    #[cfg(not(roda_loom))]
    pub(crate) fn create_shaped(
        dir: &std::path::Path,
        shape: crate::file::header::Shape,
        settings: &Settings,
        segment_records: usize,
        first: u64,
    ) -> Result<Self> {
        let retention = settings.retention.unwrap_or(Retention::KeepLast(4));
        let opened = crate::segmented::files::create(
            dir,
            shape,
            settings,
            segment_records,
            retention,
            first,
        )?;
        Self::from_opened(opened, settings).with_settings(settings)
    }

    /// Reopens a file-backed journal whose segment files must have `shape`.
    #[cfg(not(roda_loom))]
    pub(crate) fn open_shaped(
        dir: &std::path::Path,
        shape: crate::file::header::Shape,
        settings: &Settings,
    ) -> Result<Self> {
        let opened = crate::segmented::files::open(dir, shape, settings)?;
        Self::from_opened(opened, settings).with_settings(settings)
    }

    #[cfg(not(roda_loom))]
    fn from_opened(opened: crate::segmented::files::Opened, settings: &Settings) -> Self {
        let segments = opened
            .backings
            .into_iter()
            .map(|backing| JournalCore::with_settings(backing, settings))
            .collect::<Box<[_]>>();
        // The directory's own choice: its segment headers say whether it wakes.
        let wake = segments.iter().any(|segment| segment.wake.is_some());
        for segment in segments.iter() {
            if let Some(waker) = &segment.wake {
                waker.open();
            }
        }
        let mut journal = Self::assemble(
            segments,
            opened.segment_records,
            opened.seq,
            opened.floor,
            Some(Box::new(opened.files)),
        );
        journal.set_wake(wake, settings);
        journal
    }

    /// Gives the (not yet shared) core its wake words when `wake` is on.
    fn set_wake(&mut self, wake: bool, settings: &Settings) {
        if wake {
            Arc::get_mut(&mut self.core)
                .expect("the core is not shared yet")
                .wake = Some(crate::wake::Waker::owned(settings.safety_timeout()));
        }
    }

    /// Whether the writer wakes sleeping readers on publish (see `options().wake`).
    pub fn wakes_readers(&self) -> bool {
        self.core.wake.is_some()
    }

    /// Creates a file-backed segmented journal in `dir`; see
    /// [`SegmentedOptions::create`].
    ///
    /// ```
    /// use roda_store::{Retention, SegmentedFollower, SegmentedJournal};
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("ticks");
    /// // A ring of 3 files of 1,000 records: the last 2,000 to 3,000 records stay on disk.
    /// let mut journal = SegmentedJournal::<u64>::create(&dir, 1000, Retention::KeepLast(3))?;
    /// for i in 0..10_000u64 {
    ///     journal.append(&i);
    /// }
    /// drop(journal);
    ///
    /// // A follower (usually in another process) reads what is retained...
    /// let mut follower = SegmentedFollower::<u64>::open(&dir)?;
    /// assert_eq!(follower.position(), 7000);
    /// assert_eq!(follower.next()?, Some(7000));
    /// // ...and a reopened writer resumes after the last committed record.
    /// let mut journal = SegmentedJournal::<u64>::open(&dir)?;
    /// assert_eq!(journal.append(&10_000), 10_000);
    /// # Ok(()) }
    /// ```
    #[cfg(not(roda_loom))]
    pub fn create(
        dir: impl AsRef<std::path::Path>,
        segment_records: usize,
        retention: Retention,
    ) -> Result<Self> {
        Self::options()
            .retention(retention)
            .create(dir, segment_records)
    }

    /// Reopens the file-backed segmented journal in `dir` for writing; see
    /// [`SegmentedOptions::open`].
    #[cfg(not(roda_loom))]
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::options().open(dir)
    }

    /// A writer over `segments` that resumes at `seq`, whose oldest retained record is
    /// `floor`.
    pub(crate) fn assemble(
        segments: Box<[JournalCore<T>]>,
        segment_records: u64,
        seq: u64,
        floor: u64,
        files: Option<Box<SegmentFiles>>,
    ) -> Self {
        let segments_len = segments.len() as u64;
        let segment_start = seq / segment_records * segment_records;
        // The segment starting at `seq` is already prepared (a journal created at a
        // first sequence, or a roll cut short before its first record): it is current.
        let prepared = seq > 0 && seq == segment_start && {
            let slot = ((seq / segment_records) % segments.len() as u64) as usize;
            // Relaxed: this writer (or the one before it, whose lock it now holds)
            // stored the word; nothing else is read through it.
            segments[slot]
                .header_word(crate::file::header::OFF_FIRST_SEQ)
                .load(Ordering::Relaxed)
                == seq
        };
        // A full last segment: the next append rolls.
        let segment_start = if seq > 0 && seq == segment_start && !prepared {
            seq - segment_records
        } else {
            segment_start
        };
        let slot = ((segment_start / segment_records) % segments_len) as usize;
        let data = SegmentData(segments[slot].data_ptr());
        #[cfg(not(roda_loom))]
        let ahead = files.as_deref().and_then(|files| files.ahead());
        SegmentedJournal {
            core: Arc::new(SegmentedCore {
                segments,
                segment_records,
                published: Padded(AtomicU64::new(seq)),
                gates: (0..max_readers()).map(|_| Gate::new()).collect(),
                registrations: Padded(AtomicU64::new(0)),
                floor,
                wake: None,
                parked_files: std::sync::OnceLock::new(),
                #[cfg(not(roda_loom))]
                ahead,
            }),
            seq,
            segment_start,
            segment_end: segment_start + segment_records,
            slot,
            data,
            prefetch: crate::journal::core::write_prefetch_available(),
            files,
            #[cfg(not(roda_loom))]
            pretoucher: None,
        }
    }

    /// Starts the pre-toucher when the settings ask for one.
    fn with_settings(mut self, settings: &Settings) -> Result<Self> {
        #[cfg(not(roda_loom))]
        if settings.pretouch > 0 {
            let started =
                crate::file::pretouch::Pretoucher::start(Arc::clone(&self.core), settings.pretouch)
                    .map_err(|source| RodaError::Io {
                        path: self.dir().map(Into::into),
                        source,
                    })?;
            self.pretoucher = Some(started);
        }
        #[cfg(roda_loom)]
        let _ = settings;
        Ok(self)
    }

    /// A new gating reader starting at the oldest record still in memory. Until it is
    /// dropped, the writer never recycles a segment this reader has not left.
    ///
    /// For a file-backed journal the guarantee outlives the writer: a writer dropped
    /// while gating readers (or their clones) exist leaves the directory locked until
    /// the last of them, and everything else it handed out (followers, watches), is
    /// dropped; until then `open` fails with `WriterActive` naming this process.
    /// Followers alone never keep the directory locked.
    ///
    /// # Panics
    /// When [`MAX_READERS`](crate::MAX_READERS) readers exist already; see [`try_reader`](Self::try_reader).
    pub fn reader(&self) -> SegmentedReader<T> {
        self.try_reader()
            .unwrap_or_else(|e| panic!("SegmentedJournal::reader: {e}"))
    }

    /// Like [`reader`](Self::reader), returning `Err(TooManyReaders)` instead of panicking.
    pub fn try_reader(&self) -> Result<SegmentedReader<T>> {
        let start = self.core.oldest_retained(self.seq) / self.core.segment_records
            * self.core.segment_records;
        SegmentedReader::register(self.core.clone(), start)
    }

    /// A non-gating follower starting at the oldest retained record: it never holds the
    /// writer back and returns copies, or `Err(Lagged)` once the writer has recycled
    /// the records it wanted; see [`SegmentedFollower`]. Takes no reader gate.
    pub fn follower(&self) -> SegmentedFollower<T> {
        SegmentedFollower::local(self.core.clone())
    }

    /// Appends `item`, waiting (spin, then yield) while the readers hold every segment;
    /// returns its sequence. Pipelines wait with their own strategy through
    /// [`try_append`](Self::try_append) instead.
    ///
    /// # Panics
    /// When a file-backed journal cannot roll into its next segment file (an I/O error:
    /// disk full, permissions); [`try_append`](Self::try_append) returns it instead.
    #[inline]
    pub fn append(&mut self, item: &T) -> u64 {
        let seq = self.seq;
        if seq == self.segment_end {
            self.roll_waiting();
        }
        self.write(seq, item);
        self.publish();
        seq
    }

    /// `roll`, waiting while a reader holds the segment to recycle. Kept out of
    /// `append`'s hot path, which then handles no `Result` at all.
    #[cold]
    #[inline(never)]
    fn roll_waiting(&mut self) {
        loop {
            match self.roll() {
                Ok(()) => return,
                Err(RodaError::WouldBlock { .. }) => wait_a_little(),
                Err(e) => panic!("SegmentedJournal::append: {e}"),
            }
        }
    }

    /// Appends `item` and returns its sequence, or `Err(WouldBlock)` when the next segment
    /// is still held by a reader (nothing is written then).
    #[inline]
    pub fn try_append(&mut self, item: &T) -> Result<u64> {
        let seq = self.seq;
        if seq == self.segment_end {
            self.roll()?;
        }
        self.write(seq, item);
        self.publish();
        Ok(seq)
    }

    /// Appends as many of `items` as fit without waiting; returns their sequences
    /// (possibly empty: then `Err(WouldBlock)`).
    ///
    /// Unit of visibility: in this process (gating readers, `follower()`) the records
    /// appear together, with one Release store of the published count, even across
    /// segment ends. From the directory (`SegmentedFollower::open`, and recovery after
    /// a crash) each segment counts its own records: the part of the batch in a segment
    /// appears whole, but a segment the batch fills is sealed when the writer rolls out
    /// of it, so the batch appears segment by segment. Keep a batch inside one segment
    /// (segments a multiple of the batch size) where that matters; see
    /// `docs/segmented.md`, "Batches".
    pub fn try_append_slice(&mut self, items: &[T]) -> Result<Range<u64>> {
        let start = self.seq;
        for item in items {
            if self.seq == self.segment_end && self.roll().is_err() {
                break;
            }
            let seq = self.seq;
            self.write(seq, item);
        }
        if self.seq == start && !items.is_empty() {
            return Err(self.would_block());
        }
        self.publish();
        Ok(start..self.seq)
    }

    /// Starts a batch of appends published together (one Release store) when the batch
    /// is dropped; see [`SegmentedBatch`].
    #[inline]
    pub fn batch(&mut self) -> SegmentedBatch<'_, T> {
        SegmentedBatch { journal: self }
    }

    /// A handle that reports the journal's published count without holding the writer
    /// back (it is not a reader).
    pub fn watch(&self) -> SegmentedWatch<T> {
        SegmentedWatch {
            core: self.core.clone(),
        }
    }

    #[inline]
    fn write(&mut self, seq: u64, item: &T) {
        let index = (seq - self.segment_start) as usize;
        crate::journal::core::prefetch_for_write(
            self.prefetch,
            self.data.0,
            index,
            (self.segment_end - self.segment_start) as usize,
        );
        // SAFETY: `seq` lies in the current segment (below `segment_end`), so `index` is
        // below its capacity, and `self.data` is that segment's data area (set with
        // `slot`); this is the only writer (`&mut self`); the record is unpublished and,
        // after `roll`, no gating reader views the recycled segment (followers copy
        // through atomics and validate).
        #[cfg(not(roda_loom))]
        unsafe {
            crate::journal::core::write_words_at(self.data.0, index, item)
        };
        // SAFETY: as above (loom tracks the segment's memory through its core).
        #[cfg(roda_loom)]
        unsafe {
            self.core.segments[self.slot].write_words(index, item)
        };
        self.seq = seq + 1;
    }

    #[inline]
    fn publish(&self) {
        // Release pairs with the Acquire load in `SegmentedCore::published`.
        self.core.published.0.store(self.seq, Ordering::Release);
        if self.files.is_some() {
            // The segment's own count, for followers in other processes and for
            // recovery (Release pairs with their Relaxed load + Acquire fence,
            // `load_write_seq`).
            self.core
                .segment_of(self.segment_start)
                .publish(self.seq - self.segment_start);
        }
        if let Some(wake) = &self.core.wake {
            wake.notify();
        }
    }

    /// Moves to the next segment, if every reader has left the segment it recycles.
    #[cold]
    #[inline(never)]
    fn roll(&mut self) -> Result<()> {
        let next_start = self.segment_end;
        let window = self.core.segment_records * self.core.segments.len() as u64;
        if next_start >= window && !skip_gate_check() {
            // The segment to recycle held [next_start - window, next_start - window + S).
            let must_release = next_start - window + self.core.segment_records;
            if !self.core.gates_allow(must_release) {
                return Err(self.would_block());
            }
        }
        let slot = self.core.slot_of(next_start);
        match self.files.as_deref_mut() {
            Some(files) => {
                // Sleepers on a recycled ring file are woken (it is written again); an
                // archived `KeepAll` file is closed for good by the roll that replaces
                // it in its slot (or by the pre-toucher's install ahead of it).
                if files.retention() != Retention::KeepAll {
                    if let Some(wake) = &self.core.segments[slot].wake {
                        wake.wake_all();
                    }
                }
                files.roll(&self.core, self.segment_start, next_start)?;
                if let Some(wake) = &self.core.segments[slot].wake {
                    wake.open();
                }
                // Sleepers on the full segment wait for what comes after it: wake them
                // now that the next segment is in place (a fence, then the flag, as a
                // publish does), so they find it instead of sleeping on again.
                if let Some(wake) = &self.core.segment_of(self.segment_start).wake {
                    wake.notify();
                }
            }
            None => {
                // Invalidate the segment's old records for followers before overwriting
                // them. Relaxed store, then a Release fence that pairs with the
                // follower's Acquire fence before its re-check (`read_validated`): a
                // follower that copies any word written after this fence sees this
                // generation (or a later one) on its re-check and discards the copy.
                self.core
                    .generation(slot)
                    .store(next_start, Ordering::Relaxed);
                if !skip_generation_fence() {
                    fence(Ordering::Release);
                }
            }
        }
        self.segment_start = next_start;
        self.segment_end = next_start + self.core.segment_records;
        self.slot = slot;
        self.data = SegmentData(self.core.segments[slot].data_ptr());
        #[cfg(not(roda_loom))]
        if let Some(pretoucher) = &self.pretoucher {
            pretoucher.wake();
        }
        Ok(())
    }

    /// The segment whose file the pre-toucher moved into its slot ahead of the roll.
    #[cfg(test)]
    pub(crate) fn installed_ahead(&self) -> Option<u64> {
        let ahead = self.core.ahead.as_ref()?;
        let installed = ahead.installed.lock().unwrap();
        installed.as_ref().map(|(first, _)| *first)
    }

    fn would_block(&self) -> RodaError {
        RodaError::WouldBlock {
            capacity: (self.core.segment_records * self.core.segments.len() as u64) as usize,
        }
    }

    /// Records appended so far (the stream's length, not what memory holds).
    pub fn len(&self) -> u64 {
        self.seq
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// Records per segment.
    pub fn segment_records(&self) -> usize {
        self.core.segment_records as usize
    }

    /// Number of segments in the ring.
    pub fn segments(&self) -> usize {
        self.core.segments.len()
    }

    /// The oldest sequence still in memory.
    pub fn oldest_retained(&self) -> u64 {
        self.core.oldest_retained(self.seq)
    }

    /// The journal id shared by the directory's segment files (header offset 104): random
    /// at creation, it names this journal when it is copied elsewhere. 0 in memory and
    /// for directories created before journal ids.
    #[cfg(not(roda_loom))]
    pub fn journal_id(&self) -> u64 {
        self.files.as_deref().map_or(0, |files| files.journal_id())
    }

    /// The directory of a file-backed journal; `None` in memory.
    #[cfg(not(roda_loom))]
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.files.as_deref().map(|files| files.dir())
    }

    /// The retention of a file-backed journal; `None` in memory (where the ring of
    /// segments is recycled like `KeepLast`).
    #[cfg(not(roda_loom))]
    pub fn retention(&self) -> Option<Retention> {
        self.files.as_deref().map(|files| files.retention())
    }

    /// Writes the mapped segments to disk and waits (msync), syncs every segment file a
    /// `KeepAll` roll archived since the last flush (fdatasync: they are no longer
    /// mapped), then syncs the directory: what was appended survives power loss. A
    /// no-op in memory. Not needed to survive a process crash.
    #[cfg(not(roda_loom))]
    pub fn flush(&mut self) -> Result<()> {
        match self.files.as_deref_mut() {
            Some(files) => files.flush(&self.core),
            None => Ok(()),
        }
    }
}

impl<T: Record> Drop for SegmentedJournal<T> {
    fn drop(&mut self) {
        // The pre-toucher first (it may be preparing the next segment file), then the
        // file it prepared: no writer will roll into it.
        #[cfg(not(roda_loom))]
        {
            drop(self.pretoucher.take());
            if let Some(ahead) = &self.core.ahead {
                ahead.clear();
            }
        }
        // Sleeping readers return instead of waiting for a writer that is gone.
        if let Some(wake) = &self.core.wake {
            wake.close();
        }
        for segment in self.core.segments.iter() {
            if let Some(wake) = &segment.wake {
                wake.close();
            }
        }
        let Some(files) = self.files.take() else {
            return;
        };
        // Gating readers outlive the writer: they keep the directory locked (and this
        // process recorded as its writer), so no new writer recycles under their views.
        // Readers are only made by the writer or by cloning a reader, so with no gate
        // in use none can appear later. Acquire pairs with the claim's AcqRel.
        let readers_live = self
            .core
            .gates
            .iter()
            .any(|gate| gate.in_use.load(Ordering::Acquire));
        if readers_live {
            let _ = self.core.parked_files.set(files);
        } else {
            for segment in self.core.segments.iter() {
                segment.backing.clear_writer();
            }
        }
    }
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_gate_check() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_gate_check() -> bool {
    crate::loom_hooks::skip_gate_check()
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_generation_fence() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_generation_fence() -> bool {
    crate::loom_hooks::skip_generation_fence()
}

/// Records given as bytes: [`try_append_bytes`](SegmentedJournal::try_append_bytes), and
/// the writer of a [`RawSegmentedJournal`](crate::RawSegmentedJournal) (a
/// `SegmentedJournal<u8>` whose records have a size known only at run time: every count
/// is in records, the segment headers say the record size).
#[cfg(not(roda_loom))]
impl<T: Record> SegmentedJournal<T> {
    /// Appends as many of the records whose bytes are `bytes` (native byte order, back
    /// to back, at any alignment: a network payload) as fit without waiting, with one
    /// copy, like [`try_append_slice`](Self::try_append_slice); returns their sequences
    /// (`Err(WouldBlock)` when none fits). `Err(InvalidRecordLayout)` when `bytes` is
    /// not a whole number of records.
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::SegmentedJournal::<u32>::in_memory(4, 2)?;
    /// let records: [u32; 3] = [1, 2, 3];
    /// let mut payload = vec![0u8]; // one byte in: not aligned for u32
    /// payload.extend_from_slice(bytemuck::cast_slice(&records));
    /// assert_eq!(journal.try_append_bytes(&payload[1..])?, 0..3);
    /// assert_eq!(journal.follower().next()?, Some(1));
    /// # Ok(()) }
    /// ```
    pub fn try_append_bytes(&mut self, bytes: &[u8]) -> Result<Range<u64>> {
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 {
            return Err(crate::journal::raw::not_whole(
                size,
                std::mem::align_of::<T>(),
            ));
        }
        let range = self.append_raw(bytes, size, crate::journal::core::word_size::<T>())?;
        if range.is_empty() && !bytes.is_empty() {
            return Err(self.would_block());
        }
        Ok(range)
    }

    /// Appends as many of the whole records in `bytes` as fit without waiting, exactly
    /// as [`try_append_slice`](Self::try_append_slice) appends typed ones: each record
    /// stored in aligned atomic words of `width` bytes (as `write_words_at` does), the
    /// writer rolling at segment ends, one publish at the end. `record_size` is the
    /// headers' and divides `bytes.len()`; `width` is the word size for it
    /// (`word_size`). An error rolling into the next segment ends the append early:
    /// returned only when nothing was appended.
    pub(crate) fn append_raw(
        &mut self,
        bytes: &[u8],
        record_size: usize,
        width: usize,
    ) -> Result<Range<u64>> {
        debug_assert!(bytes.len() % record_size == 0 && record_size % width == 0);
        debug_assert!(record_size as u64 == self.core.segments[0].backing.info.record_size);
        let start = self.seq;
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.seq == self.segment_end {
                if let Err(e) = self.roll() {
                    if self.seq == start {
                        return Err(e);
                    }
                    break;
                }
            }
            let room = (self.segment_end - self.seq) as usize;
            let n = room.min(rest.len() / record_size);
            let (now, later) = rest.split_at(n * record_size);
            let index = (self.seq - self.segment_start) as usize;
            // SAFETY: records index .. index + n lie in the current segment (n <= room),
            // whose data area `self.data` is (set with `slot`); record `index` starts
            // `index * record_size` bytes into the page-aligned data, a multiple of
            // `width`, which divides the record size; this is the only writer (`&mut
            // self`); the records are unpublished and, after `roll` (which checked the
            // gates), no gating reader views the segment (followers copy through atomics
            // and validate).
            unsafe {
                let dst = self.data.0.as_ptr().cast::<u8>().add(index * record_size);
                crate::journal::core::words::store(width, dst, now);
            }
            self.seq += n as u64;
            rest = later;
        }
        if self.seq != start {
            self.publish();
        }
        Ok(start..self.seq)
    }
}

/// Appends to a [`SegmentedJournal`] that readers see together: published with one
/// Release store when the batch is dropped, except where the batch crosses a segment
/// end: the records before it are published when the writer rolls (a gating reader may
/// have to read them before it can release the segment the roll recycles), so the
/// batch appears segment by segment; see `docs/segmented.md`, "Batches".
pub struct SegmentedBatch<'a, T: Record> {
    journal: &'a mut SegmentedJournal<T>,
}

impl<T: Record> SegmentedBatch<'_, T> {
    /// Writes `item` (unpublished until the batch ends), or returns `Err(WouldBlock)`
    /// when the next segment is still held by a reader.
    #[inline]
    pub fn try_push(&mut self, item: &T) -> Result<u64> {
        let seq = self.journal.seq;
        if seq == self.journal.segment_end {
            // Readers may be waiting for what this batch holds so far: publish it first.
            self.journal.publish();
            self.journal.roll()?;
        }
        self.journal.write(seq, item);
        Ok(seq)
    }
}

impl<T: Record> Drop for SegmentedBatch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.journal.publish();
    }
}

/// The published count of a [`SegmentedJournal`], for monitoring; holds nothing back.
pub struct SegmentedWatch<T: Record> {
    core: Arc<SegmentedCore<T>>,
}

impl<T: Record> SegmentedWatch<T> {
    /// Records published so far.
    pub fn published(&self) -> u64 {
        self.core.published()
    }

    /// Records the journal holds in memory (segments × records per segment).
    pub fn capacity(&self) -> usize {
        self.core.segment_records as usize * self.core.segments.len()
    }

    /// Wakes the readers sleeping in timed reads of this process (in memory, with
    /// waking on; nothing otherwise), without publishing: each re-checks and, unless a
    /// record or its interrupt condition
    /// ([`SegmentedReader::wait_timeout_unless`](crate::SegmentedReader::wait_timeout_unless))
    /// is there, sleeps again. For an owner that stops the readers' threads.
    pub fn wake_readers(&self) {
        if let Some(wake) = &self.core.wake {
            wake.wake_all();
        }
    }
}

impl<T: Record> Clone for SegmentedWatch<T> {
    fn clone(&self) -> Self {
        SegmentedWatch {
            core: self.core.clone(),
        }
    }
}

/// The waiting of a plain `append`: a short spin, then a yield.
fn wait_a_little() {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

impl<T: Record> std::fmt::Debug for SegmentedJournal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedJournal")
            .field("len", &self.seq)
            .field("segment_records", &self.core.segment_records)
            .field("segments", &self.core.segments.len())
            .finish()
    }
}

#[cfg(all(test, not(roda_loom)))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Minor faults of the calling thread so far.
    fn thread_minflt() -> u64 {
        // SAFETY: `usage` is a plain C struct for getrusage to fill; zeroed is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD with a valid pointer to a `rusage`.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
        usage.ru_minflt as u64
    }

    /// With the pre-toucher on, a `KeepAll` journal's next segment file waits prepared
    /// (created, reserved, mapped and populated) before the writer fills the segment;
    /// once the ring has wrapped, the pre-toucher has also moved it into its ring slot
    /// (a mapping change, with its TLB shootdown, off the writer's thread). The roll and
    /// the appends through the whole new segment take no page fault. Before, the roll
    /// created and mapped the file on the append path, and each page faulted once.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn a_keep_all_roll_into_the_prepared_file_takes_no_page_fault() {
        const S: u64 = 1 << 14; // 384 KiB of records, inside the window
        let shm = std::path::Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let dir = tmp.path().join("archive");
        let mut journal = SegmentedJournal::<[u64; 3]>::options()
            .retention(Retention::KeepAll)
            .pretouch(1 << 20)
            .create(&dir, S as usize)
            .unwrap();
        // Past the 5 mapped segments too, where each roll archives a file.
        for round in 0..8u64 {
            let end = (round + 1) * S;
            append_to(&mut journal, end);
            wait_prepared(&journal, end);
            // Once the ring has wrapped, the file waits in its slot already (moved
            // there by the pre-toucher): the roll changes no mapping.
            let installed = journal.installed_ahead();
            let wrapped = end >= S * journal.segments() as u64;
            assert_eq!(
                installed,
                wrapped.then_some(end),
                "round {round}: the file installed ahead of the roll into {end}"
            );
            // The append that rolls: before, creating the file and writing its first
            // record faulted on the writer's thread.
            let before = thread_minflt();
            let seq = journal.append(&[end; 3]);
            let roll_faults = thread_minflt() - before;
            assert_eq!(seq, end);
            assert_eq!(roll_faults, 0, "round {round}: the rolling append faulted");
            let before = thread_minflt();
            for seq in end + 1..end + S {
                assert_eq!(journal.append(&[seq; 3]), seq);
            }
            let faults = thread_minflt() - before;
            assert!(
                faults <= 8,
                "round {round}: {faults} minor faults over {S} appends after a roll"
            );
        }
        let n = journal.len();
        drop(journal);
        // Every record is where it belongs, and no temporary file is left.
        let mut follower = crate::SegmentedFollower::<[u64; 3]>::open(&dir).unwrap();
        for seq in 0..n {
            assert_eq!(follower.next().unwrap(), Some([seq; 3]));
        }
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().contains(".roda-tmp-")
            })
            .count();
        assert_eq!(leftovers, 0, "the writer's drop removes the prepared file");
    }

    /// Appends until the journal holds `n` records (each record is its sequence).
    fn append_to(journal: &mut SegmentedJournal<[u64; 3]>, n: u64) {
        while journal.len() < n {
            journal.append(&[journal.len(); 3]);
        }
    }

    /// Waits for the pre-toucher to report segment `first` prepared.
    fn wait_prepared(journal: &SegmentedJournal<[u64; 3]>, first: u64) {
        let ahead = journal.core.ahead.clone().expect("KeepAll prepares ahead");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Relaxed: polled; the file itself is checked on disk.
        while ahead.prepared.load(std::sync::atomic::Ordering::Relaxed) != first {
            assert!(
                Instant::now() < deadline,
                "segment {first} not prepared within 30 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The inode, first sequence and write sequence of segment file `{first}`.
    fn segment_file(dir: &std::path::Path, first: u64) -> (u64, Option<u64>, u64) {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(crate::segmented::files::segment_name(first));
        let ino = std::fs::metadata(&path).unwrap().ino();
        let file = crate::StoreFile::open(&path).unwrap();
        (ino, file.first_sequence(), file.write_sequence())
    }

    /// The pre-toucher names a `KeepAll` journal's next segment file ahead of the roll
    /// (a spare: no records, first sequence `NO_RECORDS`), so the roll names nothing.
    /// That file is what a writer that stops (a close, or a kill) before the roll
    /// leaves; the next writer rolls into that very file, whether its pre-toucher
    /// opens it ahead or (no pre-toucher, or the writer stopped exactly at a segment's
    /// end, where nothing is prepared) the roll does; the records stay in order.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map files")]
    fn a_keep_all_writer_names_the_next_file_ahead_and_the_next_writer_rolls_into_it() {
        const S: u64 = 1 << 10;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("archive");
        let options = || {
            SegmentedJournal::<[u64; 3]>::options()
                .retention(Retention::KeepAll)
                .pretouch(1 << 20)
        };
        // Past the 4 mapped segments: the slot of segment 6S holds the archived 2S.
        let mut journal = options().create(&dir, S as usize).unwrap();
        append_to(&mut journal, 5 * S + 10);
        wait_prepared(&journal, 6 * S);
        let (ino, first, written) = segment_file(&dir, 6 * S);
        assert_eq!((first, written), (None, 0), "a named spare before the roll");
        drop(journal);
        assert_eq!(segment_file(&dir, 6 * S), (ino, None, 0), "left as it was");

        // A writer with a pre-toucher opens the spare ahead and rolls into it.
        let mut journal = options().open(&dir).unwrap();
        assert_eq!(journal.len(), 5 * S + 10);
        append_to(&mut journal, 7 * S + 1);
        assert_eq!(segment_file(&dir, 6 * S), (ino, Some(6 * S), S));
        // Stopped exactly at a segment's end, after the next file was named.
        append_to(&mut journal, 8 * S);
        // The writer sits at the end of a full segment (it rolls at its next append):
        // the pre-toucher still prepares what follows it.
        wait_prepared(&journal, 8 * S);
        let (ino, first, _) = segment_file(&dir, 8 * S);
        assert_eq!(first, None);
        drop(journal);

        // Nothing is prepared at a segment's end: the roll opens the spare itself.
        let mut journal = SegmentedJournal::<[u64; 3]>::open(&dir).unwrap();
        assert_eq!(journal.len(), 8 * S);
        append_to(&mut journal, 9 * S + 3);
        assert_eq!(segment_file(&dir, 8 * S), (ino, Some(8 * S), S));
        let n = journal.len();
        drop(journal);
        let mut follower = crate::SegmentedFollower::<[u64; 3]>::open(&dir).unwrap();
        for seq in 0..n {
            assert_eq!(follower.next().unwrap(), Some([seq; 3]));
        }
        assert_eq!(follower.next().unwrap(), None);
    }
}

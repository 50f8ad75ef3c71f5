//! [`ElasticJournal`]: a journal for one reader that grows while the reader lags and
//! gives the memory back once it has caught up. It holds at most `limit` records the
//! reader has not received (exactly: the next append fails with `Err(Full)`), in
//! segments of `segment_records` records taken from a small pool:
//!
//! * **grows**: when the writer rolls into a new segment and no spare segment is left,
//!   it maps one more (the only time an append allocates);
//! * **reuses**: segments the reader has left go back to the pool, and the writer takes
//!   the most recently left one (the warmest in cache) when it rolls;
//! * **gives back**: once the backlog (records published and not received) has stayed
//!   below the base size (`base_segments` segments) for `give_back_after` rolls in a
//!   row, spare segments beyond the base are unmapped, coldest first. The hysteresis
//!   keeps a bursty stream from mapping, unmapping and faulting pages on every burst.
//!   Memory is given back as the writer rolls: a writer that stops appending keeps
//!   what it holds.
//!
//! Lock-free, one Release store per published record or batch. The reader stores how
//! many records it has received with one Release store per read (or batch), which the
//! writer loads once per publish (to count the backlog) and before it reuses a segment.
//! Neither side takes a lock, and once the segments exist neither allocates.
//!
//! The writer never waits for the reader: past `limit` un-received records it fails
//! instead. That is what a pipeline's last journal needs, so that the thread that
//! feeds the pipeline and receives from it can never deadlock on its own output (a
//! `StageEngine` built with `with_capacity` ends in one).
//!
//! ```
//! use roda_store::ElasticJournal;
//!
//! # fn main() -> roda_core::Result<()> {
//! // Segments of 1,024 records; at most 10,000 records not received.
//! let mut journal = ElasticJournal::<u64>::in_memory(1024, 10_000)?;
//! let mut reader = journal.reader()?;
//! for i in 0..10_000u64 {
//!     journal.append(&i); // the reader lags: the journal grows
//! }
//! assert!(journal.try_append(&10_000).is_err()); // 10,000 not received: full
//! assert_eq!(reader.next(), Some(&0));
//! assert_eq!(journal.try_append(&10_000)?, 10_000); // one received: room for one
//! let mut sum = 0;
//! while let Some(x) = reader.next() {
//!     sum += *x;
//! }
//! assert_eq!(sum, (1..=10_000u64).sum::<u64>());
//! assert_eq!(journal.watch().high_water(), 10_000);
//! # Ok(()) }
//! ```

mod core;
#[cfg(roda_loom)]
#[doc(hidden)]
pub mod loom_hooks;
mod reader;

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use roda_core::{Record, Result, RodaError};

use crate::file::backing::Backing;
use crate::file::header::Shape;
use crate::file::options::Settings;
use crate::journal::core::JournalCore;
use crate::sync::Ordering;

use self::core::ElasticCore;
pub use reader::{ElasticReader, ElasticWatch};

/// Most directory slots (segments live at once) an elastic journal may need; a larger
/// `limit / segment_records` is refused (raise `segment_records`).
pub const MAX_ELASTIC_SEGMENTS: usize = 1 << 20;

/// Options of an [`ElasticJournal`]: see [`ElasticJournal::options`].
pub struct ElasticOptions<T> {
    populate: bool,
    wake: bool,
    wake_safety: Option<std::time::Duration>,
    base_segments: usize,
    give_back_after: u64,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for ElasticOptions<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ElasticOptions<T> {}

impl<T> std::fmt::Debug for ElasticOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticOptions")
            .field("populate", &self.populate)
            .field("wake", &self.wake)
            .field("base_segments", &self.base_segments)
            .field("give_back_after", &self.give_back_after)
            .finish()
    }
}

impl<T: Record> ElasticOptions<T> {
    /// Pre-faults every segment when it is mapped (the base segments at creation, more
    /// as the journal grows), so appends take no page faults (default: off).
    pub fn populate(mut self, yes: bool) -> Self {
        self.populate = yes;
        self
    }

    /// Wake on publish (default: off): each publish (an append or a batch) ends with a
    /// full fence and one load of the waiter flag, plus a FUTEX_WAKE when the reader
    /// sleeps, so the reader's timed reads ([`ElasticReader::next_timeout`]) sleep in
    /// the kernel and wake within microseconds of the publish. The same protocol as
    /// `JournalStore`'s option (`docs/memory-model.md`, "Wake on publish"); the words
    /// live in the journal's shared state (private futex). A pipeline's last journal
    /// has it on.
    pub fn wake(mut self, yes: bool) -> Self {
        self.wake = yes;
        self
    }

    /// How long the sleeping reader waits at most before it re-checks on its own
    /// (default 100 ms): a net against a lost wake-up, never the mechanism.
    pub fn wake_safety_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.wake_safety = Some(timeout);
        self
    }

    /// Segments mapped at creation and kept when the journal gives memory back
    /// (default 4; at least 1; at most what the limit can use).
    pub fn base_segments(mut self, segments: usize) -> Self {
        self.base_segments = segments;
        self
    }

    /// How many rolls in a row the backlog must stay below the base size before the
    /// journal gives spare segments back (default 16; 0 gives them back at once).
    pub fn give_back_after(mut self, rolls: u64) -> Self {
        self.give_back_after = rolls;
        self
    }

    /// An elastic journal in anonymous memory, in segments of `segment_records`
    /// records, holding at most `limit` records not received.
    pub fn in_memory(self, segment_records: usize, limit: usize) -> Result<ElasticJournal<T>> {
        ElasticJournal::build(self, segment_records, limit)
    }
}

/// The writer of an elastic journal: a journal for one [`ElasticReader`] that grows by
/// segments while the reader lags, reuses the segments the reader has left, gives spare
/// memory back after a calm stretch (see [`ElasticOptions`]), and holds at most `limit`
/// records not received: the next append fails with `Err(Full)`. The writer never
/// waits. Lock-free: one Release store per published record or batch.
///
/// ```
/// use roda_store::ElasticJournal;
///
/// # fn main() -> roda_core::Result<()> {
/// let mut journal = ElasticJournal::<u64>::in_memory(4, 10)?;
/// let mut reader = journal.reader()?;
/// for round in 0..1_000u64 {
///     for i in 0..10 {
///         journal.append(&(round * 10 + i)); // 10 records not received: the limit
///     }
///     while let Some(x) = reader.next() {
///         assert!(*x < (round + 1) * 10);
///     }
/// }
/// assert_eq!(journal.len(), 10_000); // the limit is on the backlog, not the length
/// # Ok(()) }
/// ```
pub struct ElasticJournal<T: Record> {
    core: Arc<ElasticCore<T>>,
    /// Next sequence to write.
    seq: u64,
    /// First sequence of the segment being written, and one past its last (both 0
    /// before the first append, which then rolls into segment 0).
    segment_start: u64,
    segment_end: u64,
    /// The segment being written (its memory is owned by the directory).
    current: Option<NonNull<JournalCore<T>>>,
    /// Its data area (kept, so an append loads nothing to find it).
    data: NonNull<T>,
    /// The reader had received at least this many records (a cached load).
    received: u64,
    /// Copy of the core's limit (kept, so an append's check loads nothing).
    limit: u64,
    /// The oldest live segment: the next one to take back once the reader leaves it.
    oldest: u64,
    /// Segments the reader left, the most recently left last. Its capacity is the
    /// directory's length, which it never exceeds, so it never reallocates. Boxed: a
    /// segment's address goes into the directory and must not move.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<JournalCore<T>>>,
    /// Segments mapped: live ones plus spare ones.
    held: usize,
    base_segments: usize,
    give_back_after: u64,
    /// Rolls in a row with a backlog below the base size.
    calm_rolls: u64,
    high_water: u64,
    shape: Shape,
    settings: Settings,
}

// SAFETY: `current` and `data` point into a segment owned by the writer's `Arc` core
// (alive as long as the writer); only `&mut self` methods write through them, so moving
// the writer moves their only user. `T: Send + Sync` by the Record bound.
unsafe impl<T: Record> Send for ElasticJournal<T> {}
// SAFETY: `&self` methods never use `current` or `data`.
unsafe impl<T: Record> Sync for ElasticJournal<T> {}

impl<T: Record> ElasticJournal<T> {
    /// A builder for the pool's settings (pre-faulting, base size, hysteresis).
    pub fn options() -> ElasticOptions<T> {
        ElasticOptions {
            populate: false,
            wake: false,
            wake_safety: None,
            base_segments: 4,
            give_back_after: 16,
            _records: PhantomData,
        }
    }

    /// An elastic journal in anonymous memory with the default options; see
    /// [`ElasticOptions::in_memory`].
    pub fn in_memory(segment_records: usize, limit: usize) -> Result<Self> {
        Self::options().in_memory(segment_records, limit)
    }

    fn build(options: ElasticOptions<T>, segment_records: usize, limit: usize) -> Result<Self> {
        let settings = Settings {
            populate: options.populate,
            wake_safety: options.wake_safety,
            ..Settings::default()
        };
        let wake = options
            .wake
            .then(|| crate::wake::Waker::owned(settings.safety_timeout()));
        let shape = crate::file::header::journal_shape::<T>(&settings, false)?;
        if segment_records == 0 {
            return Err(RodaError::InvalidCapacity {
                capacity: 0,
                reason: "an elastic journal's segment needs room for at least one record; \
                         pass segment_records of 1 or more",
            });
        }
        if limit == 0 {
            return Err(RodaError::InvalidCapacity {
                capacity: 0,
                reason: "an elastic journal must hold at least one record not received; \
                         pass a limit of 1 or more",
            });
        }
        // Live segments at once: at most `(limit - 1) / S + 2` (the reader's segment,
        // the writer's, and the full ones between); one more slot keeps the slot a new
        // segment takes free.
        let slots = ((limit - 1) / segment_records).saturating_add(2);
        if slots > MAX_ELASTIC_SEGMENTS {
            return Err(RodaError::InvalidCapacity {
                capacity: limit as u64,
                reason: "an elastic journal's limit spans too many segments; raise \
                         segment_records (at most 1,048,576 segments of backlog)",
            });
        }
        let base_segments = options.base_segments.clamp(1, slots);
        let mut journal = ElasticJournal {
            core: Arc::new(ElasticCore::new(
                segment_records as u64,
                limit as u64,
                slots,
                wake,
            )),
            seq: 0,
            segment_start: 0,
            segment_end: 0,
            current: None,
            data: NonNull::dangling(),
            received: 0,
            limit: limit as u64,
            oldest: 0,
            spare: Vec::with_capacity(slots),
            held: 0,
            base_segments,
            give_back_after: options.give_back_after,
            calm_rolls: 0,
            high_water: 0,
            shape,
            settings,
        };
        for _ in 0..base_segments {
            let segment = journal.map_segment()?;
            journal.spare.push(segment);
        }
        Ok(journal)
    }

    /// The reader (one at a time): it starts after the records already received, so
    /// a new reader continues where a dropped one stopped. `Err(TooManyReaders)` while
    /// another reader exists.
    pub fn reader(&self) -> Result<ElasticReader<T>> {
        ElasticReader::register(self.core.clone())
    }

    /// A handle that reports the journal's counters without reading.
    pub fn watch(&self) -> ElasticWatch<T> {
        ElasticWatch::new(self.core.clone())
    }

    /// Appends `item` and returns its sequence.
    ///
    /// # Panics
    /// When `limit` records are not received (the journal is full), with a message
    /// naming the limit; [`try_append`](Self::try_append) returns `Err(Full)` instead.
    #[inline]
    #[track_caller]
    pub fn append(&mut self, item: &T) -> u64 {
        match self.try_append(item) {
            Ok(seq) => seq,
            Err(e) => append_failed(e),
        }
    }

    /// Appends `item` and returns its sequence, or `Err(Full { capacity: limit })` when
    /// `limit` records are not received (nothing is written then). An I/O error when a
    /// new segment cannot be mapped.
    #[inline]
    pub fn try_append(&mut self, item: &T) -> Result<u64> {
        let seq = self.seq;
        if seq - self.received >= self.limit {
            self.check_room()?;
        }
        if seq == self.segment_end {
            self.roll()?;
        }
        self.write(seq, item);
        self.publish();
        Ok(seq)
    }

    /// Starts a batch of appends published together (one Release store) when the batch
    /// is dropped; see [`ElasticBatch`].
    #[inline]
    pub fn batch(&mut self) -> ElasticBatch<'_, T> {
        ElasticBatch { journal: self }
    }

    /// Records appended so far (the stream's length).
    pub fn len(&self) -> u64 {
        self.seq
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// Most records the journal holds not received.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Records per segment.
    pub fn segment_records(&self) -> usize {
        self.core.segment_records as usize
    }

    /// Whether the writer wakes a sleeping reader on publish (see
    /// [`ElasticOptions::wake`]).
    pub fn wakes_reader(&self) -> bool {
        self.core.wake.is_some()
    }

    /// Segments mapped now (live and spare).
    pub fn segments_held(&self) -> usize {
        self.held
    }

    /// Records published and not received yet, as of the reader's last read.
    pub fn backlog(&self) -> u64 {
        // Relaxed: a snapshot for monitoring.
        self.seq - self.core.received.0.load(Ordering::Relaxed)
    }

    /// The room check of an append that the cached count says is full: reload what the
    /// reader received.
    #[cold]
    #[inline(never)]
    fn check_room(&mut self) -> Result<()> {
        // Relaxed: only counts; reusing memory loads it again with Acquire (`roll`).
        self.received = self.core.received.0.load(Ordering::Relaxed);
        if self.seq - self.received >= self.limit {
            Err(RodaError::Full {
                capacity: self.limit as usize,
            })
        } else {
            Ok(())
        }
    }

    #[inline]
    fn write(&mut self, seq: u64, item: &T) {
        let index = (seq - self.segment_start) as usize;
        // SAFETY: `seq` lies in the current segment (below `segment_end`, set by `roll`),
        // so `index` is below its capacity, and `self.data` is that segment's data area;
        // this is the only writer (`&mut self`); the record is unpublished, and the
        // segment is either new or one the reader has left (`roll`), so no `&T` view of
        // it is alive.
        #[cfg(not(roda_loom))]
        unsafe {
            self.data.as_ptr().add(index).write(*item)
        };
        #[cfg(roda_loom)]
        {
            let current = self.current.expect("a segment after roll");
            // SAFETY: as above (loom tracks the access through the segment's core).
            unsafe { current.as_ref().write(index, item) };
        }
        self.seq = seq + 1;
    }

    #[inline]
    fn publish(&mut self) {
        // Release pairs with the Acquire load in `ElasticCore::published`: the records
        // below `seq`, and the directory slots of their segments, are written.
        self.core
            .writer
            .published
            .store(self.seq, Ordering::Release);
        if let Some(wake) = &self.core.wake {
            wake.notify();
        }
        // Relaxed: a count for the limit and the high-water mark; reusing memory
        // loads it again with Acquire (`roll`).
        self.received = self.core.received.0.load(Ordering::Relaxed);
        let backlog = self.seq - self.received;
        if backlog > self.high_water {
            self.note_high_water(backlog);
        }
    }

    #[cold]
    #[inline(never)]
    fn note_high_water(&mut self, backlog: u64) {
        self.high_water = backlog;
        // Relaxed: a statistic.
        self.core
            .writer
            .high_water
            .store(backlog, Ordering::Relaxed);
    }

    /// Moves into the next segment: takes back the segments the reader has left, gives
    /// spare memory back after a calm stretch, and puts a spare (or new) segment into
    /// the new segment's directory slot.
    #[cold]
    #[inline(never)]
    fn roll(&mut self) -> Result<()> {
        let next_start = self.segment_end;
        let segment_records = self.core.segment_records;
        let next = next_start / segment_records;
        // Acquire pairs with the reader's Release store of `received`: its views of the
        // records it left ended before we reuse their segments.
        self.received = self
            .core
            .received
            .0
            .load(loom_hooks_or_default::reclaim_ordering());
        // The reader may still view record `received - 1`: keep its segment and later.
        let keep_from = if loom_hooks_or_default::reclaim_one_early() {
            self.received / segment_records
        } else {
            self.received.saturating_sub(1) / segment_records
        };
        while self.oldest < keep_from.min(next) {
            let slot = self.core.slot(self.oldest);
            // Relaxed: only this writer stores directory slots; the reader loads this
            // one no more (it has left the segment).
            let segment = self.core.directory[slot].swap(std::ptr::null_mut(), Ordering::Relaxed);
            debug_assert!(!segment.is_null(), "a live segment has a slot");
            // SAFETY: the slot held the segment this writer leaked with `Box::into_raw`
            // when it rolled into it; the null left behind means nothing else takes it.
            self.spare.push(unsafe { Box::from_raw(segment) });
            self.oldest += 1;
        }
        let backlog = next_start - self.received;
        if backlog < self.base_segments as u64 * segment_records {
            self.calm_rolls = self.calm_rolls.saturating_add(1);
        } else {
            self.calm_rolls = 0;
        }
        if self.calm_rolls > self.give_back_after && self.held > self.base_segments {
            self.give_back();
        }
        // The most recently left segment is the warmest in cache.
        let segment = match self.spare.pop() {
            Some(segment) => segment,
            None => self.map_segment()?,
        };
        let segment = NonNull::from(Box::leak(segment));
        let slot = self.core.slot(next);
        debug_assert!(
            // Relaxed: the writer's own store.
            self.core.directory[slot].load(Ordering::Relaxed).is_null(),
            "the limit keeps the new segment's slot free"
        );
        // Release pairs with the reader's Acquire load of the slot (`ElasticReader`):
        // the segment's memory, mapped or written by this writer, is visible to it.
        self.core.directory[slot].store(segment.as_ptr(), Ordering::Release);
        // SAFETY: the segment is alive (owned by the directory until this writer takes
        // it back).
        self.data = unsafe { segment.as_ref() }.data_ptr();
        self.current = Some(segment);
        self.segment_start = next_start;
        self.segment_end = next_start + segment_records;
        Ok(())
    }

    /// Unmaps spare segments beyond the base, coldest first.
    #[cold]
    fn give_back(&mut self) {
        let excess = (self.held - self.base_segments).min(self.spare.len());
        self.spare.drain(..excess);
        self.held -= excess;
        self.note_segments();
    }

    /// Maps one more segment (the journal grows).
    #[cold]
    fn map_segment(&mut self) -> Result<Box<JournalCore<T>>> {
        let backing = Backing::in_memory(
            self.shape,
            self.core.segment_records as usize,
            &self.settings,
        )?
        .backing;
        self.held += 1;
        self.note_segments();
        Ok(Box::new(JournalCore::new(backing)))
    }

    fn note_segments(&self) {
        // Relaxed: a statistic.
        self.core
            .writer
            .segments
            .store(self.held as u64, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn append_failed(e: RodaError) -> ! {
    match e {
        RodaError::Full { capacity } => panic!(
            "ElasticJournal::append: {capacity} records are not received (the journal's \
             limit); receive more often or raise the limit, or use try_append"
        ),
        e => panic!("ElasticJournal::append: {e}"),
    }
}

/// Appends to an [`ElasticJournal`] that the reader sees together: published with one
/// Release store when the batch is dropped.
pub struct ElasticBatch<'a, T: Record> {
    journal: &'a mut ElasticJournal<T>,
}

impl<T: Record> ElasticBatch<'_, T> {
    /// Writes `item` (unpublished until the batch ends) and returns its sequence, or
    /// `Err(Full)` when `limit` records are not received (counting this batch's).
    #[inline]
    pub fn try_push(&mut self, item: &T) -> Result<u64> {
        let journal = &mut *self.journal;
        let seq = journal.seq;
        if seq - journal.received >= journal.limit {
            journal.check_room()?;
        }
        if seq == journal.segment_end {
            journal.roll()?;
        }
        journal.write(seq, item);
        Ok(seq)
    }

    /// The journal's limit.
    pub fn limit(&self) -> usize {
        self.journal.limit as usize
    }
}

impl<T: Record> Drop for ElasticBatch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.journal.publish();
    }
}

impl<T: Record> Drop for ElasticJournal<T> {
    fn drop(&mut self) {
        // A sleeping reader returns instead of waiting for a writer that is gone.
        if let Some(wake) = &self.core.wake {
            wake.close();
        }
    }
}

impl<T: Record> std::fmt::Debug for ElasticJournal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticJournal")
            .field("len", &self.seq)
            .field("limit", &self.limit)
            .field("segment_records", &self.core.segment_records)
            .field("segments_held", &self.held)
            .finish()
    }
}

/// The protocol's switches: fixed outside loom, settable in loom models.
mod loom_hooks_or_default {
    use crate::sync::Ordering;

    #[cfg(not(roda_loom))]
    #[inline(always)]
    pub(super) fn reclaim_ordering() -> Ordering {
        Ordering::Acquire
    }

    #[cfg(roda_loom)]
    pub(super) fn reclaim_ordering() -> Ordering {
        if super::loom_hooks::relaxed_reclaim() {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        }
    }

    #[cfg(not(roda_loom))]
    #[inline(always)]
    pub(super) fn reclaim_one_early() -> bool {
        false
    }

    #[cfg(roda_loom)]
    pub(super) fn reclaim_one_early() -> bool {
        super::loom_hooks::reclaim_one_early()
    }
}

#[cfg(all(test, not(roda_loom)))]
mod tests;

//! [`ElasticReader`], the one reader of an [`ElasticJournal`](super::ElasticJournal),
//! and [`ElasticWatch`], its counters for monitoring.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use roda_core::{IterativeReadable, Record, Result, RodaError};

use super::core::ElasticCore;
use crate::journal::core::JournalCore;
use crate::sync::Ordering;

/// The reader of an elastic journal. It views records in place (`&T`) and tells the
/// writer how many it has received (one Release store per read), which frees room
/// under the limit and lets the writer reuse the segments it has left.
pub struct ElasticReader<T: Record> {
    core: Arc<ElasticCore<T>>,
    cursor: u64,
    /// Published count as last loaded.
    known: u64,
    /// The segment the cursor is in: its first sequence, one past its last, and its
    /// memory (`None` before the first read).
    segment_start: u64,
    segment_end: u64,
    segment: Option<NonNull<JournalCore<T>>>,
}

// SAFETY: `segment` points into memory the writer cannot reuse or free while this
// reader has not left it (the protocol), and which the `Arc` core keeps alive otherwise;
// moving the reader moves its only user. `T: Send + Sync` by the Record bound.
unsafe impl<T: Record> Send for ElasticReader<T> {}
// SAFETY: `&self` methods read the segment only for records this reader received.
unsafe impl<T: Record> Sync for ElasticReader<T> {}

impl<T: Record> ElasticReader<T> {
    pub(crate) fn register(core: Arc<ElasticCore<T>>) -> Result<Self> {
        // Acquire pairs with the Release store in `Drop`: a previous reader's last
        // store of `received` is visible.
        if core.reader_taken.swap(true, Ordering::Acquire) {
            return Err(RodaError::TooManyReaders { max: 1 });
        }
        // Relaxed: ordered by the swap above (the previous reader's stores happened
        // before its release of the flag).
        let cursor = core.received.0.load(Ordering::Relaxed);
        Ok(ElasticReader {
            core,
            cursor,
            known: 0,
            segment_start: 0,
            segment_end: 0,
            segment: None,
        })
    }

    /// Whether record `seq` is published (loading the count only when the cached one
    /// says no).
    #[inline]
    fn is_published(&mut self, seq: u64) -> bool {
        if seq < self.known {
            return true;
        }
        self.known = self.core.published();
        seq < self.known
    }

    /// Moves to the segment holding `seq` (published).
    #[cold]
    #[inline(never)]
    fn enter(&mut self, seq: u64) {
        let segment_records = self.core.segment_records;
        let number = seq / segment_records;
        let slot = self.core.slot(number);
        // Acquire pairs with the Release store of the slot in `ElasticJournal::roll`
        // (which also precedes the publish of `seq`, loaded with Acquire already).
        let segment = self.core.directory[slot].load(Ordering::Acquire);
        self.segment = NonNull::new(segment);
        debug_assert!(self.segment.is_some(), "a published segment has a slot");
        self.segment_start = number * segment_records;
        self.segment_end = self.segment_start + segment_records;
    }

    /// Tells the writer that every record below `received` is received.
    #[inline]
    fn note_received(&self, received: u64) {
        // Release pairs with the writer's Acquire load in `roll` (its views of the
        // segments it left ended before) and its Relaxed loads for the limit.
        self.core.received.0.store(received, Ordering::Release);
    }

    /// The next record, advancing past it; `None` when nothing new is published.
    #[inline]
    #[allow(clippy::should_implement_trait)] // lends `&T` from `&mut self`: not an Iterator
    pub fn next(&mut self) -> Option<&T> {
        let seq = self.cursor;
        if !self.is_published(seq) {
            return None;
        }
        if seq >= self.segment_end {
            self.enter(seq);
        }
        self.cursor = seq + 1;
        // Every view of records before `seq` has ended (this takes `&mut self`); the
        // writer keeps `seq`'s segment until the reader has received past it.
        self.note_received(self.cursor);
        let segment = self.segment?;
        // SAFETY: `seq` is published (written, immutable while its segment is live)
        // and lies in `segment` (entered above) at `seq - segment_start`, below the
        // segment's capacity; the writer neither reuses nor frees the segment before
        // the reader receives a record past it, which needs `&mut self` again.
        Some(unsafe { segment.as_ref().record((seq - self.segment_start) as usize) })
    }

    /// Up to `max` published records from the cursor, contiguous (a batch never crosses
    /// a segment end); empty when nothing new is published.
    #[inline]
    pub fn next_batch(&mut self, max: usize) -> &[T] {
        let start = self.cursor;
        if max == 0 || !self.is_published(start) {
            return &[];
        }
        if start >= self.segment_end {
            self.enter(start);
        }
        let end = self.known.min(self.segment_end).min(start + max as u64);
        self.cursor = end;
        self.note_received(end);
        let Some(segment) = self.segment else {
            return &[];
        };
        // SAFETY: as in `next`, for every record of the range, which stays inside the
        // segment.
        unsafe {
            segment.as_ref().records(
                (start - self.segment_start) as usize,
                (end - start) as usize,
            )
        }
    }

    /// Waits up to `timeout` for a record at the cursor to be published; whether one
    /// is. Does not move the cursor. See [`next_timeout`](Self::next_timeout) for how
    /// it waits.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        self.wait_timeout_unless(timeout, || false)
    }

    /// [`wait_timeout`](Self::wait_timeout) that also returns (false, unless a record
    /// is there) once `interrupted()` holds: the reader checks it before it sleeps and
    /// after every wake-up. Whoever makes it hold wakes the reader with
    /// [`ElasticWatch::wake_reader`] right after (a stop flag, for instance).
    pub fn wait_timeout_unless(
        &mut self,
        timeout: Duration,
        interrupted: impl FnMut() -> bool,
    ) -> bool {
        let core = &self.core;
        crate::wake::wait_for_record(
            core.wake.as_ref(),
            timeout,
            self.cursor,
            &mut self.known,
            || core.published(),
            interrupted,
        )
    }

    /// The next record, advancing past it, waiting up to `timeout` for the writer to
    /// publish it; `None` when the time is up first, or (with waking on) at once when
    /// the writer was dropped and nothing is left. With waking on
    /// ([`ElasticOptions::wake`](super::ElasticOptions::wake)) the reader sleeps in the
    /// kernel until the writer's next publish wakes it (microseconds); otherwise it
    /// polls with sleeps of up to 1 ms. Spurious wake-ups are re-checked, never
    /// returned; the safety timeout (100 ms by default) bounds a lost wake-up. The same
    /// semantics as [`JournalReader::next_timeout`](crate::JournalReader::next_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use roda_store::ElasticJournal;
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = ElasticJournal::<u64>::options().wake(true).in_memory(4, 16)?;
    /// let mut reader = journal.reader()?;
    /// let writer = std::thread::spawn(move || {
    ///     for i in 0..6 {
    ///         std::thread::sleep(Duration::from_millis(1));
    ///         journal.append(&i);
    ///     }
    /// });
    /// for i in 0..6 {
    ///     assert_eq!(reader.next_timeout(Duration::from_secs(10)), Some(&i));
    /// }
    /// writer.join().unwrap();
    /// assert_eq!(reader.next_timeout(Duration::from_secs(10)), None); // closed: at once
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
    /// journal has waking on); false: it polls.
    pub fn wakes_on_publish(&self) -> bool {
        self.core.wake.is_some()
    }

    /// Whether the writer was dropped (known only with waking on; false otherwise):
    /// nothing will be published after what is there, and timed reads return at once.
    pub fn writer_closed(&self) -> bool {
        self.core.wake.as_ref().is_some_and(|wake| wake.is_closed())
    }

    /// Records received so far (the cursor).
    #[inline]
    pub fn get_index(&self) -> u64 {
        self.cursor
    }

    /// The record the last read ended on, `None` before the first read.
    pub fn get(&self) -> Option<&T> {
        let seq = self.cursor.checked_sub(1)?;
        let segment = self.segment?;
        if seq < self.segment_start {
            return None;
        }
        // SAFETY: `seq` was received and lies in the current segment, which the writer
        // keeps while `received - 1` is in it.
        Some(unsafe { segment.as_ref().record((seq - self.segment_start) as usize) })
    }

    /// Records published and not received yet.
    #[inline]
    pub fn available(&self) -> u64 {
        self.core.published().saturating_sub(self.cursor)
    }

    /// Records the writer has published.
    #[inline]
    pub fn published(&self) -> u64 {
        self.core.published()
    }
}

impl<T: Record> Drop for ElasticReader<T> {
    fn drop(&mut self) {
        // Release pairs with the Acquire swap of the next `register`.
        self.core.reader_taken.store(false, Ordering::Release);
    }
}

impl<T: Record> IterativeReadable<T> for ElasticReader<T> {
    #[inline]
    fn next(&mut self) -> Option<&T> {
        ElasticReader::next(self)
    }
    #[inline]
    fn get(&self) -> Option<&T> {
        ElasticReader::get(self)
    }
    #[inline]
    fn get_index(&self) -> u64 {
        ElasticReader::get_index(self)
    }
}

impl<T: Record> std::fmt::Debug for ElasticReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticReader")
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// The counters of an [`ElasticJournal`](super::ElasticJournal), for monitoring; holds
/// nothing back.
pub struct ElasticWatch<T> {
    core: Arc<ElasticCore<T>>,
}

impl<T> ElasticWatch<T> {
    pub(crate) fn new(core: Arc<ElasticCore<T>>) -> Self {
        ElasticWatch { core }
    }

    /// Records published so far.
    pub fn published(&self) -> u64 {
        self.core.published()
    }

    /// Records the reader has received so far.
    pub fn received(&self) -> u64 {
        // Relaxed: a snapshot.
        self.core.received.0.load(Ordering::Relaxed)
    }

    /// Records published and not received: the reader's lag.
    pub fn backlog(&self) -> u64 {
        self.published().saturating_sub(self.received())
    }

    /// The largest backlog seen when records were published.
    pub fn high_water(&self) -> u64 {
        // Relaxed: a statistic.
        self.core.writer.high_water.load(Ordering::Relaxed)
    }

    /// Segments mapped now (live and spare).
    pub fn segments_held(&self) -> usize {
        // Relaxed: a statistic.
        self.core.writer.segments.load(Ordering::Relaxed) as usize
    }

    /// Most records the journal holds not received.
    pub fn limit(&self) -> usize {
        self.core.limit as usize
    }

    /// Records per segment.
    pub fn segment_records(&self) -> usize {
        self.core.segment_records as usize
    }

    /// Wakes the reader if it sleeps in a timed read (with waking on; nothing
    /// otherwise), without publishing: it re-checks and, unless a record or its
    /// interrupt condition ([`ElasticReader::wait_timeout_unless`]) is there, sleeps
    /// again. For an owner that stops the reader's thread.
    pub fn wake_reader(&self) {
        if let Some(wake) = &self.core.wake {
            wake.wake_all();
        }
    }
}

impl<T> Clone for ElasticWatch<T> {
    fn clone(&self) -> Self {
        ElasticWatch {
            core: self.core.clone(),
        }
    }
}

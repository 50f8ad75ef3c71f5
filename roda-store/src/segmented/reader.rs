//! [`SegmentedReader`]: a gating cursor over a [`SegmentedJournal`](crate::SegmentedJournal).

use std::sync::Arc;
use std::time::Duration;

use roda_core::{IterativeReadable, Record, Result, RodaError};

use crate::journal::core::Waiting;
use crate::segmented::core::{SegmentedCore, MAX_READERS};
use crate::sync::Ordering;

/// A reader of a segmented journal. It views records in place (`&T`) and holds the
/// writer back: the writer never recycles a segment this reader has not left, so its
/// views are never overwritten. Drop readers you no longer use, or the writer waits.
pub struct SegmentedReader<T: Record> {
    core: Arc<SegmentedCore<T>>,
    gate: usize,
    cursor: u64,
    known: u64,
    /// Start of the segment the reader's gate protects.
    gate_at: u64,
    /// Ring slot of that segment (kept, so reading within a segment divides nothing).
    slot: usize,
    /// Empty polls since the published count last moved (when to prefetch, `wait_for`).
    waiting: Waiting,
}

impl<T: Record> SegmentedReader<T> {
    pub(crate) fn register(core: Arc<SegmentedCore<T>>, start: u64) -> Result<Self> {
        let gate = core
            .claim_gate(start)
            .ok_or(RodaError::TooManyReaders { max: MAX_READERS })?;
        let slot = core.slot_of(start);
        Ok(SegmentedReader {
            core,
            gate,
            cursor: start,
            known: 0,
            gate_at: start,
            slot,
            waiting: Waiting::default(),
        })
    }

    #[inline]
    fn segment_start(&self, seq: u64) -> u64 {
        seq - seq % self.core.segment_records
    }

    /// Moves the gate to the segment of `seq` once the cursor has left the gate's
    /// segment; returns `seq`'s offset in its segment.
    #[inline]
    fn advance_gate(&mut self, seq: u64) -> u64 {
        // The cursor never goes below the gate (`seek` refuses), so this is the offset
        // when `seq` is still in the gate's segment.
        let offset = seq - self.gate_at;
        if offset < self.core.segment_records {
            offset
        } else {
            self.move_gate(seq)
        }
    }

    #[cold]
    #[inline(never)]
    fn move_gate(&mut self, seq: u64) -> u64 {
        let start = self.segment_start(seq);
        self.gate_at = start;
        self.slot = self.core.slot_of(start);
        // Release pairs with the writer's Acquire load in `gates_allow`: every view of the
        // records below `start` ended before the writer may recycle them.
        self.core.gates[self.gate]
            .released
            .0
            .store(start, Ordering::Release);
        seq - start
    }

    /// A poll found record `seq` unpublished. Once polls keep finding nothing, asks for
    /// the record's cache line, so that it travels beside the published count (see
    /// `prefetch_for_read`, `PREFETCH_AFTER_EMPTY_POLLS`), when `seq` lies in the segment
    /// the reader's gate holds; the first record of the next segment is left alone (the
    /// writer picks its slot when it rolls).
    #[inline]
    fn wait_for(&mut self, seq: u64) {
        if !self.waiting.empty_poll() {
            return;
        }
        let offset = seq.wrapping_sub(self.gate_at);
        if offset < self.core.segment_records {
            if let Some(segment) = self.core.segments.get(self.slot) {
                segment.prefetch_record(offset as usize);
            }
        }
    }

    /// The next record, advancing past it; `None` when nothing new is published.
    #[inline]
    #[allow(clippy::should_implement_trait)] // lends `&T` from `&mut self`: not an Iterator
    pub fn next(&mut self) -> Option<&T> {
        let seq = self.cursor;
        if seq >= self.known {
            self.known = self.core.published();
            if seq >= self.known {
                self.wait_for(seq);
                return None;
            }
            self.waiting.reset();
        }
        let offset = self.advance_gate(seq) as usize;
        self.cursor = seq + 1;
        // SAFETY: seq < published, so the record is written; its segment is the one our
        // gate protects (advanced above; `slot` is its ring slot, `offset` below its
        // capacity), so the writer does not recycle it while the returned borrow of
        // `self` lives.
        Some(unsafe { self.core.segments[self.slot].record(offset) })
    }

    /// Up to `max` published records from the cursor, contiguous (a batch never crosses
    /// a segment end); empty when nothing new is published.
    #[inline]
    pub fn next_batch(&mut self, max: usize) -> &[T] {
        let start = self.cursor;
        if start >= self.known {
            self.known = self.core.published();
            if start >= self.known {
                self.wait_for(start);
                return &[];
            }
            self.waiting.reset();
        }
        if max == 0 {
            return &[];
        }
        // A record is there to read: only now may the gate move past older segments.
        let offset = self.advance_gate(start);
        let segment_end = self.gate_at + self.core.segment_records;
        // Saturating: `max` may be `usize::MAX` ("all there is").
        let end = self
            .known
            .min(segment_end)
            .min(start.saturating_add(max as u64));
        self.cursor = end;
        // SAFETY: as in `next`, for every record of the range, which stays inside one
        // segment.
        unsafe { self.core.segments[self.slot].records(offset as usize, (end - start) as usize) }
    }

    /// Waits up to `timeout` for a record at the cursor to be published; whether one
    /// is. Does not move the cursor (nor the reader's gate).
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        self.wait_timeout_unless(timeout, || false)
    }

    /// [`wait_timeout`](Self::wait_timeout) that also returns (false, unless a record
    /// is there) once `interrupted()` holds: the reader checks it before it sleeps and
    /// after every wake-up. Whoever makes it hold wakes the readers with
    /// [`SegmentedWatch::wake_readers`](crate::SegmentedWatch::wake_readers) right
    /// after (a stop flag, for instance).
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

    /// Whether the writer was dropped (known with waking on in memory; false
    /// otherwise): nothing will be published after what is there, and timed reads
    /// return at once.
    pub fn writer_closed(&self) -> bool {
        self.core.wake.as_ref().is_some_and(|wake| wake.is_closed())
    }

    /// The next record, waiting up to `timeout` for the writer to publish it; `None`
    /// when the time is up first, or (with waking on) at once when the writer has been
    /// dropped and nothing is left. With waking on (`SegmentedJournal::options().wake(true)`) the
    /// reader sleeps in the kernel until the writer's next publish wakes it; otherwise
    /// it polls with sleeps of up to 1 ms. Spurious wake-ups are re-checked, never
    /// returned; the safety timeout (100 ms by default) bounds a lost wake-up. The same
    /// semantics as [`JournalReader::next_timeout`](crate::JournalReader::next_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = roda_store::SegmentedJournal::<u64>::options()
    ///     .wake(true)
    ///     .in_memory(4, 2)?;
    /// let mut reader = journal.reader();
    /// let writer = std::thread::spawn(move || {
    ///     for i in 0..6 {
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

    /// The cursor: the sequence of the next record to read.
    #[inline]
    pub fn get_index(&self) -> u64 {
        self.cursor
    }

    /// The record the last read ended on (after [`seek(s)`](Self::seek), the record at
    /// `s - 1`), `None` before the first read, when that record is not published yet,
    /// or when the reader has released it.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        let seq = self.cursor.checked_sub(1)?;
        if seq < self.gate_at || (seq >= self.known && seq >= self.core.published()) {
            return None;
        }
        // SAFETY: seq is published (below `known` or the count just loaded) and in a
        // segment at or after our gate, which the writer does not recycle while the
        // returned borrow of `self` lives.
        Some(unsafe {
            self.core
                .segment_of(seq)
                .record((seq % self.core.segment_records) as usize)
        })
    }

    /// Records published and not read yet.
    #[inline]
    pub fn available(&self) -> u64 {
        self.core.published().saturating_sub(self.cursor)
    }

    /// Records the writer has published.
    #[inline]
    pub fn published(&self) -> u64 {
        self.core.published()
    }

    /// Moves the cursor to `seq`. A reader releases what it skips: seeking into a later
    /// segment releases every segment before it at once (the writer may recycle them),
    /// so the reader cannot come back to them; inside the segment it holds it moves
    /// freely. Returns `Err(Lagged)` for a sequence before that segment, and then does
    /// not move.
    ///
    /// `seq` may lie beyond what the writer has published, however far: the reader
    /// then reads nothing until the writer gets there, and holds back no segment
    /// before `seq`'s. It holds `seq`'s segment like any reader in it, so the writer is
    /// held only once it would recycle that segment, a whole ring after it.
    ///
    /// ```
    /// use roda_store::SegmentedJournal;
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// let mut journal = SegmentedJournal::<u64>::in_memory(4, 2)?;
    /// let mut reader = journal.reader();
    /// reader.seek(10)?; // past the writer: segments 0..8 are released
    /// for i in 0..10 {
    ///     journal.try_append(&i)?; // never held by the reader
    /// }
    /// assert_eq!(reader.next(), None);
    /// journal.append(&10);
    /// assert_eq!(reader.next(), Some(&10));
    /// # Ok(()) }
    /// ```
    pub fn seek(&mut self, seq: u64) -> Result<()> {
        if seq < self.gate_at {
            return Err(RodaError::Lagged {
                missed: self.gate_at - seq,
            });
        }
        if seq - self.gate_at >= self.core.segment_records {
            // Release the skipped segments now: the writer must not wait for a reader
            // that will never view them (`&mut self`: no view of them is alive).
            self.move_gate(seq);
        }
        self.cursor = seq;
        Ok(())
    }
}

impl<T: Record> Clone for SegmentedReader<T> {
    /// An independent reader at the same position, with its own gate.
    ///
    /// # Panics
    /// When [`MAX_READERS`] readers exist already.
    fn clone(&self) -> Self {
        let mut reader = SegmentedReader::register(self.core.clone(), self.gate_at)
            .unwrap_or_else(|e| panic!("SegmentedReader::clone: {e}"));
        reader.cursor = self.cursor;
        reader.known = self.known;
        reader
    }
}

impl<T: Record> Drop for SegmentedReader<T> {
    fn drop(&mut self) {
        self.core.release_gate(self.gate);
    }
}

impl<T: Record> IterativeReadable<T> for SegmentedReader<T> {
    #[inline]
    fn next(&mut self) -> Option<&T> {
        SegmentedReader::next(self)
    }
    #[inline]
    fn get(&self) -> Option<&T> {
        SegmentedReader::get(self)
    }
    #[inline]
    fn get_index(&self) -> u64 {
        SegmentedReader::get_index(self)
    }
}

impl<T: Record> std::fmt::Debug for SegmentedReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedReader")
            .field("cursor", &self.cursor)
            .field("gate_at", &self.gate_at)
            .finish()
    }
}

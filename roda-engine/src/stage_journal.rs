//! The journals of a [`StageEngine`](crate::StageEngine), in either of its two layouts:
//!
//! * `with_capacity(n)`: every journal before the last is a recycled, back-pressured
//!   ring in memory (a `SegmentedJournal`), pre-faulted and sized from the record size
//!   so that it stays in cache; the last journal (the one `receive` reads) is an
//!   `ElasticJournal` that grows while the receiver lags, reuses what was received, and
//!   holds at most `n` records not received.
//! * `bounded(segment_records, segments)`: every journal, the last one too, is a ring
//!   of that shape: strictly fixed memory.
//!
//! The stage loop is one generic loop over the journal kinds, so no kind pays a branch
//! per record for another.

use std::any::Any;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use roda_core::{Record, Result, RodaError};
use roda_pipe::Collector;
use roda_store::{
    ElasticBatch, ElasticJournal, ElasticReader, ElasticWatch, SegmentedBatch, SegmentedJournal,
    SegmentedReader, SegmentedWatch,
};

use crate::wait::{Backoff, WaitStrategy};
use crate::worker::WorkerShared;

/// Segments per ring of a `with_capacity` pipeline.
pub(crate) const RING_SEGMENTS: usize = 4;

/// Bytes of records per ring of a `with_capacity` pipeline when not set: small enough
/// to stay in the shared last-level cache next to the stages' state, large enough that
/// a stage rarely waits on a scheduler time slice of the next, and larger than a
/// core's private L2, so that a line the writer reuses a lap later has left the
/// reader's core (a shared-cache hit instead of a transfer from the other core).
/// Measured on a 2-core AMD EPYC (1 MiB L2 per core, 32 MiB L3): send-all-then-drain
/// of the sensor workload needed about a third less CPU time with 4 MiB rings than
/// with 1 MiB ones.
const RING_BYTES: usize = 4 << 20;

/// Bounds on the records per segment chosen from a record size.
const MIN_SEGMENT_RECORDS: usize = 64;
const MAX_SEGMENT_RECORDS: usize = 1 << 16;

/// Most segments an elastic last journal spans at its limit; larger limits get larger
/// segments (its directory has one slot per segment, 16 bytes each with its spare list).
const MAX_ELASTIC_SPAN: usize = roda_store::MAX_ELASTIC_SEGMENTS - 2;

/// Elastic segments kept mapped when the journal gives memory back (at most
/// [`ELASTIC_BASE_BYTES`] of them, at least one), and the rolls in a row with a small
/// backlog before it does.
const ELASTIC_BASE_SEGMENTS: usize = 4;
const ELASTIC_BASE_BYTES: usize = 4 << 20;
const ELASTIC_GIVE_BACK_AFTER: u64 = 16;

/// How a pipeline's journals are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Rings between stages (of `ring` records, or sized from the record size), and an
    /// elastic last journal holding at most `limit` records not received.
    Elastic { limit: usize, ring: Option<usize> },
    /// Rings of `segments` segments of `segment_records` records everywhere, the last
    /// journal too.
    Bounded {
        segment_records: usize,
        segments: usize,
    },
}

impl Layout {
    /// The pipeline's capacity: the most outputs held not received (elastic), or the
    /// records of a ring (bounded).
    pub(crate) fn capacity(&self) -> usize {
        match *self {
            Layout::Elastic { limit, .. } => limit,
            Layout::Bounded {
                segment_records,
                segments,
            } => segment_records.saturating_mul(segments),
        }
    }

    /// The ring shape (records per segment, segments) for records of `T`, holding
    /// about `records` when given.
    fn ring_shape<T>(&self, records: Option<usize>) -> (usize, usize) {
        match *self {
            Layout::Elastic { ring, .. } => {
                let records = records.or(ring).unwrap_or_else(default_ring_records::<T>);
                (records.div_ceil(RING_SEGMENTS), RING_SEGMENTS)
            }
            Layout::Bounded {
                segment_records,
                segments,
            } => match records {
                Some(records) => (records.div_ceil(segments), segments),
                None => (segment_records, segments),
            },
        }
    }

    /// A journal between two stages (or the input of a pipeline with stages): a ring
    /// holding about `records` records (the layout's default when `None`).
    pub(crate) fn ring<T: Record>(&self, records: Option<usize>) -> Result<PipelineJournal<T>> {
        let (segment_records, segments) = self.ring_shape::<T>(records);
        // Pre-faulted: a ring reuses the same pages forever, so paying their faults
        // once, here, keeps the stream itself fault-free. No huge pages: a ring is far
        // smaller than the 2 MiB-aligned blocks they need.
        let journal = SegmentedJournal::<T>::options()
            .populate(true)
            .in_memory(segment_records, segments)?;
        let reader = journal.try_reader()?;
        let probe = Box::new(journal.watch());
        let room = Arc::new(RoomSignal::default());
        Ok(PipelineJournal {
            writer: Writer::Ring(journal),
            reader: Reader::Ring(RingReader {
                reader,
                segment_records: segment_records as u64,
                window: (segment_records * segments) as u64,
                next_segment: segment_records as u64,
                room: room.clone(),
            }),
            probe,
            room,
        })
    }

    /// The last journal (the one `receive` reads): elastic, holding at most `capacity`
    /// records not received (the layout's limit when `None`), or a ring (bounded).
    pub(crate) fn last<T: Record>(&self, capacity: Option<usize>) -> Result<PipelineJournal<T>> {
        match *self {
            Layout::Bounded { .. } => self.ring(capacity),
            Layout::Elastic { limit, .. } => {
                let limit = capacity.unwrap_or(limit);
                let (ring_segment, _) = self.ring_shape::<T>(None);
                let segment_records = ring_segment.max(limit.div_ceil(MAX_ELASTIC_SPAN));
                let segment_bytes = segment_records.saturating_mul(std::mem::size_of::<T>());
                let base =
                    (ELASTIC_BASE_BYTES / segment_bytes.max(1)).clamp(1, ELASTIC_BASE_SEGMENTS);
                let journal = ElasticJournal::<T>::options()
                    .populate(true)
                    .base_segments(base)
                    .give_back_after(ELASTIC_GIVE_BACK_AFTER)
                    .in_memory(segment_records, limit)?;
                let reader = journal.reader()?;
                let probe = Box::new(journal.watch());
                Ok(PipelineJournal {
                    writer: Writer::Elastic(journal),
                    reader: Reader::Elastic(reader),
                    probe,
                    room: Arc::new(RoomSignal::default()),
                })
            }
        }
    }
}

/// Ring records for records of `T`: [`RING_BYTES`] of them, within bounds.
fn default_ring_records<T>() -> usize {
    let per_segment = (RING_BYTES / RING_SEGMENTS / std::mem::size_of::<T>().max(1))
        .clamp(MIN_SEGMENT_RECORDS, MAX_SEGMENT_RECORDS);
    per_segment * RING_SEGMENTS
}

/// `reader` as a reader of `B` records; `A` and `B` are the same type (checked).
pub(crate) fn same_reader<A: Record, B: Record>(reader: Reader<A>) -> Reader<B> {
    let reader: Box<dyn Any> = Box::new(reader);
    *reader
        .downcast::<Reader<B>>()
        .unwrap_or_else(|_| unreachable!("a stageless pipeline's output type is its input type"))
}

/// The value of an `Ok`, or `None` for an error (dropped as usual). An `Ok` is consumed
/// without running `RodaError`'s drop glue: dropping a `Result` otherwise keeps an
/// out-of-line call to it, one per record on the hot path (seen in profiles).
#[inline(always)]
pub(crate) fn ok_fast<T: Copy>(result: Result<T>) -> Option<T> {
    if let Ok(value) = result {
        // An `Ok(T)` with `T: Copy` owns nothing: forgetting it leaks nothing.
        std::mem::forget(result);
        Some(value)
    } else {
        None
    }
}

/// A new pipeline journal: its writer, its reader, a probe that reports its counts
/// without holding anything back, and the signal of its writer's waits for room.
pub(crate) struct PipelineJournal<T: Record> {
    pub(crate) writer: Writer<T>,
    pub(crate) reader: Reader<T>,
    pub(crate) probe: Box<dyn Published>,
    pub(crate) room: Arc<RoomSignal>,
}

/// A journal's counts, whatever its record type and kind.
pub(crate) trait Published: Send {
    /// Records published so far.
    fn published(&self) -> u64;
    /// A ring's records, or an elastic journal's limit.
    fn capacity(&self) -> usize;
    /// The largest backlog seen (elastic journals; 0 for rings, bounded by capacity).
    fn high_water(&self) -> u64;
    /// Records its one reader has received: known for an elastic journal (its reader
    /// publishes it), `None` for a ring (only the reader knows its position).
    fn received(&self) -> Option<u64> {
        None
    }
    fn clone_box(&self) -> Box<dyn Published>;
}

impl<T: Record> Published for SegmentedWatch<T> {
    fn published(&self) -> u64 {
        SegmentedWatch::published(self)
    }
    fn capacity(&self) -> usize {
        SegmentedWatch::capacity(self)
    }
    fn high_water(&self) -> u64 {
        0
    }
    fn clone_box(&self) -> Box<dyn Published> {
        Box::new(self.clone())
    }
}

impl<T: Record> Published for ElasticWatch<T> {
    fn published(&self) -> u64 {
        ElasticWatch::published(self)
    }
    fn capacity(&self) -> usize {
        ElasticWatch::limit(self)
    }
    fn high_water(&self) -> u64 {
        ElasticWatch::high_water(self)
    }
    fn received(&self) -> Option<u64> {
        Some(ElasticWatch::received(self))
    }
    fn clone_box(&self) -> Box<dyn Published> {
        Box::new(self.clone())
    }
}

/// The writing end of a pipeline journal.
pub(crate) enum Writer<T: Record> {
    /// A ring (the signal its reader raises when it leaves a segment is the journal's
    /// `room`).
    Ring(SegmentedJournal<T>),
    /// An elastic last journal (a stageless pipeline's input).
    Elastic(ElasticJournal<T>),
}

impl<T: Record> Writer<T> {
    /// Appends `item`; `Err(WouldBlock)` (ring) or `Err(Full)` (elastic) when it cannot.
    #[inline]
    pub(crate) fn try_append(&mut self, item: &T) -> Result<u64> {
        match self {
            Writer::Ring(journal) => journal.try_append(item),
            Writer::Elastic(journal) => journal.try_append(item),
        }
    }

    /// [`try_append`](Self::try_append) for the hot path: `None` when it cannot.
    #[inline]
    pub(crate) fn append_fast(&mut self, item: &T) -> Option<u64> {
        ok_fast(self.try_append(item))
    }

    /// Records appended so far.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Writer::Ring(journal) => journal.len(),
            Writer::Elastic(journal) => journal.len(),
        }
    }
}

/// The reading end of a pipeline journal.
pub(crate) enum Reader<T: Record> {
    Ring(RingReader<T>),
    Elastic(ElasticReader<T>),
    /// The last stage has not started yet (it starts when the pipeline is first used),
    /// so its output journal does not exist yet: nothing to read.
    Pending,
}

impl<T: Record> Reader<T> {
    /// The next record, if one is published.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<&T> {
        match self {
            Reader::Ring(reader) => reader.next(),
            Reader::Elastic(reader) => reader.next(),
            Reader::Pending => None,
        }
    }

    /// Records read so far.
    pub(crate) fn position(&self) -> u64 {
        match self {
            Reader::Ring(reader) => reader.reader.get_index(),
            Reader::Elastic(reader) => reader.get_index(),
            Reader::Pending => 0,
        }
    }

    /// Whether this reader is all that holds its writer back: a ring full up to this
    /// reader's segment, so its writer cannot move on until this reader reads. Always
    /// false for an elastic journal, whose writer never waits.
    pub(crate) fn holds_writer(&self) -> bool {
        match self {
            Reader::Ring(reader) => reader.holds_writer(),
            Reader::Elastic(_) | Reader::Pending => false,
        }
    }
}

/// The gating reader of a ring, with the ring's shape and the signal that wakes the
/// ring's writer when this reader leaves a segment.
pub(crate) struct RingReader<T: Record> {
    reader: SegmentedReader<T>,
    segment_records: u64,
    window: u64,
    /// First sequence of the segment after the one the reader's gate protects.
    next_segment: u64,
    room: Arc<RoomSignal>,
}

impl<T: Record> RingReader<T> {
    /// After a read that started at `start`: when it moved the gate to a new segment,
    /// the writer may be waiting for exactly that room.
    #[inline]
    fn after_read(next_segment: &mut u64, segment_records: u64, room: &RoomSignal, start: u64) {
        if start >= *next_segment {
            *next_segment = start - start % segment_records + segment_records;
            room.notify();
        }
    }

    #[inline]
    fn next(&mut self) -> Option<&T> {
        let start = self.reader.get_index();
        let item = self.reader.next();
        if item.is_some() {
            Self::after_read(
                &mut self.next_segment,
                self.segment_records,
                &self.room,
                start,
            );
        }
        item
    }

    /// Whether the writer has filled the ring up to this reader's segment (the segment
    /// of the last record read, which the reader's gate protects).
    fn holds_writer(&self) -> bool {
        let position = self.reader.get_index();
        let gate = position.saturating_sub(1) / self.segment_records * self.segment_records;
        self.reader.published() >= gate + self.window
    }
}

/// A stage's input journal: batches of published records.
pub(crate) trait StageInput<T: Record>: Send + 'static {
    fn next_batch(&mut self, max: usize) -> &[T];
}

impl<T: Record> StageInput<T> for ElasticReader<T> {
    #[inline]
    fn next_batch(&mut self, max: usize) -> &[T] {
        ElasticReader::next_batch(self, max)
    }
}

impl<T: Record> StageInput<T> for RingReader<T> {
    #[inline]
    fn next_batch(&mut self, max: usize) -> &[T] {
        let start = self.reader.get_index();
        let batch = self.reader.next_batch(max);
        if !batch.is_empty() {
            Self::after_read(
                &mut self.next_segment,
                self.segment_records,
                &self.room,
                start,
            );
        }
        batch
    }
}

/// How a bounded journal's readers wake its writer when it waits for room: the writer
/// registers its thread and raises `waiting` before it waits; a reader that moved its
/// gate to a new segment unparks the registered thread if `waiting` is up. The writer
/// parks with a timeout, so a wake-up lost to a race costs latency, never progress; the
/// fences below keep even that rare.
#[derive(Default)]
pub(crate) struct RoomSignal {
    waiting: AtomicBool,
    thread: Mutex<Option<Thread>>,
    /// Nanoseconds the writer has spent waiting for room, all waits together.
    waited_nanos: AtomicU64,
}

impl RoomSignal {
    /// The writer is about to wait for room (the slow path: takes a lock).
    fn begin_wait(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        *thread = Some(std::thread::current());
        drop(thread);
        // Relaxed store, then SeqCst fence: pairs with the fence in `notify`, so either
        // the writer's next look at the gates sees the reader's release, or the reader
        // sees `waiting` and unparks the writer.
        self.waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// [`begin_wait`](Self::begin_wait) now, [`end_wait`](Self::end_wait) when the guard
    /// is dropped (also by a panic).
    pub(crate) fn wait(&self) -> RoomWait<'_> {
        self.begin_wait();
        RoomWait(self, Instant::now())
    }

    /// The time the writer has spent waiting for room so far.
    pub(crate) fn waited(&self) -> Duration {
        // Relaxed: a statistic.
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }

    /// The writer found room (or stopped waiting).
    fn end_wait(&self) {
        // Relaxed: only a hint for `notify` and for the stall diagnosis.
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// Whether the writer is waiting for room now.
    pub(crate) fn is_waiting(&self) -> bool {
        // Relaxed: a diagnosis; callers tolerate a stale value.
        self.waiting.load(Ordering::Relaxed)
    }

    /// A reader left a segment: wake the writer if it waits (once per segment read).
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence after the reader's Release store of its gate: pairs with the fence
        // in `begin_wait` (see there).
        fence(Ordering::SeqCst);
        if self.is_waiting() {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(thread) = thread.as_ref() {
            thread.unpark();
        }
    }
}

/// A writer waiting for room; see [`RoomSignal::wait`].
pub(crate) struct RoomWait<'a>(&'a RoomSignal, Instant);

impl Drop for RoomWait<'_> {
    fn drop(&mut self) {
        self.0.end_wait();
        let waited = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: a statistic (only the journal's one writer adds to it).
        self.0.waited_nanos.fetch_add(waited, Ordering::Relaxed);
    }
}

/// What a stage's output collector needs to know about its stage.
pub(crate) struct StageContext {
    pub(crate) name: String,
    pub(crate) wait: WaitStrategy,
    pub(crate) workers: Arc<WorkerShared>,
    /// The room signal of the stage's output journal (a ring; unused for an elastic
    /// one, whose writer never waits).
    pub(crate) room: Arc<RoomSignal>,
}

/// A collector that also counts what it was given.
pub(crate) trait CountingCollector<T>: Collector<T> {
    fn pushed(&self) -> u64;
}

/// A stage's output journal: one collector per input batch, publishing everything it
/// collected when dropped.
pub(crate) trait StageOutput<T: Record>: Send + 'static {
    type Batch<'a>: CountingCollector<T>
    where
        Self: 'a;
    fn batch<'a>(&'a mut self, stage: &'a StageContext) -> Self::Batch<'a>;
}

/// Collects into the elastic last journal; `n` outputs not received is the documented
/// panic.
pub(crate) struct LastBatch<'a, T: Record> {
    batch: ElasticBatch<'a, T>,
    stage: &'a StageContext,
    pushed: u64,
}

impl<T: Record> StageOutput<T> for ElasticJournal<T> {
    type Batch<'a> = LastBatch<'a, T>;
    #[inline]
    fn batch<'a>(&'a mut self, stage: &'a StageContext) -> LastBatch<'a, T> {
        LastBatch {
            batch: ElasticJournal::batch(self),
            stage,
            pushed: 0,
        }
    }
}

impl<T: Record> Collector<T> for LastBatch<'_, T> {
    #[inline]
    fn push(&mut self, item: &T) {
        if ok_fast(self.batch.try_push(item)).is_some() {
            self.pushed += 1;
        } else {
            self.full(item);
        }
    }
}

impl<T: Record> LastBatch<'_, T> {
    /// The push was refused: full (unless the receiver made room meanwhile), or a new
    /// segment could not be mapped.
    #[cold]
    #[inline(never)]
    fn full(&mut self, item: &T) {
        match self.batch.try_push(item) {
            Ok(_) => self.pushed += 1,
            Err(RodaError::Full { capacity }) => output_full(&self.stage.name, capacity),
            Err(e) => panic!("{}: cannot grow its output journal: {e}", self.stage.name),
        }
    }
}

impl<T: Record> CountingCollector<T> for LastBatch<'_, T> {
    fn pushed(&self) -> u64 {
        self.pushed
    }
}

/// The full-journal panic of a pipeline's last stage.
#[cold]
#[inline(never)]
pub(crate) fn output_full(stage: &str, capacity: usize) -> ! {
    panic!(
        "{stage}: output journal is full: {capacity} outputs are not received (the \
         pipeline's capacity); receive more often or raise the capacity (with_capacity, \
         or add_stage_with_capacity for the last stage)"
    )
}

/// Collects into a ring, waiting (with the engine's wait strategy) while the
/// next stage still holds the segment it must recycle.
pub(crate) struct BoundedBatch<'a, T: Record> {
    batch: SegmentedBatch<'a, T>,
    stage: &'a StageContext,
    pushed: u64,
    /// Shutdown came while waiting: the rest of this batch's outputs are dropped (the
    /// stages that would read them are stopping too).
    abandoned: bool,
}

impl<T: Record> StageOutput<T> for SegmentedJournal<T> {
    type Batch<'a> = BoundedBatch<'a, T>;
    #[inline]
    fn batch<'a>(&'a mut self, stage: &'a StageContext) -> BoundedBatch<'a, T> {
        BoundedBatch {
            batch: self.batch(),
            stage,
            pushed: 0,
            abandoned: false,
        }
    }
}

impl<T: Record> Collector<T> for BoundedBatch<'_, T> {
    #[inline]
    fn push(&mut self, item: &T) {
        if ok_fast(self.batch.try_push(item)).is_some() {
            self.pushed += 1;
        } else {
            self.push_when_room(item);
        }
    }
}

impl<T: Record> BoundedBatch<'_, T> {
    /// The back-pressure wait: the batch published what it holds before trying to roll,
    /// so the next stage is never starved by the records this stage waits behind.
    #[cold]
    #[inline(never)]
    fn push_when_room(&mut self, item: &T) {
        if self.abandoned {
            return;
        }
        let _waiting = self.stage.room.wait();
        let mut backoff = Backoff::new(self.stage.wait);
        loop {
            if self.batch.try_push(item).is_ok() {
                self.pushed += 1;
                break;
            }
            if self.stage.workers.stop_requested() {
                self.abandoned = true;
                break;
            }
            backoff.idle();
        }
    }
}

impl<T: Record> CountingCollector<T> for BoundedBatch<'_, T> {
    fn pushed(&self) -> u64 {
        self.pushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn notify_wakes_a_writer_waiting_for_room() {
        let room = Arc::new(RoomSignal::default());
        let r = room.clone();
        let writer = std::thread::spawn(move || {
            let _waiting = r.wait();
            let start = Instant::now();
            // Without a notify this sleeps the full 30 s, which the assertion catches (a
            // spurious wake-up could end it early, but never make a missing one pass).
            std::thread::park_timeout(Duration::from_secs(30));
            start.elapsed()
        });
        while !room.is_waiting() {
            std::thread::sleep(Duration::from_millis(1));
        }
        room.notify();
        let parked = writer.join().unwrap();
        assert!(
            parked < Duration::from_secs(20),
            "not woken: parked {parked:?}"
        );
        assert!(!room.is_waiting(), "the guard ends the wait");
    }

    #[test]
    fn notify_without_a_waiting_writer_does_nothing() {
        let room = RoomSignal::default();
        room.notify();
        assert!(!room.is_waiting());
    }
}

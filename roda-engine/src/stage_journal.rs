//! The journals between a [`StageEngine`](crate::StageEngine)'s stages, in either of its
//! two layouts: plain journals that never wrap (a pipeline with a lifetime budget of
//! records) or bounded, back-pressured segmented journals (an unbounded stream in fixed
//! memory). One pipeline uses one layout throughout; the stage loop is generic over it,
//! so neither layout pays a branch per record for the other.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use roda_core::{Record, Result};
use roda_pipe::Collector;
use roda_store::{
    AppendBatch, JournalReader, JournalStore, SegmentedBatch, SegmentedJournal, SegmentedReader,
    SegmentedWatch,
};

use crate::wait::{Backoff, WaitStrategy};
use crate::worker::WorkerShared;

/// How a pipeline's journals are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Plain journals of `capacity` records that never wrap.
    Plain { capacity: usize },
    /// Rings of `segments` segments of `segment_records` records, recycled in place;
    /// every reader gates its writer.
    Bounded {
        segment_records: usize,
        segments: usize,
    },
}

impl Layout {
    /// Records a journal of this layout holds at once.
    pub(crate) fn capacity(&self) -> usize {
        match *self {
            Layout::Plain { capacity } => capacity,
            Layout::Bounded {
                segment_records,
                segments,
            } => segment_records.saturating_mul(segments),
        }
    }

    /// The same kind of layout, holding about `capacity` records (bounded rings keep
    /// their segment count and round the segment size up).
    pub(crate) fn with_capacity(&self, capacity: usize) -> Layout {
        match *self {
            Layout::Plain { .. } => Layout::Plain { capacity },
            Layout::Bounded { segments, .. } => Layout::Bounded {
                segment_records: capacity.div_ceil(segments),
                segments,
            },
        }
    }

    /// A new journal of this layout.
    pub(crate) fn journal<T: Record>(&self) -> Result<PipelineJournal<T>> {
        match *self {
            Layout::Plain { capacity } => {
                // Huge pages: a plain pipeline streams through fresh memory (journals
                // never wrap), and 2 MiB pages cut the page faults of that by 512×.
                let journal = JournalStore::<T>::options()
                    .huge_pages(true)
                    .in_memory(capacity)?;
                let reader = journal.reader();
                let probe = Box::new(reader.clone());
                Ok(PipelineJournal {
                    writer: Writer::Plain(journal),
                    reader: Reader::Plain(reader),
                    probe,
                })
            }
            Layout::Bounded {
                segment_records,
                segments,
            } => {
                // Pre-faulted: a bounded pipeline reuses the same pages forever, so paying
                // their faults once, here, keeps the stream itself fault-free.
                let journal = SegmentedJournal::<T>::options()
                    .huge_pages(true)
                    .populate(true)
                    .in_memory(segment_records, segments)?;
                let reader = journal.try_reader()?;
                let probe = Box::new(journal.watch());
                let room = Arc::new(RoomSignal::default());
                Ok(PipelineJournal {
                    writer: Writer::Bounded(journal, room.clone()),
                    reader: Reader::Bounded(BoundedReader {
                        reader,
                        segment_records: segment_records as u64,
                        window: (segment_records * segments) as u64,
                        next_segment: segment_records as u64,
                        room,
                    }),
                    probe,
                })
            }
        }
    }
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

/// A new pipeline journal: its writer, a reader at its start, and a probe that reports
/// its published count without holding anything back.
pub(crate) struct PipelineJournal<T: Record> {
    pub(crate) writer: Writer<T>,
    pub(crate) reader: Reader<T>,
    pub(crate) probe: Box<dyn Published>,
}

/// A journal's published count and capacity, whatever its record type and layout.
pub(crate) trait Published: Send {
    fn published(&self) -> u64;
    fn capacity(&self) -> usize;
    fn clone_box(&self) -> Box<dyn Published>;
}

impl<T: Record> Published for JournalReader<T> {
    fn published(&self) -> u64 {
        JournalReader::published(self)
    }
    fn capacity(&self) -> usize {
        JournalReader::capacity(self)
    }
    fn clone_box(&self) -> Box<dyn Published> {
        Box::new(self.clone())
    }
}

impl<T: Record> Published for SegmentedWatch<T> {
    fn published(&self) -> u64 {
        SegmentedWatch::published(self)
    }
    fn capacity(&self) -> usize {
        SegmentedWatch::capacity(self)
    }
    fn clone_box(&self) -> Box<dyn Published> {
        Box::new(self.clone())
    }
}

/// The writing end of a pipeline journal.
pub(crate) enum Writer<T: Record> {
    Plain(JournalStore<T>),
    /// The journal, and the signal its readers raise when they leave a segment.
    Bounded(SegmentedJournal<T>, Arc<RoomSignal>),
}

impl<T: Record> Writer<T> {
    /// Appends `item`; `Err(Full)` (plain) or `Err(WouldBlock)` (bounded) when it cannot.
    #[inline]
    pub(crate) fn try_append(&mut self, item: &T) -> Result<u64> {
        match self {
            Writer::Plain(journal) => journal.try_append(item),
            Writer::Bounded(journal, _) => journal.try_append(item),
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
            Writer::Plain(journal) => journal.len() as u64,
            Writer::Bounded(journal, _) => journal.len(),
        }
    }
}

/// The reading end of a pipeline journal.
pub(crate) enum Reader<T: Record> {
    Plain(JournalReader<T>),
    Bounded(BoundedReader<T>),
}

impl<T: Record> Reader<T> {
    /// The next record, if one is published.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<&T> {
        match self {
            Reader::Plain(reader) => reader.next(),
            Reader::Bounded(reader) => reader.next(),
        }
    }

    /// Records read so far.
    pub(crate) fn position(&self) -> u64 {
        match self {
            Reader::Plain(reader) => reader.get_index(),
            Reader::Bounded(reader) => reader.reader.get_index(),
        }
    }

    /// Whether this reader is all that holds its writer back: a bounded journal whose
    /// ring is full up to this reader's segment, so its writer cannot move on until this
    /// reader reads. Always false for plain journals.
    pub(crate) fn holds_writer(&self) -> bool {
        match self {
            Reader::Plain(_) => false,
            Reader::Bounded(reader) => reader.holds_writer(),
        }
    }
}

/// A gating reader of a bounded pipeline journal, with the ring's shape and the signal
/// that wakes the journal's writer when this reader leaves a segment.
pub(crate) struct BoundedReader<T: Record> {
    reader: SegmentedReader<T>,
    segment_records: u64,
    window: u64,
    /// First sequence of the segment after the one the reader's gate protects.
    next_segment: u64,
    room: Arc<RoomSignal>,
}

impl<T: Record> BoundedReader<T> {
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

impl<T: Record> StageInput<T> for JournalReader<T> {
    #[inline]
    fn next_batch(&mut self, max: usize) -> &[T] {
        JournalReader::next_batch(self, max)
    }
}

impl<T: Record> StageInput<T> for BoundedReader<T> {
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
        RoomWait(self)
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
pub(crate) struct RoomWait<'a>(&'a RoomSignal);

impl Drop for RoomWait<'_> {
    fn drop(&mut self) {
        self.0.end_wait();
    }
}

/// What a stage's output collector needs to know about its stage.
pub(crate) struct StageContext {
    pub(crate) name: String,
    pub(crate) wait: WaitStrategy,
    pub(crate) workers: Arc<WorkerShared>,
    /// The room signal of the stage's output journal (bounded layout).
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

/// Collects into a plain journal; a full journal is the documented panic.
pub(crate) struct PlainBatch<'a, T: Record> {
    batch: AppendBatch<'a, T>,
    stage: &'a StageContext,
}

impl<T: Record> StageOutput<T> for JournalStore<T> {
    type Batch<'a> = PlainBatch<'a, T>;
    #[inline]
    fn batch<'a>(&'a mut self, stage: &'a StageContext) -> PlainBatch<'a, T> {
        PlainBatch {
            batch: JournalStore::batch(self),
            stage,
        }
    }
}

impl<T: Record> Collector<T> for PlainBatch<'_, T> {
    #[inline]
    fn push(&mut self, item: &T) {
        if ok_fast(self.batch.try_push(item)).is_none() {
            output_full(&self.stage.name, self.batch.capacity());
        }
    }
}

impl<T: Record> CountingCollector<T> for PlainBatch<'_, T> {
    fn pushed(&self) -> u64 {
        self.batch.len() as u64
    }
}

#[cold]
#[inline(never)]
fn output_full(stage: &str, capacity: usize) -> ! {
    panic!(
        "{stage}: output journal is full ({capacity} records); journals never wrap, so give \
         the pipeline a larger capacity (with_capacity or add_stage_with_capacity), or use \
         StageEngine::bounded for an unbounded stream in fixed memory"
    )
}

/// Collects into a bounded journal, waiting (with the engine's wait strategy) while the
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

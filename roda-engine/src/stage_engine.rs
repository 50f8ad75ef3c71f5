//! [`StageEngine`]: a typed pipeline, one thread per stage, journals between stages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roda_core::{Record, Result, RodaError};
use roda_pipe::Stage;

use crate::affinity::Pinning;
use crate::counters::{panicked_stage, Counters, SampledStage};
use crate::engine::RodaEngine;
use crate::metrics::{StageCounters, StageMetrics};
use crate::stage_journal::{
    same_reader, CountingCollector, Layout, Published, Reader, RoomSignal, StageContext,
    StageInput, StageOutput, Writer,
};
use crate::wait::{Backoff, Progress, WaitStrategy};
use crate::worker::{WorkerCounters, WorkerShared};

/// Most inputs a stage takes in one step; their outputs are published together.
const BATCH: usize = 1024;

/// A pipeline: `send` puts `In` records into the input journal, each stage runs on its
/// own thread reading one journal and appending to the next, and `receive` takes `Out`
/// records from the last journal.
///
/// Two journal layouts:
///
/// * **Recycled, elastic output** ([`with_capacity`](Self::with_capacity), the
///   default): every journal before the last is a ring in memory, recycled in place,
///   pre-faulted and small enough to stay in cache (sized from its record size, about
///   4 MiB); a stage whose output ring is full waits for the next stage (back-pressure),
///   and [`send`](Self::send) waits for room in the input ring. The last journal, the
///   one [`receive`](Self::receive) reads, is elastic: it grows by segments while the
///   receiver lags, reuses the segments already received, gives memory back once the
///   receiver has caught up for a while, and never makes the last stage wait. So a
///   program that sends everything and then receives everything works, and `send`
///   cannot deadlock. `with_capacity(n)` bounds what the receiver may leave behind:
///   at most `n` outputs not received, exactly; one more makes the last stage panic
///   with a message naming the stage and the capacity ("receive more often or raise
///   the capacity"), a panic that surfaces in `send`, `receive`, `await_idle` and
///   `shutdown`. `n` is not a lifetime budget: a pipeline runs any number of records.
/// * **Bounded** ([`bounded`](Self::bounded)): every journal, the last one too, is a
///   ring of the given shape, so the pipeline runs in strictly fixed memory, and
///   outputs must be received as the pipeline runs:
///   [`send_receiving`](Self::send_receiving) hands them to a closure while it waits
///   for room (or receive between [`try_send`](Self::try_send)s).
///
/// A pipeline with no stages has one journal, which is both its input and its last:
/// elastic with `with_capacity` (`send` never waits and panics past `n` records not
/// received), a ring with `bounded`.
///
/// The journals live in anonymous memory of this process: they are gone when it exits
/// and cannot be followed from another process or replayed. To keep or share a stream,
/// append it to a `JournalStore` or `SegmentedJournal` file (a stage may do so).
///
/// ```
/// use roda_engine::StageEngine;
/// use roda_pipe::map;
///
/// // At most 100,000 outputs waiting to be received; any number of records in all.
/// let mut engine = StageEngine::<u64, u64>::with_capacity(100_000).add_stage(map(|x: &u64| x * 2));
/// for i in 0..100_000u64 {
///     engine.send(&i); // waits when the input ring is full; never deadlocks
/// }
/// let mut sum = 0;
/// for _ in 0..100_000 {
///     sum += engine.receive();
/// }
/// assert_eq!(sum, (0..100_000u64).map(|x| x * 2).sum());
/// engine.shutdown().unwrap();
/// ```
///
/// Bounded:
///
/// ```
/// use roda_engine::StageEngine;
/// use roda_pipe::map;
///
/// // Rings of 4 segments × 256 records: 10,000 records through 1,024-record journals.
/// let mut engine = StageEngine::<u64, u64>::bounded(256, 4).add_stage(map(|x: &u64| x * 2));
/// let mut sum = 0;
/// for i in 0..10_000u64 {
///     engine.send_receiving(&i, |x: &u64| sum += x);
/// }
/// // Exact end: once every stage consumed everything, one last drain takes the rest.
/// loop {
///     let idle = engine.is_idle();
///     while let Some(x) = engine.try_receive() {
///         sum += x;
///     }
///     if idle {
///         break;
///     }
/// }
/// assert_eq!(sum, (0..10_000u64).map(|x| x * 2).sum());
/// engine.shutdown().unwrap();
/// ```
pub struct StageEngine<In: Record, Out: Record> {
    engine: RodaEngine,
    /// The engine's worker state (kept, so `send` checks for a stage panic with one load).
    workers: Arc<WorkerShared>,
    input: Writer<In>,
    /// The signal of the input journal's writer (this owner) waiting for room.
    input_room: Arc<RoomSignal>,
    output: Reader<Out>,
    /// Reports the published count of the journal `output` reads (`None` while the
    /// last stage has not started).
    output_probe: Option<Box<dyn Published>>,
    /// The last stage, not started yet: it starts once its output journal is known (a
    /// ring when a stage is added after it, the last journal when the pipeline is first
    /// used).
    pending: Option<PendingStage<Out>>,
    stages: Vec<StageProbe>,
    layout: Layout,
    /// The counters file's settings and sampler (last: dropped after the stages stop).
    counters: Counters,
}

/// What the owner needs to observe one stage.
struct StageProbe {
    name: String,
    counters: Arc<StageCounters>,
    /// The room signal of the stage's input journal: how long its writer waited.
    input_room: Arc<RoomSignal>,
    /// The room signal of the stage's output journal: up while the stage waits for room.
    room: Arc<RoomSignal>,
    input: Box<dyn Published>,
    /// `None` until the stage starts.
    output: Option<Box<dyn Published>>,
    /// The output capacity the stage was added with, if any.
    capacity: Option<usize>,
}

/// Starts a stage's worker, given its output journal's writer and room signal.
/// Returns the counters of the stage's worker thread.
type StartStage<Out> = Box<
    dyn FnOnce(&mut RodaEngine, Writer<Out>, Arc<RoomSignal>) -> Result<Arc<WorkerCounters>> + Send,
>;

/// A stage added last and not started yet.
struct PendingStage<Out: Record> {
    start: StartStage<Out>,
    /// Its index in `stages`.
    index: usize,
}

impl<In: Record> StageEngine<In, In> {
    /// A pipeline with no stages yet that holds at most `capacity` outputs not
    /// received: rings between stages, an elastic last journal (see the type's docs).
    /// `capacity` is not a lifetime budget: the pipeline runs any number of records as
    /// long as the receiver keeps within it.
    ///
    /// # Panics
    /// If the capacity is 0 or the input journal cannot be created;
    /// [`try_with_capacity`](Self::try_with_capacity) returns the error instead.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::try_with_capacity(capacity)
            .unwrap_or_else(|e| panic!("StageEngine::with_capacity({capacity}): {e}"))
    }

    /// Like [`with_capacity`](Self::with_capacity), returning an error instead of panicking.
    pub fn try_with_capacity(capacity: usize) -> Result<Self> {
        Self::with_layout(Layout::Elastic {
            limit: capacity,
            ring: None,
        })
    }

    /// [`with_capacity`](Self::with_capacity) with rings of `ring_records` records (4
    /// segments, rounded up) between stages instead of rings sized from each record
    /// type: for tuning, and for tests that want rings to wrap often. The elastic last
    /// journal then grows by segments of a ring's segment size.
    ///
    /// # Panics
    /// If either count is 0 or a journal cannot be created.
    pub fn with_capacity_and_rings(capacity: usize, ring_records: usize) -> Self {
        if ring_records == 0 {
            panic!("StageEngine::with_capacity_and_rings: rings need at least 1 record");
        }
        Self::with_layout(Layout::Elastic {
            limit: capacity,
            ring: Some(ring_records),
        })
        .unwrap_or_else(|e| {
            panic!("StageEngine::with_capacity_and_rings({capacity}, {ring_records}): {e}")
        })
    }

    /// A pipeline with no stages yet whose journals are bounded rings of `segments`
    /// segments of `segment_records` records, recycled in place, the last one too: it
    /// processes an unlimited number of records in strictly fixed memory, and a stage
    /// that gets ahead of the next one waits (back-pressure) instead of failing. See the
    /// type's docs.
    ///
    /// # Panics
    /// If the input journal cannot be created (fewer than 2 segments, 0 records per
    /// segment, or too large for memory); [`try_bounded`](Self::try_bounded) returns the
    /// error instead.
    pub fn bounded(segment_records: usize, segments: usize) -> Self {
        Self::try_bounded(segment_records, segments)
            .unwrap_or_else(|e| panic!("StageEngine::bounded({segment_records}, {segments}): {e}"))
    }

    /// Like [`bounded`](Self::bounded), returning an error instead of panicking.
    pub fn try_bounded(segment_records: usize, segments: usize) -> Result<Self> {
        Self::with_layout(Layout::Bounded {
            segment_records,
            segments,
        })
    }

    fn with_layout(layout: Layout) -> Result<Self> {
        // Without stages the input is the last journal.
        let journal = layout.last::<In>(None)?;
        let engine = RodaEngine::new();
        Ok(StageEngine {
            workers: engine.workers_shared(),
            engine,
            input: journal.writer,
            input_room: journal.room,
            output: journal.reader,
            output_probe: Some(journal.probe),
            pending: None,
            stages: Vec::new(),
            layout,
            counters: Counters::default(),
        })
    }
}

impl<In: Record, Out: Record> StageEngine<In, Out> {
    /// Sets the wait strategy of stages added from now on (default: adaptive). Stages
    /// also wait with it for room in a full output ring, and `send` for room in the
    /// input ring.
    pub fn with_wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.engine.set_wait_strategy(wait);
        self
    }

    /// Sets the core pinning of stages added from now on (default: none).
    pub fn with_pinning(mut self, pinning: Pinning) -> Self {
        self.engine.set_pinning(&pinning);
        self
    }

    /// Names the pipeline in its counters file (default "pipeline").
    pub fn name(mut self, name: &str) -> Self {
        self.counters.set_name(name);
        self
    }

    /// Names the stage added last (stages are "stage 1", "stage 2", ... by default), as
    /// [`metrics`](Self::metrics) and the counters file show it. Before the first stage
    /// it names nothing.
    pub fn stage_name(mut self, name: &str) -> Self {
        if let Some(stage) = self.stages.last_mut() {
            stage.name = name.to_owned();
            // A stage not started yet takes its name into the counters file when it
            // starts.
            if self.pending.is_none() {
                self.counters.rename_last(name);
            }
        }
        self
    }

    /// Publishes this pipeline's counters in the counters file at `path`, created (or
    /// taken over from a previous run) now: a sampler thread copies every stage's
    /// counters into it at 10 Hz ([`metrics_interval`](Self::metrics_interval) changes
    /// that) and once more at shutdown. Stage threads never touch the file. Read it with
    /// `roda top FILE`, `roda metrics FILE` or [`CountersFile`](crate::CountersFile).
    /// It holds up to [`MAX_STAGES`](crate::counters_file::MAX_STAGES) stages.
    ///
    /// # Panics
    /// If the file cannot be created or is written by another live pipeline;
    /// [`try_metrics_file`](Self::try_metrics_file) returns the error instead.
    pub fn metrics_file(self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        self.try_metrics_file(path)
            .unwrap_or_else(|e| panic!("StageEngine::metrics_file({}): {e}", path.display()))
    }

    /// [`metrics_file`](Self::metrics_file), returning an error instead of panicking.
    pub fn try_metrics_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let workers = self.engine.workers_shared();
        self.counters.start(path.as_ref(), workers)?;
        Ok(self)
    }

    /// Time between two samples of the counters file (default 100 ms: 10 Hz; at least
    /// 1 ms).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.counters.set_interval(interval);
        self
    }

    /// Appends a stage reading this pipeline's output; its output journal takes the
    /// pipeline's default: a ring sized from the record type, or the elastic last
    /// journal holding at most the pipeline's capacity (bounded: the ring shape).
    ///
    /// Add every stage before the first `send` or `receive`: a stage added later reads
    /// the elastic journal its predecessor was already writing.
    ///
    /// # Panics
    /// If the stage's journal or thread cannot be created; see
    /// [`try_add_stage_with_capacity`](Self::try_add_stage_with_capacity).
    pub fn add_stage<Next, S>(self, stage: S) -> StageEngine<In, Next>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        self.add_stage_in(stage, None)
            .unwrap_or_else(|e| panic!("StageEngine::add_stage: {e}"))
    }

    /// [`add_stage`](Self::add_stage) with an output journal of `capacity` records: a
    /// ring of `capacity` records when another stage follows this one, and at most
    /// `capacity` outputs not received when this stage is the last. In a bounded
    /// pipeline the ring keeps its segment count and its segments grow or shrink so that
    /// it holds at least `capacity` records.
    pub fn add_stage_with_capacity<Next, S>(
        self,
        stage: S,
        capacity: usize,
    ) -> StageEngine<In, Next>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        self.try_add_stage_with_capacity(stage, capacity)
            .unwrap_or_else(|e| panic!("StageEngine::add_stage: {e}"))
    }

    /// [`add_stage_with_capacity`](Self::add_stage_with_capacity), returning an error
    /// instead of panicking (a capacity of 0 is `Err(InvalidCapacity)`).
    pub fn try_add_stage_with_capacity<Next, S>(
        self,
        stage: S,
        capacity: usize,
    ) -> Result<StageEngine<In, Next>>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        if capacity == 0 {
            return Err(RodaError::InvalidCapacity {
                capacity: 0,
                reason: "a stage's output journal needs room for at least one record",
            });
        }
        self.add_stage_in(stage, Some(capacity))
    }

    fn add_stage_in<Next, S>(
        mut self,
        stage: S,
        capacity: Option<usize>,
    ) -> Result<StageEngine<In, Next>>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        // The journal the new stage reads.
        let (input, input_probe, input_room) = match self.pending.take() {
            // The previous last stage gets a ring as its output, and starts.
            Some(pending) => {
                let planned = self.stages[pending.index].capacity;
                let journal = self.layout.ring::<Out>(planned)?;
                self.start(
                    pending,
                    journal.writer,
                    journal.room.clone(),
                    &*journal.probe,
                )?;
                (journal.reader, journal.probe, journal.room)
            }
            // A stageless pipeline not used yet: its input becomes a ring.
            None if self.stages.is_empty()
                && self.input.len() == 0
                && matches!(self.input, Writer::Elastic(_)) =>
            {
                let journal = self.layout.ring::<In>(None)?;
                self.input = journal.writer;
                self.input_room = journal.room.clone();
                (same_reader(journal.reader), journal.probe, journal.room)
            }
            // The pipeline is in use (or bounded): the stage reads the current output.
            None => {
                let probe = self
                    .output_probe
                    .take()
                    .expect("a started pipeline's output journal has a probe");
                let room = match self.stages.last() {
                    Some(last) => last.room.clone(),
                    None => self.input_room.clone(),
                };
                (
                    std::mem::replace(&mut self.output, Reader::Pending),
                    probe,
                    room,
                )
            }
        };
        let index = self.stages.len();
        let name = format!("stage {}", index + 1);
        let counters = Arc::new(StageCounters::default());
        let wait = self.engine.wait_strategy();
        let workers = self.engine.workers_shared();
        let (stage_name, step) = (name.clone(), counters.clone());
        let start: StartStage<Next> = Box::new(move |engine, output, room| {
            let context = StageContext {
                name: stage_name.clone(),
                wait,
                workers,
                room,
            };
            let thread = format!("roda {stage_name}");
            let worker = match (input, output) {
                (Reader::Ring(r), Writer::Ring(w)) => {
                    engine.run_worker(thread, stage_step(r, w, stage, context, step))?
                }
                (Reader::Ring(r), Writer::Elastic(w)) => {
                    engine.run_worker(thread, stage_step(r, w, stage, context, step))?
                }
                (Reader::Elastic(r), Writer::Ring(w)) => {
                    engine.run_worker(thread, stage_step(r, w, stage, context, step))?
                }
                (Reader::Elastic(r), Writer::Elastic(w)) => {
                    engine.run_worker(thread, stage_step(r, w, stage, context, step))?
                }
                (Reader::Pending, _) => unreachable!("a stage's input journal exists"),
            };
            Ok(worker.counters())
        });
        self.stages.push(StageProbe {
            name,
            counters,
            input_room,
            room: Arc::new(RoomSignal::default()),
            input: input_probe,
            output: None,
            capacity,
        });
        Ok(StageEngine {
            engine: std::mem::take(&mut self.engine),
            workers: self.workers,
            input: self.input,
            input_room: self.input_room,
            output: Reader::Pending,
            output_probe: None,
            pending: Some(PendingStage { start, index }),
            stages: std::mem::take(&mut self.stages),
            layout: self.layout,
            counters: std::mem::take(&mut self.counters),
        })
    }

    /// Starts `pending` writing to `output`.
    fn start(
        &mut self,
        pending: PendingStage<Out>,
        output: Writer<Out>,
        room: Arc<RoomSignal>,
        probe: &dyn Published,
    ) -> Result<()> {
        let worker = (pending.start)(&mut self.engine, output, room.clone())?;
        let stage = &mut self.stages[pending.index];
        stage.room = room.clone();
        stage.output = Some(probe.clone_box());
        // The counters file learns of a stage when it starts (stages start in order).
        self.counters.add_stage(SampledStage {
            name: stage.name.clone(),
            counters: stage.counters.clone(),
            room,
            input: stage.input.clone_box(),
            output: probe.clone_box(),
            worker,
        });
        Ok(())
    }

    /// Starts the last stage on the last journal, if it has not started yet (the first
    /// use of the pipeline).
    #[inline]
    fn ensure_started(&mut self) {
        if self.pending.is_some() {
            self.start_last();
        }
    }

    #[cold]
    #[inline(never)]
    fn start_last(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let name = self.stages[pending.index].name.clone();
        let planned = self.stages[pending.index].capacity;
        let started = self.layout.last::<Out>(planned).and_then(|journal| {
            self.start(pending, journal.writer, journal.room, &*journal.probe)?;
            self.output = journal.reader;
            self.output_probe = Some(journal.probe);
            Ok(())
        });
        if let Err(e) = started {
            panic!("StageEngine: cannot start {name}: {e}");
        }
    }

    /// Sends `item` into the pipeline and returns its sequence. When the input ring is
    /// full it waits (with the pipeline's wait strategy) for stage 1 to make room. That
    /// wait cannot deadlock in a `with_capacity` pipeline, whose last journal never
    /// makes its writer wait.
    ///
    /// # Panics
    /// * Once a stage has panicked (with that stage's name and message), since its
    ///   input would never be consumed; among others when the last stage had more than
    ///   the capacity's outputs not received.
    /// * A pipeline without stages (`with_capacity`): when `capacity` records are sent
    ///   and not received; see [`try_send`](Self::try_send).
    /// * Bounded pipelines: when the pipeline is stalled on its own output: every stage
    ///   is waiting for room, the output ring is full, and only this thread can receive
    ///   from it, which it cannot do while it waits here. Use
    ///   [`send_receiving`](Self::send_receiving), or receive outputs between sends
    ///   (`try_send` returns `Err(WouldBlock)` when the input is full), to avoid that.
    #[inline]
    pub fn send(&mut self, item: &In) -> u64 {
        if self.pending.is_some() || self.workers.has_panicked() {
            self.before_send("StageEngine::send");
        }
        match self.input.append_fast(item) {
            Some(seq) => seq,
            None => self.send_slow(item),
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn send_slow(&mut self, item: &In) -> u64 {
        let capacity = self.layout.capacity();
        let room = self.input_room();
        let _waiting = room.wait();
        let mut backoff = Backoff::new(self.engine.wait_strategy());
        let mut stall = StallWatch::default();
        loop {
            if let Some(seq) = self.input.append_fast(item) {
                return seq;
            }
            if let Some(err) = self.engine.first_panic() {
                panic!("StageEngine::send: {err}");
            }
            if stall.stalled(self) {
                panic!(
                    "StageEngine::send: the bounded pipeline is stalled on its own output: \
                     every stage waits for room, the output ring ({capacity} records) is \
                     full, and only this thread can receive from it; send with \
                     send_receiving (it hands outputs to a closure while it waits), or \
                     receive between sends (try_send returns Err(WouldBlock) when the \
                     input is full, then try_receive)"
                );
            }
            backoff.idle();
        }
    }

    /// Sends `item` like [`send`](Self::send), handing every output that is ready to
    /// `on_output` while it waits for room: the way one thread both feeds and drains a
    /// bounded pipeline, which then never stalls on its own output. It waits with the
    /// pipeline's wait strategy when neither room nor outputs come, so a full pipeline
    /// costs the sender no busy core. (Outputs are passed only while waiting; receive
    /// the rest with [`try_receive`](Self::try_receive).)
    ///
    /// ```
    /// use roda_engine::StageEngine;
    /// use roda_pipe::map;
    ///
    /// let mut engine = StageEngine::<u64, u64>::bounded(64, 2).add_stage(map(|x: &u64| x + 1));
    /// let mut outputs = Vec::new();
    /// for i in 0..10_000u64 {
    ///     engine.send_receiving(&i, |x: &u64| outputs.push(*x));
    /// }
    /// while outputs.len() < 10_000 {
    ///     outputs.push(engine.receive());
    /// }
    /// assert_eq!(outputs, (1..=10_000).collect::<Vec<_>>());
    /// ```
    ///
    /// # Panics
    /// As [`send`](Self::send) does for a stageless pipeline whose capacity is spent,
    /// and when a stage has panicked.
    #[inline]
    pub fn send_receiving<F: FnMut(&Out)>(&mut self, item: &In, on_output: F) -> u64 {
        if self.pending.is_some() || self.workers.has_panicked() {
            self.before_send("StageEngine::send_receiving");
        }
        match self.input.append_fast(item) {
            Some(seq) => seq,
            None => self.send_receiving_slow(item, on_output),
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn send_receiving_slow<F: FnMut(&Out)>(&mut self, item: &In, mut on_output: F) -> u64 {
        let room = self.input_room();
        let _waiting = room.wait();
        let mut backoff = Backoff::new(self.engine.wait_strategy());
        loop {
            let mut received = false;
            while let Some(out) = self.output.next() {
                on_output(out);
                received = true;
            }
            if let Some(seq) = self.input.append_fast(item) {
                return seq;
            }
            if let Some(err) = self.engine.first_panic() {
                panic!("StageEngine::send_receiving: {err}");
            }
            if received {
                backoff.reset();
            } else {
                backoff.idle();
            }
        }
    }

    /// The room signal of an input ring; a stageless pipeline's full elastic input is
    /// the documented panic.
    #[track_caller]
    fn input_room(&self) -> Arc<RoomSignal> {
        match &self.input {
            Writer::Ring(..) => self.input_room.clone(),
            Writer::Elastic(journal) => input_full(journal.limit()),
        }
    }

    /// Sends `item`, or returns an error without waiting: `Err(WouldBlock)` when the
    /// input ring is full (receive outputs, or retry later), `Err(Full)` when a
    /// pipeline without stages holds its capacity of records not received, and the
    /// first stage panic (`Err(WorkerPanicked)`) once a stage has panicked.
    #[inline]
    pub fn try_send(&mut self, item: &In) -> Result<u64> {
        self.ensure_started();
        if self.workers.has_panicked() {
            if let Some(err) = self.engine.first_panic() {
                return Err(err);
            }
        }
        self.input.try_append(item)
    }

    /// What a send checks off its hot path: the last stage starts on first use, and a
    /// stage panic fails the send (its input would never be consumed).
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn before_send(&mut self, what: &str) {
        self.ensure_started();
        if let Some(err) = self.engine.first_panic() {
            panic!("{what}: {err}");
        }
    }

    /// The next output, if one is ready.
    #[inline]
    pub fn try_receive(&mut self) -> Option<Out> {
        self.ensure_started();
        self.output.next().copied()
    }

    /// The next output, waiting for it with the pipeline's wait strategy.
    ///
    /// # Panics
    /// When a stage has panicked (with that stage's name and message), since the output
    /// would never come.
    pub fn receive(&mut self) -> Out {
        self.ensure_started();
        let mut backoff = Backoff::new(self.engine.wait_strategy());
        loop {
            if let Some(item) = self.output.next() {
                return *item;
            }
            if let Some(err) = self.engine.first_panic() {
                panic!("StageEngine::receive: {err}");
            }
            backoff.idle();
        }
    }

    /// Waits until every stage has consumed everything sent so far, checking stages
    /// first to last, and returns true; false when `timeout` passes first or a stage
    /// has panicked. Exact: it compares each stage's consumed count with its input
    /// journal's published count, never a "nothing moved for a while" guess.
    ///
    /// In a bounded pipeline, outputs nobody receives hold the last stage back once its
    /// ring is full; then the pipeline cannot become idle until they are received, and
    /// this returns false at `timeout`. A `with_capacity` pipeline becomes idle without
    /// receiving (up to its capacity of outputs not received).
    pub fn await_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut backoff =
            Backoff::new(WaitStrategy::adaptive().with_park_max(Duration::from_micros(200)));
        // What stage 1 must consume: everything sent.
        let mut expected = self.input.len();
        for stage in &self.stages {
            while stage.counters.consumed() < expected {
                if self.engine.first_panic().is_some() || Instant::now() >= deadline {
                    return false;
                }
                backoff.idle();
            }
            backoff.reset();
            // The stage consumed all its input, so its output journal is complete (a
            // stage not started yet was sent nothing and published nothing).
            expected = stage.output.as_ref().map_or(0, |o| o.published());
        }
        self.engine.first_panic().is_none()
    }

    /// Whether every stage has consumed everything sent so far, right now: the exact
    /// check of [`await_idle`](Self::await_idle) without waiting.
    pub fn is_idle(&self) -> bool {
        self.await_idle(Duration::ZERO)
    }

    /// A snapshot of every stage's counters, first to last.
    ///
    /// * `input_lag`: records in the stage's input journal that the stage has not
    ///   consumed yet.
    /// * `output_len`: records in the stage's output journal not yet consumed by the
    ///   next stage, or (last stage) not yet received: the backlog.
    /// * `output_capacity`: the output ring's records, or for the last journal of a
    ///   `with_capacity` pipeline the most outputs it holds not received (`n`); so
    ///   `output_fill()` is how close the stage is to waiting (ring) or to the
    ///   full-journal panic (last journal).
    /// * `output_high_water`: the largest backlog the last journal of a `with_capacity`
    ///   pipeline has held (0 for rings, whose backlog never exceeds their capacity).
    /// * `input_wait`: the time the writer of the stage's input journal (the sender for
    ///   stage 1, else the previous stage) has spent waiting for room in it.
    pub fn metrics(&self) -> Vec<StageMetrics> {
        let last = self.stages.len().saturating_sub(1);
        let panicked = panicked_stage(&self.engine.workers_shared());
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let processed = s.counters.consumed();
                let published = s.output.as_ref().map_or(0, |o| o.published());
                let output_len = if i == last {
                    published.saturating_sub(self.output.position())
                } else {
                    published.saturating_sub(self.stages[i + 1].counters.consumed())
                };
                let output_capacity = match &s.output {
                    Some(output) => output.capacity(),
                    None => s.capacity.unwrap_or(self.layout.capacity()),
                };
                StageMetrics {
                    name: s.name.clone(),
                    processed,
                    emitted: s.counters.emitted(),
                    input_lag: s.input.published().saturating_sub(processed),
                    output_len,
                    output_capacity,
                    waiting_for_room: s.room.is_waiting(),
                    panicked: panicked == Some(i),
                    output_high_water: s.output.as_ref().map_or(0, |o| o.high_water()),
                    input_wait: s.input_room.waited(),
                }
            })
            .collect()
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.input.len()
    }

    /// The time `send` (and `send_receiving`) have spent waiting for room in the input
    /// ring so far.
    pub fn send_wait(&self) -> Duration {
        self.input_room.waited()
    }

    /// The pipeline's capacity: with [`with_capacity`](Self::with_capacity), the most
    /// outputs it holds not received (`n`; a ring's size is in
    /// [`metrics`](Self::metrics)); bounded, a ring's records (segments × records per
    /// segment).
    pub fn capacity(&self) -> usize {
        self.layout.capacity()
    }

    /// Whether the pipeline's journals are all bounded, back-pressured rings.
    pub fn is_bounded(&self) -> bool {
        matches!(self.layout, Layout::Bounded { .. })
    }

    /// Stops and joins every stage; returns the first stage panic as
    /// `Err(WorkerPanicked)`. Outputs already published stay receivable. A stage
    /// waiting for room in its output ring when shutdown comes drops the outputs it was
    /// waiting to write.
    ///
    /// With a counters file, the final sample written then equals [`metrics`](Self::metrics).
    pub fn shutdown(&mut self) -> Result<()> {
        // A pipeline never used starts its last stage first, so that every stage it was
        // built with is there to stop and to report.
        self.ensure_started();
        let result = self.engine.shutdown();
        if self.counters.is_on() {
            let last = self.metrics();
            self.counters.finish(Some(last));
        }
        result
    }

    /// The first stage panic, if any stage has panicked.
    pub fn first_panic(&self) -> Option<RodaError> {
        self.engine.first_panic()
    }
}

/// How long a bounded pipeline must sit stalled on its own output, with no stage
/// consuming anything, before `send` calls it a deadlock.
const STALL_LIMIT: Duration = Duration::from_secs(1);

/// Detects the one deadlock a bounded pipeline can have: the caller waiting in `send`
/// while the pipeline waits for the caller to receive.
#[derive(Default)]
struct StallWatch {
    since: Option<(Instant, u64)>,
}

impl StallWatch {
    /// True once the pipeline has been stalled for [`STALL_LIMIT`]: the receiver holds
    /// the last journal's writer back, every stage waits for room, and no stage consumed
    /// a record meanwhile.
    fn stalled<In: Record, Out: Record>(&mut self, engine: &StageEngine<In, Out>) -> bool {
        let all_blocked = engine
            .stages
            .iter()
            // A diagnosis: the timing below makes a stale value harmless.
            .all(|s| s.room.is_waiting());
        if !(engine.output.holds_writer() && all_blocked) {
            self.since = None;
            return false;
        }
        let consumed: u64 = engine.stages.iter().map(|s| s.counters.consumed()).sum();
        match self.since {
            Some((since, before)) if before == consumed => since.elapsed() >= STALL_LIMIT,
            _ => {
                self.since = Some((Instant::now(), consumed));
                false
            }
        }
    }
}

/// The loop body of one stage's worker: read a batch, process it into one output batch
/// published with one Release store, then count the inputs consumed.
fn stage_step<I, O, R, W, S>(
    mut input: R,
    mut output: W,
    mut stage: S,
    context: StageContext,
    counters: Arc<StageCounters>,
) -> impl FnMut() -> Progress + Send
where
    I: Record,
    O: Record,
    R: StageInput<I>,
    W: StageOutput<O>,
    S: Stage<I, O> + Send + 'static,
{
    let (mut consumed, mut emitted) = (0u64, 0u64);
    move || {
        let batch = input.next_batch(BATCH);
        if batch.is_empty() {
            return Progress::Idle;
        }
        let mut out = output.batch(&context);
        for item in batch {
            stage.process(item, &mut out);
        }
        emitted += out.pushed();
        // Publishes every output of the batch with one Release store...
        drop(out);
        consumed += batch.len() as u64;
        // ...before the inputs count as consumed.
        counters.publish(consumed, emitted);
        Progress::Busy
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn input_full(capacity: usize) -> ! {
    panic!(
        "StageEngine::send: the pipeline has no stages and holds {capacity} records not \
         received (its capacity); receive more often or raise the capacity, or use \
         try_send"
    )
}

impl<In: Record, Out: Record> std::fmt::Debug for StageEngine<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageEngine")
            .field("layout", &self.layout)
            .field("stages", &self.stages.len())
            .field("sent", &self.input.len())
            .finish()
    }
}

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
    CountingCollector, Layout, PipelineJournal, Published, Reader, RoomSignal, StageContext,
    StageInput, StageOutput, Writer,
};
use crate::wait::{Backoff, Progress, WaitStrategy};

/// Most inputs a stage takes in one step; their outputs are published together.
const BATCH: usize = 1024;

/// A pipeline: `send` puts `In` records into the input journal, each stage runs on its
/// own thread reading one journal and appending to the next, and `receive` takes `Out`
/// records from the last journal.
///
/// Two journal layouts:
///
/// * **Plain** ([`with_capacity`](Self::with_capacity)): journals never wrap, so
///   `with_capacity(n)` sizes every journal at `n` records and a pipeline handles at most
///   `n` inputs (and each stage at most `n` outputs) in its lifetime. A stage whose output
///   journal fills up panics with a message naming the stage and the capacity; that panic
///   surfaces in `receive`, `await_idle` and `shutdown`. Nothing ever waits for room.
/// * **Bounded** ([`bounded`](Self::bounded)): every journal is a ring of segments
///   recycled in place (a `SegmentedJournal`), so the pipeline runs an unlimited number
///   of records in fixed, hot memory. Back-pressure instead of failure: a stage whose
///   output ring is full waits (with the pipeline's wait strategy) until the next stage
///   leaves a segment, and [`send`](Self::send) waits for stage 1. A reader that leaves a
///   segment wakes the writer waiting for it. The receiver is the last ring's reader, so
///   outputs must be received as the pipeline runs:
///   [`send_receiving`](Self::send_receiving) hands them to a closure while it waits
///   for room (or receive between [`try_send`](Self::try_send)s).
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
    input: Writer<In>,
    output: Reader<Out>,
    /// Reports the published count of the journal `output` reads.
    output_probe: Box<dyn Published>,
    stages: Vec<StageProbe>,
    layout: Layout,
    /// The counters file's settings and sampler (last: dropped after the stages stop).
    counters: Counters,
}

/// What the owner needs to observe one stage.
struct StageProbe {
    name: String,
    counters: Arc<StageCounters>,
    /// The room signal of the stage's output journal: up while the stage waits for room.
    room: Arc<RoomSignal>,
    input: Box<dyn Published>,
    output: Box<dyn Published>,
}

impl<In: Record> StageEngine<In, In> {
    /// A pipeline with no stages yet whose journals hold `capacity` records each.
    ///
    /// # Panics
    /// If the input journal cannot be created (capacity 0, or too large for memory);
    /// [`try_with_capacity`](Self::try_with_capacity) returns the error instead.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::try_with_capacity(capacity)
            .unwrap_or_else(|e| panic!("StageEngine::with_capacity({capacity}): {e}"))
    }

    /// Like [`with_capacity`](Self::with_capacity), returning an error instead of panicking.
    pub fn try_with_capacity(capacity: usize) -> Result<Self> {
        Self::with_layout(Layout::Plain { capacity })
    }

    /// A pipeline with no stages yet whose journals are bounded rings of `segments`
    /// segments of `segment_records` records, recycled in place: it processes an
    /// unlimited number of records in fixed memory, and a stage that gets ahead of the
    /// next one waits (back-pressure) instead of failing. See the type's docs.
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
        let journal = layout.journal::<In>()?;
        Ok(StageEngine {
            engine: RodaEngine::new(),
            input: journal.writer,
            output: journal.reader,
            output_probe: journal.probe,
            stages: Vec::new(),
            layout,
            counters: Counters::default(),
        })
    }
}

impl<In: Record, Out: Record> StageEngine<In, Out> {
    /// Sets the wait strategy of stages added from now on (default: adaptive). Bounded
    /// pipelines also wait with it for room in a full output journal.
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
            self.counters.rename_last(name);
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
        let bounded = self.is_bounded();
        let workers = self.engine.workers_shared();
        self.counters.start(path.as_ref(), bounded, workers)?;
        Ok(self)
    }

    /// Time between two samples of the counters file (default 100 ms: 10 Hz; at least
    /// 1 ms).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.counters.set_interval(interval);
        self
    }

    /// Appends a stage reading this pipeline's output; its output journal has the
    /// pipeline's capacity (plain) or ring shape (bounded).
    ///
    /// # Panics
    /// If the stage's journal or thread cannot be created; see
    /// [`try_add_stage_with_capacity`](Self::try_add_stage_with_capacity).
    pub fn add_stage<Next, S>(self, stage: S) -> StageEngine<In, Next>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        let layout = self.layout;
        self.add_stage_in(stage, layout)
            .unwrap_or_else(|e| panic!("StageEngine::add_stage: {e}"))
    }

    /// [`add_stage`](Self::add_stage) with an output journal of `capacity` records. In a
    /// bounded pipeline the ring keeps its segment count and its segments grow or shrink
    /// so that the ring holds at least `capacity` records.
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
    /// instead of panicking.
    pub fn try_add_stage_with_capacity<Next, S>(
        self,
        stage: S,
        capacity: usize,
    ) -> Result<StageEngine<In, Next>>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        let layout = self.layout.with_capacity(capacity);
        self.add_stage_in(stage, layout)
    }

    fn add_stage_in<Next, S>(mut self, stage: S, layout: Layout) -> Result<StageEngine<In, Next>>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        let name = format!("stage {}", self.stages.len() + 1);
        let PipelineJournal {
            writer: output,
            reader: next_output,
            probe: output_probe,
        } = layout.journal::<Next>()?;
        let counters = Arc::new(StageCounters::default());
        let room = match &output {
            Writer::Plain(_) => Arc::new(RoomSignal::default()),
            Writer::Bounded(_, room) => room.clone(),
        };
        let context = StageContext {
            name: name.clone(),
            wait: self.engine.wait_strategy(),
            workers: self.engine.workers_shared(),
            room: room.clone(),
        };
        let thread = format!("roda {name}");
        let step = counters.clone();
        let worker = match (self.output, output) {
            (Reader::Plain(input), Writer::Plain(output)) => self
                .engine
                .run_worker(thread, stage_step(input, output, stage, context, step))?,
            (Reader::Bounded(input), Writer::Bounded(output, _)) => self
                .engine
                .run_worker(thread, stage_step(input, output, stage, context, step))?,
            _ => unreachable!("one pipeline uses one journal layout throughout"),
        };
        let worker = worker.counters();
        let next_probe = output_probe.clone_box();
        self.counters.add_stage(SampledStage {
            name: name.clone(),
            counters: counters.clone(),
            room: room.clone(),
            input: self.output_probe.clone_box(),
            output: output_probe.clone_box(),
            worker,
        });
        self.stages.push(StageProbe {
            name,
            counters,
            room,
            input: self.output_probe,
            output: output_probe,
        });
        Ok(StageEngine {
            engine: std::mem::take(&mut self.engine),
            input: self.input,
            output: next_output,
            output_probe: next_probe,
            stages: std::mem::take(&mut self.stages),
            layout: self.layout,
            counters: std::mem::take(&mut self.counters),
        })
    }

    /// Sends `item` into the pipeline and returns its sequence. A bounded pipeline whose
    /// input ring is full waits (with the pipeline's wait strategy) for stage 1 to make
    /// room.
    ///
    /// # Panics
    /// * Plain pipelines: when the input journal is full (the pipeline's capacity is
    ///   spent); see [`try_send`](Self::try_send).
    /// * Bounded pipelines: when a stage has panicked (the wait would never end), or when
    ///   the pipeline is stalled on its own output: every stage is waiting for room, the
    ///   output ring is full, and only this thread can receive from it, which it cannot
    ///   do while it waits here. Use [`send_receiving`](Self::send_receiving), or
    ///   receive outputs between sends (`try_send` returns `Err(WouldBlock)` when the
    ///   input is full), to avoid that.
    #[inline]
    pub fn send(&mut self, item: &In) -> u64 {
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
    /// As [`send`](Self::send) does for a plain pipeline whose input is full, and when a
    /// stage has panicked.
    #[inline]
    pub fn send_receiving<F: FnMut(&Out)>(&mut self, item: &In, on_output: F) -> u64 {
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

    /// The room signal of a bounded input journal; a full plain journal is the
    /// documented panic.
    #[track_caller]
    fn input_room(&self) -> Arc<RoomSignal> {
        match &self.input {
            Writer::Bounded(_, room) => room.clone(),
            Writer::Plain(_) => input_full(self.layout.capacity()),
        }
    }

    /// Sends `item`, or returns an error without waiting: `Err(Full)` when a plain
    /// pipeline's input journal is full, `Err(WouldBlock)` when a bounded pipeline's
    /// input ring is (receive outputs, or retry later).
    #[inline]
    pub fn try_send(&mut self, item: &In) -> Result<u64> {
        self.input.try_append(item)
    }

    /// The next output, if one is ready.
    #[inline]
    pub fn try_receive(&mut self) -> Option<Out> {
        self.output.next().copied()
    }

    /// The next output, waiting for it with the pipeline's wait strategy.
    ///
    /// # Panics
    /// When a stage has panicked (with that stage's name and message), since the output
    /// would never come.
    pub fn receive(&mut self) -> Out {
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
    /// this returns false at `timeout`.
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
            // The stage consumed all its input, so its output journal is complete.
            expected = stage.output.published();
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
    /// `output_len` is the number of records in the stage's output journal: everything
    /// the stage published in a plain pipeline (journals never wrap), and what the next
    /// stage (or the receiver) has not read yet in a bounded one; `output_capacity` is
    /// the journal's capacity or the ring's size.
    pub fn metrics(&self) -> Vec<StageMetrics> {
        let bounded = matches!(self.layout, Layout::Bounded { .. });
        let last = self.stages.len().saturating_sub(1);
        let panicked = panicked_stage(&self.engine.workers_shared());
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let processed = s.counters.consumed();
                let published = s.output.published();
                let output_len = if !bounded {
                    published
                } else if i == last {
                    published.saturating_sub(self.output.position())
                } else {
                    published.saturating_sub(self.stages[i + 1].counters.consumed())
                };
                StageMetrics {
                    name: s.name.clone(),
                    processed,
                    emitted: s.counters.emitted(),
                    input_lag: s.input.published().saturating_sub(processed),
                    output_len,
                    output_capacity: s.output.capacity(),
                    waiting_for_room: s.room.is_waiting(),
                    panicked: panicked == Some(i),
                }
            })
            .collect()
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.input.len()
    }

    /// The capacity of the input journal (and the default of every stage's output): its
    /// records for a plain pipeline, the ring's records (segments × records per segment)
    /// for a bounded one.
    pub fn capacity(&self) -> usize {
        self.layout.capacity()
    }

    /// Whether the pipeline's journals are bounded, back-pressured rings.
    pub fn is_bounded(&self) -> bool {
        matches!(self.layout, Layout::Bounded { .. })
    }

    /// Stops and joins every stage; returns the first stage panic as
    /// `Err(WorkerPanicked)`. Outputs already published stay receivable. A bounded stage
    /// waiting for room when shutdown comes drops the outputs it was waiting to write.
    ///
    /// With a counters file, the final sample written then equals [`metrics`](Self::metrics).
    pub fn shutdown(&mut self) -> Result<()> {
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
        "StageEngine input is full: all {capacity} records of its capacity were sent; \
         journals never wrap, so create the pipeline with a larger capacity, use try_send, \
         or use StageEngine::bounded for an unbounded stream in fixed memory"
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

//! [`StageEngine`]: a typed pipeline, one thread per stage, journals between stages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roda_core::{Record, Result, RodaError};
use roda_pipe::{Collector, Stage};
use roda_store::{AppendBatch, JournalReader, JournalStore};

use crate::affinity::Pinning;
use crate::engine::RodaEngine;
use crate::metrics::{StageCounters, StageMetrics};
use crate::wait::{Backoff, Progress, WaitStrategy};

/// Most inputs a stage takes in one step; their outputs are published together.
const BATCH: usize = 1024;

/// A pipeline: `send` puts `In` records into the input journal, each stage runs on its
/// own thread reading one journal and appending to the next, and `receive` takes `Out`
/// records from the last journal.
///
/// Journals never wrap: `with_capacity(n)` sizes every journal at `n` records, so a
/// pipeline handles at most `n` inputs (and each stage at most `n` outputs) in its
/// lifetime. A stage whose output journal fills up panics with a message naming the
/// stage and the capacity; that panic surfaces in `receive`, `await_idle` and `shutdown`.
///
/// ```
/// use roda_engine::StageEngine;
/// use roda_pipe::{filter, map, pipe};
///
/// let mut engine = StageEngine::<u64, u64>::with_capacity(1_000)
///     .add_stage(map(|x: &u64| x * 10))
///     .add_stage(pipe![filter(|x: &u64| *x > 20), map(|x: &u64| x + 1)]);
/// for i in 0..5 {
///     engine.send(&i);
/// }
/// assert!(engine.await_idle(std::time::Duration::from_secs(10)));
/// let out: Vec<u64> = std::iter::from_fn(|| engine.try_receive()).collect();
/// assert_eq!(out, vec![31, 41]);
/// engine.shutdown().unwrap();
/// ```
pub struct StageEngine<In: Record, Out: Record> {
    engine: RodaEngine,
    input: JournalStore<In>,
    output: JournalReader<Out>,
    stages: Vec<StageProbe>,
    capacity: usize,
}

/// What the owner needs to observe one stage.
struct StageProbe {
    name: String,
    counters: Arc<StageCounters>,
    input: Box<dyn Published>,
    output: Box<dyn Published>,
}

/// A journal's published count, whatever its record type.
trait Published: Send {
    fn published(&self) -> u64;
    fn capacity(&self) -> usize;
}

impl<T: Record> Published for JournalReader<T> {
    fn published(&self) -> u64 {
        JournalReader::published(self)
    }
    fn capacity(&self) -> usize {
        JournalReader::capacity(self)
    }
}

/// Collects a stage's outputs into its output journal's current batch.
struct StageOutput<'a, T: Record> {
    batch: AppendBatch<'a, T>,
    stage: &'a str,
}

impl<T: Record> Collector<T> for StageOutput<'_, T> {
    #[inline]
    fn push(&mut self, item: &T) {
        if self.batch.try_push(item).is_err() {
            output_full(self.stage, self.batch.capacity());
        }
    }
}

#[cold]
#[inline(never)]
fn output_full(stage: &str, capacity: usize) -> ! {
    panic!(
        "{stage}: output journal is full ({capacity} records); journals never wrap, so give \
         the pipeline a larger capacity (with_capacity or add_stage_with_capacity)"
    )
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
        let input = pipeline_journal::<In>(capacity)?;
        let output = input.reader();
        Ok(StageEngine {
            engine: RodaEngine::new(),
            input,
            output,
            stages: Vec::new(),
            capacity,
        })
    }
}

impl<In: Record, Out: Record> StageEngine<In, Out> {
    /// Sets the wait strategy of stages added from now on (default: adaptive).
    pub fn with_wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.engine.set_wait_strategy(wait);
        self
    }

    /// Sets the core pinning of stages added from now on (default: none).
    pub fn with_pinning(mut self, pinning: Pinning) -> Self {
        self.engine.set_pinning(&pinning);
        self
    }

    /// Appends a stage reading this pipeline's output; its output journal has the
    /// pipeline's capacity.
    ///
    /// # Panics
    /// If the stage's journal or thread cannot be created; see
    /// [`try_add_stage_with_capacity`](Self::try_add_stage_with_capacity).
    pub fn add_stage<Next, S>(self, stage: S) -> StageEngine<In, Next>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        let capacity = self.capacity;
        self.add_stage_with_capacity(stage, capacity)
    }

    /// [`add_stage`](Self::add_stage) with an output journal of `capacity` records.
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
        mut self,
        mut stage: S,
        capacity: usize,
    ) -> Result<StageEngine<In, Next>>
    where
        Next: Record,
        S: Stage<Out, Next> + Send + 'static,
    {
        let name = format!("stage {}", self.stages.len() + 1);
        let mut output = pipeline_journal::<Next>(capacity)?;
        let next_output = output.reader();
        let mut input = self.output.clone();
        let counters = Arc::new(StageCounters::default());
        let probe = StageProbe {
            name: name.clone(),
            counters: counters.clone(),
            input: Box::new(self.output.clone()),
            output: Box::new(next_output.clone()),
        };
        let stage_name = name.clone();
        let (mut consumed, mut emitted) = (0u64, 0u64);
        let step = move || {
            let batch = input.next_batch(BATCH);
            if batch.is_empty() {
                return Progress::Idle;
            }
            let mut out = StageOutput {
                batch: output.batch(),
                stage: &stage_name,
            };
            for item in batch {
                stage.process(item, &mut out);
            }
            emitted += out.batch.len() as u64;
            // Publishes every output of the batch with one Release store...
            drop(out);
            consumed += batch.len() as u64;
            // ...before the inputs count as consumed.
            counters.publish(consumed, emitted);
            Progress::Busy
        };
        self.engine.run_worker(format!("roda {name}"), step)?;
        self.stages.push(probe);
        Ok(StageEngine {
            engine: std::mem::take(&mut self.engine),
            input: self.input,
            output: next_output,
            stages: std::mem::take(&mut self.stages),
            capacity: self.capacity,
        })
    }

    /// Sends `item` into the pipeline and returns its sequence.
    ///
    /// # Panics
    /// When the input journal is full (the pipeline's capacity is spent); see
    /// [`try_send`](Self::try_send).
    #[inline]
    pub fn send(&mut self, item: &In) -> u64 {
        match self.input.try_append(item) {
            Ok(seq) => seq,
            Err(_) => input_full(self.input.capacity()),
        }
    }

    /// Sends `item`, or returns `Err(Full)` when the input journal is full.
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
    pub fn await_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut backoff =
            Backoff::new(WaitStrategy::adaptive().with_park_max(Duration::from_micros(200)));
        // What stage 1 must consume: everything sent.
        let mut expected = self.input.len() as u64;
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

    /// A snapshot of every stage's counters, first to last.
    pub fn metrics(&self) -> Vec<StageMetrics> {
        self.stages
            .iter()
            .map(|s| {
                let processed = s.counters.consumed();
                StageMetrics {
                    name: s.name.clone(),
                    processed,
                    emitted: s.counters.emitted(),
                    input_lag: s.input.published().saturating_sub(processed),
                    output_len: s.output.published(),
                    output_capacity: s.output.capacity(),
                }
            })
            .collect()
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.input.len() as u64
    }

    /// The capacity of the input journal (and the default of every stage's output).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stops and joins every stage; returns the first stage panic as
    /// `Err(WorkerPanicked)`. Outputs already published stay receivable.
    pub fn shutdown(&mut self) -> Result<()> {
        self.engine.shutdown()
    }

    /// The first stage panic, if any stage has panicked.
    pub fn first_panic(&self) -> Option<RodaError> {
        self.engine.first_panic()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn input_full(capacity: usize) -> ! {
    panic!(
        "StageEngine input is full: all {capacity} records of its capacity were sent; \
         journals never wrap, so create the pipeline with a larger capacity, or use try_send"
    )
}

/// A journal between stages: in memory, with transparent huge pages requested, since a
/// pipeline streams through fresh memory (journals never wrap) and 2 MiB pages cut the
/// page faults of that by 512×. Where the kernel declines, normal pages are used.
fn pipeline_journal<T: Record>(capacity: usize) -> Result<JournalStore<T>> {
    JournalStore::<T>::options()
        .huge_pages(true)
        .in_memory(capacity)
}

//! [`RodaEngine`]: runs workers on (optionally pinned) threads and creates stores.

use std::path::Path;
use std::sync::Arc;

use roda_core::{Record, Result, RodaError};
use roda_store::{JournalStore, SlotStore};

use crate::affinity::{CorePlanner, Pinning};
use crate::counters::{Counters, SampledWorker};
use crate::wait::{Progress, WaitStrategy};
use crate::worker::{self, Worker, WorkerHandle, WorkerShared};

/// Runs worker closures on their own threads and hands out stores.
///
/// A worker is a closure called in a loop; it returns [`Progress::Busy`] when it did
/// work and [`Progress::Idle`] when it found none, which drives its wait strategy.
/// [`shutdown`](Self::shutdown) stops and joins every worker and reports the first
/// panic; dropping the engine shuts it down too.
///
/// ```
/// use roda_engine::{Progress, RodaEngine, WaitStrategy};
///
/// # fn main() -> roda_core::Result<()> {
/// let mut engine = RodaEngine::builder().wait_strategy(WaitStrategy::Adaptive).build();
/// let mut journal = engine.journal::<u64>(1_000)?;
/// let mut reader = journal.reader();
/// let mut totals = engine.slots::<u64>(1)?;
/// let totals_view = totals.reader();
/// let mut sum = 0;
/// engine.run_worker("summer", move || match reader.next() {
///     Some(x) => {
///         sum += *x;
///         totals.set(0, &sum);
///         Progress::Busy
///     }
///     None => Progress::Idle,
/// })?;
/// for i in 1..=100 {
///     journal.append(&i);
/// }
/// while totals_view.get(0) != Some(5050) {
///     std::thread::yield_now();
/// }
/// engine.shutdown()?;
/// # Ok(()) }
/// ```
pub struct RodaEngine {
    shared: Arc<WorkerShared>,
    workers: Vec<Worker>,
    planner: CorePlanner,
    wait: WaitStrategy,
    /// The counters file's settings and sampler (see `metrics_file`).
    counters: Counters,
}

/// Settings of a [`RodaEngine`]: core pinning and the workers' wait strategy.
#[derive(Clone, Debug, Default)]
pub struct EngineBuilder {
    pinning: Pinning,
    wait: WaitStrategy,
}

impl EngineBuilder {
    /// How workers are pinned to cores (default: not pinned).
    pub fn pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }

    /// Pins the n-th worker to `cores[n % cores.len()]`.
    pub fn pin_cores(self, cores: impl Into<Vec<usize>>) -> Self {
        self.pinning(Pinning::Cores(cores.into()))
    }

    /// Pins workers round-robin over all cores this process may use.
    pub fn pin_auto(self) -> Self {
        self.pinning(Pinning::Auto)
    }

    /// How idle workers wait (default: [`WaitStrategy::Adaptive`]).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// The engine.
    pub fn build(self) -> RodaEngine {
        RodaEngine {
            shared: Arc::default(),
            workers: Vec::new(),
            planner: CorePlanner::new(&self.pinning),
            wait: self.wait,
            counters: Counters::default(),
        }
    }
}

impl Default for RodaEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl RodaEngine {
    /// An engine with default settings: no pinning, adaptive waiting.
    pub fn new() -> Self {
        EngineBuilder::default().build()
    }

    /// A builder for pinning and wait strategy.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The wait strategy given to new workers.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes the wait strategy of workers started from now on.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// Changes the pinning of workers started from now on.
    pub fn set_pinning(&mut self, pinning: &Pinning) {
        self.planner = CorePlanner::new(pinning);
    }

    /// An in-memory journal of `capacity` records.
    pub fn journal<T: Record>(&self, capacity: usize) -> Result<JournalStore<T>> {
        JournalStore::in_memory(capacity)
    }

    /// The journal file at `path`, created with `capacity` records if it does not exist.
    pub fn journal_at<T: Record>(
        &self,
        path: impl AsRef<Path>,
        capacity: usize,
    ) -> Result<JournalStore<T>> {
        JournalStore::open_or_create(path, capacity)
    }

    /// An in-memory slot store of `slots` slots.
    pub fn slots<T: Record>(&self, slots: usize) -> Result<SlotStore<T>> {
        SlotStore::in_memory(slots)
    }

    /// The slot file at `path`, created with `slots` slots if it does not exist.
    pub fn slots_at<T: Record>(
        &self,
        path: impl AsRef<Path>,
        slots: usize,
    ) -> Result<SlotStore<T>> {
        SlotStore::open_or_create(path, slots)
    }

    /// Runs `step` in a loop on a new thread named `name` until shutdown. `step` returns
    /// whether it did work; after [`Progress::Idle`] the worker waits by the engine's
    /// wait strategy. A panic in `step` ends the worker and is reported by
    /// [`shutdown`](Self::shutdown) and [`first_panic`](Self::first_panic).
    pub fn run_worker<F>(&mut self, name: impl Into<String>, step: F) -> Result<WorkerHandle>
    where
        F: FnMut() -> Progress + Send + 'static,
    {
        self.run_body(name, worker::Plain(step))
    }

    /// [`run_worker`](Self::run_worker) for a body that knows what it waits on.
    pub(crate) fn run_body<B: worker::Body>(
        &mut self,
        name: impl Into<String>,
        body: B,
    ) -> Result<WorkerHandle> {
        let core = self.planner.core_for(self.workers.len());
        let worker = worker::spawn(name.into(), core, self.wait, self.shared.clone(), body)?;
        let handle = worker.handle.clone();
        self.counters.add_worker(SampledWorker {
            name: handle.name().to_owned(),
            counters: handle.counters(),
        });
        self.workers.push(worker);
        Ok(handle)
    }

    /// Names the engine in its counters file (default "pipeline").
    pub fn set_name(&mut self, name: &str) {
        self.counters.set_name(name);
    }

    /// Publishes every worker's busy and idle step counts (workers started before and
    /// after this call) in the counters file at `path`, created (or taken over from a
    /// previous run) now: a sampler thread writes it at 10 Hz
    /// ([`set_metrics_interval`](Self::set_metrics_interval) changes that) and once more
    /// at shutdown; workers never touch it. `roda top FILE` and `roda metrics FILE` read
    /// it, as does [`CountersFile`](crate::CountersFile).
    ///
    /// ```
    /// use roda_engine::{CountersFile, Progress, RodaEngine};
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("engine.counters");
    /// let mut engine = RodaEngine::new();
    /// engine.set_name("ingest");
    /// engine.metrics_file(&path)?;
    /// let mut left = 100;
    /// engine.run_worker("countdown", move || {
    ///     Progress::from_work(left > 0 && { left -= 1; true })
    /// })?;
    /// # while engine.first_panic().is_none()
    /// #     && CountersFile::open(&path)?.snapshot()?.workers.first().map_or(0, |w| w.busy_iterations) < 100 {
    /// #     std::thread::yield_now();
    /// # }
    /// engine.shutdown()?;
    /// let snapshot = CountersFile::open(&path)?.snapshot()?;
    /// assert_eq!(snapshot.workers[0].name, "countdown");
    /// assert_eq!(snapshot.workers[0].busy_iterations, 100);
    /// # Ok(()) }
    /// ```
    pub fn metrics_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let shared = self.shared.clone();
        self.counters.start(path.as_ref(), shared)
    }

    /// Time between two samples of the counters file (default 100 ms; at least 1 ms).
    pub fn set_metrics_interval(&mut self, interval: std::time::Duration) {
        self.counters.set_interval(interval);
    }

    /// The state this engine's workers share (stop request, panics).
    pub(crate) fn workers_shared(&self) -> Arc<WorkerShared> {
        self.shared.clone()
    }

    /// Workers started and not yet shut down.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The first worker panic so far (worker name and message), if any.
    pub fn first_panic(&self) -> Option<RodaError> {
        self.shared.panic_error()
    }

    /// Stops every worker after its current step, joins them, and returns the first
    /// worker panic as `Err(WorkerPanicked { worker, message })`. Calling it again is a
    /// no-op that reports the same panic.
    pub fn shutdown(&mut self) -> Result<()> {
        self.shared.request_stop();
        for worker in &self.workers {
            // A parked worker would otherwise notice the stop only at its park timeout.
            worker.handle.unpark();
        }
        for worker in self.workers.drain(..) {
            // The worker caught its own panic; a join error cannot carry anything more.
            let _ = worker.join.join();
        }
        // Every worker stopped: the final sample holds their final counts.
        self.counters.finish(None);
        match self.shared.panic_error() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl Drop for RodaEngine {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            log::error!("roda: {err}");
        }
    }
}

impl std::fmt::Debug for RodaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RodaEngine")
            .field("workers", &self.workers.len())
            .field("wait", &self.wait)
            .finish()
    }
}

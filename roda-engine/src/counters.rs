//! The sampler of a pipeline's counters file: one thread that copies every stage's
//! counters into the file at a fixed rate and once more at shutdown. Stage threads never
//! touch the file; they keep updating their in-memory counters as always, and the
//! sampler reads those (the same sources as [`StageEngine::metrics`]).
//!
//! [`StageEngine::metrics`]: crate::StageEngine::metrics

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roda_core::{Result, RodaError};
use roda_store::SlotStore;

use crate::counters_file::{
    put_name, Slot, COUNTERS_SCHEMA, COUNTERS_SLOTS, FLAG_PANICKED, FLAG_WAITING, KIND_HEADER,
    KIND_STAGE, KIND_WORKER, LAYOUT_VERSION, MAX_STAGES, UNKNOWN, WORDS,
};
use crate::metrics::{StageCounters, StageMetrics};
use crate::stage_journal::{Published, RoomSignal};
use crate::worker::{WorkerCounters, WorkerShared};

/// Default time between two samples: 10 Hz.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// The 0-based index of the stage whose thread panicked first, if a stage did (stage
/// `i`'s thread is named "roda stage {i + 1}" whatever the stage's display name).
pub(crate) fn panicked_stage(workers: &WorkerShared) -> Option<usize> {
    match workers.panic_error()? {
        RodaError::WorkerPanicked { worker, .. } => worker
            .strip_prefix("roda stage ")?
            .parse::<usize>()
            .ok()?
            .checked_sub(1),
        _ => None,
    }
}

/// What the sampler reads for one stage: clones of the handles `metrics()` reads.
pub(crate) struct SampledStage {
    pub(crate) name: String,
    pub(crate) counters: Arc<StageCounters>,
    pub(crate) room: Arc<RoomSignal>,
    pub(crate) input: Box<dyn Published>,
    pub(crate) output: Box<dyn Published>,
    /// The stage's worker thread's busy and idle steps.
    pub(crate) worker: Arc<WorkerCounters>,
}

/// A `RodaEngine` worker as the sampler reads it.
pub(crate) struct SampledWorker {
    pub(crate) name: String,
    pub(crate) counters: Arc<WorkerCounters>,
}

/// A pipeline's counters-file settings and, once started, its sampler.
pub(crate) struct Counters {
    /// The pipeline's name.
    name: String,
    interval: Duration,
    /// Every stage so far (kept also without a file, so `metrics_file` may come anywhere
    /// in the builder chain).
    stages: Vec<SampledStage>,
    workers: Vec<SampledWorker>,
    sampler: Option<Sampler>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            name: "pipeline".into(),
            interval: DEFAULT_INTERVAL,
            stages: Vec::new(),
            workers: Vec::new(),
            sampler: None,
        }
    }
}

struct Sampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    name: String,
    interval: Duration,
    stages: Vec<SampledStage>,
    workers: Vec<SampledWorker>,
    /// The engine's shared worker state: which stage panicked.
    shared: Arc<WorkerShared>,
    stop: bool,
    /// A stage was added: sample now rather than at the next tick.
    sample_now: bool,
    /// At shutdown: the owner's exact `metrics()`, for the final sample.
    last: Option<Vec<StageMetrics>>,
}

impl Counters {
    fn state(&self) -> Option<MutexGuard<'_, State>> {
        let sampler = self.sampler.as_ref()?;
        Some(
            sampler
                .shared
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Sets the pipeline's name.
    pub(crate) fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
        if let Some(mut state) = self.state() {
            state.name = name.to_owned();
        }
    }

    /// Sets the time between two samples (at least 1 ms).
    pub(crate) fn set_interval(&mut self, interval: Duration) {
        self.interval = interval.max(Duration::from_millis(1));
        let interval = self.interval;
        if let Some(mut state) = self.state() {
            state.interval = interval;
        }
        if let Some(sampler) = &self.sampler {
            sampler.shared.wake.notify_all();
        }
    }

    /// Registers the next stage.
    pub(crate) fn add_stage(&mut self, stage: SampledStage) {
        if let Some(mut state) = self.state() {
            state.stages.push(stage);
            state.sample_now = true;
            drop(state);
            if let Some(sampler) = &self.sampler {
                sampler.shared.wake.notify_all();
            }
            return;
        }
        self.stages.push(stage);
    }

    /// Registers a worker (of a `RodaEngine`).
    pub(crate) fn add_worker(&mut self, worker: SampledWorker) {
        if let Some(mut state) = self.state() {
            state.workers.push(worker);
            state.sample_now = true;
            drop(state);
            if let Some(sampler) = &self.sampler {
                sampler.shared.wake.notify_all();
            }
            return;
        }
        self.workers.push(worker);
    }

    /// Renames the last stage, if any.
    pub(crate) fn rename_last(&mut self, name: &str) {
        if let Some(mut state) = self.state() {
            if let Some(stage) = state.stages.last_mut() {
                stage.name = name.to_owned();
            }
            return;
        }
        if let Some(stage) = self.stages.last_mut() {
            stage.name = name.to_owned();
        }
    }

    /// Creates (or takes over) the counters file at `path` and starts the sampler.
    pub(crate) fn start(&mut self, path: &Path, workers: Arc<WorkerShared>) -> Result<()> {
        if self.sampler.is_some() {
            return Err(RodaError::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "this pipeline writes a counters file already; call metrics_file once",
                ),
            ));
        }
        let mut store = open_store(path)?;
        let started = unix_nanos();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                name: self.name.clone(),
                interval: self.interval,
                stages: std::mem::take(&mut self.stages),
                workers: std::mem::take(&mut self.workers),
                shared: workers,
                stop: false,
                sample_now: false,
                last: None,
            }),
            wake: Condvar::new(),
        });
        // The first sample is written before this returns, so a reader never finds the
        // file without a header while the pipeline runs.
        let mut room_wait = Vec::new();
        write_sample(
            &mut store,
            &shared.state.lock().unwrap_or_else(|e| e.into_inner()),
            None,
            &mut room_wait,
            Sample {
                started,
                samples: 1,
                finished: false,
                interval: self.interval,
            },
        );
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("roda counters".into())
            .spawn(move || run(store, &thread_shared, started, room_wait))
            .map_err(|source| RodaError::Io { path: None, source })?;
        self.sampler = Some(Sampler {
            shared,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the sampler after a final sample: `last` (the owner's exact metrics after
    /// every stage stopped) when given, else what the sampler reads itself.
    pub(crate) fn finish(&mut self, last: Option<Vec<StageMetrics>>) {
        let Some(mut sampler) = self.sampler.take() else {
            return;
        };
        {
            let mut state = sampler
                .shared
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            state.stop = true;
            state.last = last;
        }
        sampler.shared.wake.notify_all();
        if let Some(thread) = sampler.thread.take() {
            // The sampler catches nothing: a panic there is a bug, reported by the join.
            if thread.join().is_err() {
                log::error!("roda: the counters file's sampler panicked");
            }
        }
    }

    /// Whether a counters file is being written.
    pub(crate) fn is_on(&self) -> bool {
        self.sampler.is_some()
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Opens the file for writing: creates it, or takes over one a previous run left (the
/// store's lock refuses a file another live pipeline writes).
fn open_store(path: &Path) -> Result<SlotStore<Slot>> {
    let path: PathBuf = path.into();
    let mut store = SlotStore::<Slot>::options()
        .schema(COUNTERS_SCHEMA)
        .open_or_create(&path, COUNTERS_SLOTS)?;
    if store.len() != COUNTERS_SLOTS {
        return Err(RodaError::LayoutMismatch {
            field: "capacity",
            expected: COUNTERS_SLOTS as u64,
            found: store.len() as u64,
        });
    }
    // A previous run's stages are gone.
    let empty = [0u64; WORDS];
    for i in 1..COUNTERS_SLOTS {
        store.set(i, &empty);
    }
    Ok(store)
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The sampler thread: a sample every interval until stopped, then the final one.
fn run(mut store: SlotStore<Slot>, shared: &Shared, started: u64, mut room_wait: Vec<u64>) {
    let mut samples = 1u64;
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = Instant::now();
    loop {
        next += state.interval;
        let now = Instant::now();
        if next < now {
            // Fell behind (a stopped process, a loaded machine): no burst of samples.
            next = now + state.interval;
        }
        while !state.stop && !state.sample_now {
            let now = Instant::now();
            if now >= next {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.sample_now {
            // An extra sample for a new stage; the schedule stays.
            state.sample_now = false;
            next -= state.interval;
        }
        let last = state.stop;
        let interval = state.interval;
        let final_metrics = state.last.take();
        samples += 1;
        write_sample(
            &mut store,
            &state,
            final_metrics,
            &mut room_wait,
            Sample {
                started,
                samples,
                finished: last,
                interval,
            },
        );
        if last {
            break;
        }
    }
    drop(state);
    if let Err(e) = store.flush() {
        log::warn!("roda: counters file: {e}");
    }
}

#[derive(Clone, Copy)]
struct Sample {
    started: u64,
    samples: u64,
    finished: bool,
    interval: Duration,
}

fn write_sample(
    store: &mut SlotStore<Slot>,
    state: &State,
    exact: Option<Vec<StageMetrics>>,
    room_wait: &mut Vec<u64>,
    sample: Sample,
) {
    let stages = &state.stages;
    let count = stages.len().min(MAX_STAGES);
    room_wait.resize(count, 0);
    let panicked = panicked_stage(&state.shared);
    let last = stages.len().saturating_sub(1);
    for (i, s) in stages.iter().enumerate().take(count) {
        let mut slot = [0u64; WORDS];
        slot[0] = KIND_STAGE;
        slot[1] = i as u64 + 1;
        let mut waiting = s.room.is_waiting();
        let mut stage_panicked = panicked == Some(i);
        match exact.as_ref().and_then(|m| m.get(i)) {
            Some(m) => {
                waiting = m.waiting_for_room;
                stage_panicked = m.panicked;
                slot[2] = m.processed;
                slot[3] = m.emitted;
                slot[4] = m.input_lag;
                slot[5] = m.output_len;
                slot[6] = m.output_capacity as u64;
            }
            None => {
                let processed = s.counters.consumed();
                let published = s.output.published();
                slot[2] = processed;
                slot[3] = s.counters.emitted();
                slot[4] = s.input.published().saturating_sub(processed);
                slot[5] = if i == last {
                    // An elastic last journal publishes what its receiver received; of
                    // a ring, only the receiver knows how far it read.
                    s.output
                        .received()
                        .map_or(UNKNOWN, |received| published.saturating_sub(received))
                } else {
                    published.saturating_sub(stages[i + 1].counters.consumed())
                };
                slot[6] = s.output.capacity() as u64;
            }
        }
        if waiting && !sample.finished {
            room_wait[i] = room_wait[i].saturating_add(sample.interval.as_nanos() as u64);
        }
        slot[7] = room_wait[i];
        slot[9] = s.worker.busy();
        slot[10] = s.worker.idle();
        slot[11] = s.counters.wakeups();
        slot[8] =
            if stage_panicked { FLAG_PANICKED } else { 0 } | if waiting { FLAG_WAITING } else { 0 };
        put_name(&mut slot, &s.name);
        store.set(i + 1, &slot);
    }
    // Workers fill the slots after the stages.
    let workers = state.workers.len().min(MAX_STAGES - count);
    for (i, w) in state.workers.iter().enumerate().take(workers) {
        let mut slot = [0u64; WORDS];
        slot[0] = KIND_WORKER;
        slot[1] = i as u64 + 1;
        slot[2] = w.counters.busy();
        slot[3] = w.counters.idle();
        put_name(&mut slot, &w.name);
        store.set(count + i + 1, &slot);
    }
    let mut header = [0u64; WORDS];
    header[0] = KIND_HEADER;
    header[1] = LAYOUT_VERSION;
    header[2] = u64::from(std::process::id());
    header[3] = sample.started;
    header[4] = count as u64;
    header[5] = sample.interval.as_nanos() as u64;
    header[6] = sample.samples;
    header[7] = unix_nanos();
    header[8] = u64::from(sample.finished);
    header[9] = workers as u64;
    put_name(&mut header, &state.name);
    store.set(0, &header);
}

//! Worker threads: a named (optionally pinned) thread that calls a closure in a loop,
//! waits with a [`Backoff`] when the closure finds nothing to do, and records a panic
//! instead of losing it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};

use roda_core::{Result, RodaError};

use crate::affinity::pin_current_thread;
use crate::wait::{Backoff, Progress, WaitStrategy};

/// State every worker of one engine shares with its owner.
#[derive(Default)]
pub(crate) struct WorkerShared {
    /// Set by `shutdown`; workers finish their current step and exit.
    stop: AtomicBool,
    /// Set once any worker panicked (a cheap check before taking the lock).
    panicked: AtomicBool,
    /// The first panic: worker name and message.
    first_panic: Mutex<Option<(String, String)>>,
}

impl WorkerShared {
    pub(crate) fn request_stop(&self) {
        // Relaxed: a request; the join in `shutdown` is what synchronises with the worker.
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether `shutdown` has asked the workers to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        // Relaxed: see `request_stop`.
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether any worker has panicked (one load: cheap enough for a hot path).
    #[inline]
    pub(crate) fn has_panicked(&self) -> bool {
        // Relaxed: a hint; `panic_error` loads it again with Acquire before reading
        // the message.
        self.panicked.load(Ordering::Relaxed)
    }

    /// The first worker panic, as an error.
    pub(crate) fn panic_error(&self) -> Option<RodaError> {
        // Acquire pairs with the Release store in `record_panic`: the message is stored.
        if !self.panicked.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.first_panic.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(|(worker, message)| RodaError::WorkerPanicked {
                worker: worker.clone(),
                message: message.clone(),
            })
    }

    fn record_panic(&self, worker: &str, message: String) {
        let mut guard = self.first_panic.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some((worker.to_owned(), message));
        }
        // Release pairs with the Acquire load in `panic_error`.
        self.panicked.store(true, Ordering::Release);
    }
}

/// How many steps of a worker did work and how many found none; written by the worker
/// only, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct WorkerCounters {
    busy: AtomicU64,
    idle: AtomicU64,
}

impl WorkerCounters {
    /// Steps that did work.
    pub(crate) fn busy(&self) -> u64 {
        // Relaxed: informational counters.
        self.busy.load(Ordering::Relaxed)
    }

    /// Steps that found nothing to do.
    pub(crate) fn idle(&self) -> u64 {
        // Relaxed: informational counters.
        self.idle.load(Ordering::Relaxed)
    }
}

/// A handle to a running worker: its name, its thread for waking it early, and its
/// busy and idle step counts.
#[derive(Clone, Debug)]
pub struct WorkerHandle {
    name: String,
    thread: Thread,
    counters: Arc<WorkerCounters>,
}

impl WorkerHandle {
    /// The worker's name (also its thread's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wakes the worker if it is parked, so it polls at once instead of at the end of its
    /// park timeout. Cheap, and harmless when the worker is awake.
    pub fn unpark(&self) {
        self.thread.unpark();
    }

    /// Steps of the worker's closure that returned [`Progress::Busy`] so far.
    pub fn busy_iterations(&self) -> u64 {
        self.counters.busy()
    }

    /// Steps of the worker's closure that returned [`Progress::Idle`] so far.
    pub fn idle_iterations(&self) -> u64 {
        self.counters.idle()
    }

    pub(crate) fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }
}

/// A worker's thread, owned by its engine until shutdown.
pub(crate) struct Worker {
    pub(crate) handle: WorkerHandle,
    pub(crate) join: JoinHandle<()>,
}

/// Starts `step` on a new thread named `name`, pinned to `core` if given.
pub(crate) fn spawn<F>(
    name: String,
    core: Option<usize>,
    wait: WaitStrategy,
    shared: Arc<WorkerShared>,
    mut step: F,
) -> Result<Worker>
where
    F: FnMut() -> Progress + Send + 'static,
{
    let thread_name = name.clone();
    let counters = Arc::new(WorkerCounters::default());
    let worker_counters = counters.clone();
    let join = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if let Some(core) = core {
                pin_current_thread(core);
            }
            let run = catch_unwind(AssertUnwindSafe(|| {
                let mut backoff = Backoff::new(wait);
                let (mut busy, mut idle) = (0u64, 0u64);
                // Relaxed: see `request_stop`.
                while !shared.stop.load(Ordering::Relaxed) {
                    let progress = step();
                    // Plain stores of thread-local counts (no read-modify-write): only
                    // this thread writes them. Relaxed: informational.
                    match progress {
                        Progress::Busy => {
                            busy += 1;
                            worker_counters.busy.store(busy, Ordering::Relaxed);
                        }
                        Progress::Idle => {
                            idle += 1;
                            worker_counters.idle.store(idle, Ordering::Relaxed);
                        }
                    }
                    backoff.step(progress);
                }
            }));
            if let Err(payload) = run {
                shared.record_panic(&thread_name, panic_message(payload.as_ref()));
            }
        })
        .map_err(|source| RodaError::Io { path: None, source })?;
    let handle = WorkerHandle {
        name,
        thread: join.thread().clone(),
        counters,
    };
    Ok(Worker { handle, join })
}

/// The text of a panic payload (`panic!` with a literal or with formatting).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

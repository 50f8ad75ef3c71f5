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
    /// Wakes the threads sleeping on the engine's journals (every journal's readers),
    /// called after a stop request and after a panic so that sleepers re-check.
    wake_hooks: Mutex<Vec<WakeHook>>,
}

/// Wakes the sleepers of one journal (see [`WorkerShared::add_wake_hook`]).
pub(crate) type WakeHook = Box<dyn Fn() + Send>;

impl WorkerShared {
    pub(crate) fn request_stop(&self) {
        // Relaxed: a request; the join in `shutdown` is what synchronises with the worker.
        // A sleeper sees it through the wake-up below: the wake word's Release increment
        // follows this store, and the sleeper's Acquire load of the word (or its failed
        // FUTEX_WAIT and the next load) precedes its check of the flag.
        self.stop.store(true, Ordering::Relaxed);
        self.wake_sleepers();
    }

    /// Registers `hook` to wake one journal's sleeping readers at a stop or a panic.
    pub(crate) fn add_wake_hook(&self, hook: WakeHook) {
        let mut hooks = self.wake_hooks.lock().unwrap_or_else(|e| e.into_inner());
        hooks.push(hook);
    }

    /// Wakes every sleeper on the engine's journals (a stop or a panic to notice).
    fn wake_sleepers(&self) {
        let hooks = self.wake_hooks.lock().unwrap_or_else(|e| e.into_inner());
        for hook in hooks.iter() {
            hook();
        }
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
        drop(guard);
        // `receive` and the other stages sleeping on a journal must notice the panic.
        self.wake_sleepers();
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

/// What a worker thread runs: a step, and how it waits after a step that found
/// nothing to do.
pub(crate) trait Body: Send + 'static {
    /// One poll.
    fn step(&mut self) -> Progress;
    /// Waits after an idle step.
    fn wait(&mut self, backoff: &mut Backoff);
}

/// A closure that has nothing to wait on: it parks by the backoff.
pub(crate) struct Plain<F>(pub(crate) F);

impl<F: FnMut() -> Progress + Send + 'static> Body for Plain<F> {
    #[inline]
    fn step(&mut self) -> Progress {
        (self.0)()
    }
    #[inline]
    fn wait(&mut self, backoff: &mut Backoff) {
        backoff.idle();
    }
}

/// Starts `body` on a new thread named `name`, pinned to `core` if given.
pub(crate) fn spawn<B: Body>(
    name: String,
    core: Option<usize>,
    wait: WaitStrategy,
    shared: Arc<WorkerShared>,
    mut body: B,
) -> Result<Worker> {
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
                    let progress = body.step();
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
                    match progress {
                        Progress::Busy => backoff.reset(),
                        Progress::Idle => body.wait(&mut backoff),
                    }
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

//! Roda's engine: worker threads, pipelines of stages, wait strategies and pinning.
//!
//! * [`RodaEngine`] runs worker closures on named, optionally pinned threads, hands out
//!   stores (`journal`, `journal_at`, `slots`, `slots_at`), and on shutdown joins every
//!   worker and reports the first panic instead of losing it.
//! * [`StageEngine`] is a typed pipeline builder: each stage (any
//!   [`roda_pipe::Stage`], such as a `pipe!` of pipes) runs on its own thread, reading one
//!   journal in batches and publishing its outputs to the next with one Release store
//!   per batch. [`StageEngine::await_idle`] is exact: it compares cursors.
//! * [`wait`]: the [`WaitStrategy`] presets ([`WaitStrategy::BusySpin`],
//!   [`WaitStrategy::Adaptive`] (default), [`WaitStrategy::LowPower`]) and the
//!   [`Backoff`] state machine: busy spin, then `spin_loop`, then park with a growing,
//!   capped timeout.
//! * [`counters_file`]: a pipeline's counters published in a file
//!   ([`StageEngine::metrics_file`]) for `roda top` and `roda metrics`, and
//!   [`CountersFile`], which reads it from any process.
//! * [`affinity`]: [`Pinning`] policies (none, a core list, auto) and
//!   [`pin_current_thread`], which reports a failure once as a warning, never a panic.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod affinity;
mod counters;
pub mod counters_file;
mod engine;
mod metrics;
mod stage_engine;
mod stage_journal;
pub mod wait;
mod worker;

pub use affinity::{pin_current_thread, CorePlanner, Pinning};
pub use counters_file::{CountersFile, PipelineSnapshot, StageSnapshot, WorkerSnapshot};
pub use engine::{EngineBuilder, RodaEngine};
pub use metrics::StageMetrics;
pub use stage_engine::StageEngine;
pub use wait::{Backoff, BackoffPhase, Progress, WaitStrategy, WakeSource};
pub use worker::WorkerHandle;

//! Roda's engine: the machinery that runs pipeline workers.
//!
//! This crate currently provides the building blocks the engine's workers use:
//!
//! * [`wait`]: the [`WaitStrategy`] presets and the [`Backoff`] state machine a worker
//!   drives after each poll, reporting its [`Progress`]. An idle worker busy-spins, then
//!   pauses with `spin_loop`, then parks with an escalating timeout, so a quiet stage
//!   costs almost no CPU while a busy one never leaves the hot loop.
//! * [`affinity`]: [`Pinning`] policies and a [`CorePlanner`] that assigns cores to
//!   workers, plus [`pin_current_thread`], which reports failures as a single log warning
//!   instead of panicking.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod affinity;
pub mod wait;

pub use affinity::{pin_current_thread, CorePlanner, Pinning};
pub use wait::{Backoff, BackoffPhase, Progress, WaitStrategy};

//! Core pinning for Roda's worker threads.
//!
//! A [`Pinning`] policy says which cores workers may run on; a [`CorePlanner`] turns it
//! into a core id for the n-th worker, and [`pin_current_thread`] applies it from inside
//! the worker's thread. Pinning is an optimisation, never a requirement: when the
//! platform refuses it (unknown core, restricted cpuset, unsupported OS) the worker runs
//! unpinned and Roda logs a single `log::warn!` per process instead of failing.
//!
//! ```
//! use roda_engine::{CorePlanner, Pinning};
//!
//! let planner = CorePlanner::new(&Pinning::Cores(vec![2, 3]));
//! assert_eq!(planner.core_for(0), Some(2));
//! assert_eq!(planner.core_for(1), Some(3));
//! assert_eq!(planner.core_for(2), Some(2)); // round-robin over the list
//! assert_eq!(CorePlanner::new(&Pinning::None).core_for(0), None);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

/// Which cores worker threads are pinned to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pinning {
    /// Do not pin: the OS scheduler places workers (the default).
    #[default]
    None,
    /// Pin the n-th worker to `cores[n % cores.len()]`. An empty list pins nothing.
    Cores(Vec<usize>),
    /// Pin workers round-robin over the cores this process may run on, as reported by
    /// the OS when the planner is created.
    Auto,
}

/// Hands out the core for each worker according to a [`Pinning`] policy.
///
/// The core list is resolved once, at creation: for [`Pinning::Auto`] that is before any
/// worker is pinned (a pinned thread would otherwise only see its own core).
#[derive(Clone, Debug, Default)]
pub struct CorePlanner {
    /// Cores to cycle through; empty means "do not pin".
    cores: Vec<usize>,
    /// The worker index [`next_core`](Self::next_core) plans next.
    next: usize,
}

impl CorePlanner {
    /// Resolves `pinning` into a list of cores. With [`Pinning::Auto`], if the OS does not
    /// report the available cores, the planner pins nothing and a warning is logged once.
    pub fn new(pinning: &Pinning) -> Self {
        let cores = match pinning {
            Pinning::None => Vec::new(),
            Pinning::Cores(list) => list.clone(),
            Pinning::Auto => match core_affinity::get_core_ids() {
                Some(ids) if !ids.is_empty() => ids.into_iter().map(|c| c.id).collect(),
                _ => {
                    warn_once(format_args!(
                        "Roda could not list the available CPU cores, so Pinning::Auto pins \
                         no workers; they run unpinned. Use Pinning::Cores with explicit ids \
                         or Pinning::None to silence this warning."
                    ));
                    Vec::new()
                }
            },
        };
        CorePlanner { cores, next: 0 }
    }

    /// The core for the worker with index `worker` (0-based), or `None` when not pinning.
    pub fn core_for(&self, worker: usize) -> Option<usize> {
        if self.cores.is_empty() {
            None
        } else {
            Some(self.cores[worker % self.cores.len()])
        }
    }

    /// The core for the next worker, counting workers from 0 across calls.
    pub fn next_core(&mut self) -> Option<usize> {
        let core = self.core_for(self.next);
        self.next = self.next.wrapping_add(1);
        core
    }

    /// The cores this planner cycles through (empty when it pins nothing).
    pub fn cores(&self) -> &[usize] {
        &self.cores
    }

    /// True when this planner pins workers at all.
    pub fn is_pinning(&self) -> bool {
        !self.cores.is_empty()
    }
}

/// Largest core id the OS affinity mask can express (`CPU_SETSIZE` on Linux). Larger ids
/// are refused up front instead of indexing past the mask.
const MAX_CORE_IDS: usize = 1024;

/// Pins the calling thread to `core`. Returns `true` on success.
///
/// On failure (no such core, a cpuset that excludes it, a platform without pinning) the
/// thread keeps running unpinned, `false` is returned and the first failure in the
/// process is logged with `log::warn!`; later failures are silent. Never panics.
///
/// ```
/// // A core id far beyond any machine: refused, not a panic.
/// assert!(!roda_engine::pin_current_thread(1_000_000));
/// ```
pub fn pin_current_thread(core: usize) -> bool {
    let pinned =
        core < MAX_CORE_IDS && core_affinity::set_for_current(core_affinity::CoreId { id: core });
    if !pinned {
        warn_once(format_args!(
            "Roda could not pin a worker thread to CPU core {core} (unknown core, excluded \
             by the process's cpuset, or unsupported platform); it runs unpinned. Further \
             pinning failures are not reported."
        ));
    }
    pinned
}

/// Set once the process has logged its pinning warning.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Logs `message` as a warning unless a pinning warning was already logged.
fn warn_once(message: std::fmt::Arguments<'_>) {
    // Relaxed: the flag only deduplicates a log line; it publishes no other data.
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!("{message}");
    }
}

/// Whether the process has already logged its pinning warning.
#[cfg(test)]
fn warned() -> bool {
    WARNED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_pins_nothing() {
        let mut p = CorePlanner::new(&Pinning::None);
        assert!(!p.is_pinning());
        assert_eq!(p.next_core(), None);
        assert_eq!(p.core_for(7), None);
        assert_eq!(Pinning::default(), Pinning::None);
    }

    #[test]
    fn cores_round_robin_over_the_list() {
        let mut p = CorePlanner::new(&Pinning::Cores(vec![5, 1, 9]));
        let got: Vec<_> = (0..7).map(|_| p.next_core()).collect();
        assert_eq!(got, [5, 1, 9, 5, 1, 9, 5].map(Some));
        assert_eq!(p.core_for(4), Some(1));
        assert_eq!(p.cores(), [5, 1, 9]);
    }

    #[test]
    fn empty_core_list_pins_nothing() {
        let p = CorePlanner::new(&Pinning::Cores(Vec::new()));
        assert!(!p.is_pinning());
        assert_eq!(p.core_for(0), None);
    }

    #[test]
    fn auto_round_robins_over_available_cores() {
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let p = CorePlanner::new(&Pinning::Auto);
        assert_eq!(p.cores(), available.as_slice());
        if cfg!(target_os = "linux") {
            assert!(p.is_pinning(), "Linux reports the cores a process may use");
        }
        for n in 0..2 * available.len() {
            assert_eq!(p.core_for(n), Some(available[n % available.len()]));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pins_current_thread_on_linux() {
        let first = core_affinity::get_core_ids().unwrap()[0].id;
        // Pin a fresh thread, so the test harness's threads keep their affinity.
        std::thread::spawn(move || {
            assert!(pin_current_thread(first));
            let now: Vec<usize> = core_affinity::get_core_ids()
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect();
            assert_eq!(now, [first]);
            // The planner resolves Auto from the mask it sees: now only this core.
            assert_eq!(CorePlanner::new(&Pinning::Auto).cores(), [first]);
        })
        .join()
        .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pins_to_core_zero_when_available() {
        let available = core_affinity::get_core_ids().unwrap();
        if available.iter().any(|c| c.id == 0) {
            assert!(std::thread::spawn(|| pin_current_thread(0)).join().unwrap());
        }
    }

    #[test]
    fn nonexistent_core_fails_without_panicking_and_warns_once() {
        std::thread::spawn(|| {
            assert!(!pin_current_thread(10_000));
            assert!(!pin_current_thread(1_000)); // expressible in the mask, but no such core
            assert!(!pin_current_thread(usize::MAX));
        })
        .join()
        .unwrap();
        assert!(warned());
    }
}

//! Idle cost of Roda's wait strategies, measured as the polling thread's own CPU time.
//!
//! DESIGN: an idle worker under the default adaptive strategy costs under 2% of a core.
//! This test asserts < 5% (headroom for noisy CI machines) and prints the measurement;
//! the busy-spin companion proves the measurement can fail.
#![cfg(target_os = "linux")]

use nix::sys::resource::{getrusage, UsageWho};
use roda_engine::{Backoff, Progress, WaitStrategy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU time (user + system) consumed so far by the calling thread.
fn thread_cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD)");
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    to_duration(usage.user_time()) + to_duration(usage.system_time())
}

/// Polls an always-empty source for `warm_up + measure` with `strategy`; returns the
/// fraction of the measured wall time the polling thread spent on a CPU.
fn idle_cpu_fraction(strategy: WaitStrategy, warm_up: Duration, measure: Duration) -> f64 {
    let source = Arc::new(AtomicU64::new(0));
    let worker_source = Arc::clone(&source);
    std::thread::spawn(move || {
        let mut backoff = Backoff::new(strategy);
        let mut processed = 0u64;
        let mut poll = || {
            // Relaxed: nothing is ever published; the load only models a poll.
            let progress = if worker_source.load(Ordering::Relaxed) > processed {
                processed += 1;
                Progress::Busy
            } else {
                Progress::Idle
            };
            backoff.step(progress);
        };

        let start = Instant::now();
        while start.elapsed() < warm_up {
            poll();
        }
        let cpu_start = thread_cpu_time();
        let wall_start = Instant::now();
        while wall_start.elapsed() < measure {
            poll();
        }
        let wall = wall_start.elapsed();
        let cpu = thread_cpu_time() - cpu_start;
        cpu.as_secs_f64() / wall.as_secs_f64()
    })
    .join()
    .expect("polling thread panicked")
}

#[test]
fn adaptive_idle_worker_costs_under_5_percent_of_a_core() {
    let fraction = idle_cpu_fraction(
        WaitStrategy::adaptive(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    println!("adaptive idle worker: {:.3}% of a core", fraction * 100.0);
    assert!(
        fraction < 0.05,
        "an idle adaptive worker used {:.2}% of a core (limit 5%)",
        fraction * 100.0
    );
}

#[test]
fn busy_spin_idle_worker_burns_a_core() {
    let fraction = idle_cpu_fraction(
        WaitStrategy::busy_spin(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    println!("busy-spin idle worker: {:.1}% of a core", fraction * 100.0);
    assert!(
        fraction > 0.2,
        "a busy-spinning worker used only {:.1}% of a core: the measurement cannot tell \
         idle from busy",
        fraction * 100.0
    );
}

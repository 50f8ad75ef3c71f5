//! Idle cost of a whole pipeline, measured as the process's CPU time over an idle
//! second (its own test binary, so no other test adds to the measurement).
#![cfg(target_os = "linux")]

use nix::sys::resource::{getrusage, UsageWho};
use std::time::{Duration, Instant};

/// CPU time (user + system) consumed so far by the whole process.
fn process_cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage(RUSAGE_SELF)");
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    to_duration(usage.user_time()) + to_duration(usage.system_time())
}

#[test]
fn idle_adaptive_pipeline_costs_under_5_percent_of_a_core_per_stage() {
    const STAGES: f64 = 3.0;
    let mut pipeline = roda_engine::StageEngine::<u64, u64>::with_capacity(1_000)
        .add_stage(roda_pipe::map(|x: &u64| x + 1))
        .add_stage(roda_pipe::map(|x: &u64| x + 1))
        .add_stage(roda_pipe::map(|x: &u64| x + 1));
    pipeline.send(&1);
    assert_eq!(pipeline.receive(), 4);
    // Let every stage go cold (spin and pause phases over, park timeout at its cap).
    std::thread::sleep(Duration::from_millis(200));
    let cpu_start = process_cpu_time();
    let wall_start = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let per_stage = (process_cpu_time() - cpu_start).as_secs_f64()
        / wall_start.elapsed().as_secs_f64()
        / STAGES;
    println!(
        "idle adaptive pipeline: {:.3}% of a core per stage (process CPU time)",
        per_stage * 100.0
    );
    assert!(
        per_stage < 0.05,
        "an idle pipeline used {:.2}% of a core per stage",
        per_stage * 100.0
    );
    pipeline.shutdown().unwrap();
}

//! Service health monitoring: latency/error readings from services flow through a noise
//! filter and a per-window health summary, then alerts fire when a service degrades.
//!
//! cargo run --release --example service_health [-- --events N] [--bounded] [--metrics FILE]
//!
//! `--metrics FILE` publishes the pipeline's counters in FILE while it runs: watch it
//! with `roda top FILE`, export it with `roda metrics FILE`.
//!
//! By default (`with_capacity`) the journals between stages are recycled rings and the
//! last one (the alerts) is elastic, holding the alerts not received yet. `--bounded`
//! runs every journal, the last one too, as a fixed ring (`StageEngine::bounded`).
//! Either way memory stays at a few MB however many readings flow.
//!
//! Stage 1: `dedup_by` drops a reading identical to the previous one of its service
//! (retransmitted samples), then `stateful`, keyed by (service, 10 ms window), keeps a
//! 64-byte `Health` summary, emitted after every reading.
//! Stage 2: `delta` on the service raises an `Alert` when its error rate crosses 20% or
//! its average latency doubles between consecutive summaries; `dedup_by` then drops an
//! alert identical to the previous alert of that service.

use std::time::{Duration, Instant};

use roda::prelude::*;

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct ServiceReading {
    service_id: u64,
    latency_us: u64,
    error: u64,
    timestamp_us: u64,
}

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Health {
    service_id: u64,
    window: u64,
    count: u64,
    errors: u64,
    latency_sum: u64,
    max_latency_us: u64,
    error_rate: f64,
    avg_latency_us: f64,
}

#[derive(Clone, Copy, Debug, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Alert {
    service_id: u64,
    window: u64,
    /// 1 = error rate above 20%, 2 = average latency doubled.
    kind: u64,
    value: f64,
}

const _: () = assert!(std::mem::size_of::<Health>() == 64);
const SERVICES: u64 = 8;
const WINDOW_US: u64 = 10_000;

/// Reading `i` of the workload: eight services, one sample every microsecond; every
/// fourth sample is sent twice (a retransmission); service 3 degrades in every fifth window.
fn reading(i: u64) -> ServiceReading {
    let sample = i - i / 4; // the duplicate repeats the previous sample
    let service_id = sample % SERVICES;
    let timestamp_us = sample;
    let window = timestamp_us / WINDOW_US;
    let degraded = service_id == 3 && window % 5 == 4;
    ServiceReading {
        service_id,
        latency_us: if degraded { 900 } else { 100 + sample % 50 },
        error: u64::from(degraded && sample % 3 == 0 || sample % 97 == 0),
        timestamp_us,
    }
}

fn main() {
    let mut events = 20_000_000u64;
    let mut bounded = false;
    let mut metrics: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => {
                events = args
                    .next()
                    .and_then(|n| n.replace('_', "").parse().ok())
                    .unwrap_or_else(|| {
                        eprintln!("service_health: --events needs a number");
                        std::process::exit(2)
                    })
            }
            "--bounded" => bounded = true,
            "--metrics" => {
                metrics = Some(args.next().unwrap_or_else(|| {
                    eprintln!("service_health: --metrics needs a FILE");
                    std::process::exit(2)
                }))
            }
            _ => {
                eprintln!(
                    "usage: cargo run --release --example service_health -- [--events N] \
                     [--bounded] [--metrics FILE]"
                );
                std::process::exit(2)
            }
        }
    }
    let start = Instant::now();
    let engine = if bounded {
        StageEngine::<ServiceReading, ServiceReading>::bounded(1 << 16, 4)
    } else {
        StageEngine::<ServiceReading, ServiceReading>::with_capacity(events as usize)
    };
    let engine = engine.name("service_health");
    let engine = match &metrics {
        Some(path) => engine.metrics_file(path),
        None => engine,
    };
    let mut engine = engine
        .add_stage(pipe![
            dedup_by(|r: &ServiceReading| r.service_id).with_capacity(64),
            stateful(
                |r: &ServiceReading| (r.service_id, r.timestamp_us / WINDOW_US),
                |r: &ServiceReading| Health {
                    service_id: r.service_id,
                    window: r.timestamp_us / WINDOW_US,
                    count: 1,
                    errors: r.error,
                    latency_sum: r.latency_us,
                    max_latency_us: r.latency_us,
                    error_rate: r.error as f64,
                    avg_latency_us: r.latency_us as f64,
                },
                |h: &mut Health, r: &ServiceReading| {
                    h.count += 1;
                    h.errors += r.error;
                    h.latency_sum += r.latency_us;
                    h.max_latency_us = h.max_latency_us.max(r.latency_us);
                    h.error_rate = h.errors as f64 / h.count as f64;
                    h.avg_latency_us = h.latency_sum as f64 / h.count as f64;
                },
            )
            .with_capacity(4096)
        ])
        .stage_name("health per window")
        .add_stage(pipe![
            delta(
                |h: &Health| h.service_id,
                |curr: Health, prev: Option<Health>| {
                    let prev = prev?;
                    if curr.error_rate > 0.2 && prev.error_rate <= 0.2 {
                        Some(Alert {
                            service_id: curr.service_id,
                            window: curr.window,
                            kind: 1,
                            value: curr.error_rate,
                        })
                    } else if curr.avg_latency_us > 2.0 * prev.avg_latency_us {
                        Some(Alert {
                            service_id: curr.service_id,
                            window: curr.window,
                            kind: 2,
                            value: curr.avg_latency_us,
                        })
                    } else {
                        None
                    }
                },
            )
            .with_capacity(64),
            dedup_by(|a: &Alert| a.service_id).with_capacity(64)
        ])
        .stage_name("alerts");

    // Alerts are counted as they come: a bounded pipeline's last ring must be drained
    // while it runs (`send_receiving` does it whenever the input ring is full).
    let mut by_kind = [0u64; 3];
    let mut last = None;
    let mut take = |alert: &Alert| {
        by_kind[alert.kind as usize] += 1;
        last = Some(*alert);
    };
    for i in 0..events {
        engine.send_receiving(&reading(i), &mut take);
    }
    loop {
        let idle = engine.await_idle(Duration::from_millis(if bounded { 1 } else { 1000 }));
        while let Some(alert) = engine.try_receive() {
            take(&alert);
        }
        if idle {
            break;
        }
        if let Some(err) = engine.first_panic() {
            eprintln!("service_health: {err}");
            std::process::exit(1);
        }
        if !bounded {
            let done = engine.metrics().last().map_or(0, |m| m.processed);
            eprintln!("stage 2 has consumed {done} summaries");
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{events} readings in {:.3} s: {:.2} M events/s (engine creation to exact idle)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("alerts: {} error-rate, {} latency", by_kind[1], by_kind[2]);
    if let Some(a) = last {
        println!("last alert: {a:?}");
    }
    print!("{}", StageMetrics::table(&engine.metrics()));
    if let Err(err) = engine.shutdown() {
        eprintln!("service_health: {err}");
        std::process::exit(1);
    }
}

//! Criterion micro-benchmarks of Roda's hot paths: journal append / next / next_batch /
//! get_at, slot set / get, every pipe, and a 3-pipe chain. `cargo test --benches` runs
//! each once as a smoke test; `cargo bench -p roda-bench --bench micro` measures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use roda::prelude::*;

#[derive(Clone, Copy, PartialEq, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Reading {
    sensor: u64,
    value: f64,
    timestamp: u64,
}

fn reading(i: u64) -> Reading {
    Reading {
        sensor: i % 64,
        value: i as f64,
        timestamp: i,
    }
}

/// A journal pre-faulted outside the timing, with `n` records when `fill`.
fn journal(n: u64, fill: bool) -> JournalStore<Reading> {
    let mut j = JournalStore::<Reading>::options()
        .populate(true)
        .in_memory(n.max(1) as usize)
        .expect("journal");
    if fill {
        for i in 0..n {
            j.append(&reading(i));
        }
    }
    j
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal");
    g.bench_function("append", |b| {
        b.iter_custom(|iters| {
            let mut j = journal(iters, false);
            let start = Instant::now();
            for i in 0..iters {
                black_box(j.append(&reading(i)));
            }
            start.elapsed()
        })
    });
    g.bench_function("next", |b| {
        b.iter_custom(|iters| {
            let j = journal(iters, true);
            let mut r = j.reader();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(r.next());
            }
            start.elapsed()
        })
    });
    g.bench_function("next_batch_64_per_record", |b| {
        b.iter_custom(|iters| {
            let j = journal(iters, true);
            let mut r = j.reader();
            let start = Instant::now();
            let mut seen = 0;
            while seen < iters {
                let batch = r.next_batch(64);
                seen += batch.len() as u64;
                black_box(batch);
            }
            start.elapsed()
        })
    });
    g.bench_function("get_at", |b| {
        let j = journal(1 << 16, true);
        let r = j.reader();
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) & ((1 << 16) - 1);
            black_box(r.get_at(i))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("slots");
    let mut slots = SlotStore::<Reading>::in_memory(1024).expect("slots");
    let view = slots.reader();
    let mut i = 0u64;
    g.bench_function("set", |b| {
        b.iter(|| {
            i += 1;
            slots.set((i & 1023) as usize, &reading(i));
        })
    });
    g.bench_function("get", |b| {
        b.iter(|| {
            i += 1;
            black_box(view.get((i & 1023) as usize))
        })
    });
    g.finish();
}

/// Time per input of `stage` over 4,096 prepared inputs, outputs into a closure.
fn bench_stage<O, S: Stage<Reading, O>>(
    c: &mut Criterion,
    name: &str,
    mut make: impl FnMut() -> S,
) {
    let inputs: Vec<Reading> = (0..4096).map(reading).collect();
    c.bench_function(&format!("pipe/{name}"), |b| {
        b.iter_batched_ref(
            &mut make,
            |stage| {
                let mut out = 0u64;
                for x in &inputs {
                    stage.process(x, &mut |_: &O| out += 1);
                }
                black_box(out)
            },
            BatchSize::SmallInput,
        )
    });
}

fn pipes(c: &mut Criterion) {
    bench_stage(c, "map", || map(|r: &Reading| r.value * 2.0));
    bench_stage(c, "filter", || filter(|r: &Reading| r.sensor % 2 == 0));
    bench_stage(c, "filter_map", || {
        filter_map(|r: &Reading| (r.sensor % 2 == 0).then_some(r.value))
    });
    bench_stage(c, "inspect", || {
        inspect(|r: &Reading| {
            black_box(r);
        })
    });
    bench_stage(c, "stateful", || {
        stateful(
            |r: &Reading| r.sensor,
            |r: &Reading| r.value,
            |s: &mut f64, r: &Reading| *s += r.value,
        )
        .with_capacity(64)
    });
    bench_stage(c, "delta", || {
        delta(
            |r: &Reading| r.sensor,
            |c: Reading, p: Option<Reading>| p.map(|p| c.value - p.value),
        )
        .with_capacity(64)
    });
    bench_stage(c, "dedup_by", || {
        dedup_by(|r: &Reading| r.sensor).with_capacity(64)
    });
    bench_stage(c, "chain_3", || {
        pipe![
            map(|r: &Reading| Reading {
                value: r.value * 2.0,
                ..*r
            }),
            filter(|r: &Reading| r.sensor % 4 != 0),
            stateful(
                |r: &Reading| r.sensor,
                |r: &Reading| r.value,
                |s: &mut f64, r: &Reading| *s += r.value
            )
            .with_capacity(64)
        ]
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = store, pipes
}
criterion_main!(benches);

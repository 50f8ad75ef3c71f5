//! A three-pipe chain (map -> filter -> stateful) against a hand-written loop doing the
//! same work over the same 1M inputs. Read the ratio of the two timings.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use roda_pipe::{filter, map, pipe, stateful, Stage};

const ITEMS: usize = 1_000_000;
const KEYS: u64 = 1024;

#[derive(Clone, Copy)]
struct Trade {
    instrument: u64,
    price: u64,
    qty: u64,
}

fn inputs() -> Vec<Trade> {
    // xorshift: cheap, deterministic, no extra dependency.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..ITEMS)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            Trade {
                instrument: s % KEYS,
                price: (s >> 20) % 10_000,
                qty: (s >> 40) % 100,
            }
        })
        .collect()
}

/// Notional per trade, drop small ones, running notional per instrument.
fn bench_chain(c: &mut Criterion) {
    let input = inputs();
    let mut group = c.benchmark_group("map_filter_stateful");
    group.throughput(Throughput::Elements(ITEMS as u64));

    group.bench_function("pipe", |b| {
        let mut p = pipe![
            map(|t: &Trade| (t.instrument, t.price * t.qty)),
            filter(|n: &(u64, u64)| n.1 >= 50_000),
            stateful(
                |n: &(u64, u64)| n.0,
                |n: &(u64, u64)| n.1,
                |total: &mut u64, n: &(u64, u64)| *total += n.1,
            )
            .with_capacity(KEYS as usize),
        ];
        b.iter(|| {
            let mut acc = 0u64;
            for t in black_box(&input) {
                p.process(t, &mut |total: &u64| acc ^= *total);
            }
            black_box(acc)
        });
    });

    group.bench_function("hand_written", |b| {
        let mut totals: HashMap<u64, u64> = HashMap::with_capacity(KEYS as usize);
        b.iter(|| {
            let mut acc = 0u64;
            for t in black_box(&input) {
                let notional = t.price * t.qty;
                if notional < 50_000 {
                    continue;
                }
                let total = match totals.entry(t.instrument) {
                    Entry::Occupied(e) => {
                        let total = e.into_mut();
                        *total += notional;
                        total
                    }
                    Entry::Vacant(e) => e.insert(notional),
                };
                acc ^= *total;
            }
            black_box(acc)
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench_chain
}
criterion_main!(benches);

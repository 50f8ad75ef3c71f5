//! Property tests: every pipe, and random three-pipe chains, against a plain
//! iterator / `std::collections::HashMap` model.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use proptest::prelude::*;
use roda_pipe::{dedup_by, delta, filter, filter_map, inspect, map, pipe, stateful, Stage};

fn run<In, Out: Copy, S: Stage<In, Out>>(stage: &mut S, input: &[In]) -> Vec<Out> {
    let mut out = Vec::new();
    for x in input {
        stage.process(x, &mut out);
    }
    out
}

/// Same as `run`, but through a closure collector.
fn run_fn<In, Out: Copy, S: Stage<In, Out>>(stage: &mut S, input: &[In]) -> Vec<Out> {
    let mut out = Vec::new();
    for x in input {
        stage.process(x, &mut |y: &Out| out.push(*y));
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    instrument: u32,
    price: u32,
}

fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    prop::collection::vec(
        (0u32..4, 0u32..3).prop_map(|(instrument, price)| Tick { instrument, price }),
        0..64,
    )
}

fn model_stateful<T, K: std::hash::Hash + Eq, S: Copy>(
    input: &[T],
    key: impl Fn(&T) -> K,
    init: impl Fn(&T) -> S,
    fold: impl Fn(&mut S, &T),
) -> Vec<S> {
    let mut states: HashMap<K, S> = HashMap::new();
    input
        .iter()
        .map(|x| match states.get_mut(&key(x)) {
            Some(s) => {
                fold(s, x);
                *s
            }
            None => {
                let s = init(x);
                states.insert(key(x), s);
                s
            }
        })
        .collect()
}

fn model_delta<T: Copy, K: std::hash::Hash + Eq, O>(
    input: &[T],
    key: impl Fn(&T) -> K,
    f: impl Fn(T, Option<T>) -> Option<O>,
) -> Vec<O> {
    let mut prev: HashMap<K, T> = HashMap::new();
    input
        .iter()
        .filter_map(|x| f(*x, prev.insert(key(x), *x)))
        .collect()
}

fn model_dedup<T: Copy + PartialEq, K: std::hash::Hash + Eq>(
    input: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut last: HashMap<K, T> = HashMap::new();
    input
        .iter()
        .filter(|x| {
            if last.get(&key(x)) == Some(*x) {
                false
            } else {
                last.insert(key(x), **x);
                true
            }
        })
        .copied()
        .collect()
}

/// One pipe over `u64`, chosen at run time, for the random-chain property.
#[derive(Clone, Copy, Debug)]
enum Op {
    Map(u64),
    Filter(u64),
    FilterMap(u64),
    Stateful(u64),
    Delta(u64),
    Dedup(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..5).prop_map(Op::Map),
        (2u64..4).prop_map(Op::Filter),
        (2u64..4).prop_map(Op::FilterMap),
        (1u64..5).prop_map(Op::Stateful),
        (1u64..5).prop_map(Op::Delta),
        (1u64..5).prop_map(Op::Dedup),
    ]
}

type Dyn1 = Box<dyn FnMut(&u64) -> u64>;
type DynPred = Box<dyn FnMut(&u64) -> bool>;
type DynOpt = Box<dyn FnMut(&u64) -> Option<u64>>;
type DynFold = Box<dyn FnMut(&mut u64, &u64)>;
type DynDelta = Box<dyn FnMut(u64, Option<u64>) -> Option<u64>>;

/// The real pipe for an `Op` (its closures boxed only so the six variants share a type;
/// the pipes and the chain around them are the crate's own).
enum AnyPipe {
    Map(roda_pipe::Map<Dyn1, u64, u64>),
    Filter(roda_pipe::Filter<DynPred, u64>),
    FilterMap(roda_pipe::FilterMap<DynOpt, u64, u64>),
    Stateful(roda_pipe::Stateful<Dyn1, Dyn1, DynFold, u64, u64, u64>),
    Delta(roda_pipe::Delta<Dyn1, DynDelta, u64, u64, u64>),
    Dedup(roda_pipe::DedupBy<Dyn1, u64, u64>),
}

impl Stage<u64, u64> for AnyPipe {
    fn process<C: roda_pipe::Collector<u64>>(&mut self, input: &u64, out: &mut C) {
        match self {
            AnyPipe::Map(p) => p.process(input, out),
            AnyPipe::Filter(p) => p.process(input, out),
            AnyPipe::FilterMap(p) => p.process(input, out),
            AnyPipe::Stateful(p) => p.process(input, out),
            AnyPipe::Delta(p) => p.process(input, out),
            AnyPipe::Dedup(p) => p.process(input, out),
        }
    }
}

fn build(op: Op) -> AnyPipe {
    match op {
        Op::Map(m) => AnyPipe::Map(map(Box::new(move |x: &u64| x.wrapping_mul(m) + 1) as Dyn1)),
        Op::Filter(m) => AnyPipe::Filter(filter(Box::new(move |x: &u64| x % m != 0) as _)),
        Op::FilterMap(m) => {
            AnyPipe::FilterMap(filter_map(
                Box::new(move |x: &u64| (x % m != 0).then_some(x / m)) as _,
            ))
        }
        Op::Stateful(m) => AnyPipe::Stateful(stateful(
            Box::new(move |x: &u64| x % m) as Dyn1,
            Box::new(|x: &u64| *x) as Dyn1,
            Box::new(|s: &mut u64, x: &u64| *s = s.wrapping_add(*x)) as _,
        )),
        Op::Delta(m) => AnyPipe::Delta(delta(
            Box::new(move |x: &u64| x % m) as Dyn1,
            Box::new(|c: u64, p: Option<u64>| Some(c.wrapping_sub(p.unwrap_or(0)) % 1000)) as _,
        )),
        Op::Dedup(m) => AnyPipe::Dedup(dedup_by(Box::new(move |x: &u64| x % m) as Dyn1)),
    }
}

/// The model of an `Op`, applied to a whole list.
fn model(op: Op, input: &[u64]) -> Vec<u64> {
    match op {
        Op::Map(m) => input.iter().map(|x| x.wrapping_mul(m) + 1).collect(),
        Op::Filter(m) => input.iter().copied().filter(|x| x % m != 0).collect(),
        Op::FilterMap(m) => input
            .iter()
            .filter_map(|x| (x % m != 0).then_some(x / m))
            .collect(),
        Op::Stateful(m) => model_stateful(input, |x| x % m, |x| *x, |s, x| *s = s.wrapping_add(*x)),
        Op::Delta(m) => model_delta(
            input,
            |x| x % m,
            |c, p| Some(c.wrapping_sub(p.unwrap_or(0)) % 1000),
        ),
        Op::Dedup(m) => model_dedup(input, |x| x % m),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn map_matches_iter(input in prop::collection::vec(any::<u32>(), 0..64)) {
        let mut p = map(|x: &u32| u64::from(*x) * 3);
        let expected: Vec<u64> = input.iter().map(|x| u64::from(*x) * 3).collect();
        prop_assert_eq!(run(&mut p, &input), expected);
    }

    #[test]
    fn filter_matches_iter(input in prop::collection::vec(any::<u64>(), 0..64), m in 1u64..5) {
        let mut p = filter(|x: &u64| x % m == 0);
        let expected: Vec<u64> = input.iter().copied().filter(|x| x % m == 0).collect();
        prop_assert_eq!(run_fn(&mut p, &input), expected);
    }

    #[test]
    fn filter_map_matches_iter(input in prop::collection::vec(any::<i16>(), 0..64)) {
        let mut p = filter_map(|x: &i16| x.checked_mul(4));
        let expected: Vec<i16> = input.iter().filter_map(|x| x.checked_mul(4)).collect();
        prop_assert_eq!(run(&mut p, &input), expected);
    }

    #[test]
    fn inspect_sees_and_passes_everything(input in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut seen = Vec::new();
        let out = run(&mut inspect(|x: &u8| seen.push(*x)), &input);
        prop_assert_eq!(&out, &input);
        prop_assert_eq!(&seen, &input);
    }

    #[test]
    fn stateful_matches_model(input in ticks()) {
        let mut p = stateful(
            |t: &Tick| t.instrument,
            |t: &Tick| (u64::from(t.price), 1u32),
            |s: &mut (u64, u32), t: &Tick| { s.0 += u64::from(t.price); s.1 += 1 },
        );
        let expected = model_stateful(
            &input,
            |t| t.instrument,
            |t| (u64::from(t.price), 1u32),
            |s, t| { s.0 += u64::from(t.price); s.1 += 1 },
        );
        prop_assert_eq!(run(&mut p, &input), expected);
    }

    #[test]
    fn delta_matches_model(input in ticks()) {
        let f = |c: Tick, p: Option<Tick>| match p {
            None => Some(i64::from(c.price) * 100),
            Some(p) if p.price != c.price => Some(i64::from(c.price) - i64::from(p.price)),
            Some(_) => None,
        };
        let mut p = delta(|t: &Tick| t.instrument, f);
        prop_assert_eq!(run(&mut p, &input), model_delta(&input, |t| t.instrument, f));
    }

    #[test]
    fn dedup_by_matches_model(input in ticks()) {
        let mut p = dedup_by(|t: &Tick| t.instrument);
        prop_assert_eq!(run(&mut p, &input), model_dedup(&input, |t| t.instrument));
    }

    #[test]
    fn typed_chain_matches_model(input in ticks()) {
        let mut p = pipe![
            dedup_by(|t: &Tick| t.instrument),
            delta(|t: &Tick| t.instrument, |c: Tick, p: Option<Tick>| {
                p.map(|p| (c.instrument, i64::from(c.price) - i64::from(p.price)))
            }),
            stateful(|d: &(u32, i64)| d.0, |d: &(u32, i64)| d.1, |s: &mut i64, d: &(u32, i64)| *s += d.1),
        ];
        let deduped = model_dedup(&input, |t| t.instrument);
        let deltas = model_delta(&deduped, |t| t.instrument, |c, p| {
            p.map(|p| (c.instrument, i64::from(c.price) - i64::from(p.price)))
        });
        let expected = model_stateful(&deltas, |d| d.0, |d| d.1, |s, d| *s += d.1);
        prop_assert_eq!(run(&mut p, &input), expected);
    }

    #[test]
    fn random_three_pipe_chains_match_sequential_model(
        ops in [op(), op(), op()],
        input in prop::collection::vec(0u64..20, 0..64),
    ) {
        let mut p = pipe![build(ops[0]), build(ops[1]), build(ops[2])];
        let expected = model(ops[2], &model(ops[1], &model(ops[0], &input)));
        prop_assert_eq!(run_fn(&mut p, &input), expected);
    }
}

//! proptest: a pipeline of 1 to 3 random stages gives exactly what the same stages
//! applied sequentially to the inputs give.

use proptest::prelude::*;
use roda_engine::StageEngine;
use roda_pipe::{delta, filter, map, stateful};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Map,
    Filter,
    RunningSum,
    Delta,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Map),
        Just(Kind::Filter),
        Just(Kind::RunningSum),
        Just(Kind::Delta)
    ]
}

fn model(kind: Kind, input: &[u64]) -> Vec<u64> {
    match kind {
        Kind::Map => input.iter().map(|x| x.wrapping_mul(3) + 1).collect(),
        Kind::Filter => input.iter().copied().filter(|x| x % 3 != 0).collect(),
        Kind::RunningSum => {
            let mut sums: HashMap<u64, u64> = HashMap::new();
            input
                .iter()
                .map(|x| {
                    let s = sums.entry(x % 5).or_insert(0);
                    *s = s.wrapping_add(*x);
                    *s
                })
                .collect()
        }
        Kind::Delta => {
            let mut prev: HashMap<u64, u64> = HashMap::new();
            input
                .iter()
                .filter_map(|x| {
                    let out = prev.get(&(x % 4)).map(|p| x.wrapping_sub(*p));
                    prev.insert(x % 4, *x);
                    out
                })
                .collect()
        }
    }
}

fn add(engine: StageEngine<u64, u64>, kind: Kind) -> StageEngine<u64, u64> {
    match kind {
        Kind::Map => engine.add_stage(map(|x: &u64| x.wrapping_mul(3) + 1)),
        Kind::Filter => engine.add_stage(filter(|x: &u64| x % 3 != 0)),
        Kind::RunningSum => engine.add_stage(stateful(
            |x: &u64| x % 5,
            |x: &u64| *x,
            |s: &mut u64, x: &u64| *s = s.wrapping_add(*x),
        )),
        Kind::Delta => engine.add_stage(delta(
            |x: &u64| x % 4,
            |curr: u64, prev: Option<u64>| prev.map(|p| curr.wrapping_sub(p)),
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_equals_sequential_model(
        input in proptest::collection::vec(any::<u64>(), 0..300),
        kinds in proptest::collection::vec(kind(), 1..=3),
    ) {
        let mut engine = StageEngine::<u64, u64>::with_capacity(input.len().max(1));
        for k in &kinds {
            engine = add(engine, *k);
        }
        for x in &input {
            engine.send(x);
        }
        prop_assert!(engine.await_idle(Duration::from_secs(30)));
        let got: Vec<u64> = std::iter::from_fn(|| engine.try_receive()).collect();
        let expected = kinds.iter().fold(input.clone(), |acc, k| model(*k, &acc));
        prop_assert_eq!(got, expected);
        engine.shutdown().unwrap();
    }
}

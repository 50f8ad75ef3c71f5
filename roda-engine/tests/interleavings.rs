//! proptest: random interleavings of `send`, `try_send`, `try_receive`, `receive` and
//! `await_idle` on a `with_capacity` pipeline with tiny rings (4 × 1 and 4 × 4 records),
//! so that rings wrap, `send` waits for room, and the elastic output grows, reuses and
//! gives back segments of a ring segment's size thousands of times over the run. The
//! model is a queue of the outputs the stages must produce; the sender never leaves
//! more than the capacity not received, so the pipeline must never fail.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use roda_core::RodaError;
use roda_engine::StageEngine;
use roda_pipe::{filter, map};

#[derive(Clone, Copy, Debug)]
enum Op {
    Send(u8),
    TrySend(u8),
    TryReceive(u8),
    Receive(u8),
    AwaitIdle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Send),
        2 => (1u8..40).prop_map(Op::TrySend),
        3 => (1u8..40).prop_map(Op::TryReceive),
        3 => (1u8..40).prop_map(Op::Receive),
        1 => Just(Op::AwaitIdle),
    ]
}

const LONG: Duration = Duration::from_secs(30);

/// The stages' output for input `x`, if any: map, then filter.
fn model(x: u64) -> Option<u64> {
    let y = x.wrapping_mul(3) + 1;
    (y % 4 != 0).then_some(y)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn interleavings_match_the_model(
        capacity in 1usize..40,
        ring in prop_oneof![Just(4usize), Just(16usize)],
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut engine = StageEngine::<u64, u64>::with_capacity_and_rings(capacity, ring)
            .add_stage(map(|x: &u64| x.wrapping_mul(3) + 1))
            .add_stage(filter(|y: &u64| y % 4 != 0));
        let mut expected: VecDeque<u64> = VecDeque::new();
        let mut next = 0u64;
        // Whether the next input may be sent without more than `capacity` outputs not
        // received (counting it).
        let fits = |expected: &VecDeque<u64>, x: u64| {
            expected.len() + usize::from(model(x).is_some()) <= capacity
        };
        for op in ops {
            match op {
                Op::Send(n) => {
                    for _ in 0..n {
                        if !fits(&expected, next) {
                            break;
                        }
                        prop_assert_eq!(engine.send(&next), next);
                        expected.extend(model(next));
                        next += 1;
                    }
                }
                Op::TrySend(n) => {
                    for _ in 0..n {
                        if !fits(&expected, next) {
                            break;
                        }
                        match engine.try_send(&next) {
                            Ok(seq) => {
                                prop_assert_eq!(seq, next);
                                expected.extend(model(next));
                                next += 1;
                            }
                            Err(RodaError::WouldBlock { .. }) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                Op::TryReceive(n) => {
                    for _ in 0..n {
                        match engine.try_receive() {
                            Some(y) => prop_assert_eq!(Some(y), expected.pop_front()),
                            None => break,
                        }
                    }
                }
                Op::Receive(n) => {
                    for _ in 0..n {
                        if expected.is_empty() {
                            break;
                        }
                        prop_assert_eq!(Some(engine.receive()), expected.pop_front());
                    }
                }
                Op::AwaitIdle => {
                    prop_assert!(engine.await_idle(LONG));
                    // Idle: every output is published.
                    prop_assert_eq!(engine.try_receive(), expected.pop_front());
                }
            }
            let m = engine.metrics();
            prop_assert!(m[1].output_len <= capacity as u64);
            prop_assert!(m[1].output_high_water <= capacity as u64);
        }
        while let Some(y) = expected.pop_front() {
            prop_assert_eq!(engine.receive(), y);
        }
        prop_assert!(engine.await_idle(LONG));
        prop_assert_eq!(engine.try_receive(), None);
        prop_assert_eq!(engine.sent(), next);
        engine.shutdown().unwrap();
    }
}

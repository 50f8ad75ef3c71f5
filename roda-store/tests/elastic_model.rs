//! proptest: the elastic journal against a queue model. Random appends (single and
//! batched), reads (single and batched) and reader replacements on tiny segments, so
//! the journal grows, reuses and gives back segments thousands of times; every read
//! must match the model, appends must fail exactly when `limit` records are not
//! received, and the counters must agree with the model.
#![cfg(not(roda_loom))]

use std::collections::VecDeque;

use proptest::prelude::*;
use roda_store::{ElasticJournal, RodaError};

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Batch(u8),
    Read(u8),
    ReadBatch(u8),
    NewReader,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Append),
        2 => (1u8..20).prop_map(Op::Batch),
        4 => (1u8..20).prop_map(Op::Read),
        2 => (1u8..20).prop_map(Op::ReadBatch),
        1 => Just(Op::NewReader),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn elastic_journal_matches_a_queue(
        segment_records in 1usize..6,
        limit in 1usize..40,
        base in 1usize..4,
        give_back_after in 0u64..4,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut journal = ElasticJournal::<u64>::options()
            .base_segments(base)
            .give_back_after(give_back_after)
            .in_memory(segment_records, limit)
            .unwrap();
        let mut reader = journal.reader().unwrap();
        let slots = (limit - 1) / segment_records + 2;
        let mut model: VecDeque<u64> = VecDeque::new();
        let (mut next, mut received, mut high_water) = (0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Append(n) => {
                    for _ in 0..n {
                        match journal.try_append(&next) {
                            Ok(seq) => {
                                prop_assert!(model.len() < limit);
                                prop_assert_eq!(seq, next);
                                model.push_back(next);
                                next += 1;
                                high_water = high_water.max(model.len() as u64);
                            }
                            Err(RodaError::Full { capacity }) => {
                                prop_assert_eq!(capacity, limit);
                                prop_assert_eq!(model.len(), limit);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                Op::Batch(n) => {
                    let mut batch = journal.batch();
                    let mut pushed = 0;
                    for _ in 0..n {
                        match batch.try_push(&next) {
                            Ok(seq) => {
                                prop_assert_eq!(seq, next);
                                model.push_back(next);
                                next += 1;
                                pushed += 1;
                            }
                            Err(RodaError::Full { .. }) => prop_assert_eq!(model.len(), limit),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    drop(batch);
                    if pushed > 0 {
                        high_water = high_water.max(model.len() as u64);
                    }
                }
                Op::Read(n) => {
                    for _ in 0..n {
                        prop_assert_eq!(reader.next().copied(), model.pop_front());
                        received = reader.get_index();
                    }
                }
                Op::ReadBatch(n) => {
                    let batch = reader.next_batch(n as usize).to_vec();
                    prop_assert!(batch.len() <= n as usize);
                    prop_assert!(batch.len() <= segment_records);
                    prop_assert_eq!(batch.is_empty(), model.is_empty());
                    for x in batch {
                        prop_assert_eq!(Some(x), model.pop_front());
                    }
                    received = reader.get_index();
                }
                Op::NewReader => {
                    drop(reader);
                    reader = journal.reader().unwrap();
                    prop_assert_eq!(reader.get_index(), received);
                }
            }
            let watch = journal.watch();
            prop_assert_eq!(watch.backlog(), model.len() as u64);
            prop_assert_eq!(reader.available(), model.len() as u64);
            prop_assert_eq!(watch.high_water(), high_water);
            prop_assert!(journal.segments_held() <= slots.max(base));
            prop_assert_eq!(watch.segments_held(), journal.segments_held());
        }
    }
}

//! proptest: random sequences of journal operations against a `Vec<T>` model,
//! including dropping and reopening the file-backed journal.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use proptest::prelude::*;
use roda_store::{JournalReader, JournalStore, RodaError};

const CAPACITY: usize = 64;

#[derive(Clone, Debug)]
enum Op {
    Append(u64),
    TryAppend(u64),
    AppendSlice(Vec<u64>),
    Next,
    NextBatch(usize),
    Seek(u64),
    GetAt(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Append),
        2 => any::<u64>().prop_map(Op::TryAppend),
        2 => proptest::collection::vec(any::<u64>(), 0..12).prop_map(Op::AppendSlice),
        4 => Just(Op::Next),
        2 => (0usize..20).prop_map(Op::NextBatch),
        1 => (0u64..80).prop_map(Op::Seek),
        2 => (0u64..80).prop_map(Op::GetAt),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_vec_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.roda");
        let mut journal = JournalStore::<u64>::create(&path, CAPACITY).unwrap();
        let mut reader = journal.reader();
        // A follower through its own read-only mapping, kept at the same cursor.
        let mut follower = JournalReader::<u64>::open(&path).unwrap();
        let mut model: Vec<u64> = Vec::new();
        let mut cursor: u64 = 0;
        let mut fcursor: u64 = 0;

        for op in ops {
            match op {
                Op::Append(v) => {
                    if model.len() < CAPACITY {
                        prop_assert_eq!(journal.append(&v), model.len() as u64);
                        model.push(v);
                    }
                }
                Op::TryAppend(v) => match journal.try_append(&v) {
                    Ok(seq) => {
                        prop_assert_eq!(seq, model.len() as u64);
                        model.push(v);
                    }
                    Err(RodaError::Full { capacity }) => {
                        prop_assert_eq!(capacity, CAPACITY);
                        prop_assert_eq!(model.len(), CAPACITY);
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                Op::AppendSlice(vs) => match journal.try_append_slice(&vs) {
                    Ok(range) => {
                        prop_assert_eq!(range, model.len() as u64..(model.len() + vs.len()) as u64);
                        model.extend_from_slice(&vs);
                    }
                    Err(RodaError::Full { .. }) => prop_assert!(model.len() + vs.len() > CAPACITY),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                Op::Next => {
                    for (r, c) in [(&mut reader, &mut cursor), (&mut follower, &mut fcursor)] {
                        let expected = model.get(*c as usize).copied();
                        prop_assert_eq!(r.next().copied(), expected);
                        if expected.is_some() {
                            *c += 1;
                        }
                    }
                }
                Op::NextBatch(max) => {
                    for (r, c) in [(&mut reader, &mut cursor), (&mut follower, &mut fcursor)] {
                        let start = (*c as usize).min(model.len());
                        let end = (start + max).min(model.len());
                        let available = if (*c as usize) < model.len() { &model[start..end] } else { &[][..] };
                        // A batch is a non-empty prefix of what is available (a short
                        // read is allowed), and empty only when nothing is.
                        let got = r.next_batch(max);
                        prop_assert!(got.len() <= available.len());
                        prop_assert_eq!(got.is_empty(), available.is_empty());
                        prop_assert_eq!(got, &available[..got.len()]);
                        *c += got.len() as u64;
                    }
                }
                Op::Seek(s) => {
                    reader.seek(s);
                    follower.seek(s);
                    cursor = s;
                    fcursor = s;
                }
                Op::GetAt(s) => {
                    let expected = model.get(s as usize).copied();
                    prop_assert_eq!(reader.get_at(s).copied(), expected);
                    prop_assert_eq!(follower.get_at(s).copied(), expected);
                }
                Op::Reopen => {
                    drop(journal);
                    journal = JournalStore::<u64>::open(&path).unwrap();
                    let mut fresh = journal.reader();
                    fresh.seek(cursor);
                    reader = fresh;
                }
            }
            // Invariants after every step.
            let expected_get = cursor.checked_sub(1).and_then(|s| model.get(s as usize)).copied();
            prop_assert_eq!(reader.get().copied(), expected_get);
            prop_assert_eq!(reader.get_index(), cursor);
            prop_assert_eq!(follower.get_index(), fcursor);
            prop_assert_eq!(journal.len(), model.len());
            prop_assert_eq!(journal.remaining(), CAPACITY - model.len());
            prop_assert_eq!(reader.published(), model.len() as u64);
            prop_assert_eq!(follower.published(), model.len() as u64);
            prop_assert_eq!(reader.available(), (model.len() as u64).saturating_sub(cursor));
        }
    }
}

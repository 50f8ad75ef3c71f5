//! proptest: random sequences of slot store operations against an array model
//! (value and version per slot), including dropping and reopening the file.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use proptest::prelude::*;
use roda_store::{RodaError, SlotReader, SlotStore};

const SLOTS: usize = 16;

/// A 20-byte record: its size is not a multiple of 8, so the padded tail word is used.
type Rec = [u32; 5];

#[derive(Clone, Debug)]
enum Op {
    Set(usize, Rec),
    TrySet(usize, Rec),
    Get(usize),
    Version(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    // Indices reach past the end so out-of-range paths are exercised.
    let index = 0usize..SLOTS + 3;
    prop_oneof![
        4 => (0usize..SLOTS, any::<Rec>()).prop_map(|(i, v)| Op::Set(i, v)),
        2 => (index.clone(), any::<Rec>()).prop_map(|(i, v)| Op::TrySet(i, v)),
        4 => index.clone().prop_map(Op::Get),
        2 => index.prop_map(Op::Version),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn slots_match_array_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.roda");
        let mut store = SlotStore::<Rec>::create(&path, SLOTS).unwrap();
        let mut reader = store.reader();
        // A follower through its own read-only mapping.
        let mut follower = SlotReader::<Rec>::open(&path).unwrap();
        let mut model: [(Option<Rec>, u64); SLOTS] = [(None, 0); SLOTS];

        for op in ops {
            match op {
                Op::Set(i, v) => {
                    store.set(i, &v);
                    model[i] = (Some(v), model[i].1 + 1);
                }
                Op::TrySet(i, v) => match store.try_set(i, &v) {
                    Ok(()) => {
                        prop_assert!(i < SLOTS);
                        model[i] = (Some(v), model[i].1 + 1);
                    }
                    Err(RodaError::OutOfRange { index, len }) => {
                        prop_assert!(i >= SLOTS);
                        prop_assert_eq!((index, len), (i, SLOTS));
                    }
                    Err(e) => prop_assert!(false, "unexpected error {}", e),
                },
                Op::Get(i) => {
                    let expected = model.get(i).and_then(|m| m.0);
                    prop_assert_eq!(reader.get(i), expected);
                    prop_assert_eq!(follower.get(i), expected);
                }
                Op::Version(i) => {
                    let expected = model.get(i).map_or(0, |m| m.1);
                    prop_assert_eq!(reader.version(i), expected);
                    prop_assert_eq!(follower.version(i), expected);
                    prop_assert!(!follower.is_torn(i));
                }
                Op::Reopen => {
                    drop(store);
                    store = SlotStore::<Rec>::open(&path).unwrap();
                    prop_assert!(store.torn_slots().is_empty());
                    prop_assert_eq!(store.len(), SLOTS);
                    reader = store.reader();
                    follower = SlotReader::<Rec>::open(&path).unwrap();
                }
            }
        }
        // Everything agrees at the end, through a fresh reader too.
        drop(store);
        let last = SlotReader::<Rec>::open(&path).unwrap();
        for (i, (value, version)) in model.iter().enumerate() {
            prop_assert_eq!(last.get(i), *value);
            prop_assert_eq!(last.version(i), *version);
        }
    }
}

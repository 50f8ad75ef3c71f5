//! proptest: random appends, reads, batches, seeks and reader swaps on a segmented
//! journal against a model of its sequence space, its gate and its retention window.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use proptest::prelude::*;
use roda_store::{RodaError, SegmentedJournal};

const S: u64 = 4;
const N: u64 = 3;

#[derive(Clone, Debug)]
enum Op {
    Append(u64),
    AppendSlice(Vec<u64>),
    Next,
    NextBatch(usize),
    Seek(u64),
    NewReader,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => any::<u64>().prop_map(Op::Append),
        1 => proptest::collection::vec(any::<u64>(), 0..7).prop_map(Op::AppendSlice),
        4 => Just(Op::Next),
        2 => (0usize..9).prop_map(Op::NextBatch),
        1 => (0u64..60).prop_map(Op::Seek),
        1 => Just(Op::NewReader),
    ]
}

/// The model: every value ever appended, the reader's cursor and the segment it protects.
struct Model {
    values: Vec<u64>,
    cursor: u64,
    gate: u64,
}

impl Model {
    fn blocked(&self) -> bool {
        let w = self.values.len() as u64;
        w % S == 0 && w >= N * S && self.gate < w - N * S + S
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn segmented_journal_matches_model(ops in proptest::collection::vec(op(), 1..150)) {
        let mut journal = SegmentedJournal::<u64>::in_memory(S as usize, N as usize).unwrap();
        let mut reader = journal.reader();
        let mut m = Model { values: Vec::new(), cursor: 0, gate: 0 };
        for op in ops {
            match op {
                Op::Append(v) => match journal.try_append(&v) {
                    Ok(seq) => {
                        prop_assert!(!m.blocked());
                        prop_assert_eq!(seq, m.values.len() as u64);
                        m.values.push(v);
                    }
                    Err(RodaError::WouldBlock { .. }) => prop_assert!(m.blocked()),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                Op::AppendSlice(vs) => {
                    let mut fit = 0;
                    for v in &vs {
                        if m.blocked() {
                            break;
                        }
                        m.values.push(*v);
                        fit += 1;
                    }
                    let start = m.values.len() as u64 - fit;
                    match journal.try_append_slice(&vs) {
                        Ok(range) => prop_assert_eq!(range, start..start + fit),
                        Err(RodaError::WouldBlock { .. }) => prop_assert_eq!(fit, 0),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::Next => {
                    let expected = m.values.get(m.cursor as usize).copied();
                    prop_assert_eq!(reader.next().copied(), expected);
                    if expected.is_some() {
                        m.gate = m.cursor - m.cursor % S;
                        m.cursor += 1;
                    }
                }
                Op::NextBatch(max) => {
                    let c = m.cursor;
                    let end = (m.values.len() as u64).min(c - c % S + S).min(c + max as u64);
                    let got = reader.next_batch(max).to_vec();
                    if end > c {
                        // A non-empty prefix: a short batch (what the reader already knew
                        // was published) is allowed.
                        prop_assert!(!got.is_empty() && got.len() as u64 <= end - c);
                        prop_assert_eq!(&got[..], &m.values[c as usize..c as usize + got.len()]);
                        m.gate = c - c % S;
                        m.cursor = c + got.len() as u64;
                    } else {
                        prop_assert!(got.is_empty());
                    }
                }
                Op::Seek(s) => match reader.seek(s) {
                    Ok(()) => {
                        prop_assert!(s >= m.gate);
                        m.cursor = s;
                    }
                    Err(RodaError::Lagged { missed }) => {
                        prop_assert!(s < m.gate);
                        prop_assert_eq!(missed, m.gate - s);
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                },
                Op::NewReader => {
                    drop(reader);
                    reader = journal.reader();
                    let w = m.values.len() as u64;
                    let cur = w - w % S;
                    let oldest = (cur + S).saturating_sub(N * S);
                    m.cursor = oldest;
                    m.gate = oldest;
                    prop_assert_eq!(reader.get_index(), oldest);
                }
            }
            prop_assert_eq!(journal.len(), m.values.len() as u64);
            prop_assert_eq!(reader.published(), m.values.len() as u64);
            prop_assert_eq!(reader.get_index(), m.cursor);
        }
    }
}

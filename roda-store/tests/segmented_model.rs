//! proptest: random appends, reads, batches, seeks and reader swaps on a segmented
//! journal against a model of its sequence space, its gate and its retention window.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use proptest::prelude::*;
use roda_store::{Retention, RodaError, SegmentedFollower, SegmentedJournal};

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
                        // A seek into a later segment releases the ones it skips.
                        if s - m.gate >= S {
                            m.gate = s - s % S;
                        }
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

// ---- File-backed: retention, reopen, followers (in-process and from the directory) ----

#[derive(Clone, Debug)]
enum FileOp {
    Append(u64),
    AppendSlice(Vec<u64>),
    Next { dir: bool },
    NextBatch { dir: bool, max: usize },
    Seek { dir: bool, to: u64 },
    SeekToOldest { dir: bool },
    Reopen,
}

fn file_op() -> impl Strategy<Value = FileOp> {
    prop_oneof![
        8 => any::<u64>().prop_map(FileOp::Append),
        1 => proptest::collection::vec(any::<u64>(), 0..9).prop_map(FileOp::AppendSlice),
        3 => any::<bool>().prop_map(|dir| FileOp::Next { dir }),
        2 => (any::<bool>(), 0usize..7).prop_map(|(dir, max)| FileOp::NextBatch { dir, max }),
        1 => (any::<bool>(), 0u64..80).prop_map(|(dir, to)| FileOp::Seek { dir, to }),
        1 => any::<bool>().prop_map(|dir| FileOp::SeekToOldest { dir }),
        1 => Just(FileOp::Reopen),
    ]
}

/// A follower's model: its cursor and the sequence below which it learnt (from a read
/// that found its segment reused) that records are gone.
#[derive(Default)]
struct FollowerModel {
    cursor: u64,
    lost_below: u64,
}

/// The first sequence of the segment the writer is in (the last one holding data).
fn newest_first(len: u64) -> u64 {
    len.saturating_sub(1) / S * S
}

/// The oldest record whose segment still holds it, with `mapped` segments.
fn physical_oldest(len: u64, mapped: u64) -> u64 {
    (newest_first(len) + S).saturating_sub(mapped * S)
}

/// `SegmentedJournal::oldest_retained` of the writer's process.
fn in_process_oldest(len: u64, retained: u64) -> u64 {
    (len / S * S + S).saturating_sub(retained * S)
}

fn check_file_model(retention: Retention, ops: Vec<FileOp>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    // Segments mapped in the writer's process, and those of them it retains (reports
    // by `oldest_retained`): a `KeepAll` journal maps one slot more, for the next
    // segment's file (here, with no pre-toucher, it keeps the archived segment until
    // the roll, and a follower may still read it).
    let (mapped, retained) = match retention {
        Retention::KeepLast(k) => (k as u64, k as u64),
        Retention::KeepAll => (5, 4),
    };
    let mut journal = SegmentedJournal::<u64>::create(&dir, S as usize, retention).unwrap();
    let mut local = journal.follower();
    let mut remote = SegmentedFollower::<u64>::open(&dir).unwrap();
    let mut values: Vec<u64> = Vec::new();
    let mut models = [FollowerModel::default(), FollowerModel::default()];
    for op in ops {
        let len = values.len() as u64;
        // What each follower can read: the writer's mapped window in process; on disk
        // the same window for KeepLast, everything for KeepAll.
        let kept = |dir: bool| match (dir, retention) {
            (true, Retention::KeepAll) => 0,
            _ => physical_oldest(len, mapped),
        };
        let oldest = |dir: bool| match (dir, retention) {
            (true, _) => kept(true),
            (false, _) => in_process_oldest(len, retained),
        };
        match op {
            FileOp::Append(v) => {
                prop_assert_eq!(journal.try_append(&v).unwrap(), len);
                values.push(v);
            }
            FileOp::AppendSlice(vs) => {
                let range = journal.try_append_slice(&vs).unwrap();
                prop_assert_eq!(range, len..len + vs.len() as u64);
                values.extend_from_slice(&vs);
            }
            FileOp::Next { dir } => {
                let m = &mut models[dir as usize];
                let got = if dir { remote.next() } else { local.next() };
                let c = m.cursor;
                if c >= len {
                    prop_assert_eq!(got.unwrap(), None);
                } else if c >= kept(dir) {
                    prop_assert_eq!(got.unwrap(), Some(values[c as usize]));
                    m.cursor += 1;
                } else {
                    m.lost_below = m.lost_below.max(c - c % S + S);
                    let expected = oldest(dir).max(m.lost_below) - c;
                    match got {
                        Err(RodaError::Lagged { missed }) => prop_assert_eq!(missed, expected),
                        other => return Err(TestCaseError::fail(format!("{other:?} at {c}"))),
                    }
                }
            }
            FileOp::NextBatch { dir, max } => {
                let m = &mut models[dir as usize];
                let mut out = vec![0u64; max];
                let got = if dir {
                    remote.next_batch(&mut out)
                } else {
                    local.next_batch(&mut out)
                };
                let c = m.cursor;
                let end = len.min(c - c % S + S).min(c + max as u64);
                if end <= c {
                    prop_assert_eq!(got.unwrap(), 0);
                } else if c >= kept(dir) {
                    let n = got.unwrap();
                    // The in-process follower may hand out a short batch (what it
                    // already knew was published); the directory one reads the count.
                    prop_assert!(n > 0 && n as u64 <= end - c);
                    if dir {
                        prop_assert_eq!(n as u64, end - c);
                    }
                    prop_assert_eq!(&out[..n], &values[c as usize..c as usize + n]);
                    m.cursor += n as u64;
                } else {
                    m.lost_below = m.lost_below.max(c - c % S + S);
                    prop_assert!(matches!(got, Err(RodaError::Lagged { .. })), "{:?}", got);
                }
            }
            FileOp::Seek { dir, to } => {
                if dir {
                    remote.seek(to)
                } else {
                    local.seek(to)
                }
                models[dir as usize].cursor = to;
            }
            FileOp::SeekToOldest { dir } => {
                let m = &mut models[dir as usize];
                let got = if dir {
                    remote.seek_to_oldest()
                } else {
                    local.seek_to_oldest()
                };
                prop_assert_eq!(got, oldest(dir).max(m.lost_below));
                m.cursor = got;
            }
            FileOp::Reopen => {
                drop(journal);
                journal = SegmentedJournal::<u64>::open(&dir).unwrap();
                prop_assert_eq!(journal.len(), len);
                local = journal.follower();
                models[0] = FollowerModel {
                    cursor: in_process_oldest(len, retained).max(physical_oldest(len, mapped)),
                    lost_below: 0,
                };
            }
        }
        let len = values.len() as u64;
        prop_assert_eq!(journal.len(), len);
        prop_assert_eq!(local.published(), len);
        prop_assert_eq!(remote.published(), len);
        prop_assert_eq!(local.position(), models[0].cursor);
        prop_assert_eq!(remote.position(), models[1].cursor);
        prop_assert_eq!(journal.oldest_retained(), in_process_oldest(len, retained));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn file_backed_keep_last_matches_model(ops in proptest::collection::vec(file_op(), 1..120)) {
        check_file_model(Retention::KeepLast(N as usize), ops)?;
    }

    #[test]
    fn file_backed_keep_all_matches_model(ops in proptest::collection::vec(file_op(), 1..120)) {
        check_file_model(Retention::KeepAll, ops)?;
    }
}

//! The counters file: the layout a pipeline's sampler writes and [`CountersFile`], which
//! reads it (from any process) for tools such as `roda top` and `roda metrics`.
//!
//! A counters file is a slot store file (`SlotStore<[u64; 32]>`, 256-byte slots) with
//! its own schema id, [`COUNTERS_SCHEMA`], and [`COUNTERS_SLOTS`] slots:
//!
//! * slot 0, the header: who writes the file and how often;
//! * slot `i` (1 to the number of stages): stage `i`'s counters, written as a whole by
//!   one seqlocked `set`, so a reader never sees a torn mix of two samples;
//! * the slots after the stages: a `RodaEngine`'s workers (`RodaEngine::metrics_file`),
//!   at most [`MAX_STAGES`] stages and workers together.
//!
//! Every value is a native-endian `u64` word:
//!
//! | word | header slot | stage slot | worker slot |
//! |---|---|---|---|
//! | 0 | kind: 1 | kind: 2 (0: none) | kind: 3 |
//! | 1 | layout version: 1 | stage number (1, 2, ...) | worker number (1, 2, ...) |
//! | 2 | writer's pid | processed | busy steps |
//! | 3 | start time, Unix ns | emitted | idle steps |
//! | 4 | stages | input lag | reserved (0) |
//! | 5 | sampling interval, ns | output length (`u64::MAX`: unknown) | reserved |
//! | 6 | samples written | output capacity | reserved |
//! | 7 | last sample time, Unix ns | ns seen waiting for room (sampled) | reserved |
//! | 8 | 1 after the final sample (shutdown) | flags: bit 0 panicked, bit 1 waiting for room | reserved |
//! | 9 | workers | busy steps of the stage's thread | reserved |
//! | 10 | reserved (0) | idle steps of the stage's thread | reserved |
//! | 11 | reserved (0) | wake-ups: sleeps on the input's wake word | reserved (0) |
//! | 12..15 | reserved (0) | reserved (0) | reserved (0) |
//! | 15 | name length in bytes | name length in bytes | name length in bytes |
//! | 16..32 | pipeline name, UTF-8, up to 128 bytes | stage name | worker name |
//!
//! Later fields take reserved words, which every writer leaves 0, so layout version 1
//! stays readable both ways: a stage slot's word 11 (wake-ups) reads 0 from files
//! written before it was added. A change that moves or reinterprets a word bumps the
//! layout version.
//!
//! Liveness comes from the slot store itself: its writer holds a liveness lock while the
//! file is open for writing (`StoreFile::writer_alive` tests it without taking it), and
//! the header's finished flag says whether it closed cleanly, so a reader tells a
//! running pipeline, one that stopped cleanly, and one whose process died.

use std::path::Path;
use std::time::Duration;

use roda_core::{Result, RodaError};
use roda_store::{SlotSnapshot, StoreFile, StoreKind};

/// The schema id of counters files ("RODACTR1" in ASCII, read as a big-endian number).
pub const COUNTERS_SCHEMA: u64 = 0x524F_4441_4354_5231;
/// Words per slot.
pub(crate) const WORDS: usize = 32;
/// The most stages a counters file holds; a pipeline with more reports its first
/// `MAX_STAGES` stages.
pub const MAX_STAGES: usize = 63;
/// Slots of a counters file: the header and [`MAX_STAGES`] stages.
pub const COUNTERS_SLOTS: usize = MAX_STAGES + 1;
/// The layout version in the header slot.
pub(crate) const LAYOUT_VERSION: u64 = 1;
/// Longest name stored, in bytes (longer names are cut at a character boundary).
pub const MAX_NAME_BYTES: usize = 128;

/// One slot's words.
pub(crate) type Slot = [u64; WORDS];

pub(crate) const KIND_HEADER: u64 = 1;
pub(crate) const KIND_STAGE: u64 = 2;
pub(crate) const KIND_WORKER: u64 = 3;
const NAME_LEN: usize = 15;
const NAME_AT: usize = 16;
pub(crate) const FLAG_PANICKED: u64 = 1;
pub(crate) const FLAG_WAITING: u64 = 2;
/// Output length word when the sampler cannot know it.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// Stores `name` (cut to [`MAX_NAME_BYTES`] at a character boundary) in `slot`.
pub(crate) fn put_name(slot: &mut Slot, name: &str) {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; MAX_NAME_BYTES];
    bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        slot[NAME_AT + i] = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    slot[NAME_LEN] = end as u64;
}

fn get_name(slot: &Slot) -> String {
    let mut bytes = Vec::with_capacity(MAX_NAME_BYTES);
    for word in &slot[NAME_AT..] {
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    bytes.truncate((slot[NAME_LEN] as usize).min(MAX_NAME_BYTES));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A pipeline's counters file, opened read-only (usually from another process than the
/// pipeline's). Takes no lock and never disturbs the writer.
///
/// ```
/// use roda_engine::{CountersFile, StageEngine};
/// use roda_pipe::map;
///
/// # fn main() -> roda_core::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pipeline.counters");
/// let mut engine = StageEngine::<u64, u64>::with_capacity(1_000)
///     .name("doubler")
///     .metrics_file(&path)
///     .add_stage(map(|x: &u64| x * 2))
///     .stage_name("double");
/// for i in 0..100 {
///     engine.send(&i);
/// }
/// assert!(engine.await_idle(std::time::Duration::from_secs(10)));
/// engine.shutdown()?;
///
/// let snapshot = CountersFile::open(&path)?.snapshot()?;
/// assert_eq!(snapshot.name, "doubler");
/// assert!(snapshot.finished);
/// assert_eq!(snapshot.stages[0].name, "double");
/// assert_eq!(snapshot.stages[0].processed, 100);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CountersFile {
    file: StoreFile,
}

/// What a counters file said at one moment.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PipelineSnapshot {
    /// The pipeline's name (`StageEngine::name`; "pipeline" by default).
    pub name: String,
    /// The pid of the process that runs (or ran) the pipeline.
    pub pid: u32,
    /// When the pipeline started writing the file, Unix nanoseconds.
    pub started_unix_nanos: u64,
    /// Time between two samples.
    #[cfg_attr(feature = "serde", serde(serialize_with = "as_seconds"))]
    pub sample_interval: Duration,
    /// Samples written so far.
    pub samples: u64,
    /// When the last sample was written, Unix nanoseconds.
    pub last_sample_unix_nanos: u64,
    /// Whether the pipeline shut down and wrote its final sample.
    pub finished: bool,
    /// Whether the writing process still runs (the slot store's writer liveness lock is
    /// held; it goes away with the process, however it ends).
    pub writer_alive: bool,
    /// Every stage, first to last.
    pub stages: Vec<StageSnapshot>,
    /// A `RodaEngine`'s workers, in the order they started (none for a `StageEngine`,
    /// whose stages report their threads' steps themselves).
    pub workers: Vec<WorkerSnapshot>,
}

/// One `RodaEngine` worker in a counters file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WorkerSnapshot {
    /// The worker's name (its thread's name).
    pub name: String,
    /// Steps of its closure that did work.
    pub busy_iterations: u64,
    /// Steps of its closure that found nothing to do.
    pub idle_iterations: u64,
}

/// One stage's counters in a counters file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StageSnapshot {
    /// The stage's name ("stage N" unless named).
    pub name: String,
    /// Inputs consumed (processed, and their outputs published).
    pub processed: u64,
    /// Outputs produced.
    pub emitted: u64,
    /// Inputs published to the stage but not yet consumed.
    pub input_lag: u64,
    /// Records in the stage's output journal; `None` when the sampler cannot know it
    /// (the last journal of a bounded pipeline between samples: only its receiver knows
    /// its read position).
    pub output_len: Option<u64>,
    /// The output journal's capacity (or ring size).
    pub output_capacity: u64,
    /// Whether the stage was waiting for room in its output journal at the sample
    /// (back-pressure from the next stage).
    pub waiting_for_room: bool,
    /// Whether the stage panicked.
    pub panicked: bool,
    /// Time the stage was seen waiting for room, measured by sampling: each sample that
    /// finds it waiting adds one sampling interval.
    #[cfg_attr(feature = "serde", serde(serialize_with = "as_seconds"))]
    pub room_wait: Duration,
    /// Steps of the stage's thread that processed a batch.
    pub busy_iterations: u64,
    /// Steps of the stage's thread that found no input.
    pub idle_iterations: u64,
    /// Times the stage slept on its input journal's wake word and was woken (0 from
    /// files written before the field existed).
    pub wakeups: u64,
}

#[cfg(feature = "serde")]
fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl StageSnapshot {
    /// Output journal fill, 0.0 to 1.0, when the output length is known.
    pub fn output_fill(&self) -> Option<f64> {
        self.output_len
            .map(|len| len as f64 / self.output_capacity.max(1) as f64)
    }
}

impl CountersFile {
    /// Opens the counters file at `path` read-only. Fails with a clear error when the
    /// file is not a counters file (another store file, or a slot store with another
    /// schema), as well as for the store errors (`NotARodaFile`, `Truncated`, `Io`, ...).
    pub fn open(path: impl AsRef<Path>) -> Result<CountersFile> {
        let path = path.as_ref();
        let file = StoreFile::open(path)?;
        let h = file.header();
        let not_counters = |what: String| RodaError::Counters {
            path: path.into(),
            detail: format!(
                "{what}, not a pipeline counters file (schema {COUNTERS_SCHEMA:#x}); give the \
                 file a pipeline writes with StageEngine::metrics_file"
            ),
        };
        if h.kind != StoreKind::Slots {
            return Err(not_counters("a journal".into()));
        }
        if h.schema != COUNTERS_SCHEMA || h.record_size != (WORDS * 8) as u64 {
            return Err(not_counters(format!(
                "a slot store of {}-byte records with schema {:#x}",
                h.record_size, h.schema
            )));
        }
        if h.capacity < 1 {
            return Err(not_counters("a slot store without slots".into()));
        }
        Ok(CountersFile { file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Whether the writing process still runs.
    pub fn writer_alive(&self) -> bool {
        self.file.writer_alive()
    }

    fn slot(&self, index: u64, bytes: &mut Vec<u8>) -> Option<Slot> {
        match self.file.read_slot(index, bytes)? {
            SlotSnapshot::Value { .. } => {
                let mut slot = [0u64; WORDS];
                for (word, chunk) in slot.iter_mut().zip(bytes.chunks_exact(8)) {
                    *word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
                }
                Some(slot)
            }
            SlotSnapshot::Empty | SlotSnapshot::Torn => None,
        }
    }

    /// The counters as last sampled. Each slot is a consistent snapshot; the stages are
    /// read one after the other, so two stages may come from consecutive samples.
    pub fn snapshot(&self) -> Result<PipelineSnapshot> {
        let mut bytes = Vec::new();
        let path = self.path().to_path_buf();
        let header = self
            .slot(0, &mut bytes)
            .filter(|s| s[0] == KIND_HEADER)
            .ok_or_else(|| not_started(&path))?;
        if header[1] != LAYOUT_VERSION {
            return Err(RodaError::UnsupportedVersion {
                found: header[1] as u32,
                supported: LAYOUT_VERSION as u32,
            });
        }
        let count = (header[4] as usize).min(self.file.header().capacity as usize - 1);
        let mut stages = Vec::with_capacity(count);
        for i in 1..=count {
            let Some(s) = self
                .slot(i as u64, &mut bytes)
                .filter(|s| s[0] == KIND_STAGE)
            else {
                continue;
            };
            stages.push(StageSnapshot {
                name: get_name(&s),
                processed: s[2],
                emitted: s[3],
                input_lag: s[4],
                output_len: (s[5] != UNKNOWN).then_some(s[5]),
                output_capacity: s[6],
                waiting_for_room: s[8] & FLAG_WAITING != 0,
                panicked: s[8] & FLAG_PANICKED != 0,
                room_wait: Duration::from_nanos(s[7]),
                busy_iterations: s[9],
                idle_iterations: s[10],
                wakeups: s[11],
            });
        }
        let capacity = self.file.header().capacity as usize;
        let worker_count = (header[9] as usize).min(capacity - 1 - count);
        let mut workers = Vec::with_capacity(worker_count);
        for i in count + 1..=count + worker_count {
            let Some(w) = self
                .slot(i as u64, &mut bytes)
                .filter(|s| s[0] == KIND_WORKER)
            else {
                continue;
            };
            workers.push(WorkerSnapshot {
                name: get_name(&w),
                busy_iterations: w[2],
                idle_iterations: w[3],
            });
        }
        Ok(PipelineSnapshot {
            name: get_name(&header),
            pid: header[2] as u32,
            started_unix_nanos: header[3],
            sample_interval: Duration::from_nanos(header[5]),
            samples: header[6],
            last_sample_unix_nanos: header[7],
            finished: header[8] != 0,
            writer_alive: self.writer_alive(),
            stages,
            workers,
        })
    }
}

fn not_started(path: &Path) -> RodaError {
    RodaError::Counters {
        path: path.into(),
        detail: "a counters file whose pipeline has not written its first sample yet; try \
                 again in a moment"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_cut_at_a_character_boundary() {
        let mut slot = [0u64; WORDS];
        put_name(&mut slot, "stage \"1\"");
        assert_eq!(get_name(&slot), "stage \"1\"");
        let long = "é".repeat(100); // 200 bytes
        put_name(&mut slot, &long);
        assert_eq!(get_name(&slot), "é".repeat(64));
        put_name(&mut slot, "");
        assert_eq!(get_name(&slot), "");
    }
}

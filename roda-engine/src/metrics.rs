//! Per-stage counters of a [`StageEngine`](crate::StageEngine) and their snapshot.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters a stage's worker updates once per batch; on their own cache line so the
/// owner's reads never share a line with the worker's hot data.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct StageCounters {
    /// Inputs consumed: processed, with every output they produced published.
    consumed: AtomicU64,
    /// Outputs produced.
    emitted: AtomicU64,
    /// Sleeps on the input journal's wake word that ended (woken by a publish, a stop,
    /// or the safety timeout).
    wakeups: AtomicU64,
}

impl StageCounters {
    /// Records the stage's sleeps so far (only the stage's worker calls this, on its
    /// cold path).
    pub(crate) fn note_wakeups(&self, wakeups: u64) {
        // Relaxed: informational.
        self.wakeups.store(wakeups, Ordering::Relaxed);
    }

    /// Sleeps on the input journal's wake word so far.
    pub(crate) fn wakeups(&self) -> u64 {
        // Relaxed: informational.
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Records the totals after a batch (only the stage's worker calls this).
    #[inline]
    pub(crate) fn publish(&self, consumed: u64, emitted: u64) {
        // Relaxed: informational.
        self.emitted.store(emitted, Ordering::Relaxed);
        // Release pairs with the Acquire load in `consumed`: the outputs of these inputs
        // were published (their journal's Release store) before this store.
        self.consumed.store(consumed, Ordering::Release);
    }

    /// Inputs fully consumed; every output they produced is published when this returns.
    #[inline]
    pub(crate) fn consumed(&self) -> u64 {
        // Acquire pairs with the Release store in `publish`.
        self.consumed.load(Ordering::Acquire)
    }

    pub(crate) fn emitted(&self) -> u64 {
        // Relaxed: informational.
        self.emitted.load(Ordering::Relaxed)
    }
}

/// A snapshot of one stage's progress.
///
/// Non-exhaustive: later versions add counters. Snapshots come from
/// [`StageEngine::metrics`](crate::StageEngine::metrics).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StageMetrics {
    /// The stage's name (`stage 1`, `stage 2`, ...).
    pub name: String,
    /// Inputs consumed (processed and their outputs published).
    pub processed: u64,
    /// Outputs produced.
    pub emitted: u64,
    /// Inputs published to the stage but not yet consumed: its lag.
    pub input_lag: u64,
    /// Records in the stage's output journal that the next stage has not consumed, or
    /// (last stage) that the receiver has not received: the output's backlog.
    pub output_len: u64,
    /// The output journal's capacity: a ring's records, or for the last journal of a
    /// `with_capacity` pipeline the most outputs it holds not received.
    pub output_capacity: usize,
    /// Whether the stage is waiting for room in its output journal right now
    /// (back-pressure from the next stage; bounded pipelines only).
    pub waiting_for_room: bool,
    /// Whether the stage panicked (only the pipeline's first panic is known).
    pub panicked: bool,
    /// The largest backlog the output journal has held: tracked by the elastic last
    /// journal of a `with_capacity` pipeline; 0 for rings (bounded by their capacity).
    pub output_high_water: u64,
    /// Time the writer of the stage's input journal (the sender for stage 1, the
    /// previous stage otherwise) has spent waiting for room in it.
    pub input_wait: Duration,
    /// Times the stage slept on its input journal's wake word (after spinning found
    /// nothing) and was woken: by a publish, a stop, or its safety timeout. Each is one
    /// sleep in the kernel and one wake-up; under steady load it stays still.
    pub wakeups: u64,
}

impl StageMetrics {
    /// Output journal fill, 0.0 to 1.0: `output_len / output_capacity`, how close the
    /// stage is to waiting for room (a ring) or to the full-journal panic (the last
    /// journal of a `with_capacity` pipeline).
    pub fn output_fill(&self) -> f64 {
        self.output_len as f64 / self.output_capacity.max(1) as f64
    }

    /// A plain-text table of `stages`, one row per stage.
    ///
    /// ```
    /// use roda_engine::{StageEngine, StageMetrics};
    /// use roda_pipe::filter;
    ///
    /// let mut engine = StageEngine::<u64, u64>::with_capacity(100)
    ///     .add_stage(filter(|x: &u64| x % 2 == 0));
    /// for i in 0..10 {
    ///     engine.send(&i);
    /// }
    /// assert!(engine.await_idle(std::time::Duration::from_secs(10)));
    /// let table = StageMetrics::table(&engine.metrics());
    /// assert!(table.contains("stage 1"));
    /// assert!(table.contains("5.0%")); // 5 outputs in a journal of 100
    /// ```
    pub fn table(stages: &[StageMetrics]) -> String {
        let mut out = format!(
            "{:<10} {:>14} {:>14} {:>12} {:>14} {:>8}\n",
            "stage", "processed", "emitted", "input lag", "output", "fill"
        );
        for s in stages {
            out.push_str(&format!("{s}\n"));
        }
        out
    }
}

/// Field by field, in declaration order, plus `fill` (0.0 to 1.0). (Feature `serde`.)
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use roda_engine::StageEngine;
/// use roda_pipe::map;
///
/// let mut engine = StageEngine::<u64, u64>::with_capacity(100).add_stage(map(|x: &u64| x + 1));
/// engine.send(&1);
/// assert!(engine.await_idle(std::time::Duration::from_secs(10)));
/// let json = serde_json::to_string(&engine.metrics()[0]).unwrap();
/// assert!(json.starts_with(r#"{"name":"stage 1","processed":1,"emitted":1,"input_lag":0,"#));
/// assert!(json.contains(r#""output_capacity":100,"waiting_for_room":false,"panicked":false,"#));
/// assert!(json.ends_with(r#""fill":0.01}"#));
/// # }
/// ```
#[cfg(feature = "serde")]
impl serde::Serialize for StageMetrics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("StageMetrics", 12)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("processed", &self.processed)?;
        s.serialize_field("emitted", &self.emitted)?;
        s.serialize_field("input_lag", &self.input_lag)?;
        s.serialize_field("output_len", &self.output_len)?;
        s.serialize_field("output_capacity", &self.output_capacity)?;
        s.serialize_field("waiting_for_room", &self.waiting_for_room)?;
        s.serialize_field("panicked", &self.panicked)?;
        s.serialize_field("output_high_water", &self.output_high_water)?;
        let input_wait_ns = u64::try_from(self.input_wait.as_nanos()).unwrap_or(u64::MAX);
        s.serialize_field("input_wait_ns", &input_wait_ns)?;
        s.serialize_field("wakeups", &self.wakeups)?;
        s.serialize_field("fill", &self.output_fill())?;
        s.end()
    }
}

impl fmt::Display for StageMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<10} {:>14} {:>14} {:>12} {:>14} {:>7.1}%",
            self.name,
            self.processed,
            self.emitted,
            self.input_lag,
            self.output_len,
            self.output_fill() * 100.0
        )
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_names() {
        let m = StageMetrics {
            name: "a \"b\"\\\n\u{1}".into(),
            processed: 0,
            emitted: 0,
            input_lag: 0,
            output_len: 0,
            output_capacity: 0,
            waiting_for_room: false,
            panicked: false,
            output_high_water: 0,
            input_wait: Duration::ZERO,
            wakeups: 0,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.starts_with(r#"{"name":"a \"b\"\\\n\u0001","processed":0"#),
            "{json}"
        );
        assert!(json.ends_with(r#""fill":0.0}"#), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], "a \"b\"\\\n\u{1}");
        assert_eq!(
            serde_json::to_string(&Vec::<StageMetrics>::new()).unwrap(),
            "[]"
        );
    }
}

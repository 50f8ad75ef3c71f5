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
}

impl StageCounters {
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
#[derive(Clone, Debug, PartialEq)]
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
    /// The largest backlog the output journal has held: tracked by the elastic last
    /// journal of a `with_capacity` pipeline; 0 for rings (bounded by their capacity).
    pub output_high_water: u64,
    /// Time the writer of the stage's input journal (the sender for stage 1, the
    /// previous stage otherwise) has spent waiting for room in it.
    pub input_wait: Duration,
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
    /// let m = roda_engine::StageMetrics {
    ///     name: "stage 1".into(), processed: 10, emitted: 5, input_lag: 0,
    ///     output_len: 5, output_capacity: 100, output_high_water: 7,
    ///     input_wait: std::time::Duration::ZERO,
    /// };
    /// let table = roda_engine::StageMetrics::table(&[m]);
    /// assert!(table.contains("stage 1"));
    /// assert!(table.contains("5.0%"));
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

impl StageMetrics {
    /// The snapshot as one JSON object, for scripts and monitoring; `fill` is 0.0 to 1.0.
    ///
    /// ```
    /// let m = roda_engine::StageMetrics {
    ///     name: "stage 1".into(), processed: 10, emitted: 5, input_lag: 2,
    ///     output_len: 5, output_capacity: 100, output_high_water: 7,
    ///     input_wait: std::time::Duration::from_micros(3),
    /// };
    /// assert_eq!(
    ///     m.to_json(),
    ///     r#"{"name":"stage 1","processed":10,"emitted":5,"input_lag":2,"output_len":5,"output_capacity":100,"fill":0.05,"output_high_water":7,"input_wait_ns":3000}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"name":{},"processed":{},"emitted":{},"input_lag":{},"output_len":{},"output_capacity":{},"fill":{:?},"output_high_water":{},"input_wait_ns":{}}}"#,
            json_string(&self.name),
            self.processed,
            self.emitted,
            self.input_lag,
            self.output_len,
            self.output_capacity,
            self.output_fill(),
            self.output_high_water,
            self.input_wait.as_nanos()
        )
    }

    /// `stages` as a JSON array of [`to_json`](Self::to_json) objects.
    pub fn json_array(stages: &[StageMetrics]) -> String {
        let items: Vec<String> = stages.iter().map(StageMetrics::to_json).collect();
        format!("[{}]", items.join(","))
    }
}

/// `s` as a quoted JSON string, escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

#[cfg(test)]
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
            output_high_water: 0,
            input_wait: Duration::ZERO,
        };
        assert!(m
            .to_json()
            .starts_with(r#"{"name":"a \"b\"\\\n\u0001","processed":0"#));
        assert!(m
            .to_json()
            .ends_with(r#""fill":0.0,"output_high_water":0,"input_wait_ns":0}"#));
        assert_eq!(StageMetrics::json_array(&[]), "[]");
        assert_eq!(
            StageMetrics::json_array(&[m.clone(), m.clone()])
                .matches("\"name\"")
                .count(),
            2
        );
    }
}

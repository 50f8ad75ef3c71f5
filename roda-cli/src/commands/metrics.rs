//! `roda metrics FILE`: a pipeline's counters file in the Prometheus text exposition
//! format, version 0.0.4: on stdout, into a file replaced atomically (`--output`, for
//! node_exporter's textfile collector), or served over HTTP at `/metrics` (`--listen`).
//!
//! Every metric has `# HELP` and `# TYPE` lines; every series has the labels
//! `pipeline` (the pipeline's name) and, for stages, `stage` (the stage's name) and
//! `index` (its position, 1 = first, which keeps series apart when two stages share a
//! name); for a `RodaEngine`'s workers, `worker` and `index`. Label values are escaped as the format requires (`\\`, `\"`, `\n`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use roda_engine::{CountersFile, PipelineSnapshot};

use super::counters_failure;
use crate::cli::MetricsOptions;
use crate::Failure;

/// A metric: name, type and help, as listed in the docs.
pub struct Metric {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
}

/// Every metric `roda metrics` prints, in order: pipeline metrics, then stage metrics.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "roda_pipeline_up",
        kind: "gauge",
        help: "1 while the process that writes the counters file runs, else 0.",
    },
    Metric {
        name: "roda_pipeline_finished",
        kind: "gauge",
        help: "1 once the pipeline shut down and wrote its final sample, else 0.",
    },
    Metric {
        name: "roda_pipeline_start_time_seconds",
        kind: "gauge",
        help: "When the pipeline started writing the counters file, in Unix seconds.",
    },
    Metric {
        name: "roda_pipeline_last_sample_time_seconds",
        kind: "gauge",
        help: "When the counters file was last sampled, in Unix seconds.",
    },
    Metric {
        name: "roda_pipeline_samples_total",
        kind: "counter",
        help: "Samples written to the counters file.",
    },
    Metric {
        name: "roda_pipeline_stages",
        kind: "gauge",
        help: "Stages in the pipeline.",
    },
    Metric {
        name: "roda_stage_processed_total",
        kind: "counter",
        help: "Inputs the stage consumed (processed, with their outputs published).",
    },
    Metric {
        name: "roda_stage_emitted_total",
        kind: "counter",
        help: "Outputs the stage produced.",
    },
    Metric {
        name: "roda_stage_lag",
        kind: "gauge",
        help: "Inputs published to the stage but not yet consumed.",
    },
    Metric {
        name: "roda_stage_output_records",
        kind: "gauge",
        help: "Records in the stage's output journal (absent when unknown: the last \
               journal of a bounded pipeline while it runs).",
    },
    Metric {
        name: "roda_stage_output_capacity",
        kind: "gauge",
        help: "Capacity of the stage's output journal (or ring), in records.",
    },
    Metric {
        name: "roda_stage_output_fill_ratio",
        kind: "gauge",
        help: "Output records over output capacity, 0 to 1 (absent when unknown).",
    },
    Metric {
        name: "roda_stage_backpressure_seconds_total",
        kind: "counter",
        help: "Time the stage was seen waiting for room in its output journal, sampled \
               at the counters file's rate.",
    },
    Metric {
        name: "roda_stage_waiting_for_room",
        kind: "gauge",
        help: "1 while the stage waits for room in its output journal (back-pressure).",
    },
    Metric {
        name: "roda_stage_panicked",
        kind: "gauge",
        help: "1 if the stage panicked, else 0.",
    },
    Metric {
        name: "roda_stage_busy_iterations_total",
        kind: "counter",
        help: "Steps of the stage's thread that processed a batch of inputs.",
    },
    Metric {
        name: "roda_stage_idle_iterations_total",
        kind: "counter",
        help: "Steps of the stage's thread that found no input.",
    },
    Metric {
        name: "roda_stage_wakeups_total",
        kind: "counter",
        help: "Times the stage slept on its input journal's wake word and was woken.",
    },
    Metric {
        name: "roda_worker_busy_iterations_total",
        kind: "counter",
        help: "Steps of a RodaEngine worker's closure that did work.",
    },
    Metric {
        name: "roda_worker_idle_iterations_total",
        kind: "counter",
        help: "Steps of a RodaEngine worker's closure that found nothing to do.",
    },
];

/// A label value escaped for the text format: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The exposition text of one snapshot.
pub fn render(s: &PipelineSnapshot) -> String {
    let pipeline = format!("pipeline=\"{}\"", escape_label(&s.name));
    let secs = |nanos: u64| nanos as f64 / 1e9;
    let mut out = String::new();
    for m in METRICS {
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
        let mut line = |labels: &str, value: String| {
            let _ = writeln!(out, "{}{{{labels}}} {value}", m.name);
        };
        let pipeline_value = match m.name {
            "roda_pipeline_up" => Some(u64::from(s.writer_alive).to_string()),
            "roda_pipeline_finished" => Some(u64::from(s.finished).to_string()),
            "roda_pipeline_start_time_seconds" => Some(number(secs(s.started_unix_nanos))),
            "roda_pipeline_last_sample_time_seconds" => {
                Some(number(secs(s.last_sample_unix_nanos)))
            }
            "roda_pipeline_samples_total" => Some(s.samples.to_string()),
            "roda_pipeline_stages" => Some(s.stages.len().to_string()),
            _ => None,
        };
        if let Some(value) = pipeline_value {
            line(&pipeline, value);
            continue;
        }
        if m.name.starts_with("roda_worker_") {
            for (i, w) in s.workers.iter().enumerate() {
                let labels = format!(
                    "{pipeline},worker=\"{}\",index=\"{}\"",
                    escape_label(&w.name),
                    i + 1
                );
                let value = match m.name {
                    "roda_worker_busy_iterations_total" => w.busy_iterations,
                    "roda_worker_idle_iterations_total" => w.idle_iterations,
                    other => unreachable!("metric {other} has no value"),
                };
                line(&labels, value.to_string());
            }
            continue;
        }
        for (i, st) in s.stages.iter().enumerate() {
            let labels = format!(
                "{pipeline},stage=\"{}\",index=\"{}\"",
                escape_label(&st.name),
                i + 1
            );
            let value = match m.name {
                "roda_stage_processed_total" => Some(st.processed.to_string()),
                "roda_stage_emitted_total" => Some(st.emitted.to_string()),
                "roda_stage_lag" => Some(st.input_lag.to_string()),
                "roda_stage_output_records" => st.output_len.map(|n| n.to_string()),
                "roda_stage_output_capacity" => Some(st.output_capacity.to_string()),
                "roda_stage_output_fill_ratio" => st.output_fill().map(number),
                "roda_stage_backpressure_seconds_total" => Some(number(st.room_wait.as_secs_f64())),
                "roda_stage_waiting_for_room" => Some(u64::from(st.waiting_for_room).to_string()),
                "roda_stage_panicked" => Some(u64::from(st.panicked).to_string()),
                "roda_stage_busy_iterations_total" => Some(st.busy_iterations.to_string()),
                "roda_stage_idle_iterations_total" => Some(st.idle_iterations.to_string()),
                "roda_stage_wakeups_total" => Some(st.wakeups.to_string()),
                other => unreachable!("metric {other} has no value"),
            };
            if let Some(value) = value {
                line(&labels, value);
            }
        }
    }
    out
}

/// Prints, writes or serves the metrics of the counters file at `path`.
pub fn run(path: &Path, options: &MetricsOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let file = CountersFile::open(path).map_err(|e| counters_failure(path, e))?;
    let text = || -> Result<String, Failure> {
        let snapshot = file.snapshot().map_err(|e| counters_failure(path, e))?;
        Ok(render(&snapshot))
    };
    if let Some(output) = &options.output {
        return write_atomically(output, &text()?);
    }
    if let Some(addr) = &options.listen {
        return serve(addr, out, text);
    }
    out.write_all(text()?.as_bytes())?;
    Ok(())
}

/// Writes `text` to a temporary file beside `output`, then renames it over `output`: a
/// reader sees the old file or the new one, never a partial one.
fn write_atomically(output: &Path, text: &str) -> Result<(), Failure> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics.prom".into());
    // A dot name: node_exporter's textfile collector reads only `*.prom`.
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let fail = |path: &Path, e: std::io::Error| Failure::Store {
        path: path.into(),
        error: roda_store::RodaError::io(path, e),
    };
    let result = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(&temp, e));
    }
    std::fs::rename(&temp, output).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail(output, e)
    })
}

/// Serves `GET /metrics` on `addr` until the process is stopped, one connection at a
/// time (a scrape is a few kilobytes).
fn serve(
    addr: &str,
    out: &mut dyn Write,
    text: impl Fn() -> Result<String, Failure>,
) -> Result<(), Failure> {
    let listener = TcpListener::bind(addr).map_err(|e| Failure::Store {
        path: addr.into(),
        error: roda_store::RodaError::Io {
            path: None,
            source: e,
        },
    })?;
    let local = listener.local_addr()?;
    writeln!(out, "serving http://{local}/metrics")?;
    out.flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // A client that misbehaves costs its own connection only.
        if let Err(e) = answer(stream, &text) {
            let _ = writeln!(std::io::stderr(), "roda: metrics request: {e}");
        }
    }
    Ok(())
}

fn answer(
    mut stream: TcpStream,
    text: &impl Fn() -> Result<String, Failure>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Headers, up to the blank line (bounded: a scrape sends a handful).
    let mut header = String::new();
    for _ in 0..100 {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => match text() {
            Ok(body) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body),
            Err(failure) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                format!("{}\n", super::failure_text(&failure)),
            ),
        },
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET /metrics\n".to_owned(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label(r#"a "b" \ c"#), r#"a \"b\" \\ c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }

    #[test]
    fn the_docs_list_every_metric_with_its_type_and_help() {
        let docs = include_str!("../../../docs/observability.md");
        for m in METRICS {
            let row = format!("| `{}` | {} | {} |", m.name, m.kind, m.help);
            assert!(docs.contains(&row), "docs/observability.md lacks {row}");
        }
        let rows = docs.lines().filter(|l| l.starts_with("| `roda_")).count();
        assert_eq!(
            rows,
            METRICS.len(),
            "docs/observability.md lists other metrics"
        );
    }

    #[test]
    fn every_metric_is_named_and_typed_once() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for m in METRICS {
            assert!(m.name.starts_with("roda_"), "{}", m.name);
            assert!(matches!(m.kind, "counter" | "gauge"), "{}", m.name);
            assert_eq!(
                m.kind == "counter",
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert!(!m.help.contains('\n') && !m.help.contains('\\'));
        }
    }
}

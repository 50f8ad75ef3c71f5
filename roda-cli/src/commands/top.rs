//! `roda top FILE`: a live view of a pipeline's counters file: per stage its rate,
//! lag, output fill and back-pressure, with a short history of rate and lag as
//! sparklines. `q` (or Esc, or Ctrl-C) quits. Laid out for an 80×24 terminal.
//!
//! `--once` prints one snapshot instead, as a table or (`--json`) one JSON object; it
//! takes two samples `--interval` apart, so the rates are measured, not guessed.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use roda_engine::{CountersFile, PipelineSnapshot};
use serde::Serialize;

use super::{counters_failure, json_line};
use crate::cli::TopOptions;
use crate::{human, Failure};

/// Samples of history kept per stage (the widest sparkline that fits).
const HISTORY: usize = 64;

/// Whether the pipeline runs, stopped cleanly, or died.
fn status(s: &PipelineSnapshot) -> &'static str {
    if s.finished {
        "finished"
    } else if s.writer_alive {
        "running"
    } else {
        "dead"
    }
}

/// One stage between two snapshots.
#[derive(Clone, Debug, Serialize)]
struct StageView {
    index: usize,
    name: String,
    processed: u64,
    emitted: u64,
    /// Inputs consumed per second between the two samples.
    rate_per_sec: f64,
    lag: u64,
    output_len: Option<u64>,
    output_capacity: u64,
    fill: Option<f64>,
    /// Share of the time between the samples the stage waited for room, 0 to 1.
    backpressure: f64,
    waiting_for_room: bool,
    panicked: bool,
    /// Sleeps on the input's wake word so far, and per second between the samples.
    wakeups: u64,
    wakeups_per_sec: f64,
}

/// One `RodaEngine` worker between two snapshots.
#[derive(Clone, Debug, Serialize)]
struct WorkerView {
    index: usize,
    name: String,
    busy_iterations: u64,
    idle_iterations: u64,
    /// Busy steps per second between the two samples.
    busy_per_sec: f64,
    /// Idle steps per second between the two samples.
    idle_per_sec: f64,
}

/// The pipeline between two snapshots.
#[derive(Debug, Serialize)]
struct View {
    pipeline: String,
    pid: u32,
    status: &'static str,
    started_unix_nanos: u64,
    sample_interval_seconds: f64,
    samples: u64,
    /// Seconds between the two samples the rates come from (0: no new sample came).
    measured_seconds: f64,
    stages: Vec<StageView>,
    workers: Vec<WorkerView>,
}

/// The view of `now`, with rates measured against `before` (an earlier snapshot of the
/// same file).
fn view(before: &PipelineSnapshot, now: &PipelineSnapshot) -> View {
    let seconds = now
        .last_sample_unix_nanos
        .saturating_sub(before.last_sample_unix_nanos) as f64
        / 1e9;
    let stages = now
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prev = before.stages.get(i).filter(|p| p.name == s.name);
            let (rate, backpressure) = match prev {
                Some(p) if seconds > 0.0 => (
                    s.processed.saturating_sub(p.processed) as f64 / seconds,
                    (s.room_wait.saturating_sub(p.room_wait).as_secs_f64() / seconds).min(1.0),
                ),
                _ => (0.0, 0.0),
            };
            StageView {
                index: i + 1,
                name: s.name.clone(),
                processed: s.processed,
                emitted: s.emitted,
                rate_per_sec: rate,
                lag: s.input_lag,
                output_len: s.output_len,
                output_capacity: s.output_capacity,
                fill: s.output_fill(),
                backpressure,
                waiting_for_room: s.waiting_for_room,
                panicked: s.panicked,
                wakeups: s.wakeups,
                wakeups_per_sec: match prev {
                    Some(p) if seconds > 0.0 => {
                        s.wakeups.saturating_sub(p.wakeups) as f64 / seconds
                    }
                    _ => 0.0,
                },
            }
        })
        .collect();
    let per_sec = |now: u64, before: Option<u64>| match before {
        Some(before) if seconds > 0.0 => now.saturating_sub(before) as f64 / seconds,
        _ => 0.0,
    };
    let workers = now
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let prev = before.workers.get(i).filter(|p| p.name == w.name);
            WorkerView {
                index: i + 1,
                name: w.name.clone(),
                busy_iterations: w.busy_iterations,
                idle_iterations: w.idle_iterations,
                busy_per_sec: per_sec(w.busy_iterations, prev.map(|p| p.busy_iterations)),
                idle_per_sec: per_sec(w.idle_iterations, prev.map(|p| p.idle_iterations)),
            }
        })
        .collect();
    View {
        pipeline: now.name.clone(),
        pid: now.pid,
        status: status(now),
        started_unix_nanos: now.started_unix_nanos,
        sample_interval_seconds: now.sample_interval.as_secs_f64(),
        samples: now.samples,
        measured_seconds: seconds,
        stages,
        workers,
    }
}

/// Runs the live view, or prints one snapshot with `--once`.
pub fn run(path: &Path, options: &TopOptions, out: &mut dyn Write) -> Result<(), Failure> {
    let file = CountersFile::open(path).map_err(|e| counters_failure(path, e))?;
    let snapshot = || file.snapshot().map_err(|e| counters_failure(path, e));
    if options.once {
        let mut before = snapshot()?;
        std::thread::sleep(options.interval);
        let mut now = snapshot()?;
        // A pipeline still adding stages: measure again over the same stages.
        for _ in 0..3 {
            if now.stages.len() == before.stages.len() && now.workers.len() == before.workers.len()
            {
                break;
            }
            before = now;
            std::thread::sleep(options.interval);
            now = snapshot()?;
        }
        let view = view(&before, &now);
        if options.json {
            json_line(out, &view)?;
        } else {
            print_table(&view, out)?;
        }
        return Ok(());
    }
    if !std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "roda top draws on a terminal and stdout is not one; in scripts use \
             'roda top FILE --once' (or --once --json), or 'roda metrics FILE'"
                .into(),
        ));
    }
    live(path, options.interval, snapshot)
}

fn fill_text(fill: Option<f64>) -> String {
    fill.map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

/// The status line's words for people.
fn status_text(v: &View) -> String {
    match v.status {
        "dead" => format!("DEAD: pid {} stopped without shutting down", v.pid),
        other => format!("pid {} {other}", v.pid),
    }
}

fn print_table(v: &View, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "pipeline {}  {}  {} stages",
        v.pipeline,
        status_text(v),
        v.stages.len()
    )?;
    writeln!(
        out,
        "{:<16} {:>12} {:>14} {:>10} {:>7} {:>7} {:>9}",
        "stage", "rate/s", "processed", "lag", "fill", "waiting", "wakes/s"
    )?;
    for s in &v.stages {
        writeln!(
            out,
            "{:<16} {:>12} {:>14} {:>10} {:>7} {:>6.1}% {:>9}{}",
            s.name,
            human::count(s.rate_per_sec.round() as u64),
            human::count(s.processed),
            human::count(s.lag),
            fill_text(s.fill),
            s.backpressure * 100.0,
            human::count(s.wakeups_per_sec.round() as u64),
            if s.panicked { "  PANICKED" } else { "" }
        )?;
    }
    if !v.workers.is_empty() {
        writeln!(
            out,
            "{:<16} {:>12} {:>12} {:>14} {:>14}",
            "worker", "busy/s", "idle/s", "busy steps", "idle steps"
        )?;
        for w in &v.workers {
            writeln!(
                out,
                "{:<16} {:>12} {:>12} {:>14} {:>14}",
                w.name,
                human::count(w.busy_per_sec.round() as u64),
                human::count(w.idle_per_sec.round() as u64),
                human::count(w.busy_iterations),
                human::count(w.idle_iterations)
            )?;
        }
    }
    Ok(())
}

/// One stage's history: rate and lag per refresh.
#[derive(Default)]
struct History {
    name: String,
    rate: VecDeque<u64>,
    lag: VecDeque<u64>,
}

fn live(
    path: &Path,
    interval: Duration,
    snapshot: impl Fn() -> Result<PipelineSnapshot, Failure>,
) -> Result<(), Failure> {
    let mut previous = snapshot()?;
    let mut current = view(&previous, &previous);
    let mut history: Vec<History> = Vec::new();
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> Result<(), Failure> {
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                let now = snapshot()?;
                if now.last_sample_unix_nanos != previous.last_sample_unix_nanos
                    || now.stages.len() != previous.stages.len()
                    || now.writer_alive != previous.writer_alive
                {
                    current = view(&previous, &now);
                    record(&mut history, &current);
                    previous = now;
                } else {
                    // No new sample: nothing moved that the file can tell.
                    current.status = status(&now);
                }
                next = Instant::now() + interval;
            }
            terminal.draw(|frame| draw(frame, path, &current, &history, interval))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                        && key.code == KeyCode::Char('c');
                    if key.kind == KeyEventKind::Press
                        && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                    {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

fn record(history: &mut Vec<History>, v: &View) {
    history.resize_with(v.stages.len(), History::default);
    for (h, s) in history.iter_mut().zip(&v.stages) {
        if h.name != s.name {
            *h = History {
                name: s.name.clone(),
                ..History::default()
            };
        }
        h.rate.push_back(s.rate_per_sec.round() as u64);
        h.lag.push_back(s.lag);
        while h.rate.len() > HISTORY {
            h.rate.pop_front();
            h.lag.pop_front();
        }
    }
}

/// `n` shortened to fit a narrow column: 1,234 / 12.3k / 4.56M / 7.89G.
fn short(n: f64) -> String {
    match n {
        n if n < 10_000.0 => format!("{n:.0}"),
        n if n < 1e6 => format!("{:.1}k", n / 1e3),
        n if n < 1e9 => format!("{:.2}M", n / 1e6),
        n => format!("{:.2}G", n / 1e9),
    }
}

fn draw(frame: &mut Frame, path: &Path, v: &View, history: &[History], interval: Duration) {
    let area = frame.area();
    let stages = v.stages.len() as u16;
    let workers = match v.workers.len() as u16 {
        0 => 0,
        n => n + 2,
    };
    let [title, table, worker_table, sparks, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(stages + 1),
        Constraint::Length(workers),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);

    let status_style = match v.status {
        "running" => Style::default().fg(Color::Green),
        "finished" => Style::default().fg(Color::Yellow),
        _ => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
    };
    let up =
        human::duration(human::now_unix_nanos().saturating_sub(v.started_unix_nanos) as f64 / 1e9);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(
                    format!("roda top  {}", v.pipeline),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw("  "),
                Span::styled(status_text(v), status_style),
                Span::raw(format!("  up {up}")),
            ]),
            Line::from(format!(
                "{}  sampled every {}",
                path.display(),
                human::duration(v.sample_interval_seconds)
            ))
            .style(Style::default().fg(Color::DarkGray)),
        ]),
        title,
    );

    let header = Row::new([
        "stage",
        "rate/s",
        "processed",
        "lag",
        "fill",
        "waiting",
        "wakes/s",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = v.stages.iter().map(|s| {
        let waiting = format!("{:.0}%", s.backpressure * 100.0);
        let name = if s.panicked {
            format!("{} PANICKED", s.name)
        } else {
            s.name.clone()
        };
        Row::new([
            Cell::from(name),
            Cell::from(short(s.rate_per_sec)),
            Cell::from(human::count(s.processed)),
            Cell::from(human::count(s.lag)),
            Cell::from(fill_text(s.fill)),
            Cell::from(waiting).style(if s.backpressure > 0.5 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            }),
            Cell::from(short(s.wakeups_per_sec)),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                // 80 columns with the spacing: the names first, then the numbers.
                Constraint::Length(19),
                Constraint::Length(9),
                Constraint::Length(14),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Length(8),
            ],
        )
        .header(header),
        table,
    );

    if !v.workers.is_empty() {
        let rows = v.workers.iter().map(|w| {
            Row::new([
                w.name.clone(),
                short(w.busy_per_sec),
                short(w.idle_per_sec),
                human::count(w.busy_iterations),
                human::count(w.idle_iterations),
            ])
        });
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(20),
                    Constraint::Length(10),
                    Constraint::Length(10),
                    Constraint::Length(16),
                    Constraint::Length(16),
                ],
            )
            .header(
                Row::new(["worker", "busy/s", "idle/s", "busy steps", "idle steps"])
                    .style(Style::default().add_modifier(Modifier::BOLD))
                    .top_margin(1),
            ),
            worker_table,
        );
    }

    // Per stage: a label line, then rate and lag sparklines side by side.
    let mut y = sparks.y + 1;
    for (h, s) in history.iter().zip(&v.stages) {
        if y + 2 > sparks.y + sparks.height {
            break;
        }
        let label = Rect::new(sparks.x, y, sparks.width, 1);
        frame.render_widget(
            Paragraph::new(format!(
                "{}: rate {}/s (peak {})   lag {} (peak {})",
                s.name,
                short(s.rate_per_sec),
                short(h.rate.iter().copied().max().unwrap_or(0) as f64),
                short(s.lag as f64),
                short(h.lag.iter().copied().max().unwrap_or(0) as f64),
            ))
            .style(Style::default().fg(Color::Cyan)),
            label,
        );
        let [rate, lag] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .spacing(2)
                .areas(Rect::new(sparks.x, y + 1, sparks.width, 1));
        let tail = |d: &VecDeque<u64>, width: u16| -> Vec<u64> {
            d.iter()
                .skip(d.len().saturating_sub(width as usize))
                .copied()
                .collect()
        };
        frame.render_widget(
            Sparkline::default()
                .data(tail(&h.rate, rate.width))
                .style(Style::default().fg(Color::Green)),
            rate,
        );
        frame.render_widget(
            Sparkline::default()
                .data(tail(&h.lag, lag.width))
                .style(Style::default().fg(Color::Yellow)),
            lag,
        );
        y += 3;
    }

    frame.render_widget(
        Paragraph::new(format!(
            "q quit   refresh {}   rates over the last sample",
            human::duration(interval.as_secs_f64())
        ))
        .style(Style::default().fg(Color::DarkGray)),
        footer,
    );
}

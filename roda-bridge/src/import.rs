//! The importer: appends a subject's batches to a local journal with the same
//! sequences, exactly once.
//!
//! * The local journal is the position: each session starts a consumer at the stream
//!   message after the last one applied (a hint kept in the position file, checked
//!   against the journal's length), never from the consumer's acknowledgement state.
//! * A batch the journal already holds (a redelivery, an exporter's resend stored
//!   twice) is dropped, and a batch overlapping the journal's end contributes only its
//!   new records.
//! * A batch starting after the journal's end is a gap: an error, never skipped.
//! * Batches are acknowledged after they are appended.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

use crate::error::{nats, BridgeError, Result};
use crate::format::BatchHeader;
use crate::nats::{last_batch, Connection};
use crate::sink::ImportSink;

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The JetStream stream.
    pub stream: String,
    /// The subject the batches were published on.
    pub subject: String,
    /// Keep importing new batches; otherwise stop once the journal holds everything the
    /// subject held at the start.
    pub follow: bool,
    /// Where the last applied stream sequence is kept (a hint that saves re-reading the
    /// stream from its start; the journal's length decides what is applied).
    pub position_file: Option<PathBuf>,
    /// Messages requested per pull.
    pub pull_batch: usize,
    /// Bytes requested per pull, at most: keep it well below the server's `max_pending`
    /// (64 MiB by default), past which the server drops messages for a slow client.
    pub pull_bytes: usize,
    /// Set it to stop a following import.
    pub stop: Option<Arc<AtomicBool>>,
}

impl ImportOptions {
    /// Defaults: no follow, no position file, 64 messages and 8 MiB per pull.
    pub fn new(stream: impl Into<String>, subject: impl Into<String>) -> Self {
        ImportOptions {
            stream: stream.into(),
            subject: subject.into(),
            follow: false,
            position_file: None,
            pull_batch: 64,
            pull_bytes: 8 << 20,
            stop: None,
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The journal's length at the start.
    pub start: u64,
    /// The journal's length at the end.
    pub end: u64,
    /// Batches that added records.
    pub batches: u64,
    /// Records received that the journal already held (dropped).
    pub duplicates: u64,
    /// Consumer sessions started after the first (server restarts, lost connections).
    pub restarts: u64,
}

/// A snapshot for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct ImportProgress {
    /// The journal's length.
    pub imported: u64,
    /// Messages of the stream not delivered to this import yet.
    pub pending_messages: u64,
    /// Records imported per second since the last report.
    pub records_per_sec: f64,
}

type Progress = Box<dyn FnMut(&ImportProgress) + Send>;

/// Imports a subject's batches into a journal with the same sequences, exactly once:
/// positioned from the local journal, redeliveries dropped, gaps refused (the protocol
/// is in `docs/bridge.md`).
pub struct Importer {
    connection: Connection,
    options: ImportOptions,
    progress: Option<(Duration, Progress)>,
}

/// Why a consumer session ended.
enum SessionEnd {
    Done,
    /// Start the next session at this stream sequence (after an error, or a wrong hint).
    Restart(u64),
}

impl Importer {
    /// An importer from the server(s) of `connection`.
    pub fn new(connection: Connection, options: ImportOptions) -> Self {
        Importer {
            connection,
            options,
            progress: None,
        }
    }

    /// Calls `report` about every `every` with the import's progress.
    pub fn progress(
        mut self,
        every: Duration,
        report: impl FnMut(&ImportProgress) + Send + 'static,
    ) -> Self {
        self.progress = Some((every, Box::new(report)));
        self
    }

    /// The header of the first batch the subject holds (`None` when it holds none),
    /// without importing anything: the shape, journal id and first sequence a new
    /// journal for this import takes (see [`FileSink::create`](crate::FileSink::create)).
    pub fn first_batch(&self) -> Result<Option<BatchHeader>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BridgeError::Config(format!("cannot start the I/O runtime: {e}")))?;
        runtime.block_on(async {
            let client = self.connection.connect("roda-bridge import").await?;
            let js = jetstream::new(client);
            let stream =
                crate::nats::stream(&js, &self.options.stream, &self.options.subject, None).await?;
            next_batch_from(&stream, &self.options.subject, 1).await
        })
    }

    /// Runs the import on a runtime of its own (the calling thread).
    pub fn run(&mut self, sink: &mut dyn ImportSink) -> Result<ImportReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BridgeError::Config(format!("cannot start the I/O runtime: {e}")))?;
        runtime.block_on(self.run_async(sink))
    }

    /// Runs the import on the caller's tokio runtime.
    pub async fn run_async(&mut self, sink: &mut dyn ImportSink) -> Result<ImportReport> {
        let o = self.options.clone();
        let client = self.connection.connect("roda-bridge import").await?;
        let js = jetstream::new(client);
        let stream = crate::nats::stream(&js, &o.stream, &o.subject, None).await?;
        let shape = sink.shape();
        let start = sink.next_sequence();
        let mut report = ImportReport {
            start,
            end: start,
            ..Default::default()
        };
        let target = if o.follow {
            u64::MAX
        } else {
            match last_batch(&stream, &o.subject).await? {
                Some((h, _)) => {
                    shape.check(&h.shape)?;
                    h.end()
                }
                None => 0,
            }
        };
        let mut position = Position::open(o.position_file.as_ref())?;
        let mut from = position.start_for(start);
        let mut journal_id = None;
        let mut delay = Duration::from_millis(50);
        loop {
            if sink.next_sequence() >= target || self.stopped() {
                break;
            }
            let result = self
                .session(
                    &stream,
                    sink,
                    from,
                    target,
                    &mut journal_id,
                    &mut position,
                    &mut report,
                )
                .await;
            match result {
                Ok(SessionEnd::Done) => break,
                Ok(SessionEnd::Restart(next)) => {
                    from = next;
                    delay = Duration::from_millis(50);
                }
                Err(BridgeError::Nats { what, detail }) => {
                    log::warn!("{what} failed ({detail}); retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                    from = position.start_for(sink.next_sequence());
                }
                Err(e) => return Err(e),
            }
            report.restarts += 1;
        }
        report.end = sink.next_sequence();
        Ok(report)
    }

    fn stopped(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    #[allow(clippy::too_many_arguments)]
    async fn session(
        &mut self,
        stream: &jetstream::stream::Stream,
        sink: &mut dyn ImportSink,
        from: u64,
        target: u64,
        journal_id: &mut Option<u64>,
        position: &mut Position,
        report: &mut ImportReport,
    ) -> Result<SessionEnd> {
        let o = &self.options;
        let shape = sink.shape();
        let deliver_policy = if from > 1 {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            }
        } else {
            consumer::DeliverPolicy::All
        };
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                deliver_policy,
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: o.subject.clone(),
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| nats("creating a consumer", e))?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(o.pull_batch.max(1))
            .max_bytes_per_batch(o.pull_bytes.max(1 << 20))
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .map_err(|e| nats("pulling messages", e))?;
        let mut first_of_session = true;
        let mut last_report = (Instant::now(), sink.next_sequence());
        loop {
            if self.stopped() {
                return Ok(SessionEnd::Done);
            }
            if let Some((every, progress)) = &mut self.progress {
                let elapsed = last_report.0.elapsed();
                if elapsed >= *every {
                    let now = sink.next_sequence();
                    let pending = consumer.cached_info().num_pending;
                    progress(&ImportProgress {
                        imported: now,
                        pending_messages: pending,
                        records_per_sec: (now - last_report.1) as f64 / elapsed.as_secs_f64(),
                    });
                    last_report = (Instant::now(), now);
                }
            }
            let next = tokio::time::timeout(Duration::from_millis(250), messages.next()).await;
            let message = match next {
                Err(_) => continue,
                Ok(None) => return Err(nats("pulling messages", "the stream of messages ended")),
                Ok(Some(Err(e))) => return Err(nats("pulling messages", e)),
                Ok(Some(Ok(message))) => message,
            };
            let stream_seq = message
                .info()
                .map_err(|e| nats("reading a message's metadata", e))?
                .stream_sequence;
            let header =
                BatchHeader::from_headers(message.headers.as_ref(), message.payload.len())?;
            shape.check(&header.shape)?;
            match journal_id {
                Some(id) if *id != header.journal_id => {
                    return Err(BridgeError::Mismatch {
                        field: "journal_id",
                        local: format!("{id:016x}"),
                        remote: format!("{:016x}", header.journal_id),
                    })
                }
                _ => *journal_id = Some(header.journal_id),
            }
            let local = sink.next_sequence();
            if header.end() <= local {
                report.duplicates += header.count;
            } else if header.first > local {
                if first_of_session && !position.exact(from) {
                    // The hint pointed past the journal's end: read from the start.
                    log::warn!("the position file is ahead of the journal; reading the stream from its start");
                    position.forget();
                    return Ok(SessionEnd::Restart(1));
                }
                // Either the consumer skipped messages it did not deliver (a server
                // drops messages for a client that reads too slowly, a connection is
                // lost with messages in flight) or the stream does not hold the
                // records. The stream decides: its next message after the last one
                // applied.
                let after = position.start_for(local);
                let next = next_batch_from(stream, &o.subject, after).await?;
                match next {
                    Some(next) if next.first <= local => {
                        log::warn!(
                            "batch {} arrived while the journal needs {local}, which the \
                             stream holds: reading it again",
                            header.first
                        );
                        return Ok(SessionEnd::Restart(after));
                    }
                    _ => {
                        return Err(BridgeError::Gap {
                            expected: local,
                            found: next.map_or(header.first, |n| n.first),
                        })
                    }
                }
            } else {
                let skip = (local - header.first) as usize;
                report.duplicates += skip as u64;
                let record = shape.record_size as usize;
                sink.append(&message.payload[skip * record..])?;
                report.batches += 1;
            }
            first_of_session = false;
            // Acknowledge after appending; a lost ack only costs a redelivery.
            if let Err(e) = message.ack().await {
                log::warn!("acknowledging stream message {stream_seq} failed: {e}");
            }
            position.record(stream_seq, sink.next_sequence());
            if sink.next_sequence() >= target {
                return Ok(SessionEnd::Done);
            }
        }
    }
}

/// The header of the first batch on `subject` at or after stream sequence `from`.
async fn next_batch_from(
    stream: &jetstream::stream::Stream,
    subject: &str,
    from: u64,
) -> Result<Option<BatchHeader>> {
    let found = stream
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(subject.to_owned())
        .send()
        .await;
    match found {
        Ok(m) => BatchHeader::from_headers(Some(&m.headers), m.payload.len()).map(Some),
        Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            Ok(None)
        }
        Err(e) => Err(nats("reading the stream's next batch", e)),
    }
}

/// The position file: the last applied stream sequence and the journal length after it.
struct Position {
    file: Option<File>,
    stream_seq: u64,
    end: u64,
    /// Recorded by this process (not a hint read from the file).
    verified: bool,
}

impl Position {
    fn open(path: Option<&PathBuf>) -> Result<Position> {
        let Some(path) = path else {
            return Ok(Position {
                file: None,
                stream_seq: 0,
                end: 0,
                verified: true,
            });
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                BridgeError::Config(format!(
                    "cannot open the position file {}: {e}",
                    path.display()
                ))
            })?;
        let mut bytes = [0u8; 16];
        let (stream_seq, end) = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => (
                u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
            ),
            Err(_) => (0, 0),
        };
        Ok(Position {
            file: Some(file),
            stream_seq,
            end,
            verified: stream_seq == 0,
        })
    }

    /// The stream sequence to start at for a journal of length `len`: after the last
    /// applied message if the journal holds everything it held, else the beginning.
    fn start_for(&self, len: u64) -> u64 {
        if self.stream_seq > 0 && self.end <= len {
            self.stream_seq + 1
        } else {
            1
        }
    }

    /// Whether every message before stream sequence `from` is known to be applied.
    fn exact(&self, from: u64) -> bool {
        from <= 1 || (self.verified && from == self.stream_seq + 1)
    }

    fn forget(&mut self) {
        self.record(0, 0);
    }

    fn record(&mut self, stream_seq: u64, end: u64) {
        self.stream_seq = stream_seq;
        self.end = end;
        self.verified = true;
        if let Some(file) = &self.file {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&stream_seq.to_le_bytes());
            bytes[8..].copy_from_slice(&end.to_le_bytes());
            // A hint: if this write is lost, the next start reads a few batches again.
            if let Err(e) = file.write_all_at(&bytes, 0) {
                log::warn!("cannot update the position file: {e}");
            }
        }
    }
}

//! The exporter: follows a journal and publishes its records to a JetStream subject in
//! batches, exactly once.
//!
//! * Every batch carries `Nats-Msg-Id = {journal id}:{first sequence}` and
//!   `Nats-Expected-Last-Msg-Id` = the previous batch's id, so the server stores the
//!   batches of a subject only in order, each once (a resend inside the stream's
//!   duplicate window is acknowledged as a duplicate, not stored again).
//! * The first batch of a session also carries `Nats-Expected-Last-Subject-Sequence`
//!   (the subject's last message as read at the start, 0 when empty) and is sent alone:
//!   later batches are pipelined only once the server accepted it.
//! * On any refusal, timeout or connection error the exporter drops the outstanding
//!   acknowledgements, reads the subject's last batch from the server (retrying until
//!   it answers), forgets the in-flight batches the server holds and resends the others
//!   byte for byte, with the same ids and expectations.
//! * On start it resumes right after the subject's last batch.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishError, message::PublishMessage};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use roda_core::RodaError;

use crate::error::{nats, BridgeError, Result};
use crate::format::{BatchHeader, HEADER_ROOM};
use crate::nats::{last_batch, Connection, StreamSettings};
use crate::source::ExportSource;

const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
const EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";

/// How an export runs.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The JetStream stream (one stream per exported journal: the chained ids are
    /// checked stream-wide).
    pub stream: String,
    /// The subject the batches are published on.
    pub subject: String,
    /// Overrides the journal id stored in the journal (required for journals without one).
    pub journal_id: Option<u64>,
    /// Largest batch payload in bytes; lowered to fit the server's maximum payload.
    pub max_batch_bytes: usize,
    /// How long a partial batch waits for more records before it is sent.
    pub linger: Duration,
    /// Batches published and not acknowledged yet, at most.
    pub max_in_flight: usize,
    /// How long an acknowledgement may take before the batch is resent.
    pub ack_timeout: Duration,
    /// Keep following the journal; otherwise stop once every record present at the
    /// start is acknowledged.
    pub follow: bool,
    /// When the journal recycled records before they were exported, continue with the
    /// oldest retained one (logging what was skipped) instead of failing.
    pub skip_lagged: bool,
    /// Create the stream when missing, with these settings (`None`: it must exist).
    pub create_stream: Option<StreamSettings>,
    /// Set it to stop a following export: batches in flight are acknowledged first.
    pub stop: Option<Arc<AtomicBool>>,
}

impl ExportOptions {
    /// Defaults: 1 MiB batches, 2 ms linger, 64 batches in flight, 5 s ack timeout,
    /// stream created when missing, no follow.
    pub fn new(stream: impl Into<String>, subject: impl Into<String>) -> Self {
        ExportOptions {
            stream: stream.into(),
            subject: subject.into(),
            journal_id: None,
            max_batch_bytes: 1 << 20,
            linger: Duration::from_millis(2),
            max_in_flight: 64,
            ack_timeout: Duration::from_secs(5),
            follow: false,
            skip_lagged: false,
            create_stream: Some(StreamSettings::default()),
            stop: None,
        }
    }
}

/// What an export did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The sequence the export resumed at.
    pub start: u64,
    /// One past the last record acknowledged by the server.
    pub end: u64,
    /// Batches acknowledged in this run.
    pub batches: u64,
    /// Times the exporter rewound to the last acknowledged batch and resent.
    pub rewinds: u64,
    /// Records skipped because the journal recycled them first (`skip_lagged`).
    pub skipped: u64,
    /// Records the server had acknowledged and then no longer held (a server crash
    /// without a synced store), exported again.
    pub lost_by_server: u64,
}

/// A snapshot for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct ExportProgress {
    /// One past the last acknowledged record.
    pub acked: u64,
    /// Records the journal holds (published by its writer).
    pub published: u64,
    /// Batches published and not yet acknowledged.
    pub in_flight: usize,
    /// Records acknowledged per second since the last report.
    pub records_per_sec: f64,
}

type Progress = Box<dyn FnMut(&ExportProgress) + Send>;

/// Exports a journal to a JetStream subject in batches, exactly once: chained message
/// ids, rewind and identical resend on any refusal or timeout, resume after the
/// subject's last batch (the protocol is in `docs/bridge.md`).
pub struct Exporter {
    connection: Connection,
    options: ExportOptions,
    progress: Option<(Duration, Progress)>,
}

struct Sent {
    header: BatchHeader,
    headers: HeaderMap,
    payload: Bytes,
    /// Sent again after a rewind: a duplicate acknowledgement is expected.
    resent: bool,
}

type AckFuture = Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<jetstream::publish::PublishAck, PublishError>,
            > + Send,
    >,
>;

impl Exporter {
    /// An exporter to the server(s) of `connection`.
    pub fn new(connection: Connection, options: ExportOptions) -> Self {
        Exporter {
            connection,
            options,
            progress: None,
        }
    }

    /// Calls `report` about every `every` with the export's progress.
    pub fn progress(
        mut self,
        every: Duration,
        report: impl FnMut(&ExportProgress) + Send + 'static,
    ) -> Self {
        self.progress = Some((every, Box::new(report)));
        self
    }

    /// Runs the export on a runtime of its own (the calling thread), until done (or,
    /// following, until `stop` is set).
    pub fn run(&mut self, source: &mut dyn ExportSource) -> Result<ExportReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BridgeError::Config(format!("cannot start the I/O runtime: {e}")))?;
        runtime.block_on(self.run_async(source))
    }

    /// Runs the export on the caller's tokio runtime.
    pub async fn run_async(&mut self, source: &mut dyn ExportSource) -> Result<ExportReport> {
        let o = self.options.clone();
        let shape = source.shape();
        let journal_id = o.journal_id.or(source.journal_id()).ok_or_else(|| {
            BridgeError::Config(
                "the journal has no journal id: pass one (--journal-id), the same one every \
                 time this journal is exported"
                    .into(),
            )
        })?;
        if journal_id == 0 {
            return Err(BridgeError::Config("the journal id must not be 0".into()));
        }
        if o.max_in_flight == 0 {
            return Err(BridgeError::Config(
                "max_in_flight must be at least 1".into(),
            ));
        }
        let client = self.connection.connect("roda-bridge export").await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(o.ack_timeout)
            .build(client.clone());
        let max_payload = client.server_info().max_payload;
        let batch_bytes = o
            .max_batch_bytes
            .min(max_payload.saturating_sub(HEADER_ROOM));
        let batch_records = batch_bytes / shape.record_size as usize;
        if batch_records == 0 {
            return Err(BridgeError::Config(format!(
                "a record of {} bytes does not fit a batch of {batch_bytes} bytes (the \
                 server's max_payload is {max_payload}): raise max_payload in the server's \
                 configuration",
                shape.record_size
            )));
        }
        let stream =
            crate::nats::stream(&js, &o.stream, &o.subject, o.create_stream.as_ref()).await?;

        // Resume right after the subject's last batch.
        let last = last_batch(&stream, &o.subject).await?;
        check_sole_subject(&stream, &o.subject, last.map(|(_, s)| s)).await?;
        let (start, mut last_id, mut subject_seq) = match last {
            Some((h, seq)) => {
                check_same_journal(journal_id, &h)?;
                shape.check(&h.shape)?;
                (h.end(), Some(h.message_id()), Some(seq))
            }
            None => (0, None, Some(0)),
        };
        source.seek(start);
        let mut target = if o.follow {
            u64::MAX
        } else {
            source.published()
        };
        if !o.follow && start > target {
            return Err(BridgeError::Conflict(format!(
                "subject {} already holds records up to {start} of journal {journal_id:016x}, \
                 but the journal holds only {target}: is this the same journal?",
                o.subject
            )));
        }

        let mut report = ExportReport {
            start,
            end: start,
            ..Default::default()
        };
        let mut in_flight: VecDeque<Sent> = VecDeque::with_capacity(o.max_in_flight);
        let mut acks: FuturesOrdered<AckFuture> = FuturesOrdered::new();
        let mut buf: Vec<u8> = Vec::with_capacity(batch_bytes);
        let mut batch_first = start;
        let mut batch_count = 0usize;
        let mut batch_started = Instant::now();
        // The session's first batch waits for its acknowledgement alone.
        let mut probe = true;
        let mut last_report = (Instant::now(), start);

        loop {
            // Acknowledgements that arrived.
            while let Some(Some(result)) = acks.next().now_or_never() {
                let ok = self
                    .on_ack(result, &stream, &mut in_flight, &mut report, &mut probe)
                    .await?;
                if !ok {
                    acks = FuturesOrdered::new();
                    let healed = self
                        .rewind(
                            &js,
                            &stream,
                            journal_id,
                            &mut in_flight,
                            &mut acks,
                            &mut report,
                        )
                        .await?;
                    if let Some((next, id, seq)) = healed {
                        source.seek(next);
                        (last_id, subject_seq, probe) = (id, Some(seq), true);
                        buf.clear();
                        batch_count = 0;
                        batch_first = next;
                    }
                    break;
                }
            }
            if o.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) && target == u64::MAX {
                // Stop following: export what is published now, then return.
                target = source.published().max(batch_first + batch_count as u64);
            }
            if target != u64::MAX && report.end >= target && in_flight.is_empty() {
                break;
            }
            if let Some((every, progress)) = &mut self.progress {
                let elapsed = last_report.0.elapsed();
                if elapsed >= *every {
                    let rate = (report.end - last_report.1) as f64 / elapsed.as_secs_f64();
                    progress(&ExportProgress {
                        acked: report.end,
                        published: source.published(),
                        in_flight: in_flight.len(),
                        records_per_sec: rate,
                    });
                    last_report = (Instant::now(), report.end);
                }
            }

            // Read and publish.
            let mut worked = false;
            // While the probe is out, nothing else is sent.
            let may_send = in_flight.len() < o.max_in_flight && (!probe || in_flight.is_empty());
            if may_send {
                let position = batch_first + batch_count as u64;
                let room =
                    (batch_records - batch_count).min((target - position.min(target)) as usize);
                let mut send_now = false;
                if room > 0 {
                    if batch_count == 0 {
                        buf.clear();
                        batch_first = source.position();
                    }
                    match source.read(&mut buf, room) {
                        Ok(n) => {
                            if n > 0 {
                                if batch_count == 0 {
                                    batch_started = Instant::now();
                                }
                                batch_count += n;
                                worked = true;
                            }
                        }
                        Err(RodaError::Lagged { missed }) if batch_count > 0 => {
                            // Send what was read; the lag is handled on the next read.
                            let _ = missed;
                            send_now = true;
                        }
                        Err(RodaError::Lagged { missed }) => {
                            let from = source.position();
                            if !o.skip_lagged {
                                return Err(BridgeError::Lagged { from, missed });
                            }
                            let oldest = source.oldest_retained().max(from + 1);
                            log::warn!(
                                "records {from}..{oldest} were recycled before they were \
                                 exported: skipped"
                            );
                            report.skipped += oldest - from;
                            source.seek(oldest);
                            worked = true;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let position = batch_first + batch_count as u64;
                if batch_count > 0
                    && (send_now
                        || batch_count == batch_records
                        || position >= target
                        || batch_started.elapsed() >= o.linger)
                {
                    let header = BatchHeader {
                        journal_id,
                        first: batch_first,
                        count: batch_count as u64,
                        shape,
                    };
                    let mut headers = header.to_headers();
                    if let Some(id) = &last_id {
                        headers.insert(EXPECTED_LAST_MSG_ID, id.as_str());
                    }
                    if let Some(seq) = subject_seq.take() {
                        headers.insert(EXPECTED_LAST_SUBJECT_SEQ, seq.to_string().as_str());
                    }
                    last_id = Some(header.message_id());
                    let sent = Sent {
                        header,
                        headers,
                        // The batch's buffer becomes the payload (no copy).
                        payload: Bytes::from(std::mem::replace(
                            &mut buf,
                            Vec::with_capacity(batch_bytes),
                        )),
                        resent: false,
                    };
                    buf.clear();
                    batch_count = 0;
                    batch_first = position;
                    match publish(&js, &o.subject, &sent).await {
                        Ok(ack) => acks.push_back(ack),
                        Err(e) => {
                            log::warn!("publish of batch {} failed: {e}", sent.header.message_id());
                            acks.push_back(Box::pin(async move { Err(e) }));
                        }
                    }
                    in_flight.push_back(sent);
                    worked = true;
                }
            }
            if worked {
                continue;
            }
            // Nothing to do now: wait for an acknowledgement, the linger or new records.
            let wait = if batch_count > 0 {
                o.linger.saturating_sub(batch_started.elapsed())
            } else {
                Duration::from_millis(1)
            };
            if acks.is_empty() || !may_send || wait > Duration::ZERO {
                tokio::select! {
                    Some(result) = acks.next(), if !acks.is_empty() => {
                        let ok = self
                            .on_ack(result, &stream, &mut in_flight, &mut report, &mut probe)
                            .await?;
                        if !ok {
                            acks = FuturesOrdered::new();
                            let healed = self
                                .rewind(&js, &stream, journal_id, &mut in_flight, &mut acks, &mut report)
                                .await?;
                            if let Some((next, id, seq)) = healed {
                                source.seek(next);
                                (last_id, subject_seq, probe) = (id, Some(seq), true);
                                buf.clear();
                                batch_count = 0;
                                batch_first = next;
                            }
                        }
                    }
                    _ = tokio::time::sleep(wait.max(Duration::from_micros(100))) => {}
                }
            }
        }
        Ok(report)
    }

    /// Handles the acknowledgement of the oldest batch in flight; `Ok(false)` asks for a
    /// rewind.
    async fn on_ack(
        &mut self,
        result: std::result::Result<jetstream::publish::PublishAck, PublishError>,
        stream: &jetstream::stream::Stream,
        in_flight: &mut VecDeque<Sent>,
        report: &mut ExportReport,
        probe: &mut bool,
    ) -> Result<bool> {
        let ack = match result {
            Ok(ack) => ack,
            Err(e) => {
                log::warn!(
                    "batch {} not acknowledged ({e}): rewinding to the last acknowledged batch",
                    in_flight
                        .front()
                        .map(|s| s.header.message_id())
                        .unwrap_or_default()
                );
                return Ok(false);
            }
        };
        let sent = in_flight
            .pop_front()
            .expect("an acknowledgement belongs to a batch in flight");
        if ack.duplicate && !sent.resent {
            // Another session stored a batch with this id: it must be this very batch.
            let stored = stream
                .get_raw_message(ack.sequence)
                .await
                .map_err(|e| nats("reading a duplicate batch", e))?;
            let header = BatchHeader::from_headers(Some(&stored.headers), stored.payload.len())?;
            if header != sent.header || stored.payload != sent.payload {
                return Err(BridgeError::Conflict(format!(
                    "the server already stored a different batch with id {} ({} records, \
                     this one has {})",
                    sent.header.message_id(),
                    header.count,
                    sent.header.count
                )));
            }
        }
        report.end = sent.header.end();
        report.batches += 1;
        *probe = false;
        Ok(true)
    }

    /// Rewinds after a refusal, timeout or lost connection: finds what the server holds,
    /// forgets the batches it holds and resends the others identically. Returns
    /// `Some((next, last id, subject sequence))` when the server lost acknowledged
    /// batches: the export then continues from `next`.
    async fn rewind(
        &mut self,
        js: &jetstream::Context,
        stream: &jetstream::stream::Stream,
        journal_id: u64,
        in_flight: &mut VecDeque<Sent>,
        acks: &mut FuturesOrdered<AckFuture>,
        report: &mut ExportReport,
    ) -> Result<Option<(u64, Option<String>, u64)>> {
        report.rewinds += 1;
        let subject = self.options.subject.clone();
        let mut delay = Duration::from_millis(50);
        let last = loop {
            match last_batch(stream, &subject).await {
                Ok(last) => break last,
                Err(BridgeError::Nats { detail, .. }) => {
                    log::warn!("waiting for the server: {detail}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        if let Some((h, _)) = &last {
            check_same_journal(journal_id, h)?;
        }
        let server_next = last.as_ref().map_or(0, |(h, _)| h.end());
        while in_flight
            .front()
            .is_some_and(|s| s.header.end() <= server_next)
        {
            let sent = in_flight.pop_front().expect("checked");
            report.end = sent.header.end();
            report.batches += 1;
        }
        if server_next < report.end {
            // Acknowledged batches are gone: the server lost them (killed before its
            // store reached the disk). Export them again from the journal.
            log::error!(
                "the server lost acknowledged records {server_next}..{}: exporting them again",
                report.end
            );
            report.lost_by_server += report.end - server_next;
            report.end = server_next;
            in_flight.clear();
            let (id, seq) = match last {
                Some((h, seq)) => (Some(h.message_id()), seq),
                None => (None, 0),
            };
            return Ok(Some((server_next, id, seq)));
        }
        let expected = in_flight.front().map(|s| s.header.first);
        if server_next != report.end || expected.is_some_and(|f| f != server_next) {
            return Err(BridgeError::Conflict(format!(
                "subject {subject} ends at record {server_next}, but this exporter had \
                 acknowledgements up to {} (next in flight: {expected:?})",
                report.end
            )));
        }
        check_sole_subject(stream, &subject, last.map(|(_, s)| s)).await?;
        for sent in in_flight.iter_mut() {
            sent.resent = true;
            let ack = match publish(js, &subject, sent).await {
                Ok(ack) => ack,
                Err(e) => Box::pin(async move { Err(e) }) as AckFuture,
            };
            acks.push_back(ack);
        }
        Ok(None)
    }
}

async fn publish(
    js: &jetstream::Context,
    subject: &str,
    sent: &Sent,
) -> std::result::Result<AckFuture, PublishError> {
    let message = PublishMessage::build()
        .payload(sent.payload.clone())
        .headers(sent.headers.clone());
    let ack = js.send_publish(subject.to_owned(), message).await?;
    Ok(ack.into_future())
}

fn check_same_journal(journal_id: u64, last: &BatchHeader) -> Result<()> {
    if last.journal_id != journal_id {
        return Err(BridgeError::Mismatch {
            field: "journal_id",
            local: format!("{journal_id:016x}"),
            remote: format!("{:016x}", last.journal_id),
        });
    }
    Ok(())
}

/// The chained message ids are checked stream-wide: the stream must carry this subject
/// only (its last message must be the subject's last).
async fn check_sole_subject(
    stream: &jetstream::stream::Stream,
    subject: &str,
    subject_last: Option<u64>,
) -> Result<()> {
    let info = stream
        .get_info()
        .await
        .map_err(|e| nats("reading the stream's state", e))?;
    let stream_last = info.state.last_sequence;
    if stream_last != subject_last.unwrap_or(0) && info.state.messages > 0 {
        return Err(BridgeError::Config(format!(
            "stream {} holds other messages after the last batch of {subject} (its last \
             message is {stream_last}): an exported journal needs a stream of its own",
            info.config.name
        )));
    }
    Ok(())
}

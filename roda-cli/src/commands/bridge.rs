//! `roda bridge export`: a journal to a NATS JetStream subject; `roda bridge import`: a
//! subject into a journal (roda-bridge), for journals of any record type.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roda_bridge::{
    BridgeError, Connection, ExportOptions, Exporter, FileSink, FileSource, ImportOptions,
    Importer, NewJournal, StreamSettings,
};
use roda_store::Retention;

use crate::cli::{BridgeCommand, BridgeExport, BridgeImport, NatsArgs};
use crate::Failure;

/// Runs `roda bridge ...`.
pub fn run(command: &BridgeCommand, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        BridgeCommand::Export(args) => export(args, out),
        BridgeCommand::Import(args) => import(args, out),
    }
}

fn connection(nats: &NatsArgs) -> Connection {
    let mut c = Connection::new(nats.nats.clone());
    c.creds = nats.creds.clone();
    c.tls_ca = nats.tls_ca.clone();
    c.tls_client = nats.tls_cert.clone().zip(nats.tls_key.clone());
    c.require_tls = nats.require_tls;
    c
}

fn export(args: &BridgeExport, out: &mut dyn Write) -> Result<(), Failure> {
    let mut source = FileSource::open(&args.path).map_err(|error| Failure::Store {
        path: args.path.clone(),
        error,
    })?;
    let mut options = ExportOptions::new(args.nats.stream.clone(), args.nats.subject.clone());
    options.journal_id = args.journal_id;
    options.follow = args.follow;
    options.skip_lagged = args.skip_lagged;
    options.max_batch_bytes = args.batch_bytes;
    options.linger = args.linger;
    options.max_in_flight = args.in_flight;
    options.create_stream = Some(StreamSettings {
        duplicate_window: args.duplicate_window,
        replicas: args.replicas,
        ..StreamSettings::default()
    });
    let report = Exporter::new(connection(&args.nats), options)
        .progress(Duration::from_secs(1), |p| {
            eprintln!(
                "roda bridge export: {} records acknowledged, {:.0} records/s, lag {} records, {} batches in flight",
                p.acked,
                p.records_per_sec,
                p.published.saturating_sub(p.acked),
                p.in_flight
            );
        })
        .run(&mut source)
        .map_err(|e| Failure::Usage(format!("bridge export {}: {e}", args.path.display())))?;
    writeln!(
        out,
        "exported records {}..{} of {} to {} ({} batches, {} rewinds, {} skipped, {} lost by the server and sent again)",
        report.start,
        report.end,
        args.path.display(),
        args.nats.subject,
        report.batches,
        report.rewinds,
        report.skipped,
        report.lost_by_server
    )?;
    Ok(())
}

/// Where an import into `out` keeps the last applied stream sequence: `OUT.bridge`.
fn position_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".bridge");
    PathBuf::from(name)
}

fn import(args: &BridgeImport, out: &mut dyn Write) -> Result<(), Failure> {
    let failed =
        |e: BridgeError| Failure::Usage(format!("bridge import {}: {e}", args.path.display()));
    let mut options = ImportOptions::new(args.nats.stream.clone(), args.nats.subject.clone());
    options.follow = args.follow;
    let position = position_path(&args.path);
    options.position_file = Some(position.clone());
    let importer = Importer::new(connection(&args.nats), options);
    let mut sink = if args.path.exists() {
        let sink = FileSink::open(&args.path).map_err(|error| Failure::Store {
            path: args.path.clone(),
            error,
        })?;
        match args.journal_id {
            Some(id) if id != sink.journal_id() => {
                return Err(Failure::Usage(format!(
                    "bridge import: {} exists with journal id {:016x}; --journal-id only \
                     names a journal the import creates (leave it out, or import into a new OUT)",
                    args.path.display(),
                    sink.journal_id()
                )))
            }
            _ => sink,
        }
    } else {
        // A new journal takes the shape, first sequence and journal id of the subject's
        // first batch.
        let mut said = false;
        let first = loop {
            match importer.first_batch().map_err(failed)? {
                Some(header) => break header,
                None if args.follow => {
                    if !std::mem::replace(&mut said, true) {
                        eprintln!(
                            "roda bridge import: {} holds no batch yet; waiting for the first",
                            args.nats.subject
                        );
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                None => {
                    writeln!(
                        out,
                        "nothing to import: {} holds no batch (nothing created)",
                        args.nats.subject
                    )?;
                    return Ok(());
                }
            }
        };
        let new = match args.capacity {
            Some(capacity) => NewJournal::Plain {
                capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            },
            None => NewJournal::Segmented {
                segment_records: usize::try_from(args.segment_records).unwrap_or(usize::MAX),
                retention: args.keep_last.map_or(Retention::KeepAll, |k| {
                    Retention::KeepLast(usize::try_from(k).unwrap_or(usize::MAX))
                }),
            },
        };
        let journal_id = args.journal_id.unwrap_or(first.journal_id);
        let sink = FileSink::create(&args.path, first.shape, &new, first.first, journal_id)
            .map_err(failed)?;
        // A position file left by an earlier OUT at this path describes another journal.
        let _ = std::fs::remove_file(&position);
        sink
    };
    let report = importer
        .progress(Duration::from_secs(1), |p| {
            eprintln!(
                "roda bridge import: {} records imported, {:.0} records/s, lag {} messages",
                p.imported, p.records_per_sec, p.pending_messages
            );
        })
        .run(&mut sink)
        .map_err(failed)?;
    writeln!(
        out,
        "imported records {}..{} into {} from {} ({} batches, {} duplicate records dropped, {} restarts)",
        report.start,
        report.end,
        args.path.display(),
        args.nats.subject,
        report.batches,
        report.duplicates,
        report.restarts
    )?;
    Ok(())
}

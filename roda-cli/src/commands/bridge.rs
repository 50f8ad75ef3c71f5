//! `roda bridge export`: a journal to a NATS JetStream subject (roda-bridge).

use std::io::Write;
use std::time::Duration;

use roda_bridge::{Connection, ExportOptions, Exporter, FileSource, StreamSettings};

use crate::cli::{BridgeCommand, BridgeExport, NatsArgs};
use crate::Failure;

/// Runs `roda bridge ...`.
pub fn run(command: &BridgeCommand, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        BridgeCommand::Export(args) => export(args, out),
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

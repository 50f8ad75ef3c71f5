//! Copies a journal through a local NATS JetStream server and checks the copy.
//!
//! ```text
//! nats-server -js &                                  # apt-get install nats-server
//! cargo run --release -p roda-bridge --example copy   # or: -- nats://HOST:4222
//! ```
use std::time::Instant;

use roda_bridge::{
    Connection, ExportOptions, Exporter, ImportOptions, Importer, JournalSink, JournalSource,
};
use roda_store::{JournalReader, JournalStore};

/// A price tick: 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    instrument: u64,
    price: f64,
    quantity: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("copy: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let dir = tempfile::tempdir()?;
    let n = 1_000_000u64;

    // The source journal: its header carries a random journal id that names it on NATS.
    let src = dir.path().join("ticks.roda");
    let mut journal = JournalStore::<Tick>::create(&src, n as usize)?;
    for i in 0..n {
        journal.append(&Tick {
            instrument: i % 16,
            price: 100.0 + (i % 1000) as f64 / 100.0,
            quantity: i,
        });
    }
    println!("journal {:016x}: {n} ticks", journal.header().journal_id);

    // Each run uses a stream of its own (one exported journal per stream).
    let stream = format!("TICKS_{}", std::process::id());
    let subject = format!("roda.ticks.{}", std::process::id());
    let nats = Connection::new(url);

    let t = Instant::now();
    let mut source = JournalSource::<Tick>::open(&src)?;
    let exported =
        Exporter::new(nats.clone(), ExportOptions::new(&stream, &subject)).run(&mut source)?;
    println!(
        "exported {} ticks in {} batches: {:.1}M ticks/s",
        exported.end,
        exported.batches,
        exported.end as f64 / t.elapsed().as_secs_f64() / 1e6
    );

    let t = Instant::now();
    let copy = dir.path().join("copy.roda");
    let mut sink = JournalSink::new(JournalStore::<Tick>::create(&copy, n as usize)?);
    let imported = Importer::new(nats, ImportOptions::new(&stream, &subject)).run(&mut sink)?;
    println!(
        "imported {} ticks: {:.1}M ticks/s",
        imported.end,
        imported.end as f64 / t.elapsed().as_secs_f64() / 1e6
    );
    drop(sink);

    let (a, b) = (
        JournalReader::<Tick>::open(&src)?,
        JournalReader::<Tick>::open(&copy)?,
    );
    assert_eq!(a.published(), b.published());
    assert!((0..n).all(|i| a.get_at(i) == b.get_at(i)));
    println!("the copy equals the source, record for record");
    Ok(())
}

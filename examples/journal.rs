//! A first tour of the journal: write records to a file, follow them live from a
//! second reader (as another process would), then reopen the file and carry on.
//!
//! cargo run --release --example journal [PATH]

use std::time::Instant;

use roda::prelude::*;

/// One market-data tick. `Pod` (via bytemuck) lets Roda store it in a file as is.
#[derive(Clone, Copy, Debug, PartialEq, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    instrument: u64,
    price: f64,
    quantity: u64,
}

const TICKS: u64 = 1_000_000;

fn main() -> roda::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| dir.path().join("ticks.roda"));

    // 1. The writer: one per file (an exclusive lock enforces it across processes).
    let mut journal = JournalStore::<Tick>::open_or_create(&path, 4 * TICKS as usize)?;
    println!(
        "journal {} holds {} of {} records",
        path.display(),
        journal.len(),
        journal.capacity()
    );

    // 2. A follower through its own read-only mapping, exactly what another process
    //    would do with `JournalReader::open(path)`. It runs on its own thread here.
    let mut follower = JournalReader::<Tick>::open(&path)?;
    follower.seek(journal.len() as u64);
    let first = journal.len() as u64;
    let follow = std::thread::spawn(move || {
        let (mut seen, mut notional) = (0u64, 0.0f64);
        while seen < TICKS {
            // Zero-copy: a slice of records straight out of the mapping.
            for tick in follower.next_batch(1024) {
                notional += tick.price * tick.quantity as f64;
                seen += 1;
            }
        }
        (seen, notional, follower.get().copied())
    });

    // 3. Append. Each append publishes the record with one atomic store.
    let start = Instant::now();
    for i in 0..TICKS {
        journal.append(&Tick {
            instrument: i % 16,
            price: 100.0 + (i % 100) as f64 / 100.0,
            quantity: 1 + i % 10,
        });
    }
    let elapsed = start.elapsed();
    let (seen, notional, last) = follow.join().expect("follower thread");
    println!(
        "appended {TICKS} ticks in {elapsed:.2?} ({:.1} M/s); the follower saw {seen}, notional {notional:.0}",
        TICKS as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("last tick seen: {last:?}");

    // 4. Durability against power loss is one msync away (process crashes need nothing).
    journal.flush()?;
    drop(journal);

    // 5. Reopen: the writer resumes after the last committed record.
    let mut journal = JournalStore::<Tick>::open(&path)?;
    let seq = journal.append(&Tick {
        instrument: 99,
        price: 1.0,
        quantity: 1,
    });
    println!("reopened: appended sequence {seq} after the {first} + {TICKS} earlier records");

    // 6. Replay from the start with a fresh cursor.
    let mut replay = journal.reader();
    let mut count = 0;
    while replay.next().is_some() {
        count += 1;
    }
    println!("replayed {count} records");
    Ok(())
}

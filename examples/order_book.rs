//! Top of book for 10,000 symbols in a SlotStore file: a writer thread keeps every
//! symbol's best bid/ask current while a reader (opened from the file, as another
//! process would) samples consistent snapshots.
//!
//! ```text
//! cargo run --release --example order_book [-- PATH [SECONDS]]
//! ```
//! Without PATH the store lives in a temporary directory; SECONDS defaults to 2.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roda_store::{SlotReader, SlotStore};

const SYMBOLS: usize = 10_000;

/// One symbol's top of book: 56 bytes, so each slot is one 64-byte cache line.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct TopOfBook {
    bid: f64,
    ask: f64,
    bid_size: u64,
    ask_size: u64,
    /// Updates of this symbol so far.
    seq: u64,
    timestamp_ns: u64,
    /// Hash of the fields above: a torn snapshot would not match it.
    checksum: u64,
}

impl TopOfBook {
    fn new(symbol: usize, seq: u64, timestamp_ns: u64) -> Self {
        // A deterministic random walk around 100.0 per symbol.
        let mid = 100.0 + (symbol % 97) as f64 + ((seq * 7919) % 200) as f64 / 100.0 - 1.0;
        let mut quote = TopOfBook {
            bid: mid - 0.01,
            ask: mid + 0.01,
            bid_size: 100 + (seq * 31) % 900,
            ask_size: 100 + (seq * 17) % 900,
            seq,
            timestamp_ns,
            checksum: 0,
        };
        quote.checksum = quote.hash();
        quote
    }

    fn hash(&self) -> u64 {
        let words = [
            self.bid.to_bits(),
            self.ask.to_bits(),
            self.bid_size,
            self.ask_size,
            self.seq,
            self.timestamp_ns,
        ];
        words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &w| {
            (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23)
        })
    }

    fn is_consistent(&self) -> bool {
        self.checksum == self.hash() && self.bid < self.ask
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let path = match args.next() {
        Some(p) => std::path::PathBuf::from(p),
        None => dir.path().join("top_of_book.roda"),
    };
    let seconds: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2.0);
    let run_for = Duration::from_secs_f64(seconds);

    let mut book = SlotStore::<TopOfBook>::open_or_create(&path, SYMBOLS)?;
    if !book.torn_slots().is_empty() {
        println!(
            "rewriting {} slots left torn by a crashed writer",
            book.torn_slots().len()
        );
    }
    let start = Instant::now();
    for symbol in 0..SYMBOLS {
        book.set(symbol, &TopOfBook::new(symbol, 0, 0));
    }
    // The reader maps the file read-only, exactly as a process of its own would.
    let reader = SlotReader::<TopOfBook>::open(&path)?;
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut writes = 0u64;
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            // Relaxed: a stop flag; nothing is published through it.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let symbol = (rng % SYMBOLS as u64) as usize;
                    writes += 1;
                    let now = start.elapsed().as_nanos() as u64;
                    book.set(symbol, &TopOfBook::new(symbol, writes, now));
                }
            }
            (book, writes)
        })
    };

    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut reads, mut torn, mut missing) = (0u64, 0u64, 0u64);
            let mut samples = Vec::new();
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let sample_every = run_for / 5;
            let mut next_sample = sample_every / 2;
            // Relaxed: as above.
            while !stop.load(Ordering::Relaxed) {
                if samples.len() < 5 && start.elapsed() >= next_sample {
                    next_sample += sample_every;
                    let symbol = (rng % SYMBOLS as u64) as usize;
                    if let Some(quote) = reader.get(symbol) {
                        samples.push((symbol, quote, reader.version(symbol)));
                    }
                }
                for _ in 0..1024 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let symbol = (rng % SYMBOLS as u64) as usize;
                    reads += 1;
                    match reader.get(symbol) {
                        Some(quote) if quote.is_consistent() => {}
                        Some(_) => torn += 1,
                        None => missing += 1,
                    }
                }
            }
            (reads, torn, missing, samples)
        })
    };

    std::thread::sleep(run_for);
    stop.store(true, Ordering::Relaxed);
    let (mut book, writes) = writer.join().expect("writer panicked");
    let (reads, torn, missing, samples) = sampler.join().expect("reader panicked");
    let elapsed = start.elapsed().as_secs_f64();
    book.flush()?;

    println!("top of book for {SYMBOLS} symbols in {}", path.display());
    println!(
        "writes: {writes} ({:.1} M/s)   reads: {reads} ({:.1} M/s)   torn: {torn}   missing: {missing}",
        writes as f64 / elapsed / 1e6,
        reads as f64 / elapsed / 1e6,
    );
    for (symbol, q, version) in samples {
        println!(
            "  symbol {symbol:>5}  bid {:>8.2} x {:<4} ask {:>8.2} x {:<4} update {:>8} (version {version}) at {:.3} ms",
            q.bid,
            q.bid_size,
            q.ask,
            q.ask_size,
            q.seq,
            q.timestamp_ns as f64 / 1e6,
        );
    }
    assert_eq!(torn, 0, "a reader saw a torn quote");
    Ok(())
}

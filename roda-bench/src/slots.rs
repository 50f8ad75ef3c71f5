//! SlotStore under load: one writer thread updating 10,000 slots round-robin, one reader
//! thread sampling slots; every value carries a checksum, so a torn read would show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};

use crate::measure::{pin, two_cores};

pub const SLOTS: usize = 10_000;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Quote {
    seq: u64,
    bid: u64,
    ask: u64,
    check: u64,
}

impl Quote {
    fn new(seq: u64) -> Self {
        let (bid, ask) = (seq.wrapping_mul(31), seq.wrapping_mul(37));
        Quote {
            seq,
            bid,
            ask,
            check: seq ^ bid.rotate_left(7) ^ ask.rotate_left(19),
        }
    }
    fn sound(&self) -> bool {
        self.check == self.seq ^ self.bid.rotate_left(7) ^ self.ask.rotate_left(19)
    }
}

/// Result of one run.
pub struct SlotRun {
    pub writes: u64,
    pub reads: u64,
    pub torn: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

pub fn run(duration: Duration) -> SlotRun {
    let mut store = roda::SlotStore::<Quote>::in_memory(SLOTS).expect("slot store");
    let reader = store.reader();
    for i in 0..SLOTS {
        store.set(i, &Quote::new(i as u64));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (cw, cr) = two_cores();
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        pin(cw);
        let mut seq = SLOTS as u64;
        // Relaxed: a stop request; the join orders everything after.
        while !s.load(Ordering::Relaxed) {
            for _ in 0..1024 {
                store.set(seq as usize % SLOTS, &Quote::new(seq));
                seq += 1;
            }
        }
        seq - SLOTS as u64
    });
    let s = stop.clone();
    let sampler = std::thread::spawn(move || {
        pin(cr);
        let (mut reads, mut torn, mut retries, mut i) = (0u64, 0u64, 0u64, 0usize);
        // Relaxed: as above.
        while !s.load(Ordering::Relaxed) {
            for _ in 0..1024 {
                i = (i + 7919) % SLOTS;
                let (got, tries) = reader.get_with_retries(i);
                retries += u64::from(tries);
                match got {
                    Some(q) if q.sound() && q.seq as usize % SLOTS == i => {}
                    _ => torn += 1,
                }
                reads += 1;
            }
        }
        (reads, torn, retries)
    });
    let start = Instant::now();
    std::thread::sleep(duration);
    // Relaxed: see above.
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("writer");
    let (reads, torn, retries) = sampler.join().expect("reader");
    SlotRun {
        writes,
        reads,
        torn,
        retries,
        elapsed: start.elapsed(),
    }
}

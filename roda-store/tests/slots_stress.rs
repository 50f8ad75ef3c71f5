//! Stress: one writer thread overwrites a few slots as fast as it can while two reader
//! threads (one sharing the writer's mapping, one following the file through its own
//! read-only mapping) take snapshots. Every value carries a checksum of itself; a
//! single torn snapshot fails the test.
//!
//! Reads in total: `RODA_SLOTS_STRESS_READS` (default 10,000,000). CI runs it in release:
//! `cargo test --release -p roda-store --test slots_stress -- --nocapture`.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use roda_store::{SlotReader, SlotStore};

const SLOTS: usize = 4;
const WORDS: usize = 6;

/// `[serial, slot, serial * k .. , checksum]`: the last word hashes the others.
type Value = [u64; WORDS];

fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
    })
}

fn value(serial: u64, slot: usize) -> Value {
    let mut v = [
        serial,
        slot as u64,
        serial.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        !serial,
        serial.rotate_left(31),
        0,
    ];
    v[WORDS - 1] = checksum(&v[..WORDS - 1]);
    v
}

#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    values: u64,
    torn: u64,
}

fn read_until(reader: SlotReader<Value>, reads: u64) -> Tally {
    let mut tally = Tally::default();
    let mut last_serial = [0u64; SLOTS];
    let mut last_version = [0u64; SLOTS];
    for n in 0..reads {
        let slot = (n as usize) % SLOTS;
        tally.reads += 1;
        if let Some(v) = reader.get(slot) {
            tally.values += 1;
            if v[WORDS - 1] != checksum(&v[..WORDS - 1]) || v[1] != slot as u64 {
                tally.torn += 1;
                continue;
            }
            // Snapshots of one slot never go backwards.
            assert!(v[0] >= last_serial[slot], "slot {slot} went backwards");
            last_serial[slot] = v[0];
        }
        if n % 64 == 0 {
            let version = reader.version(slot);
            assert!(version >= last_version[slot]);
            last_version[slot] = version;
        }
    }
    tally
}

#[test]
fn no_torn_reads_under_contention() {
    let total: u64 = std::env::var("RODA_SLOTS_STRESS_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let per_reader = total.div_ceil(2);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.roda");
    let mut store = SlotStore::<Value>::create(&path, SLOTS).unwrap();
    let shared = store.reader();
    let follower = SlotReader::<Value>::open(&path).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let start = Instant::now();
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut serial = 0u64;
            // Relaxed: a stop flag; nothing is published through it.
            while !done.load(Ordering::Relaxed) {
                serial += 1;
                let slot = (serial as usize) % SLOTS;
                store.set(slot, &value(serial, slot));
            }
            serial
        })
    };
    let readers = [shared, follower].map(|r| std::thread::spawn(move || read_until(r, per_reader)));
    let tallies: Vec<Tally> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    let sets = writer.join().unwrap();
    let elapsed = start.elapsed();

    let reads: u64 = tallies.iter().map(|t| t.reads).sum();
    let values: u64 = tallies.iter().map(|t| t.values).sum();
    let torn: u64 = tallies.iter().map(|t| t.torn).sum();
    println!(
        "slots stress: {reads} reads ({values} values) by 2 readers, {sets} sets, \
         {torn} torn, in {elapsed:.2?}"
    );
    assert_eq!(torn, 0, "{torn} torn snapshots");
    assert!(reads >= total);
    assert!(sets > 0);
}

//! One producer thread, one consumer thread, 24-byte records: Roda's journal against
//! peer queues, a hand-written atomic ring (the protocol floor), a ring of 96 KiB blocks
//! (the cross-core ceiling: see `block_ring`) and a single-thread memcpy of the same bytes, once through memory and once through buffers that stay in
//! cache (the bandwidth bounds). Threads pinned to distinct cores.
//! The clock runs from the start barrier until the consumer has every record. Every
//! spinning consumer pauses briefly (32 `spin_loop`s) after an empty poll and every
//! spinning producer issues a `spin_loop` after a full push, as real code would, so no
//! implementation is measured hammering a shared line.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::measure::{pin, two_cores};

pub type Msg = [u64; 3];

/// Ring capacity of the bounded peers.
const RING: usize = 1 << 16;

pub const IMPLS: [&str; 12] = [
    "roda-journal-next",
    "roda-journal-batch",
    "roda-segmented-next",
    "roda-segmented-batch",
    "rtrb",
    "crossbeam-channel",
    "std-sync-channel",
    "disruptor",
    "atomic-ring",
    "block-ring",
    "memcpy",
    "memcpy-in-cache",
];

/// Records per copy of `memcpy-in-cache`: the batch consumers' batch size; source and
/// destination (96 KiB each) stay in a core's L2 cache.
const IN_CACHE: usize = 4096;

/// What every spinning consumer does after an empty poll: a short pause, so that it
/// does not pull the producer's cache line back on every iteration.
#[inline]
fn idle() {
    for _ in 0..32 {
        std::hint::spin_loop();
    }
}

/// The batch consumers' loop: `poll` adds one batch to the checksum and returns its
/// length (0 when nothing new is published, and the consumer pauses).
fn consume_batches(n: u64, mut poll: impl FnMut(&mut u64) -> u64) -> u64 {
    let (mut sum, mut seen) = (0u64, 0);
    while seen < n {
        let got = poll(&mut sum);
        seen += got;
        if got == 0 {
            idle();
        }
    }
    sum
}

/// Adds `batch`'s checksums to `sum`; its length.
#[inline]
fn add_batch(sum: &mut u64, batch: &[Msg]) -> u64 {
    for m in batch {
        *sum = sum.wrapping_add(m[2]);
    }
    batch.len() as u64
}

/// A Roda reader seen by the SPSC consumer: one record, or one batch, at a time.
trait RodaCursor {
    fn one(&mut self) -> Option<&Msg>;
    fn batch(&mut self, max: usize) -> &[Msg];
}

impl RodaCursor for roda::JournalReader<Msg> {
    #[inline]
    fn one(&mut self) -> Option<&Msg> {
        self.next()
    }
    #[inline]
    fn batch(&mut self, max: usize) -> &[Msg] {
        self.next_batch(max)
    }
}

impl RodaCursor for roda::SegmentedReader<Msg> {
    #[inline]
    fn one(&mut self) -> Option<&Msg> {
        self.next()
    }
    #[inline]
    fn batch(&mut self, max: usize) -> &[Msg] {
        self.next_batch(max)
    }
}

/// The consumer of the Roda rows: `n` records one at a time or in batches; the checksum.
fn consume_roda(n: u64, reader: &mut impl RodaCursor, batch: bool) -> u64 {
    if batch {
        return consume_batches(n, |sum| add_batch(sum, reader.batch(4096)));
    }
    let mut sum = 0u64;
    let mut seen = 0;
    while seen < n {
        if let Some(m) = reader.one() {
            sum = sum.wrapping_add(m[2]);
            seen += 1;
        } else {
            idle();
        }
    }
    sum
}

fn msg(i: u64) -> Msg {
    [i, i ^ 0x5555, i.wrapping_mul(3)]
}

/// Runs the producer body on one pinned thread and the consumer body on another;
/// returns the consumer's checksum and the time from the barrier to its end.
fn pair<P, C>(producer: P, consumer: C) -> (u64, Duration)
where
    P: FnOnce() + Send + 'static,
    C: FnOnce() -> u64 + Send + 'static,
{
    let (pc, cc) = two_cores();
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let prod = std::thread::spawn(move || {
        pin(pc);
        b.wait();
        producer();
    });
    let cons = std::thread::spawn(move || {
        pin(cc);
        barrier.wait();
        let start = Instant::now();
        let sum = consumer();
        (sum, start.elapsed())
    });
    prod.join().expect("producer");
    cons.join().expect("consumer")
}

fn expected_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, i| s.wrapping_add(msg(i)[2]))
}

/// `IN_CACHE` records starting on a page boundary, inside `buffer`.
fn page_aligned(buffer: &mut [Msg]) -> &mut [Msg] {
    // Records are 24 bytes and the buffer 8-aligned, so one of the first 512 starts a page.
    let skip = (0..512)
        .find(|&i| (buffer.as_ptr() as usize + i * std::mem::size_of::<Msg>()) % 4096 == 0)
        .expect("a page-aligned record");
    &mut buffer[skip..skip + IN_CACHE]
}

/// `memcpy-in-cache`: the bytes of `n` messages copied [`IN_CACHE`] records at a time
/// between two buffers that stay in cache (the source holds the first `IN_CACHE`
/// messages); the time of the copies alone. Panics if a copy is wrong.
///
/// Both buffers start on a page boundary: the platform's `memcpy` can be many times
/// slower when source and destination sit a few bytes apart modulo 4 KiB (AMD Zen 3's
/// `rep movsb`), and this row is memcpy at its best.
fn memcpy_in_cache(n: u64) -> Duration {
    let mut src_buffer: Vec<Msg> = vec![[0u64; 3]; IN_CACHE + 512];
    let mut dst_buffer: Vec<Msg> = vec![[1u64; 3]; IN_CACHE + 512];
    let src = page_aligned(&mut src_buffer);
    for (i, m) in src.iter_mut().enumerate() {
        *m = msg(i as u64);
    }
    let src: &[Msg] = src;
    let dst = page_aligned(&mut dst_buffer);
    // Warm both buffers into this core's cache outside the clock.
    dst.copy_from_slice(src);
    let (full, rest) = (n / IN_CACHE as u64, n as usize % IN_CACHE);
    let start = Instant::now();
    for _ in 0..full {
        // black_box: every copy happens, none is merged with the next.
        std::hint::black_box(&mut *dst).copy_from_slice(std::hint::black_box(src));
    }
    std::hint::black_box(&mut *dst)[..rest].copy_from_slice(&src[..rest]);
    let elapsed = start.elapsed();
    assert!(*dst == *src, "memcpy-in-cache copied wrong bytes");
    elapsed
}

/// Runs `name` over `n` messages: (messages, elapsed). Panics if a message is lost.
pub fn run(name: &str, n: u64) -> (u64, Duration) {
    if name == "memcpy-in-cache" {
        return (n, memcpy_in_cache(n));
    }
    let (sum, elapsed) = match name {
        "roda-journal-next" | "roda-journal-batch" => {
            // Pre-faulted (on huge pages where the kernel has them, as the engine's
            // journals are) outside the clock: this measures the protocol, not page faults.
            let mut journal = roda::JournalStore::<Msg>::options()
                .populate(true)
                .huge_pages(true)
                .in_memory(n as usize)
                .expect("journal");
            let mut reader = journal.reader();
            let batch = name.ends_with("batch");
            pair(
                move || {
                    for i in 0..n {
                        journal.append(&msg(i));
                    }
                },
                move || consume_roda(n, &mut reader, batch),
            )
        }
        "roda-segmented-next" | "roda-segmented-batch" => {
            // The recycled ring: 4 segments holding RING records in all, like the bounded
            // peers, pre-faulted outside the clock; the producer appends one record at a
            // time (one Release store each; `append` spins, then yields, while the ring
            // is full), the consumer reads one record or one batch at a time.
            let mut journal = roda::SegmentedJournal::<Msg>::options()
                .populate(true)
                .huge_pages(true)
                .in_memory(RING / 4, 4)
                .expect("segmented journal");
            let mut reader = journal.reader();
            let batch = name.ends_with("batch");
            pair(
                move || {
                    for i in 0..n {
                        journal.append(&msg(i));
                    }
                },
                move || consume_roda(n, &mut reader, batch),
            )
        }
        "rtrb" => {
            let (mut p, mut c) = rtrb::RingBuffer::<Msg>::new(RING);
            pair(
                move || {
                    for i in 0..n {
                        let mut m = msg(i);
                        while let Err(rtrb::PushError::Full(back)) = p.push(m) {
                            m = back;
                            std::hint::spin_loop();
                        }
                    }
                },
                move || {
                    let mut sum = 0u64;
                    let mut seen = 0;
                    while seen < n {
                        if let Ok(m) = c.pop() {
                            sum = sum.wrapping_add(m[2]);
                            seen += 1;
                        } else {
                            idle();
                        }
                    }
                    sum
                },
            )
        }
        "crossbeam-channel" => {
            let (tx, rx) = crossbeam_channel::bounded::<Msg>(RING);
            pair(
                move || {
                    for i in 0..n {
                        tx.send(msg(i)).expect("send");
                    }
                },
                move || (0..n).fold(0u64, |s, _| s.wrapping_add(rx.recv().expect("recv")[2])),
            )
        }
        "std-sync-channel" => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(RING);
            pair(
                move || {
                    for i in 0..n {
                        tx.send(msg(i)).expect("send");
                    }
                },
                move || (0..n).fold(0u64, |s, _| s.wrapping_add(rx.recv().expect("recv")[2])),
            )
        }
        "disruptor" => {
            use disruptor::{build_single_producer, BusySpin, ProcessorSettings, Producer};
            use std::sync::atomic::{AtomicU64, Ordering};
            let (pc, cc) = two_cores();
            let total = Arc::new(AtomicU64::new(0));
            let t = total.clone();
            let mut sum = 0u64;
            let processor = move |e: &Msg, _seq: i64, end_of_batch: bool| {
                sum = sum.wrapping_add(e[2]);
                if end_of_batch {
                    // Relaxed: read after the disruptor joins its thread.
                    t.store(sum, Ordering::Relaxed);
                }
            };
            // The producer thread builds the disruptor before pinning itself: the
            // library checks the consumer's core against this thread's affinity.
            std::thread::spawn(move || {
                let mut producer = build_single_producer(RING, || [0u64; 3], BusySpin)
                    .pin_at_core(cc)
                    .handle_events_with(processor)
                    .build();
                pin(pc);
                let start = Instant::now();
                for i in 0..n {
                    producer.publish(|e| *e = msg(i));
                }
                // Dropping the producer waits until every event is processed.
                drop(producer);
                let elapsed = start.elapsed();
                (total.load(Ordering::Relaxed), elapsed)
            })
            .join()
            .expect("disruptor producer")
        }
        "atomic-ring" => {
            let (mut p, mut c) = crate::ring::ring::<Msg>(RING);
            pair(
                move || {
                    for i in 0..n {
                        while !p.push(msg(i)) {
                            std::hint::spin_loop();
                        }
                    }
                },
                move || {
                    let mut sum = 0u64;
                    let mut seen = 0;
                    while seen < n {
                        if let Some(m) = c.pop() {
                            sum = sum.wrapping_add(m[2]);
                            seen += 1;
                        } else {
                            idle();
                        }
                    }
                    sum
                },
            )
        }
        "block-ring" => {
            let (producer, consumer) = crate::block_ring::pair(n, msg);
            pair(producer, consumer)
        }
        "memcpy" => {
            let src: Vec<Msg> = (0..n).map(msg).collect();
            let mut dst: Vec<Msg> = vec![[1u64; 3]; n as usize];
            let start = Instant::now();
            dst.copy_from_slice(&src);
            let elapsed = start.elapsed();
            let sum = dst.iter().fold(0u64, |s, m| s.wrapping_add(m[2]));
            (sum, elapsed)
        }
        other => panic!("unknown spsc implementation {other}"),
    };
    assert_eq!(sum, expected_sum(n), "{name} lost or corrupted messages");
    (n, elapsed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_cache_buffers_start_on_a_page() {
        let mut buffer = vec![[0u64; 3]; super::IN_CACHE + 512];
        let window = super::page_aligned(&mut buffer);
        assert_eq!(window.as_ptr() as usize % 4096, 0);
        assert_eq!(window.len(), super::IN_CACHE);
    }

    #[test]
    fn in_cache_copy_checks_its_bytes() {
        // A size that is not a multiple of the window exercises the tail copy too.
        super::memcpy_in_cache(3 * super::IN_CACHE as u64 + 17);
    }
}

//! The ceiling of any hand-off between two cores: records written by one core and read
//! by the other in blocks of [`BLOCK`] records (96 KiB of 24-byte records), one atomic
//! store per block on each side, so synchronisation costs next to nothing and what
//! remains is moving the records' cache lines from the producer's core to the
//! consumer's. No queue that hands records across cores one line at a time can beat it;
//! the SPSC report sets it beside the single-core `memcpy-in-cache` row.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Records per block: the batch consumers' batch size.
pub const BLOCK: usize = 4096;
/// Blocks in the ring: 8 x 96 KiB, which stays in a core's L2 cache on the machines the
/// report runs on (1 MiB on the AMD VM, 4 MiB on the Intel VM).
const BLOCKS: usize = 8;

type Msg = crate::spsc::Msg;

#[repr(align(128))]
struct Counter(AtomicU64);

struct Shared {
    blocks: Box<[UnsafeCell<[Msg; BLOCK]>]>,
    /// Blocks the producer has filled.
    filled: Counter,
    /// Blocks the consumer has read.
    read: Counter,
}

// SAFETY: the producer writes block `b` only once the consumer's Release store made
// `read + BLOCKS > b` (the block's previous lap is read), and the consumer reads block `b`
// only once the producer's Release store made `filled > b`: no block is written and read
// at the same time, and each side is one thread.
unsafe impl Sync for Shared {}

/// The two bodies of a hand-off of `n` records `make(0) .. make(n - 1)`: the producer's,
/// and the consumer's, which returns the sum of the records' third words.
pub fn pair<F: Fn(u64) -> Msg + Send + 'static>(
    n: u64,
    make: F,
) -> (
    impl FnOnce() + Send + 'static,
    impl FnOnce() -> u64 + Send + 'static,
) {
    let shared = Arc::new(Shared {
        blocks: (0..BLOCKS)
            .map(|_| UnsafeCell::new([[0u64; 3]; BLOCK]))
            .collect(),
        filled: Counter(AtomicU64::new(0)),
        read: Counter(AtomicU64::new(0)),
    });
    let total_blocks = n.div_ceil(BLOCK as u64);
    let producer_side = Arc::clone(&shared);
    let producer = move || {
        let s = producer_side;
        let mut next = 0u64;
        for b in 0..total_blocks {
            // Acquire pairs with the consumer's Release store of `read`: its reads of
            // this block's previous lap are done before these writes.
            while s.read.0.load(Ordering::Acquire) + BLOCKS as u64 <= b {
                std::hint::spin_loop();
            }
            // SAFETY: the consumer finished this block's previous lap (above) and does
            // not read it again before the Release store below; only this thread writes.
            let block = unsafe { &mut *s.blocks[b as usize % BLOCKS].get() };
            let len = (n - b * BLOCK as u64).min(BLOCK as u64) as usize;
            for slot in &mut block[..len] {
                *slot = make(next);
                next += 1;
            }
            // Release pairs with the consumer's Acquire load of `filled`.
            s.filled.0.store(b + 1, Ordering::Release);
        }
    };
    let consumer = move || {
        let s = shared;
        let mut sum = 0u64;
        for b in 0..total_blocks {
            // Acquire pairs with the producer's Release store of `filled`.
            while s.filled.0.load(Ordering::Acquire) <= b {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
            // SAFETY: the producer published this block (above) and writes it again only
            // after the Release store of `read` below.
            let block = unsafe { &*s.blocks[b as usize % BLOCKS].get() };
            let len = (n - b * BLOCK as u64).min(BLOCK as u64) as usize;
            for m in &block[..len] {
                sum = sum.wrapping_add(m[2]);
            }
            // Release pairs with the producer's Acquire load of `read`.
            s.read.0.store(b + 1, Ordering::Release);
        }
        sum
    };
    (producer, consumer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_record_crosses_once_in_order() {
        let n = 3 * super::BLOCK as u64 * 8 + 123;
        let (p, c) = super::pair(n, |i| [i, 0, i * 7]);
        let t = std::thread::spawn(p);
        let sum = c();
        t.join().unwrap();
        assert_eq!(sum, (0..n).fold(0u64, |s, i| s.wrapping_add(i * 7)));
    }
}

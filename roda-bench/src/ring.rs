//! A minimal hand-written single-producer single-consumer ring of `Copy` values: the
//! floor for a bounded SPSC protocol (one Release store to publish, one Acquire load to
//! observe, cached opposite indices, head and tail on separate cache lines).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[repr(align(128))]
struct Padded(AtomicUsize);

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next index the producer writes.
    tail: Padded,
    /// Next index the consumer reads.
    head: Padded,
}

// SAFETY: a slot is written only by the producer while the consumer cannot read it
// (index >= tail), and read only by the consumer after the producer's Release store of
// tail; the producer reuses it only after the consumer's Release store of head.
unsafe impl<T: Send> Sync for Shared<T> {}

pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    head_cache: usize,
}

pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    tail_cache: usize,
}

/// A ring of `capacity` (rounded up to a power of two) slots.
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.next_power_of_two();
    let shared = Arc::new(Shared {
        slots: (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect(),
        mask: capacity - 1,
        tail: Padded(AtomicUsize::new(0)),
        head: Padded(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            head: 0,
            tail_cache: 0,
        },
    )
}

impl<T: Copy> Producer<T> {
    /// Pushes `value`; false when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> bool {
        let cap = self.shared.mask + 1;
        if self.tail - self.head_cache == cap {
            // Acquire pairs with the consumer's Release store of head: the slot's read
            // finished before we overwrite it.
            self.head_cache = self.shared.head.0.load(Ordering::Acquire);
            if self.tail - self.head_cache == cap {
                return false;
            }
        }
        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: index >= head, so the consumer does not read this slot now (see Sync).
        unsafe { (*slot.get()).write(value) };
        self.tail += 1;
        // Release pairs with the consumer's Acquire load of tail.
        self.shared.tail.0.store(self.tail, Ordering::Release);
        true
    }
}

impl<T: Copy> Consumer<T> {
    /// Pops the oldest value, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cache {
            // Acquire pairs with the producer's Release store of tail.
            self.tail_cache = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        let slot = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: index < tail, so the producer wrote the slot and published it.
        let value = unsafe { (*slot.get()).assume_init() };
        self.head += 1;
        // Release pairs with the producer's Acquire load of head.
        self.shared.head.0.store(self.head, Ordering::Release);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_passes_values_in_order_across_threads() {
        let (mut p, mut c) = super::ring::<u64>(8);
        let t = std::thread::spawn(move || {
            for i in 0..10_000u64 {
                while !p.push(i) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0;
        while next < 10_000 {
            if let Some(v) = c.pop() {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
        assert_eq!(c.pop(), None);
    }
}

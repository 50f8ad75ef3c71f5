//! The slot store's per-slot seqlock, written once over a [`Region`](crate::file::region::Region).
//!
//! Each slot is `[ sequence word | payload words ]`: the payload is the record's bytes
//! padded with zeros to whole 8-byte words, and every word (sequence and payload) is
//! only ever accessed as an `AtomicU64`, so a reader racing a writer reads stale or new
//! words, never undefined bytes.
//!
//! The sequence word counts half-steps: even = stable, odd = a `set` is under way;
//! `sequence / 2` is the number of completed `set`s (the slot's version), and 0 means
//! the slot was never set. Bit 63 ([`TORN`]) marks a slot that a writer found odd when
//! it opened the file: left mid-write by a writer that died, so no reader waits for it.
//!
//! Writer (the only one, `&mut` in-process, file lock across processes):
//! `seq = s+1` (Relaxed), `fence(Release)`, payload words (Relaxed), `seq = s+2` (Release).
//! Reader: `s1 = seq` (Relaxed + `fence(Acquire)`), retry while odd, payload words
//! (Relaxed), `fence(Acquire)`, `s2 = seq` (Relaxed), retry unless `s1 == s2`.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::file::backing::Backing;
use crate::file::header::stride_for;
use crate::file::lock::WriterProbe;
use crate::sync::{fence, AtomicU64, Ordering};

/// Sequence bit 63: the slot was left mid-write by a dead writer (set by the next
/// writer when it opens the file, cleared by the next `set` of the slot).
pub(crate) const TORN: u64 = 1 << 63;

/// Attempts that only spin before a reader starts yielding its time slice.
const SPIN_ATTEMPTS: u32 = 128;
/// While a slot stays odd, how many yielding attempts pass between writer liveness checks.
const YIELDS_PER_CHECK: u32 = 256;

/// What one read of a slot found.
pub(crate) enum Read<T> {
    /// A consistent snapshot of the slot's last completed `set`.
    Value(T),
    /// The slot was never set.
    Empty,
    /// The slot was left mid-write by a writer that is gone.
    Torn,
}

/// State shared by a slot store's writer and all of its in-process readers.
pub(crate) struct SlotCore<T> {
    pub(crate) backing: Backing,
    /// Tells whether the writer is alive (by its lock, never its pid).
    probe: WriterProbe,
    #[cfg_attr(roda_loom, allow(dead_code))]
    data: NonNull<u8>,
    stride: usize,
    slots: usize,
    /// Payload words per slot.
    words: usize,
    _records: PhantomData<T>,
}

// SAFETY: the core owns its region (Send + Sync); every access to slot memory is an
// atomic access, so sharing the core between threads cannot race on plain bytes.
unsafe impl<T: Send + Sync> Send for SlotCore<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for SlotCore<T> {}

impl<T: bytemuck::Pod> SlotCore<T> {
    pub(crate) fn new(backing: Backing) -> Self {
        let slots = backing.info.capacity as usize;
        let stride = backing.info.stride as usize;
        let words = std::mem::size_of::<T>().div_ceil(8);
        debug_assert_eq!(stride, stride_for(std::mem::size_of::<T>()));
        let data = backing.data();
        SlotCore {
            probe: WriterProbe::new(backing.path.as_deref()),
            backing,
            data,
            stride,
            slots,
            words,
            _records: PhantomData,
        }
    }

    /// Number of slots.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots
    }

    /// Word `word` of slot `index` (word 0 is the sequence, 1.. the payload).
    #[cfg(not(roda_loom))]
    #[inline(always)]
    fn word(&self, index: usize, word: usize) -> &AtomicU64 {
        debug_assert!(index < self.slots && word <= self.words);
        // SAFETY: callers pass `index < slots` and `word <= words`, so the word lies in
        // the data area (slots * stride bytes, checked against the region when it was
        // mapped: `8 + 8 * words <= stride`); it is 8-aligned (page-aligned data, stride a
        // multiple of 64); the region lives as long as `self` and never moves; slot words
        // are only ever accessed atomically.
        unsafe {
            &*self
                .data
                .as_ptr()
                .add(index * self.stride + word * 8)
                .cast::<AtomicU64>()
        }
    }

    /// Word `word` of slot `index`: loom's atomics live beside the bytes, in the region.
    #[cfg(roda_loom)]
    fn word(&self, index: usize, word: usize) -> &AtomicU64 {
        assert!(index < self.slots && word <= self.words);
        let offset = self.backing.info.data_offset as usize + index * self.stride + word * 8;
        self.backing.region.atomic(offset)
    }

    /// The sequence word of slot `index` as stored, for the writer, which is its only
    /// writer and so reads back its own last store.
    fn writer_seq(&self, index: usize) -> u64 {
        // Relaxed: only the writer that holds the store calls this (at open), and the
        // previous writer's stores are ordered before it by the file lock and the mapping.
        self.word(index, 0).load(Ordering::Relaxed)
    }

    /// Stores `item` in slot `index` under the seqlock; `seq` is the slot's sequence
    /// word as this writer last stored (or found) it. Returns the new sequence word.
    ///
    /// Only the single writer calls this (enforced by `&mut SlotStore` and the file
    /// lock), with `index < len()`. The writer keeps every slot's sequence in its own
    /// memory rather than loading it here: the hot path then only stores to the slot.
    #[inline]
    pub(crate) fn write(&self, index: usize, seq: u64, item: &T) -> u64 {
        assert!(index < self.slots);
        let word0 = self.word(index, 0);
        // Odd start: a slot left torn (possibly flagged) continues from its odd value,
        // so the completed set leaves it even with version = completed sets.
        let start = (seq & !TORN) | 1;
        // Relaxed: the Release fence below orders this store before the payload stores.
        word0.store(start, Ordering::Relaxed);
        // Release fence pairs with the reader's Acquire fence before its second sequence
        // load (`try_read_bytes`): a reader that sees any payload word of this set sees the odd
        // sequence stored above (or later) and retries.
        if !skip_writer_fence() {
            fence(Ordering::Release);
        }
        let bytes = bytemuck::bytes_of(item);
        let mut chunks = bytes.chunks_exact(8);
        let mut w = 1;
        for chunk in &mut chunks {
            let value = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
            // Relaxed: ordered by the fence above and the Release store below.
            self.word(index, w).store(value, Ordering::Relaxed);
            w += 1;
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            // Relaxed: as above.
            self.word(index, w)
                .store(u64::from_ne_bytes(last), Ordering::Relaxed);
        }
        // Release pairs with the reader's Relaxed load + Acquire fence of its first
        // sequence load (`load_seq`): a reader that sees this even value sees every
        // payload word stored above.
        word0.store(start + 1, Ordering::Release);
        start + 1
    }

    /// The sequence word of slot `index` as a reader sees it, with Acquire semantics.
    #[inline]
    fn reader_seq(&self, index: usize) -> u64 {
        load_seq(self.word(index, 0))
    }

    /// One attempt at a snapshot of slot `index` (`< len()`): `Ok` with what was found,
    /// or `Err(seq)` when the slot was odd (`seq`) or changed under the read.
    #[inline]
    pub(crate) fn try_read(&self, index: usize) -> Result<Read<T>, u64> {
        let mut out = T::zeroed();
        let found = try_read_bytes(|w| self.word(index, w), bytemuck::bytes_of_mut(&mut out))?;
        Ok(match found {
            Found::Value(_) => Read::Value(out),
            Found::Empty => Read::Empty,
            Found::Torn => Read::Torn,
        })
    }

    /// A consistent snapshot of slot `index` (`< len()`): retries while a `set` is under
    /// way (spinning, then yielding); a slot that stays odd while its writer is gone is
    /// [`Read::Torn`]. Never blocks the writer.
    #[inline]
    pub(crate) fn read(&self, index: usize) -> Read<T> {
        self.read_counted(index).0
    }

    /// [`read`](Self::read), with the number of retries it took (0 when the first
    /// attempt found a stable slot).
    #[inline]
    pub(crate) fn read_counted(&self, index: usize) -> (Read<T>, u32) {
        match self.try_read(index) {
            Ok(read) => (read, 0),
            Err(_) => self.read_contended(index),
        }
    }

    #[cold]
    #[inline(never)]
    fn read_contended(&self, index: usize) -> (Read<T>, u32) {
        let (read, retries) = retry_read(|| self.try_read(index), || self.writer_alive());
        (read.unwrap_or(Read::Torn), retries)
    }

    /// Sets completed on slot `index` (`< len()`).
    #[inline]
    pub(crate) fn version(&self, index: usize) -> u64 {
        (self.reader_seq(index) & !TORN) / 2
    }

    /// Whether slot `index` (`< len()`) was left mid-write by a writer that is gone.
    pub(crate) fn is_torn(&self, index: usize) -> bool {
        let seq = self.reader_seq(index);
        seq & TORN != 0 || (seq & 1 == 1 && !self.writer_alive())
    }

    /// Every slot's sequence word, for a writer that just opened the store, plus the
    /// slots left odd or flagged torn; flags each of those with [`TORN`] so readers stop
    /// waiting for them. Only a writer that holds the store calls this, before it sets
    /// anything; `scan == false` (a store it just created, all zero) skips the reads.
    pub(crate) fn open_sequences(&self, scan: bool) -> (Box<[u64]>, Vec<usize>) {
        let mut seqs = vec![0u64; self.slots].into_boxed_slice();
        let mut torn = Vec::new();
        if !scan {
            return (seqs, torn);
        }
        for (index, slot_seq) in seqs.iter_mut().enumerate() {
            let mut seq = self.writer_seq(index);
            if seq & (TORN | 1) != 0 {
                seq |= TORN;
                // Relaxed: the flag publishes no data; a reader that misses it still
                // finds the writer gone or waits until it sees the flag.
                self.word(index, 0).store(seq, Ordering::Relaxed);
                torn.push(index);
            }
            *slot_seq = seq;
        }
        (seqs, torn)
    }

    /// Whether a writer holds the store (its liveness lock; see `file::lock`), so a
    /// slot it left odd may still complete. The header's pid plays no part: it means
    /// nothing in another pid namespace and may name an unrelated process once reused.
    fn writer_alive(&self) -> bool {
        self.probe.writer_alive()
    }
}

/// The slot sequence word `seq` as a reader sees it, with Acquire semantics.
#[inline(always)]
pub(crate) fn load_seq(seq: &AtomicU64) -> u64 {
    // Relaxed load + Acquire fence pairs with the Release store that ends
    // `SlotCore::write`: the payload of the set that stored this value is visible after
    // the fence. (A follower's mapping is read-only, where only Relaxed atomic loads are
    // allowed.)
    let value = seq.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    value
}

/// What one attempt at a slot found; a value's bytes went to the caller's buffer.
pub(crate) enum Found {
    /// A consistent copy of the set that left this (even, untorn) sequence word.
    Value(u64),
    /// The slot was never set.
    Empty,
    /// The slot is flagged torn.
    Torn,
}

/// The reader's half of the seqlock, once, at the byte level: one attempt at a
/// consistent copy of a slot's payload into `out` (the record's `out.len()` bytes).
/// `word(0)` is the slot's sequence word and `word(1..)` its payload words; every word
/// is read only as an `AtomicU64`. Returns `Ok` with what was found, or `Err(seq)` when
/// the slot was odd (`seq`) or changed under the read (`out` then holds garbage).
///
/// The typed reader (`SlotCore::try_read`) and the untyped one (`StoreFile`) both call
/// this, so there is one implementation of the protocol to check.
#[inline(always)]
pub(crate) fn try_read_bytes<'a>(
    word: impl Fn(usize) -> &'a AtomicU64,
    out: &mut [u8],
) -> Result<Found, u64> {
    let s1 = load_seq(word(0));
    if s1 & TORN != 0 {
        return Ok(Found::Torn);
    }
    if s1 & 1 == 1 {
        return Err(s1);
    }
    if s1 == 0 {
        return Ok(Found::Empty);
    }
    let mut chunks = out.chunks_exact_mut(8);
    let mut w = 1;
    for chunk in &mut chunks {
        // Relaxed: validated by the sequence check below.
        let value = word(w).load(Ordering::Relaxed);
        chunk.copy_from_slice(&value.to_ne_bytes());
        w += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // Relaxed: as above.
        let value = word(w).load(Ordering::Relaxed);
        let n = tail.len();
        tail.copy_from_slice(&value.to_ne_bytes()[..n]);
    }
    // Acquire fence pairs with the writer's Release fence after its odd store
    // (`SlotCore::write`): if any payload load above saw a later set's word, the load
    // below sees that set's odd sequence (or later) and the snapshot is discarded.
    if !skip_reader_fence() {
        fence(Ordering::Acquire);
    }
    // Relaxed: ordered by the fence above.
    let s2 = word(0).load(Ordering::Relaxed);
    if s1 == s2 {
        Ok(Found::Value(s1))
    } else {
        Err(s2)
    }
}

/// Retries `attempt` (one [`try_read_bytes`] or a wrapper of it) until it finds
/// something: spinning at first, then yielding. While the slot stays odd it asks
/// `writer_alive` after the spin phase and then every so often; `None` when the writer
/// is gone (the slot is torn). Never blocks the writer. Also returns how many
/// attempts it made (the reader's retries).
#[cold]
#[inline(never)]
pub(crate) fn retry_read<R>(
    mut attempt: impl FnMut() -> Result<R, u64>,
    writer_alive: impl Fn() -> bool,
) -> (Option<R>, u32) {
    let mut attempts: u32 = 0;
    loop {
        attempts = attempts.saturating_add(1);
        backoff(attempts);
        match attempt() {
            Ok(read) => return (Some(read), attempts),
            // Odd: check the writer after the spin phase, then every so often.
            Err(seq) if seq & 1 == 1 => {
                if attempts >= SPIN_ATTEMPTS
                    && (attempts - SPIN_ATTEMPTS) % YIELDS_PER_CHECK == 0
                    && !writer_alive()
                {
                    return (None, attempts);
                }
            }
            // Changed under the read: a live writer moved on; try again.
            Err(_) => {}
        }
    }
}

/// Waits a little before retry `attempts`: spins at first, then yields the CPU.
#[inline]
fn backoff(attempts: u32) {
    #[cfg(roda_loom)]
    {
        let _ = attempts;
        loom::thread::yield_now();
    }
    #[cfg(not(roda_loom))]
    if attempts < SPIN_ATTEMPTS {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_writer_fence() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_writer_fence() -> bool {
    crate::loom_hooks::skip_writer_fence()
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_reader_fence() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_reader_fence() -> bool {
    crate::loom_hooks::skip_reader_fence()
}

#[cfg(all(test, not(roda_loom)))]
mod tests {
    use super::*;

    #[test]
    fn strides() {
        assert_eq!(stride_for(1), 64);
        assert_eq!(stride_for(8), 64);
        assert_eq!(stride_for(56), 64);
        assert_eq!(stride_for(57), 128);
        assert_eq!(stride_for(120), 128);
        assert_eq!(stride_for(121), 192);
    }
}

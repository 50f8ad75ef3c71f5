//! The journal's publish protocol, written once over a [`Region`](crate::file::region::Region):
//! the writer fills records past the published count, then moves the count with one
//! Release store; readers load the count and may view every record below it.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::file::backing::Backing;
use crate::file::header::OFF_WRITE_SEQ;
use crate::file::options::Settings;
#[cfg(not(roda_loom))]
use crate::file::pretouch::{Followed, Position};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::wake::Waker;

/// State shared by a journal's writer and all of its in-process readers.
pub(crate) struct JournalCore<T> {
    pub(crate) backing: Backing,
    data: NonNull<T>,
    write_seq: NonNull<AtomicU64>,
    capacity: usize,
    /// The wake words, when the journal has them and this process can write them.
    pub(crate) wake: Option<Waker>,
    /// The writer may prefetch lines ahead of it for writing (`prefetch_for_write`).
    prefetch: bool,
    _records: PhantomData<T>,
}

// SAFETY: the core owns its region (Send + Sync) and only hands out `&T` for records
// that are published and therefore immutable; `T: Send + Sync` by the Record bound.
unsafe impl<T: Send + Sync> Send for JournalCore<T> {}
// SAFETY: as above; every shared access to mutable state goes through `write_seq`.
unsafe impl<T: Send + Sync> Sync for JournalCore<T> {}

impl<T> JournalCore<T> {
    pub(crate) fn new(backing: Backing) -> Self {
        Self::with_settings(backing, &Settings::default())
    }

    /// A core whose sleeping readers use the safety timeout of `settings`.
    pub(crate) fn with_settings(backing: Backing, settings: &Settings) -> Self {
        let capacity = backing.info.capacity as usize;
        let data = backing.data().cast::<T>();
        let write_seq = NonNull::from(backing.atomic(OFF_WRITE_SEQ));
        let wake = crate::wake::for_backing(&backing, settings.safety_timeout());
        JournalCore {
            backing,
            data,
            write_seq,
            capacity,
            wake,
            prefetch: write_prefetch_available(),
            _records: PhantomData,
        }
    }

    /// The data area (record 0).
    #[inline]
    pub(crate) fn data_ptr(&self) -> NonNull<T> {
        self.data
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn write_seq(&self) -> &AtomicU64 {
        // SAFETY: points into `self.backing.region`, which lives as long as `self` and
        // never moves (mapped or boxed memory).
        unsafe { self.write_seq.as_ref() }
    }

    /// How many records readers may view: every record below this is fully written.
    #[inline]
    pub(crate) fn published(&self) -> u64 {
        // A foreign or damaged file could hold any value: never index past the data.
        self.published_raw().min(self.capacity as u64)
    }

    /// The write sequence exactly as stored.
    #[inline]
    pub(crate) fn published_raw(&self) -> u64 {
        load_write_seq(self.write_seq())
    }

    /// Makes records below `len` visible to readers, and wakes sleeping readers when
    /// the journal has waking on.
    #[inline]
    pub(crate) fn publish(&self, len: u64) {
        // Release pairs with the Relaxed load + Acquire fence in `load_write_seq`: the record
        // writes before this store happen-before any reader's view of them.
        self.write_seq().store(len, publish_ordering());
        if let Some(wake) = &self.wake {
            wake.notify();
        }
    }

    /// Writes `item` into record `index`.
    ///
    /// # Safety
    /// Only the single writer calls this, with `index < capacity` and `index` not yet
    /// published (no reader views it).
    #[inline]
    pub(crate) unsafe fn write(&self, index: usize, item: &T)
    where
        T: Copy,
    {
        debug_assert!(index < self.capacity);
        #[cfg(roda_loom)]
        self.track(index, true);
        prefetch_for_write(self.prefetch, self.data, index, self.capacity);
        // SAFETY: in bounds and aligned (page-aligned data, stride = size_of::<T>());
        // unpublished, so no reader holds a reference to it (caller's contract). Written
        // through a raw pointer, so no `&mut` ever covers memory that readers view.
        unsafe { self.data.as_ptr().add(index).write(*item) }
    }

    /// Record `index`.
    ///
    /// # Safety
    /// `index` must be below a value returned by `published` (so the record is
    /// immutable for as long as the core lives).
    #[inline]
    pub(crate) unsafe fn record(&self, index: usize) -> &T {
        debug_assert!(index < self.capacity);
        #[cfg(roda_loom)]
        self.track(index, false);
        // SAFETY: in bounds, aligned, initialised (published) and never written again.
        unsafe { &*self.data.as_ptr().add(index) }
    }

    /// Asks the CPU to bring record `index`'s cache line into this core's cache for
    /// reading ([`prefetch_for_read`]): what a reader that keeps finding nothing new
    /// calls for the record it waits for. Reads nothing in the program's view.
    #[inline]
    pub(crate) fn prefetch_record(&self, index: usize) {
        prefetch_for_read(self.data, index, self.capacity);
    }

    /// Records `start .. start + len`, contiguous.
    ///
    /// # Safety
    /// `start + len` must not exceed a value returned by `published`.
    #[inline]
    pub(crate) unsafe fn records(&self, start: usize, len: usize) -> &[T] {
        debug_assert!(start + len <= self.capacity);
        #[cfg(roda_loom)]
        for index in start..start + len {
            self.track(index, false);
        }
        // SAFETY: as in `record`, for every index of the range.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(start), len) }
    }

    /// [`write_words_at`] under loom, whose atomics live beside the bytes: stores both,
    /// the plain write for gating readers (tracked) and the atomic words for followers.
    ///
    /// # Safety
    /// As [`write`](Self::write): the single writer, `index < capacity`, and no `&T`
    /// view of record `index` is alive (it is unpublished, or no gating reader holds
    /// its segment).
    #[cfg(roda_loom)]
    pub(crate) unsafe fn write_words(&self, index: usize, item: &T)
    where
        T: bytemuck::Pod,
    {
        debug_assert!(index < self.capacity);
        let bytes = bytemuck::bytes_of(item);
        // SAFETY: forwarded contract.
        unsafe { self.write(index, item) };
        let base = self.backing.info.data_offset as usize + index * bytes.len();
        for (k, chunk) in bytes.chunks_exact(8).enumerate() {
            let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
            // Relaxed: ordered by the generation fence before and the publish after.
            self.backing
                .region
                .atomic(base + 8 * k)
                .store(word, Ordering::Relaxed);
        }
    }

    /// Copies records `start .. start + out.len()` into `out` with Relaxed atomic loads
    /// of aligned words: the copy may race the writer overwriting them (a recycled
    /// segment), so the caller validates it afterwards (see `SegmentedFollower`), and
    /// never hands out a reference into the segment.
    ///
    /// # Panics
    /// If the range exceeds the capacity.
    #[inline]
    pub(crate) fn copy_words(&self, start: usize, out: &mut [T])
    where
        T: bytemuck::Pod,
    {
        assert!(start <= self.capacity && out.len() <= self.capacity - start);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        #[cfg(not(roda_loom))]
        {
            // SAFETY: `start` is within the data area (asserted above).
            let src = unsafe { self.data.as_ptr().add(start).cast::<u8>() };
            // SAFETY: the range lies inside the data area (asserted above), is aligned to
            // the word size (as in `write_words_at`), and the writer accesses it only
            // through atomics while a follower may copy it (`write_words_at`).
            unsafe { words::load(word_size::<T>(), src, bytes) }
        }
        #[cfg(roda_loom)]
        {
            let base = self.backing.info.data_offset as usize + start * std::mem::size_of::<T>();
            for (k, chunk) in bytes.chunks_exact_mut(8).enumerate() {
                // Relaxed: validated by the follower's generation check.
                let word = self
                    .backing
                    .region
                    .atomic(base + 8 * k)
                    .load(Ordering::Relaxed);
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
        }
    }

    /// The segment header word `word` (an atomic at a fixed 8-aligned header offset).
    #[inline]
    pub(crate) fn header_word(&self, offset: usize) -> &AtomicU64 {
        self.backing.atomic(offset)
    }

    #[cfg(roda_loom)]
    fn track(&self, index: usize, write: bool) {
        let offset = self.backing.info.data_offset as usize + index * std::mem::size_of::<T>();
        self.backing.region.track(offset, write);
    }
}

/// How far ahead of the record it writes a writer asks for cache lines, in bytes.
///
/// A writer streams into lines no core holds (a journal never wraps) or that a reader's
/// core holds since it read them a lap ago (a recycled segment). Without a hint, each
/// new line is a miss at the head of the store buffer, and the Release store that
/// publishes the record waits behind it; on x86-64 a prefetch for writing (PREFETCHW)
/// this far ahead turns that miss into an exclusive fetch that overlaps the appends
/// before it. 1 KiB covers the memory latency at the appends' rate while staying far
/// inside any segment of interest; see docs/performance.md, "Hand-off".
pub(crate) const PREFETCH_AHEAD: usize = 1024;

/// Whether this CPU has PREFETCHW, asked once per process (CPUID is slow under a
/// hypervisor, so writers ask at creation and keep the answer).
pub(crate) fn write_prefetch_available() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri), not(roda_loom)))]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            // Leaf 0x8000_0001, ECX bit 8: PREFETCHW (AMD's 3DNowPrefetch, Intel's PRFCHW).
            // Older CPUs may fault on the instruction, so it is never issued without it.
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
        })
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(roda_loom))))]
    false
}

/// When `enabled` (the CPU has PREFETCHW, see [`write_prefetch_available`]), asks the
/// CPU to bring the cache line of record `index + PREFETCH_AHEAD / size` of the data
/// area at `data` into this core's cache in a state ready for writing, if that record
/// lies below `capacity`: the hint never reaches past the data area (into, say, another
/// mapping's header that readers poll). Only a hint: it reads and writes nothing in the
/// program's view, never faults, is not ordered with any atomic access (so it neither
/// weakens nor strengthens the publish protocol) and costs about one instruction when
/// the line is already there.
#[inline(always)]
pub(crate) fn prefetch_for_write<T>(
    enabled: bool,
    data: NonNull<T>,
    index: usize,
    capacity: usize,
) {
    let size = std::mem::size_of::<T>().max(1);
    let ahead = index + PREFETCH_AHEAD / size;
    // Once per line: only the record that starts in a new line (the data area is
    // page-aligned, so a record's offset modulo 64 is its place in its line).
    if !enabled || (ahead * size) % 64 >= size || ahead >= capacity {
        return;
    }
    let line = data.as_ptr().wrapping_add(ahead);
    #[cfg(all(target_arch = "x86_64", not(miri), not(roda_loom)))]
    // SAFETY: PREFETCHW is a hint: it accesses no memory in the language's sense, cannot
    // fault, and runs only where CPUID lists it (`enabled`). `line` lies inside the data
    // area (ahead < capacity) and nothing is written through it.
    unsafe {
        std::arch::asm!(
            "prefetchw [{0}]",
            in(reg) line,
            options(nostack, preserves_flags, readonly)
        )
    };
    // Elsewhere `enabled` is always false (`write_prefetch_available`).
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(roda_loom))))]
    let _ = line;
}

/// Empty polls in a row after which a reader asks for the line of the record it waits
/// for ([`prefetch_for_read`]). A guard: a reader that keeps pace with a streaming
/// writer and polls without pausing finds nothing new for a poll or two at a time;
/// asking for the line then would take it from the writer between two of its records,
/// and the writer's next store would have to fetch it back (a line transfer per record
/// instead of per batch the reader sees). A reader that waits for a hand-off polls
/// hundreds of times before the record comes, so it keeps the whole gain.
pub(crate) const PREFETCH_AFTER_EMPTY_POLLS: u32 = 16;

/// A reader's count of empty polls since it last saw the published count move.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Waiting(u32);

impl Waiting {
    /// Counts one more empty poll; whether the reader now waits long enough to ask for
    /// the line of the record it waits for.
    #[inline]
    pub(crate) fn empty_poll(&mut self) -> bool {
        self.0 = self.0.saturating_add(1);
        self.0 >= PREFETCH_AFTER_EMPTY_POLLS
    }

    /// The published count moved: the reader is no longer waiting.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Asks the CPU to bring the cache line of record `index` of the data area at `data`
/// into this core's cache for reading, if that record lies below `capacity` (the hint
/// never reaches past the data area).
///
/// Readers call it when their polls keep finding nothing new (after
/// [`PREFETCH_AFTER_EMPTY_POLLS`] in a row), for the record they wait for. Without
/// it a hand-off costs two cache-line transfers one after the other: the reader's load
/// of the published count misses and fetches the writer's new count, and only then,
/// having seen the record published, does its load of the record miss and fetch the
/// record's line. Asked for while the reader waits, the record's line travels beside
/// the count: the writer's store of the record takes the line from the reader's cache,
/// the reader's next poll asks for it again, and it comes back with the record written
/// (x86 makes the record's store visible before the count's). When the line arrives
/// before the record is written, the writer takes it back, as it would have anyway for
/// a line the reader holds from the record before.
///
/// Only a hint: it reads and writes nothing in the program's view (a prefetch is not a
/// memory access in Rust's model, whatever it fetches), never faults, and is not
/// ordered with any atomic access, so the publish protocol and docs/memory-model.md are
/// unchanged: the reader still views the record only after its Acquire load of the
/// count. It costs about one instruction per empty poll; on CPUs other than x86-64
/// (and under Miri and loom) it does nothing.
#[inline(always)]
pub(crate) fn prefetch_for_read<T>(data: NonNull<T>, index: usize, capacity: usize) {
    if index >= capacity {
        return;
    }
    let record = data.as_ptr().wrapping_add(index);
    #[cfg(all(target_arch = "x86_64", not(miri), not(roda_loom)))]
    // SAFETY: PREFETCHT0 (SSE, part of every x86-64 CPU) is a hint: it accesses no memory
    // in the language's sense and cannot fault; `record` lies inside the data area
    // (index < capacity) and nothing is read or written through it.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(record.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(roda_loom))))]
    let _ = record;
}

/// The journal's write sequence word `write_seq` as a reader sees it, exactly as stored
/// (callers clamp it to the capacity): every record below it is fully written and
/// visible once this returns. Typed readers (`JournalCore`) and the untyped one
/// (`StoreFile`) both load it here.
#[inline(always)]
pub(crate) fn load_write_seq(write_seq: &AtomicU64) -> u64 {
    // Relaxed load + Acquire fence pairs with the Release store in `publish`: the
    // fence makes every record write that preceded that store visible here. (A plain
    // Acquire load would do the same, but a follower's mapping is read-only, where
    // only Relaxed atomic loads are allowed.)
    let published = write_seq.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    published
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn publish_ordering() -> Ordering {
    Ordering::Release
}

#[cfg(roda_loom)]
fn publish_ordering() -> Ordering {
    if crate::loom_hooks::relaxed_publish() {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// The bytes of one atomic word in which segmented journals store and copy records of
/// Writes `item` into record `index` of the data area at `data` as aligned atomic words
/// ([`word_size`] bytes each, Relaxed), so that a follower copying a record the writer
/// is overwriting (a recycled segment) races with atomics only: it reads stale or new
/// words, never undefined bytes, and its validation discards the copy. Segmented
/// journals write through this, with their segment's data pointer at hand (so an
/// append loads nothing to find it); the stores are plain moves on x86-64 and ARM64.
///
/// # Safety
/// `data` is the data area of a live journal core; the single writer writes, `index`
/// is below the capacity, and no `&T` view of record `index` is alive (it is
/// unpublished, or no gating reader holds its segment).
#[cfg(not(roda_loom))]
#[inline]
pub(crate) unsafe fn write_words_at<T: bytemuck::Pod>(data: NonNull<T>, index: usize, item: &T) {
    let bytes = bytemuck::bytes_of(item);
    // SAFETY: record `index` lies inside the data area (caller: index < capacity); it
    // starts at a multiple of size_of::<T>() from the page-aligned data, so at a
    // multiple of `word_size::<T>()`, which divides the size.
    let dst = unsafe { data.as_ptr().add(index).cast::<u8>() };
    // SAFETY: `dst .. dst + size_of::<T>()` is the record: inside the region, aligned to
    // the word size, accessed concurrently only through atomics (followers) or not at
    // all (caller's contract for `&T` views).
    unsafe { words::store(word_size::<T>(), dst, bytes) }
}

/// `T`: the largest of 8, 4, 2 and 1 that divides `size_of::<T>()`. Every record then is
/// a whole number of words, each aligned to its size (the data area is page-aligned
/// and record `i` starts at `i * size_of::<T>()`).
#[cfg_attr(roda_loom, allow(dead_code))]
pub(crate) const fn word_size<T>() -> usize {
    let size = std::mem::size_of::<T>();
    if size % 8 == 0 {
        8
    } else if size % 4 == 0 {
        4
    } else if size % 2 == 0 {
        2
    } else {
        1
    }
}

/// Word-wise atomic copies in and out of shared memory, at the widest width the length
/// allows (see [`word_size`]).
#[cfg(not(roda_loom))]
pub(crate) mod words {
    use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

    macro_rules! width {
        ($store:ident, $load:ident, $atomic:ty, $int:ty, $n:expr) => {
            /// # Safety
            /// `dst .. dst + src.len()` lies in live memory aligned to the word size,
            /// accessed concurrently only through atomics of this width.
            #[inline(always)]
            unsafe fn $store(dst: *mut u8, src: &[u8]) {
                for (k, chunk) in src.chunks_exact($n).enumerate() {
                    let value = <$int>::from_ne_bytes(chunk.try_into().expect("one word"));
                    // SAFETY: word `k` of the range (caller's contract).
                    let word = unsafe { &*dst.add(k * $n).cast::<$atomic>() };
                    // Relaxed: readers that race this store validate with the segment's
                    // generation, which the writer changed (and fenced with Release)
                    // before overwriting; readers of published records are ordered by
                    // the Release store of the published count after it.
                    word.store(value, Ordering::Relaxed);
                }
            }

            /// # Safety
            /// As for the store.
            #[inline(always)]
            unsafe fn $load(src: *const u8, out: &mut [u8]) {
                for (k, chunk) in out.chunks_exact_mut($n).enumerate() {
                    // SAFETY: word `k` of the range (caller's contract).
                    let word = unsafe { &*src.add(k * $n).cast::<$atomic>() };
                    // Relaxed: the caller validates the copy (generation re-check after
                    // an Acquire fence that pairs with the writer's Release fence).
                    chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
                }
            }
        };
    }

    width!(store8, load8, AtomicU64, u64, 8);
    width!(store4, load4, AtomicU32, u32, 4);
    width!(store2, load2, AtomicU16, u16, 2);
    width!(store1, load1, AtomicU8, u8, 1);

    /// Stores `src` at `dst` in atomic words of `width` bytes (8, 4, 2 or 1, dividing
    /// `src.len()`).
    ///
    /// # Safety
    /// `dst .. dst + src.len()` lies in live memory aligned to `width`, accessed
    /// concurrently only through atomics of that width.
    #[inline(always)]
    pub(crate) unsafe fn store(width: usize, dst: *mut u8, src: &[u8]) {
        debug_assert_eq!(src.len() % width, 0);
        // SAFETY: the caller's contract, at its width.
        unsafe {
            match width {
                8 => store8(dst, src),
                4 => store4(dst, src),
                2 => store2(dst, src),
                _ => store1(dst, src),
            }
        }
    }

    /// Loads `out.len()` bytes from `src` in atomic words of `width` bytes.
    ///
    /// # Safety
    /// As for [`store`].
    #[inline(always)]
    pub(crate) unsafe fn load(width: usize, src: *const u8, out: &mut [u8]) {
        debug_assert_eq!(out.len() % width, 0);
        // SAFETY: the caller's contract, at its width.
        unsafe {
            match width {
                8 => load8(src, out),
                4 => load4(src, out),
                2 => load2(src, out),
                _ => load1(src, out),
            }
        }
    }
}

/// The pre-toucher follows the writer through the one region.
#[cfg(not(roda_loom))]
impl<T: Send + Sync + 'static> Followed for JournalCore<T> {
    fn position(&self) -> Option<Position<'_>> {
        // The header's size, which raw writers (records of a run-time size in a core of
        // bytes) share with typed ones.
        let size = self.backing.info.record_size as usize;
        let data = self.backing.info.data_offset as usize;
        Some(Position {
            region: self.backing.region.as_ref(),
            at: data + self.published() as usize * size,
            end: data + self.capacity() * size,
            epoch: 0,
        })
    }
}

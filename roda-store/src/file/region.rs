//! The memory a store lives in, behind one small trait so that the publish and
//! seqlock protocols are written once and run over three backends:
//!
//! * [`MappedRegion`]: a shared mapping of a store file, or an anonymous mapping for
//!   in-memory stores;
//! * [`HeapRegion`]: page-aligned heap memory, used where mappings cannot go: under
//!   Miri (which has no `mmap`) and under loom (whose atomics are objects of their own and
//!   cannot live inside mapped bytes; the loom heap region keeps one loom atomic per
//!   8-byte word beside the plain bytes).
//!
//! Layout inside every region is the on-disk layout of `file/header.rs`: the header page,
//! then page-aligned data.

use std::io;
use std::ptr::NonNull;

use crate::sync::AtomicU64;

/// A fixed-size block of bytes with 8-byte atomic words at known offsets.
///
/// # Contract
/// `base()` is valid for `len()` bytes for as long as the region lives, is aligned to
/// at least 4096 bytes, and never moves.
pub(crate) trait Region: Send + Sync + 'static {
    /// First byte of the region.
    fn base(&self) -> NonNull<u8>;

    /// Size in bytes.
    fn len(&self) -> usize;

    /// The atomic word at byte `offset` (8-byte aligned, inside the region).
    fn atomic(&self, offset: usize) -> &AtomicU64;

    /// Makes writes durable on the backing file (msync); a no-op for memory-only regions.
    fn flush(&self) -> io::Result<()>;

    /// Whether this process may store into the region (a follower's mapping is read-only).
    fn writable(&self) -> bool {
        true
    }

    /// Locks the pages into RAM (mlock).
    fn lock_memory(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this memory backend cannot be locked",
        ))
    }

    /// Asks the kernel for transparent huge pages (madvise).
    fn advise_huge_pages(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this memory backend has no huge page advice",
        ))
    }

    /// Whether the region is mapped for writing.
    fn is_writable(&self) -> bool {
        true
    }

    /// Faults every page in now, for writing where the region is writable: see
    /// [`prefault_range`](Self::prefault_range).
    fn prefault(&self) -> io::Result<()> {
        self.prefault_range(0, self.len())
    }

    /// Faults in the pages covering `offset .. offset + len` (clamped to the region)
    /// without changing a byte: madvise MADV_POPULATE_WRITE on a writable region, so a
    /// later write takes no fault at all (a shared file mapping would otherwise take a
    /// write fault per page even after a read prefault), MADV_POPULATE_READ on a
    /// read-only one. On kernels without them (before Linux 5.14) each page is read
    /// once instead: the read faults are gone, write faults remain.
    fn prefault_range(&self, offset: usize, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this memory backend cannot be pre-faulted",
        ))
    }

    /// Moves the mapping of `other` onto this region's addresses, replacing what they
    /// mapped in one step (mremap with MREMAP_FIXED), page tables included: the pages
    /// `other` had faulted in stay faulted in here, so a file prepared (and
    /// pre-touched) in a mapping of its own is written here without a page fault.
    /// `other` must be exactly as long; the old file is unmapped, not changed.
    #[cfg(not(roda_loom))]
    fn adopt(&self, other: MappedRegion) -> io::Result<()> {
        drop(other);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this memory backend cannot adopt a mapping",
        ))
    }

    /// Drops this process's page-table entries for `offset .. offset + len` (madvise
    /// MADV_DONTNEED), keeping the contents: the next access faults the page back in
    /// from the file. Used ahead of a `KeepAll` roll, so the roll's replacement of the
    /// mapping has no pages to tear down.
    ///
    /// # Safety
    /// The region must be a shared mapping of a file (on a private or anonymous
    /// mapping MADV_DONTNEED discards the contents).
    #[cfg(not(roda_loom))]
    unsafe fn forget_pages(&self, offset: usize, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this memory backend keeps its pages",
        ))
    }

    /// Records a plain (non-atomic) access at `offset` for loom's causality checker.
    #[cfg(roda_loom)]
    fn track(&self, offset: usize, write: bool);
}

/// The `AtomicU64` living at `base + offset`.
///
/// # Safety
/// `base + offset .. + 8` must lie inside memory that stays valid for `'a`, be 8-byte
/// aligned, and be accessed only atomically (or by plain reads that race with nothing)
/// while `'a` lasts.
#[cfg(not(roda_loom))]
unsafe fn atomic_at<'a>(base: NonNull<u8>, offset: usize) -> &'a AtomicU64 {
    debug_assert_eq!(offset % 8, 0);
    // SAFETY: the caller guarantees the word is inside live memory and aligned;
    // AtomicU64 has the size and alignment of u64 and no invalid bit patterns.
    unsafe { &*base.as_ptr().add(offset).cast::<AtomicU64>() }
}

#[cfg(not(roda_loom))]
pub(crate) use mapped::MappedRegion;

/// Fault switches at the msync and fdatasync call sites, for unit tests only: an msync that really
/// fails (EIO from a failing disk's writeback) cannot be provoked from a test, and a
/// file made read-only after mapping does not make msync fail.
#[cfg(all(test, not(roda_loom)))]
pub(crate) mod fault {
    use std::cell::Cell;

    std::thread_local! {
        static MSYNC_ERRNO: Cell<Option<i32>> = const { Cell::new(None) };
        static FSYNC_ERRNO: Cell<Option<i32>> = const { Cell::new(None) };
    }

    /// Makes every msync of this thread's file mappings fail with `errno` (None: work).
    pub(crate) fn fail_msync_with(errno: Option<i32>) {
        MSYNC_ERRNO.with(|e| e.set(errno));
    }

    pub(crate) fn msync_failure() -> Option<i32> {
        MSYNC_ERRNO.with(|e| e.get())
    }

    /// Makes this thread's fdatasync of store files that are no longer mapped (a
    /// `KeepAll` journal's archived segments) fail with `errno` (None: work).
    pub(crate) fn fail_fsync_with(errno: Option<i32>) {
        FSYNC_ERRNO.with(|e| e.set(errno));
    }

    pub(crate) fn fsync_failure() -> Option<i32> {
        FSYNC_ERRNO.with(|e| e.get())
    }
}

#[cfg(not(roda_loom))]
mod mapped {
    use super::*;
    use memmap2::{Advice, MmapRaw};

    /// A mapping of a store file (shared, so other processes see every write) or of
    /// anonymous memory.
    pub(crate) struct MappedRegion {
        map: MmapRaw,
        writable: bool,
    }

    impl MappedRegion {
        pub(crate) fn new(map: MmapRaw, writable: bool) -> Self {
            MappedRegion { map, writable }
        }
    }

    impl Region for MappedRegion {
        fn base(&self) -> NonNull<u8> {
            NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null")
        }

        fn len(&self) -> usize {
            self.map.len()
        }

        fn atomic(&self, offset: usize) -> &AtomicU64 {
            assert!(offset + 8 <= self.len(), "atomic word outside the region");
            // SAFETY: in bounds (checked above); mappings are page-aligned and offsets are
            // multiples of 8 by the header layout; the mapping lives as long as `self`.
            // Header words and slot words are only ever accessed atomically.
            unsafe { atomic_at(self.base(), offset) }
        }

        fn flush(&self) -> io::Result<()> {
            if self.writable {
                #[cfg(test)]
                if let Some(errno) = super::fault::msync_failure() {
                    return Err(io::Error::from_raw_os_error(errno));
                }
                self.map.flush()
            } else {
                Ok(())
            }
        }

        fn lock_memory(&self) -> io::Result<()> {
            self.map.lock()
        }

        fn writable(&self) -> bool {
            self.writable
        }

        fn advise_huge_pages(&self) -> io::Result<()> {
            self.map.advise(Advice::HugePage)
        }

        fn is_writable(&self) -> bool {
            self.writable
        }

        unsafe fn forget_pages(&self, offset: usize, len: usize) -> io::Result<()> {
            const PAGE: usize = 4096;
            let start = offset.min(self.len()) / PAGE * PAGE;
            let end = offset.saturating_add(len).min(self.len());
            if end <= start || !self.writable {
                return Ok(());
            }
            // SAFETY: the range lies inside this live mapping (clamped above, start
            // page-aligned); the caller guarantees it maps a file shared, where
            // MADV_DONTNEED only drops page-table entries: the contents stay in the
            // file's pages and the next access faults them back in.
            let rc = unsafe {
                libc::madvise(
                    self.map.as_mut_ptr().add(start).cast(),
                    end - start,
                    libc::MADV_DONTNEED,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }

        fn adopt(&self, other: MappedRegion) -> io::Result<()> {
            if !self.writable || !other.writable || other.len() != self.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only a writable mapping of the same length is adopted",
                ));
            }
            let len = self.len();
            // SAFETY: moves `other`'s whole mapping (which `other.map` owns) onto exactly
            // this region's own pages (same length), which `self.map` owns and unmaps on
            // drop: the range stays mapped all along (the kernel replaces it under its
            // mapping lock), so every pointer into the region stays valid; `other`'s old
            // addresses are left unmapped and `other` is forgotten below, so nothing
            // unmaps them again. Only atomics may observe the switch: callers replace a
            // segment no `&T` view can point into (see `SegmentFiles::roll`).
            let moved = unsafe {
                libc::mremap(
                    other.map.as_mut_ptr().cast(),
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    self.map.as_mut_ptr().cast::<libc::c_void>(),
                )
            };
            if moved == libc::MAP_FAILED {
                // `other` still owns its mapping: dropping it unmaps it.
                return Err(io::Error::last_os_error());
            }
            debug_assert_eq!(moved as usize, self.map.as_mut_ptr() as usize);
            // Its mapping now lives at this region's addresses.
            std::mem::forget(other);
            Ok(())
        }

        fn prefault_range(&self, offset: usize, len: usize) -> io::Result<()> {
            const PAGE: usize = 4096;
            let start = offset.min(self.len()) / PAGE * PAGE;
            let end = offset.saturating_add(len).min(self.len());
            if end <= start {
                return Ok(());
            }
            let advice = if self.writable {
                Advice::PopulateWrite
            } else {
                Advice::PopulateRead
            };
            match self.map.advise_range(advice, start, end - start) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    // A kernel without MADV_POPULATE_*: read one word of every page.
                    for page in (start..end).step_by(PAGE) {
                        // SAFETY: `page` is a multiple of 4096 below the region's length,
                        // so the word lies inside the live mapping, 8-byte aligned.
                        // Relaxed: the value is not used; the load only faults the page in.
                        unsafe { atomic_at(self.base(), page) }
                            .load(crate::sync::Ordering::Relaxed);
                    }
                    Ok(())
                }
                other => other,
            }
        }
    }
}

#[cfg_attr(not(any(miri, roda_loom)), allow(unused_imports))]
pub(crate) use heap::HeapRegion;

// Outside Miri and loom the heap backend serves only its own tests.
#[cfg_attr(not(any(miri, roda_loom, test)), allow(dead_code))]
mod heap {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    /// Zeroed, page-aligned heap memory for stores that need no file: under Miri and
    /// loom it stands in for the anonymous mapping.
    pub(crate) struct HeapRegion {
        base: NonNull<u8>,
        layout: Layout,
        /// One loom atomic per 8-byte word: loom cannot see atomics inside plain bytes.
        #[cfg(roda_loom)]
        words: Box<[AtomicU64]>,
        /// One access tracker per 8-byte word, so loom checks plain record accesses.
        #[cfg(roda_loom)]
        cells: Box<[loom::cell::UnsafeCell<()>]>,
    }

    // SAFETY: the region owns its allocation; all shared access goes through atomics or
    // through the journal/slot protocols, which order plain accesses with them.
    unsafe impl Send for HeapRegion {}
    // SAFETY: as above; `&HeapRegion` only hands out pointers and atomics.
    unsafe impl Sync for HeapRegion {}

    impl HeapRegion {
        /// Allocates `len` zeroed bytes aligned to 4096.
        pub(crate) fn new(len: usize) -> io::Result<Self> {
            let layout = Layout::from_size_align(len.max(1), 4096)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            let base = NonNull::new(ptr).ok_or_else(|| {
                io::Error::new(io::ErrorKind::OutOfMemory, "heap allocation failed")
            })?;
            Ok(HeapRegion {
                base,
                layout,
                #[cfg(roda_loom)]
                words: (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
                #[cfg(roda_loom)]
                cells: (0..len.div_ceil(8))
                    .map(|_| loom::cell::UnsafeCell::new(()))
                    .collect(),
            })
        }
    }

    impl Drop for HeapRegion {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with exactly this layout, freed once.
            unsafe { dealloc(self.base.as_ptr(), self.layout) }
        }
    }

    impl Region for HeapRegion {
        fn base(&self) -> NonNull<u8> {
            self.base
        }

        fn len(&self) -> usize {
            self.layout.size()
        }

        #[cfg(not(roda_loom))]
        fn atomic(&self, offset: usize) -> &AtomicU64 {
            assert!(offset + 8 <= self.len(), "atomic word outside the region");
            // SAFETY: in bounds (checked above), the allocation is 4096-aligned and offsets
            // are multiples of 8; it lives as long as `self`.
            unsafe { atomic_at(self.base, offset) }
        }

        #[cfg(roda_loom)]
        fn atomic(&self, offset: usize) -> &AtomicU64 {
            &self.words[offset / 8]
        }

        fn flush(&self) -> io::Result<()> {
            Ok(())
        }

        #[cfg(roda_loom)]
        fn track(&self, offset: usize, write: bool) {
            let cell = &self.cells[offset / 8];
            if write {
                cell.with_mut(|_| ());
            } else {
                cell.with(|_| ());
            }
        }
    }
}

#[cfg(all(test, not(roda_loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn heap_region_is_zeroed_aligned_and_atomic() {
        let region = HeapRegion::new(8192).unwrap();
        assert_eq!(region.len(), 8192);
        assert_eq!(region.base().as_ptr() as usize % 4096, 0);
        // SAFETY: 8192 bytes were allocated and nothing else touches them.
        let bytes = unsafe { std::slice::from_raw_parts(region.base().as_ptr(), 8192) };
        assert!(bytes.iter().all(|&b| b == 0));
        region.atomic(128).store(7, Ordering::Relaxed);
        assert_eq!(region.atomic(128).load(Ordering::Relaxed), 7);
        region.flush().unwrap();
        assert!(region.lock_memory().is_err());
        assert!(region.advise_huge_pages().is_err());
        assert!(region.prefault().is_err());
    }

    #[test]
    #[should_panic(expected = "outside the region")]
    fn atomic_outside_the_region_panics() {
        let region = HeapRegion::new(64).unwrap();
        region.atomic(64);
    }
}

//! The journal's publish protocol, written once over a [`Region`](crate::region::Region):
//! the writer fills records past the published count, then moves the count with one
//! Release store; readers load the count and may view every record below it.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::backing::Backing;
use crate::header::OFF_WRITE_SEQ;
use crate::sync::{fence, AtomicU64, Ordering};

/// State shared by a journal's writer and all of its in-process readers.
pub(crate) struct JournalCore<T> {
    pub(crate) backing: Backing,
    data: NonNull<T>,
    write_seq: NonNull<AtomicU64>,
    capacity: usize,
    _records: PhantomData<T>,
}

// SAFETY: the core owns its region (Send + Sync) and only hands out `&T` for records
// that are published and therefore immutable; `T: Send + Sync` by the Record bound.
unsafe impl<T: Send + Sync> Send for JournalCore<T> {}
// SAFETY: as above; every shared access to mutable state goes through `write_seq`.
unsafe impl<T: Send + Sync> Sync for JournalCore<T> {}

impl<T> JournalCore<T> {
    pub(crate) fn new(backing: Backing) -> Self {
        let capacity = backing.info.capacity as usize;
        let data = backing.data().cast::<T>();
        let write_seq = NonNull::from(backing.atomic(OFF_WRITE_SEQ));
        JournalCore {
            backing,
            data,
            write_seq,
            capacity,
            _records: PhantomData,
        }
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

    /// Makes records below `len` visible to readers.
    #[inline]
    pub(crate) fn publish(&self, len: u64) {
        // Release pairs with the Relaxed load + Acquire fence in `load_write_seq`: the record
        // writes before this store happen-before any reader's view of them.
        self.write_seq().store(len, publish_ordering());
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

    #[cfg(roda_loom)]
    fn track(&self, index: usize, write: bool) {
        let offset = self.backing.info.data_offset as usize + index * std::mem::size_of::<T>();
        self.backing.region.track(offset, write);
    }
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

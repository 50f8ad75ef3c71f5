//! The state a segmented journal's writer, readers and followers share: the segments,
//! the published count and the readers' gates.

use roda_core::{Record, Result, RodaError};

use crate::file::header::OFF_FIRST_SEQ;
use crate::journal::core::JournalCore;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// A counter alone on its cache lines (so a reader's gate never shares a line with
/// another reader's or with the writer's count).
#[repr(align(128))]
pub(crate) struct Padded(pub(crate) AtomicU64);

impl Padded {
    fn new() -> Self {
        Padded(AtomicU64::new(0))
    }
}

/// Most readers one segmented journal can have at once.
pub const MAX_READERS: usize = 64;

/// Gates allocated per journal: under loom every atomic is a modelled object, so the
/// models get a handful instead of [`MAX_READERS`].
pub(crate) fn max_readers() -> usize {
    if cfg!(roda_loom) {
        2
    } else {
        MAX_READERS
    }
}

/// One reader's gate: every record below `released` is released by that reader (it will
/// never view it again). Values are segment starts.
pub(crate) struct Gate {
    pub(crate) released: Padded,
    /// A reader owns this gate; free gates do not hold the writer back.
    pub(crate) in_use: AtomicBool,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            released: Padded::new(),
            in_use: AtomicBool::new(false),
        }
    }
}

/// State shared by the writer and its readers.
pub(crate) struct SegmentedCore<T> {
    pub(crate) segments: Box<[JournalCore<T>]>,
    /// Records per segment.
    pub(crate) segment_records: u64,
    /// Records published: every record below it is fully written.
    pub(crate) published: Padded,
    /// Gates of the readers (the writer reads them only when it rolls). A fixed array
    /// claimed with compare-and-swap, so registering a reader takes no lock either.
    pub(crate) gates: Box<[Gate]>,
    /// The oldest sequence the segments held when the journal was opened (0 for a new
    /// one): a reopened directory may have lost its oldest segment to a crash mid-recycle.
    pub(crate) floor: u64,
}

impl<T: Record> SegmentedCore<T> {
    /// The segment that holds sequence `seq`.
    #[inline]
    pub(crate) fn segment_of(&self, seq: u64) -> &JournalCore<T> {
        &self.segments[((seq / self.segment_records) % self.segments.len() as u64) as usize]
    }

    /// Records readers may view (Acquire: pairs with the writer's Release in `publish`).
    #[inline]
    pub(crate) fn published(&self) -> u64 {
        // Acquire pairs with the Release store in `SegmentedJournal::publish`: every
        // record below the loaded count is fully written.
        self.published.0.load(Ordering::Acquire)
    }

    /// Claims a free gate set to `released`; its index.
    pub(crate) fn claim_gate(&self, released: u64) -> Option<usize> {
        self.gates.iter().position(|gate| {
            // Relaxed: the value is published with the Release of the claim below.
            let free = !gate.in_use.load(Ordering::Relaxed);
            if free {
                gate.released.0.store(released, Ordering::Relaxed);
            }
            // AcqRel: the claim pairs with the Acquire load of `in_use` in `roll` (which
            // then sees `released`) and with the Release store in `release_gate`.
            free && gate
                .in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Frees gate `index` (its reader is gone).
    pub(crate) fn release_gate(&self, index: usize) {
        // Release pairs with the Acquire of the next claim.
        self.gates[index].in_use.store(false, Ordering::Release);
    }

    /// The oldest sequence still held in memory, given `published` records.
    pub(crate) fn oldest_retained(&self, published: u64) -> u64 {
        let window = self.segment_records * self.segments.len() as u64;
        // Segments still holding data: the one being filled and the ones before it.
        let current_start = published / self.segment_records * self.segment_records;
        (current_start + self.segment_records)
            .saturating_sub(window)
            .max(self.floor)
            .min(published)
    }

    /// Segment `slot`'s generation word: the first sequence of the records it holds
    /// ([`NO_RECORDS`] while it holds none), in the segment's header.
    #[inline]
    pub(crate) fn generation(&self, slot: usize) -> &AtomicU64 {
        self.segments[slot].header_word(OFF_FIRST_SEQ)
    }

    /// The ring slot of the segment holding `seq`.
    #[inline]
    pub(crate) fn slot_of(&self, seq: u64) -> usize {
        ((seq / self.segment_records) % self.segments.len() as u64) as usize
    }
}

/// Checks a ring of `segments` segments of `segment_records` records.
pub(crate) fn check_ring(segment_records: usize, segments: usize) -> Result<()> {
    if segments < 2 {
        return Err(RodaError::InvalidCapacity {
            capacity: segments as u64,
            reason: "a segmented journal needs at least 2 segments (one to write, one to read)",
        });
    }
    if segment_records == 0 {
        return Err(RodaError::InvalidCapacity {
            capacity: 0,
            reason:
                "a segment needs room for at least one record; pass segment_records of 1 or more",
        });
    }
    Ok(())
}

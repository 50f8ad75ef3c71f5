//! The state a segmented journal's writer, readers and followers share: the segments,
//! the published count and the readers' gates.

use roda_core::{Record, Result, RodaError};

#[cfg(not(roda_loom))]
use crate::file::header::NO_RECORDS;
use crate::file::header::OFF_FIRST_SEQ;
#[cfg(not(roda_loom))]
use crate::file::pretouch::{Followed, Position};
use crate::journal::core::JournalCore;
use crate::segmented::files::SegmentFiles;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::wake::Waker;

#[cfg(not(roda_loom))]
#[inline(always)]
fn unvalidated_registration() -> bool {
    false
}

#[cfg(roda_loom)]
fn unvalidated_registration() -> bool {
    crate::loom_hooks::unvalidated_registration()
}

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
    /// Registrations so far: a reader that claimed a gate and stored its position
    /// counts itself here, and the writer's scan of the gates is valid only if this did
    /// not change during it (see `gates_allow`).
    pub(crate) registrations: Padded,
    /// The oldest sequence the segments held when the journal was opened (0 for a new
    /// one): a reopened directory may have lost its oldest segment to a crash mid-recycle.
    pub(crate) floor: u64,
    /// The wake words of the in-process readers and followers (waking on only).
    pub(crate) wake: Option<Waker>,
    /// The directory's locks, handed over by a file-backed writer dropped while gating
    /// readers still existed: they keep the directory locked (a new writer would recycle
    /// under their `&T`) until the last handle on this core is gone.
    pub(crate) parked_files: std::sync::OnceLock<Box<SegmentFiles>>,
    /// A `KeepAll` directory's next segment file, prepared ahead of the roll (by the
    /// pre-toucher when there is one).
    #[cfg(not(roda_loom))]
    pub(crate) ahead: Option<std::sync::Arc<crate::segmented::files::Ahead>>,
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
    ///
    /// Registration protocol (docs/memory-model.md, "Gating readers"): claim the gate
    /// (so no other registrant can write its position), store the position, then count
    /// the registration with a Release increment. A writer scanning the gates at the
    /// same moment either sees the position or sees the count change and scans again.
    pub(crate) fn claim_gate(&self, released: u64) -> Option<usize> {
        if unvalidated_registration() {
            return self.claim_gate_unvalidated(released);
        }
        let index = self.gates.iter().position(|gate| {
            // Relaxed: a hint only; the compare-and-swap below decides.
            !gate.in_use.load(Ordering::Relaxed)
                // Acquire pairs with the Release store in `release_gate`: the previous
                // owner's stores to the gate come before ours.
                && gate
                    .in_use
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })?;
        // Relaxed: only the owner writes its gate; the increment below publishes it.
        self.gates[index]
            .released
            .0
            .store(released, Ordering::Relaxed);
        // Release pairs with the writer's Acquire load of `registrations` before its
        // scan (`gates_allow`): a scan that starts after it sees the position stored
        // above. A scan already running sees the count change at its end and re-scans.
        self.registrations.0.fetch_add(1, Ordering::Release);
        Some(index)
    }

    /// The protocol before registrations were counted: the position is stored before
    /// the claim (a losing registrant can overwrite the winner's position) and nothing
    /// tells a running scan about a new reader. Kept for the loom model's broken twin.
    fn claim_gate_unvalidated(&self, released: u64) -> Option<usize> {
        self.gates.iter().position(|gate| {
            let free = !gate.in_use.load(Ordering::Relaxed);
            if free {
                gate.released.0.store(released, Ordering::Relaxed);
            }
            free && gate
                .in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Whether every gating reader has released the records below `must_release`: the
    /// writer's check before it recycles the segment that ends there.
    pub(crate) fn gates_allow(&self, must_release: u64) -> bool {
        loop {
            // Acquire pairs with the Release increment of `claim_gate`: every
            // registration counted here stored its position before, and the scan sees it.
            let before = self.registrations.0.load(Ordering::Acquire);
            for gate in self.gates.iter() {
                // Acquire pairs with the Release store in `release_gate` and the
                // reader's Release stores of `released` (`SegmentedReader::move_gate`):
                // its views of the old records ended before we overwrite them.
                if gate.in_use.load(Ordering::Acquire)
                    && gate.released.0.load(Ordering::Acquire) < must_release
                {
                    return false;
                }
            }
            if unvalidated_registration() {
                return true;
            }
            // Relaxed, ordered after the Acquire loads of the scan. A reader registered
            // during the scan, in a gate already scanned, copied the position of a
            // reader that still held it when it registered; if the scan then found
            // that reader gone or moved on, the load that saw it synchronised with a
            // store made after the registration's increment, so this load sees the
            // increment and the scan is repeated. Registrations are bounded by the gate
            // count while they last, so this ends.
            if self.registrations.0.load(Ordering::Relaxed) == before {
                return true;
            }
        }
    }

    /// Frees gate `index` (its reader is gone).
    pub(crate) fn release_gate(&self, index: usize) {
        // Release pairs with the Acquire of the next claim.
        self.gates[index].in_use.store(false, Ordering::Release);
    }

    /// The oldest sequence still held in memory, given `published` records.
    pub(crate) fn oldest_retained(&self, published: u64) -> u64 {
        let window = self.segment_records * self.retained_segments();
        // Segments still holding data: the one being filled and the ones before it.
        let current_start = published / self.segment_records * self.segment_records;
        (current_start + self.segment_records)
            .saturating_sub(window)
            .max(self.floor)
            .min(published)
    }

    /// Segments readable in memory: every ring slot but, in a `KeepAll` directory, the
    /// one the next segment's file is moved into ahead of its roll
    /// ([`install_ahead`](Self::install_ahead)).
    fn retained_segments(&self) -> u64 {
        let slots = self.segments.len() as u64;
        #[cfg(not(roda_loom))]
        if self.ahead.is_some() {
            return slots - 1;
        }
        slots
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

#[cfg(not(roda_loom))]
impl<T: Record> SegmentedCore<T> {
    /// Moves the file prepared for segment `next` into its ring slot now, while the
    /// writer is still in the segment before: its roll then only sets the first
    /// sequence, and the change of mapping with its TLB shootdown (85-145 µs on the
    /// 2-vCPU VMs measured, where an IPI is a VM exit) happens on the pre-toucher's
    /// thread instead of the writer's. The slot holds the segment a ring's span before,
    /// which is outside the in-memory window (`retained_segments` leaves this slot
    /// out), so no reader registers in it any more; a gating reader that has not
    /// released it keeps the file out, and the roll then waits for it and replaces it
    /// as before. Followers see the new file's first sequence on their re-check, as
    /// after a roll's replacement.
    fn install_ahead(&self, ahead: &crate::segmented::files::Ahead, next: u64) -> Result<()> {
        let span = self.segment_records * self.segments.len() as u64;
        let Some(archived) = next.checked_sub(span) else {
            // The ring has not wrapped: the slot holds a spare made at creation.
            return Ok(());
        };
        let slot = self.slot_of(next);
        let mut installed = ahead
            .installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if installed.is_some() {
            // The last install waits for its roll.
            return Ok(());
        }
        // Relaxed: the writer rolls only holding `installed`, so under it the slot
        // keeps what it holds; the mutex orders the roll that stored this before us.
        if self.generation(slot).load(Ordering::Relaxed) != archived {
            // The writer rolled into `next` already.
            return Ok(());
        }
        if !self.gates_allow(archived + self.segment_records) {
            return Ok(());
        }
        let Some(file) = ahead.take_ready(next) else {
            return Ok(());
        };
        let segment = &self.segments[slot];
        // Sleepers on the archived file: it is closed for good (the roll did this
        // before it replaced the file itself).
        if let Some(wake) = &segment.wake {
            wake.close();
        }
        segment.backing.clear_writer();
        let (lock, region) = file.into_parts();
        // On failure the file (dropped, unlocked) stays on disk under its name, a
        // spare the roll opens.
        segment
            .backing
            .region
            .adopt(region)
            .map_err(|source| RodaError::Io { path: None, source })?;
        *installed = Some((next, lock));
        Ok(())
    }
}

/// The pre-toucher follows the segment being written, once the writer has rolled into it.
#[cfg(not(roda_loom))]
impl<T: Record> Followed for SegmentedCore<T> {
    fn position(&self) -> Option<Position<'_>> {
        let published = self.published();
        let mut start = published / self.segment_records * self.segment_records;
        // Relaxed: only compared, never used to read records; a stale value only delays
        // the pre-toucher by one check.
        let holds = |start: u64| {
            self.segment_of(start)
                .header_word(OFF_FIRST_SEQ)
                .load(Ordering::Relaxed)
                == start
        };
        if !holds(start) {
            // A writer at the end of a full segment has not rolled yet (it rolls at
            // its next append): it is still in that segment, whose successor the
            // pre-toucher can prepare.
            match start.checked_sub(self.segment_records) {
                Some(full) if published == start && holds(full) => start = full,
                _ => return None,
            }
        }
        let segment = self.segment_of(start);
        // The header's size: raw writers keep records of a run-time size in a core of bytes.
        let size = segment.backing.info.record_size as usize;
        let data = segment.backing.info.data_offset as usize;
        Some(Position {
            region: segment.backing.region.as_ref(),
            at: data + (published - start) as usize * size,
            end: data + self.segment_records as usize * size,
            epoch: start,
        })
    }

    fn prepare_next(&self, epoch: u64, window: usize) -> Result<()> {
        let Some(ahead) = &self.ahead else {
            return Ok(());
        };
        let next = epoch + self.segment_records;
        let segment = self.segment_of(next);
        // Relaxed: only compared; a stale value only prepares a file the roll then
        // does not use (a spare is prepared in place).
        if segment.header_word(OFF_FIRST_SEQ).load(Ordering::Relaxed) != NO_RECORDS {
            ahead.ensure(next, window)?;
            self.install_ahead(ahead, next)?;
        }
        // Relaxed: as above.
        if segment.header_word(OFF_FIRST_SEQ).load(Ordering::Relaxed) == NO_RECORDS {
            // A spare file waits in the slot (made at creation, or installed just
            // now): the roll prepares it in place, so populate its first window where
            // it is mapped. It holds no records; populating changes no byte.
            let data = segment.backing.info.data_offset as usize;
            let len = (self.segment_records as usize * std::mem::size_of::<T>()).min(window);
            segment
                .backing
                .region
                .prefault_range(0, data + len)
                .map_err(|source| RodaError::Io { path: None, source })?;
        }
        ahead.mark_prepared(next);
        // The last roll's archived file is closed here, off the writer's thread.
        ahead.drop_retired();
        // And the file of the segment after `next`, so that a pre-toucher that finds
        // the next roll late still has a whole segment's time to prepare.
        let after = next + self.segment_records;
        let segment = self.segment_of(after);
        // Relaxed: only compared; a stale value only drops pages that then fault back
        // in (the contents stay in the file).
        let held = segment.header_word(OFF_FIRST_SEQ).load(Ordering::Relaxed);
        if held != NO_RECORDS {
            // The roll into `after` will replace the slot's mapping of the segment it
            // archives (`after` minus the ring's span); tearing down that mapping's
            // pages took the roll a few hundred µs (a dirty page-table entry per
            // page). Drop them now, off the writer's thread, a whole segment before
            // that roll: never while the writer may be moving a new file into the
            // slot (this would drop the new file's pages). The writer passed that
            // segment long ago; a reader still in it faults its pages back in from
            // the page cache.
            let span = self.segment_records * self.segments.len() as u64;
            if after.checked_sub(span) == Some(held) {
                let data = segment.backing.info.data_offset as usize;
                let region = segment.backing.region.as_ref();
                // SAFETY: a `KeepAll` directory's segments (the only journals with
                // `ahead`) are shared mappings of their files.
                unsafe { region.forget_pages(data, region.len() - data) }
                    .map_err(|source| RodaError::Io { path: None, source })?;
            }
            ahead.ensure(after, window)?;
        }
        Ok(())
    }
}

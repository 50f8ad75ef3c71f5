//! The state an [`ElasticJournal`](super::ElasticJournal) shares with its reader: the
//! directory of live segments and the two counters of the protocol.

use std::marker::PhantomData;

use crate::journal::core::JournalCore;
use crate::segmented::core::Padded;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::wake::Waker;

#[cfg(not(roda_loom))]
pub(crate) use std::sync::atomic::AtomicPtr;

#[cfg(roda_loom)]
pub(crate) use loom::sync::atomic::AtomicPtr;

/// The counters only the writer stores, on their own cache lines.
#[repr(align(128))]
pub(crate) struct WriterLine {
    /// Records published: every record below it is fully written.
    pub(crate) published: AtomicU64,
    /// The largest backlog (published, not received) seen at a publish.
    pub(crate) high_water: AtomicU64,
    /// Segments the journal holds (live or spare).
    pub(crate) segments: AtomicU64,
}

/// State shared by the writer and the reader.
///
/// Segment `k` holds sequences `k * segment_records .. (k + 1) * segment_records`; while
/// it is live (written, and not yet left by the reader) its memory sits in directory
/// slot `k % directory.len()`. The directory has one slot more than the most segments
/// the limit lets be live at once, so the slot a new segment takes is always free.
pub(crate) struct ElasticCore<T> {
    pub(crate) segment_records: u64,
    /// Most records published and not received.
    pub(crate) limit: u64,
    pub(crate) directory: Box<[AtomicPtr<JournalCore<T>>]>,
    pub(crate) writer: WriterLine,
    /// Records the reader has received: it views none below `received - 1` any more.
    pub(crate) received: Padded,
    /// A reader exists.
    pub(crate) reader_taken: AtomicBool,
    /// The wake words, when the journal has waking on (see `ElasticOptions::wake`).
    pub(crate) wake: Option<Waker>,
    _segments: PhantomData<Box<JournalCore<T>>>,
}

impl<T> ElasticCore<T> {
    pub(crate) fn new(segment_records: u64, limit: u64, slots: usize, wake: Option<Waker>) -> Self {
        ElasticCore {
            segment_records,
            limit,
            directory: (0..slots)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            writer: WriterLine {
                published: AtomicU64::new(0),
                high_water: AtomicU64::new(0),
                segments: AtomicU64::new(0),
            },
            received: Padded(AtomicU64::new(0)),
            reader_taken: AtomicBool::new(false),
            wake,
            _segments: PhantomData,
        }
    }

    /// Directory slot of segment `segment`.
    #[inline]
    pub(crate) fn slot(&self, segment: u64) -> usize {
        (segment % self.directory.len() as u64) as usize
    }

    /// Records the reader may view.
    #[inline]
    pub(crate) fn published(&self) -> u64 {
        // Acquire pairs with the Release store in `ElasticJournal::publish`: every record
        // below the loaded count, and the directory slot of its segment, is written.
        self.writer.published.load(Ordering::Acquire)
    }
}

impl<T> Drop for ElasticCore<T> {
    fn drop(&mut self) {
        for slot in self.directory.iter() {
            // Relaxed: the last owner of the core runs this, after the writer and the
            // reader are gone (their drops happen-before through the Arc, or through a
            // thread join under loom).
            let segment = slot.load(Ordering::Relaxed);
            if !segment.is_null() {
                // SAFETY: a non-null slot holds a segment the writer leaked with
                // `Box::into_raw` when it rolled into it and never took back (taking it
                // back nulls the slot); nobody else can reach it now.
                drop(unsafe { Box::from_raw(segment) });
            }
        }
    }
}

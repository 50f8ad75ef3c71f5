//! [`RawSegmentedJournal`]: the writer of a file-backed segmented journal whose record
//! type is known only at run time, appending records given as bytes.

use std::ops::Range;
use std::path::Path;

use roda_core::Result;

use crate::file::options::{Retention, StoreOptions};
use crate::journal::raw::RecordLayout;
use crate::segmented::journal::SegmentedJournal;

/// Options of a [`RawSegmentedJournal`]: see [`RawSegmentedJournal::options`].
pub type RawSegmentedOptions = StoreOptions<RawSegmentedJournal>;

impl RawSegmentedOptions {
    /// The retention of a new directory (default `KeepLast(4)`), as
    /// [`SegmentedOptions::retention`](crate::SegmentedOptions::retention).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.settings.retention = Some(retention);
        self
    }

    /// Creates a segmented journal of records of `layout` in directory `dir` (created if
    /// missing) with segments of `segment_records` records whose first record has
    /// sequence `first` (a multiple of `segment_records`); see
    /// [`SegmentedOptions::create_at`](crate::SegmentedOptions::create_at).
    pub fn create_at(
        self,
        dir: impl AsRef<Path>,
        layout: RecordLayout,
        segment_records: usize,
        first: u64,
    ) -> Result<RawSegmentedJournal> {
        let shape = layout.shape(&self.settings, true);
        let journal = SegmentedJournal::create_shaped(
            dir.as_ref(),
            shape,
            &self.settings,
            segment_records,
            first,
        )?;
        Ok(RawSegmentedJournal::new(journal, layout))
    }

    /// [`create_at`](Self::create_at) sequence 0.
    pub fn create(
        self,
        dir: impl AsRef<Path>,
        layout: RecordLayout,
        segment_records: usize,
    ) -> Result<RawSegmentedJournal> {
        self.create_at(dir, layout, segment_records, 0)
    }

    /// Reopens the segmented journal in `dir` for writing, recovering from its segment
    /// headers and resuming after the last committed record. Fails with
    /// `LayoutMismatch` when its segments' record size, alignment or schema differ from
    /// `layout` and these options' schema, and with `WriterActive` while another writer
    /// holds it.
    pub fn open(self, dir: impl AsRef<Path>, layout: RecordLayout) -> Result<RawSegmentedJournal> {
        let shape = layout.shape(&self.settings, true);
        let journal = SegmentedJournal::open_shaped(dir.as_ref(), shape, &self.settings)?;
        Ok(RawSegmentedJournal::new(journal, layout))
    }
}

/// The writer of a file-backed segmented journal whose records are given as bytes, for
/// programs that learn the record layout at run time. The directory is the one a
/// [`SegmentedJournal`] of a type with that layout writes (same segment files, same
/// roll and recovery, same publish protocol, same directory lock), so typed followers,
/// readers and writers open it like any other.
///
/// ```
/// use roda_store::{RawSegmentedJournal, RecordLayout, Retention, SegmentedFollower};
///
/// # fn main() -> roda_core::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let dir = tmp.path().join("copy");
/// let mut raw = RawSegmentedJournal::options()
///     .retention(Retention::KeepAll)
///     .create_at(&dir, RecordLayout::new(8, 8)?, 100, 500)?;
/// let records: [u64; 3] = [7, 8, 9];
/// assert_eq!(raw.append(bytemuck::cast_slice(&records))?, 500..503);
///
/// let mut follower = SegmentedFollower::<u64>::open(&dir)?;
/// assert_eq!((follower.position(), follower.next()?), (500, Some(7)));
/// # Ok(()) }
/// ```
pub struct RawSegmentedJournal {
    journal: SegmentedJournal<u8>,
    layout: RecordLayout,
    /// The atomic word size records are stored in (see `word_size`).
    width: usize,
}

impl RawSegmentedJournal {
    /// A builder for the settings (retention, schema, journal id, memory settings).
    pub fn options() -> RawSegmentedOptions {
        StoreOptions::default()
    }

    /// Reopens the segmented journal in `dir` (records of `layout`, schema 0) for
    /// writing; see [`RawSegmentedOptions::open`].
    pub fn open(dir: impl AsRef<Path>, layout: RecordLayout) -> Result<RawSegmentedJournal> {
        Self::options().open(dir, layout)
    }

    fn new(journal: SegmentedJournal<u8>, layout: RecordLayout) -> RawSegmentedJournal {
        RawSegmentedJournal {
            journal,
            layout,
            width: word_size(layout.size()),
        }
    }

    /// Appends the whole records in `bytes` (native byte order, back to back, any
    /// alignment) and publishes them, rolling into new segments as needed; returns their
    /// sequences. In this process they appear together; from the directory, segment by
    /// segment (as with [`SegmentedJournal::try_append_slice`]). An I/O error rolling
    /// into a new segment file ends the append early (the records before it are
    /// appended) and is returned by the next call; `Err(InvalidRecordLayout)` when
    /// `bytes` is not a whole number of records. Allocates nothing.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) -> Result<Range<u64>> {
        self.layout.count(bytes)?;
        self.journal
            .append_raw(bytes, self.layout.size(), self.width)
    }

    /// The records' layout.
    pub fn layout(&self) -> RecordLayout {
        self.layout
    }

    /// Records appended so far (the stream's length).
    pub fn len(&self) -> u64 {
        self.journal.len()
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    /// Records per segment.
    pub fn segment_records(&self) -> usize {
        self.journal.segment_records()
    }

    /// The journal id the directory's segment files share.
    pub fn journal_id(&self) -> u64 {
        self.journal.journal_id()
    }

    /// The directory's retention.
    pub fn retention(&self) -> Option<Retention> {
        self.journal.retention()
    }

    /// The oldest sequence the segments still hold.
    pub fn oldest_retained(&self) -> u64 {
        self.journal.oldest_retained()
    }

    /// The directory.
    pub fn dir(&self) -> Option<&Path> {
        self.journal.dir()
    }

    /// Writes the mapped segments to disk and waits (msync); see
    /// [`SegmentedJournal::flush`].
    pub fn flush(&mut self) -> Result<()> {
        self.journal.flush()
    }
}

/// The largest of 8, 4, 2 and 1 that divides `size`: the atomic word segmented journals
/// store records of that size in (the run-time twin of `word_size::<T>()`).
fn word_size(size: usize) -> usize {
    [8, 4, 2].into_iter().find(|w| size % w == 0).unwrap_or(1)
}

impl std::fmt::Debug for RawSegmentedJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSegmentedJournal")
            .field("dir", &self.dir())
            .field("layout", &self.layout)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn word_sizes_match_the_typed_ones() {
        use crate::journal::core::word_size as typed;
        assert_eq!(super::word_size(24), typed::<[u64; 3]>());
        assert_eq!(super::word_size(12), typed::<[u32; 3]>());
        assert_eq!(super::word_size(6), typed::<[u16; 3]>());
        assert_eq!(super::word_size(3), typed::<[u8; 3]>());
    }
}

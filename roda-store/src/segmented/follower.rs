//! [`SegmentedFollower`]: a non-gating reader of a segmented journal that returns
//! validated copies, in the writer's process or (from the segment directory) another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roda_core::{Record, Result, RodaError};

use crate::file::header::{NO_RECORDS, OFF_FIRST_SEQ};
use crate::journal::core::{load_write_seq, JournalCore};
use crate::segmented::core::SegmentedCore;
use crate::sync::{fence, Ordering};

/// A reader of a segmented journal that never holds the writer back.
///
/// Unlike a gating [`SegmentedReader`](crate::SegmentedReader), a follower does not stop
/// the writer from recycling the segment it reads, so it never hands out references
/// into a segment: [`next`](Self::next) and [`next_batch`](Self::next_batch) return
/// copies, validated against the segment's generation (its first sequence) the way a
/// seqlock validates a slot. A follower that fell behind the retained window gets
/// `Err(Lagged { missed })`, never a torn or recycled record, and continues with
/// [`seek_to_oldest`](Self::seek_to_oldest) (or [`seek`](Self::seek)).
///
/// Get one in the writer's process with
/// [`SegmentedJournal::follower`](crate::SegmentedJournal::follower), or in any process
/// with [`SegmentedFollower::open`] on a file-backed journal's directory.
///
/// ```
/// use roda_store::{RodaError, SegmentedJournal};
///
/// # fn main() -> roda_core::Result<()> {
/// // 2 segments of 4 records: the writer keeps the last 4 to 8 records.
/// let mut journal = SegmentedJournal::<u64>::in_memory(4, 2)?;
/// let mut follower = journal.follower();
/// journal.append(&0);
/// assert_eq!(follower.next()?, Some(0));
/// assert_eq!(follower.next()?, None);
/// for i in 1..22u64 {
///     journal.append(&i); // never waits for the follower
/// }
/// // Records 1 to 15 were recycled before the follower got to them.
/// match follower.next() {
///     Err(RodaError::Lagged { missed }) => assert_eq!(missed, 15),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(follower.seek_to_oldest(), 16);
/// let mut batch = [0u64; 8];
/// assert_eq!(follower.next_batch(&mut batch)?, 4); // a batch ends at a segment end
/// assert_eq!(batch[..4], [16, 17, 18, 19]);
/// assert_eq!(follower.next_batch(&mut batch)?, 2);
/// assert_eq!(batch[..2], [20, 21]);
/// # Ok(()) }
/// ```
pub struct SegmentedFollower<T: Record> {
    source: Source<T>,
    /// Sequence of the next record to read.
    cursor: u64,
    /// The published count as last loaded.
    known: u64,
    /// Records below this are known to be recycled (a read found their segment
    /// reused): the oldest retained record is at least this, even when the published
    /// count this follower loads lags behind the generation it saw.
    lost_below: u64,
}

enum Source<T> {
    /// In the writer's process: its segments and published count.
    Local(Arc<SegmentedCore<T>>),
    /// From the directory, in any process.
    #[cfg(not(roda_loom))]
    Dir(Box<dir::DirSource<T>>),
}

/// Where a waiting follower sleeps.
enum Sleeper<T> {
    Core(Arc<SegmentedCore<T>>),
    #[cfg(not(roda_loom))]
    Segment(Arc<JournalCore<T>>),
}

impl<T> Sleeper<T> {
    fn waker(&self) -> Option<&crate::wake::Waker> {
        match self {
            Sleeper::Core(core) => core.wake.as_ref(),
            #[cfg(not(roda_loom))]
            Sleeper::Segment(segment) => segment.wake.as_ref(),
        }
    }
}

/// What one validated read found.
enum Got {
    /// `n` records copied, all valid.
    Records(usize),
    /// The record at the cursor is not published (yet).
    Nothing,
    /// The segment no longer holds the cursor's records.
    Gone,
}

/// Copies records `offset ..` of `segment` (which should hold the segment starting at
/// `first`) into `out`, limited to its write sequence when `count_in_segment` is set
/// (a follower without the writer's published count), and validates the copy against
/// the segment's generation: a copy is returned only if the segment held `first`
/// before and after it.
#[inline]
fn read_validated<T: Record>(
    segment: &JournalCore<T>,
    first: u64,
    offset: usize,
    out: &mut [T],
    count_in_segment: bool,
) -> Got {
    let generation = segment.header_word(OFF_FIRST_SEQ);
    // Relaxed load + Acquire fence (`load_write_seq`) pairs with the writer's Release
    // store of a published count after it set this generation: the records below that
    // count were written for this generation. (Read-only mappings allow only Relaxed
    // loads, hence the fence.)
    if load_write_seq(generation) != first {
        return Got::Gone;
    }
    let mut n = out.len();
    if count_in_segment {
        // Relaxed load + Acquire fence pairs with the writer's Release store of the
        // segment's write sequence (`JournalCore::publish`): records below it are written.
        let written = load_write_seq(segment.header_word(crate::file::header::OFF_WRITE_SEQ))
            .min(segment.capacity() as u64) as usize;
        n = n.min(written.saturating_sub(offset));
    }
    if n > 0 {
        segment.copy_words(offset, &mut out[..n]);
    }
    // Acquire fence pairs with the writer's Release fence after it changed the
    // generation (`SegmentedJournal::roll`, `SegmentFiles::prepare`): if any load
    // above saw a store made after that fence (a recycled record, a reset write
    // sequence), the load below sees the new generation and the copy is discarded.
    if !skip_follower_fence() {
        fence(Ordering::Acquire);
    }
    // Relaxed: ordered by the fence above.
    if generation.load(Ordering::Relaxed) != first {
        return Got::Gone;
    }
    if n == 0 {
        Got::Nothing
    } else {
        Got::Records(n)
    }
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_follower_fence() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_follower_fence() -> bool {
    crate::loom_hooks::skip_follower_fence()
}

impl<T: Record> SegmentedFollower<T> {
    pub(crate) fn local(core: Arc<SegmentedCore<T>>) -> Self {
        let known = core.published();
        let cursor = core.oldest_retained(known);
        SegmentedFollower {
            source: Source::Local(core),
            cursor,
            known,
            lost_below: 0,
        }
    }

    /// The next record (a copy), advancing past it; `Ok(None)` when nothing new is
    /// published; `Err(Lagged)` when the writer no longer retains it (the cursor stays:
    /// [`seek_to_oldest`](Self::seek_to_oldest) to continue).
    #[inline]
    #[allow(clippy::should_implement_trait)] // fallible: not an Iterator
    pub fn next(&mut self) -> Result<Option<T>> {
        let mut one = [T::zeroed()];
        match self.read(&mut one)? {
            0 => Ok(None),
            _ => Ok(Some(one[0])),
        }
    }

    /// The next record (a copy), waiting up to `timeout` for the writer to publish it;
    /// `Ok(None)` when the time is up first, or (with waking on) at once when the
    /// writer has been dropped; `Err(Lagged)` as for [`next`](Self::next). With waking on, the
    /// follower sleeps in the kernel until the writer's next publish (or its roll
    /// into the next segment) wakes it, in this process or, for a follower opened on
    /// the directory, in another; otherwise it polls with sleeps of up to 1 ms.
    /// Spurious wake-ups are re-checked, never returned; the safety timeout (100 ms)
    /// bounds a lost wake-up. The same semantics as
    /// [`JournalReader::next_timeout`](crate::JournalReader::next_timeout).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<T>> {
        let mut one = [T::zeroed()];
        match self.next_batch_timeout(&mut one, timeout)? {
            0 => Ok(None),
            _ => Ok(Some(one[0])),
        }
    }

    /// Like [`next_batch`](Self::next_batch), waiting up to `timeout` (as
    /// [`next_timeout`](Self::next_timeout) does) while nothing new is published.
    pub fn next_batch_timeout(&mut self, out: &mut [T], timeout: Duration) -> Result<usize> {
        let n = self.read(out)?;
        if n > 0 || out.is_empty() {
            return Ok(n);
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut poll = Duration::from_micros(20);
        loop {
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(0),
                },
                None => Duration::MAX,
            };
            let sleeper = self.sleeper();
            match sleeper.as_ref().and_then(Sleeper::waker) {
                Some(waker) => {
                    let Some(token) = waker.prepare() else {
                        // The writer is gone: what is there, at once.
                        return self.read(out);
                    };
                    let n = self.read(out)?;
                    if n > 0 {
                        return Ok(n);
                    }
                    waker.sleep(token, remaining);
                }
                None => {
                    std::thread::sleep(poll.min(remaining));
                    poll = (poll * 2).min(Duration::from_millis(1));
                }
            }
            let n = self.read(out)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// What a waiting follower sleeps on: the shared core in process; from a
    /// directory, the segment file the writer fills next for it (the cursor's own, or
    /// the one before when the cursor's does not exist yet).
    fn sleeper(&mut self) -> Option<Sleeper<T>> {
        match &mut self.source {
            Source::Local(core) => Some(Sleeper::Core(core.clone())),
            #[cfg(not(roda_loom))]
            Source::Dir(source) => source.sleeper(self.cursor).map(Sleeper::Segment),
        }
    }

    /// Copies up to `out.len()` records from the cursor into `out` (never crossing a
    /// segment end) and advances past them; returns how many (0 when nothing new is
    /// published). `Err(Lagged)` as for [`next`](Self::next): then nothing is copied.
    #[inline]
    pub fn next_batch(&mut self, out: &mut [T]) -> Result<usize> {
        self.read(out)
    }

    #[inline]
    fn read(&mut self, out: &mut [T]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let seq = self.cursor;
        let got = match &mut self.source {
            Source::Local(core) => {
                if seq >= self.known {
                    self.known = core.published();
                    if seq >= self.known {
                        return Ok(0);
                    }
                }
                let s = core.segment_records;
                let first = seq - seq % s;
                // Saturating: a cursor sought near `u64::MAX` must not wrap.
                let end = self
                    .known
                    .min(first.saturating_add(s))
                    .min(seq.saturating_add(out.len() as u64));
                let n = (end - seq) as usize;
                read_validated(
                    core.segment_of(seq),
                    first,
                    (seq - first) as usize,
                    &mut out[..n],
                    false,
                )
            }
            #[cfg(not(roda_loom))]
            Source::Dir(source) => source.read(seq, out)?,
        };
        match got {
            Got::Records(n) => {
                self.cursor = seq + n as u64;
                Ok(n)
            }
            Got::Nothing => Ok(0),
            Got::Gone => Err(self.lagged(seq)),
        }
    }

    #[cold]
    fn lagged(&mut self, seq: u64) -> RodaError {
        // The segment holding `seq` was reused: all of it is gone.
        let s = match &self.source {
            Source::Local(core) => core.segment_records,
            #[cfg(not(roda_loom))]
            Source::Dir(source) => source.segment_records(),
        };
        // Saturating: a cursor sought near 2^64 (or a damaged header) has no segment end.
        self.lost_below = self.lost_below.max((seq - seq % s).saturating_add(s));
        let oldest = self.oldest_retained();
        RodaError::Lagged {
            missed: oldest.saturating_sub(seq).max(1),
        }
    }

    /// The cursor: the sequence of the next record to read.
    #[inline]
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Records the writer has published. In the writer's process one atomic load; from
    /// a directory it reads the segment headers (a cold call: it may open files).
    pub fn published(&mut self) -> u64 {
        match &mut self.source {
            Source::Local(core) => core.published(),
            #[cfg(not(roda_loom))]
            Source::Dir(source) => source.published(),
        }
    }

    /// Records published and not read yet (0 when the follower is ahead).
    pub fn available(&mut self) -> u64 {
        let cursor = self.cursor;
        self.published().saturating_sub(cursor)
    }

    /// The oldest sequence the journal retains now (for a directory: the oldest
    /// segment file on disk; a cold call).
    pub fn oldest_retained(&mut self) -> u64 {
        let oldest = match &mut self.source {
            Source::Local(core) => core.oldest_retained(core.published()),
            #[cfg(not(roda_loom))]
            Source::Dir(source) => source.oldest_retained(),
        };
        oldest.max(self.lost_below)
    }

    /// Moves the cursor to `seq`, forward or back; a read then reports `Lagged` if the
    /// journal no longer retains it, and waits if it is not published yet.
    pub fn seek(&mut self, seq: u64) {
        self.cursor = seq;
    }

    /// Moves the cursor to the oldest retained record; returns its sequence.
    pub fn seek_to_oldest(&mut self) -> u64 {
        self.cursor = self.oldest_retained();
        self.cursor
    }
}

impl<T: Record> std::fmt::Debug for SegmentedFollower<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Local(_) => "in-process",
            #[cfg(not(roda_loom))]
            Source::Dir(_) => "directory",
        };
        f.debug_struct("SegmentedFollower")
            .field("source", &source)
            .field("cursor", &self.cursor)
            .finish()
    }
}

#[cfg(not(roda_loom))]
impl<T: Record> SegmentedFollower<T> {
    /// Follows the file-backed segmented journal in directory `dir`, usually from
    /// another process than the writer's; starts at the oldest retained record. Takes
    /// no lock and never holds the writer back. Records of `T`, schema 0; see
    /// [`open_with_schema`](Self::open_with_schema).
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::open_with_schema(dir, 0)
    }

    /// [`open`](Self::open) for a journal created with `options().schema(schema)`.
    pub fn open_with_schema(dir: impl AsRef<std::path::Path>, schema: u64) -> Result<Self> {
        let settings = crate::file::options::Settings {
            schema,
            ..Default::default()
        };
        Self::open_with(dir.as_ref(), &settings)
    }

    /// [`open`](Self::open) with the schema and the wake safety timeout of `settings`.
    pub(crate) fn open_with(
        dir: &std::path::Path,
        settings: &crate::file::options::Settings,
    ) -> Result<Self> {
        let mut source = dir::DirSource::open(dir, settings.schema, settings.safety_timeout())?;
        let cursor = source.oldest_retained();
        Ok(SegmentedFollower {
            source: Source::Dir(Box::new(source)),
            cursor,
            known: 0,
            lost_below: 0,
        })
    }
}

#[cfg(not(roda_loom))]
mod dir {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::file::backing;
    use crate::file::header::journal_shape;
    use crate::file::header::Shape;
    use crate::file::options::Retention;
    use crate::file::options::Settings;
    use crate::segmented::files::{
        holds_segment, mapped_segments, scan, set_segment_path, Found, SEQUENCE_LIMIT,
    };

    /// How long a directory scan stays good for a follower waiting at a segment
    /// boundary: it rescans at most this often to learn that segments were removed
    /// under it (then it reports `Lagged`), and otherwise polls with one `openat` (or
    /// no system call at all once a `KeepLast` ring is mapped).
    const RESCAN_AFTER: Duration = Duration::from_millis(100);

    /// A follower's own read-only mappings of a segment directory: a ring of slots
    /// like the writer's (`KeepLast(k)`: the k ring files, each always in the same
    /// slot; `KeepAll`: the last few files, replaced as it moves on).
    pub(super) struct DirSource<T> {
        dir: PathBuf,
        shape: Shape,
        segment_records: u64,
        retention: Retention,
        slots: Vec<Option<Arc<JournalCore<T>>>>,
        /// The safety timeout of sleeps on the segments' wake words.
        safety: std::time::Duration,
        /// The first sequence in the name of the file mapped in each slot (`NO_RECORDS`:
        /// none), so a mapped file still waiting for its first record is not mapped again.
        names: Vec<u64>,
        /// The path of the segment file to open next, reused: polls allocate nothing.
        path: PathBuf,
        /// The last directory scan, and when it was made (`None`: never).
        scanned: Vec<Found>,
        scanned_at: Option<Instant>,
    }

    impl<T: Record> DirSource<T> {
        pub(super) fn open(dir: &Path, schema: u64, safety: std::time::Duration) -> Result<Self> {
            let settings = Settings {
                schema,
                ..Settings::default()
            };
            let shape = journal_shape::<T>(&settings, true)?;
            let found = scan(dir)?;
            let Some(any) = found.first() else {
                return Err(RodaError::io(
                    dir,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no segment files ({20 digits}.roda) in this directory; \
                         check the path, or start the writer first",
                    ),
                ));
            };
            let probe = backing::open_reader(&any.path, shape, &settings)?;
            let retention = match probe.info.retention {
                0 => Retention::KeepAll,
                k => Retention::KeepLast(k as usize),
            };
            let slots = match retention {
                Retention::KeepLast(_) => mapped_segments(retention),
                Retention::KeepAll => 2,
            };
            Ok(DirSource {
                dir: dir.into(),
                shape,
                segment_records: probe.info.capacity,
                retention,
                slots: (0..slots).map(|_| None).collect(),
                safety,
                names: vec![NO_RECORDS; slots],
                path: PathBuf::with_capacity(dir.as_os_str().len() + 64),
                scanned: Vec::new(),
                scanned_at: None,
            })
        }

        pub(super) fn segment_records(&self) -> u64 {
            self.segment_records
        }

        fn slot_of(&self, first: u64) -> usize {
            ((first / self.segment_records) % self.slots.len() as u64) as usize
        }

        /// Maps the file named for `first` into its slot; false when there is none.
        #[cold]
        fn map(&mut self, first: u64) -> Result<bool> {
            let mut path = std::mem::take(&mut self.path);
            set_segment_path(&mut path, &self.dir, first);
            // The common miss (a follower waiting at a segment end for the writer to
            // create the next file) costs one `openat` and allocates nothing; the error
            // `open_reader` would build names the path, an allocation per poll.
            // Non-blocking, like every store open: a named pipe in the file's place
            // must not block the poll.
            let mapped = match backing::open_regular(&path, false) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                _ => self.map_path(&path, self.slot_of(first), first),
            };
            self.path = path;
            mapped
        }

        /// `KeepLast`: maps the ring file that holds `first`'s slot, whatever its name
        /// (`first`'s own file does not exist before the writer recycles it into
        /// `first`), found by a directory scan; false when there is none. Each ring file
        /// stays in its slot, so once mapped it is never looked up again. The last scan
        /// is tried first; if it does not lead to the slot's file (renamed since), a new
        /// scan.
        #[cold]
        fn map_ring_file(&mut self, first: u64) -> Result<bool> {
            let fresh = self.rescan_if_stale();
            if self.map_scanned_ring_file(first)? {
                return Ok(true);
            }
            if fresh {
                return Ok(false);
            }
            self.rescan();
            self.map_scanned_ring_file(first)
        }

        /// [`map_ring_file`](Self::map_ring_file) with the last scan as it is.
        fn map_scanned_ring_file(&mut self, first: u64) -> Result<bool> {
            let slot = self.slot_of(first);
            let s = self.segment_records;
            let Some(found) = self
                .scanned
                .iter()
                .find(|f| holds_segment(f.first, s) && self.slot_of(f.first) == slot)
            else {
                return Ok(false);
            };
            let (path, name) = (found.path.clone(), found.name);
            if !self.map_path(&path, slot, name)? {
                return Ok(false);
            }
            // A ring file only ever holds its own slot's segments (or none, while being
            // recycled): anything else is not this slot's file; do not keep it.
            match self.generation(first) {
                Some(g) if g == NO_RECORDS || self.slot_of(g) == slot => Ok(true),
                _ => {
                    self.slots[slot] = None;
                    self.names[slot] = NO_RECORDS;
                    Ok(false)
                }
            }
        }

        /// Maps the segment file at `path`, named for `name`, into `slot`; false when
        /// there is no such file.
        fn map_path(&mut self, path: &Path, slot: usize, name: u64) -> Result<bool> {
            let settings = Settings {
                wake_safety: Some(self.safety),
                ..Settings::default()
            };
            match backing::open_reader(path, self.shape, &settings) {
                Ok(backing) => {
                    if backing.info.capacity != self.segment_records {
                        return Err(RodaError::Corrupted {
                            path: path.into(),
                            detail: format!(
                                "segment of {} records in a journal of {}",
                                backing.info.capacity, self.segment_records
                            ),
                        });
                    }
                    self.slots[slot] =
                        Some(Arc::new(JournalCore::with_settings(backing, &settings)));
                    self.names[slot] = name;
                    Ok(true)
                }
                Err(RodaError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        }

        /// The mapped segment a follower at `seq` sleeps on: `seq`'s own segment if it
        /// is mapped and holds it, else the one before it (the writer wakes it when it
        /// rolls past it). `None`: poll.
        pub(super) fn sleeper(&mut self, seq: u64) -> Option<Arc<JournalCore<T>>> {
            let s = self.segment_records;
            let first = seq - seq % s;
            let holding = |this: &Self, first: u64| {
                (this.generation(first) == Some(first))
                    .then(|| this.slots[this.slot_of(first)].clone())
                    .flatten()
            };
            holding(self, first)
                .or_else(|| first.checked_sub(s).and_then(|prev| holding(self, prev)))
        }

        /// Whether a mapped ring file holds a segment after `first`: the writer has
        /// moved past it (a `KeepLast` writer recycles one slot at a time, in order).
        /// Called after the slot of `first` was seen mid-recycle: the writer's Release
        /// fence before that recycle's first store pairs with the Acquire fence of that
        /// load (`load_write_seq`), so the rolls before it are seen here.
        /// Ring files not mapped yet are asked through the directory scan (renewed
        /// at most every [`RESCAN_AFTER`]).
        #[cold]
        fn written_past(&mut self, first: u64) -> bool {
            let mapped = self.slots.iter().flatten().any(|segment| {
                let g = load_write_seq(segment.header_word(OFF_FIRST_SEQ));
                g != NO_RECORDS && g > first
            });
            mapped || matches!(self.missing(first), Got::Gone)
        }

        /// The generation of the file in `first`'s slot, if one is mapped.
        fn generation(&self, first: u64) -> Option<u64> {
            let segment = self.slots[self.slot_of(first)].as_ref()?;
            Some(load_write_seq(segment.header_word(OFF_FIRST_SEQ)))
        }

        pub(super) fn read(&mut self, seq: u64, out: &mut [T]) -> Result<Got> {
            let s = self.segment_records;
            let first = seq - seq % s;
            if first >= SEQUENCE_LIMIT {
                // No segment holds it, whatever a header says now (another process may
                // have damaged one): the cursor plus what is read must not overflow.
                return Ok(Got::Nothing);
            }
            // Records left in the segment: `s - (seq - first)`, which cannot overflow.
            let n = out.len().min((s - seq % s) as usize);
            let mut remapped = false;
            loop {
                match self.generation(first) {
                    Some(g) if g == first => {
                        let segment = self.slots[self.slot_of(first)]
                            .as_ref()
                            .expect("a generation implies a mapping");
                        return Ok(read_validated(
                            segment,
                            first,
                            (seq - first) as usize,
                            &mut out[..n],
                            true,
                        ));
                    }
                    // KeepLast: each ring file stays in its slot. An older segment
                    // there: `first` is not written yet; a newer one: it was recycled
                    // past `first`. One being recycled: either into `first` (not
                    // written yet) or out of it, which the later segments in the other
                    // slots tell.
                    Some(g) if matches!(self.retention, Retention::KeepLast(_)) => {
                        let gone = if g == NO_RECORDS {
                            self.written_past(first)
                        } else {
                            g > first
                        };
                        return Ok(if gone { Got::Gone } else { Got::Nothing });
                    }
                    // KeepAll, the file named for `first` is mapped (just now, or
                    // earlier: a spare waiting for its first record) and its header
                    // says otherwise: a file still being set up, or replaced. Wait on
                    // its header without mapping it again.
                    Some(g) if remapped || self.names[self.slot_of(first)] == first => {
                        return Ok(if g != NO_RECORDS && g > first {
                            Got::Gone
                        } else {
                            Got::Nothing
                        });
                    }
                    None if remapped => return Ok(Got::Nothing),
                    // Not mapped yet, or (KeepAll) another segment's file: map ours.
                    _ => {}
                }
                remapped = true;
                if self.map(first)? {
                    continue;
                }
                if matches!(self.retention, Retention::KeepLast(_)) && self.map_ring_file(first)? {
                    continue;
                }
                return Ok(self.missing(first));
            }
        }

        /// No file is named for segment `first`: gone if a newer segment exists. Asks
        /// the last directory scan, renewed at most every [`RESCAN_AFTER`]: a follower
        /// waiting at a segment boundary polls here, and a scan opens every file.
        #[cold]
        fn missing(&mut self, first: u64) -> Got {
            self.rescan_if_stale();
            let s = self.segment_records;
            let newest = self
                .scanned
                .iter()
                .filter(|f| holds_segment(f.first, s))
                .map(|f| f.first)
                .max();
            match newest {
                Some(newest) if newest > first => Got::Gone,
                _ => Got::Nothing,
            }
        }

        /// Scans the directory again if the last scan is older than [`RESCAN_AFTER`];
        /// whether it did.
        fn rescan_if_stale(&mut self) -> bool {
            if let Some(at) = self.scanned_at {
                if at.elapsed() < RESCAN_AFTER {
                    return false;
                }
            }
            self.rescan();
            true
        }

        /// Scans the directory now.
        fn rescan(&mut self) {
            self.scanned = scan(&self.dir).unwrap_or_default();
            self.scanned_at = Some(Instant::now());
        }

        fn valid(&self) -> Vec<Found> {
            scan(&self.dir)
                .map(|found| {
                    found
                        .into_iter()
                        .filter(|f| holds_segment(f.first, self.segment_records))
                        .collect()
                })
                .unwrap_or_default()
        }

        fn newest(&self) -> Option<Found> {
            self.valid().into_iter().max_by_key(|f| f.first)
        }

        pub(super) fn published(&mut self) -> u64 {
            // No overflow: `valid` keeps first sequences below 2^63 (`holds_segment`),
            // and a segment's size is below 2^63 too (its bytes fit the address space).
            self.newest()
                .map_or(0, |f| f.first + f.written.min(self.segment_records))
        }

        pub(super) fn oldest_retained(&mut self) -> u64 {
            self.valid().iter().map(|f| f.first).min().unwrap_or(0)
        }
    }
}

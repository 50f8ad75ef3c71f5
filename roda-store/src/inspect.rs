//! [`StoreFile`]: untyped, read-only access to any Roda store file, for tools that do
//! not know the record type (the `roda` command line tool, monitoring, debugging).
//!
//! The header is validated without a record type: everything a typed open checks
//! except the comparison with `T`, which is replaced by checks that the record fields
//! are consistent with each other (see `header::decode_any`). Records and slots come
//! out as bytes, read with the same protocols as the typed readers: the journal's
//! published count through `journal::core::load_write_seq`, a segment's records as
//! copies validated against its generation like `SegmentedFollower`'s, slots through
//! the seqlock's byte-level read `seqlock::try_read_bytes`.

use std::path::{Path, PathBuf};

use roda_core::{Result, RodaError};

use crate::file::backing::{self, Backing};
use crate::file::header::{
    HeaderInfo, StoreKind, NO_RECORDS, OFF_FIRST_SEQ, OFF_WRITER_PID, OFF_WRITE_SEQ,
};
use crate::file::lock::writer_holds;
use crate::journal::core::{load_write_seq, words};
use crate::slots::seqlock::{self, Found, TORN};
use crate::sync::{fence, AtomicU64, Ordering};

/// A store file opened read-only without a record type: header fields, the writer's
/// pid, a journal's records as bytes and a slot store's slots as byte snapshots.
///
/// Like every reader it takes no lock and never disturbs the writer, which may keep
/// writing while the file is inspected.
///
/// ```
/// # fn main() -> roda_core::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ticks.roda");
/// let mut journal = roda_store::JournalStore::<[u64; 2]>::create(&path, 100)?;
/// journal.append(&[7, 8]);
///
/// let file = roda_store::StoreFile::open(&path)?;
/// assert_eq!(file.header().kind, roda_store::StoreKind::Journal);
/// assert_eq!((file.header().record_size, file.published()), (16, 1));
/// assert_eq!(file.record_bytes(0).unwrap()[..8], 7u64.to_ne_bytes());
/// assert!(file.writer_alive()); // this process holds the journal
/// # Ok(()) }
/// ```
pub struct StoreFile {
    backing: Backing,
    path: PathBuf,
    file_len: u64,
    /// The journal's wake words, mapped writable at the first wait (`None` inside:
    /// the file has none, or can only be read).
    waker: std::sync::OnceLock<Option<crate::wake::Waker>>,
}

/// What [`StoreFile::read_slot`] found in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotSnapshot {
    /// The slot was never set.
    Empty,
    /// The slot was left mid-write by a writer that is gone (or is flagged so).
    Torn,
    /// A consistent copy of the slot's last completed `set`, the `version`-th one; its
    /// record bytes are in the caller's buffer.
    Value {
        /// Completed sets of the slot.
        version: u64,
    },
}

/// The poll interval of [`StoreFile::wait_published`] while the journal has no writer.
const CLOSED_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl StoreFile {
    /// Opens the store file at `path` read-only and validates its header: magic, version,
    /// byte order, kind, record layout, data offset, capacity and the file's length. The
    /// errors are the typed opens' (`NotARodaFile`, `Truncated`, `UnsupportedVersion`,
    /// `LayoutMismatch { field: "byte_order" }`, `Corrupted`, `InvalidCapacity`, `Io`).
    pub fn open(path: impl AsRef<Path>) -> Result<StoreFile> {
        let path = path.as_ref();
        let (backing, file_len) = backing::open_reader_any(path)?;
        Ok(StoreFile {
            backing,
            path: path.into(),
            file_len,
            waker: std::sync::OnceLock::new(),
        })
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header fields.
    pub fn header(&self) -> HeaderInfo {
        self.backing.info
    }

    /// The file's length in bytes when it was opened (at least the header's
    /// `data_offset + capacity * stride`).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The pid the current (or last) writer recorded; 0 after a clean close.
    pub fn writer_pid(&self) -> u32 {
        // Relaxed: the pid is advisory (see `Backing::mark_writer`); nothing is read
        // through it.
        self.backing.atomic(OFF_WRITER_PID).load(Ordering::Relaxed) as u32
    }

    /// Whether a writer (in any process, any pid namespace) holds the file now: tested
    /// by its liveness lock, without taking anything. A writer that closed cleanly or
    /// crashed holds nothing; the recorded pid plays no part (a crashed writer's pid may
    /// have been reused, and a pid means nothing in another namespace).
    pub fn writer_alive(&self) -> bool {
        // A fresh open per question: tools hold many of these (one per segment of an
        // archive), and a descriptor kept by each could exhaust the process's limit.
        // Non-blocking: the path may name a pipe by now, which a plain open waits on.
        match backing::open_regular(&self.path, false) {
            Ok(probe) => writer_holds(&probe).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// For a segment of a segmented journal (`header().segment`), the sequence of its
    /// first record: its record `i` is the journal's record `first + i`. `None` for
    /// other files, and for a segment that holds no records (a spare not used yet, or
    /// one its writer is recycling). Loaded with Acquire semantics.
    pub fn first_sequence(&self) -> Option<u64> {
        if !self.backing.info.segment {
            return None;
        }
        // Relaxed load + Acquire fence, as every reader loads a header word it follows
        // (pairs with the writer's stores of the first sequence before publishing).
        let first = load_write_seq(self.backing.atomic(OFF_FIRST_SEQ));
        (first != NO_RECORDS).then_some(first)
    }

    /// Whether [`wait_published`](Self::wait_published) sleeps on the journal's wake
    /// word: the file is a journal written with waking on (header flag bit 1) and this
    /// process may open it for writing (to register as a sleeper). False: callers poll.
    /// The first call maps the header page writable (and logs once when it cannot).
    pub fn wakes_on_publish(&self) -> bool {
        self.waker().is_some()
    }

    fn waker(&self) -> Option<&crate::wake::Waker> {
        self.waker
            .get_or_init(|| {
                crate::wake::for_backing(&self.backing, crate::wake::DEFAULT_SAFETY_TIMEOUT)
            })
            .as_ref()
    }

    /// Sleeps until the journal's writer publishes past `seen` records, rolls past
    /// this segment or closes the journal, or until `timeout` passes (capped at the
    /// 100 ms safety timeout), and returns the published count then. Returns at once
    /// when more than `seen` records are published already; while no writer has the
    /// journal open it sleeps up to 10 ms (a poll) instead. A return is a hint, not a
    /// promise: callers re-check (a wake-up of a roll, a spurious one or the timeout
    /// leaves the count at `seen`).
    ///
    /// Without wake words ([`wakes_on_publish`](Self::wakes_on_publish) false) it
    /// sleeps for `timeout`, capped at 1 ms, and returns the count: a poll.
    pub fn wait_published(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let published = self.published();
        if published > seen {
            return published;
        }
        match self.waker() {
            Some(waker) => {
                match waker.prepare() {
                    Some(token) => {
                        // Re-check after registering (the protocol's step d).
                        if self.published() > seen {
                            return self.published();
                        }
                        waker.sleep(token, timeout);
                    }
                    // No writer: nothing wakes us until one opens the journal again
                    // (its publishes wake us from the next call on). Poll meanwhile.
                    None => std::thread::sleep(timeout.min(CLOSED_POLL)),
                }
            }
            None => std::thread::sleep(timeout.min(std::time::Duration::from_millis(1))),
        }
        self.published()
    }

    /// The journal's write sequence exactly as stored, not clamped: above the capacity
    /// only in a damaged file. Loaded like [`published`](Self::published). 0 for slot
    /// stores, which do not use it.
    pub fn write_sequence(&self) -> u64 {
        load_write_seq(self.backing.atomic(OFF_WRITE_SEQ))
    }

    /// Records a journal's writer has published (clamped to the capacity, so a damaged
    /// file never makes a read leave the data area); every record below it is complete
    /// and visible. 0 for slot stores.
    pub fn published(&self) -> u64 {
        match self.backing.info.kind {
            StoreKind::Journal => self.write_sequence().min(self.backing.info.capacity),
            StoreKind::Slots => 0,
        }
    }

    /// The bytes of journal record `seq` (`record_size` of them), if it is published;
    /// `None` for slot stores, and for segments of a segmented journal: a `KeepLast`
    /// writer recycles a segment in place, so a view into one could be overwritten
    /// (copy their records with [`copy_record`](Self::copy_record), which validates).
    pub fn record_bytes(&self, seq: u64) -> Option<&[u8]> {
        let info = &self.backing.info;
        if info.kind != StoreKind::Journal || info.segment || seq >= self.published() {
            return None;
        }
        // SAFETY: `seq < published <= capacity` and `stride == record_size` (checked by
        // `decode_any`), so the record lies inside the data area, which was checked to
        // fit the mapping (`required_len`) and lives as long as `self`. It is published:
        // the load in `published` ordered the writer's record writes before this read,
        // and a published record is never written again, so no write races the borrow.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.backing
                    .data()
                    .as_ptr()
                    .add((seq * info.stride) as usize),
                info.record_size as usize,
            )
        })
    }

    /// The bytes of published journal records `seq ..`, at most `max` of them, back to
    /// back (`record_size` bytes each; empty when none is published from `seq`): a run
    /// of [`record_bytes`](Self::record_bytes) in one slice. Plain journals only (empty
    /// for segments and slot stores, as `record_bytes` is `None` for them).
    ///
    /// ```
    /// # fn main() -> roda_core::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let path = tmp.path().join("j.roda");
    /// let mut journal = roda_store::JournalStore::<u32>::create(&path, 8)?;
    /// journal.append_slice(&[1, 2, 3]);
    /// let file = roda_store::StoreFile::open(&path)?;
    /// assert_eq!(file.records_bytes(1, 10), bytemuck::cast_slice::<u32, u8>(&[2, 3]));
    /// assert!(file.records_bytes(3, 10).is_empty());
    /// # Ok(()) }
    /// ```
    pub fn records_bytes(&self, seq: u64, max: usize) -> &[u8] {
        let info = &self.backing.info;
        let published = self.published();
        if info.kind != StoreKind::Journal || info.segment || seq >= published {
            return &[];
        }
        let count = (published - seq).min(max as u64);
        // SAFETY: as in `record_bytes`, for every record of `seq .. seq + count`, all
        // below `published <= capacity`: inside the checked data area, published and
        // never written again; `stride == record_size`, so they are contiguous.
        unsafe {
            std::slice::from_raw_parts(
                self.backing
                    .data()
                    .as_ptr()
                    .add((seq * info.stride) as usize),
                (count * info.record_size) as usize,
            )
        }
    }

    /// Copies journal record `seq` into `out` (resized to `record_size` bytes): `Ok(true)`
    /// with the record's bytes in `out`, or `Ok(false)` when the file does not hold the
    /// record now (not published yet; outside the segment; a segment holding no records,
    /// a spare or one its writer is recycling; a slot store). `seq` is the journal's
    /// sequence: for a segment, the file holds `first_sequence() ..` up to
    /// `first_sequence() + write_sequence()`.
    ///
    /// A segment's writer may recycle it while it is read (`KeepLast`), so a segment's
    /// record is copied with atomic word loads and checked against the segment's
    /// generation (its first sequence) before and after the copy, exactly as
    /// `SegmentedFollower` does: the copy is returned only if the segment held `seq`'s
    /// generation throughout, and never torn. When it no longer does (the segment now
    /// holds newer records, or was recycled during the copy) the result is
    /// `Err(Lagged { missed })`, `missed` counting the records of `seq`'s segment from
    /// `seq` on (all lost; the directory tells how many more are); continue with the
    /// oldest retained record. A plain journal's published records never change: they
    /// are copied as they are.
    ///
    /// ```
    /// use roda_store::{Retention, RodaError, SegmentedJournal, StoreFile};
    ///
    /// # fn main() -> roda_core::Result<()> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("ticks");
    /// // A ring of 2 files of 4 records: the writer recycles the oldest at each roll.
    /// let mut journal = SegmentedJournal::<u64>::create(&dir, 4, Retention::KeepLast(2))?;
    /// for i in 0..6u64 {
    ///     journal.append(&(i * 10));
    /// }
    /// let file = StoreFile::open(dir.join("00000000000000000004.roda"))?;
    /// let mut bytes = Vec::new();
    /// assert!(file.copy_record(5, &mut bytes)?);
    /// assert_eq!(bytes, 50u64.to_ne_bytes());
    /// assert!(!file.copy_record(6, &mut bytes)?); // not written yet
    /// for i in 6..13u64 {
    ///     journal.append(&(i * 10)); // record 12 recycles this file
    /// }
    /// assert!(matches!(file.copy_record(5, &mut bytes), Err(RodaError::Lagged { missed: 3 })));
    /// # Ok(()) }
    /// ```
    pub fn copy_record(&self, seq: u64, out: &mut Vec<u8>) -> Result<bool> {
        let info = &self.backing.info;
        out.resize(info.record_size as usize, 0);
        if info.kind != StoreKind::Journal {
            return Ok(false);
        }
        if !info.segment {
            // A plain journal's published records are never written again.
            return Ok(match self.record_bytes(seq) {
                Some(bytes) => {
                    out.copy_from_slice(bytes);
                    true
                }
                None => false,
            });
        }
        let generation = self.backing.atomic(OFF_FIRST_SEQ);
        // Relaxed load + Acquire fence (`load_write_seq`), as the follower loads it: pairs
        // with the writer's Release store of a write sequence after it set this
        // generation, so records below the write sequence loaded next were written for it.
        let first = load_write_seq(generation);
        if first == NO_RECORDS {
            return Ok(false);
        }
        if seq < first {
            return Err(self.lagged(seq));
        }
        let index = seq - first;
        if index >= info.capacity {
            return Ok(false);
        }
        // `published` loads the segment's write sequence with a Relaxed load + Acquire
        // fence, pairing with the writer's Release store of it (`JournalCore::publish`):
        // the records below it are written.
        let copied = index < self.published();
        if copied {
            self.copy_words(index, out);
        }
        // Acquire fence pairs with the writer's Release fence after it invalidated the
        // generation (`SegmentFiles::prepare`, step 2 of a recycle): if any load above saw
        // a store made after that fence (a recycled record word, a reset write sequence),
        // the load below sees the new generation and the copy is discarded.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        if generation.load(Ordering::Relaxed) != first {
            // The writer moved on from this segment, which it does only once the segment
            // is full: `seq` was written and is gone.
            return Err(self.lagged(seq));
        }
        Ok(copied)
    }

    /// `Lagged` for `seq` of a segment that no longer holds it: the rest of its segment
    /// is lost.
    #[cold]
    fn lagged(&self, seq: u64) -> RodaError {
        let s = self.backing.info.capacity;
        RodaError::Lagged {
            missed: s - seq % s,
        }
    }

    /// Copies record `index` of a segment into `out` (`record_size` bytes) with Relaxed
    /// atomic loads of the writer's word width; the caller validates the copy.
    fn copy_words(&self, index: u64, out: &mut [u8]) {
        let info = &self.backing.info;
        debug_assert!(index < info.capacity && out.len() as u64 == info.record_size);
        // SAFETY: `index < capacity` (checked by the caller) and `stride == record_size`
        // (checked by `decode_any`), so the offset lies inside the data area, which the
        // mapping covers (`required_len` was checked when it was mapped).
        let src = unsafe {
            self.backing
                .data()
                .as_ptr()
                .add((index * info.stride) as usize)
        };
        // SAFETY: `src .. src + record_size` is record `index`, inside the mapping, which
        // lives as long as `self`. The data area is page-aligned and the record starts at
        // a multiple of `record_size`, so at a multiple of `word_width(record_size)`,
        // which divides it. A segment's writer stores records only through atomics of
        // that same width (`write_words_at`, whose `word_size::<T>()` is
        // `word_width(size_of::<T>())`), so the loads race with atomics only.
        unsafe { words::load(word_width(info.record_size), src, out) }
    }

    /// Slot `index`'s sequence word, with Acquire semantics: 0 never set, odd while a
    /// set is under way (or left torn), bit 63 flagged torn; `(sequence & !(1 << 63)) / 2`
    /// is the slot's version. `None` out of range or for a journal.
    pub fn slot_sequence(&self, index: u64) -> Option<u64> {
        Some(seqlock::load_seq(self.slot_word(index, 0)?))
    }

    /// A consistent snapshot of slot `index`, read under the slot's seqlock exactly as
    /// `SlotReader::get` does (retrying while a live writer is setting the slot; a slot
    /// that stays odd after its writer is gone is torn). On `Value` the record's bytes
    /// (`record_size`) are in `out`, which is resized to fit. `None` out of range or
    /// for a journal.
    pub fn read_slot(&self, index: u64, out: &mut Vec<u8>) -> Option<SlotSnapshot> {
        self.slot_word(index, 0)?;
        out.resize(self.backing.info.record_size as usize, 0);
        let word = |w: usize| {
            self.slot_word(index, w as u64)
                .expect("payload words lie inside the slot")
        };
        let mut attempt = || seqlock::try_read_bytes(word, out);
        let found = match attempt() {
            Ok(found) => Some(found),
            Err(_) => seqlock::retry_read(attempt, || self.writer_alive()).0,
        };
        Some(match found {
            Some(Found::Value(seq)) => SlotSnapshot::Value {
                version: (seq & !TORN) / 2,
            },
            Some(Found::Empty) => SlotSnapshot::Empty,
            Some(Found::Torn) | None => SlotSnapshot::Torn,
        })
    }

    /// Word `word` of slot `index` (0 is the sequence word, 1.. the payload).
    fn slot_word(&self, index: u64, word: u64) -> Option<&AtomicU64> {
        let info = &self.backing.info;
        if info.kind != StoreKind::Slots || index >= info.capacity {
            return None;
        }
        // `decode_any` checked stride == stride_for(record_size), so the payload words
        // (1 ..= ceil(record_size / 8)) fit in the stride; `Region::atomic` checks the
        // bounds again and the data offset and stride are multiples of 8.
        debug_assert!(8 * word < info.stride);
        let offset = info.data_offset + index * info.stride + 8 * word;
        Some(self.backing.atomic(offset as usize))
    }
}

/// The width of the atomic words a segment's writer stores records of `record_size`
/// bytes in: `journal::core::word_size::<T>()` for `size_of::<T>() == record_size`, the
/// largest of 8, 4, 2 and 1 that divides it.
fn word_width(record_size: u64) -> usize {
    match record_size {
        s if s % 8 == 0 => 8,
        s if s % 4 == 0 => 4,
        s if s % 2 == 0 => 2,
        _ => 1,
    }
}

impl std::fmt::Debug for StoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFile")
            .field("path", &self.path)
            .field("header", &self.backing.info)
            .finish()
    }
}

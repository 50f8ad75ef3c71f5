//! The directory of a file-backed [`SegmentedJournal`](crate::SegmentedJournal): segment
//! file names, creation, recovery on open, and the roll into the next segment file.
//!
//! A directory holds fixed-size segment files named by the first sequence they were
//! created or last renamed for, `{first:020}.roda` (20 digits: every `u64`, and names
//! sort in sequence order). Each file is a plain version-1 journal file whose header
//! carries the segment flag, its retention and, live, its first sequence
//! (`NO_RECORDS` while it holds nothing). Recovery trusts those headers, never the
//! names. `docs/file-format.md` describes the layout and the step order of a roll.

#[cfg(roda_loom)]
/// Under loom there are no files: nothing can construct this.
pub(crate) enum SegmentFiles {}

#[cfg(roda_loom)]
impl SegmentFiles {
    pub(crate) fn roll<T: roda_core::Record>(
        &mut self,
        _core: &crate::segmented::core::SegmentedCore<T>,
        _current_start: u64,
        _next_start: u64,
    ) -> roda_core::Result<()> {
        match *self {}
    }

    pub(crate) fn retention(&self) -> crate::file::options::Retention {
        match *self {}
    }
}

#[cfg(not(roda_loom))]
pub(crate) use on_disk::*;

#[cfg(not(roda_loom))]
mod on_disk {
    use std::ffi::OsStr;
    use std::io;
    use std::path::{Path, PathBuf};

    use roda_core::{Record, Result, RodaError};

    use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
    use std::sync::{Arc, Mutex, PoisonError};

    use crate::file::backing::{self, Backing, Claimed, Unlinked};
    use crate::file::header::{
        self, HeaderInfo, Shape, MAX_KEEP_LAST, NO_RECORDS, OFF_FIRST_SEQ, OFF_WRITE_SEQ,
    };
    use crate::file::lock::{LockAttempt, WriterLock};
    use crate::file::options::Retention;
    use crate::file::options::Settings;
    use crate::file::region::Region;
    use crate::segmented::core::{check_ring, SegmentedCore};
    use crate::sync::{fence, Ordering};

    /// Segments a `KeepAll` journal keeps mapped: its in-process window of
    /// [`KEEP_ALL_RETAINED`] segments and one slot more, into which the pre-toucher
    /// moves the next segment's file ahead of its roll (older segments stay on disk,
    /// where `SegmentedFollower::open` reads them).
    pub(crate) const KEEP_ALL_MAPPED: usize = KEEP_ALL_RETAINED + 1;

    /// Segments a `KeepAll` journal keeps readable in memory: the one being written
    /// and the ones before it.
    pub(crate) const KEEP_ALL_RETAINED: usize = 4;

    /// Sequences of a file-backed segmented journal stay below 2^63 (292 years at a
    /// billion records a second): a segment header whose first sequence, or a ring whose
    /// span, reaches it is damage. Below it, the writer's and the followers' sequence
    /// sums (a segment's end, the ring's next segments) cannot overflow.
    pub(crate) const SEQUENCE_LIMIT: u64 = 1 << 63;

    /// Whether a segment header's first sequence `first` (read from a file: any value)
    /// names a segment of `segment_records` records that holds records.
    pub(crate) fn holds_segment(first: u64, segment_records: u64) -> bool {
        first != NO_RECORDS && first < SEQUENCE_LIMIT && first % segment_records == 0
    }

    /// Most spare files `open` creates to complete a `create` cut short; a directory
    /// missing more is refused (it holds no records: create it again).
    const MAX_COMPLETED: usize = 64;

    /// Refuses a `KeepLast(k)` with more files than a journal can keep open.
    fn check_retention(retention: Retention) -> Result<()> {
        match retention {
            Retention::KeepLast(k) if k as u64 > MAX_KEEP_LAST => Err(RodaError::InvalidCapacity {
                capacity: k as u64,
                reason: "KeepLast keeps at most 65,536 segment files (the writer holds each \
                         one open and mapped); use larger segments",
            }),
            _ => Ok(()),
        }
    }

    /// The file name of the segment whose first sequence is `first`.
    pub(crate) fn segment_name(first: u64) -> String {
        format!("{first:020}.roda")
    }

    /// Sets `path` to `dir/{first:020}.roda` without allocating once `path` has the
    /// capacity (rolls happen on the append path).
    pub(crate) fn set_segment_path(path: &mut PathBuf, dir: &Path, first: u64) {
        let mut name = *b"00000000000000000000.roda";
        let mut v = first;
        for digit in name[..20].iter_mut().rev() {
            *digit = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let name = std::str::from_utf8(&name).expect("ASCII digits");
        path.as_mut_os_string().clear();
        path.push(dir);
        path.push(name);
    }

    /// The first sequence a segment file name stands for; `None` for other names.
    pub(crate) fn parse_name(name: &OsStr) -> Option<u64> {
        let name = name.to_str()?;
        let digits = name.strip_suffix(".roda")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// A segment file as a directory scan found it (header words read with `pread`).
    #[derive(Clone, Debug)]
    pub(crate) struct Found {
        /// The first sequence its name stands for.
        pub(crate) name: u64,
        pub(crate) path: PathBuf,
        /// Its header's first sequence (`NO_RECORDS`: holds nothing).
        pub(crate) first: u64,
        /// Its header's write sequence: records committed in it.
        pub(crate) written: u64,
    }

    /// Every segment file in `dir`, in name order. Other files (and anything under a
    /// segment's name that is not a regular file) are ignored.
    pub(crate) fn scan(dir: &Path) -> Result<Vec<Found>> {
        let entries = std::fs::read_dir(dir).map_err(|e| RodaError::io(dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| RodaError::io(dir, e))?;
            let Some(name) = parse_name(&entry.file_name()) else {
                continue;
            };
            let path = entry.path();
            let file = match backing::open_regular(&path, false) {
                Ok(file) => file,
                // Renamed away since the listing (a recycle): it shows up under its
                // new name in a later scan.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // A directory, pipe or device under a segment's name is no segment
                // file: ignored like any other name.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => continue,
                Err(e) => return Err(RodaError::io(&path, e)),
            };
            found.push(Found {
                name,
                first: backing::read_word(&file, OFF_FIRST_SEQ as u64),
                written: backing::read_word(&file, OFF_WRITE_SEQ as u64),
                path,
            });
        }
        found.sort_by_key(|f| f.name);
        Ok(found)
    }

    /// The `retention` header word of a policy.
    pub(crate) fn retention_word(retention: Retention) -> u64 {
        match retention {
            Retention::KeepLast(k) => k as u64,
            Retention::KeepAll => 0,
        }
    }

    /// Segments mapped at once under `retention`.
    pub(crate) fn mapped_segments(retention: Retention) -> usize {
        match retention {
            Retention::KeepLast(k) => k,
            Retention::KeepAll => KEEP_ALL_MAPPED,
        }
    }

    fn lock_dir(dir: &Path) -> Result<WriterLock> {
        let handle = backing::open_dir(dir).map_err(|e| RodaError::io(dir, e))?;
        match WriterLock::try_lock(handle).map_err(|e| RodaError::io(dir, e))? {
            LockAttempt::Taken(lock) => Ok(lock),
            LockAttempt::Held(_) => {
                // The pid recorded in the newest segment, if any.
                let pid = scan(dir)
                    .ok()
                    .and_then(|found| found.last().cloned())
                    .and_then(|f| backing::open_regular(&f.path, false).ok())
                    .map_or(0, |file| backing::read_writer_pid(&file));
                Err(RodaError::WriterActive { pid })
            }
        }
    }

    /// Removes the temporary files (`.{segment name}.roda-tmp-PID-N`) that a writer
    /// killed while creating a segment file left in `dir`. Only the holder of the
    /// directory lock creates segment files, so every such file is a leftover; each
    /// holds its reserved blocks until removed.
    fn remove_temp_files(dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| RodaError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RodaError::io(dir, e))?;
            let name = entry.file_name();
            let leftover = name.to_str().is_some_and(|name| {
                name.strip_prefix('.')
                    .and_then(|rest| rest.split_once(".roda-tmp-"))
                    .is_some_and(|(segment, _)| parse_name(OsStr::new(segment)).is_some())
            });
            if leftover {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(RodaError::io(entry.path(), e)),
                }
            }
        }
        Ok(())
    }

    fn sync_dir(dir: &Path) -> Result<()> {
        backing::open_dir(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| RodaError::io(dir, e))
    }

    /// The writer's hold on a segment directory.
    pub(crate) struct SegmentFiles {
        dir: PathBuf,
        _dir_lock: WriterLock,
        retention: Retention,
        /// The first sequence in the name of each ring slot's file.
        names: Vec<u64>,
        /// Each slot's file lock (so no plain journal writer opens a segment).
        locks: Vec<Option<WriterLock>>,
        /// Header of new segment files.
        info: HeaderInfo,
        settings: Settings,
        /// Path buffers for the rename of a roll, reused so a roll allocates nothing.
        from: PathBuf,
        to: PathBuf,
        /// `KeepAll`: where the next segment file is prepared ahead of its roll.
        ahead: Option<Arc<Ahead>>,
        /// `KeepAll`: the names of the files rolls archived (unmapped) since the last
        /// `flush`, which must sync them by name (no mapping is left to msync): runs
        /// of consecutive segments `(first, last)`, one run unless a damaged directory
        /// had odd names.
        unsynced: Vec<(u64, u64)>,
    }

    /// A `KeepAll` journal's next segment files (the next two), prepared before the
    /// writer needs them, each created under its temporary name with its blocks
    /// reserved, mapped in a mapping of its own (header written, holding no records:
    /// first sequence `NO_RECORDS`), its first pages populated, then linked under its
    /// name: a named spare, which recovery already accepts (docs/file-format.md,
    /// "Rolling"). The roll then only moves its mapping over the ring slot
    /// ([`Region::adopt`]) and sets its first sequence. The pre-toucher prepares them
    /// when the journal has one; otherwise the roll prepares the file it needs.
    ///
    /// A file named for segment `g` always becomes segment `g` (followers that found
    /// it wait on its header): a name taken already (a spare a crash or a closed writer
    /// left) is opened and used, never replaced.
    pub(crate) struct Ahead {
        dir: PathBuf,
        info: HeaderInfo,
        settings: Settings,
        /// The prepared file, named. Held while a file is named for a segment (by the
        /// pre-toucher, or by a roll that found none waiting), so the writer and the
        /// pre-toucher never both claim the file of one segment.
        /// Up to [`AHEAD`] files, for the segments after the writer's (so a
        /// pre-toucher that starts late after a roll still has a segment's time).
        ready: Mutex<Vec<(u64, Unlinked)>>,
        /// The lock (open file) of the segment the last roll archived, closed here by
        /// the pre-toucher instead of on the writer's thread (the last close of a file
        /// releases its locks and may reach the file system).
        retired: Mutex<Option<WriterLock>>,
        /// The last segment the pre-toucher finished preparing (its file waits, or the
        /// spare in its slot is populated); `NO_RECORDS` before the first.
        pub(crate) prepared: StdAtomicU64,
        /// The file the pre-toucher moved into its ring slot ahead of the roll (see
        /// [`SegmentedCore::install_ahead`]): the segment it is for and its lock, until
        /// the writer's roll into that segment takes it over. Held by the writer through
        /// a `KeepAll` roll and by the pre-toucher through an install, so the two never
        /// change one slot at once.
        pub(crate) installed: Mutex<Option<(u64, WriterLock)>>,
    }

    /// Bytes populated per madvise call while preparing a file: each call holds the
    /// process's mapping lock (for reading), which a roll's `mremap` waits for (to
    /// write), so the calls stay short.
    const PREPARE_CHUNK: usize = 64 * 1024;

    /// Files prepared ahead: the next segment's and the one after it.
    pub(crate) const AHEAD: usize = 2;

    impl Ahead {
        /// Builds the file of the segment starting at `first` under its temporary
        /// name, holding no records, with the bytes of its header page and the first
        /// `touch` bytes of its data populated for writing.
        fn build(&self, first: u64, touch: usize) -> Result<Unlinked> {
            let path = self.dir.join(segment_name(first));
            let unlinked = backing::create_unlinked(&path, &self.info, &self.settings, |r| {
                // Relaxed: the file has no name yet (it is linked into place later).
                // It holds nothing until the roll moves it into its slot.
                r.atomic(OFF_FIRST_SEQ).store(NO_RECORDS, Ordering::Relaxed);
            })?;
            if touch > 0 && !self.settings.populate {
                let len = (self.info.data_offset as usize).saturating_add(touch);
                let region = unlinked.region();
                let mut at = 0;
                while at < len.min(region.len()) {
                    let chunk = PREPARE_CHUNK.min(len - at);
                    if let Err(e) = region.prefault_range(at, chunk) {
                        log::warn!("roda: could not pre-fault the next segment file ({e})");
                        break;
                    }
                    at += chunk;
                }
            }
            Ok(unlinked)
        }

        /// The shape of this directory's segments.
        fn shape(&self) -> Shape {
            Shape {
                kind: self.info.kind,
                record_size: self.info.record_size,
                record_align: self.info.record_align,
                stride: self.info.stride,
                schema: self.info.schema,
                segment: true,
                wake: self.info.wake,
            }
        }

        /// The existing file named for segment `first`, opened if it is a spare of this
        /// journal (holding no records) that no one else holds; `None` otherwise (the
        /// writer's own segment, an archived one).
        fn open_spare(&self, first: u64) -> Result<Option<Unlinked>> {
            let path = self.dir.join(segment_name(first));
            let Some((spare, info)) = backing::open_spare(&path, self.shape(), &self.settings)?
            else {
                return Ok(None);
            };
            let region = spare.region();
            // Relaxed: this process holds the file's lock; a header word another
            // writer stored before dying is read whole either way.
            let held = region.atomic(OFF_FIRST_SEQ).load(Ordering::Relaxed);
            let written = region.atomic(OFF_WRITE_SEQ).load(Ordering::Relaxed);
            let ours = info.journal_id == self.info.journal_id
                && info.capacity == self.info.capacity
                && info.retention == self.info.retention;
            if held != NO_RECORDS || written != 0 || !ours {
                return Ok(None);
            }
            Ok(Some(spare))
        }

        /// Names `file` (built for segment `first`) `{first}`, or, if that name is
        /// taken, opens the spare under it; `None` if the name is taken by anything
        /// else. The caller holds `ready`.
        fn name(&self, mut file: Unlinked, first: u64) -> Result<Option<Unlinked>> {
            let path = self.dir.join(segment_name(first));
            match file.link(&path) {
                Ok(()) => Ok(Some(file)),
                Err(RodaError::AlreadyExists { .. }) => {
                    drop(file);
                    self.open_spare(first)
                }
                Err(e) => Err(e),
            }
        }

        /// Makes sure the file of the segment starting at `first` waits, prepared and
        /// named (the pre-toucher's call). Files for segments before `first - S` are
        /// dropped (they stay on disk, named spares).
        pub(crate) fn ensure(&self, first: u64, touch: usize) -> Result<()> {
            let waiting = |ready: &[(u64, Unlinked)]| ready.iter().any(|(f, _)| *f == first);
            if waiting(&self.ready.lock().unwrap_or_else(PoisonError::into_inner)) {
                return Ok(());
            }
            // Built and populated before the mutex: a roll never waits for this.
            let file = self.build(first, touch)?;
            let stale = {
                let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(named) = self.name(file, first)? else {
                    // The writer got there first (it rolled into `first` already).
                    return Ok(());
                };
                let oldest = first.saturating_sub(self.info.capacity);
                let stale = match ready.iter().position(|(f, _)| *f < oldest) {
                    Some(i) => Some(ready.swap_remove(i)),
                    None if ready.len() >= AHEAD => Some(ready.swap_remove(0)),
                    None => None,
                };
                ready.push((first, named));
                stale
            };
            // Unmapped outside the lock.
            drop(stale);
            Ok(())
        }

        /// The writer's roll: the file of segment `first`, prepared ahead if it waits,
        /// else prepared now (built and named, or the spare already named so). It
        /// waits for the pre-toucher only while that names a file (when it is late).
        fn take(&self, first: u64) -> Result<Unlinked> {
            let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = ready.iter().position(|(f, _)| *f == first) {
                return Ok(ready.swap_remove(i).1);
            }
            // None waits: prepare it now, holding `ready` (so the pre-toucher does not
            // name or open the same file meanwhile).
            let file = self.build(first, 0)?;
            self.name(file, first)?.ok_or_else(|| RodaError::Corrupted {
                path: self.dir.join(segment_name(first)),
                detail: "the next segment's file exists but is no spare of this journal \
                         (it holds records, or another process holds it); move it away"
                    .into(),
            })
        }

        /// Hands the lock of an archived segment over, to be closed off the writer's
        /// thread ([`drop_retired`](Self::drop_retired)). Never waits: while the
        /// pre-toucher holds the hand-over, the lock is closed here; a lock handed over
        /// before and not closed yet (no pre-toucher, or one that fell behind) is
        /// closed here too.
        fn retire(&self, lock: Option<WriterLock>) {
            let older = match self.retired.try_lock() {
                Ok(mut retired) => std::mem::replace(&mut *retired, lock),
                Err(_) => lock,
            };
            drop(older);
        }

        /// Closes the archived segment's lock handed over by the last roll (the
        /// pre-toucher's call).
        pub(crate) fn drop_retired(&self) {
            let retired = self
                .retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(retired);
        }

        /// msync of the files waiting: they are named, so a flush makes their headers
        /// durable with their names.
        fn flush(&self) -> Result<()> {
            let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            for (first, file) in ready.iter() {
                file.region()
                    .flush()
                    .map_err(|e| RodaError::io(self.dir.join(segment_name(*first)), e))?;
            }
            Ok(())
        }

        /// Takes the file waiting for segment `first`, if one waits (the pre-toucher's
        /// install, which holds `installed`).
        pub(crate) fn take_ready(&self, first: u64) -> Option<Unlinked> {
            let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            let i = ready.iter().position(|(f, _)| *f == first)?;
            Some(ready.swap_remove(i).1)
        }

        /// Records that segment `first` is prepared (see `prepared`).
        pub(crate) fn mark_prepared(&self, first: u64) {
            // Relaxed: a progress report for tests and diagnostics; nothing is read
            // through it.
            self.prepared.store(first, StdOrdering::Relaxed);
        }

        /// Drops the files waiting and the retired lock (the writer closes). The
        /// waiting files stay on disk under their names, spares the next writer rolls
        /// into.
        pub(crate) fn clear(&self) {
            let old =
                std::mem::take(&mut *self.ready.lock().unwrap_or_else(PoisonError::into_inner));
            drop(old);
            // A file installed in its slot stays there, a named spare holding nothing.
            let installed = self
                .installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(installed);
            self.drop_retired();
        }
    }

    /// fdatasync of a store file that is no longer mapped.
    fn sync_unmapped(file: &std::fs::File) -> io::Result<()> {
        #[cfg(test)]
        if let Some(errno) = crate::file::region::fault::fsync_failure() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        file.sync_data()
    }

    /// The header of a new segment file of `segment_records` records of `shape`.
    fn segment_info(
        shape: Shape,
        settings: &Settings,
        segment_records: usize,
        retention: Retention,
    ) -> Result<HeaderInfo> {
        let mut info = header::layout(shape, segment_records)?;
        header::set_journal_id(&mut info, settings);
        info.retention = retention_word(retention);
        Ok(info)
    }

    fn path_buffer(dir: &Path) -> PathBuf {
        PathBuf::with_capacity(dir.as_os_str().len() + 64)
    }

    /// A writer's segment directory, opened or created: the slots' memory, the
    /// directory state, where to resume and the oldest retained sequence.
    pub(crate) struct Opened {
        pub(crate) backings: Vec<Backing>,
        pub(crate) files: SegmentFiles,
        pub(crate) seq: u64,
        pub(crate) floor: u64,
        pub(crate) segment_records: u64,
    }

    /// Creates the directory (if needed) and its first segment files: the ring of
    /// `KeepLast(k)` (k files), or the mapped window of `KeepAll`. Fails with
    /// `AlreadyExists` if `dir` holds segment files.
    pub(crate) fn create(
        dir: &Path,
        shape: Shape,
        settings: &Settings,
        segment_records: usize,
        retention: Retention,
        first: u64,
    ) -> Result<Opened> {
        check_retention(retention)?;
        let slots = mapped_segments(retention);
        check_ring(segment_records, slots)?;
        let info = segment_info(shape, settings, segment_records, retention)?;
        let s = segment_records as u64;
        s.checked_mul(slots as u64)
            .and_then(|span| span.checked_add(first))
            .filter(|&end| end <= SEQUENCE_LIMIT)
            .ok_or(RodaError::InvalidCapacity {
                capacity: s,
                reason: "the ring's sequence span overflows u64; use smaller segments",
            })?;
        if first % s != 0 {
            return Err(RodaError::InvalidCapacity {
                capacity: s,
                reason: "a segmented journal starts at a multiple of its segment size: \
                         choose a first sequence divisible by segment_records",
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| RodaError::io(dir, e))?;
        let dir_lock = lock_dir(dir)?;
        remove_temp_files(dir)?;
        if !scan(dir)?.is_empty() {
            return Err(RodaError::AlreadyExists { path: dir.into() });
        }
        let mut files = SegmentFiles::new(dir, dir_lock, retention, info, settings);
        let mut backings = Vec::with_capacity(slots);
        // The ring slot of the segment starting at `first` holds it; the others are
        // spares named for the segments that follow it.
        let first_slot = (first / s) % slots as u64;
        for slot in 0..slots as u64 {
            let ahead = (slot + slots as u64 - first_slot) % slots as u64;
            let name = first + ahead * s;
            let claimed =
                files.create_segment(name, if ahead == 0 { first } else { NO_RECORDS })?;
            backings.push(claimed.backing);
            files.names.push(name);
            files.locks.push(claimed.lock);
        }
        sync_dir(dir)?;
        Ok(Opened {
            backings,
            files,
            seq: first,
            floor: first,
            segment_records: s,
        })
    }

    /// Opens the segment directory `dir` for writing: takes its lock, reads every
    /// segment header and resumes after the last committed record (see
    /// docs/file-format.md, "Recovery").
    pub(crate) fn open(dir: &Path, shape: Shape, settings: &Settings) -> Result<Opened> {
        let dir_lock = lock_dir(dir)?;
        remove_temp_files(dir)?;
        let found = scan(dir)?;
        let Some(any) = found.first() else {
            return Err(RodaError::io(
                dir,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no segment files ({20 digits}.roda) in this directory; \
                     create the journal with SegmentedJournal::create",
                ),
            ));
        };
        // The layout, from one file, type-checked; every file is checked when mapped.
        let probe = backing::open_reader(&any.path, shape, settings)?;
        let (s, retention_raw) = (probe.info.capacity, probe.info.retention);
        let journal_id = probe.info.journal_id;
        drop(probe);
        let retention = match retention_raw {
            0 => Retention::KeepAll,
            k => Retention::KeepLast(k as usize),
        };
        if let Some(asked) = settings.retention {
            if asked != retention {
                return Err(RodaError::LayoutMismatch {
                    field: "retention",
                    expected: retention_word(asked),
                    found: retention_raw,
                });
            }
        }
        let slots = mapped_segments(retention);
        check_ring(s as usize, slots)?;
        let corrupted = |path: &Path, detail: String| RodaError::Corrupted {
            path: path.into(),
            detail,
        };
        // The ring's span: the sums below stay under 2^64 (current < SEQUENCE_LIMIT).
        let span = s
            .checked_mul(slots as u64)
            .filter(|&span| span <= SEQUENCE_LIMIT)
            .ok_or_else(|| {
                corrupted(
                    dir,
                    format!("{slots} segments of {s} records overflow the sequence space"),
                )
            })?;
        if let Retention::KeepLast(k) = retention {
            if found.len() > k {
                return Err(corrupted(
                    dir,
                    format!(
                        "{} segment files for KeepLast({k}); move away the files that \
                         do not belong to this journal",
                        found.len()
                    ),
                ));
            }
        }
        let valid: Vec<&Found> = found.iter().filter(|f| f.first != NO_RECORDS).collect();
        for f in &valid {
            if !holds_segment(f.first, s) || f.written > s {
                return Err(corrupted(
                    &f.path,
                    format!(
                        "segment header says first sequence {} with {} records, \
                         which does not fit segments of {s} records",
                        f.first, f.written
                    ),
                ));
            }
        }
        let newest = valid.iter().max_by_key(|f| f.first).copied();
        if let Retention::KeepLast(k) = retention {
            // Fewer than k files: what a `create` cut short leaves (it makes the files
            // of slots 0, 1, ... in turn, segment 0 empty and the others spares, before
            // the first append) is completed below, up to MAX_COMPLETED files. Anything
            // else lost files, and recreating up to k of them (any number a damaged
            // header says, each a segment's size on disk) would be no repair.
            let cut_short = found.iter().enumerate().all(|(slot, f)| {
                f.name == slot as u64 * s
                    && f.written == 0
                    && f.first == if slot == 0 { 0 } else { NO_RECORDS }
            });
            if found.len() < k && !(cut_short && k - found.len() <= MAX_COMPLETED) {
                return Err(corrupted(
                    dir,
                    format!(
                        "{} of the {k} segment files of KeepLast({k}) are missing; restore \
                         them, or move the directory away and create the journal again",
                        k - found.len()
                    ),
                ));
            }
        }
        let (seq, current) = match newest {
            // No overflow: first < SEQUENCE_LIMIT and written <= s <= span <= SEQUENCE_LIMIT.
            Some(f) => (f.first + f.written, f.first),
            None => (0, 0),
        };
        // The window of mapped segments ends with the current one.
        // current + span < 2^64 (both at most SEQUENCE_LIMIT, current below it): so are
        // `future` and `past` below.
        let window_start = (current + s).saturating_sub(span);
        let mut floor = current;
        while floor >= s + window_start
            && valid.iter().any(|f| f.first == floor - s && f.written == s)
        {
            floor -= s;
        }
        for f in &valid {
            if f.first >= window_start && f.first < current && f.written != s {
                return Err(corrupted(
                    &f.path,
                    format!(
                        "segment {} holds {} of {s} records but a newer segment exists",
                        f.first, f.written
                    ),
                ));
            }
        }
        let slot_of = |first: u64| ((first / s) % slots as u64) as usize;
        // Slot `slot` holds the current segment, or one of the window's older ones
        // (`past`), and holds `future` next.
        let ahead = |slot: usize| ((slot + slots - slot_of(current)) % slots) as u64;
        let future = |slot: usize| current + ahead(slot) * s;
        let past = |slot: usize| match ahead(slot) {
            0 => Some(current),
            a => (current + a * s).checked_sub(span),
        };
        let mut chosen: Vec<Option<&Found>> = vec![None; slots];
        match retention {
            Retention::KeepLast(_) => {
                for f in &valid {
                    let slot = slot_of(f.first);
                    if chosen[slot].is_some() {
                        return Err(corrupted(
                            &f.path,
                            format!("two segment files hold ring slot {slot}"),
                        ));
                    }
                    chosen[slot] = Some(f);
                }
                let mut spares = found.iter().filter(|f| f.first == NO_RECORDS);
                for slot in chosen.iter_mut() {
                    if slot.is_none() {
                        *slot = spares.next();
                    }
                }
            }
            Retention::KeepAll => {
                for (slot, pick) in chosen.iter_mut().enumerate() {
                    let old = past(slot).filter(|_| newest.is_some());
                    *pick = valid
                        .iter()
                        .copied()
                        .find(|f| Some(f.first) == old)
                        .or_else(|| {
                            found
                                .iter()
                                .find(|f| f.first == NO_RECORDS && f.name == future(slot))
                        });
                }
            }
        }
        // `retention` came from `retention_raw`, so the new files' header says the same.
        let mut info = segment_info(shape, settings, s as usize, retention)?;
        // New segment files carry the directory's journal id.
        info.journal_id = journal_id;
        let mut files = SegmentFiles::new(dir, dir_lock, retention, info, settings);
        let mut backings = Vec::with_capacity(slots);
        for (slot, pick) in chosen.into_iter().enumerate() {
            let claimed = match pick {
                Some(f) => {
                    let claimed = backing::open_writer(&f.path, shape, settings)?;
                    if claimed.backing.info.journal_id != journal_id {
                        return Err(corrupted(
                            &f.path,
                            format!(
                                "segment of journal {:#x} in the directory of journal \
                                 {journal_id:#x}; move it away",
                                claimed.backing.info.journal_id
                            ),
                        ));
                    }
                    if claimed.backing.info.capacity != s
                        || claimed.backing.info.retention != retention_raw
                    {
                        return Err(corrupted(
                            &f.path,
                            format!(
                                "segment of {} records (retention {}) in a journal of {s} \
                                 (retention {retention_raw})",
                                claimed.backing.info.capacity, claimed.backing.info.retention
                            ),
                        ));
                    }
                    files.names.push(f.name);
                    claimed
                }
                None => {
                    // A slot without a file (a create cut short): a new spare.
                    let name = future(slot);
                    let claimed = files.create_segment(name, NO_RECORDS)?;
                    files.names.push(name);
                    claimed
                }
            };
            files.locks.push(claimed.lock);
            backings.push(claimed.backing);
        }
        if newest.is_none() {
            // Nothing committed: slot 0 holds segment 0 (it has no roll to prepare it).
            files.prepare(&backings[0], 0, 0)?;
        }
        Ok(Opened {
            backings,
            files,
            seq,
            floor: floor.min(seq),
            segment_records: s,
        })
    }

    impl SegmentFiles {
        /// The directory state of the writer holding `dir_lock`, before any ring slot
        /// is filled; new segment files get the header `info` (see [`segment_info`]).
        fn new(
            dir: &Path,
            dir_lock: WriterLock,
            retention: Retention,
            info: HeaderInfo,
            settings: &Settings,
        ) -> SegmentFiles {
            let slots = mapped_segments(retention);
            let ahead = (retention == Retention::KeepAll).then(|| {
                Arc::new(Ahead {
                    dir: dir.into(),
                    info,
                    settings: *settings,
                    ready: Mutex::new(Vec::with_capacity(AHEAD + 1)),
                    retired: Mutex::new(None),
                    prepared: StdAtomicU64::new(NO_RECORDS),
                    installed: Mutex::new(None),
                })
            });
            SegmentFiles {
                dir: dir.into(),
                _dir_lock: dir_lock,
                retention,
                names: Vec::with_capacity(slots),
                locks: Vec::with_capacity(slots),
                info,
                settings: *settings,
                from: path_buffer(dir),
                to: path_buffer(dir),
                ahead,
                unsynced: Vec::with_capacity(4),
            }
        }

        /// Where a `KeepAll` journal's next segment file is prepared (`None` for
        /// `KeepLast`).
        pub(crate) fn ahead(&self) -> Option<Arc<Ahead>> {
            self.ahead.clone()
        }

        /// Creates segment file `{name}` whose header says `first`, locked and mapped.
        fn create_segment(&self, name: u64, first: u64) -> Result<Claimed> {
            let path = self.dir.join(segment_name(name));
            backing::create_with(&path, &self.info, &self.settings, |b| {
                // Relaxed: the file is not visible yet (linked into place after this).
                b.atomic(OFF_FIRST_SEQ).store(first, Ordering::Relaxed);
            })
        }

        /// Prepares ring slot `slot`'s file (`backing`) to hold segment `next`: the
        /// recycle steps 2 to 5 of docs/file-format.md.
        fn prepare(&mut self, backing: &Backing, slot: usize, next: u64) -> Result<()> {
            let first = backing.atomic(OFF_FIRST_SEQ);
            // 2. Invalidate: a Release fence pairing with the Acquire fence of a
            // directory follower that loads the store below (`load_write_seq`): it then
            // sees the rolls before, so it can tell a recycle out of its segment from
            // one into it (`written_past`). Relaxed store, then a Release fence pairing
            // with a follower's Acquire fence before its re-check (`read_validated`): a
            // follower that sees any later store of this recycle discards its copy.
            fence(Ordering::Release);
            first.store(NO_RECORDS, Ordering::Relaxed);
            fence(Ordering::Release);
            // 3. Empty it. Relaxed: ordered after the fence above; the records that
            // follow are published by Release stores of this word.
            backing.atomic(OFF_WRITE_SEQ).store(0, Ordering::Relaxed);
            // 4. Its new name (recovery does not depend on it: headers decide).
            if self.names[slot] != next {
                set_segment_path(&mut self.from, &self.dir, self.names[slot]);
                set_segment_path(&mut self.to, &self.dir, next);
                std::fs::rename(&self.from, &self.to).map_err(|e| RodaError::io(&self.from, e))?;
                self.names[slot] = next;
            }
            // 5. Holds segment `next` from now on. Release pairs with the follower's
            // Acquire load of the generation (`read_validated`, `StoreFile::copy_record`):
            // a reader that sees `next` here also sees step 3's empty write sequence,
            // never the old segment's full count under the new first sequence.
            first.store(next, Ordering::Release);
            Ok(())
        }

        /// Moves the writer from the segment starting at `current_start` (full) to the
        /// one starting at `next_start`, in ring slot `core.slot_of(next_start)`, which
        /// no gating reader holds.
        pub(crate) fn roll<T: Record>(
            &mut self,
            core: &SegmentedCore<T>,
            current_start: u64,
            next_start: u64,
        ) -> Result<()> {
            // 1. Seal the full segment (a batch may not have published it yet).
            core.segment_of(current_start).publish(core.segment_records);
            let slot = core.slot_of(next_start);
            let backing = &core.segments[slot].backing;
            match self.retention {
                // The slot's file is already named for `next_start`: a spare, or the
                // file a roll cut short by a crash created (or a spare whose first
                // sequence it set) before publishing a record in it. Recovery resumed
                // at `next_start`, so it holds nothing committed: prepare it in place.
                // (Creating it again would find it, and opening it would find this
                // writer's own lock.)
                Retention::KeepAll if self.names[slot] != next_start => {
                    let ahead = Arc::clone(self.ahead.as_ref().expect("KeepAll prepares ahead"));
                    // Held through the roll: the pre-toucher installs no file meanwhile.
                    let mut installed = ahead
                        .installed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    match installed.take() {
                        Some((first, lock)) if first == next_start => {
                            self.take_over(backing, slot, next_start, lock);
                            Ok(())
                        }
                        other => {
                            *installed = other;
                            // Sleepers on the archived file: it is closed for good.
                            if let Some(wake) = &core.segments[slot].wake {
                                wake.close();
                            }
                            self.replace(backing, slot, next_start)
                        }
                    }
                }
                _ => self.prepare(backing, slot, next_start),
            }
        }

        /// `KeepAll`: archives slot `slot`'s file as it is and puts the file of segment
        /// `next` in its place: the file prepared ahead and named (or, when none waits,
        /// prepared now) has its mapping moved over the slot's memory, then its first
        /// sequence set. The slot's addresses stay mapped all along: gating readers
        /// have left the segment (checked by the caller) and followers see the new
        /// file's first sequence on their re-check.
        fn replace(&mut self, backing: &Backing, slot: usize, next: u64) -> Result<()> {
            let ahead = self.ahead.as_ref().expect("KeepAll journals prepare ahead");
            let (lock, region) = ahead.take(next)?.into_parts();
            // The archived file has no writer any more.
            backing.clear_writer();
            backing.region.adopt(region).map_err(|e| {
                set_segment_path(&mut self.to, &self.dir, next);
                // The file keeps its name and holds nothing: a spare the next
                // attempt opens.
                RodaError::io(&self.to, e)
            })?;
            self.take_over(backing, slot, next, lock);
            Ok(())
        }

        /// `KeepAll`: slot `slot` maps the file of segment `next` (locked by `lock`):
        /// sets its first sequence and archives the file it replaced.
        fn take_over(&mut self, backing: &Backing, slot: usize, next: u64, lock: WriterLock) {
            // It holds segment `next` from now on: its write sequence is 0 (written
            // before it was handed over through `ready`'s or `installed`'s mutex).
            // Release pairs with the follower's Acquire load of the generation, as in
            // `prepare` step 5.
            backing.atomic(OFF_FIRST_SEQ).store(next, Ordering::Release);
            let ahead = self.ahead.as_ref().expect("KeepAll journals prepare ahead");
            let archived = self.names[slot];
            match self.unsynced.last_mut() {
                Some((_, last)) if last.checked_add(self.info.capacity) == Some(archived) => {
                    *last = archived;
                }
                _ => self.unsynced.push((archived, archived)),
            }
            let old = self.locks[slot].replace(lock);
            ahead.retire(old);
            self.names[slot] = next;
        }

        /// msync of every mapped segment and of the named spare prepared for the next
        /// roll, fdatasync of every segment archived since the last flush (`KeepAll`:
        /// no longer mapped), then the directory.
        pub(crate) fn flush<T: Record>(&mut self, core: &SegmentedCore<T>) -> Result<()> {
            for (slot, segment) in core.segments.iter().enumerate() {
                segment
                    .backing
                    .region
                    .flush()
                    .map_err(|e| RodaError::io(self.dir.join(segment_name(self.names[slot])), e))?;
            }
            if let Some(ahead) = &self.ahead {
                ahead.flush()?;
                // A file installed ahead of its roll replaced its slot's archived
                // segment in memory; until the roll takes it over (and lists the
                // archived file in `unsynced`), that file is synced by name here.
                let installed = ahead
                    .installed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some((first, _)) = installed.as_ref() {
                    self.sync_by_name(self.names[core.slot_of(*first)])?;
                }
            }
            while let Some(&(oldest, newest)) = self.unsynced.first() {
                self.sync_by_name(oldest)?;
                // Synced: a flush retried after a later failure starts after it. A run
                // holds names `first + i * S` up to `last`, so this ends at `last`.
                if oldest < newest {
                    self.unsynced[0].0 = oldest + core.segment_records;
                } else {
                    self.unsynced.remove(0);
                }
            }
            sync_dir(&self.dir)
        }

        /// fdatasync of the segment file named for `first`, which this process no
        /// longer maps.
        fn sync_by_name(&self, first: u64) -> Result<()> {
            let path = self.dir.join(segment_name(first));
            match backing::open_regular(&path, false) {
                Ok(file) => sync_unmapped(&file).map_err(|e| RodaError::io(&path, e)),
                // Moved away by the application: nothing of it left to sync here.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(RodaError::io(&path, e)),
            }
        }

        /// The journal id every segment file of the directory carries (0: none).
        pub(crate) fn journal_id(&self) -> u64 {
            self.info.journal_id
        }

        /// The directory.
        pub(crate) fn dir(&self) -> &Path {
            &self.dir
        }

        /// The retention policy.
        pub(crate) fn retention(&self) -> Retention {
            self.retention
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_round_trip_and_sort() {
            assert_eq!(segment_name(0), "00000000000000000000.roda");
            assert_eq!(segment_name(u64::MAX), "18446744073709551615.roda");
            for v in [0, 1, 4096, u64::MAX] {
                assert_eq!(parse_name(OsStr::new(&segment_name(v))), Some(v));
            }
            for bad in [
                "1.roda",
                "0000000000000000000a.roda",
                "00000000000000000000.rod",
                ".00000000000000000000.roda-tmp",
            ] {
                assert_eq!(parse_name(OsStr::new(bad)), None, "{bad}");
            }
            assert!(segment_name(9) < segment_name(10));
            let mut path = PathBuf::new();
            for v in [0, 42, u64::MAX] {
                set_segment_path(&mut path, Path::new("/d"), v);
                assert_eq!(path, Path::new("/d").join(segment_name(v)));
            }
        }
    }
}

//! Creating and opening the memory behind a store: header, file, lock and mapping.
//! Journal and slot stores share all of it; they differ only in the [`Shape`] they ask for.

use std::ptr::NonNull;

use roda_core::{Result, RodaError};

use crate::file::header::{self, HeaderInfo, Shape, OFF_WRITER_PID};
use crate::file::lock::WriterLock;
use crate::file::options::Settings;
use crate::file::region::Region;
use crate::sync::{AtomicU64, Ordering};

/// A store's memory with its validated header.
pub(crate) struct Backing {
    pub(crate) region: Box<dyn Region>,
    pub(crate) info: HeaderInfo,
    pub(crate) path: Option<std::path::PathBuf>,
    pub(crate) memory_locked: bool,
}

/// A writer's claim on a store: the backing plus, for files, the exclusive lock.
pub(crate) struct Claimed {
    pub(crate) backing: Backing,
    pub(crate) lock: Option<WriterLock>,
}

impl Backing {
    /// First byte of the data area.
    pub(crate) fn data(&self) -> NonNull<u8> {
        // SAFETY: the data offset lies inside the region: `required_len` (data offset +
        // data) was checked against the region length when it was mapped.
        unsafe { self.region.base().add(self.info.data_offset as usize) }
    }

    /// The atomic header word at `offset`.
    pub(crate) fn atomic(&self, offset: usize) -> &AtomicU64 {
        self.region.atomic(offset)
    }

    /// A store in anonymous memory (heap memory under Miri and loom).
    pub(crate) fn in_memory(shape: Shape, capacity: usize, settings: &Settings) -> Result<Claimed> {
        let mut info = header::layout(shape, capacity)?;
        header::set_journal_id(&mut info, settings);
        let len = info.required_len() as usize;
        let region = anonymous_region(len)?;
        // SAFETY: the region is new and not shared yet; it is at least one header long.
        let head = unsafe {
            std::slice::from_raw_parts_mut(region.base().as_ptr(), header::HEADER_FIELDS_LEN)
        };
        header::encode(&info, head);
        let memory_locked = apply_settings(region.as_ref(), settings, len)?;
        let backing = Backing {
            region,
            info,
            path: None,
            memory_locked,
        };
        backing.mark_writer();
        Ok(Claimed {
            backing,
            lock: None,
        })
    }

    /// Records this process as the file's writer.
    pub(crate) fn mark_writer(&self) {
        // Relaxed: the pid is advisory (error messages, liveness checks); nothing is
        // published through it.
        self.atomic(OFF_WRITER_PID)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
    }

    /// Records a clean close: no writer holds the file.
    pub(crate) fn clear_writer(&self) {
        // Relaxed: advisory, as in `mark_writer`.
        self.atomic(OFF_WRITER_PID).store(0, Ordering::Relaxed);
    }
}

#[cfg(not(any(miri, roda_loom)))]
/// Anonymous memory of `len` bytes; `apply_settings` pre-faults it when asked.
fn anonymous_region(len: usize) -> Result<Box<dyn Region>> {
    let mut opts = memmap2::MmapOptions::new();
    opts.len(len);
    let map = opts
        .map_anon()
        .map_err(|source| RodaError::Io { path: None, source })?;
    Ok(Box::new(crate::file::region::MappedRegion::new(
        map.into(),
        true,
    )))
}

#[cfg(any(miri, roda_loom))]
fn anonymous_region(len: usize) -> Result<Box<dyn Region>> {
    let region = crate::file::region::HeapRegion::new(len)
        .map_err(|source| RodaError::Io { path: None, source })?;
    Ok(Box::new(region))
}

/// Whether to pre-fault a read-only mapping while mapping it (MAP_POPULATE). Writable
/// mappings are pre-faulted for writing by [`apply_settings`] instead (MAP_POPULATE
/// reads a shared file mapping in, so every page would still take a write fault on its
/// first append), and so is any mapping with huge pages requested (after the advice, or
/// it would be filled with small pages before the advice could apply).
fn prefault_at_map(settings: &Settings) -> bool {
    settings.populate && !settings.huge_pages
}

/// Applies huge-page advice (then the pre-faulting that must follow it) and mlock;
/// returns whether the memory is locked.
pub(crate) fn apply_settings(region: &dyn Region, settings: &Settings, len: usize) -> Result<bool> {
    if settings.huge_pages {
        if let Err(e) = region.advise_huge_pages() {
            log::warn!("roda: huge pages not applied ({e}); continuing with normal pages");
        }
    }
    if settings.populate && (settings.huge_pages || region.is_writable()) {
        if let Err(e) = region.prefault() {
            log::warn!("roda: could not pre-fault the store ({e}); pages fault on first use");
        }
    }
    if !settings.lock_memory {
        return Ok(false);
    }
    match region.lock_memory() {
        Ok(()) => Ok(true),
        Err(source) if settings.require_locked => Err(RodaError::MemoryLock { bytes: len, source }),
        Err(e) => {
            log::warn!(
                "roda: could not lock {len} bytes into RAM ({e}); continuing unlocked. \
                 Raise RLIMIT_MEMLOCK (ulimit -l) or set require_locked to make this an error"
            );
            Ok(false)
        }
    }
}

#[cfg(not(roda_loom))]
pub(crate) use files::*;

#[cfg(not(roda_loom))]
mod files {
    use super::*;
    use crate::file::lock::LockAttempt;
    use crate::file::region::MappedRegion;
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RodaError + '_ {
        move |source| RodaError::io(path, source)
    }

    /// Opens the existing store file `path` (read-write when `write`), refusing anything
    /// but a regular file. The open does not block: a named pipe found where a store
    /// should be (which blocks a plain open until a writer comes) is opened
    /// non-blocking and refused like a directory or a device. `O_NONBLOCK` means
    /// nothing to a regular file's reads, maps and locks, so the file is returned as
    /// opened.
    pub(crate) fn open_regular(path: &Path, write: bool) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a directory, pipe or device where a store file should be)",
            ));
        }
        Ok(file)
    }

    /// Opens the directory `dir` without blocking, refusing anything else (a named pipe
    /// in its place would block a plain open).
    pub(crate) fn open_dir(dir: &Path) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_DIRECTORY)
            .open(dir)
    }

    /// Creates a new store file at `path`; fails if it exists.
    ///
    /// The file is built under a hidden temporary name and hard-linked into place only
    /// once its header is complete, so no other process ever sees a half-written header.
    pub(crate) fn create(
        path: &Path,
        shape: Shape,
        capacity: usize,
        settings: &Settings,
    ) -> Result<Claimed> {
        let mut info = header::layout(shape, capacity)?;
        header::set_journal_id(&mut info, settings);
        create_with(path, &info, settings, |_| {})
    }

    /// [`create`] with the header fields of `info`; `init` sets the header's atomic
    /// words (a segment's first sequence) before the file gets its name.
    pub(crate) fn create_with(
        path: &Path,
        info: &HeaderInfo,
        settings: &Settings,
        init: impl FnOnce(&Backing),
    ) -> Result<Claimed> {
        if path.exists() {
            return Err(RodaError::AlreadyExists { path: path.into() });
        }
        let tmp = temp_path(path);
        let result = build_and_link(path, &tmp, info, settings, init);
        // The temporary name is gone whether linking worked or not.
        let _ = std::fs::remove_file(&tmp);
        result
    }

    fn build_and_link(
        path: &Path,
        tmp: &Path,
        info: &HeaderInfo,
        settings: &Settings,
        init: impl FnOnce(&Backing),
    ) -> Result<Claimed> {
        let (lock, region) = build(path, tmp, info, settings)?;
        let memory_locked = apply_settings(&region, settings, info.required_len() as usize)?;
        let backing = Backing {
            region: Box::new(region),
            info: *info,
            path: Some(path.into()),
            memory_locked,
        };
        backing.mark_writer();
        init(&backing);
        match std::fs::hard_link(tmp, path) {
            Ok(()) => Ok(Claimed {
                backing,
                lock: Some(lock),
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(RodaError::AlreadyExists { path: path.into() })
            }
            Err(e) => Err(RodaError::io(path, e)),
        }
    }

    /// Creates the file `tmp` (for `path`, named in errors), locks it, reserves its
    /// blocks, maps it and writes the header of `info`.
    fn build(
        path: &Path,
        tmp: &Path,
        info: &HeaderInfo,
        settings: &Settings,
    ) -> Result<(WriterLock, MappedRegion)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(io_err(path))?;
        let mut lock = match WriterLock::try_lock(file).map_err(io_err(path))? {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Held(_) => {
                return Err(RodaError::io(
                    path,
                    io::Error::other("a brand-new temporary file was already locked"),
                ))
            }
        };
        lock.mark_live().map_err(io_err(path))?;
        reserve(lock.file(), info.required_len()).map_err(io_err(path))?;
        let region = map_file(lock.file(), info, settings, true).map_err(io_err(path))?;
        // SAFETY: the mapping is new and private to this call until the file is linked
        // into place; it is at least one header long.
        let head = unsafe {
            std::slice::from_raw_parts_mut(region.base().as_ptr(), header::HEADER_FIELDS_LEN)
        };
        header::encode(info, head);
        Ok((lock, region))
    }

    /// A store file mapped in a mapping of its own, waiting to be moved into a ring
    /// slot: built complete (created, locked, sized, header written) under a hidden
    /// temporary name that a writer opening the directory removes if a crash leaves it,
    /// then [linked](Unlinked::link) under its own name; or an existing file opened
    /// so ([`open_spare`]). Dropped unused, it is unmapped and unlocked, and its
    /// temporary name (if it still has one) removed.
    pub(crate) struct Unlinked {
        tmp: PathBuf,
        lock: Option<WriterLock>,
        region: Option<MappedRegion>,
        /// The temporary name is gone (the file was linked under its own).
        linked: bool,
    }

    /// Builds the file that [`create_with`] would make at `path`, without giving it the
    /// name: see [`Unlinked`]. `init` sets the header's atomic words; the settings
    /// (huge pages, populate, mlock) are applied to its mapping.
    pub(crate) fn create_unlinked(
        path: &Path,
        info: &HeaderInfo,
        settings: &Settings,
        init: impl FnOnce(&dyn Region),
    ) -> Result<Unlinked> {
        let tmp = temp_path(path);
        let mut unlinked = Unlinked {
            tmp,
            lock: None,
            region: None,
            linked: false,
        };
        let (lock, region) = build(path, &unlinked.tmp, info, settings)?;
        unlinked.lock = Some(lock);
        apply_settings(&region, settings, info.required_len() as usize)?;
        mark_writer_of(&region);
        init(&region);
        unlinked.region = Some(region);
        Ok(unlinked)
    }

    /// Relaxed: advisory, as in `Backing::mark_writer`.
    fn mark_writer_of(region: &dyn Region) {
        region
            .atomic(OFF_WRITER_PID)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
    }

    /// Opens the existing store file `path` for writing in a mapping of its own, as an
    /// [`Unlinked`] already linked: its lock taken, its settings applied, this process
    /// recorded as its writer. `Ok(None)` when another open handle holds its lock or
    /// the file is gone. The caller checks what the header says it holds.
    pub(crate) fn open_spare(
        path: &Path,
        shape: Shape,
        settings: &Settings,
    ) -> Result<Option<(Unlinked, HeaderInfo)>> {
        let file = match open_regular(path, true) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RodaError::io(path, e)),
        };
        let info = read_header(&file, path, &shape)?;
        let mut lock = match WriterLock::try_lock(file).map_err(io_err(path))? {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Held(_) => return Ok(None),
        };
        lock.mark_live().map_err(io_err(path))?;
        reserve(lock.file(), info.required_len()).map_err(io_err(path))?;
        let region = map_file(lock.file(), &info, settings, true).map_err(io_err(path))?;
        apply_settings(&region, settings, info.required_len() as usize)?;
        mark_writer_of(&region);
        let spare = Unlinked {
            tmp: PathBuf::new(),
            lock: Some(lock),
            region: Some(region),
            linked: true,
        };
        Ok(Some((spare, info)))
    }

    impl Unlinked {
        /// Its mapping.
        pub(crate) fn region(&self) -> &MappedRegion {
            self.region.as_ref().expect("mapped until handed over")
        }

        /// Gives the file the name `path` (one `link`, which fails with `AlreadyExists`
        /// if the name is taken) and drops the temporary name. On error the file keeps
        /// its temporary name.
        pub(crate) fn link(&mut self, path: &Path) -> Result<()> {
            debug_assert!(!self.linked, "linked once");
            match std::fs::hard_link(&self.tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(RodaError::AlreadyExists { path: path.into() })
                }
                Err(e) => return Err(RodaError::io(path, e)),
            }
            // The file has its name: a crash from here on leaves at most the temporary
            // name as a second link, which the next open removes.
            let _ = std::fs::remove_file(&self.tmp);
            self.linked = true;
            Ok(())
        }

        /// Hands over its lock and mapping.
        pub(crate) fn into_parts(mut self) -> (WriterLock, MappedRegion) {
            let lock = self.lock.take().expect("locked until handed over");
            let region = self.region.take().expect("mapped until handed over");
            (lock, region)
        }
    }

    impl Drop for Unlinked {
        fn drop(&mut self) {
            if !self.linked {
                let _ = std::fs::remove_file(&self.tmp);
            }
        }
    }

    /// Sizes `file` to at least `len` bytes with every block allocated
    /// (`posix_fallocate`), so that writing through the mapping never meets a full disk:
    /// that would be a SIGBUS, while here it is an error (ENOSPC) before anything is
    /// mapped. Where the file system cannot allocate ahead (EOPNOTSUPP), the file is
    /// sized sparse as before, with a warning.
    pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let len_arg =
            i64::try_from(len).map_err(|_| io::Error::other("store file length exceeds i64"))?;
        match nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, len_arg) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                log::warn!(
                    "roda: this file system cannot reserve blocks ahead (posix_fallocate); \
                     the store file stays sparse and a full disk will raise SIGBUS on write"
                );
                if file.metadata()?.len() < len {
                    file.set_len(len)?;
                }
                Ok(())
            }
            Err(errno) => Err(io::Error::from(errno)),
        }
    }

    fn temp_path(path: &Path) -> PathBuf {
        static COUNTER: StdAtomicU64 = StdAtomicU64::new(0);
        // Relaxed: only uniqueness matters.
        let n = COUNTER.fetch_add(1, StdOrdering::Relaxed);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.roda-tmp-{}-{n}", std::process::id()))
    }

    /// Opens an existing store file for writing, taking its lock.
    pub(crate) fn open_writer(path: &Path, shape: Shape, settings: &Settings) -> Result<Claimed> {
        let file = open_regular(path, true).map_err(io_err(path))?;
        let info = read_header(&file, path, &shape)?;
        let mut lock = match WriterLock::try_lock(file).map_err(io_err(path))? {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Held(file) => {
                return Err(RodaError::WriterActive {
                    pid: read_writer_pid(&file),
                })
            }
        };
        lock.mark_live().map_err(io_err(path))?;
        // A file written by a version that left files sparse gets its blocks now.
        reserve(lock.file(), info.required_len()).map_err(io_err(path))?;
        let region = map_file(lock.file(), &info, settings, true).map_err(io_err(path))?;
        let memory_locked = apply_settings(&region, settings, info.required_len() as usize)?;
        let backing = Backing {
            region: Box::new(region),
            info,
            path: Some(path.into()),
            memory_locked,
        };
        backing.mark_writer();
        Ok(Claimed {
            backing,
            lock: Some(lock),
        })
    }

    /// Opens `path` for writing, creating it with `capacity` if it does not exist.
    pub(crate) fn open_or_create(
        path: &Path,
        shape: Shape,
        capacity: usize,
        settings: &Settings,
    ) -> Result<Claimed> {
        // Two processes may race to create: whoever loses the link opens the winner's file.
        match open_writer(path, shape, settings) {
            Err(RodaError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                match create(path, shape, capacity, settings) {
                    Err(RodaError::AlreadyExists { .. }) => open_writer(path, shape, settings),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Opens an existing store file read-only, without a lock: a follower.
    pub(crate) fn open_reader(path: &Path, shape: Shape, settings: &Settings) -> Result<Backing> {
        open_read_only(path, settings, |page, file_len| {
            header::decode(page, file_len, path, &shape)
        })
    }

    /// Opens any store file read-only, without a lock and without a record type: the
    /// header is validated on its own ([`header::decode_any`]). For inspection tools.
    /// Returns the file's length as found when it was opened, with the backing.
    pub(crate) fn open_reader_any(path: &Path) -> Result<(Backing, u64)> {
        let mut len = 0;
        let backing = open_read_only(path, &Settings::default(), |page, file_len| {
            len = file_len;
            header::decode_any(page, file_len, path)
        })?;
        Ok((backing, len))
    }

    /// Opens `path` read-only, validates its first page with `decode` and maps the
    /// header and data area read-only.
    fn open_read_only(
        path: &Path,
        settings: &Settings,
        decode: impl FnOnce(&[u8], u64) -> Result<HeaderInfo>,
    ) -> Result<Backing> {
        let file = open_regular(path, false).map_err(io_err(path))?;
        let (page, file_len) = read_first_page(&file, path)?;
        let info = decode(&page, file_len)?;
        let mut opts = memmap2::MmapOptions::new();
        opts.len(info.required_len() as usize);
        if prefault_at_map(settings) {
            opts.populate();
        }
        let map = opts.map_raw_read_only(&file).map_err(io_err(path))?;
        let region = MappedRegion::new(map, false);
        let memory_locked = apply_settings(&region, settings, info.required_len() as usize)?;
        Ok(Backing {
            region: Box::new(region),
            info,
            path: Some(path.into()),
            memory_locked,
        })
    }

    fn map_file(
        file: &File,
        info: &HeaderInfo,
        settings: &Settings,
        writable: bool,
    ) -> io::Result<MappedRegion> {
        let mut opts = memmap2::MmapOptions::new();
        opts.len(info.required_len() as usize);
        if !writable && prefault_at_map(settings) {
            opts.populate();
        }
        Ok(MappedRegion::new(opts.map_raw(file)?, writable))
    }

    /// Reads the first page of `file` and validates it against `shape`.
    pub(crate) fn read_header(file: &File, path: &Path, shape: &Shape) -> Result<HeaderInfo> {
        let (page, file_len) = read_first_page(file, path)?;
        header::decode(&page, file_len, path, shape)
    }

    /// The first page of `file` (fewer bytes if the file is shorter) and the file's length.
    fn read_first_page(file: &File, path: &Path) -> Result<(Vec<u8>, u64)> {
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let mut buf = vec![0u8; header::MIN_DATA_OFFSET as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RodaError::io(path, e)),
            }
        }
        buf.truncate(filled);
        Ok((buf, file_len))
    }

    /// Reads the native-order u64 at `offset` of `file` (a header word), 0 if the file
    /// is too short. For cold paths (directory scans): a word the writer is changing is
    /// read whole or stale (an aligned 8-byte copy by the kernel) and callers validate.
    pub(crate) fn read_word(file: &File, offset: u64) -> u64 {
        let mut word = [0u8; 8];
        match file.read_exact_at(&mut word, offset) {
            Ok(()) => u64::from_ne_bytes(word),
            Err(_) => 0,
        }
    }

    pub(crate) fn read_writer_pid(file: &File) -> u32 {
        let mut word = [0u8; 8];
        match file.read_exact_at(&mut word, OFF_WRITER_PID as u64) {
            Ok(()) => u64::from_ne_bytes(word) as u32,
            Err(_) => 0,
        }
    }
}

#[cfg(all(test, not(roda_loom)))]
mod tests {
    use super::*;
    use crate::file::region::HeapRegion;

    fn settings(lock: bool, require: bool) -> Settings {
        Settings {
            lock_memory: lock,
            require_locked: require,
            huge_pages: true,
            ..Settings::default()
        }
    }

    #[test]
    fn refused_lock_is_a_warning_unless_required() {
        // The heap backend always refuses mlock and madvise.
        let region = HeapRegion::new(4096).unwrap();
        assert!(!apply_settings(&region, &settings(false, false), 4096).unwrap());
        assert!(!apply_settings(&region, &settings(true, false), 4096).unwrap());
        match apply_settings(&region, &settings(true, true), 4096) {
            Err(RodaError::MemoryLock { bytes: 4096, .. }) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}

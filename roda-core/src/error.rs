use std::fmt;
use std::io;
use std::path::PathBuf;

/// `std::result::Result` with [`RodaError`] as the error.
pub type Result<T> = std::result::Result<T, RodaError>;

/// Everything that can go wrong in Roda, one enum for all crates.
///
/// Each message says what happened and what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum RodaError {
    /// An operating-system call failed on `path` (or on anonymous memory when `None`).
    Io {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The store holds `capacity` records and has no room for more.
    Full {
        /// The store's fixed capacity, in records.
        capacity: usize,
    },
    /// `create` found a file already at the path.
    AlreadyExists {
        /// The path that is taken.
        path: PathBuf,
    },
    /// The file was written for a different record layout or schema than the one asked for.
    LayoutMismatch {
        /// Which header field differs (`"record_size"`, `"record_align"`, `"schema"`, `"kind"`, ...).
        field: &'static str,
        /// The value the caller's type or options require.
        expected: u64,
        /// The value stored in the file.
        found: u64,
    },
    /// The file does not start with Roda's magic bytes.
    NotARodaFile {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file was written by a format version this build cannot read.
    UnsupportedVersion {
        /// The file's format version.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Another live writer holds the file's exclusive lock.
    WriterActive {
        /// The process id recorded by that writer (0 if it had not recorded one yet).
        pid: u32,
    },
    /// A slot index past the end of a slot store.
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of slots.
        len: usize,
    },
    /// The record type has size zero, which no store can index.
    ZeroSizedRecord,
    /// The requested capacity cannot be laid out in memory.
    InvalidCapacity {
        /// The capacity asked for (or found in a file header).
        capacity: u64,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The file is shorter than its header says it must be.
    Truncated {
        /// The file that was opened.
        path: PathBuf,
        /// The length the header requires, in bytes.
        expected: u64,
        /// The file's actual length, in bytes.
        found: u64,
    },
    /// A header field holds a value no Roda writer produces.
    Corrupted {
        /// The file that was opened.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The record type's alignment exceeds what the file layout guarantees.
    AlignmentTooLarge {
        /// `align_of::<T>()`.
        align: usize,
        /// The largest alignment a store supports.
        max: usize,
    },
    /// A bounded (segmented) journal cannot take a record now: its readers still hold
    /// every segment. Retry after they move on.
    WouldBlock {
        /// Records the journal holds in memory.
        capacity: usize,
    },
    /// A reader asked for records that are no longer retained.
    Lagged {
        /// How many records it missed.
        missed: u64,
    },
    /// The store has as many readers as it can track.
    TooManyReaders {
        /// The limit.
        max: usize,
    },
    /// A worker thread (an engine worker or a pipeline stage) panicked.
    WorkerPanicked {
        /// The worker's name.
        worker: String,
        /// The panic message.
        message: String,
    },
    /// A file read as a pipeline's counters file is not one, or has no sample yet.
    Counters {
        /// The file that was opened.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A record layout given at run time (raw writers, which append records as bytes)
    /// cannot be stored, or bytes handed to them are not whole records.
    InvalidRecordLayout {
        /// The record size in bytes.
        size: u64,
        /// The record alignment.
        align: u64,
        /// What is wrong and what to do.
        reason: &'static str,
    },
    /// Locking the mapping into RAM failed and the options required it.
    MemoryLock {
        /// Bytes that were to be locked.
        bytes: usize,
        /// What the operating system reported.
        source: io::Error,
    },
}

impl RodaError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        RodaError::Io {
            path: Some(path.into()),
            source,
        }
    }
}

impl fmt::Display for RodaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RodaError::Io {
                path: Some(path),
                source,
            } => write!(
                f,
                "I/O error on {}: {source}; check that the path exists, is writable and that the disk has room",
                path.display()
            ),
            RodaError::Io { path: None, source } => write!(
                f,
                "I/O error on anonymous memory: {source}; check the process memory limits (ulimit -v, cgroups)"
            ),
            RodaError::Full { capacity } => write!(
                f,
                "store is full: all {capacity} records are written; create it with a larger capacity, \
                 or use try_append to handle a full store without panicking"
            ),
            RodaError::AlreadyExists { path } => write!(
                f,
                "{} already exists; open it with open or open_or_create, or remove it first",
                path.display()
            ),
            RodaError::LayoutMismatch {
                field: "segment",
                expected,
                ..
            } => write!(
                f,
                "file layout mismatch: {} a segment of a segmented journal; open segment \
                 directories with SegmentedJournal::open or SegmentedFollower::open, and plain \
                 journal files with JournalStore or JournalReader",
                if *expected == 1 { "this file is not" } else { "this file is" }
            ),
            RodaError::LayoutMismatch {
                field: "retention",
                expected,
                found,
            } => write!(
                f,
                "retention mismatch: the directory keeps {} but {} was asked for; open it \
                 without a retention option, or with its own",
                retention(*found),
                retention(*expected)
            ),
            RodaError::LayoutMismatch {
                field,
                expected,
                found,
            } => write!(
                f,
                "file layout mismatch: {field} is {found} in the file but {expected} was expected; \
                 open it with the record type and schema it was created with"
            ),
            RodaError::NotARodaFile { path } => write!(
                f,
                "{} is not a Roda file (no Roda magic bytes); check the path",
                path.display()
            ),
            RodaError::UnsupportedVersion { found, supported } => write!(
                f,
                "file format version {found} is not supported (this build reads version {supported}); \
                 use a Roda release that matches the file"
            ),
            RodaError::WriterActive { pid } => write!(
                f,
                "another writer (pid {pid}) holds this file; only one writer may append at a time: \
                 stop that writer, or open a reader instead"
            ),
            RodaError::OutOfRange { index, len } => write!(
                f,
                "index {index} is out of range: the store has {len} slots; use an index below {len}"
            ),
            RodaError::ZeroSizedRecord => write!(
                f,
                "zero-sized record type: a store needs records of at least one byte; add a field"
            ),
            RodaError::InvalidCapacity { capacity, reason } => {
                write!(f, "invalid capacity {capacity}: {reason}")
            }
            RodaError::Truncated {
                path,
                expected,
                found,
            } => write!(
                f,
                "{} is truncated: its header needs {expected} bytes but the file has {found}; \
                 the file was cut short or is not finished, recreate it from its source",
                path.display()
            ),
            RodaError::Counters { path, detail } => write!(f, "{}: {detail}", path.display()),
            RodaError::Corrupted { path, detail } => write!(
                f,
                "{} is corrupted: {detail}; recreate it from its source",
                path.display()
            ),
            RodaError::AlignmentTooLarge { align, max } => write!(
                f,
                "record alignment {align} exceeds the supported maximum {max}; lower the type's #[repr(align)]"
            ),
            RodaError::WouldBlock { capacity } => write!(
                f,
                "the journal's {capacity} records in memory are all held by readers; \
                 retry once they move on (readers must keep up, or be dropped)"
            ),
            RodaError::InvalidRecordLayout {
                size,
                align,
                reason,
            } => write!(f, "invalid record layout (size {size}, alignment {align}): {reason}"),
            RodaError::Lagged { missed } => write!(
                f,
                "the reader lagged behind: {missed} records are no longer retained; \
                 seek to the oldest retained sequence to continue"
            ),
            RodaError::TooManyReaders { max } => write!(
                f,
                "the store already has {max} readers; drop readers that are no longer used"
            ),
            RodaError::WorkerPanicked { worker, message } => write!(
                f,
                "worker '{worker}' panicked: {message}; fix the panic in that worker's code \
                 (its input is still in its journal)"
            ),
            RodaError::MemoryLock { bytes, source } => write!(
                f,
                "could not lock {bytes} bytes into RAM: {source}; raise RLIMIT_MEMLOCK (ulimit -l) \
                 or drop require_locked to continue with a warning"
            ),
        }
    }
}

/// A segmented journal's retention word, for messages.
fn retention(word: u64) -> String {
    match word {
        0 => "KeepAll".into(),
        k => format!("KeepLast({k})"),
    }
}

impl std::error::Error for RodaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RodaError::Io { source, .. } | RodaError::MemoryLock { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_says_what_to_do() {
        let io = || io::Error::new(io::ErrorKind::PermissionDenied, "denied");
        let all = [
            RodaError::io("/tmp/x", io()),
            RodaError::Io {
                path: None,
                source: io(),
            },
            RodaError::Full { capacity: 4 },
            RodaError::LayoutMismatch {
                field: "record_size",
                expected: 8,
                found: 16,
            },
            RodaError::NotARodaFile { path: "a".into() },
            RodaError::Counters {
                path: "a".into(),
                detail: "a journal, not a pipeline counters file; give the file a pipeline \
                         writes with StageEngine::metrics_file"
                    .into(),
            },
            RodaError::AlreadyExists { path: "a".into() },
            RodaError::UnsupportedVersion {
                found: 9,
                supported: 1,
            },
            RodaError::WriterActive { pid: 42 },
            RodaError::OutOfRange { index: 5, len: 3 },
            RodaError::ZeroSizedRecord,
            RodaError::InvalidCapacity {
                capacity: 0,
                reason: "a store needs room for at least one record; pass a capacity of 1 or more",
            },
            RodaError::Truncated {
                path: "a".into(),
                expected: 10,
                found: 3,
            },
            RodaError::Corrupted {
                path: "a".into(),
                detail: "x".into(),
            },
            RodaError::AlignmentTooLarge {
                align: 8192,
                max: 4096,
            },
            RodaError::MemoryLock {
                bytes: 1,
                source: io(),
            },
            RodaError::WorkerPanicked {
                worker: "stage 1".into(),
                message: "boom".into(),
            },
            RodaError::WouldBlock { capacity: 8 },
            RodaError::Lagged { missed: 3 },
            RodaError::TooManyReaders { max: 64 },
        ];
        for e in &all {
            let msg = e.to_string();
            assert!(msg.contains(';') || msg.contains(':'), "{msg}");
            assert!(!msg.is_empty());
        }
        assert!(all[2].to_string().contains("4 records"));
        assert!(RodaError::WriterActive { pid: 42 }
            .to_string()
            .contains("pid 42"));
        assert!(std::error::Error::source(&all[0]).is_some());
        assert!(std::error::Error::source(&all[2]).is_none());
    }
}

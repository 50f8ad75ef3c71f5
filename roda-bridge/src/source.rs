//! What an export reads: [`ExportSource`], implemented by [`JournalSource`] (a plain
//! journal file, through a [`JournalReader`]) and [`SegmentedSource`] (a segmented
//! journal, through a [`SegmentedFollower`], which never holds the writer back).

use std::path::Path;

use roda_core::{Record, RodaError};
use roda_store::{JournalReader, SegmentedFollower};

use crate::format::Shape;

/// A journal being exported: records as bytes from a cursor.
pub trait ExportSource {
    /// The records' shape.
    fn shape(&self) -> Shape;
    /// The journal id stored in the journal, if any.
    fn journal_id(&self) -> Option<u64>;
    /// The cursor: the sequence of the next record [`read`](Self::read) returns.
    fn position(&self) -> u64;
    /// Moves the cursor to `seq`.
    fn seek(&mut self, seq: u64);
    /// Records published by the writer so far.
    fn published(&mut self) -> u64;
    /// The oldest record the journal still retains.
    fn oldest_retained(&mut self) -> u64;
    /// Appends the bytes of up to `max` records from the cursor to `out` and advances
    /// past them; returns how many (0: nothing new). `Err(Lagged { missed })` when the
    /// journal no longer holds the record at the cursor.
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, RodaError>;
}

/// A plain journal file followed read-only.
pub struct JournalSource<T: Record> {
    reader: JournalReader<T>,
}

impl<T: Record> JournalSource<T> {
    /// Follows the journal file at `path` (read-only; the writer may keep appending).
    pub fn open(path: impl AsRef<Path>) -> roda_core::Result<Self> {
        Ok(JournalSource {
            reader: JournalReader::open(path)?,
        })
    }

    /// Exports through an existing reader.
    pub fn new(reader: JournalReader<T>) -> Self {
        JournalSource { reader }
    }
}

impl<T: Record> ExportSource for JournalSource<T> {
    fn shape(&self) -> Shape {
        Shape::of::<T>(self.reader.header().schema)
    }
    fn journal_id(&self) -> Option<u64> {
        Some(self.reader.header().journal_id).filter(|&id| id != 0)
    }
    fn position(&self) -> u64 {
        self.reader.get_index()
    }
    fn seek(&mut self, seq: u64) {
        self.reader.seek(seq);
    }
    fn published(&mut self) -> u64 {
        self.reader.published()
    }
    fn oldest_retained(&mut self) -> u64 {
        0
    }
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, RodaError> {
        let batch = self.reader.next_batch(max);
        out.extend_from_slice(bytemuck::cast_slice(batch));
        Ok(batch.len())
    }
}

/// A segmented journal followed without holding its writer back.
pub struct SegmentedSource<T: Record> {
    follower: SegmentedFollower<T>,
    schema: u64,
    journal_id: Option<u64>,
    scratch: Vec<T>,
}

impl<T: Record> SegmentedSource<T> {
    /// Follows the segmented journal in directory `dir` (schema 0).
    pub fn open(dir: impl AsRef<Path>) -> roda_core::Result<Self> {
        Self::open_with_schema(dir, 0)
    }

    /// Follows the segmented journal in `dir`, created with schema id `schema`.
    pub fn open_with_schema(dir: impl AsRef<Path>, schema: u64) -> roda_core::Result<Self> {
        let dir = dir.as_ref();
        let follower = SegmentedFollower::open_with_schema(dir, schema)?;
        Ok(Self::new(follower, schema).with_journal_id(directory_journal_id(dir)?))
    }

    /// Sets the journal id (e.g. `SegmentedJournal::journal_id` of the journal the
    /// follower follows; 0 for none).
    pub fn with_journal_id(mut self, journal_id: u64) -> Self {
        self.journal_id = Some(journal_id).filter(|&id| id != 0);
        self
    }

    /// Exports through an existing follower of a journal with schema id `schema`.
    pub fn new(follower: SegmentedFollower<T>, schema: u64) -> Self {
        SegmentedSource {
            follower,
            schema,
            journal_id: None,
            scratch: Vec::new(),
        }
    }
}

impl<T: Record> ExportSource for SegmentedSource<T> {
    fn shape(&self) -> Shape {
        Shape::of::<T>(self.schema)
    }
    fn journal_id(&self) -> Option<u64> {
        self.journal_id
    }
    fn position(&self) -> u64 {
        self.follower.position()
    }
    fn seek(&mut self, seq: u64) {
        self.follower.seek(seq);
    }
    fn published(&mut self) -> u64 {
        self.follower.published()
    }
    fn oldest_retained(&mut self) -> u64 {
        self.follower.oldest_retained()
    }
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, RodaError> {
        if self.scratch.len() < max {
            self.scratch.resize(max, T::zeroed());
        }
        let mut total = 0;
        // A follower's batch ends at a segment end: keep reading up to `max`.
        while total < max {
            let n = self.follower.next_batch(&mut self.scratch[..max - total])?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(bytemuck::cast_slice(&self.scratch[..n]));
            total += n;
        }
        Ok(total)
    }
}

/// The journal id the segment files in `dir` carry (0 when none does).
fn directory_journal_id(dir: &Path) -> roda_core::Result<u64> {
    let entries = std::fs::read_dir(dir).map_err(|e| RodaError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| RodaError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.len() == 25
            && name.ends_with(".roda")
            && name[..20].bytes().all(|b| b.is_ascii_digit())
        {
            // A segment may be renamed while it is opened: try the next one.
            if let Ok(file) = roda_store::StoreFile::open(&path) {
                return Ok(file.header().journal_id);
            }
        }
    }
    Ok(0)
}

/// A journal of any record type, exported as bytes: a plain journal file or a segmented
/// journal's directory, read through [`StoreFile`](roda_store::StoreFile) (read-only,
/// no lock, never holding the writer back). For tools that do not know the record type,
/// like the `roda` command; a program that knows it exports through [`JournalSource`] or
/// [`SegmentedSource`], which read batches at a time.
pub struct FileSource {
    shape: Shape,
    journal_id: u64,
    cursor: u64,
    kind: FileKind,
    record: Vec<u8>,
}

enum FileKind {
    Plain(roda_store::StoreFile),
    Segmented {
        dir: std::path::PathBuf,
        segment_records: u64,
        /// The segment file holding the cursor's segment, when open: (its base, file).
        current: Option<(u64, roda_store::StoreFile)>,
    },
}

impl FileSource {
    /// Opens the journal file or segmented journal directory at `path`.
    pub fn open(path: impl AsRef<Path>) -> roda_core::Result<FileSource> {
        let path = path.as_ref();
        let (kind, header) = if path.is_dir() {
            let first = segment_files(path)?
                .into_iter()
                .find_map(|(_, p)| roda_store::StoreFile::open(p).ok())
                .ok_or_else(|| {
                    RodaError::io(
                        path,
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no segment files ({20 digits}.roda) in this directory",
                        ),
                    )
                })?;
            let header = first.header();
            (
                FileKind::Segmented {
                    dir: path.into(),
                    segment_records: header.capacity,
                    current: None,
                },
                header,
            )
        } else {
            let file = roda_store::StoreFile::open(path)?;
            let header = file.header();
            if header.kind != roda_store::StoreKind::Journal || header.segment {
                return Err(RodaError::LayoutMismatch {
                    field: "kind",
                    expected: roda_store::StoreKind::Journal as u64,
                    found: header.kind as u64,
                });
            }
            (FileKind::Plain(file), header)
        };
        let mut source = FileSource {
            shape: Shape {
                record_size: header.record_size,
                record_align: header.record_align,
                schema: header.schema,
                little_endian: cfg!(target_endian = "little"),
            },
            journal_id: header.journal_id,
            cursor: 0,
            kind,
            record: Vec::new(),
        };
        source.cursor = source.oldest_retained();
        Ok(source)
    }
}

/// The segment files of `dir` as (first sequence in the name, path), sorted.
fn segment_files(dir: &Path) -> roda_core::Result<Vec<(u64, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| RodaError::io(dir, e))? {
        let path = entry.map_err(|e| RodaError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.len() == 25 && name.ends_with(".roda") {
            if let Ok(first) = name[..20].parse::<u64>() {
                out.push((first, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// (oldest retained, published) of a segmented directory, from its segment headers.
fn directory_range(dir: &Path) -> (u64, u64) {
    let mut oldest = u64::MAX;
    let mut end = 0;
    for (_, path) in segment_files(dir).unwrap_or_default() {
        let Ok(file) = roda_store::StoreFile::open(&path) else {
            continue;
        };
        if let Some(first) = file.first_sequence() {
            oldest = oldest.min(first);
            end = end.max(first + file.published());
        }
    }
    (if oldest == u64::MAX { end } else { oldest }, end)
}

impl ExportSource for FileSource {
    fn shape(&self) -> Shape {
        self.shape
    }
    fn journal_id(&self) -> Option<u64> {
        Some(self.journal_id).filter(|&id| id != 0)
    }
    fn position(&self) -> u64 {
        self.cursor
    }
    fn seek(&mut self, seq: u64) {
        self.cursor = seq;
    }
    fn published(&mut self) -> u64 {
        match &self.kind {
            FileKind::Plain(file) => file.published(),
            FileKind::Segmented { dir, .. } => directory_range(dir).1,
        }
    }
    fn oldest_retained(&mut self) -> u64 {
        match &self.kind {
            FileKind::Plain(_) => 0,
            FileKind::Segmented { dir, .. } => directory_range(dir).0,
        }
    }
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, RodaError> {
        let mut n = 0;
        match &mut self.kind {
            FileKind::Plain(file) => {
                // Every published record from the cursor on, in one copy.
                let bytes = file.records_bytes(self.cursor, max);
                out.extend_from_slice(bytes);
                n = bytes.len() / self.shape.record_size as usize;
                self.cursor += n as u64;
            }
            FileKind::Segmented {
                dir,
                segment_records,
                current,
            } => {
                while n < max {
                    let base = self.cursor - self.cursor % *segment_records;
                    if current.as_ref().is_none_or(|(b, _)| *b != base) {
                        // The file named for this segment (a recycled file is renamed
                        // before it is reused, so the name finds the right one or none).
                        let path = dir.join(format!("{base:020}.roda"));
                        *current = roda_store::StoreFile::open(path).ok().map(|f| (base, f));
                    }
                    let Some((_, file)) = current.as_ref() else {
                        let (oldest, _) = directory_range(dir);
                        if self.cursor < oldest && n == 0 {
                            return Err(RodaError::Lagged {
                                missed: oldest - self.cursor,
                            });
                        }
                        break;
                    };
                    match file.copy_record(self.cursor, &mut self.record) {
                        Ok(true) => {
                            out.extend_from_slice(&self.record);
                            self.cursor += 1;
                            n += 1;
                        }
                        Ok(false) => {
                            // Not written yet, or the file holds no segment now.
                            if file.first_sequence() != Some(base) {
                                *current = None;
                            }
                            break;
                        }
                        Err(e @ RodaError::Lagged { .. }) => {
                            *current = None;
                            if n == 0 {
                                return Err(e);
                            }
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(n)
    }
}

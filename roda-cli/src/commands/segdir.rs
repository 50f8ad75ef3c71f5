//! A segmented journal's directory as `tail`, `stats` and `verify` read it: its segment
//! files (`{20 digits}.roda`), each opened read-only as a [`StoreFile`], and what they
//! hold right now.
//!
//! Every open file is kept until a listing no longer shows it under the name it was
//! opened by. A mapping follows its file, so its header's first sequence (the segment's
//! generation) always says what it holds, even while a `KeepLast` writer recycles it in
//! place; a listing is needed only to find files that are new (a `KeepAll` writer
//! creates one per segment) or renamed (a recycled `KeepLast` file).

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};

use roda_store::{RodaError, StoreFile, StoreKind};

use crate::Failure;

/// `KeepLast(k)` or `KeepAll`, from a segment header's retention word.
pub fn retention_name(word: u64) -> String {
    match word {
        0 => "KeepAll".into(),
        k => format!("KeepLast({k})"),
    }
}

/// The first sequence a segment file name (`{20 digits}.roda`) stands for.
pub fn parse_name(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(".roda")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name of the segment starting at `first`.
fn segment_name(first: u64) -> String {
    format!("{first:020}.roda")
}

/// One segment file found by a listing.
pub struct Listed {
    /// The first sequence its name stands for.
    pub name: u64,
    pub path: PathBuf,
    pub inode: u64,
}

/// The segment files in `dir`, in name order; other files are ignored.
pub fn list(dir: &Path) -> Result<Vec<Listed>, Failure> {
    let io_failure = |e| Failure::Store {
        path: dir.into(),
        error: RodaError::io(dir, e),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_failure)? {
        let entry = entry.map_err(io_failure)?;
        if let Some(name) = parse_name(&entry.file_name()) {
            found.push(Listed {
                name,
                path: entry.path(),
                inode: entry.ino(),
            });
        }
    }
    found.sort_by_key(|f| f.name);
    Ok(found)
}

/// The error for a directory without segment files.
pub fn no_segments(dir: &Path) -> Failure {
    Failure::Store {
        path: dir.into(),
        error: RodaError::io(
            dir,
            io::Error::new(
                io::ErrorKind::NotFound,
                "no segment files ({20 digits}.roda): not a segmented journal directory; \
                 check the path, or start the writer first",
            ),
        ),
    }
}

/// The directory holding the segment file `path` (`.` for a bare file name).
pub fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.into(),
        _ => PathBuf::from("."),
    }
}

struct Segment {
    inode: u64,
    name: u64,
    file: StoreFile,
}

/// The records the directory retains right now, from its segments' headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retained {
    /// The oldest segment's first sequence; `None` when no segment holds records.
    pub oldest: Option<u64>,
    /// One past the newest record published (0 when none).
    pub end: u64,
    /// Records held over all segments (`end - oldest` unless segments are missing).
    pub records: u64,
}

/// A segmented journal's directory, its segment files mapped read-only.
pub struct SegmentDir {
    pub path: PathBuf,
    /// Records per segment (every segment's capacity).
    pub segment_records: u64,
    pub record_size: u64,
    /// The retention word: k of `KeepLast(k)`, 0 for `KeepAll`.
    pub retention: u64,
    segments: Vec<Segment>,
    /// The index in `segments` of the file `holding` found last: the next call most
    /// likely wants it again.
    hint: usize,
}

impl SegmentDir {
    /// Opens every segment file of `dir`; fails when there is none, when one cannot be
    /// read, or when one does not belong with the others.
    pub fn open(dir: &Path) -> Result<SegmentDir, Failure> {
        let listed = list(dir)?;
        let Some(any) = listed.first() else {
            return Err(no_segments(dir));
        };
        let probe = open_segment(&any.path)?;
        let h = probe.header();
        let mut opened = SegmentDir {
            path: dir.into(),
            segment_records: h.capacity,
            record_size: h.record_size,
            retention: h.retention,
            segments: Vec::new(),
            hint: 0,
        };
        opened.refresh_from(listed)?;
        if opened.segments.is_empty() {
            return Err(no_segments(dir));
        }
        Ok(opened)
    }

    /// Lists the directory again: maps files not seen before, forgets files gone.
    pub fn refresh(&mut self) -> Result<(), Failure> {
        let listed = list(&self.path)?;
        self.refresh_from(listed)
    }

    fn refresh_from(&mut self, listed: Vec<Listed>) -> Result<(), Failure> {
        // A file is known by its inode and name: a recycled (renamed) file is mapped
        // again under its new name, and a deleted file's inode reused is a new file.
        let known = |s: &Segment, l: &Listed| (s.inode, s.name) == (l.inode, l.name);
        self.segments.retain(|s| listed.iter().any(|l| known(s, l)));
        for l in listed {
            if self.segments.iter().any(|s| known(s, &l)) {
                continue;
            }
            let file = match open_segment(&l.path) {
                Ok(file) => file,
                // Renamed or deleted since the listing: a later listing shows it.
                Err(Failure::Store {
                    error: RodaError::Io { source, .. },
                    ..
                }) if source.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let h = file.header();
            if (h.capacity, h.record_size, h.retention)
                != (self.segment_records, self.record_size, self.retention)
            {
                return Err(Failure::Store {
                    path: l.path.clone(),
                    error: RodaError::Corrupted {
                        path: l.path,
                        detail: format!(
                            "a segment of {} records of {} bytes ({}) in a journal of {} \
                             records of {} bytes ({}); move away the files that do not \
                             belong to this journal ('roda verify DIR' checks the directory)",
                            h.capacity,
                            h.record_size,
                            retention_name(h.retention),
                            self.segment_records,
                            self.record_size,
                            retention_name(self.retention)
                        ),
                    },
                });
            }
            self.segments.push(Segment {
                inode: l.inode,
                name: l.name,
                file,
            });
        }
        Ok(())
    }

    /// Looks for segment `first` under its own name (`{first:020}.roda`) and maps the
    /// file if it is new; whether a mapped file holds `first` afterwards. A listing
    /// taken while the writer creates or renames files may miss a file that existed
    /// all along (directory order is not creation order), so a segment is never given
    /// up for gone on a listing alone.
    pub fn find_named(&mut self, first: u64) -> Result<bool, Failure> {
        let path = self.path.join(segment_name(first));
        let inode = match std::fs::metadata(&path) {
            Ok(meta) => std::os::unix::fs::MetadataExt::ino(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Failure::Store {
                    path: path.clone(),
                    error: RodaError::io(&path, e),
                })
            }
        };
        let listed = Listed {
            name: first,
            path,
            inode,
        };
        let mut all: Vec<Listed> = self
            .segments
            .iter()
            .map(|s| Listed {
                name: s.name,
                path: self.path.join(segment_name(s.name)),
                inode: s.inode,
            })
            .collect();
        all.push(listed);
        self.refresh_from(all)?;
        Ok(self.holding(first).is_some())
    }

    /// Segment files mapped.
    pub fn files(&self) -> usize {
        self.segments.len()
    }

    /// The first sequences of the segments holding records, each with its published
    /// count (at most the segment size), in sequence order.
    pub fn held(&self) -> Vec<(u64, u64)> {
        let mut held: Vec<(u64, u64)> = self
            .segments
            .iter()
            .filter_map(|s| Some((s.file.first_sequence()?, s.file.published())))
            .filter(|(first, _)| first % self.segment_records == 0)
            .collect();
        held.sort_unstable();
        held
    }

    /// What the directory retains, as far as the mapped files tell.
    pub fn retained(&self) -> Retained {
        let held = self.held();
        Retained {
            oldest: held.first().map(|&(first, _)| first),
            // Saturating: a damaged header may say any first sequence.
            end: held.last().map_or(0, |&(first, n)| first.saturating_add(n)),
            records: held.iter().fold(0, |sum, &(_, n)| sum.saturating_add(n)),
        }
    }

    /// The mapped file holding segment `first` now, if any.
    pub fn holding(&mut self, first: u64) -> Option<&StoreFile> {
        let holds = |s: &Segment| s.file.first_sequence() == Some(first);
        if !self.segments.get(self.hint).is_some_and(holds) {
            self.hint = self.segments.iter().position(holds)?;
        }
        Some(&self.segments[self.hint].file)
    }

    /// The first sequence of the oldest segment newer than `first`, if any.
    pub fn next_after(&self, first: u64) -> Option<u64> {
        self.held().into_iter().map(|(f, _)| f).find(|&f| f > first)
    }

    /// The writer's pid as the newest segment records it, and whether it runs: `None`
    /// after a clean close.
    pub fn writer(&self) -> Option<(u32, bool)> {
        let newest = self
            .segments
            .iter()
            .filter_map(|s| Some((s.file.first_sequence()?, &s.file)))
            .max_by_key(|(first, _)| *first)
            .map(|(_, file)| file);
        let file = newest.or_else(|| self.segments.first().map(|s| &s.file))?;
        match file.writer_pid() {
            0 => None,
            pid => Some((pid, file.writer_alive())),
        }
    }
}

/// Opens one segment file, which must be a journal file with the segment flag.
fn open_segment(path: &Path) -> Result<StoreFile, Failure> {
    let file = StoreFile::open(path).map_err(|error| Failure::Store {
        path: path.into(),
        error,
    })?;
    let h = file.header();
    if h.kind != StoreKind::Journal || !h.segment {
        return Err(Failure::Store {
            path: path.into(),
            error: RodaError::Corrupted {
                path: path.into(),
                detail: "named like a segment file but not a segment of a segmented journal; \
                         move it out of the journal's directory"
                    .into(),
            },
        });
    }
    Ok(file)
}

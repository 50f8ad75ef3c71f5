//! The on-disk header (format version 1), its validation, and the layout of the data
//! area that follows it. `docs/file-format.md` documents the same layout for people.
//!
//! ```text
//! offset  size  field
//!      0     8  magic            89 52 4F 44 41 0D 0A 1A  ("\x89RODA\r\n\x1a")
//!      8     4  version          1
//!     12     4  kind             1 = journal, 2 = slots
//!     16     4  byte order mark  0x01020304 in the writer's byte order
//!     20     4  flags            bit 0: a segment of a segmented journal; bit 1: wake words in use;
//!                                bit 2: journal id set
//!     24     8  record size      size_of::<T>()
//!     32     8  record align     align_of::<T>()
//!     40     8  capacity         records (journal) or slots
//!     48     8  schema id        chosen by the application, 0 by default
//!     56     8  created          Unix time in nanoseconds
//!     64     8  data offset      bytes from file start to the first record (page multiple)
//!     72     8  stride           bytes from one record (or slot) to the next
//!     80     8  writer pid       atomic; pid of the last writer to open the file, 0 after a clean close
//!     88     8  first sequence   atomic; segment: sequence of its first record, u64::MAX while it
//!                                holds none (spare, or being recycled); 0 in other files
//!     96     8  retention        segment: k of `KeepLast(k)` (k <= 65,536), 0 for `KeepAll`;
//!                                0 in other files
//!    104     8  journal id       random at creation, nonzero, shared by a directory's segments
//!                                (flag bit 2); 0 and the flag clear: none (older files, slots)
//!    128     8  write sequence   atomic; records committed (journal); alone on its cache line
//!    136     4  wake word        atomic (futex), flag bit 1 only: bit 0 closed, bits 1.. wake-ups
//!    140     4  waiter flag      atomic, flag bit 1 only: nonzero while a reader may sleep
//!   4096        data             capacity * stride bytes
//! ```
//! All integers are in the writer's native byte order; the byte order mark rejects a
//! file from a machine of the other order.

use std::path::Path;

use roda_core::{Record, Result, RodaError};

use crate::file::options::Settings;

/// The magic bytes every Roda file starts with.
pub(crate) const MAGIC: [u8; 8] = [0x89, b'R', b'O', b'D', b'A', b'\r', b'\n', 0x1a];
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
const BYTE_ORDER_MARK: u32 = 0x0102_0304;
/// Bytes of the header that carry fields; the rest of the header page is zero.
pub(crate) const HEADER_FIELDS_LEN: usize = 256;
/// Smallest data offset: one 4 KiB page. Larger system pages raise it to the page size.
pub(crate) const MIN_DATA_OFFSET: u64 = 4096;
/// Largest record alignment the page-aligned data area guarantees.
pub(crate) const MAX_ALIGN: usize = 4096;

const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_BYTE_ORDER: usize = 16;
const OFF_FLAGS: usize = 20;
/// Flags bit 0: the file is one segment of a segmented journal.
const FLAG_SEGMENT: u32 = 1;
/// Flags bit 1: the journal's writer wakes sleeping readers through the words at 136.
const FLAG_WAKE: u32 = 2;
/// Flags bit 2: the journal id at [`OFF_JOURNAL_ID`] is set (journals only).
const FLAG_JOURNAL_ID: u32 = 1 << 2;
const OFF_RECORD_SIZE: usize = 24;
const OFF_RECORD_ALIGN: usize = 32;
const OFF_CAPACITY: usize = 40;
const OFF_SCHEMA: usize = 48;
const OFF_CREATED: usize = 56;
const OFF_DATA_OFFSET: usize = 64;
const OFF_STRIDE: usize = 72;
/// Atomic: pid of the writer holding the file (0 when closed cleanly).
pub(crate) const OFF_WRITER_PID: usize = 80;
/// Atomic: a segment's first sequence ([`NO_RECORDS`] while it holds none). Plain
/// journals and slot stores keep 0 here, as every version-1 file always did.
pub(crate) const OFF_FIRST_SEQ: usize = 88;
/// A segment's retention: k of `KeepLast(k)`, 0 for `KeepAll`.
const OFF_RETENTION: usize = 96;
/// A journal's id: random at creation, nonzero, shared by a directory's segments.
const OFF_JOURNAL_ID: usize = 104;
/// Most segment files a `KeepLast(k)` journal keeps: its writer holds every one of them
/// open and mapped (and a follower may too), so a larger k found in a header is damage,
/// never a journal a writer made.
pub(crate) const MAX_KEEP_LAST: u64 = 1 << 16;
/// The first sequence of a segment that holds no records: a spare not used yet, or one
/// the writer is recycling (its old records are no longer valid, its new ones not yet).
pub(crate) const NO_RECORDS: u64 = u64::MAX;
/// Atomic: the journal's committed record count, alone on its 64-byte line (128..192),
/// with the next line (192..256) left empty so adjacent-line prefetch shares nothing.
pub(crate) const OFF_WRITE_SEQ: usize = 128;

/// What a store file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StoreKind {
    /// An append-only journal of records.
    Journal = 1,
    /// A fixed array of seqlocked slots.
    Slots = 2,
}

impl StoreKind {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(StoreKind::Journal),
            2 => Some(StoreKind::Slots),
            _ => None,
        }
    }
}

/// The shape a store expects of its file: everything but the capacity is fixed by
/// the record type and options; the capacity comes from the caller on create and from
/// the file on open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub kind: StoreKind,
    pub record_size: u64,
    pub record_align: u64,
    pub stride: u64,
    pub schema: u64,
    /// A segment of a segmented journal (or a plain store).
    pub segment: bool,
    /// New files carry wake words (flag bit 1); opening takes the file's own choice.
    pub wake: bool,
}

/// The header fields of a store file, as read when it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Journal or slots.
    pub kind: StoreKind,
    /// Format version.
    pub version: u32,
    /// `size_of` the record type.
    pub record_size: u64,
    /// `align_of` the record type.
    pub record_align: u64,
    /// Records (journal) or slots.
    pub capacity: u64,
    /// Application schema id.
    pub schema: u64,
    /// Creation time, Unix nanoseconds.
    pub created_unix_nanos: u64,
    /// Offset of the data area in bytes.
    pub data_offset: u64,
    /// Bytes per record or slot in the data area.
    pub stride: u64,
    /// Whether the file is one segment of a segmented journal (header flag bit 0). Its
    /// first sequence is live: read it with `StoreFile::first_sequence`.
    pub segment: bool,
    /// A segment's retention policy: `k` for `KeepLast(k)`, 0 for `KeepAll` (and 0 in
    /// plain stores).
    pub retention: u64,
    /// Whether the journal's writer wakes sleeping readers (header flag bit 1): readers
    /// of a file without it poll.
    pub wake: bool,
    /// The journal's id: random and nonzero, chosen when the journal was created and
    /// shared by every segment of a segmented journal's directory; it names the journal
    /// when it is copied elsewhere (see `roda-bridge`). 0 for slot stores and for files
    /// created before journal ids (header flag bit 2 clear).
    pub journal_id: u64,
}

impl HeaderInfo {
    /// Bytes the file must have: header page plus the data area.
    pub(crate) fn required_len(&self) -> u64 {
        // Cannot overflow: `parse` and `layout` check it.
        self.data_offset + self.capacity * self.stride
    }
}

/// The data offset this system uses for new files: one page, at least 4 KiB.
pub(crate) fn data_offset_for_new_files() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    page.max(MIN_DATA_OFFSET)
}

/// Checks that `T`'s layout can be stored.
pub(crate) fn check_record<T>() -> Result<()> {
    if std::mem::size_of::<T>() == 0 {
        return Err(RodaError::ZeroSizedRecord);
    }
    if std::mem::align_of::<T>() > MAX_ALIGN {
        return Err(RodaError::AlignmentTooLarge {
            align: std::mem::align_of::<T>(),
            max: MAX_ALIGN,
        });
    }
    Ok(())
}

/// Lays out a new store of `capacity` records of `shape`.
pub(crate) fn layout(shape: Shape, capacity: usize) -> Result<HeaderInfo> {
    if capacity == 0 {
        return Err(RodaError::InvalidCapacity {
            capacity: 0,
            reason: "a store needs room for at least one record; pass a capacity of 1 or more",
        });
    }
    let data_offset = data_offset_for_new_files();
    let info = HeaderInfo {
        kind: shape.kind,
        version: VERSION,
        record_size: shape.record_size,
        record_align: shape.record_align,
        capacity: capacity as u64,
        schema: shape.schema,
        created_unix_nanos: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        data_offset,
        stride: shape.stride,
        segment: shape.segment,
        retention: 0,
        wake: shape.wake && shape.kind == StoreKind::Journal,
        journal_id: match shape.kind {
            StoreKind::Journal => new_journal_id(),
            StoreKind::Slots => 0,
        },
    };
    check_size(&info)?;
    Ok(info)
}

/// Gives a new journal the id its settings ask for (0: keep the random one).
pub(crate) fn set_journal_id(info: &mut HeaderInfo, settings: &Settings) {
    if info.kind == StoreKind::Journal && settings.journal_id != 0 {
        info.journal_id = settings.journal_id;
    }
}

/// A new journal id: random, nonzero. Hashed from the process's randomly keyed
/// `RandomState` (seeded by the OS), the time, the pid and a counter, so two journals
/// created at the same instant, in one process or several, get different ids.
pub(crate) fn new_journal_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    hasher.write_u64(nanos);
    hasher.write_u32(std::process::id());
    // Relaxed: a counter that only needs to differ between calls.
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.finish().max(1)
}

/// Rejects a capacity whose byte size overflows or exceeds the address space.
fn check_size(info: &HeaderInfo) -> Result<()> {
    let total = info
        .capacity
        .checked_mul(info.stride)
        .and_then(|bytes| bytes.checked_add(info.data_offset));
    match total {
        Some(total) if total <= isize::MAX as u64 => Ok(()),
        _ => Err(RodaError::InvalidCapacity {
            capacity: info.capacity,
            reason: "its size in bytes overflows the address space; use a smaller capacity",
        }),
    }
}

/// Writes the immutable header fields into the first bytes of a new store.
pub(crate) fn encode(info: &HeaderInfo, out: &mut [u8]) {
    let out = &mut out[..HEADER_FIELDS_LEN];
    out.fill(0);
    out[..8].copy_from_slice(&MAGIC);
    put_u32(out, OFF_VERSION, info.version);
    put_u32(out, OFF_KIND, info.kind as u32);
    put_u32(out, OFF_BYTE_ORDER, BYTE_ORDER_MARK);
    let mut flags = if info.segment { FLAG_SEGMENT } else { 0 };
    if info.wake {
        flags |= FLAG_WAKE;
    }
    if info.journal_id != 0 {
        flags |= FLAG_JOURNAL_ID;
        put_u64(out, OFF_JOURNAL_ID, info.journal_id);
    }
    put_u32(out, OFF_FLAGS, flags);
    put_u64(out, OFF_RETENTION, info.retention);
    put_u64(out, OFF_RECORD_SIZE, info.record_size);
    put_u64(out, OFF_RECORD_ALIGN, info.record_align);
    put_u64(out, OFF_CAPACITY, info.capacity);
    put_u64(out, OFF_SCHEMA, info.schema);
    put_u64(out, OFF_CREATED, info.created_unix_nanos);
    put_u64(out, OFF_DATA_OFFSET, info.data_offset);
    put_u64(out, OFF_STRIDE, info.stride);
}

/// Reads and validates the header in `bytes` (the file's first bytes, up to a page)
/// of a file `file_len` bytes long, against the `expected` shape.
pub(crate) fn decode(
    bytes: &[u8],
    file_len: u64,
    path: &Path,
    expected: &Shape,
) -> Result<HeaderInfo> {
    let info = decode_fields(bytes, file_len, path)?;
    if info.kind != expected.kind {
        return Err(RodaError::LayoutMismatch {
            field: "kind",
            expected: expected.kind as u64,
            found: info.kind as u64,
        });
    }
    if info.segment != expected.segment {
        return Err(RodaError::LayoutMismatch {
            field: "segment",
            expected: expected.segment as u64,
            found: info.segment as u64,
        });
    }
    for (field, expected, found) in [
        ("record_size", expected.record_size, info.record_size),
        ("record_align", expected.record_align, info.record_align),
        ("stride", expected.stride, info.stride),
        ("schema", expected.schema, info.schema),
    ] {
        if expected != found {
            return Err(RodaError::LayoutMismatch {
                field,
                expected,
                found,
            });
        }
    }
    check_geometry(&info, file_len, path)?;
    Ok(info)
}

/// Reads and validates the header in `bytes` of a file `file_len` bytes long without a
/// record type: for tools that inspect any store. Where [`decode`] compares the record
/// fields with the caller's type, this checks that they are consistent with each other
/// (size not zero, alignment a power of two up to [`MAX_ALIGN`] dividing the size, the
/// stride the one a writer of that kind lays out), so that every record or slot lies
/// inside the data area; the remaining checks are `decode`'s.
pub(crate) fn decode_any(bytes: &[u8], file_len: u64, path: &Path) -> Result<HeaderInfo> {
    let info = decode_fields(bytes, file_len, path)?;
    let corrupted = |detail: String| RodaError::Corrupted {
        path: path.into(),
        detail,
    };
    if info.record_size == 0 {
        return Err(corrupted("record size 0".into()));
    }
    if !info.record_align.is_power_of_two() || info.record_align > MAX_ALIGN as u64 {
        return Err(corrupted(format!(
            "record alignment {} is not a power of two up to {MAX_ALIGN}",
            info.record_align
        )));
    }
    if info.record_size % info.record_align != 0 {
        return Err(corrupted(format!(
            "record size {} is not a multiple of its alignment {}",
            info.record_size, info.record_align
        )));
    }
    let stride = match info.kind {
        StoreKind::Journal => Some(info.record_size),
        StoreKind::Slots => usize::try_from(info.record_size)
            .ok()
            .filter(|&size| size <= isize::MAX as usize / 2)
            .map(|size| stride_for(size) as u64),
    };
    if stride != Some(info.stride) {
        return Err(corrupted(format!(
            "stride {} does not fit records of {} bytes",
            info.stride, info.record_size
        )));
    }
    check_geometry(&info, file_len, path)?;
    Ok(info)
}

/// The type-independent part of decoding: magic, header length, byte order, version and
/// a known kind; returns the fields as stored, not yet checked against each other.
fn decode_fields(bytes: &[u8], file_len: u64, path: &Path) -> Result<HeaderInfo> {
    let magic_len = bytes.len().min(MAGIC.len());
    if magic_len == 0 || bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(RodaError::NotARodaFile { path: path.into() });
    }
    if bytes.len() < HEADER_FIELDS_LEN {
        return Err(RodaError::Truncated {
            path: path.into(),
            expected: MIN_DATA_OFFSET,
            found: file_len,
        });
    }
    let bom = get_u32(bytes, OFF_BYTE_ORDER);
    if bom != BYTE_ORDER_MARK {
        return Err(RodaError::LayoutMismatch {
            field: "byte_order",
            expected: BYTE_ORDER_MARK as u64,
            found: bom as u64,
        });
    }
    let version = get_u32(bytes, OFF_VERSION);
    if version != VERSION {
        return Err(RodaError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let kind_raw = get_u32(bytes, OFF_KIND);
    let kind = StoreKind::from_u32(kind_raw).ok_or_else(|| RodaError::Corrupted {
        path: path.into(),
        detail: format!("unknown store kind {kind_raw} (1 = journal, 2 = slots)"),
    })?;
    let flags = get_u32(bytes, OFF_FLAGS);
    let journal_only = FLAG_SEGMENT | FLAG_WAKE;
    if flags & !(journal_only | FLAG_JOURNAL_ID) != 0
        || (flags & journal_only != 0 && kind != StoreKind::Journal)
    {
        return Err(RodaError::Corrupted {
            path: path.into(),
            detail: format!("unknown header flags {flags:#x} for a {kind:?} file"),
        });
    }
    let retention = get_u64(bytes, OFF_RETENTION);
    if flags & FLAG_SEGMENT != 0 && retention > MAX_KEEP_LAST {
        return Err(RodaError::Corrupted {
            path: path.into(),
            detail: format!(
                "segment header says KeepLast({retention}), more than the {MAX_KEEP_LAST} \
                 segment files a journal can keep"
            ),
        });
    }
    // Only journals have ids: on a slot store the flag is ignored (a kind check reports
    // the mismatch to a journal open).
    let journal_id = if flags & FLAG_JOURNAL_ID != 0 && kind == StoreKind::Journal {
        get_u64(bytes, OFF_JOURNAL_ID)
    } else {
        0
    };
    Ok(HeaderInfo {
        kind,
        version,
        record_size: get_u64(bytes, OFF_RECORD_SIZE),
        record_align: get_u64(bytes, OFF_RECORD_ALIGN),
        capacity: get_u64(bytes, OFF_CAPACITY),
        schema: get_u64(bytes, OFF_SCHEMA),
        created_unix_nanos: get_u64(bytes, OFF_CREATED),
        data_offset: get_u64(bytes, OFF_DATA_OFFSET),
        stride: get_u64(bytes, OFF_STRIDE),
        segment: flags & FLAG_SEGMENT != 0,
        retention,
        wake: flags & FLAG_WAKE != 0,
        journal_id,
    })
}

/// Checks where the data lies: data offset, capacity, total size and the file's length.
fn check_geometry(info: &HeaderInfo, file_len: u64, path: &Path) -> Result<()> {
    if info.data_offset < MIN_DATA_OFFSET || info.data_offset % MIN_DATA_OFFSET != 0 {
        return Err(RodaError::Corrupted {
            path: path.into(),
            detail: format!(
                "data offset {} is not a multiple of {MIN_DATA_OFFSET}",
                info.data_offset
            ),
        });
    }
    if info.capacity == 0 {
        return Err(RodaError::Corrupted {
            path: path.into(),
            detail: "capacity 0".into(),
        });
    }
    check_size(info)?;
    if file_len < info.required_len() {
        return Err(RodaError::Truncated {
            path: path.into(),
            expected: info.required_len(),
            found: file_len,
        });
    }
    Ok(())
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads a native-order u64 at `at` of a header buffer.
pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Bytes of one slot for a record of `size` bytes: the sequence word plus the payload
/// padded to whole words; one 64-byte cache line when that fits, else a multiple of 64.
pub(crate) fn stride_for(size: usize) -> usize {
    let bytes = 8 + size.div_ceil(8) * 8;
    bytes.div_ceil(64) * 64
}

/// The shape of a journal of `T`: a file of a segmented journal when `file`, otherwise
/// a plain journal or an in-memory segment (both carry no segment flag).
pub(crate) fn journal_shape<T: Record>(settings: &Settings, file: bool) -> Result<Shape> {
    check_record::<T>()?;
    Ok(Shape {
        kind: StoreKind::Journal,
        record_size: std::mem::size_of::<T>() as u64,
        record_align: std::mem::align_of::<T>() as u64,
        stride: std::mem::size_of::<T>() as u64,
        schema: settings.schema,
        segment: file,
        wake: settings.wake,
    })
}

/// The shape of a slot store of `T`.
pub(crate) fn slot_shape<T: Record>(settings: &Settings) -> Result<Shape> {
    check_record::<T>()?;
    Ok(Shape {
        kind: StoreKind::Slots,
        record_size: std::mem::size_of::<T>() as u64,
        record_align: std::mem::align_of::<T>() as u64,
        stride: stride_for(std::mem::size_of::<T>()) as u64,
        schema: settings.schema,
        segment: false,
        wake: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            kind: StoreKind::Journal,
            record_size: 16,
            record_align: 8,
            stride: 16,
            schema: 7,
            segment: false,
            wake: false,
        }
    }

    fn encoded(capacity: usize) -> (HeaderInfo, Vec<u8>) {
        let info = layout(shape(), capacity).unwrap();
        let mut bytes = vec![0u8; 4096];
        encode(&info, &mut bytes);
        (info, bytes)
    }

    #[test]
    fn round_trip() {
        let (info, bytes) = encoded(10);
        let len = info.required_len();
        let back = decode(&bytes, len, Path::new("f"), &shape()).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn journal_ids_are_random_flagged_and_optional() {
        let (a, bytes) = encoded(10);
        let (b, _) = encoded(10);
        assert!(a.journal_id != 0 && b.journal_id != 0 && a.journal_id != b.journal_id);
        assert_eq!(get_u32(&bytes, OFF_FLAGS), FLAG_JOURNAL_ID);
        assert_eq!(get_u64(&bytes, OFF_JOURNAL_ID), a.journal_id);
        let len = a.required_len();
        // A file from before journal ids: flag clear, offset 104 zero.
        let mut old = bytes.clone();
        put_u32(&mut old, OFF_FLAGS, 0);
        put_u64(&mut old, OFF_JOURNAL_ID, 0);
        let info = decode(&old, len, Path::new("f"), &shape()).unwrap();
        assert_eq!(info.journal_id, 0);
        // The flag with a zero id reads as no id (0 always means none).
        let mut zero = bytes.clone();
        put_u64(&mut zero, OFF_JOURNAL_ID, 0);
        let info = decode(&zero, len, Path::new("f"), &shape()).unwrap();
        assert_eq!(info.journal_id, 0);
        // Slot stores carry no journal id; the flag on one is ignored.
        let slots = Shape {
            kind: StoreKind::Slots,
            stride: 64,
            ..shape()
        };
        let info = layout(slots, 10).unwrap();
        assert_eq!(info.journal_id, 0);
        let mut bytes = vec![0u8; 4096];
        encode(&info, &mut bytes);
        assert_eq!(get_u32(&bytes, OFF_FLAGS), 0);
        put_u32(&mut bytes, OFF_FLAGS, FLAG_JOURNAL_ID);
        put_u64(&mut bytes, OFF_JOURNAL_ID, 5);
        let back = decode_any(&bytes, info.required_len(), Path::new("f")).unwrap();
        assert_eq!(back.journal_id, 0);
    }

    #[test]
    fn every_field_is_checked() {
        let (info, bytes) = encoded(10);
        let len = info.required_len();
        let p = Path::new("f");
        let with = |at: usize, v: u64| {
            let mut b = bytes.clone();
            put_u64(&mut b, at, v);
            b
        };
        let err = |b: &[u8], l: u64| decode(b, l, p, &shape()).unwrap_err();

        let mut bad_magic = bytes.clone();
        bad_magic[1] = b'X';
        assert!(matches!(
            err(&bad_magic, len),
            RodaError::NotARodaFile { .. }
        ));
        assert!(matches!(err(&[], 0), RodaError::NotARodaFile { .. }));
        assert!(matches!(
            err(&bytes[..100], 100),
            RodaError::Truncated { .. }
        ));

        let mut v2 = bytes.clone();
        put_u32(&mut v2, OFF_VERSION, 2);
        assert!(matches!(
            err(&v2, len),
            RodaError::UnsupportedVersion { found: 2, .. }
        ));
        let mut bom = bytes.clone();
        put_u32(&mut bom, OFF_BYTE_ORDER, BYTE_ORDER_MARK.swap_bytes());
        assert!(matches!(
            err(&bom, len),
            RodaError::LayoutMismatch {
                field: "byte_order",
                ..
            }
        ));
        let mut kind = bytes.clone();
        put_u32(&mut kind, OFF_KIND, 2);
        put_u32(&mut kind, OFF_FLAGS, 0); // slot stores carry no journal id
        assert!(matches!(
            err(&kind, len),
            RodaError::LayoutMismatch { field: "kind", .. }
        ));
        put_u32(&mut kind, OFF_KIND, 9);
        assert!(matches!(err(&kind, len), RodaError::Corrupted { .. }));

        for (at, field) in [
            (OFF_RECORD_SIZE, "record_size"),
            (OFF_RECORD_ALIGN, "record_align"),
            (OFF_STRIDE, "stride"),
            (OFF_SCHEMA, "schema"),
        ] {
            match err(&with(at, 99), len) {
                RodaError::LayoutMismatch {
                    field: f, found, ..
                } => {
                    assert_eq!((f, found), (field, 99));
                }
                other => panic!("{field}: {other}"),
            }
        }
        assert!(matches!(
            err(&with(OFF_CAPACITY, u64::MAX / 2), u64::MAX),
            RodaError::InvalidCapacity { .. }
        ));
        assert!(matches!(
            err(&with(OFF_CAPACITY, 0), len),
            RodaError::Corrupted { .. }
        ));
        assert!(matches!(
            err(&with(OFF_DATA_OFFSET, 100), len),
            RodaError::Corrupted { .. }
        ));
        match err(&bytes, len - 1) {
            RodaError::Truncated {
                expected, found, ..
            } => assert_eq!((expected, found), (len, len - 1)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn decode_any_checks_what_decode_checks_without_a_type() {
        let (info, bytes) = encoded(10);
        let len = info.required_len();
        let p = Path::new("f");
        assert_eq!(decode_any(&bytes, len, p).unwrap(), info);
        let with = |at: usize, v: u64| {
            let mut b = bytes.clone();
            put_u64(&mut b, at, v);
            b
        };
        let err = |b: &[u8], l: u64| decode_any(b, l, p).unwrap_err();

        // The shared checks give the same errors as `decode`.
        assert!(matches!(err(&[], 0), RodaError::NotARodaFile { .. }));
        assert!(matches!(
            err(&bytes[..100], 100),
            RodaError::Truncated { .. }
        ));
        let mut v2 = bytes.clone();
        put_u32(&mut v2, OFF_VERSION, 2);
        assert!(matches!(
            err(&v2, len),
            RodaError::UnsupportedVersion { found: 2, .. }
        ));
        let mut kind = bytes.clone();
        put_u32(&mut kind, OFF_KIND, 9);
        assert!(matches!(err(&kind, len), RodaError::Corrupted { .. }));
        assert!(matches!(err(&bytes, len - 1), RodaError::Truncated { .. }));
        assert!(matches!(
            err(&with(OFF_CAPACITY, u64::MAX / 2), u64::MAX),
            RodaError::InvalidCapacity { .. }
        ));
        // Any schema and any consistent record layout are accepted...
        assert!(decode_any(&with(OFF_SCHEMA, 99), len, p).is_ok());
        // ...inconsistent ones are not.
        for (at, v) in [
            (OFF_RECORD_SIZE, 0),
            (OFF_RECORD_SIZE, 12),
            (OFF_RECORD_ALIGN, 3),
            (OFF_RECORD_ALIGN, 8192),
            (OFF_STRIDE, 32),
        ] {
            assert!(
                matches!(err(&with(at, v), len), RodaError::Corrupted { .. }),
                "offset {at} = {v}"
            );
        }
        // A slot store's stride is its slot size (one cache line for 16 bytes).
        let mut slots = bytes.clone();
        put_u32(&mut slots, OFF_KIND, StoreKind::Slots as u32);
        put_u32(&mut slots, OFF_FLAGS, 0); // slot stores carry no journal id
        assert!(matches!(err(&slots, len), RodaError::Corrupted { .. }));
        put_u64(&mut slots, OFF_STRIDE, 64);
        let info = decode_any(&slots, 4096 + 640, p).unwrap();
        assert_eq!((info.kind, info.stride), (StoreKind::Slots, 64));
        put_u64(&mut slots, OFF_RECORD_SIZE, u64::MAX);
        assert!(matches!(err(&slots, u64::MAX), RodaError::Corrupted { .. }));
    }

    #[test]
    fn wake_flag_round_trips_and_is_journal_only() {
        let shape = Shape {
            wake: true,
            ..shape()
        };
        let info = layout(shape, 10).unwrap();
        assert!(info.wake);
        let mut bytes = vec![0u8; 4096];
        encode(&info, &mut bytes);
        // A new journal also carries its id (bit 2).
        assert_eq!(get_u32(&bytes, OFF_FLAGS), FLAG_WAKE | FLAG_JOURNAL_ID);
        let len = info.required_len();
        let back = decode(&bytes, len, Path::new("f"), &shape).unwrap();
        assert!(back.wake);
        // The file decides: a reader that did not ask for waking still sees it.
        assert!(
            decode(&bytes, len, Path::new("f"), &self::shape())
                .unwrap()
                .wake
        );
        // Slot stores never carry it.
        put_u32(&mut bytes, OFF_KIND, StoreKind::Slots as u32);
        put_u32(&mut bytes, OFF_FLAGS, FLAG_WAKE);
        put_u64(&mut bytes, OFF_STRIDE, 64);
        assert!(matches!(
            decode_any(&bytes, 4096 + 640, Path::new("f")),
            Err(RodaError::Corrupted { .. })
        ));
    }

    #[test]
    fn segment_retention_is_bounded() {
        let mut info = layout(
            Shape {
                segment: true,
                ..shape()
            },
            10,
        )
        .unwrap();
        let p = Path::new("f");
        for (retention, ok) in [(0, true), (MAX_KEEP_LAST, true), (MAX_KEEP_LAST + 1, false)] {
            info.retention = retention;
            let mut bytes = vec![0u8; 4096];
            encode(&info, &mut bytes);
            let decoded = decode_any(&bytes, info.required_len(), p);
            assert_eq!(decoded.is_ok(), ok, "{retention}: {decoded:?}");
            if !ok {
                assert!(matches!(decoded, Err(RodaError::Corrupted { .. })));
            }
        }
        // Plain files keep 0 there; the bound is a segment's.
        info.segment = false;
        info.retention = u64::MAX;
        let mut bytes = vec![0u8; 4096];
        encode(&info, &mut bytes);
        assert!(decode_any(&bytes, info.required_len(), p).is_ok());
    }

    #[test]
    fn capacity_checks() {
        assert!(matches!(
            layout(shape(), 0),
            Err(RodaError::InvalidCapacity { capacity: 0, .. })
        ));
        assert!(matches!(
            layout(shape(), usize::MAX / 8),
            Err(RodaError::InvalidCapacity { .. })
        ));
        assert!(check_record::<()>().is_err());
        assert!(check_record::<u8>().is_ok());
    }
}

//! The hostile-file corpus: well-formed stores of every kind (built once per process as
//! templates), copied into a case directory and damaged there by a seeded, reproducible
//! sequence of mutations of header bytes, data words, file lengths and directory entries.
//!
//! Shared by `roda-store/tests/hostile_files.rs` (typed stores, readers, followers and
//! `StoreFile`) and `roda-cli/tests/hostile_files.rs` (`roda inspect`, `tail`, `verify`),
//! so both run exactly the same cases for the same seed.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use roda_store::{JournalStore, Retention, SegmentedJournal, SlotStore};

/// SplitMix64: small, fast, and the same sequence on every machine for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// The seed of case `index` of a run with base seed `base`.
pub fn case_seed(base: u64, index: u64) -> u64 {
    Rng::new(base ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// The record types of the templates (typed opens must use the same ones to get past
/// the layout checks and reach the deeper code).
pub type JournalRec = [u64; 2];
pub type ByteRec = [u8; 3];
pub type SlotRec = [u64; 3];
pub type SegRec = [u64; 2];
pub type ShortSegRec = [u16; 3];

/// What a template holds, and so which typed APIs read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A plain journal file of `JournalRec`.
    Journal,
    /// A plain journal file of `ByteRec` (1-byte atomic words).
    ByteJournal,
    /// A slot store file of `SlotRec`.
    Slots,
    /// A segmented journal directory of `SegRec`.
    Segmented,
    /// A segmented journal directory of `ShortSegRec` (2-byte words).
    ShortSegmented,
}

impl Kind {
    pub fn is_dir(self) -> bool {
        matches!(self, Kind::Segmented | Kind::ShortSegmented)
    }
}

/// One template: a store as its writer left it.
pub struct Template {
    pub name: &'static str,
    pub kind: Kind,
    /// The file, or the directory of a segmented journal.
    pub path: PathBuf,
    /// Records per segment (directories), records or slots (files).
    pub capacity: u64,
}

/// Header offsets worth aiming at (docs/file-format.md): every field of version 1.
pub const FIELD_OFFSETS: [usize; 16] = [
    0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 88, 96, 104, 112, 120, 128,
];
/// The writer pid: kept pointing at no process. A reader waits while the recorded
/// writer is alive and a slot is odd (a `set` under way): that is a wait by design, not
/// a defect, so the corpus never makes a dead writer look alive.
pub const OFF_WRITER_PID: u64 = 80;
const PAGE: u64 = 4096;

/// Builds every template under `root`.
pub fn templates(root: &Path) -> Vec<Template> {
    fs::create_dir_all(root).unwrap();
    let mut out = Vec::new();

    let path = root.join("journal.roda");
    let mut j = JournalStore::<JournalRec>::create(&path, 16).unwrap();
    for i in 0..10u64 {
        j.append(&[i, !i]);
    }
    drop(j);
    out.push(Template {
        name: "journal",
        kind: Kind::Journal,
        path,
        capacity: 16,
    });

    let path = root.join("bytes.roda");
    let mut j = JournalStore::<ByteRec>::create(&path, 8).unwrap();
    for i in 0..8u8 {
        j.append(&[i, i ^ 0x55, 7]);
    }
    drop(j);
    out.push(Template {
        name: "full byte journal",
        kind: Kind::ByteJournal,
        path,
        capacity: 8,
    });

    let path = root.join("slots.roda");
    let mut s = SlotStore::<SlotRec>::create(&path, 8).unwrap();
    for (i, v) in [(0usize, 1u64), (1, 2), (1, 3), (4, 4), (7, 5)] {
        s.set(i, &[v, v * 2, v * 3]);
    }
    drop(s);
    out.push(Template {
        name: "slots",
        kind: Kind::Slots,
        path,
        capacity: 8,
    });

    let path = root.join("keep-last");
    let mut g = SegmentedJournal::<SegRec>::create(&path, 4, Retention::KeepLast(3)).unwrap();
    for i in 0..17u64 {
        g.append(&[i, !i]);
    }
    drop(g);
    out.push(Template {
        name: "KeepLast(3) directory",
        kind: Kind::Segmented,
        path,
        capacity: 4,
    });

    let path = root.join("keep-all");
    let mut g = SegmentedJournal::<SegRec>::create(&path, 4, Retention::KeepAll).unwrap();
    for i in 0..18u64 {
        g.append(&[i, !i]);
    }
    drop(g);
    out.push(Template {
        name: "KeepAll directory",
        kind: Kind::Segmented,
        path,
        capacity: 4,
    });

    let path = root.join("short");
    let mut g = SegmentedJournal::<ShortSegRec>::create(&path, 2, Retention::KeepLast(2)).unwrap();
    for i in 0..3u16 {
        g.append(&[i, !i, 9]);
    }
    drop(g);
    out.push(Template {
        name: "KeepLast(2) directory of 6-byte records",
        kind: Kind::ShortSegmented,
        path,
        capacity: 2,
    });
    out
}

/// A damaged copy of a template, ready to be opened.
pub struct Case {
    pub seed: u64,
    pub kind: Kind,
    /// Records per segment (directories), records or slots (files), of the template.
    pub capacity: u64,
    /// The rest of the case's random sequence: the changes made while it is open.
    pub rng: Rng,
    /// The copied file or directory.
    pub path: PathBuf,
    /// What was done to it, for the failure report.
    pub log: Vec<String>,
}

/// The segment files (and anything named like one) of a directory, sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        fs::copy(from, to).unwrap();
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.roda")
}

/// Copies a template chosen by `seed` into `work` and damages it.
pub fn make_case(seed: u64, templates: &[Template], work: &Path) -> Case {
    let mut rng = Rng::new(seed);
    let t = rng.pick(templates);
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).unwrap();
    let path = work.join(t.path.file_name().unwrap());
    copy_tree(&t.path, &path);
    let n = 1 + rng.below(3);
    let mut case = Case {
        seed,
        kind: t.kind,
        capacity: t.capacity,
        rng: Rng::new(0),
        path,
        log: vec![format!("template {}", t.name)],
    };
    for _ in 0..n {
        mutate(&mut rng, &mut case, t, templates);
    }
    case.rng = rng;
    case
}

impl Case {
    /// Changes one header word (or data word) of one of the case's files in place, as
    /// another process with write access could while readers have it open: readers
    /// must re-check what they load from a live mapping at each use. Never the length
    /// (truncating a mapped file raises SIGBUS in its readers by the kernel's design,
    /// see docs/file-format.md) and never the writer pid (see [`OFF_WRITER_PID`]).
    pub fn change_live(&mut self) {
        let files: Vec<PathBuf> = if self.path.is_dir() {
            entries(&self.path)
        } else {
            vec![self.path.clone()]
        };
        if files.is_empty() {
            return;
        }
        let rng = &mut self.rng;
        let file = rng.pick(&files).clone();
        let len = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let at = if len > PAGE + 8 && rng.chance(4) {
            PAGE + 8 * rng.below((len - PAGE) / 8)
        } else {
            *rng.pick(&[24u64, 40, 64, 72, 88, 88, 96, 128, 128])
        };
        let old = read_u64(&file, at);
        let value = interesting(rng, old, self.capacity);
        write_at(&file, at, &value.to_ne_bytes());
        self.log.push(format!(
            "while open: {} word {at} {old:#x} -> {value:#x}",
            file.display()
        ));
    }
}

/// Opens `path` only if it is a regular file: a named pipe in the corpus would block
/// the harness itself.
fn open_regular(path: &Path, write: bool) -> std::io::Result<fs::File> {
    if !fs::symlink_metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    OpenOptions::new().read(true).write(write).open(path)
}

fn copy_regular(from: &Path, to: &Path) -> std::io::Result<()> {
    if !fs::symlink_metadata(from)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    fs::copy(from, writable(to)).map(|_| ())
}

/// `path`, with a named pipe there removed first (writing into it would block).
fn writable(path: &Path) -> &Path {
    use std::os::unix::fs::FileTypeExt;
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        let _ = fs::remove_file(path);
    }
    path
}

fn read_u64(path: &Path, at: u64) -> u64 {
    let mut b = [0u8; 8];
    match open_regular(path, false).and_then(|f| f.read_exact_at(&mut b, at)) {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => 0,
    }
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    if let Ok(f) = open_regular(path, true) {
        let _ = f.write_all_at(bytes, at);
    }
}

/// A value for header word `at`, whose current value is `old`, in a store of
/// `capacity` records per file.
fn interesting(rng: &mut Rng, old: u64, capacity: u64) -> u64 {
    let near_max = u64::MAX / capacity.max(1) * capacity.max(1);
    let (random, small, bit) = (rng.next_u64(), rng.below(64), rng.below(64));
    *rng.pick(&[
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        64,
        PAGE,
        2 * PAGE,
        old.wrapping_add(1),
        old.wrapping_sub(1),
        old.wrapping_mul(2),
        old.wrapping_add(capacity),
        old.wrapping_sub(capacity),
        capacity,
        capacity + 1,
        capacity * 3,
        1 << 31,
        1 << 32,
        1 << 50,
        1 << 62,
        1 << 63,
        (1 << 63) - 1,
        near_max,
        near_max.wrapping_sub(capacity),
        u64::MAX - 1,
        u64::MAX,
        random,
        small,
        old ^ (1 << bit),
    ])
}

/// One mutation of the case, chosen by `rng`.
fn mutate(rng: &mut Rng, case: &mut Case, t: &Template, templates: &[Template]) {
    let files: Vec<PathBuf> = if case.kind.is_dir() {
        entries(&case.path)
    } else {
        vec![case.path.clone()]
    };
    let dir_ops = if case.kind.is_dir() { 3 } else { 0 };
    let choice = rng.below(10 + dir_ops);
    if files.is_empty() || (choice >= 10 && case.kind.is_dir()) {
        mutate_dir(rng, case, t, templates);
        return;
    }
    let file = rng.pick(&files).clone();
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let len = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    match choice {
        // A header field.
        0..=4 => {
            let at = if rng.chance(4) {
                8 * rng.below(32)
            } else {
                *rng.pick(&FIELD_OFFSETS) as u64
            };
            if at == OFF_WRITER_PID {
                return;
            }
            let old = read_u64(&file, at);
            let value = interesting(rng, old, t.capacity);
            write_at(&file, at, &value.to_ne_bytes());
            case.log
                .push(format!("{name}: header word {at} {old:#x} -> {value:#x}"));
        }
        // A 4-byte field (version, kind, byte order, flags).
        5 => {
            let at = 8 + 4 * rng.below(4);
            let value = *rng.pick(&[0u32, 1, 2, 3, 9, u32::MAX, 0x0403_0201]);
            write_at(&file, at, &value.to_ne_bytes());
            case.log.push(format!("{name}: u32 at {at} -> {value:#x}"));
        }
        // A byte of the header (never the writer pid).
        6 => {
            let at = rng.below(256);
            if (OFF_WRITER_PID..OFF_WRITER_PID + 8).contains(&at) {
                return;
            }
            let mut b = [0u8; 1];
            let _ = open_regular(&file, false).and_then(|f| f.read_exact_at(&mut b, at));
            let value = b[0] ^ (1 << rng.below(8)) as u8;
            write_at(&file, at, &[value]);
            case.log.push(format!("{name}: byte {at} -> {value:#x}"));
        }
        // The file's length.
        7 => {
            let new_len = *rng.pick(&[
                0,
                1,
                7,
                8,
                100,
                255,
                256,
                PAGE - 1,
                PAGE,
                PAGE + 8,
                len.saturating_sub(1),
                len.saturating_sub(8),
                len.saturating_sub(PAGE),
                len + 1,
                len + PAGE,
                4 * len,
                u64::MAX,
            ]);
            if new_len == u64::MAX {
                // Not a file at all: a named pipe, which blocks an open without a writer.
                make_fifo(&file);
                case.log.push(format!("{name}: replaced by a named pipe"));
                return;
            }
            if let Ok(f) = open_regular(&file, true) {
                let _ = f.set_len(new_len);
            }
            case.log.push(format!("{name}: length {len} -> {new_len}"));
        }
        // A word of the data area (slot sequence words, records).
        _ => {
            if len <= PAGE + 8 {
                return;
            }
            let at = PAGE + 8 * rng.below((len - PAGE) / 8);
            let old = read_u64(&file, at);
            let random = rng.next_u64();
            let value = *rng.pick(&[
                1,
                3,
                old | 1,
                old.wrapping_add(2),
                1 << 63,
                (1 << 63) | 1,
                u64::MAX,
                random,
            ]);
            write_at(&file, at, &value.to_ne_bytes());
            case.log
                .push(format!("{name}: data word {at} {old:#x} -> {value:#x}"));
        }
    }
}

/// One change to a segment directory's entries.
fn mutate_dir(rng: &mut Rng, case: &mut Case, t: &Template, templates: &[Template]) {
    let dir = case.path.clone();
    let files = entries(&dir);
    let s = t.capacity;
    let names_near = |rng: &mut Rng, base: u64| -> u64 {
        let random = rng.next_u64();
        *rng.pick(&[
            base.wrapping_add(s),
            base.wrapping_sub(s),
            base.wrapping_add(s * 3),
            base.wrapping_add(1),
            0,
            u64::MAX / s * s,
            u64::MAX / s * s - s,
            u64::MAX,
            random,
        ])
    };
    let some = |rng: &mut Rng| {
        files
            .get(rng.below(files.len().max(1) as u64) as usize)
            .cloned()
    };
    match rng.below(7) {
        0 => {
            if let Some(f) = some(rng) {
                let _ = fs::remove_file(&f).or_else(|_| fs::remove_dir_all(&f));
                case.log.push(format!("removed {}", f.display()));
            }
        }
        1 | 2 => {
            // Copied or renamed under another segment name.
            if let Some(f) = some(rng) {
                let base = roda_name(&f).unwrap_or(0);
                let to = dir.join(segment_name(names_near(rng, base)));
                let copy = rng.chance(2);
                let _ = if copy {
                    copy_regular(&f, &to)
                } else {
                    fs::rename(&f, &to)
                };
                case.log.push(format!(
                    "{} {} -> {}",
                    if copy { "copied" } else { "renamed" },
                    f.display(),
                    to.display()
                ));
            }
        }
        3 => {
            // Another store of another kind, named like a segment.
            let other = rng.pick(templates);
            let to = dir.join(segment_name(rng.below(6) * s));
            if other.kind.is_dir() {
                if let Some(f) = entries(&other.path).first() {
                    let _ = copy_regular(f, &to);
                }
            } else {
                let _ = copy_regular(&other.path, &to);
            }
            case.log
                .push(format!("{} from template {}", to.display(), other.name));
        }
        4 => {
            // Junk named like a segment.
            let to = dir.join(segment_name(rng.below(6) * s));
            let len = *rng.pick(&[0u64, 8, 300, PAGE, PAGE + 100, 3 * PAGE]);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let _ = fs::write(writable(&to), bytes);
            case.log
                .push(format!("junk {} of {len} bytes", to.display()));
        }
        5 => {
            // A directory named like a segment, or a file named almost like one.
            let name = rng.below(6) * s;
            if rng.chance(2) {
                let _ = fs::create_dir(dir.join(segment_name(name)));
                case.log
                    .push(format!("subdirectory {}", segment_name(name)));
            } else if rng.chance(2) {
                make_fifo(&dir.join(segment_name(name)));
                case.log.push(format!("named pipe {}", segment_name(name)));
            } else {
                let _ = fs::write(writable(&dir.join(format!("{name:019}.roda"))), b"x");
                case.log.push("a file named almost like a segment".into());
            }
        }
        _ => {
            // The directory itself replaced by a file.
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::write(&dir, b"not a directory");
            case.log.push("directory replaced by a file".into());
        }
    }
}

/// Replaces `path` (if any) by a named pipe.
fn make_fifo(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = std::process::Command::new("mkfifo")
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status();
}

/// The first sequence a segment file's name stands for.
pub fn roda_name(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".roda")?
        .parse()
        .ok()
}

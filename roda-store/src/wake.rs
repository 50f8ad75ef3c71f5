//! Wake on publish: the protocol that lets an idle reader sleep in the kernel and be
//! woken by the writer's next publish, in this process or another.
//!
//! Two 32-bit words, in the journal's header (offsets 136 and 140, on the write
//! sequence's cache line) or, for in-memory segmented journals, in their shared core:
//!
//! * the **wake word**: bit 0 is set while no writer has the journal open (closed);
//!   bits 1.. count wake-ups (it grows by 2 at each one). Sleepers wait on it.
//! * the **waiter flag**: nonzero while a sleeper may be waiting.
//!
//! | writer (publish) | reader (sleep) |
//! |---|---|
//! | 1. `write_seq.store(n, Release)` | a. `e = wake.load(Acquire)`; closed: do not sleep |
//! | 2. `fence(SeqCst)` | b. `flag.swap(1, Release)` |
//! | 3. `flag.load(Relaxed)`; 0: done | c. `fence(SeqCst)` |
//! | 4. `flag.swap(0, Acquire)` | d. re-check the published count: new records, no sleep |
//! | 5. `wake.fetch_add(2, Release)` | e. `FUTEX_WAIT(wake, e)` (returns at once if `wake != e`) |
//! | 6. `FUTEX_WAKE(wake, all)` | f. re-check; repeat from a. while the deadline allows |
//!
//! Fences 2 and c are both SeqCst, so one of them comes first in their single total
//! order: if c comes first, load 3 sees the flag of b and the writer wakes; if 2 comes
//! first, the re-check d sees the count of 1 and the reader does not sleep. When the
//! writer wakes, its swap 4 reads b's store (or a later swap of another sleeper, which
//! continues b's release sequence), so a happens-before 5: the reader's `e` is older
//! than the increment and its FUTEX_WAIT either fails at once or is queued before the
//! FUTEX_WAKE (the kernel checks the word and queues the sleeper under the lock the
//! wake takes). A sleeper killed while waiting leaves its flag set; the next publish
//! clears it (one needless wake-up, not one per publish).
//!
//! Closing (the writer's drop) sets the closed bit (Release) and wakes everyone:
//! sleepers return at once instead of waiting for records that will never come, and a
//! reader that sees the bit (Acquire, step a) sees every record published before it.
//!
//! `docs/memory-model.md` has the same table and the choice of the futex mode.

use std::io;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::sync::{fence, AtomicU32, Ordering};

/// Header offset of the wake word (the waiter flag follows at +4).
pub(crate) const OFF_WAKE: usize = 136;

/// Bit 0 of the wake word: no writer has the journal open.
const CLOSED: u32 = 1;

/// The safety timeout when none is configured: a sleeper re-checks at least this
/// often even if a wake-up were lost. A net, never the mechanism.
pub(crate) const DEFAULT_SAFETY_TIMEOUT: Duration = Duration::from_millis(100);

/// The longest sleep of a reader that cannot use the wake words and polls.
const MAX_POLL_SLEEP: Duration = Duration::from_millis(1);

/// The two words, as laid out at [`OFF_WAKE`].
#[repr(C)]
pub(crate) struct Words {
    wake: AtomicU32,
    flag: AtomicU32,
    #[cfg(roda_loom)]
    futex: crate::file::futex::Futex,
}

impl Words {
    fn new() -> Self {
        Words {
            wake: AtomicU32::new(0),
            flag: AtomicU32::new(0),
            #[cfg(roda_loom)]
            futex: crate::file::futex::Futex::new(),
        }
    }
}

/// What keeps a [`Waker`]'s words alive.
enum Owner {
    /// The words live in the store's own region, which outlives the waker.
    Region,
    /// The words are the waker's own (in-memory segmented journals, and loom).
    Boxed(#[allow(dead_code)] Box<Words>),
    /// A writable mapping of the header page of a file the store maps read-only.
    #[cfg(not(roda_loom))]
    Header(#[allow(dead_code)] memmap2::MmapRaw),
}

/// One journal's wake words and the futex mode to use on them.
pub(crate) struct Waker {
    words: NonNull<Words>,
    /// Shared futex (file mappings) or private (anonymous memory).
    shared: bool,
    safety: Duration,
    _owner: Owner,
}

// SAFETY: the words are atomics that live as long as the waker (see `Owner`).
unsafe impl Send for Waker {}
// SAFETY: as above; every access is atomic.
unsafe impl Sync for Waker {}

impl Waker {
    /// Words of the waker's own, for in-process use (private futex).
    pub(crate) fn owned(safety: Duration) -> Self {
        let mut boxed = Box::new(Words::new());
        let words = NonNull::from(boxed.as_mut());
        Waker {
            words,
            shared: false,
            safety,
            _owner: Owner::Boxed(boxed),
        }
    }

    /// The words at [`OFF_WAKE`] of a writable header starting at `header`.
    ///
    /// # Safety
    /// `header` is the start of a page-aligned, writable region of at least one page
    /// that outlives the waker and whose bytes 136..144 are only accessed atomically.
    #[cfg(not(roda_loom))]
    pub(crate) unsafe fn in_header(header: NonNull<u8>, shared: bool, safety: Duration) -> Self {
        // SAFETY: inside the first page (caller); 8-aligned since the page is aligned.
        let words = unsafe { header.add(OFF_WAKE) }.cast::<Words>();
        Waker {
            words,
            shared,
            safety,
            _owner: Owner::Region,
        }
    }

    /// The words of the file at `path`, whose header this process maps read-only:
    /// maps its header page again, writable and shared, so a reader can register.
    /// Fails (`PermissionDenied`) when the file cannot be opened for writing.
    #[cfg(not(roda_loom))]
    pub(crate) fn map_header(path: &std::path::Path, safety: Duration) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let map = memmap2::MmapOptions::new().len(4096).map_raw(&file)?;
        let header = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: a fresh 4096-byte shared writable mapping of the header page, kept
        // alive by the waker (`Owner::Header`); the words are only used atomically.
        let mut waker = unsafe { Self::in_header(header, true, safety) };
        waker._owner = Owner::Header(map);
        Ok(waker)
    }

    #[inline]
    fn words(&self) -> &Words {
        // SAFETY: valid for the waker's life (see `Owner`).
        unsafe { self.words.as_ref() }
    }

    /// The writer's side, right after its Release store of the published count:
    /// wakes the sleepers if there are any. A full fence and a load otherwise.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence pairs with the sleeper's SeqCst fence in `prepare` (step c): one
        // of the two sees the other side's store (module docs).
        if !skip_wake_fence() {
            fence(Ordering::SeqCst);
        }
        // Relaxed: ordered by the fence above.
        if self.words().flag.load(Ordering::Relaxed) != 0 {
            self.wake_all();
        }
    }

    /// Clears the waiter flag and wakes every sleeper (steps 4 to 6).
    #[cold]
    #[inline(never)]
    pub(crate) fn wake_all(&self) {
        let words = self.words();
        // Acquire pairs with the sleepers' Release swaps in `prepare`: their loads of
        // the wake word happen-before the increment below.
        words.flag.swap(0, Ordering::Acquire);
        // Release: a sleeper that sees the new value (its FUTEX_WAIT fails at once) has
        // nothing to read through it, but keeps the increments in one order.
        words.wake.fetch_add(2, Ordering::Release);
        self.futex_wake();
    }

    /// The writer is gone: sleepers must not wait for it. Wakes every sleeper.
    pub(crate) fn close(&self) {
        // A loom model that failed unwinds through the writer's drop outside of the
        // model's execution, where loom atomics cannot be touched.
        #[cfg(roda_loom)]
        if std::thread::panicking() {
            return;
        }
        // Release: pairs with `prepare`'s load that sees the bit.
        self.words().wake.fetch_or(CLOSED, Ordering::Release);
        self.wake_all();
    }

    /// Whether the writer has closed the journal (its closed bit is set).
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire pairs with the Release `fetch_or` in `close`, as in `prepare`.
        self.words().wake.load(Ordering::Acquire) & CLOSED != 0
    }

    /// A writer has the journal open (again).
    pub(crate) fn open(&self) {
        // Relaxed: only the writer changes the bit; readers just stop returning early.
        self.words().wake.fetch_and(!CLOSED, Ordering::Relaxed);
    }

    fn futex_wake(&self) {
        #[cfg(not(roda_loom))]
        let result = crate::file::futex::wake_all(&self.words().wake, self.shared);
        #[cfg(roda_loom)]
        let result = self.words().futex.wake_all();
        if let Err(e) = result {
            log::warn!("roda: FUTEX_WAKE failed ({e}); sleeping readers wake at their timeout");
        }
    }

    /// Registers a sleeper (steps a to c); `None` when the writer is closed. The caller
    /// then re-checks its condition and calls [`sleep`](Self::sleep) with the token.
    #[inline]
    pub(crate) fn prepare(&self) -> Option<u32> {
        let words = self.words();
        // Acquire pairs with the Release `fetch_or` in `close`: a reader that sees the
        // closed bit also sees every record published before the close. (Against the
        // wake-ups, the swap below orders this load before any waker's increment.)
        let epoch = words.wake.load(Ordering::Acquire);
        if epoch & CLOSED != 0 {
            return None;
        }
        // Release pairs with the waker's Acquire swap (step 4).
        words.flag.swap(1, Ordering::Release);
        // SeqCst pairs with the writer's fence in `notify` (step 2).
        fence(Ordering::SeqCst);
        Some(epoch)
    }

    /// Sleeps until woken, or until `timeout` (capped at the safety timeout) passes,
    /// or at once if a wake-up happened since [`prepare`](Self::prepare) gave `token`.
    pub(crate) fn sleep(&self, token: u32, timeout: Duration) {
        let timeout = timeout.min(self.safety);
        #[cfg(not(roda_loom))]
        let result = crate::file::futex::wait(&self.words().wake, token, timeout, self.shared);
        #[cfg(roda_loom)]
        let result = self.words().futex.wait(&self.words().wake, token, timeout);
        if let Err(e) = result {
            log::warn!("roda: FUTEX_WAIT failed ({e}); polling instead");
            std::thread::sleep(timeout.min(MAX_POLL_SLEEP));
        }
    }
}

/// A reader's timed wait for the record at `cursor`: [`wait_until`] a record is
/// published there or `interrupted()` holds; whether a record is there. `known` is the
/// reader's cached published count, refreshed from `published()` only when the cursor
/// has reached it.
pub(crate) fn wait_for_record(
    waker: Option<&Waker>,
    timeout: Duration,
    cursor: u64,
    known: &mut u64,
    published: impl Fn() -> u64,
    mut interrupted: impl FnMut() -> bool,
) -> bool {
    let mut ready = || {
        if cursor < *known {
            return true;
        }
        *known = published();
        cursor < *known
    };
    wait_until(waker, timeout, || ready() || interrupted());
    ready()
}

/// Waits until `ready()` holds or `timeout` passes; whether it holds. Sleeps on
/// `waker` when there is one (woken by the writer's publish), else polls with sleeps of
/// at most 1 ms. Returns early, with `ready()`'s answer, when the writer closed.
pub(crate) fn wait_until(
    waker: Option<&Waker>,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> bool {
    if ready() {
        return true;
    }
    let deadline = Instant::now().checked_add(timeout);
    let mut poll = Duration::from_micros(20);
    loop {
        let remaining = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return ready(),
            },
            None => Duration::MAX,
        };
        match waker {
            Some(waker) => {
                let Some(token) = waker.prepare() else {
                    return ready();
                };
                if ready() {
                    return true;
                }
                waker.sleep(token, remaining);
            }
            None => {
                std::thread::sleep(poll.min(remaining));
                poll = (poll * 2).min(MAX_POLL_SLEEP);
            }
        }
        if ready() {
            return true;
        }
    }
}

/// Says once per process that a reader falls back to polling.
#[cfg(not(roda_loom))]
pub(crate) fn warn_polling(path: &std::path::Path, why: &io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::warn!(
            "roda: {} is mapped read-only ({why}), so this reader cannot register for \
             wake-ups and polls with sleeps of up to 1 ms; give it write access to the \
             file for microsecond wake-ups",
            path.display()
        );
    });
}

#[cfg(not(roda_loom))]
#[inline(always)]
fn skip_wake_fence() -> bool {
    false
}

#[cfg(roda_loom)]
fn skip_wake_fence() -> bool {
    crate::loom_hooks::skip_wake_fence()
}

/// The waker of a journal's `backing`, if its header says it has wake words: in the
/// region itself when this process maps it writable, else through a writable mapping
/// of the file's header page; `None` (the reader polls, and says so once) when the
/// file can only be read.
pub(crate) fn for_backing(
    backing: &crate::file::backing::Backing,
    safety: Duration,
) -> Option<Waker> {
    if !backing.info.wake {
        return None;
    }
    #[cfg(roda_loom)]
    {
        Some(Waker::owned(safety))
    }
    #[cfg(not(roda_loom))]
    {
        let shared = backing.path.is_some();
        if backing.region.writable() {
            // SAFETY: the region starts with the header page, is writable, page-aligned
            // and lives as long as the backing, which owns the core holding the waker;
            // bytes 136..144 are only accessed atomically (the wake words).
            return Some(unsafe { Waker::in_header(backing.region.base(), shared, safety) });
        }
        let path = backing.path.as_deref()?;
        match Waker::map_header(path, safety) {
            Ok(waker) => Some(waker),
            Err(e) => {
                warn_polling(path, &e);
                None
            }
        }
    }
}

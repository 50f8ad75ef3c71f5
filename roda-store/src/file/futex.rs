//! The kernel's futex, the one syscall behind wake-on-publish: a sleeper asks the
//! kernel to sleep while a 32-bit word still holds the value it saw
//! ([`wait`]); a waker changes the word and then wakes every sleeper on it
//! ([`wake_all`]). The kernel checks the word and queues the sleeper atomically with
//! respect to wakers, so a change made before `wake_all` is never missed.
//!
//! Private futexes (keyed by the address in this process) serve anonymous in-memory
//! journals; shared ones (keyed by the file and offset) serve file mappings, so a
//! sleeper and a waker in different processes, or with different mappings of the same
//! file, meet. Both sides must use the same mode: a private wait is never woken by a
//! shared wake of the same word, and the other way round.
//!
//! Under loom the futex is modelled by a mutex and a condition variable, without any
//! timeout, so a lost wake-up shows up as a deadlock.

use std::io;
use std::time::Duration;

#[cfg(not(roda_loom))]
pub(crate) use os::*;

#[cfg(not(roda_loom))]
mod os {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn op(base: libc::c_int, shared: bool) -> libc::c_int {
        if shared {
            base
        } else {
            base | libc::FUTEX_PRIVATE_FLAG
        }
    }

    /// Sleeps while `word` holds `expected`, for at most `timeout`. Returns normally
    /// when woken, when the word no longer held `expected` on entry, on a signal or
    /// when the time is up: callers re-check their condition (spurious returns happen).
    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        timeout: Duration,
        shared: bool,
    ) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; the
        // kernel only reads it. `ts` is a valid relative timeout on our stack. The
        // remaining arguments are unused by FUTEX_WAIT.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op(libc::FUTEX_WAIT, shared),
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == -1 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIMEDOUT) => Ok(()),
                _ => Err(err),
            };
        }
        Ok(())
    }

    /// Wakes every sleeper waiting on `word` (in the same mode); how many woke.
    pub(crate) fn wake_all(word: &AtomicU32, shared: bool) -> io::Result<usize> {
        // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only uses its
        // address as the key and reads no other argument but the count.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op(libc::FUTEX_WAKE, shared),
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }
}

/// The loom model of one futex word's wait queue.
#[cfg(roda_loom)]
pub(crate) struct Futex {
    lock: loom::sync::Mutex<()>,
    sleepers: loom::sync::Condvar,
}

#[cfg(roda_loom)]
impl Futex {
    pub(crate) fn new() -> Self {
        Futex {
            lock: loom::sync::Mutex::new(()),
            sleepers: loom::sync::Condvar::new(),
        }
    }

    /// Sleeps while `word` holds `expected`. No timeout: the model must be woken.
    pub(crate) fn wait(
        &self,
        word: &crate::sync::AtomicU32,
        expected: u32,
        _timeout: Duration,
    ) -> io::Result<()> {
        let guard = self.lock.lock().unwrap();
        // Relaxed: the lock orders this load after any waker's change that preceded
        // its `wake_all` (which takes the same lock), as the kernel's bucket lock does.
        if word.load(crate::sync::Ordering::Relaxed) == expected {
            drop(self.sleepers.wait(guard).unwrap());
        }
        Ok(())
    }

    /// Wakes every sleeper.
    pub(crate) fn wake_all(&self) -> io::Result<usize> {
        let guard = self.lock.lock().unwrap();
        self.sleepers.notify_all();
        drop(guard);
        Ok(0)
    }
}

#[cfg(all(test, not(roda_loom), not(miri)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// A word in a shared mapping of a file, as a file-backed journal's header holds it.
    fn file_word() -> (tempfile::NamedTempFile, memmap2::MmapRaw) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(4096).unwrap();
        let map = memmap2::MmapOptions::new()
            .len(4096)
            .map_raw(file.as_file())
            .unwrap();
        (file, map)
    }

    fn word(map: &memmap2::MmapRaw) -> &AtomicU32 {
        // SAFETY: the mapping is 4096 bytes, page-aligned and lives as long as the
        // borrow; the word is only accessed atomically.
        unsafe { &*map.as_mut_ptr().add(136).cast::<AtomicU32>() }
    }

    #[test]
    fn wait_returns_at_once_when_the_word_changed() {
        let w = AtomicU32::new(3);
        let start = Instant::now();
        wait(&w, 2, Duration::from_secs(10), false).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(2);
        let start = Instant::now();
        wait(&w, 2, Duration::from_millis(20), true).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    /// Wakes `word` in `wake_shared` mode until a sleeper in `wait_shared` mode is
    /// woken, or 1 s passes; then wakes it in its own mode (so it must have been
    /// asleep). Returns how many the first mode woke in total.
    fn woken_across_modes(wait_shared: bool, wake_shared: bool) -> usize {
        let (_file, map) = file_word();
        let map = Arc::new(map);
        let done = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (map, done) = (map.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    wait(word(&map), 0, Duration::from_secs(5), wait_shared).unwrap();
                }
            })
        };
        let mut woken = 0;
        let start = Instant::now();
        while woken == 0 && start.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(5));
            woken += wake_all(word(&map), wake_shared).unwrap();
        }
        done.store(true, Ordering::Release);
        // The sleeper is woken in its own mode (proving it was asleep all along).
        while !sleeper.is_finished() {
            wake_all(word(&map), wait_shared).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        sleeper.join().unwrap();
        woken
    }

    #[test]
    fn same_mode_wakes() {
        assert!(woken_across_modes(true, true) > 0);
        assert!(woken_across_modes(false, false) > 0);
    }

    /// Why both sides must agree: a shared wake never reaches a private sleeper on
    /// the same word of a file mapping, nor the other way round.
    #[test]
    fn mismatched_modes_lose_the_wake_up() {
        assert_eq!(woken_across_modes(false, true), 0);
        assert_eq!(woken_across_modes(true, false), 0);
    }
}

//! The single-writer guarantee across processes: an exclusive, non-blocking `flock`;
//! and the writer's liveness, which readers test without taking anything: an
//! open-file-description (OFD) write lock on the header bytes [`LIVE_RANGE`].

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::libc;

/// Header bytes 112..120 (reserved for the writer's identity): a live writer holds an
/// OFD write lock on them. Nothing is stored there; the lock is the signal.
pub(crate) const LIVE_RANGE: (i64, i64) = (112, 8);

/// An exclusive `flock` on a store file, held for as long as the writer lives.
///
/// The lock belongs to this open file description, so a second writer handle fails
/// even in the same process, and the kernel drops it when the process dies (SIGKILL
/// included): the next writer can always take over.
#[derive(Debug)]
pub(crate) struct WriterLock {
    flock: Flock<File>,
    /// Whether this writer holds the liveness lock ([`WriterLock::mark_live`]).
    live: bool,
}

/// Outcome of trying to take the lock.
pub(crate) enum LockAttempt {
    Taken(WriterLock),
    /// Another open handle holds it; the file is handed back.
    Held(File),
}

impl WriterLock {
    /// Tries to lock `file` exclusively without waiting.
    pub(crate) fn try_lock(file: File) -> io::Result<LockAttempt> {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(LockAttempt::Taken(WriterLock { flock, live: false })),
            Err((file, Errno::EWOULDBLOCK)) => Ok(LockAttempt::Held(file)),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &File {
        &self.flock
    }

    /// Takes the liveness lock: an OFD write lock on [`LIVE_RANGE`] of the file (opened
    /// for writing), which readers test with [`writer_holds`]. Like the `flock`, the
    /// kernel drops it with the process, whatever its pid means elsewhere (another pid
    /// namespace) or comes to mean later (a reused pid).
    pub(crate) fn mark_live(&mut self) -> io::Result<()> {
        ofd_lock(&self.flock, libc::F_WRLCK)?;
        self.live = true;
        Ok(())
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if self.live {
            // Explicitly: a mapping of the file keeps its open file description (and so
            // an OFD lock) alive after the descriptor closes, and the next writer must
            // be able to take the lock while this process's readers still map the file.
            let _ = ofd_lock(&self.flock, libc::F_UNLCK);
        }
    }
}

fn range(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = LIVE_RANGE.0;
    lock.l_len = LIVE_RANGE.1;
    lock
}

fn ofd_lock(file: &File, kind: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let lock = range(kind);
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&lock))
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Whether a writer holds the liveness lock of the store file open as `probe`, tested
/// without taking anything (`F_OFD_GETLK`). `probe` must be a separate open of the file
/// from the writer's own (the test never reports a description's own lock).
pub(crate) fn writer_holds(probe: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut lock = range(libc::F_WRLCK);
    nix::fcntl::fcntl(
        probe.as_raw_fd(),
        nix::fcntl::FcntlArg::F_OFD_GETLK(&mut lock),
    )
    .map_err(io::Error::from)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// How a reader tells whether its store's writer is still alive (slot readers waiting
/// on a slot left mid-write). The writer's pid is never consulted: it is for messages.
#[derive(Debug)]
pub(crate) enum WriterProbe {
    /// Anonymous memory: the writer is in this process, which never stops mid-set.
    InProcess,
    /// A separate read-only open of the store file, for [`writer_holds`].
    File(File),
    /// The file could not be opened again: no writer can be seen, none is waited for.
    Unavailable,
}

impl WriterProbe {
    /// The probe for a store at `path` (`None`: anonymous memory).
    pub(crate) fn new(path: Option<&std::path::Path>) -> WriterProbe {
        match path {
            None => WriterProbe::InProcess,
            Some(path) => match File::open(path) {
                Ok(file) => WriterProbe::File(file),
                Err(e) => {
                    log::warn!(
                        "roda: cannot open {} to watch its writer ({e}); a slot left \
                         mid-write will read as torn",
                        path.display()
                    );
                    WriterProbe::Unavailable
                }
            },
        }
    }

    /// Whether a writer holds the store now. An error of the test counts as no writer:
    /// a reader then reports a torn slot rather than waiting forever.
    pub(crate) fn writer_alive(&self) -> bool {
        match self {
            WriterProbe::InProcess => true,
            WriterProbe::File(file) => writer_holds(file).unwrap_or(false),
            WriterProbe::Unavailable => false,
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn liveness_lock_is_seen_from_another_open_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("roda-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let probe = File::open(&path).unwrap();
        let LockAttempt::Taken(mut lock) = WriterLock::try_lock(file).unwrap() else {
            panic!("fresh file locked")
        };
        assert!(!writer_holds(&probe).unwrap(), "no liveness lock yet");
        lock.mark_live().unwrap();
        assert!(writer_holds(&probe).unwrap());
        // A mapping-like extra reference to the description must not keep it.
        let dup = lock.file().try_clone().unwrap();
        drop(lock);
        assert!(!writer_holds(&probe).unwrap(), "released on drop");
        drop(dup);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

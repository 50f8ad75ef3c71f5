//! The single-writer guarantee across processes: an exclusive, non-blocking `flock`.

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive `flock` on a store file, held for as long as the writer lives.
///
/// The lock belongs to this open file description, so a second writer handle fails
/// even in the same process, and the kernel drops it when the process dies (SIGKILL
/// included): the next writer can always take over.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _flock: Flock<File>,
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
            Ok(flock) => Ok(LockAttempt::Taken(WriterLock { _flock: flock })),
            Err((file, Errno::EWOULDBLOCK)) => Ok(LockAttempt::Held(file)),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &File {
        &self._flock
    }
}

//! Open-file-description locks (`fcntl(F_OFD_*)`) on byte ranges of a
//! descriptor: the kernel's part of liveness. `lease.rs` builds leases on
//! them and `platform/segment/` takes each mapping's shared lock with them; what
//! the locks mean is stated in `lease.rs`.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

fn request(kind: libc::c_int, offset: u64, len: u64) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value (l_pid
    // must be 0 for OFD requests).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = offset as libc::off_t;
    lock.l_len = len as libc::off_t;
    lock
}

/// Take an exclusive lock on byte `offset` without waiting: `Ok(false)` if
/// another description holds a lock on it.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, offset: u64) -> nix::Result<bool> {
    let lock = request(libc::F_WRLCK, offset, 1);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Release this description's lock on byte `offset`.
pub(crate) fn unlock(fd: BorrowedFd<'_>, offset: u64) {
    let unlock = request(libc::F_UNLCK, offset, 1);
    let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&unlock));
}

/// Whether any open file description other than `fd`'s holds a lock on
/// `offset..offset + len` (`len` 0: to the end of any file).
pub(crate) fn probe(fd: BorrowedFd<'_>, offset: u64, len: u64) -> bool {
    let mut lock = request(libc::F_WRLCK, offset, len);
    match fcntl(fd, FcntlArg::F_OFD_GETLK(&mut lock)) {
        Ok(_) => lock.l_type != libc::F_UNLCK as libc::c_short,
        // Never judge a holder dead on an error: say it lives.
        Err(_) => true,
    }
}

/// Take a shared lock on byte `offset` (many descriptions may share it).
pub(crate) fn share(fd: BorrowedFd<'_>, offset: u64) -> nix::Result<()> {
    let lock = request(libc::F_RDLCK, offset, 1);
    fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)).map(drop)
}

/// Which `flock` to take: the lock that orders removals of a name against
/// openers checking it (see `platform/segment/`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum FlockKind {
    /// Openers checking that the name still names their file.
    Shared,
    /// A user or remover unlinking the name.
    Exclusive,
}

/// Take a `flock` of `kind` on `fd`'s description without waiting:
/// `Ok(false)` if another description holds a conflicting one.
pub(crate) fn try_flock(fd: BorrowedFd<'_>, kind: FlockKind) -> nix::Result<bool> {
    let op = match kind {
        FlockKind::Shared => libc::LOCK_SH,
        FlockKind::Exclusive => libc::LOCK_EX,
    };
    // SAFETY: flock takes a descriptor, which `fd` borrows open, and flags.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), op | libc::LOCK_NB) };
    match Errno::result(rc) {
        Ok(_) => Ok(true),
        Err(Errno::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Release `fd`'s description's `flock`.
pub(crate) fn funlock(fd: BorrowedFd<'_>) {
    // SAFETY: as in `try_flock`.
    let _ = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
}

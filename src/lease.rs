//! Liveness from the kernel: a lease is an open-file-description lock
//! (`fcntl(F_OFD_SETLK)`) on one byte of the segment file, taken by whoever
//! holds the header word at that byte's offset (a role word, a claim
//! record's owner, an attach entry, the repair lock).
//!
//! The kernel holds an OFD lock for exactly as long as the open file
//! description behind it lives, and drops it when the last descriptor
//! closes, which process exit does for a killed process. So:
//!
//! * **holder alive** means "its lease is held": true in any pid namespace
//!   (containers sharing /dev/shm see the same lock on the same inode),
//!   immune to pid reuse, and true while any thread of the holder runs
//!   (a process whose main thread exited still holds its descriptors);
//! * **holder dead** means "its word names it and its lease is free";
//! * **segment stale** means "no lock of any kind is held on the file":
//!   every mapping also holds a shared lock on byte 0 (see `segment.rs`),
//!   so a segment is in use however many processes map it.
//!
//! Each lease opens its own description of the file (through
//! `/proc/self/fd`), so two handles of one process exclude each other like
//! handles of two processes do, and the segment's own descriptor, which
//! takes no exclusive lock, can probe any of them with `F_OFD_GETLK`.
//!
//! Fork: a child inherits the descriptor and so shares the lock; the
//! parent's handles keep their role while either process keeps the
//! descriptor open. A lease remembers the process that took it and only
//! that process unlocks it on drop; in a child, dropping an inherited
//! handle closes the descriptor and changes nothing in shared memory.
//!
//! Under `cfg(shmring_loom)` there is no kernel: a lease always succeeds, exclusion
//! comes from the compare-exchange on the word itself, and a model kills a
//! holder by writing [`HolderId::dead_for_model`] into its word.

use crate::error::Result;
#[cfg(shmring_loom)]
use crate::process::HolderId;
use crate::segment::Segment;
use crate::sync::AtomicU64;

pub(crate) use imp::Lease;

/// Whether the holder of `word`, which holds `seen`, still runs.
#[inline]
pub(crate) fn holder_alive(seg: &Segment, word: &AtomicU64, seen: u64) -> bool {
    #[cfg(not(shmring_loom))]
    {
        let _ = seen;
        seg.is_leased(seg.offset_of(word), 1)
    }
    #[cfg(shmring_loom)]
    {
        let _ = (seg, word);
        HolderId::from_raw(seen).is_some_and(|id| id != HolderId::dead_for_model())
    }
}

impl Lease {
    /// With this lease taken, may the word that held `seen` be replaced?
    /// For real: yes, whatever it holds (every live holder holds the lease,
    /// so its holder is gone). Under loom: only a free or dead word.
    pub(crate) fn supersedes(&self, seen: u64) -> bool {
        #[cfg(not(shmring_loom))]
        {
            let _ = seen;
            true
        }
        #[cfg(shmring_loom)]
        {
            HolderId::from_raw(seen).is_none_or(|id| id == HolderId::dead_for_model())
        }
    }
}

#[cfg(not(shmring_loom))]
mod imp {
    use std::os::fd::{AsFd, OwnedFd};

    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg};

    use super::Result;
    use crate::segment::Segment;
    use crate::sync::AtomicU64;

    /// An exclusive lock on one byte of the segment file, on a description
    /// of its own. Dropping it unlocks (in the process that took it).
    pub(crate) struct Lease {
        fd: OwnedFd,
        offset: u64,
        origin: u32,
    }

    fn request(kind: libc::c_short, offset: u64, len: u64) -> libc::flock {
        // SAFETY: `flock` is plain old data; all-zero is a valid value
        // (l_pid must be 0 for OFD requests).
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = kind;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = offset as libc::off_t;
        lock.l_len = len as libc::off_t;
        lock
    }

    impl Lease {
        /// Lock the byte at `word`'s offset, or `None` if another open
        /// file description holds it: its holder lives.
        pub(crate) fn try_take(seg: &Segment, word: &AtomicU64) -> Result<Option<Lease>> {
            let offset = seg.offset_of(word);
            let fd = seg.reopen()?;
            let lock = request(libc::F_WRLCK as libc::c_short, offset, 1);
            match fcntl(fd.as_fd(), FcntlArg::F_OFD_SETLK(&lock)) {
                Ok(_) => Ok(Some(Lease {
                    fd,
                    offset,
                    origin: std::process::id(),
                })),
                Err(Errno::EAGAIN | Errno::EACCES) => Ok(None),
                Err(e) => Err(seg.os_error("fcntl(F_OFD_SETLK)", e)),
            }
        }

        /// Whether this process took the lease (not a child that inherited
        /// it across fork).
        pub(crate) fn is_ours(&self) -> bool {
            self.origin == std::process::id()
        }
    }

    impl Drop for Lease {
        fn drop(&mut self) {
            if self.is_ours() {
                let unlock = request(libc::F_UNLCK as libc::c_short, self.offset, 1);
                let _ = fcntl(self.fd.as_fd(), FcntlArg::F_OFD_SETLK(&unlock));
            }
            // The descriptor closes here; in a forked child the parent's
            // copy keeps the lock.
        }
    }

    /// Whether any open file description other than `fd`'s holds a lock
    /// on `offset..offset + len` (`len` 0: to the end of any file).
    pub(crate) fn probe(fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: u64) -> bool {
        let mut lock = request(libc::F_WRLCK as libc::c_short, offset, len);
        match fcntl(fd, FcntlArg::F_OFD_GETLK(&mut lock)) {
            Ok(_) => lock.l_type != libc::F_UNLCK as libc::c_short,
            // Never judge a holder dead on an error: say it lives.
            Err(_) => true,
        }
    }

    /// Take a shared lock on `offset..offset + 1` through `fd`: "this
    /// description maps the segment". Shared locks never conflict, so any
    /// number of mappings hold one.
    pub(crate) fn share(fd: std::os::fd::BorrowedFd<'_>, offset: u64) -> nix::Result<()> {
        let lock = request(libc::F_RDLCK as libc::c_short, offset, 1);
        fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)).map(drop)
    }
}

#[cfg(shmring_loom)]
mod imp {
    use super::Result;
    use crate::segment::Segment;
    use crate::sync::AtomicU64;

    /// The model's lease: always granted; see the module docs.
    pub(crate) struct Lease;

    impl Lease {
        pub(crate) fn try_take(_: &Segment, _: &AtomicU64) -> Result<Option<Lease>> {
            Ok(Some(Lease))
        }

        pub(crate) fn is_ours(&self) -> bool {
            true
        }
    }
}

#[cfg(not(shmring_loom))]
pub(crate) use imp::{probe, share};

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
//!   every mapping also holds a shared lock on byte 0 (see `platform/segment/`),
//!   so a segment is in use however many processes map it.
//!
//! Each lease opens its own description of the file (through
//! `/proc/self/fd`), so two handles of one process exclude each other like
//! handles of two processes do, and the segment's own descriptor, which
//! takes no exclusive lock, can probe any of them with `F_OFD_GETLK`.
//!
//! Fork (see `fork.rs`): a child does not inherit a lease. Its copy of
//! the descriptor is pointed elsewhere at the fork, so the parent's lock
//! lives exactly as long as the parent, whatever its children do, and the
//! child's inherited handles hold nothing: dropping one unlocks nothing
//! (a lease remembers the process that took it) and changes nothing in
//! shared memory.
//!
//! Under `cfg(shmring_loom)` there is no kernel: a lease always succeeds, exclusion
//! comes from the compare-exchange on the word itself, and a model kills a
//! holder by writing [`HolderId::dead_for_model`] into its word.

use crate::error::Result;
#[cfg(shmring_loom)]
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::AtomicU64;

pub(crate) use imp::Lease;

/// The holder of `word` is gone for good, though it did not clear the
/// word (a handle dropped holding positions, or a model's killed thread).
/// For real, dropping its lease is what says so, and this does nothing;
/// the model has no kernel, so the word says it (Release: as a process's
/// death follows everything it did).
#[inline]
pub(crate) fn mark_dead(word: &AtomicU64) {
    #[cfg(shmring_loom)]
    word.store(
        HolderId::dead_for_model().raw(),
        crate::platform::sync::Ordering::Release,
    );
    #[cfg(not(shmring_loom))]
    let _ = word;
}

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
    use std::os::fd::AsFd;

    use super::Result;
    use crate::platform::fork::{KeptFd, Origin};
    use crate::platform::ofd;
    use crate::platform::segment::Segment;
    use crate::platform::sync::AtomicU64;

    /// An exclusive lock on one byte of the segment file, on a description
    /// of its own. Dropping it unlocks (in the process that took it).
    pub(crate) struct Lease {
        fd: KeptFd,
        offset: u64,
        origin: Origin,
    }

    impl Lease {
        /// Lock the byte at `word`'s offset, or `None` if another open
        /// file description holds it: its holder lives.
        pub(crate) fn try_take(seg: &Segment, word: &AtomicU64) -> Result<Option<Lease>> {
            let offset = seg.offset_of(word);
            let fd = seg.reopen()?;
            match ofd::try_lock(fd.as_fd(), offset) {
                Ok(true) => Ok(Some(Lease {
                    fd,
                    offset,
                    origin: Origin::here(),
                })),
                Ok(false) => Ok(None),
                Err(e) => Err(seg.os_error("fcntl(F_OFD_SETLK)", e)),
            }
        }

        /// Whether this process took the lease (not a child that inherited
        /// it across fork).
        pub(crate) fn is_ours(&self) -> bool {
            self.origin.is_here()
        }
    }

    impl Drop for Lease {
        fn drop(&mut self) {
            if self.is_ours() {
                ofd::unlock(self.fd.as_fd(), self.offset);
            }
            // The descriptor closes here; in a forked child it no longer
            // refers to the parent's description (`fork.rs`).
        }
    }
}

#[cfg(shmring_loom)]
mod imp {
    use super::Result;
    use crate::platform::segment::Segment;
    use crate::platform::sync::AtomicU64;

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

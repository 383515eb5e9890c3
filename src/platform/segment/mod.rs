//! The platform layer: a named POSIX shared-memory segment, mapped.
//!
//! Everything that talks to the kernel about segments lives here:
//!
//! * create: an unnamed `O_TMPFILE` in the shm directory with an explicit
//!   mode, `posix_fallocate` so that a full /dev/shm is an error now rather
//!   than a SIGBUS on first touch, and, once the ring above has written its
//!   header, `linkat` under the name, which fails on an existing name as
//!   `O_EXCL` does (where the directory has no `O_TMPFILE`, `shm_open` with
//!   `O_EXCL` names the segment at once);
//! * open: `shm_open` with `O_NOFOLLOW`, `fstat` checks, and, once the
//!   ring above has validated what it mapped, joining: the shared lease on
//!   byte 0 that says "in use" (`lease.rs`), taken before the name is
//!   checked under a shared `flock` against a concurrent removal;
//! * look (for inspection and removal by name): [`Look`] opens a name as
//!   a path only, checks with `fstat` that it is a regular file (of an
//!   owner the caller accepts), and reads it with `pread`, a header into
//!   a copy of its own (`Look::snapshot`), never through a mapping that
//!   its owner could shrink into a SIGBUS; it takes no lock;
//! * the descriptor each mapping keeps, through which it probes others'
//!   leases; it and the mapping are kept through `fork.rs`, so a forked
//!   child lets go of both and never acts for this process;
//! * leaving: the name belongs to the segment's users together, and the
//!   last to leave removes it (see [`Segment::leave`]);
//! * zeroing a file from an offset to its end without mapping it
//!   (punching a hole, or writing zeros where that is not supported), for
//!   the ring asked to zero its data after use: done by the last user
//!   leaving, or by a removal of a segment nobody uses, before the name
//!   goes.
//!
//! # Who removes a name
//!
//! Not its creator: a service restarted after a crash must find its ring
//! under the same name, whoever created it. A user leaving (a ring's last
//! handle in a process dropped, in the process that opened it) first
//! drops its own lease on byte 0, then takes the exclusive `flock` and
//! unlinks the name if it still names this file and no lock of any kind is
//! held on it: nobody else maps it. Two users leaving at once both drop
//! their leases before either takes the `flock`, so the second to take it
//! sees neither and unlinks; a joining opener took its lease before its
//! shared `flock` (see [`Segment::join`]), so it is either seen or finds
//! the name gone and starts over. An opener becomes a user only after its
//! checks pass: one that fails them never held the lease, so no leaving
//! user kept the name for it, and it removes nothing. A user that dies
//! leaves without this: if every user dies, the name stays, stale (see
//! `inspect`), so that restarted services resume the ring;
//! `replace_stale` or `shmring rm --stale` remove it. A segment the ring
//! marked persistent is left for good, and only [`remove`] removes it.
//!
//! Every `flock` is tried without blocking and retried until a bound: the
//! caller's (an open's `init_timeout`, the rest of an `open_timeout`), 2 s
//! for a removal by name, 50 ms for a leaving user (a destructor; past it
//! the name stays behind, stale). Honest holders keep it for a few
//! system calls; only a process that takes it for its own reasons (any
//! user who can open the file can) holds it longer.
//!
//! The rings above see only a base pointer, a length and liveness probes.
//!
//! Under `cfg(shmring_loom)` a segment is a zeroed heap allocation with the same
//! interface, because loom's atomics can only live in memory it manages.

/// Whose files an open accepts: by default only this process's effective
/// uid's, because anyone can squat a name in /dev/shm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// Files of this process's effective uid.
    Ours,
    /// Files of ours, of these uids, or whose group is one of these gids.
    Trusted { uids: &'a [u32], gids: &'a [u32] },
    /// Files of any owner.
    Anyone,
}

impl Owner<'_> {
    /// Whether a file of owner `uid` and group `gid` is accepted, by a
    /// process of effective uid `ours`. (Model segments have no owner.)
    #[cfg_attr(shmring_loom, allow(dead_code))]
    pub(crate) fn accepts(self, uid: u32, gid: u32, ours: u32) -> bool {
        match self {
            Owner::Ours => uid == ours,
            Owner::Trusted { uids, gids } => {
                uid == ours || uids.contains(&uid) || gids.contains(&gid)
            }
            Owner::Anyone => true,
        }
    }
}

/// What a removal by name decided about the segment it looked at
/// ([`Segment::unlink_if`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Leave it.
    Keep,
    /// Unlink the name, zeroing the file from `zero_from` on first when
    /// it is given (and nobody uses the file: a user in it zeroes it as
    /// the last one leaves).
    Remove { zero_from: Option<u64> },
}

/// Where POSIX shared-memory names live on Linux.
#[cfg(not(shmring_loom))]
pub(crate) const SHM_DIR: &str = "/dev/shm";

#[cfg(not(shmring_loom))]
mod os;
#[cfg(not(shmring_loom))]
use os as imp;

#[cfg(shmring_loom)]
mod model;
#[cfg(shmring_loom)]
use model as imp;

pub(crate) use imp::{Look, Segment};

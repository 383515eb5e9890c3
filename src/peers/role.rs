//! Exclusive roles (the one producer, the one consumer) claimed in shared
//! memory, recoverable when their holder dies.
//!
//! A role is held by holding the lease on its claim word (`lease.rs`): the
//! kernel lets one open file description at a time hold it and drops it
//! when its holder dies, in whatever pid namespace, so a live holder is
//! never replaced and a dead one always is. The word itself holds the
//! holder's [`HolderId`] (its pid, for operators), or 0 when free.
//!
//! Claiming: take the lease, then swap our id into the word with Acquire;
//! releasing: compare-exchange our id back to 0 with Release, then let the
//! lease go. The pair orders everything the last holder stored (its index)
//! before everything the next one reads. A holder that died stored nothing
//! after its last index store, and the kernel released its lease only after
//! it died.

use crate::error::{Error, Result};

use crate::kind::Role;
use crate::platform::lease::Lease;
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::{AtomicU64, Ordering};

/// Attempts before giving up on a word that keeps changing under us (only a
/// hostile peer does that; honest claimants settle in one or two).
const MAX_ATTEMPTS: usize = 64;

/// A held role: its lease and the id written in its word.
pub(crate) struct RoleClaim {
    id: HolderId,
    lease: Lease,
    /// The holder whose word this claim replaced: it had died (or dropped
    /// its handle without clearing the word) and its lease was free.
    replaced: Option<HolderId>,
}

impl RoleClaim {
    /// The dead holder this claim took the role from, if any.
    pub(crate) fn replaced(&self) -> Option<HolderId> {
        self.replaced
    }
}

/// Take `role` through `word` for this handle, or fail with `RoleTaken` if
/// a live handle (in this process or another) holds it. A holder that no
/// longer runs is replaced.
pub(crate) fn claim(seg: &Segment, word: &AtomicU64, role: Role) -> Result<RoleClaim> {
    let taken = || Error::RoleTaken {
        name: seg.name().as_str().to_owned(),
        role,
        pid: HolderId::from_raw(word.load(Ordering::Relaxed)).map_or(0, HolderId::pid),
    };
    let lease = Lease::try_take(seg, word)?.ok_or_else(taken)?;
    let id = HolderId::fresh();
    let mut expected = 0;
    for _ in 0..MAX_ATTEMPTS {
        match word.compare_exchange(expected, id.raw(), Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                return Ok(RoleClaim {
                    id,
                    lease,
                    replaced: HolderId::from_raw(expected),
                })
            }
            // Free again, or its holder is gone (we hold the lease): replace
            // exactly the value we saw, so two claimants cannot both win.
            Err(seen) if lease.supersedes(seen) => expected = seen,
            Err(_) => return Err(taken()),
        }
    }
    Err(Error::Corrupt {
        name: seg.name().as_str().to_owned(),
        what: format!("the {role} claim word keeps changing"),
    })
}

/// Let go of a role: clear the word if it still names us (a hostile peer
/// may have rewritten it), then the lease. In a forked child that inherited
/// the handle, nothing is touched: the role is the parent's.
pub(crate) fn release(word: &AtomicU64, claim: RoleClaim) {
    if claim.lease.is_ours() {
        // Release publishes our last index store to the next claimant
        // (whose claim is Acquire).
        let _ = word.compare_exchange(claim.id.raw(), 0, Ordering::Release, Ordering::Relaxed);
    }
    drop(claim.lease);
}

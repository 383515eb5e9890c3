//! Exclusive roles (the one producer, the one consumer) claimed in shared
//! memory, recoverable when their holder dies.
//!
//! A claim word holds the holder's packed [`ProcessId`], or 0 when free.
//! Claiming is a compare-exchange from 0, or from a dead holder's id, which
//! is how a restarted process takes over after a crash. The release store
//! pairs with the claim's Acquire so that the next holder sees every index
//! its predecessor stored before letting go.

use crate::error::{Error, Result, Role};
use crate::process::ProcessId;
use crate::sync::{AtomicU64, Ordering};

/// Attempts before giving up on a word that keeps changing under us (only a
/// hostile peer does that; honest claimants settle in one or two).
const MAX_ATTEMPTS: usize = 64;

/// Take `role` through `word` for this process, or fail with `RoleTaken` if
/// a live process holds it. A holder that no longer runs is replaced.
pub(crate) fn claim(word: &AtomicU64, role: Role) -> Result<ProcessId> {
    let me = ProcessId::current();
    let mut expected = 0;
    for _ in 0..MAX_ATTEMPTS {
        match word.compare_exchange(expected, me.raw(), Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(me),
            Err(seen) => match ProcessId::from_raw(seen) {
                Some(holder) if holder.is_alive() => {
                    return Err(Error::RoleTaken {
                        role,
                        pid: holder.pid(),
                    })
                }
                // Free again, dead, or garbage with no pid in it: replace
                // exactly the value we saw, so two claimants cannot both win.
                _ => expected = seen,
            },
        }
    }
    Err(Error::Corrupt(format!(
        "the {role} claim word keeps changing"
    )))
}

/// Let go of a role claimed by `me`. Only our own claim is cleared: a
/// process that wrongly took us for dead may have replaced it.
pub(crate) fn release(word: &AtomicU64, me: ProcessId) {
    // Release publishes our last index store to the next claimant (whose
    // claim is Acquire). Under loom the ordering mutation check cannot catch
    // weakening this: every path that moves an index ends in `wait::notify`,
    // whose model fence is a full SeqCst fence and acts as a release fence.
    // In production that fence is only a compiler fence (`barrier.rs`), so
    // this Release is what orders the hand-over.
    let _ = word.compare_exchange(me.raw(), 0, Ordering::Release, Ordering::Relaxed);
}

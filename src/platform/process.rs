//! Who holds a header word: a [`HolderId`] packs the holder's pid (for
//! operators: `shmring ls` shows it) with a tag that makes every id this
//! library hands out unique, so that a compare-exchange on a word never
//! mistakes one holder for another.
//!
//! An id says nothing about whether its holder lives: pids are local to a
//! pid namespace and are reused, and a process whose main thread exited
//! still runs. Liveness comes from the kernel, through leases (`lease.rs`).
//! The pid is the holder's pid in its own namespace; seen from another
//! namespace it is only a label.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// A packed (pid, tag) pair; never 0, so 0 can mean "nobody".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HolderId(u64);

impl HolderId {
    pub(crate) fn from_raw(raw: u64) -> Option<Self> {
        (raw != 0).then_some(HolderId(raw))
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    /// The holder's pid, in its own pid namespace (0 when unknown).
    pub(crate) fn pid(self) -> u32 {
        (self.0 & PID_MASK) as u32
    }

    /// A new id for a handle of this process, unlike any other this
    /// library hands out: a per-process random seed plus a counter. A
    /// forked child draws its own seed (`fork.rs` forgets the parent's in
    /// the child), so parent and child never hand out the same id, even
    /// where their pids are equal (each pid 1 of its own namespace).
    pub(crate) fn fresh() -> Self {
        // Not loom atomics: sources of unique numbers, outside the model.
        static COUNTER: StdAtomicU64 = StdAtomicU64::new(1);
        let pid = std::process::id();
        let mut seed = SEED.load(StdOrdering::Relaxed);
        if seed == 0 {
            let drawn = random_seed() | 1;
            seed = match SEED.compare_exchange(0, drawn, StdOrdering::Relaxed, StdOrdering::Relaxed)
            {
                Ok(_) => drawn,
                Err(theirs) => theirs,
            };
        }
        let n = COUNTER.fetch_add(1, StdOrdering::Relaxed);
        let tag = seed.wrapping_add(n) << PID_BITS;
        // A pid of 0 keeps the id non-zero only through its tag; never 0.
        HolderId(tag | (u64::from(pid) & PID_MASK) | u64::from(pid == 0))
    }

    /// The id a loom model writes into a word whose holder it lets die.
    #[cfg(shmring_loom)]
    pub(crate) fn dead_for_model() -> Self {
        HolderId(PID_MASK)
    }
}

/// This process's seed for [`HolderId::fresh`]; 0 until drawn.
static SEED: StdAtomicU64 = StdAtomicU64::new(0);

/// Forget the seed, so that this process draws its own: called by the
/// fork child handler (an atomic store, async-signal-safe).
#[cfg_attr(shmring_loom, allow(dead_code))]
pub(crate) fn forget_seed() {
    SEED.store(0, StdOrdering::Relaxed);
}

fn random_seed() -> u64 {
    // std's hash keys are drawn from the OS's random source.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_unique_non_zero_and_carry_our_pid() {
        let a = HolderId::fresh();
        let b = HolderId::fresh();
        assert_ne!(a, b);
        assert_eq!(a.pid(), std::process::id());
        assert_eq!(HolderId::from_raw(a.raw()), Some(a));
        assert_eq!(HolderId::from_raw(0), None);
    }
}

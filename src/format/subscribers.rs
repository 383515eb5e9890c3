//! A broadcast ring's subscriber table: one entry per subscriber, each on
//! a 128-byte line of its own (only its subscriber and, rarely, the
//! producer write it), between the header and the slots. The protocol
//! that reads and writes it is `rings/broadcast`'s.

use crossbeam_utils::CachePadded;

use crate::platform::sync::{AtomicU64, MODEL};

/// Entries in the table. A model needs only a few.
pub(crate) const SUBSCRIBERS: usize = if MODEL {
    3
} else {
    crate::format::layout::SUBSCRIBER_ENTRIES as usize
};

/// `policy`: the producer waits for this subscriber (gating).
pub(crate) const LOSSLESS: u64 = 1;
/// `policy`: the producer never waits for it; it counts what it missed.
pub(crate) const LOSSY: u64 = 2;
/// `policy`: lossless until the producer, held up by it past its bound,
/// made it lossy.
pub(crate) const DEMOTED: u64 = 3;

/// The policy state in a `policy` word.
pub(crate) const fn state(word: u64) -> u64 {
    word & 0xff
}

/// The same stay of the same holder, in another state.
pub(crate) const fn restate(word: u64, state: u64) -> u64 {
    (word & !0xff) | state
}

/// The word of the next join of an entry whose word is `word`.
pub(crate) const fn next_join(word: u64, state: u64) -> u64 {
    ((word >> 8).wrapping_add(1) << 8) | state
}

/// One subscriber's entry.
#[repr(C)]
pub(crate) struct SubscriberEntry {
    /// The holder's id (a role word: its holder holds the lease on it),
    /// or 0.
    pub(crate) owner: AtomicU64,
    /// 1 if the entry belongs to a named subscriber, whose `identity`
    /// takes it again after a restart; 0 for an anonymous one.
    pub(crate) named: AtomicU64,
    /// The application's name for the subscriber.
    pub(crate) identity: AtomicU64,
    /// The next position it reads: every value before it is released.
    pub(crate) position: AtomicU64,
    /// In its low byte [`LOSSLESS`], [`LOSSY`], [`DEMOTED`], or 0 while it
    /// joins or after it left ([`state`]); above it, how many times the
    /// entry was joined, so that a word the producer read names one
    /// holder's stay and its compare-exchange cannot demote the next
    /// holder ([`next_join`]).
    pub(crate) policy: AtomicU64,
    /// How long (ms) a lossless subscriber may hold the producer up
    /// before it is made lossy; `u64::MAX`: for ever.
    pub(crate) stall_ms: AtomicU64,
    /// Values it missed: overwritten before it read them.
    pub(crate) missed: AtomicU64,
    /// Times the producer made it lossy.
    pub(crate) demotions: AtomicU64,
    /// How many values a lossless subscriber may fall behind the
    /// producer before it is made lossy; 0: no bound but the ring's.
    pub(crate) max_lag: AtomicU64,
}

/// The table.
pub(crate) type SubscriberTable = [CachePadded<SubscriberEntry>; SUBSCRIBERS];

#[cfg(not(shmring_loom))]
static_assertions::const_assert_eq!(
    std::mem::size_of::<SubscriberTable>() as u64,
    crate::kind::RingKind::Broadcast.table_len()
);

impl SubscriberEntry {
    /// A free entry (what a zero-filled segment holds), for loom.
    #[cfg(shmring_loom)]
    pub(crate) fn new() -> Self {
        let z = || AtomicU64::new(0);
        SubscriberEntry {
            owner: z(),
            named: z(),
            identity: z(),
            position: z(),
            policy: z(),
            stall_ms: z(),
            missed: z(),
            demotions: z(),
            max_lag: z(),
        }
    }
}

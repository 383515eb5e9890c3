//! One producer, many subscribers: every subscriber reads every value,
//! each at its own position and under its own policy.
//!
//! # Algorithm
//!
//! The slots are stamped as in the other typed rings (`format/slot.rs`),
//! and a subscriber reads them as a seqlock: the producer writing
//! position `q` into slot `q & mask` first stamps it `busy(q)`, issues a
//! Release fence, writes the value and stamps it `full(q)` (Release). A
//! subscriber at position `p` loads the stamp (Acquire): `full(p)` means
//! the value is there; a stamp of an earlier position (or `busy(p)`)
//! means not yet; a stamp of a later one means the value of `p` was
//! overwritten. It copies the value, issues an Acquire fence and loads
//! the stamp again: unchanged, the copy is whole (a copy that saw any
//! byte of a newer write would see its busy stamp, by the fence pair);
//! changed, it was overwritten while copied and the copy is thrown away.
//! So no subscriber ever returns a torn value, whatever its policy.
//! In-place chunks spread both halves over several slots (`chunks.rs`).
//! A ring of a layout known at run time (`rings/runtime.rs`) runs the
//! same code, its value copied as bytes, volatile on both sides, where
//! these copy a `T` (`lifecycle/memory.rs`).
//!
//! Each subscriber owns an entry in the table between the header and the
//! slots (`format/subscribers.rs`): its holder id (a role word, whose
//! lease says it lives), its policy, and its position, stored (Release)
//! after it read everything before it. The producer waits for the
//! lossless ones only (gating): it may write `q` once every live
//! lossless subscriber's position is past `q - cap` (or past `q - lag`
//! for one with a lag bound of at most the capacity; it loads them with
//! Acquire, so their reads of the old value happen before its write).
//! It keeps the bound it last computed and scans the table again only
//! when it reaches it; the bound never exceeds the producer's own
//! position at the scan plus the capacity, so it scans at least once a
//! lap and sees subscribers that joined since.
//!
//! Joining is a store-buffering pair with that scan: a subscriber stores
//! its entry (position a lower bound of where it starts), issues a
//! SeqCst fence and loads the producer's `tail`; the producer stores
//! `tail` after each value and issues a SeqCst fence before it scans.
//! Either the scan sees the entry, or the subscriber's load sees the
//! `tail` the producer scanned at, and a subscriber starting at `tail`
//! starts at or after every position the producer may overwrite before
//! its next scan. One starting further back (the oldest value, or a
//! given position) may find some of those values overwritten before the
//! producer sees it: it counts them missed, like a lossy one. So from
//! the `tail` a joiner loaded on, a lossless subscriber that the producer
//! never makes lossy (no bounds) is never overwritten before it releases:
//! only it is lent values in place by reference (`chunks.rs`).
//!
//! A lossy subscriber, or any subscriber that finds `p` overwritten,
//! jumps to half a ring behind the producer (never backwards) and adds
//! every position it passed over to its `missed` count: what it read
//! plus what it missed is exactly how far it moved.
//!
//! # Dead and stuck subscribers
//!
//! When the bound stops the producer, it looks at the entries that hold
//! it back: one whose holder died (its lease is free) stops gating at
//! once; a live lossless one that held the producer at the same position
//! for longer than its `demote_after` bound, or that the next value would
//! put further behind than its lag bound, is made lossy (its policy set
//! to `DEMOTED`, counted in its entry and logged). The policy word also
//! counts the entry's joins, and the producer demotes with a
//! compare-exchange on the word it read, so a subscriber that left and
//! the next holder of its entry are never confused; a joiner stores its
//! bounds before its policy (Release), and the producer loads the policy
//! with Acquire, so it never pairs one holder's policy with another's
//! bounds. A subscriber that leaves clears its policy and keeps its
//! position, under its identity if it has one: a subscriber of that
//! identity resumes there, counting as missed what was overwritten
//! meanwhile.
//!
//! Blocking: the producer notifies the subscribers' event after each
//! value (a system call only when one sleeps), and a subscriber notifies
//! the producer's after each release; see `wait.rs`. A producer that
//! finds the ring full waits for a batch of room, as the SPSC one does,
//! in slices, so that it looks for dead and stuck subscribers while it
//! waits (and at once for one past its lag bound).
//!
//! Shared memory is untrusted: positions and stamps a peer writes can make
//! a subscriber count misses or the producer wait (to its timeout), never
//! read out of bounds or loop without bound. That values are not lost
//! needs cooperating peers.
//!
//! # Why values of one type, not byte messages
//!
//! The overrun check rests on each value having a stamp of its own that
//! every write of that slot changes first. Variable-length records do not
//! have that: a record written over an earlier lap's bytes may start in
//! the middle of an old record, whose stamp, before the overwritten
//! bytes, stays as it was, so a lossy reader copying the old record would
//! take torn bytes for whole. Byte messages to many readers need another
//! guard (the producer walking the earlier lap's records to mark each one
//! it overwrites, or publishing how far it is about to write, which every
//! lossy reader then loads after each copy), a message number in the
//! framing for exact missed counts, and a record boundary to resume at
//! after a lap: a kind of its own, sharing this one's table, gating and
//! policies.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::format::slot::{full_stamp, Slot};
use crate::format::subscribers::{next_join, SubscriberEntry, SubscriberTable, LOSSLESS, LOSSY};
use crate::kind::{RingKind, Role};
use crate::lifecycle::memory::RingMemory;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::lifecycle::{sealed::Kind, Ring};
use crate::peers::role;
use crate::platform::sync::{fence, Ordering, SeqValues};
use crate::wait::{self, WaitStrategy};

mod chunks; // in-place writes and reads of several values
mod producer; // the one producer: gating, dead and stuck subscribers
mod subscriber; // a subscriber: seqlock reads, misses, its entry

pub use chunks::{BroadcastReadChunk, BroadcastWriteChunk};
pub use producer::BroadcastProducer;
pub use subscriber::Subscriber;

/// A broadcast ring of `T` in a shared-memory segment: one producer, and
/// up to 64 subscribers (in any processes), each of which reads every
/// value at its own pace, under its own [`Policy`].
///
/// Its lifecycle (create, open, `open_or_create`, `open_timeout`,
/// presence, `persist`) is every ring's: see [`Ring`].
///
/// ```
/// use shmring::{Broadcast, Start, SubscriberOptions};
/// # let name = format!("shmring-doc-broadcast-{}", std::process::id());
/// let ring = Broadcast::<u64>::create(&name, 64)?;
/// let mut tx = ring.producer()?;
/// // Lossless: the producer waits for it. Lossy: it never does.
/// let mut audit = ring.subscriber()?;
/// let mut screen = ring.subscriber_with(&SubscriberOptions::lossy())?;
/// tx.try_push(7).unwrap();
/// assert_eq!(audit.try_pop(), Some(7));
/// assert_eq!(screen.try_pop(), Some(7));
/// // A late joiner may start at the oldest value still in the ring.
/// let mut late = ring.subscriber_with(&SubscriberOptions::lossless().start(Start::Oldest))?;
/// assert_eq!(late.try_pop(), Some(7));
/// # Ok::<(), shmring::Error>(())
/// ```
pub type Broadcast<T> = Ring<BroadcastFlavor<T>>;

/// The broadcast kind of [`Ring`]: a `Broadcast<T>` is a
/// `Ring<BroadcastFlavor<T>>`.
///
/// ```
/// let ring: shmring::Ring<shmring::BroadcastFlavor<u32>> =
/// #   shmring::Broadcast::create(&format!("shmring-doc-bcast-flavor-{}", std::process::id()), 8)?;
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct BroadcastFlavor<T>(PhantomData<T>);

impl<T> std::fmt::Debug for BroadcastFlavor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BroadcastFlavor")
    }
}

/// A broadcast ring's memory: its slots, and its subscriber table (`pub`
/// only for `lifecycle::sealed::Kind`, as `RingMemory` is).
pub struct BroadcastMemory<T> {
    ring: RingMemory<Slot<T>>,
    values: SeqValues,
    /// Under loom, the table lives beside the segment (its atomics must
    /// be loom's); for real, in the segment.
    #[cfg(shmring_loom)]
    table: Box<SubscriberTable>,
}

impl<T> std::fmt::Debug for BroadcastMemory<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastMemory")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<T> BroadcastMemory<T> {
    fn new(ring: RingMemory<Slot<T>>) -> Self {
        BroadcastMemory {
            values: SeqValues::new(ring.capacity()),
            #[cfg(shmring_loom)]
            table: Box::new(std::array::from_fn(|_| {
                crossbeam_utils::CachePadded::new(SubscriberEntry::new())
            })),
            ring,
        }
    }

    fn table(&self) -> &SubscriberTable {
        #[cfg(not(shmring_loom))]
        return self.ring.table::<SubscriberTable>();
        #[cfg(shmring_loom)]
        return &self.table;
    }

    fn name(&self) -> &str {
        self.ring.segment().name().as_str()
    }

    /// Whether `entry`'s holder lives.
    fn alive(&self, entry: &SubscriberEntry, owner: u64) -> bool {
        crate::platform::lease::holder_alive(self.ring.segment(), &entry.owner, owner)
    }
}

impl<T: Pod + Send> Kind for BroadcastFlavor<T> {
    const NAME: &'static str = "Broadcast";
    type Memory = BroadcastMemory<T>;
    type Slot = Slot<T>;

    fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self::Memory> {
        RingMemory::create_slots(name, RingKind::Broadcast, capacity, opts)
            .map(BroadcastMemory::new)
    }

    fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self::Memory> {
        RingMemory::open_slots(name, RingKind::Broadcast, capacity, opts).map(BroadcastMemory::new)
    }

    fn ring(mem: &Self::Memory) -> &RingMemory<Slot<T>> {
        &mem.ring
    }

    fn capacity(mem: &Self::Memory) -> usize {
        mem.ring.capacity() as usize
    }

    fn has_producer(mem: &Self::Memory) -> bool {
        crate::peers::attach::holder(mem.ring.segment(), &mem.ring.header().producer_role)
            .is_some_and(|h| h.alive)
    }

    fn has_consumer(mem: &Self::Memory) -> bool {
        mem.table().iter().any(|e| {
            let owner = e.owner.load(Ordering::Relaxed);
            owner != 0 && mem.alive(e, owner)
        })
    }
}

/// What the producer does about a slow subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// The producer waits for it: it reads every value (unless it holds
    /// the producer up past its bound, see
    /// [`SubscriberOptions::demote_after`]).
    Lossless,
    /// The producer never waits for it: when it falls a ring behind, it
    /// skips ahead and counts what it missed
    /// ([`Subscriber::missed`]).
    Lossy,
}

/// Where a new subscriber starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// At the next value published.
    Next,
    /// At the oldest value still in the ring.
    Oldest,
    /// At this position (the number of values published before it): a
    /// position already overwritten counts as missed, one not yet
    /// published is waited for.
    At(u64),
}

/// How a subscriber reads: its [`Policy`], where it starts, and under
/// which identity it resumes after a restart.
///
/// ```
/// use std::time::Duration;
/// use shmring::{Start, SubscriberOptions};
/// // Lossless, but made lossy if it holds the producer up for 50 ms;
/// // resumes where subscriber 7 left off, else at the oldest value.
/// let opts = SubscriberOptions::lossless()
///     .demote_after(Some(Duration::from_millis(50)))
///     .identity(7)
///     .start(Start::Oldest);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct SubscriberOptions {
    policy: Policy,
    start: Start,
    identity: Option<u64>,
    demote_after: Option<Duration>,
    demote_after_lag: Option<u64>,
}

/// How long a lossless subscriber may hold the producer up by default.
const DEFAULT_DEMOTE_AFTER: Duration = Duration::from_secs(1);

impl SubscriberOptions {
    /// Lossless, starting at the next value, anonymous, made lossy after
    /// holding the producer up for 1 s.
    pub fn lossless() -> Self {
        SubscriberOptions {
            policy: Policy::Lossless,
            start: Start::Next,
            identity: None,
            demote_after: Some(DEFAULT_DEMOTE_AFTER),
            demote_after_lag: None,
        }
    }

    /// Lossy, starting at the next value, anonymous.
    pub fn lossy() -> Self {
        SubscriberOptions {
            policy: Policy::Lossy,
            ..Self::lossless()
        }
    }

    /// Where to start (when no earlier subscriber of the same identity
    /// left a position to resume at).
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Resume under `identity`: where the last subscriber of that
    /// identity left off (counting as missed what was overwritten since),
    /// and leave a position for the next one. One live handle per
    /// identity.
    pub fn identity(mut self, identity: u64) -> Self {
        self.identity = Some(identity);
        self
    }

    /// How long a lossless subscriber may hold the producer up (at one
    /// position) before the producer makes it lossy; `None`: for ever.
    pub fn demote_after(mut self, bound: Option<Duration>) -> Self {
        self.demote_after = bound;
        self
    }

    /// How many values a lossless subscriber may fall behind the producer
    /// before the producer makes it lossy, at once instead of waiting
    /// (`Some(0)` counts as 1; a bound above the ring's capacity never
    /// applies, since the producer waits for a lossless subscriber a ring
    /// behind); `None` (the default): only the capacity bounds it, and the
    /// producer waits (up to [`demote_after`](Self::demote_after)). Both
    /// bounds apply.
    ///
    /// ```
    /// # let name = format!("shmring-doc-bcast-lag-{}", std::process::id());
    /// let ring = shmring::Broadcast::<u64>::create(&name, 64)?;
    /// let mut tx = ring.producer()?;
    /// let opts = shmring::SubscriberOptions::lossless().demote_after_lag(Some(2));
    /// let rx = ring.subscriber_with(&opts)?;
    /// for v in 0..3 {
    ///     tx.try_push(v).unwrap(); // the third would put it 3 behind
    /// }
    /// assert!(rx.is_demoted());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn demote_after_lag(mut self, values: Option<u64>) -> Self {
        self.demote_after_lag = values;
        self
    }
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self::lossless()
    }
}

impl<T: Pod + Send> Broadcast<T> {
    /// Claim the producer end. Fails with `RoleTaken` while another live
    /// handle (in any process) holds it; a dead holder's claim is taken
    /// over and writing resumes after the last value it committed.
    pub fn producer(&self) -> Result<BroadcastProducer<T>> {
        BroadcastProducer::new(Arc::clone(&self.mem))
    }

    /// A lossless subscriber starting at the next value published.
    pub fn subscriber(&self) -> Result<Subscriber<T>> {
        self.subscriber_with(&SubscriberOptions::lossless())
    }

    /// A subscriber with `opts`: its policy, start and identity.
    /// `TooManyHandles` when every entry of the table is held by a live
    /// subscriber (or kept for an identity); `SubscriberTaken` when the
    /// identity is held.
    pub fn subscriber_with(&self, opts: &SubscriberOptions) -> Result<Subscriber<T>> {
        let mem = &self.mem;
        let (index, claim, resume) = take_entry(mem, opts.identity)?;
        let entry = &mem.table()[index];
        let header = mem.ring.header();
        let cap = mem.ring.capacity();
        let tail = header.tail.load(Ordering::Relaxed);
        let start = |tail: u64| match opts.start {
            Start::Next => tail,
            Start::Oldest => tail.saturating_sub(cap),
            Start::At(pos) => pos,
        };
        let position = resume.unwrap_or_else(|| start(tail));
        let policy = match opts.policy {
            Policy::Lossless => LOSSLESS,
            Policy::Lossy => LOSSY,
        };
        // Whole milliseconds, rounded up: a positive bound under one is
        // one, not "at once" (which only a zero bound means).
        let stall = opts.demote_after.map_or(u64::MAX, |d| {
            d.as_nanos()
                .div_ceil(1_000_000)
                .min(u128::from(u64::MAX - 1)) as u64
        });
        // Relaxed: the fence below orders them before the producer's scan,
        // which fences too (see "Algorithm"); and the policy's Release.
        entry.position.store(position, Ordering::Relaxed);
        entry.stall_ms.store(stall, Ordering::Relaxed);
        let max_lag = opts.demote_after_lag.map_or(0, |n| n.max(1));
        entry.max_lag.store(max_lag, Ordering::Relaxed);
        // Release, with the producer's Acquire in `gate`: one that sees
        // this join's word sees its bounds, not an earlier holder's.
        let word = next_join(entry.policy.load(Ordering::Relaxed), policy);
        entry.policy.store(word, Ordering::Release);
        fence(Ordering::SeqCst);
        let mut position = position;
        // Where the producer is now (see "Algorithm": it overwrites no
        // position from here on without seeing this entry first).
        let now = header.tail.load(Ordering::Relaxed);
        // A lossless subscriber the producer never makes lossy may be lent
        // values in place from there on.
        let pinned = (policy == LOSSLESS && stall == u64::MAX && max_lag == 0).then_some(now);
        if resume.is_none() && opts.start == Start::Next {
            // Only ever forward.
            if now.wrapping_sub(position) as i64 > 0 {
                position = now;
                // Relaxed: a joiner has read nothing the position could
                // publish; moving it forward only frees the producer.
                entry.position.store(position, Ordering::Relaxed);
            }
        }
        Ok(Subscriber::new(
            Arc::clone(mem),
            (index, claim),
            position,
            entry.missed.load(Ordering::Relaxed),
            pinned,
        ))
    }

    /// Values published over the ring's life (as last stored by the
    /// producer).
    pub fn pushed(&self) -> u64 {
        self.mem.ring.header().tail.load(Ordering::Relaxed)
    }
}

/// Take an entry for a new subscriber: the one its identity left (and
/// where it left off), or a free one (or a dead anonymous one's).
fn take_entry<T>(
    mem: &BroadcastMemory<T>,
    identity: Option<u64>,
) -> Result<(usize, role::RoleClaim, Option<u64>)> {
    let table = mem.table();
    if let Some(id) = identity {
        // Relaxed: the claim below (Acquire on the owner word) orders
        // what the entry's last holder stored before it let go.
        let kept = table.iter().position(|e| {
            e.named.load(Ordering::Relaxed) == 1 && e.identity.load(Ordering::Relaxed) == id
        });
        if let Some(index) = kept {
            let claim = role::claim(mem.ring.segment(), &table[index].owner, Role::Consumer)
                .map_err(|e| match e {
                    Error::RoleTaken { pid, .. } => Error::SubscriberTaken {
                        name: mem.name().to_owned(),
                        identity: id,
                        pid,
                    },
                    e => e,
                })?;
            let at = table[index].position.load(Ordering::Relaxed);
            return Ok((index, claim, Some(at)));
        }
    }
    for (index, entry) in table.iter().enumerate() {
        // An entry kept for an identity is not taken by another.
        if entry.named.load(Ordering::Relaxed) == 1 {
            continue;
        }
        let owner = entry.owner.load(Ordering::Relaxed);
        if owner != 0 && mem.alive(entry, owner) {
            continue;
        }
        let Ok(claim) = role::claim(mem.ring.segment(), &entry.owner, Role::Consumer) else {
            continue;
        };
        entry.missed.store(0, Ordering::Relaxed);
        entry.demotions.store(0, Ordering::Relaxed);
        if let Some(id) = identity {
            entry.identity.store(id, Ordering::Relaxed);
            entry.named.store(1, Ordering::Relaxed);
        }
        return Ok((index, claim, None));
    }
    Err(Error::TooManyHandles {
        name: mem.name().to_owned(),
        side: "subscriber",
        limit: table.len(),
    })
}

/// What a subscriber finds at position `pos`, from the slot's stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// The value of `pos`.
    Ready,
    /// Not written yet.
    NotYet,
    /// Overwritten by a later position.
    Overrun,
}

fn found(stamp: u64, pos: u64) -> Found {
    if stamp == full_stamp(pos) {
        return Found::Ready;
    }
    let lap = crate::format::slot::stamp_pos(stamp).wrapping_sub(pos) as i64;
    // Stamp positions are 62-bit: compare in that space.
    let lap = (lap << 2) >> 2;
    if lap > 0 {
        Found::Overrun
    } else {
        Found::NotYet
    }
}

/// Notify the producer's event: a subscriber released room.
fn released<T>(mem: &BroadcastMemory<T>) {
    wait::notify(&mem.ring.header().producer_event);
}

/// How a new producer or subscriber waits by default.
fn default_wait(role: Role) -> WaitStrategy {
    match role {
        Role::Producer => WaitStrategy::producer_default(),
        Role::Consumer => WaitStrategy::default(),
    }
}

impl<T: Pod + Send> crate::hook::HasHeader for BroadcastMemory<T> {
    fn header(&self) -> &crate::format::header::Header {
        self.ring.header()
    }
    fn ring_name(&self) -> &str {
        self.ring.segment().name().as_str()
    }
}

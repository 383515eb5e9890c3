//! The broadcast ring's one producer: writes, gating on the lossless
//! subscribers, and what it does about dead and stuck ones.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::{default_wait, BroadcastMemory};
use crate::error::{Full, PushTimeout, Result, TimedOut};
use crate::format::slot::full_stamp;
use crate::format::subscribers::{restate, state, DEMOTED, LOSSLESS, SUBSCRIBERS};
use crate::kind::Role;
use crate::lifecycle::sealed::Kind;
use crate::peers::role::{self, RoleClaim};
use crate::platform::sync::{fence, Ordering};
use crate::wait::{self, WaitStrategy};

/// The producer of a [`Broadcast`](crate::Broadcast) ring. Not `Sync`:
/// one thread pushes.
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-bcast-producer-{}", std::process::id());
/// let ring = shmring::Broadcast::<u64>::create(&name, 2)?;
/// let mut tx = ring.producer()?;
/// let _slow = ring.subscriber()?; // lossless, never reads
/// tx.try_push(1).unwrap();
/// tx.try_push(2).unwrap();
/// assert!(tx.try_push(3).is_err()); // it waits for the lossless subscriber
/// assert!(tx.push_timeout(3, Duration::from_millis(1)).is_err());
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct BroadcastProducer<T> {
    pub(super) mem: Arc<BroadcastMemory<T>>,
    pub(super) tail: u64,
    /// The producer may write positions before this one without looking
    /// at the table again.
    limit: Cell<u64>,
    /// Whether the last scan found a subscriber with a lag bound in the
    /// way (to be made lossy at once rather than waited for).
    lagging: Cell<bool>,
    /// Owner ids of entries whose holders were found dead: they no
    /// longer gate (until another holder takes the entry).
    dead: RefCell<[u64; SUBSCRIBERS]>,
    /// Per entry: the holder and position it last held the producer up
    /// at, since when, and when its liveness was last probed.
    stuck: RefCell<[Stuck; SUBSCRIBERS]>,
    me: Option<RoleClaim>,
    wait: WaitStrategy,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> std::fmt::Debug for BroadcastProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastProducer")
            .field("ring", &self.mem.name())
            .field("tail", &self.tail)
            .finish()
    }
}

impl<T: Pod + Send> BroadcastProducer<T> {
    pub(super) fn new(mem: Arc<BroadcastMemory<T>>) -> Result<Self> {
        let ring = &mem.ring;
        let me = ring.claim_role(Role::Producer)?;
        wait::reopen(&ring.header().consumer_event);
        // A dead predecessor may have published past the `tail` it stored.
        let mut tail = ring.header().tail.load(Ordering::Relaxed);
        for _ in 0..ring.capacity() {
            if ring.slot(tail).stamp() != full_stamp(tail) {
                break;
            }
            tail = tail.wrapping_add(1);
        }
        ring.header().tail.store(tail, Ordering::Relaxed);
        Ok(BroadcastProducer {
            limit: Cell::new(tail),
            lagging: Cell::new(false),
            mem,
            tail,
            dead: RefCell::new([0; SUBSCRIBERS]),
            stuck: RefCell::new([Stuck::default(); SUBSCRIBERS]),
            me: Some(me),
            wait: default_wait(Role::Producer),
            _not_sync: PhantomData,
        })
    }

    /// Publish `value` to every subscriber, unless a lossless one has not
    /// yet read the value it would overwrite: then `Full`, with the value
    /// back.
    #[inline]
    pub fn try_push(&mut self, value: T) -> std::result::Result<(), Full<T>> {
        if !self.room() {
            return Err(Full(value));
        }
        self.write(value);
        Ok(())
    }

    /// Publish `value`, waiting up to `timeout` for the lossless
    /// subscribers to make room (see
    /// [`set_wait_strategy`](Self::set_wait_strategy)). While it waits it
    /// stops waiting for subscribers that died, and makes lossy those that
    /// held it up past their bound.
    #[inline]
    pub fn push_timeout(
        &mut self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), PushTimeout<T>> {
        if self.room() || self.wait_for_room(timeout) {
            self.write(value);
            return Ok(());
        }
        Err(PushTimeout::new(
            value,
            self.timed_out("push_timeout", timeout),
        ))
    }

    /// Wait up to `timeout` for room for one value, scanning the table
    /// on each wake and looking for dead and stuck subscribers between
    /// slices. Whether there is room.
    #[cold]
    pub(super) fn wait_for_room(&self, timeout: Duration) -> bool {
        self.mem.ring.count_blocked(Role::Producer);
        let event = &self.mem.ring.header().producer_event;
        // As the SPSC producer does: a batch of room (or less, once
        // patience runs out), not each slot the moment it is freed.
        let batch = (self.mem.ring.capacity() / 8).clamp(1, wait::ROOM_BATCH) as i64;
        let patience = wait::ROOM_PATIENCE.min(self.wait.spins());
        let mut polls = 0u32;
        let ok = wait::wait_in_slices(
            event,
            self.wait,
            timeout,
            || {
                // A subscriber past its lag bound is made lossy at once,
                // not after a slice: only that case reads the clock here.
                if !self.scan() && self.lagging.get() {
                    self.unblock();
                }
                let room = self.limit.get().wrapping_sub(self.tail) as i64;
                polls += 1;
                (room >= batch || (room > 0 && polls > patience)).then_some(())
            },
            || {
                self.unblock();
                wait::REPAIR_SLICE
            },
        );
        ok.is_some() || self.room()
    }

    /// Positions from `tail` that may be written now, up to `want`
    /// (scanning the table, and looking for dead and stuck subscribers,
    /// only when the bound gives fewer).
    pub(super) fn room_for(&self, want: u64) -> u64 {
        // Never more than a ring: a larger ask must not rescan every time.
        let want = want.min(self.mem.ring.capacity()) as i64;
        let avail = || self.limit.get().wrapping_sub(self.tail) as i64;
        if avail() < want && !self.scan() {
            self.unblock();
        }
        avail().clamp(0, want) as u64
    }

    /// Close the ring: subscribers receive what was published, then
    /// `Closed` from their blocking calls. A new producer reopens it.
    pub fn close(&mut self) {
        wait::close(&self.mem.ring.header().consumer_event);
    }

    /// Values published over the ring's life.
    pub fn pushed(&self) -> u64 {
        self.tail
    }

    /// How this handle waits for room; see [`WaitStrategy`].
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Whether position `tail` may be written: within the bound, or
    /// within a new one after a scan, or after giving up on dead and
    /// stuck subscribers.
    #[inline(always)]
    fn room(&self) -> bool {
        self.within_limit() || self.scan() || self.unblock()
    }

    /// Whether `tail` is within the bound of the last scan.
    #[inline(always)]
    fn within_limit(&self) -> bool {
        self.limit.get().wrapping_sub(self.tail) as i64 > 0
    }

    /// Scan the table for the lossless subscribers' positions: the new
    /// bound is the lowest of them plus its reach (the capacity, or its
    /// lag bound if lower), and at most our own position plus the
    /// capacity. Whether `tail` is within it.
    #[inline(never)]
    fn scan(&self) -> bool {
        let mem = &*self.mem;
        // SeqCst: the joining subscriber's pair (see "Algorithm"): either
        // this scan sees its entry, or it sees our `tail` stores before it.
        fence(Ordering::SeqCst);
        let dead = self.dead.borrow();
        let cap = mem.ring.capacity();
        // How far past `tail` each gate lets us write, the least of them,
        // and never more than a ring (whatever positions a peer wrote).
        let mut room = cap as i64;
        let mut lagging = false;
        for (i, e) in mem.table().iter().enumerate() {
            if let Some((pos, _)) = self.gate(e, dead[i]) {
                let ahead = pos.wrapping_add(reach(e, cap)).wrapping_sub(self.tail) as i64;
                room = room.min(ahead);
                lagging |= ahead <= 0 && lag_bound(e, cap).is_some();
            }
        }
        self.lagging.set(lagging);
        let room = room.max(0);
        self.limit.set(self.tail.wrapping_add(room as u64));
        room > 0
    }

    /// The position entry `e` holds the producer at, and its policy word:
    /// a lossless entry with a holder not known dead. Relaxed owner (the
    /// SeqCst fence before the scan orders it).
    fn gate(
        &self,
        e: &crate::format::subscribers::SubscriberEntry,
        dead: u64,
    ) -> Option<(u64, u64)> {
        let owner = e.owner.load(Ordering::Relaxed);
        if owner == 0 || owner == dead {
            return None;
        }
        // Acquire, with the joining subscriber's Release: the bounds it
        // stored before its policy (`max_lag`, `stall_ms`) are its own,
        // not an earlier holder's of the same entry.
        let word = e.policy.load(Ordering::Acquire);
        if state(word) != LOSSLESS {
            return None;
        }
        // Acquire, with the subscriber's Release in `advance`: its copies
        // of the values before its position happen before we overwrite
        // them.
        // ordering-justified(load-buffering): without it the subscriber's
        // copy could read our later write (a load reading a store made
        // after a store of its own thread that we already read), which
        // loom never schedules; a lossless subscriber's stamp check would
        // then count the value missed.
        Some((e.position.load(Ordering::Acquire), word))
    }

    /// The slow path when the bound holds: entries whose holders died
    /// stop gating, and a live one holding the producer at one position
    /// past its bound is made lossy. Whether `tail` may be written now.
    #[cold]
    fn unblock(&self) -> bool {
        let mem = &*self.mem;
        let cap = mem.ring.capacity();
        let mut changed = false;
        for (i, e) in mem.table().iter().enumerate() {
            let Some((pos, word)) = self.gate(e, self.dead.borrow()[i]) else {
                continue;
            };
            // Not in the way: `tail` overwrites `tail - cap` only, and
            // puts it `tail + 1 - pos` behind.
            if pos.wrapping_add(reach(e, cap)).wrapping_sub(self.tail) as i64 > 0 {
                continue;
            }
            let owner = e.owner.load(Ordering::Relaxed);
            let now = Instant::now();
            let mut stuck = self.stuck.borrow_mut();
            let st = &mut stuck[i];
            if (st.owner, st.pos) != (owner, pos) {
                *st = Stuck {
                    owner,
                    pos,
                    since: Some(now),
                    probed: None,
                };
            }
            // A liveness probe is a system call: once per PROBE_EVERY.
            if st
                .probed
                .is_none_or(|t| now.duration_since(t) >= PROBE_EVERY)
            {
                st.probed = Some(now);
                if !mem.alive(e, owner) {
                    self.dead.borrow_mut()[i] = owner;
                    log::info!(
                        target: "shmring",
                        "ring {:?}: subscriber {i} died at position {pos}; the producer no longer \
                         waits for it",
                        mem.name()
                    );
                    changed = true;
                    continue;
                }
            }
            let bound = e.stall_ms.load(Ordering::Relaxed);
            let since = st.since.unwrap_or(now);
            let stalled =
                bound != u64::MAX && now.duration_since(since) >= Duration::from_millis(bound);
            // In the way, and bounded in values: the next value would put
            // it past its bound.
            let lagging = lag_bound(e, cap).is_some();
            // Only if it is still the lossless stay we saw (not the next
            // holder's, whose word counts one more join).
            if (stalled || lagging)
                && e.policy
                    .compare_exchange(
                        word,
                        restate(word, DEMOTED),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                e.demotions.fetch_add(1, Ordering::Relaxed);
                let why = if lagging {
                    format!(
                        "the next value would put it past its lag bound of {}",
                        reach(e, cap)
                    )
                } else {
                    format!("it held the producer at position {pos} for {bound} ms")
                };
                log::warn!(
                    target: "shmring",
                    "ring {:?}: subscriber {i} made lossy: {why}",
                    mem.name()
                );
                changed = true;
            }
        }
        changed && self.scan()
    }

    /// Write `tail` and publish it.
    #[inline(always)]
    fn write(&mut self, value: T) {
        let mem = &*self.mem;
        let pos = self.tail;
        let index = pos & (mem.ring.capacity() - 1);
        // SAFETY: we hold the producer role, so we are the slot's one
        // writer; every lossless subscriber released `pos - cap` (the
        // bound), and the others check the stamp after copying.
        unsafe { mem.ring.slot(pos).write_seq(pos, value, &mem.values, index) };
        self.published(1);
    }

    /// Publish `value`, the bytes of one value of a run-time ring
    /// (`rings/runtime.rs`), if there is room now; whether there was.
    pub(crate) fn try_push_bytes(&mut self, value: &[u8]) -> bool {
        if !self.room() {
            return false;
        }
        self.write_bytes(value);
        true
    }

    /// [`try_push_bytes`](Self::try_push_bytes), waiting up to `timeout`
    /// for room as [`push_timeout`](Self::push_timeout) does.
    pub(crate) fn push_bytes_timeout(
        &mut self,
        value: &[u8],
        timeout: Duration,
    ) -> std::result::Result<(), TimedOut> {
        if self.room() || self.wait_for_room(timeout) {
            self.write_bytes(value);
            return Ok(());
        }
        Err(self.timed_out("push_timeout", timeout))
    }

    /// Write `tail` from a run-time value's bytes and publish it, in
    /// `Slot::write_seq`'s order: busy, Release fence, value, full.
    #[inline(always)]
    fn write_bytes(&mut self, value: &[u8]) {
        let mem = &*self.mem;
        let pos = self.tail;
        let slot = mem.ring.slot(pos);
        slot.mark_busy(pos);
        fence(Ordering::Release);
        // SAFETY: as in `write`: we are the slot's one writer.
        unsafe { mem.ring.write_runtime_seq(pos, value, &mem.values) };
        slot.publish(pos);
        self.published(1);
    }

    /// `n` more values from `tail` are published (stamped full): move on
    /// and wake sleeping subscribers.
    #[inline(always)]
    pub(super) fn published(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        let header = self.mem.ring.header();
        // Relaxed: subscribers read values through the stamps; this is for
        // joiners (see "Algorithm"), `pushed()` and a successor.
        header.tail.store(self.tail, Ordering::Relaxed);
        wait::notify(&header.consumer_event);
    }

    #[cold]
    pub(super) fn timed_out(&self, op: &'static str, waited: Duration) -> TimedOut {
        let attached = <super::BroadcastFlavor<T> as Kind>::has_consumer(&self.mem);
        self.mem
            .ring
            .timed_out(op, waited, Role::Consumer, attached)
    }
}

/// How far past a lossless entry's position the producer may write
/// before the entry stops it: the capacity, or the entry's lag bound if
/// that is lower (then the producer makes it lossy rather than wait).
/// Relaxed: set at join, before the fence that publishes the entry.
fn reach(e: &crate::format::subscribers::SubscriberEntry, cap: u64) -> u64 {
    lag_bound(e, cap).unwrap_or(cap)
}

/// A lossless entry's lag bound in values, if it has one that can apply:
/// from 1 to the capacity (gating keeps a lossless subscriber within a
/// ring, so a larger bound never does).
fn lag_bound(e: &crate::format::subscribers::SubscriberEntry, cap: u64) -> Option<u64> {
    Some(e.max_lag.load(Ordering::Relaxed)).filter(|lag| (1..=cap).contains(lag))
}

/// How often the producer, held up by a subscriber, asks the kernel
/// whether it lives (under the model, which has no clock, every time).
const PROBE_EVERY: Duration = if crate::platform::sync::MODEL {
    Duration::ZERO
} else {
    Duration::from_millis(1)
};

/// Why and since when an entry holds the producer up.
#[derive(Clone, Copy, Debug, Default)]
struct Stuck {
    owner: u64,
    pos: u64,
    since: Option<Instant>,
    probed: Option<Instant>,
}

impl<T> Drop for BroadcastProducer<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.mem.ring.header().producer_role, me);
        }
    }
}

impl<T: Pod + Send> crate::hook::Waitable for BroadcastProducer<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        crate::hook::WakeWord::new(self.mem.clone(), false)
    }
}

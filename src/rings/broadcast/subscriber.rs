//! A broadcast subscriber: seqlock reads at its own position, the misses
//! it counts, and its entry in the table.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::{default_wait, found, released, BroadcastMemory, Found, Policy};
use crate::error::{RecvError, TimedOut};
use crate::format::subscribers::{state, SubscriberEntry, LOSSLESS};
use crate::kind::Role;
use crate::peers::role::{self, RoleClaim};
use crate::platform::sync::{fence, Ordering};
use crate::wait::{self, WaitStrategy};

/// A subscriber of a [`Broadcast`](crate::Broadcast) ring: it reads every
/// value from where it started, in order, at its own pace. Not `Sync`:
/// one thread reads.
///
/// ```
/// use shmring::{Policy, SubscriberOptions};
/// # let name = format!("shmring-doc-bcast-sub-{}", std::process::id());
/// let ring = shmring::Broadcast::<u64>::create(&name, 4)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.subscriber_with(&SubscriberOptions::lossy())?;
/// for v in 0..10 {
///     tx.try_push(v).unwrap(); // a lossy subscriber never holds it up
/// }
/// // It fell behind: it skips ahead, and says exactly how far.
/// let first = rx.try_pop().unwrap();
/// assert_eq!(rx.missed(), first);
/// assert_eq!(rx.policy(), Policy::Lossy);
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Subscriber<T> {
    pub(super) mem: Arc<BroadcastMemory<T>>,
    index: usize,
    pub(super) position: u64,
    missed: u64,
    /// For a lossless subscriber the producer never makes lossy: the
    /// position from which it never overwrites what this one has not
    /// released (see `subscriber_with`), so values may be lent in place.
    #[cfg_attr(shmring_loom, allow(dead_code))]
    pub(super) pinned_from: Option<u64>,
    me: Option<RoleClaim>,
    wait: WaitStrategy,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("ring", &self.mem.name())
            .field("entry", &self.index)
            .field("position", &self.position)
            .field("missed", &self.missed)
            .finish()
    }
}

/// How many times one call looks again after finding its position
/// overwritten (a producer lapping it faster than it can jump): bounded,
/// whatever a peer writes.
pub(super) const OVERRUN_RETRIES: usize = 8;

impl<T: Pod + Send> Subscriber<T> {
    pub(super) fn new(
        mem: Arc<BroadcastMemory<T>>,
        (index, me): (usize, RoleClaim),
        position: u64,
        missed: u64,
        pinned_from: Option<u64>,
    ) -> Self {
        Subscriber {
            mem,
            index,
            position,
            missed,
            pinned_from,
            me: Some(me),
            wait: default_wait(Role::Consumer),
            _not_sync: PhantomData,
        }
    }

    fn entry(&self) -> &SubscriberEntry {
        &self.mem.table()[self.index]
    }

    /// The next value, if one was published; values it missed (lossy,
    /// or overwritten before a late start) are skipped and counted
    /// ([`missed`](Self::missed)).
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        for _ in 0..OVERRUN_RETRIES {
            match self.read() {
                Ok(value) => return value,
                Err(overrun) => self.skip(overrun),
            }
        }
        None
    }

    /// The next value, waiting up to `timeout` for one;
    /// [`RecvError::Closed`] once the producer closed the ring and every
    /// value before the close was read.
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.pop_waiting(timeout, Self::try_pop)
    }

    /// `attempt` (a pop), tried until it succeeds or `timeout` ends: again
    /// after each wake (a try lapped on every retry waits and tries again,
    /// it does not end the wait early); `Closed` once the producer closed
    /// the ring and everything before the close was read.
    #[inline]
    fn pop_waiting<R>(
        &mut self,
        timeout: Duration,
        mut attempt: impl FnMut(&mut Self) -> Option<R>,
    ) -> Result<R, RecvError> {
        if let Some(v) = attempt(self) {
            return Ok(v);
        }
        let start = std::time::Instant::now();
        self.count_wait(timeout);
        loop {
            if self.closed() {
                // Everything before the close is visible now: one more look.
                return attempt(self).ok_or_else(|| self.closed_error());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() || !self.wait_for_value(left) {
                return Err(self.timed_out("pop_timeout", timeout).into());
            }
            if let Some(v) = attempt(self) {
                return Ok(v);
            }
        }
    }

    /// Wait up to `timeout` until our position holds something (a value,
    /// or a later one that overwrote it) or the ring is closed; whether it
    /// does. The caller counts the wait ([`count_wait`](Self::count_wait)),
    /// once however many times it waits.
    #[cold]
    pub(super) fn wait_for_value(&self, timeout: Duration) -> bool {
        let mem = &*self.mem;
        let event = &mem.ring.header().consumer_event;
        let pos = self.position;
        let ready = || {
            let f = found(mem.ring.slot(pos).stamp(), pos);
            (f != Found::NotYet || wait::is_closed(event)).then_some(())
        };
        wait::wait_until(event, self.wait, timeout, ready).is_some()
    }

    /// Count a blocking call that found nothing (a wait, in the ring's
    /// counters), unless it does not wait.
    pub(super) fn count_wait(&self, timeout: Duration) {
        if !timeout.is_zero() {
            self.mem.ring.count_blocked(Role::Consumer);
        }
    }

    /// Whether the producer closed the ring.
    pub(super) fn closed(&self) -> bool {
        wait::is_closed(&self.mem.ring.header().consumer_event)
    }

    #[cold]
    pub(super) fn closed_error(&self) -> RecvError {
        RecvError::Closed {
            name: self.mem.name().to_owned(),
        }
    }

    /// Read the value at our position: `Ok(None)` if not published yet,
    /// `Err(stamp)` if overwritten (or torn while we copied it).
    #[inline(always)]
    fn read(&mut self) -> Result<Option<T>, ()> {
        self.read_with(|mem, pos| {
            let index = pos & (mem.ring.capacity() - 1);
            mem.ring.slot(pos).read_seq(&mem.values, index)
        })
    }

    /// Copy the value of a run-time ring (`rings/runtime.rs`) at our
    /// position into `out`, as [`try_pop`](Self::try_pop) does; whether
    /// there was one. On `false`, `out` may hold a torn copy.
    pub(crate) fn try_pop_bytes(&mut self, out: &mut [u8]) -> bool {
        for _ in 0..OVERRUN_RETRIES {
            let copy =
                |mem: &BroadcastMemory<T>, pos| mem.ring.read_runtime_seq(pos, out, &mem.values);
            match self.read_with(copy) {
                Ok(got) => return got.is_some(),
                Err(overrun) => self.skip(overrun),
            }
        }
        false
    }

    /// [`try_pop_bytes`](Self::try_pop_bytes), waiting up to `timeout` as
    /// [`pop_timeout`](Self::pop_timeout) does (on an error, `out` may
    /// hold a torn copy).
    pub(crate) fn pop_bytes_timeout(
        &mut self,
        out: &mut [u8],
        timeout: Duration,
    ) -> Result<(), RecvError> {
        self.pop_waiting(timeout, |rx| rx.try_pop_bytes(out).then_some(()))
    }

    /// The seqlock read of our position with `copy(memory, position)`:
    /// `Ok(None)` if not published yet, `Err(())` if overwritten (or torn
    /// while copied).
    #[inline(always)]
    fn read_with<R>(
        &mut self,
        copy: impl FnOnce(&BroadcastMemory<T>, u64) -> R,
    ) -> Result<Option<R>, ()> {
        let mem = &*self.mem;
        let pos = self.position;
        let slot = mem.ring.slot(pos);
        let before = slot.stamp();
        match found(before, pos) {
            Found::NotYet => return Ok(None),
            Found::Overrun => return Err(()),
            Found::Ready => {}
        }
        let value = copy(mem, pos);
        // Acquire: our copy happens before this second look, so a copy
        // that saw a newer write's bytes sees its busy stamp here.
        fence(Ordering::Acquire);
        if slot.stamp_relaxed() != before {
            return Err(());
        }
        self.advance(pos.wrapping_add(1));
        Ok(Some(value))
    }

    /// Our position was overwritten: jump to half a ring behind the
    /// producer (never backwards, at least one past it) and count every
    /// position passed over as missed.
    #[cold]
    pub(super) fn skip(&mut self, _overrun: ()) {
        let mem = &*self.mem;
        let cap = mem.ring.capacity();
        let tail = mem.ring.header().tail.load(Ordering::Relaxed);
        let target = tail.wrapping_sub(cap - cap / 2);
        let next = if target.wrapping_sub(self.position) as i64 > 0 {
            target
        } else {
            self.position.wrapping_add(1)
        };
        self.missed = self.missed.wrapping_add(next.wrapping_sub(self.position));
        // Relaxed: a statistic; the position store below carries it.
        self.entry().missed.store(self.missed, Ordering::Relaxed);
        self.advance(next);
    }

    /// Release everything before `next` and wake the producer if it waits.
    #[inline(always)]
    pub(super) fn advance(&mut self, next: u64) {
        self.position = next;
        // Release: our copies of the values before `next` happen before
        // the producer (Acquire in `gate`) overwrites them.
        // ordering-justified(load-buffering): the execution it excludes is
        // the one described at that load (our copy reading a write the
        // producer makes after reading this store), which loom never
        // schedules.
        self.entry().position.store(next, Ordering::Release);
        released(&self.mem);
    }

    /// Values this subscriber (and earlier ones of its identity) missed:
    /// overwritten before they were read.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The position of the next value it reads: values published before
    /// it, read or missed.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Values published that it has not read yet.
    pub fn lag(&self) -> u64 {
        let tail = self.mem.ring.header().tail.load(Ordering::Relaxed);
        tail.saturating_sub(self.position)
    }

    /// Its policy now: [`Policy::Lossy`] once the producer made a
    /// lossless subscriber lossy (see [`is_demoted`](Self::is_demoted)).
    pub fn policy(&self) -> Policy {
        match state(self.entry().policy.load(Ordering::Relaxed)) {
            LOSSLESS => Policy::Lossless,
            _ => Policy::Lossy,
        }
    }

    /// Times the producer made this subscriber's entry lossy, held up
    /// by it for longer than its bound.
    pub fn demotions(&self) -> u64 {
        self.entry().demotions.load(Ordering::Relaxed)
    }

    /// Whether the producer made it lossy: it was lossless and held the
    /// producer up past its bound.
    pub fn is_demoted(&self) -> bool {
        state(self.entry().policy.load(Ordering::Relaxed)) == crate::format::subscribers::DEMOTED
    }

    /// How this handle waits for values; see [`WaitStrategy`].
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    #[cold]
    pub(super) fn timed_out(&self, op: &'static str, waited: Duration) -> TimedOut {
        let attached = crate::peers::attach::holder(
            self.mem.ring.segment(),
            &self.mem.ring.header().producer_role,
        )
        .is_some_and(|h| h.alive);
        self.mem
            .ring
            .timed_out(op, waited, Role::Producer, attached)
    }
}

#[cfg(shmring_loom)]
#[doc(hidden)]
impl<T> Subscriber<T> {
    /// For loom models: this handle's process dies now, its entry still
    /// lossless at its position.
    pub fn die(mut self) {
        crate::platform::lease::mark_dead(&self.mem.table()[self.index].owner);
        // Not released: a dead process releases nothing (and the model's
        // lease holds nothing to let go of).
        self.me = None;
    }
}

impl<T> Drop for Subscriber<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            let entry = &self.mem.table()[self.index];
            // Relaxed: it stops gating; the role release below (Release)
            // publishes the position and counts to the next holder. One
            // read-modify-write, keeping the join count: a load and a
            // store could undo a demotion the producer made in between,
            // and hand its word to the next holder (a loom model found
            // that).
            entry.policy.fetch_and(!0xff, Ordering::Relaxed);
            role::release(&entry.owner, me);
        }
    }
}

impl<T: Pod + Send> crate::hook::Waitable for Subscriber<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        crate::hook::WakeWord::new(self.mem.clone(), true)
    }
}

//! MPMC producers: anonymous handles, streams, and the in-place write slot.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::repair::{recover, repair, unlock};
use super::{claim, Memory};
use crate::error::{Error, Full, PushTimeout, Result, SendError, TimedOut};
use crate::format::slot::Runtime;
use crate::kind::Role;
use crate::peers::claims::{any_alive, Recorder, RepairLock, Side};
use crate::wait::{self, WaitStrategy};

/// A producer handle of an [`Mpmc`](crate::Mpmc) ring. Each handle (each clone) has its
/// own claim record, so a handle is `Send` but not `Sync`: clone it for
/// each thread.
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-mpmc-producer-{}", std::process::id());
/// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
/// let tx = ring.producer()?;
/// let tx2 = tx.try_clone()?; // another handle, with its own claim record
/// std::thread::spawn(move || tx2.push_timeout(2, Duration::from_secs(1)).unwrap())
///     .join()
///     .unwrap();
/// tx.try_push(1).unwrap();
/// assert_eq!(ring.pushed(), 2);
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct MpmcProducer<T> {
    mem: Memory<T>,
    wait: WaitStrategy,
    rec: Recorder,
}

impl<T> std::fmt::Debug for MpmcProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcProducer")
            .field("ring", &self.mem.segment().name().as_str())
            .finish_non_exhaustive()
    }
}

impl<T> MpmcProducer<T> {
    pub(super) fn new(mem: Memory<T>, wait: WaitStrategy) -> Result<Self> {
        // Repair (and free) the records of the dead first, so that new
        // handles find one even after many deaths.
        recover(&mem);
        let rec = Recorder::take(mem.segment(), &mem.header().producer_claims, Side::Producer)?;
        wait::reopen(&mem.header().consumer_event);
        Ok(MpmcProducer { mem, wait, rec })
    }

    /// Close the ring: the stream ends after what was pushed so far, by
    /// this handle and every other (call it from the last producer, when
    /// every producer is done). Consumers receive every value committed
    /// before, then `Closed` from their blocking calls. A new producer
    /// handle reopens the ring.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-mpmc-close-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(1).unwrap();
    /// tx.close();
    /// assert_eq!(rx.pop_timeout(Duration::from_secs(1))?, 1);
    /// assert!(matches!(
    ///     rx.pop_timeout(Duration::from_secs(1)),
    ///     Err(shmring::RecvError::Closed { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.mem.header().consumer_event);
    }

    /// Another handle on the same ring, with its own claim record (one per
    /// thread: handles are `Send`, not `Sync`). `TooManyHandles` as for
    /// [`Mpmc::producer`](crate::Mpmc::producer).
    pub fn try_clone(&self) -> Result<Self> {
        Self::new(Arc::clone(&self.mem), self.wait)
    }

    /// A handle of stream `id` (see [`Mpmc::producer_stream`]): under the
    /// repair lock, repair first (a dead handle of the stream frees its
    /// record, its count settled), then take the stream's record.
    fn new_stream(mem: Memory<T>, wait: WaitStrategy, id: u32) -> Result<Self> {
        let Some(lock) =
            RepairLock::acquire_within(mem.segment(), &mem.header().recovery, STREAM_PATIENCE)
        else {
            return Err(Error::Busy {
                name: mem.segment().name().as_str().to_owned(),
                what: "another handle held the repair lock past the wait for a stream",
            });
        };
        repair(&mem);
        let rec = Recorder::take_stream(mem.segment(), &mem.header().producer_claims, id);
        unlock(&mem, lock);
        let rec = rec?;
        wait::reopen(&mem.header().consumer_event);
        Ok(MpmcProducer { mem, wait, rec })
    }
}

/// How long taking a stream waits for the repair lock (held by others for
/// a repair, which is short).
const STREAM_PATIENCE: Duration = Duration::from_secs(1);

#[cfg(shmring_loom)]
#[doc(hidden)]
impl<T> MpmcProducer<T> {
    /// For loom models: this handle's process dies now, holding whatever it
    /// claimed (forget the guards first).
    pub fn die(mut self) {
        self.rec.die(&self.mem.header().producer_claims);
    }
}

impl<T> Drop for MpmcProducer<T> {
    fn drop(&mut self) {
        self.rec.release(&self.mem.header().producer_claims);
    }
}

impl<T: Pod + Send> MpmcProducer<T> {
    /// Push `value` if there is room; give it back (in [`Full`]) if the
    /// ring is full.
    ///
    /// "Full" is decided by the one slot this push would take: if a
    /// consumer has claimed the value in it a lap ago and is still reading
    /// it (a [`MpmcReadSlot`](crate::MpmcReadSlot) not yet dropped, or a consumer preempted
    /// mid-copy), the push fails even if other slots are free. Turn-based
    /// queues all do this (it is what keeps each slot's hand-over one
    /// stamp); crossbeam's `ArrayQueue` spins instead. Where a brief wait is
    /// acceptable, use [`push_timeout`](Self::push_timeout), which waits
    /// (spinning first) for that reader.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-mpmc-push-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 1)?;
    /// let tx = ring.producer()?;
    /// assert_eq!(tx.try_push(1), Ok(()));
    /// assert_eq!(tx.try_push(2), Err(shmring::Full(2)));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), Full<T>> {
        match claim(&self.mem, Side::Producer, &self.rec) {
            Some(pos) => {
                self.fill(pos, value);
                Ok(())
            }
            None => {
                self.mem.count_blocked(Role::Producer);
                Err(Full(value))
            }
        }
    }

    /// Push `value`, waiting up to `timeout` for room. A zero timeout is a
    /// [`try_push`](Self::try_push); on timeout the value is given back.
    #[inline]
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushTimeout<T>> {
        match self.claim_waiting(timeout) {
            Some(pos) => {
                self.fill(pos, value);
                Ok(())
            }
            None => Err(PushTimeout::new(
                value,
                self.timed_out("push_timeout", timeout),
            )),
        }
    }

    /// Reserve a slot to write in place, if there is room. The slot is
    /// zeroed; [`MpmcWriteSlot::commit`] publishes it, and dropping the
    /// guard uncommitted (also while the thread panics) publishes a skip:
    /// consumers pass over the position and nothing is delivered, so a
    /// half-written value never is.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-mpmc-claim-{}", std::process::id());
    /// let ring = shmring::Mpmc::<[u64; 8]>::create(&name, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve().expect("room");
    /// slot[7] = 42; // written in place
    /// slot.commit();
    /// assert_eq!(rx.try_pop().map(|v| v[7]), Some(42));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_reserve(&self) -> Option<MpmcWriteSlot<'_, T>> {
        let Some(pos) = claim(&self.mem, Side::Producer, &self.rec) else {
            self.mem.count_blocked(Role::Producer);
            return None;
        };
        Some(self.lend(pos))
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for
    /// room; [`SendError::Timeout`] if none came.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-m-mpmc-reserve-timeout-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 1)?;
    /// let tx = ring.producer()?;
    /// tx.reserve_timeout(Duration::from_millis(10))?.commit();
    /// assert!(tx.reserve_timeout(Duration::from_millis(1)).is_err()); // full
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn reserve_timeout(&self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>, SendError> {
        self.claim_waiting(timeout)
            .map(|pos| self.lend(pos))
            .ok_or_else(|| self.timed_out("reserve_timeout", timeout).into())
    }

    /// The old name of [`try_reserve`](Self::try_reserve).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `try_reserve`: every producer reserves in place"
    )]
    pub fn claim(&self) -> Option<MpmcWriteSlot<'_, T>> {
        self.try_reserve()
    }

    /// The old name of [`reserve_timeout`](Self::reserve_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `reserve_timeout`: every producer reserves in place"
    )]
    pub fn claim_timeout(&self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>> {
        Ok(self.reserve_timeout(timeout)?)
    }

    /// The error of a wait for room that ended: who did not make any.
    #[cold]
    fn timed_out(&self, op: &'static str, waited: Duration) -> TimedOut {
        let attached = any_alive(self.mem.segment(), &self.mem.header().consumer_claims);
        self.mem.timed_out(op, waited, Role::Consumer, attached)
    }

    /// How this handle waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with: [`WaitStrategy::producer_default`] until
    /// [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Wait for room; while the ring stays full, look for a dead peer
    /// behind it every few milliseconds.
    #[inline]
    fn claim_waiting(&self, timeout: Duration) -> Option<u64> {
        claim(&self.mem, Side::Producer, &self.rec).or_else(|| self.wait_for_room(timeout))
    }

    #[inline(never)]
    fn wait_for_room(&self, timeout: Duration) -> Option<u64> {
        self.mem.count_blocked(Role::Producer);
        let event = &self.mem.header().producer_event;
        let ready = || claim(&self.mem, Side::Producer, &self.rec);
        let between = || {
            recover(&self.mem);
            wait::REPAIR_SLICE
        };
        wait::wait_in_slices(event, self.wait, timeout, ready, between)
    }

    fn fill(&self, pos: u64, value: T) {
        let slot = self.mem.slot(pos);
        // SAFETY: we own `pos` (our compare-exchange took it) and saw its
        // slot free for it (Acquire on the stamp the last reader released).
        unsafe { slot.write(value) };
        self.publish(pos);
    }

    fn lend(&self, pos: u64) -> MpmcWriteSlot<'_, T> {
        // SAFETY: as in `fill`; zeroing means an unwritten claim can never
        // deliver the previous lap's value a second time.
        unsafe { self.mem.slot(pos).write(T::zeroed()) };
        MpmcWriteSlot { tx: self, pos }
    }
}

/// A ring of a run-time layout (`rings/runtime.rs`): values as bytes,
/// through the same claims, stamps and waits as every value.
impl MpmcProducer<Runtime> {
    /// Claim a position, waiting up to `timeout` for room (a zero timeout
    /// does not wait, and says `Full`): its slot, and the first of its
    /// value's bytes, zeroed, in place until the slot commits.
    pub(crate) fn reserve_bytes(
        &self,
        timeout: Duration,
    ) -> Result<(MpmcWriteSlot<'_, Runtime>, *mut u8), SendError> {
        let slot = match timeout.is_zero() {
            true => self.try_reserve().ok_or(SendError::Full)?,
            false => self.reserve_timeout(timeout)?,
        };
        // SAFETY: the claim is ours until the slot commits or is dropped;
        // zeroed as `lend` zeroes a typed value.
        let value = unsafe {
            self.mem.zero_values(slot.pos, 1);
            self.mem.runtime_value_to_write(slot.pos)
        };
        Ok((slot, value))
    }

    /// Push `value` (the layout's size: the caller checked) if there is
    /// room; `Full` if not.
    pub(crate) fn try_push_bytes(&self, value: &[u8]) -> Result<(), SendError> {
        match claim(&self.mem, Side::Producer, &self.rec) {
            Some(pos) => {
                self.fill_bytes(pos, value);
                Ok(())
            }
            None => {
                self.mem.count_blocked(Role::Producer);
                Err(SendError::Full)
            }
        }
    }

    /// Push `value`, waiting up to `timeout` for room (a zero timeout is
    /// [`try_push_bytes`](Self::try_push_bytes)).
    pub(crate) fn push_bytes_timeout(
        &self,
        value: &[u8],
        timeout: Duration,
    ) -> Result<(), SendError> {
        if timeout.is_zero() {
            return self.try_push_bytes(value);
        }
        match self.claim_waiting(timeout) {
            Some(pos) => {
                self.fill_bytes(pos, value);
                Ok(())
            }
            None => Err(self.timed_out("push_timeout", timeout).into()),
        }
    }

    /// [`fill`](Self::fill), of bytes.
    fn fill_bytes(&self, pos: u64, value: &[u8]) {
        // SAFETY: as in `fill`: we own `pos` and saw its slot free for it.
        unsafe { self.mem.write_runtime_value(pos, value) };
        self.publish(pos);
    }
}

impl<T> MpmcProducer<T> {
    fn publish(&self, pos: u64) {
        self.rec.committing(&self.mem.header().producer_claims);
        self.mem.slot(pos).publish(pos);
        self.finish();
    }

    /// Give up a claimed position: consumers pass over it.
    fn skip(&self, pos: u64) {
        self.mem.slot(pos).publish_skip(pos);
        // Loom does not otherwise preempt a skipper between its skip and
        // the wakeup (the skip's Release in `publish_skip` is caught only
        // with this point).
        crate::platform::sync::preemption_point();
        self.finish();
    }

    fn finish(&self) {
        self.rec.finish();
        wait::notify(&self.mem.header().consumer_event);
    }
}

/// A producer handle of a stream the application names, from
/// [`Mpmc::producer_stream`](crate::Mpmc::producer_stream): a [`MpmcProducer`] that holds one position
/// at a time (its calls take `&mut self`) and keeps a count of what its
/// stream committed that survives the process.
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-mpmc-stream-type-{}", std::process::id());
/// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
/// let (mut feed, rx) = (ring.producer_stream(1)?, ring.consumer()?);
/// let mut slot = feed.try_reserve().expect("room");
/// *slot = 5;
/// slot.commit();
/// feed.push_timeout(6, Duration::from_millis(10)).unwrap();
/// assert_eq!(feed.committed(), 2);
/// assert_eq!((rx.try_pop(), rx.try_pop()), (Some(5), Some(6)));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct MpmcStream<T> {
    pub(super) tx: MpmcProducer<T>,
}

impl<T> std::fmt::Debug for MpmcStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcStream")
            .field("ring", &self.tx.mem.segment().name().as_str())
            .field("committed", &self.committed())
            .finish_non_exhaustive()
    }
}

impl<T> MpmcStream<T> {
    pub(super) fn new(mem: Memory<T>, wait: WaitStrategy, id: u32) -> Result<Self> {
        MpmcProducer::new_stream(mem, wait, id).map(|tx| MpmcStream { tx })
    }

    /// Values committed under this stream's id so far, by every handle of
    /// it (a killed one included): where a restarted producer resumes.
    pub fn committed(&self) -> u64 {
        self.tx.rec.committed().unwrap_or(0)
    }

    /// Close the ring, as [`MpmcProducer::close`] does.
    pub fn close(self) {
        let MpmcStream { tx } = self;
        tx.close();
    }
}

#[cfg(shmring_loom)]
#[doc(hidden)]
impl<T: Pod + Send> MpmcStream<T> {
    /// For loom models: this handle's process dies now, holding nothing.
    pub fn die(self) {
        let MpmcStream { tx } = self;
        tx.die();
    }

    /// For loom models: claim a position, write `value`, count it, and
    /// die before the stamp that would commit it.
    pub fn die_committing(self, value: T) {
        let MpmcStream { tx } = self;
        let pos = loop {
            if let Some(pos) = claim(&tx.mem, Side::Producer, &tx.rec) {
                break pos;
            }
            crate::platform::sync::preemption_point();
        };
        // SAFETY: as in `fill`: we own `pos`.
        unsafe { tx.mem.slot(pos).write(value) };
        tx.rec.committing(&tx.mem.header().producer_claims);
        tx.die();
    }
}

impl<T: Pod + Send> MpmcStream<T> {
    /// How this handle waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.tx.set_wait_strategy(strategy);
    }

    /// The strategy this handle waits with: [`WaitStrategy::producer_default`]
    /// until [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.tx.wait_strategy()
    }

    /// [`MpmcProducer::try_push`], counted.
    pub fn try_push(&mut self, value: T) -> Result<(), Full<T>> {
        self.tx.try_push(value)
    }

    /// [`MpmcProducer::push_timeout`], counted.
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PushTimeout<T>> {
        self.tx.push_timeout(value, timeout)
    }

    /// [`MpmcProducer::try_reserve`]: counted when the slot is committed.
    pub fn try_reserve(&mut self) -> Option<MpmcWriteSlot<'_, T>> {
        self.tx.try_reserve()
    }

    /// [`MpmcProducer::reserve_timeout`]: counted when the slot is committed.
    pub fn reserve_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<MpmcWriteSlot<'_, T>, SendError> {
        self.tx.reserve_timeout(timeout)
    }

    /// The old name of [`try_reserve`](Self::try_reserve).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `try_reserve`: every producer reserves in place"
    )]
    pub fn claim(&mut self) -> Option<MpmcWriteSlot<'_, T>> {
        self.tx.try_reserve()
    }

    /// The old name of [`reserve_timeout`](Self::reserve_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `reserve_timeout`: every producer reserves in place"
    )]
    pub fn claim_timeout(&mut self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>> {
        Ok(self.tx.reserve_timeout(timeout)?)
    }
}

/// A claimed slot, lent in place for writing.
///
/// Write the value through `DerefMut` or [`write`](Self::write), then
/// [`commit`](Self::commit) it. Like every write guard in this crate, what
/// is not committed is not published: a slot dropped without `commit`
/// (also while its thread panics) publishes a skip, so the position carries
/// nothing and consumers pass over it.
///
/// ```
/// # let name = format!("shmring-doc-wslot-{}", std::process::id());
/// let ring = shmring::Mpmc::<[u64; 4]>::create(&name, 8)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// let mut slot = tx.try_reserve().expect("room");
/// slot[0] = 7; // written in place
/// slot.commit();
/// drop(tx.try_reserve()); // reserved, never committed: a skip
/// assert_eq!(rx.try_pop(), Some([7, 0, 0, 0]));
/// assert_eq!(rx.try_pop(), None);
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a write slot publishes only when committed; dropping it skips the position"]
pub struct MpmcWriteSlot<'a, T> {
    tx: &'a MpmcProducer<T>,
    pos: u64,
}

impl<T> std::fmt::Debug for MpmcWriteSlot<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcWriteSlot")
            .field("pos", &self.pos)
            .finish()
    }
}

impl<T: Pod> MpmcWriteSlot<'_, T> {
    /// Store `value` in the slot (published by [`commit`](Self::commit)).
    pub fn write(&mut self, value: T) {
        **self = value;
    }

    /// Publish the slot's value: consumers may take it from now on.
    pub fn commit(self) {
        let this = std::mem::ManuallyDrop::new(self);
        this.tx.publish(this.pos);
    }
}

impl<T: Pod> Deref for MpmcWriteSlot<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the claim is ours until dropped.
        unsafe { self.tx.mem.slot(self.pos).value_ref() }
    }
}

impl<T: Pod> DerefMut for MpmcWriteSlot<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the claim is ours until dropped; `&mut self` makes it unique.
        unsafe { self.tx.mem.slot(self.pos).value_mut() }
    }
}

impl<T> Drop for MpmcWriteSlot<'_, T> {
    /// Not committed: publish a skip.
    fn drop(&mut self) {
        self.tx.skip(self.pos);
    }
}

impl<T: Pod + Send> crate::hook::Waitable for MpmcProducer<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        let mem = self.mem.clone();
        crate::hook::WakeWord::new(self.mem.clone(), false).repairing(move || {
            super::repair_if_needed(&mem);
        })
    }
}

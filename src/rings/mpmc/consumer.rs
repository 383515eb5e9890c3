//! MPMC consumers and the in-place read slot.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::repair::{adopt_orphan, adopt_under, look_for_orphan, recover, Orphan};
#[cfg(shmring_loom)]
use super::repair::{scan_orphans, Scan, REPAIR_BUDGET};
use super::{claim, release, stalled_at, Memory};
use crate::error::{Error, RecvError, Result};
use crate::format::slot::Runtime;
use crate::kind::Role;
use crate::peers::claims::{self, any_alive, Recorder, RepairLock, Side};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// How long [`MpmcConsumer::take_over`] waits for another handle's repair
/// (repairs are short; a dead repairer's lock is taken over at once).
const TAKE_OVER_PATIENCE: Duration = Duration::from_millis(200);

/// A consumer handle of an [`Mpmc`](crate::Mpmc) ring. Like a producer, each handle
/// (each clone) has its own claim record: `Send`, not `Sync`.
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-mpmc-consumer-{}", std::process::id());
/// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(7).unwrap();
/// assert_eq!(rx.pop_timeout(Duration::from_millis(10))?, 7);
/// assert!(rx.try_pop().is_none());
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct MpmcConsumer<T> {
    pub(super) mem: Memory<T>,
    wait: WaitStrategy,
    rec: Recorder,
    /// Positions this handle holds, unreleased, for the next
    /// `MessageReceiver` call (a run it was asked to keep).
    pub(super) kept: Vec<u64>,
}

impl<T> std::fmt::Debug for MpmcConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcConsumer")
            .field("ring", &self.mem.segment().name().as_str())
            .finish_non_exhaustive()
    }
}

impl<T> MpmcConsumer<T> {
    pub(super) fn new(mem: Memory<T>, wait: WaitStrategy) -> Result<Self> {
        // Repair (and free) the records of the dead first, so that new
        // handles find one even after many deaths.
        recover(&mem);
        let rec = Recorder::take(mem.segment(), &mem.header().consumer_claims, Side::Consumer)?;
        Ok(MpmcConsumer {
            mem,
            wait,
            rec,
            kept: Vec::new(),
        })
    }

    /// Another handle on the same ring, with its own claim record (one per
    /// thread: handles are `Send`, not `Sync`). `TooManyHandles` as for
    /// [`Mpmc::consumer`](crate::Mpmc::consumer).
    pub fn try_clone(&self) -> Result<Self> {
        Self::new(Arc::clone(&self.mem), self.wait)
    }
}

#[cfg(shmring_loom)]
#[doc(hidden)]
impl<T> MpmcConsumer<T> {
    /// For loom models: this handle's process dies now, holding whatever it
    /// took (forget the guards first).
    pub fn die(mut self) {
        self.rec.die(&self.mem.header().consumer_claims);
    }

    /// For loom models: take over a dead consumer's value, as
    /// [`try_read`](Self::try_read) does on an empty ring, and die inside the
    /// repair, holding the value and the repair lock. Whether it took one.
    pub fn die_adopting(mut self) -> bool {
        let mem = Arc::clone(&self.mem);
        let recovery = &mem.header().recovery;
        let Some(lock) = RepairLock::try_acquire(mem.segment(), recovery) else {
            return false;
        };
        let mut budget = REPAIR_BUDGET;
        let adopted = matches!(
            scan_orphans(&mem, Some(&self.rec), &mut budget),
            Scan::Adopted(_)
        );
        self.rec.die(&mem.header().consumer_claims);
        lock.die();
        adopted
    }
}

impl<T> Drop for MpmcConsumer<T> {
    fn drop(&mut self) {
        self.rec.release(&self.mem.header().consumer_claims);
    }
}

impl<T: Pod + Send> MpmcConsumer<T> {
    /// Pop the oldest committed value, if any. (After a consumer died
    /// holding a value, a live consumer takes that value over here when the
    /// ring is otherwise empty: it comes out of order.)
    ///
    /// "Empty" is decided by the next position: while a producer has
    /// claimed it and not yet committed (a [`MpmcWriteSlot`](crate::MpmcWriteSlot) being filled,
    /// or a producer preempted between claim and publish), `try_pop`
    /// returns `None` even if values at later positions are committed.
    /// They are not skipped: positions are taken in order, and the claimed
    /// one finishes with a value or a skip. Where a brief wait is
    /// acceptable, use [`pop_timeout`](Self::pop_timeout), which waits
    /// (spinning first) for that producer, and repairs the position if its
    /// holder died.
    ///
    /// ```
    /// # let name = format!("shmring-doc-try-pop-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
    /// let (a, b, rx) = (ring.producer()?, ring.producer()?, ring.consumer()?);
    /// let slot = a.try_reserve().expect("room"); // position 0, being written
    /// b.try_push(2).unwrap(); // position 1, committed
    /// assert_eq!(rx.try_pop(), None); // position 0 is not ready yet
    /// drop(slot); // uncommitted: position 0 becomes a skip
    /// assert_eq!(rx.try_pop(), Some(2));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Option<T> {
        self.try_claim().map(|pos| self.take(pos))
    }

    /// Whether a receive would find nothing now: no value claimed past the
    /// consumers' shared position, and none this handle kept
    /// ([`AfterRun::Keep`](crate::AfterRun::Keep)). A hint, for a caller
    /// deciding whether to look: another consumer may take the next value
    /// first, and a value claimed but not yet published counts as there.
    ///
    /// ```
    /// # let name = format!("shmring-doc-mpmc-is-empty-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// assert!(rx.is_empty());
    /// tx.try_push(1).unwrap();
    /// assert!(!rx.is_empty());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        let header = self.mem.header();
        // Relaxed: a hint; whoever acts on it claims with the ring's own
        // orderings.
        self.kept.is_empty()
            && header.tail.load(Ordering::Relaxed) == header.head.load(Ordering::Relaxed)
    }

    /// Pop a value, waiting up to `timeout`. A zero timeout is a
    /// [`try_pop`](Self::try_pop). Values a dead producer claimed and never
    /// published are repaired (skipped) while waiting, and a value a dead
    /// consumer took and never released is taken over and returned (out of
    /// order), also before [`RecvError::Closed`]; [`RecvError::Stalled`]
    /// if the wait still ended behind an unpublished position (its
    /// producer is alive, or repair is off, see
    /// [`Mpmc::recover`](crate::Mpmc::recover)); else `Timeout`.
    #[inline]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.claim_waiting(timeout, "pop_timeout")
            .map(|pos| self.take(pos))
    }

    /// Borrow the oldest committed value in place, if any; dropping the
    /// guard releases its slot.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-mpmc-read-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(3).unwrap();
    /// assert_eq!(rx.try_read().map(|slot| *slot), Some(3));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_read(&self) -> Option<MpmcReadSlot<'_, T>> {
        self.try_claim().map(|pos| MpmcReadSlot { rx: self, pos })
    }

    /// The old name of [`try_read`](Self::try_read).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `try_read`: `try_` marks every call that never waits"
    )]
    pub fn read(&self) -> Option<MpmcReadSlot<'_, T>> {
        self.try_read()
    }

    /// [`try_read`](Self::try_read), waiting up to `timeout`; errors as for
    /// [`pop_timeout`](Self::pop_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-m-mpmc-read-timeout-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(4).unwrap();
    /// assert_eq!(*rx.read_timeout(Duration::from_millis(10))?, 4);
    /// assert!(rx.read_timeout(Duration::from_millis(1)).is_err()); // empty
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> Result<MpmcReadSlot<'_, T>, RecvError> {
        self.claim_waiting(timeout, "read_timeout")
            .map(|pos| MpmcReadSlot { rx: self, pos })
    }

    /// Take over, in place, a value that a dead consumer took and never
    /// released, if one waits that no live consumer holds; `None` when none
    /// does. The ring's other values are not looked at.
    ///
    /// [`try_read`](Self::try_read) takes such values over too, but only when the
    /// ring is otherwise empty. A restarted consumer that must deliver what
    /// its predecessor held before anything newer (a forwarder that numbers
    /// what it sends, and maps [`MpmcReadSlot::position`] to the number it
    /// used) calls this first, until `None`. `Busy` if another live handle
    /// kept the repair lock past a short bound.
    ///
    /// ```
    /// # let name = format!("shmring-doc-take-over-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(5).unwrap();
    /// let held = rx.try_read().expect("a value");
    /// assert_eq!(held.position(), 0);
    /// std::mem::forget(held); // as if the process died holding it
    /// drop(rx); // its record stays behind, naming position 0
    /// let rx = ring.consumer()?; // the restarted consumer
    /// let slot = rx.take_over()?.expect("the value the dead one held");
    /// assert_eq!((*slot, slot.position()), (5, 0));
    /// drop(slot);
    /// assert!(rx.take_over()?.is_none());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn take_over(&self) -> Result<Option<MpmcReadSlot<'_, T>>> {
        let mem = &self.mem;
        let recovery = &mem.header().recovery;
        let lock = RepairLock::acquire_within(mem.segment(), recovery, TAKE_OVER_PATIENCE)
            .ok_or_else(|| Error::Busy {
                name: mem.segment().name().as_str().to_owned(),
                what: "another handle is repairing the ring (take_over)",
            })?;
        Ok(match adopt_under(mem, &self.rec, lock) {
            Orphan::Adopted(pos) => Some(MpmcReadSlot { rx: self, pos }),
            Orphan::None | Orphan::Busy => None,
        })
    }

    /// How this handle waits when the ring is empty.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with: [`WaitStrategy::default`] until
    /// [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    #[inline]
    pub(super) fn try_claim(&self) -> Option<u64> {
        claim(&self.mem, Side::Consumer, &self.rec).or_else(|| adopt_orphan(&self.mem, &self.rec))
    }

    /// Wait for a value; while the ring is stalled behind an unpublished
    /// position, repair it every few milliseconds if its producer is dead.
    #[inline]
    fn claim_waiting(&self, timeout: Duration, op: &'static str) -> Result<u64, RecvError> {
        match self.try_claim() {
            Some(pos) => Ok(pos),
            None => self.wait_for_value(timeout, op),
        }
    }

    #[inline(never)]
    fn wait_for_value(&self, timeout: Duration, op: &'static str) -> Result<u64, RecvError> {
        if !timeout.is_zero() {
            self.mem.count_blocked(Role::Consumer);
        }
        let header = self.mem.header();
        let event = &header.consumer_event;
        // Between slices: repair (`repair_if_needed`). The dead wake no
        // one, so an idle wait looks at least every `IDLE_SLICE`.
        let between = || match super::repair_if_needed(&self.mem) {
            true => wait::REPAIR_SLICE,
            false => wait::IDLE_SLICE,
        };
        let ready = || {
            if let Some(pos) = self.try_claim() {
                return Some(Ok(pos));
            }
            // Closed: one more look, now that everything published before
            // the close is visible; behind a stalled position, wait for
            // its repair instead (values may follow it).
            if !wait::is_closed(event) {
                return None;
            }
            match self.try_claim() {
                Some(pos) => Some(Ok(pos)),
                None if stalled_at(&self.mem).is_some() => None,
                None => self.closing(),
            }
        };
        wait::wait_in_slices(event, self.wait, timeout, ready, between).unwrap_or_else(|| {
            Err(match stalled_at(&self.mem) {
                Some(position) if !timeout.is_zero() => self.mem.stalled(op, position),
                _ => {
                    let attached =
                        any_alive(self.mem.segment(), &self.mem.header().producer_claims);
                    self.mem
                        .timed_out(op, timeout, Role::Producer, attached)
                        .into()
                }
            })
        })
    }

    /// The ring is closed and nothing is left to claim: before reporting
    /// `Closed`, take over a value a dead consumer took and never released,
    /// if a consumer record's lease is free (the check costs a lock probe
    /// per record, and only here, at the end of a stream). `None` (look
    /// again) while another live handle repairs: it may be the repair that
    /// flags such a value, and it wakes us when it lets the lock go.
    #[cold]
    fn closing(&self) -> Option<Result<u64, RecvError>> {
        let dead = claims::any_dead(self.mem.segment(), &self.mem.header().consumer_claims);
        if dead {
            match look_for_orphan(&self.mem, &self.rec) {
                Orphan::Adopted(pos) => return Some(Ok(pos)),
                Orphan::Busy => return None,
                Orphan::None => {}
            }
        }
        Some(Err(RecvError::Closed {
            name: self.mem.segment().name().as_str().to_owned(),
        }))
    }

    fn take(&self, pos: u64) -> T {
        // SAFETY: we own `pos` (our compare-exchange, or a dead consumer's
        // that we took over, took it) and saw it full (Acquire on the
        // producer's publish).
        let value = unsafe { self.mem.slot(pos).read() };
        self.release(pos);
        value
    }
}

/// A ring of a run-time layout (`rings/runtime.rs`): values as bytes,
/// through the same claims, stamps, waits and takeovers as every value.
impl MpmcConsumer<Runtime> {
    /// Claim the oldest value, if there is one: its slot, and the first of
    /// its bytes, in place until the slot is dropped.
    pub(crate) fn try_read_bytes(&self) -> Option<(MpmcReadSlot<'_, Runtime>, *const u8)> {
        self.try_read().map(|slot| self.lent_bytes(slot))
    }

    /// [`try_read_bytes`](Self::try_read_bytes), waiting up to `timeout`
    /// for a value (errors as for [`pop_timeout`](Self::pop_timeout)).
    pub(crate) fn read_bytes_timeout(
        &self,
        timeout: Duration,
    ) -> Result<(MpmcReadSlot<'_, Runtime>, *const u8), RecvError> {
        self.read_timeout(timeout).map(|slot| self.lent_bytes(slot))
    }

    fn lent_bytes<'a>(
        &self,
        slot: MpmcReadSlot<'a, Runtime>,
    ) -> (MpmcReadSlot<'a, Runtime>, *const u8) {
        // SAFETY: the claim is ours, published, until the slot is dropped.
        let value = unsafe { self.mem.runtime_value_to_read(slot.pos) };
        (slot, value)
    }

    /// Pop the oldest value into `out` (the layout's size: the caller
    /// checked), if there is one.
    pub(crate) fn try_pop_bytes(&self, out: &mut [u8]) -> bool {
        match self.try_claim() {
            Some(pos) => {
                self.take_bytes(pos, out);
                true
            }
            None => false,
        }
    }

    /// Pop the oldest value into `out`, waiting up to `timeout` for one
    /// (as [`pop_timeout`](Self::pop_timeout)).
    pub(crate) fn pop_bytes_timeout(
        &self,
        out: &mut [u8],
        timeout: Duration,
    ) -> Result<(), RecvError> {
        let pos = self.claim_waiting(timeout, "pop_timeout")?;
        self.take_bytes(pos, out);
        Ok(())
    }

    /// [`take`](Self::take), into bytes.
    fn take_bytes(&self, pos: u64, out: &mut [u8]) {
        // SAFETY: as in `take`: we own `pos` and saw it full.
        unsafe { self.mem.read_runtime_value(pos, out) };
        self.release(pos);
    }
}

impl<T> MpmcConsumer<T> {
    fn release(&self, pos: u64) {
        release(&self.mem, pos);
        self.rec.finish();
    }
}

/// A committed value, lent in place. Dropping it releases the slot (also
/// while panicking: the value was delivered).
///
/// ```
/// # let name = format!("shmring-doc-mpmc-rslot-{}", std::process::id());
/// let ring = shmring::Mpmc::<[u8; 64]>::create(&name, 4)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push([9; 64]).unwrap();
/// let slot = rx.try_read().expect("a value");
/// assert_eq!(slot[63], 9); // read in place, no copy
/// drop(slot); // released: the producer may reuse the slot
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a read slot releases its value when dropped"]
pub struct MpmcReadSlot<'a, T> {
    pub(super) rx: &'a MpmcConsumer<T>,
    pub(super) pos: u64,
}

impl<T> std::fmt::Debug for MpmcReadSlot<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcReadSlot")
            .field("pos", &self.pos)
            .finish()
    }
}

impl<T> MpmcReadSlot<'_, T> {
    /// The value's position in the ring: the ticket it was pushed under
    /// (0, 1, 2, ... over the ring's life, never reused). Consumers share
    /// the positions, so one consumer sees some of them, ascending except
    /// for values taken over from dead consumers.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl<T: Pod> Deref for MpmcReadSlot<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the claim is ours until dropped; the producer published it.
        unsafe { self.rx.mem.slot(self.pos).value_ref() }
    }
}

impl<T> Drop for MpmcReadSlot<'_, T> {
    fn drop(&mut self) {
        self.rx.release(self.pos);
    }
}

impl<T: Pod + Send> crate::hook::Waitable for MpmcConsumer<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        let mem = self.mem.clone();
        crate::hook::WakeWord::new(self.mem.clone(), true).repairing(move || {
            super::repair_if_needed(&mem);
        })
    }
}

//! The multi-producer multi-consumer ring of fixed-size `Pod` values.
//!
//! # Algorithm
//!
//! Dmitry Vyukov's bounded MPMC queue (as in crossbeam's `ArrayQueue` and
//! rigtorp's `MPMCQueue`), with its turn numbers kept in the slot stamps of
//! `slot.rs`. `tail` and `head` in the header are tickets: the next position
//! to write and the next to read, each on its own cache line.
//!
//! * push: read `tail`; if `slot(tail)` is `free(tail)`, take the ticket
//!   with a compare-exchange `tail -> tail + 1`, write the value and publish
//!   `full(tail)` (Release). A stamp below `free(tail)` means the slot still
//!   holds the value of `tail - cap`: the ring is full. A stamp above it
//!   means another producer got there first: re-read `tail` and retry.
//! * pop: the mirror image on `head` and `full(head)`; after reading the
//!   value, release the slot as `free(head + cap)` (Release) for the
//!   producer one lap later.
//!
//! The compare-exchange only decides who owns a position, so it is Relaxed;
//! the value itself is handed over by the stamp's Release/Acquire pair. A
//! position is claimed exactly once and published exactly once, so nothing
//! is lost or duplicated, and one producer's values are read in its order.
//!
//! Zero-copy: [`MpmcProducer::claim`] takes a position and lends its slot
//! as `&mut T`; dropping the guard publishes it. [`MpmcConsumer::read`]
//! lends a committed value in place; dropping the guard releases it. A
//! claimed position cannot be given back without holding up everyone behind
//! it, so a claim always publishes: the slot is zeroed when claimed, and an
//! unwritten claim delivers `T::zeroed()`, never an older value twice.
//!
//! Dying peers: a producer that dies between claiming and publishing (or a
//! consumer between claiming and releasing) leaves a position no one will
//! ever finish, and everyone behind it waits. Waiters still return at their
//! timeout; a consumer that times out behind such a position gets
//! `Error::Stalled` naming it, and [`Mpmc::stalled_at`] reports it. (The
//! ring is not repaired; recovering it needs a record of who claimed what.)
//!
//! Shared memory is untrusted: every retry loop is bounded, so a peer that
//! scribbles on the tickets or stamps makes calls report full or empty (or
//! read a garbage but valid `T`), never spin forever or leave the slots.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, PushTimeout, Result, RingKind};
use crate::ring::RingMemory;
use crate::segment::{CreateOptions, OpenOptions};
use crate::slot::{free_stamp, full_stamp, Slot};
use crate::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// How many times a claim retries on a moving ticket before it reports
/// full or empty. Honest contention settles in a few; only a hostile peer
/// could exhaust this.
const MAX_RETRIES: u32 = 1 << 12;

type Memory<T> = Arc<RingMemory<Slot<T>>>;

/// A multi-producer multi-consumer ring of `T` in a shared-memory segment.
///
/// Any number of producers and consumers, in any number of processes, may
/// use it at once; [`producer`](Self::producer) and
/// [`consumer`](Self::consumer) hand out handles, which are cheap to clone.
pub struct Mpmc<T> {
    mem: Memory<T>,
}

impl<T: Pod + Send> Mpmc<T> {
    /// Create a ring named `name` with room for `capacity` values (rounded up
    /// to a power of two), mode 0600. This process owns the name until its
    /// last handle drops, unless [`persist`](Self::persist) is called.
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &CreateOptions::default())
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        let mem = RingMemory::create_slots(name, RingKind::Mpmc, capacity, opts)?;
        Ok(Mpmc { mem: Arc::new(mem) })
    }

    /// Open a ring another process created, validating its header against `T`.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(name: &str, opts: &OpenOptions) -> Result<Self> {
        let mem = RingMemory::open_slots(name, RingKind::Mpmc, opts)?;
        Ok(Mpmc { mem: Arc::new(mem) })
    }

    /// A producer handle. There may be any number.
    pub fn producer(&self) -> Result<MpmcProducer<T>> {
        Ok(MpmcProducer {
            mem: Arc::clone(&self.mem),
            wait: WaitStrategy::default(),
        })
    }

    /// A consumer handle. There may be any number.
    pub fn consumer(&self) -> Result<MpmcConsumer<T>> {
        Ok(MpmcConsumer {
            mem: Arc::clone(&self.mem),
            wait: WaitStrategy::default(),
        })
    }
}

impl<T> Mpmc<T> {
    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mem.capacity() as usize
    }

    /// The segment's name, without a leading `/`.
    pub fn name(&self) -> &str {
        self.mem.segment().name().as_str()
    }

    /// Leave the segment in /dev/shm when this process is done with it.
    pub fn persist(&self) {
        self.mem.segment().persist()
    }

    /// Whether this handle created the name and will unlink it.
    pub fn owns_name(&self) -> bool {
        self.mem.segment().owns_name()
    }

    /// Positions claimed by producers so far (pushed, or being written).
    pub fn pushed(&self) -> u64 {
        self.mem.header().tail.load(Ordering::Relaxed)
    }

    /// Positions claimed by consumers so far (popped, or being read).
    pub fn popped(&self) -> u64 {
        self.mem.header().head.load(Ordering::Relaxed)
    }

    /// The position consumers are waiting behind if a producer claimed it
    /// but has not published it: a slow producer, or a dead one.
    pub fn stalled_at(&self) -> Option<u64> {
        stalled_at(&self.mem)
    }
}

impl<T> std::fmt::Debug for Mpmc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpmc")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .finish()
    }
}

fn stalled_at<T>(mem: &RingMemory<Slot<T>>) -> Option<u64> {
    let header = mem.header();
    let head = header.head.load(Ordering::Relaxed);
    let tail = header.tail.load(Ordering::Relaxed);
    let waiting = tail.wrapping_sub(head);
    (waiting > 0 && waiting <= mem.capacity() && mem.slot(head).stamp() == free_stamp(head))
        .then_some(head)
}

/// Signed distance from `expected` to `stamp`: zero when the slot is ready
/// for us, negative when it is a lap behind, positive when others moved on.
#[inline(always)]
fn lag(stamp: u64, expected: u64) -> i64 {
    stamp.wrapping_sub(expected) as i64
}

/// The stamp showed `pos` already taken: move on to the shared ticket, or
/// at least one past `pos` if our read of the ticket is older than that
/// (so every retry makes progress, even on a stale read).
#[inline(always)]
fn catch_up(ticket: &crate::sync::AtomicU64, pos: u64) -> u64 {
    let now = ticket.load(Ordering::Relaxed);
    if lag(now, pos) > 0 {
        now
    } else {
        pos.wrapping_add(1)
    }
}

/// Take the next ticket from `ticket` whose slot shows `ready(pos)`: the
/// next position to write (`tail`, `free_stamp`) or to read (`head`,
/// `full_stamp`). `None` when the slot is a lap behind: full or empty.
#[inline]
fn claim<T>(
    mem: &RingMemory<Slot<T>>,
    ticket: &crate::sync::AtomicU64,
    ready: fn(u64) -> u64,
) -> Option<u64> {
    let mut pos = ticket.load(Ordering::Relaxed);
    for _ in 0..MAX_RETRIES {
        match lag(mem.slot(pos).stamp(), ready(pos)) {
            0 => match ticket.compare_exchange(
                pos,
                pos.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(pos),
                Err(now) => pos = now,
            },
            d if d < 0 => return None,
            _ => pos = catch_up(ticket, pos),
        }
    }
    None
}

/// Take the next position to write, if the ring has room.
#[inline]
fn claim_push<T>(mem: &RingMemory<Slot<T>>) -> Option<u64> {
    claim(mem, &mem.header().tail, free_stamp)
}

/// Take the next position to read, if a value is committed there.
#[inline]
fn claim_pop<T>(mem: &RingMemory<Slot<T>>) -> Option<u64> {
    claim(mem, &mem.header().head, full_stamp)
}

/// A producer handle of an [`Mpmc`] ring.
pub struct MpmcProducer<T> {
    mem: Memory<T>,
    wait: WaitStrategy,
}

impl<T> Clone for MpmcProducer<T> {
    fn clone(&self) -> Self {
        MpmcProducer {
            mem: Arc::clone(&self.mem),
            wait: self.wait,
        }
    }
}

impl<T: Pod + Send> MpmcProducer<T> {
    /// Push `value` if there is room; give it back if the ring is full.
    #[inline]
    pub fn try_push(&self, value: T) -> std::result::Result<(), T> {
        match claim_push(&self.mem) {
            Some(pos) => {
                self.fill(pos, value);
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Push `value`, waiting up to `timeout` for room. A zero timeout is a
    /// [`try_push`](Self::try_push); on timeout the value is given back.
    pub fn push_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), PushTimeout<T>> {
        match self.claim_waiting(timeout) {
            Some(pos) => {
                self.fill(pos, value);
                Ok(())
            }
            None => Err(PushTimeout(value)),
        }
    }

    /// Claim a slot to write in place, if there is room. The slot is zeroed;
    /// dropping the guard publishes it, written or not.
    pub fn claim(&self) -> Option<MpmcWriteSlot<'_, T>> {
        claim_push(&self.mem).map(|pos| self.lend(pos))
    }

    /// [`claim`](Self::claim), waiting up to `timeout` for room.
    pub fn claim_timeout(&self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>> {
        self.claim_waiting(timeout)
            .map(|pos| self.lend(pos))
            .ok_or(Error::Timeout)
    }

    /// How this handle waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    fn claim_waiting(&self, timeout: Duration) -> Option<u64> {
        claim_push(&self.mem).or_else(|| {
            let event = &self.mem.header().producer_event;
            wait::wait_until(event, self.wait, timeout, || claim_push(&self.mem))
        })
    }

    fn fill(&self, pos: u64, value: T) {
        let slot = self.mem.slot(pos);
        // SAFETY: we own `pos` (our compare-exchange took it) and saw its
        // slot free for it (Acquire on the stamp the last reader released).
        unsafe { slot.write(value) };
        publish(&self.mem, pos);
    }

    fn lend(&self, pos: u64) -> MpmcWriteSlot<'_, T> {
        // SAFETY: as in `fill`; zeroing means an unwritten claim can never
        // deliver the previous lap's value a second time.
        unsafe { self.mem.slot(pos).write(T::zeroed()) };
        MpmcWriteSlot {
            mem: &self.mem,
            pos,
        }
    }
}

fn publish<T>(mem: &RingMemory<Slot<T>>, pos: u64) {
    mem.slot(pos).publish(pos);
    wait::notify(&mem.header().consumer_event);
}

/// A claimed slot, lent in place for writing. Dropping it publishes the
/// value to the consumers.
pub struct MpmcWriteSlot<'a, T> {
    mem: &'a RingMemory<Slot<T>>,
    pos: u64,
}

impl<T: Pod> Deref for MpmcWriteSlot<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the claim is ours until dropped.
        unsafe { self.mem.slot(self.pos).value_ref() }
    }
}

impl<T: Pod> DerefMut for MpmcWriteSlot<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the claim is ours until dropped; `&mut self` makes it unique.
        unsafe { self.mem.slot(self.pos).value_mut() }
    }
}

impl<T> Drop for MpmcWriteSlot<'_, T> {
    fn drop(&mut self) {
        publish(self.mem, self.pos);
    }
}

/// A consumer handle of an [`Mpmc`] ring.
pub struct MpmcConsumer<T> {
    mem: Memory<T>,
    wait: WaitStrategy,
}

impl<T> Clone for MpmcConsumer<T> {
    fn clone(&self) -> Self {
        MpmcConsumer {
            mem: Arc::clone(&self.mem),
            wait: self.wait,
        }
    }
}

impl<T: Pod + Send> MpmcConsumer<T> {
    /// Pop the oldest committed value, if any.
    #[inline]
    pub fn try_pop(&self) -> Option<T> {
        claim_pop(&self.mem).map(|pos| self.take(pos))
    }

    /// Pop a value, waiting up to `timeout`. A zero timeout is a
    /// [`try_pop`](Self::try_pop). `Error::Stalled` if the wait ended behind
    /// a position a producer claimed and never published; else `Timeout`.
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T> {
        self.claim_waiting(timeout).map(|pos| self.take(pos))
    }

    /// Borrow the oldest committed value in place, if any; dropping the
    /// guard releases its slot.
    pub fn read(&self) -> Option<MpmcReadSlot<'_, T>> {
        claim_pop(&self.mem).map(|pos| MpmcReadSlot {
            mem: &self.mem,
            pos,
        })
    }

    /// [`read`](Self::read), waiting up to `timeout`; errors as for
    /// [`pop_timeout`](Self::pop_timeout).
    pub fn read_timeout(&self, timeout: Duration) -> Result<MpmcReadSlot<'_, T>> {
        self.claim_waiting(timeout).map(|pos| MpmcReadSlot {
            mem: &self.mem,
            pos,
        })
    }

    /// How this handle waits when the ring is empty.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    fn claim_waiting(&self, timeout: Duration) -> Result<u64> {
        if let Some(pos) = claim_pop(&self.mem) {
            return Ok(pos);
        }
        let event = &self.mem.header().consumer_event;
        wait::wait_until(event, self.wait, timeout, || claim_pop(&self.mem)).ok_or_else(|| {
            match stalled_at(&self.mem) {
                Some(position) if !timeout.is_zero() => Error::Stalled { position },
                _ => Error::Timeout,
            }
        })
    }

    fn take(&self, pos: u64) -> T {
        // SAFETY: we own `pos` (our compare-exchange took it) and saw it full
        // (Acquire on the producer's publish).
        let value = unsafe { self.mem.slot(pos).read() };
        release(&self.mem, pos);
        value
    }
}

fn release<T>(mem: &RingMemory<Slot<T>>, pos: u64) {
    mem.slot(pos).release(pos, mem.capacity());
    wait::notify(&mem.header().producer_event);
}

/// A committed value, lent in place. Dropping it releases the slot.
pub struct MpmcReadSlot<'a, T> {
    mem: &'a RingMemory<Slot<T>>,
    pos: u64,
}

impl<T: Pod> Deref for MpmcReadSlot<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the claim is ours until dropped; the producer published it.
        unsafe { self.mem.slot(self.pos).value_ref() }
    }
}

impl<T> Drop for MpmcReadSlot<'_, T> {
    fn drop(&mut self) {
        release(self.mem, self.pos);
    }
}

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
//!   producer one lap later (zeroing the value first, in a ring created
//!   with `zero_after_use`: the same Release orders the zeros before that
//!   producer's write).
//!
//! The compare-exchange decides who owns a position (it is Release only so
//! that a repairer sees who claimed what, below); the value itself is
//! handed over by the stamp's Release/Acquire pair. A
//! position is claimed exactly once and published exactly once, so nothing
//! is lost or duplicated, and one producer's values are read in its order.
//!
//! Zero-copy: [`MpmcProducer::claim`] takes a position and lends its slot
//! as `&mut T` (zeroed); `commit` publishes it. [`MpmcConsumer::read`]
//! lends a committed value in place; dropping the guard releases it. A
//! claimed position cannot be given back without holding up everyone behind
//! it, so a claim always finishes: with the value when committed, with a
//! skip (`4p + 3`, which consumers pass over) if the guard drops
//! uncommitted (also during a panic), so a half-written value is never
//! delivered.
//!
//! Dying peers: a producer that dies between claiming and publishing (or a
//! consumer between claiming and releasing) leaves a position no one else
//! would finish. Every handle names the position it is about to take in its
//! claim record first (`peers/claims`), so a repairer can tell a dead holder
//! from a slow one: a dead producer's position is stamped skipped
//! (`4p + 3`) and consumers pass over it; a dead consumer's unreleased value
//! is flagged, and the next consumer that finds the ring empty takes it
//! over and delivers it. Who repairs: blocked calls, every 10 ms while they
//! wait behind such a position; a consumer waiting on an empty ring,
//! between its sleeps (at most 100 ms apart), when a consumer record's
//! lease is free; a consumer that finds the ring closed and empty, when a
//! consumer record's lease is free, before it reports `Closed`, taking the
//! value over itself (so `Closed` comes after the values of consumers that
//! died before the close); new handles, first; [`Mpmc::recover`], on
//! demand; [`MpmcConsumer::take_over`], a consumer that asks for a dead
//! one's values before newer ones (each slot names its
//! [`position`](MpmcReadSlot::position), so a restarted forwarder can tell
//! which of them it had sent). None of it runs on a call that finds a
//! value. Whoever lets the
//! repair lock go wakes the waiting consumers: one that found the lock
//! taken on its way to `Closed` waits for it and looks again. A live
//! holder's position is never touched: a consumer that times out behind
//! one gets `RecvError::Stalled` naming it.
//!
//! Shared memory is untrusted: every retry loop is bounded, so a peer that
//! scribbles on the tickets or stamps makes calls report full or empty (or
//! read a garbage but valid `T`), never spin forever or leave the slots.

use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;

use crate::error::Result;
use crate::format::slot::{free_stamp, full_stamp, skipped_stamp, Slot};
use crate::kind::RingKind;
use crate::lifecycle::memory::RingMemory;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::lifecycle::{sealed::Kind, Ring};
use crate::peers::claims::{any_alive, Recorder, Side};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

mod consumer; // consumer handles and the in-place read slot
mod messages;
mod producer; // producer handles, streams and the in-place write slot
mod repair; // what dead handles left: skipped or taken over // the ring as messages of bytes (rings/messages.rs)

pub use consumer::{MpmcConsumer, MpmcReadSlot};
pub use producer::{MpmcProducer, MpmcStream, MpmcWriteSlot};
use repair::recover;

/// How many times a claim retries on a moving ticket before it reports
/// full or empty. Honest contention settles in a few; only a hostile peer
/// could exhaust this.
const MAX_RETRIES: u32 = 1 << 12;

type Memory<T> = Arc<RingMemory<Slot<T>>>;

/// A multi-producer multi-consumer ring of `T` in a shared-memory segment.
///
/// Up to 32 producer and 32 consumer handles, in any number of processes,
/// may use it at once; [`producer`](Self::producer) and
/// [`consumer`](Self::consumer) hand them out (`try_clone` makes another
/// for a new thread).
///
/// ```
/// use shmring::Mpmc;
/// # let name = format!("shmring-doc-mpmc-{}", std::process::id());
/// let ring = Mpmc::<u64>::create(&name, 64)?;
/// // Up to 32 producers and 32 consumers, in any processes.
/// let (a, b) = (ring.producer()?, ring.producer()?);
/// let (rx1, rx2) = (ring.consumer()?, ring.consumer()?);
/// a.try_push(1).unwrap();
/// b.try_push(2).unwrap();
/// assert_eq!((rx1.try_pop(), rx2.try_pop()), (Some(1), Some(2)));
/// # Ok::<(), shmring::Error>(())
/// ```
pub type Mpmc<T> = Ring<MpmcFlavor<T>>;

/// The MPMC kind of [`Ring`]: an `Mpmc<T>` is a `Ring<MpmcFlavor<T>>`.
///
/// ```
/// let ring: shmring::Ring<shmring::MpmcFlavor<u32>> =
/// #   shmring::Mpmc::create(&format!("shmring-doc-mpmc-flavor-{}", std::process::id()), 8)?;
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct MpmcFlavor<T>(PhantomData<T>);

impl<T> std::fmt::Debug for MpmcFlavor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MpmcFlavor")
    }
}

impl<T: Pod + Send> Kind for MpmcFlavor<T> {
    const NAME: &'static str = "Mpmc";
    type Memory = RingMemory<Slot<T>>;
    type Slot = Slot<T>;

    fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self::Memory> {
        RingMemory::create_slots(name, RingKind::Mpmc, capacity, opts)
    }

    fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self::Memory> {
        RingMemory::open_slots(name, RingKind::Mpmc, capacity, opts)
    }

    fn ring(mem: &Self::Memory) -> &RingMemory<Slot<T>> {
        mem
    }

    fn capacity(mem: &Self::Memory) -> usize {
        mem.capacity() as usize
    }

    fn has_producer(mem: &Self::Memory) -> bool {
        any_alive(mem.segment(), &mem.header().producer_claims)
    }

    fn has_consumer(mem: &Self::Memory) -> bool {
        any_alive(mem.segment(), &mem.header().consumer_claims)
    }
}

impl<T: Pod + Send> Mpmc<T> {
    /// A producer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record in the header, so
    /// that what it holds can be repaired if it dies); one more is
    /// `Error::TooManyHandles`.
    pub fn producer(&self) -> Result<MpmcProducer<T>> {
        MpmcProducer::new(Arc::clone(&self.mem), WaitStrategy::producer_default())
    }

    /// A producer handle of stream `id`, a name the application gives to
    /// one of its producers, so that after a crash the restarted producer
    /// learns exactly how far its stream got:
    /// [`committed`](MpmcStream::committed) counts the values committed
    /// under that id by every handle of it so far, a killed one included,
    /// and nothing committed is counted twice or missed. One live handle
    /// per stream (`StreamTaken` for a second); a stream's record is kept
    /// for it after its handles leave, so a ring serves at most 32
    /// producer handles and streams together.
    ///
    /// ```
    /// # let name = format!("shmring-doc-mpmc-stream-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 64)?;
    /// let mut feed = ring.producer_stream(7)?;
    /// for v in feed.committed()..3 {
    ///     feed.try_push(v).unwrap();
    /// }
    /// drop(feed); // or killed: the same
    /// let feed = ring.producer_stream(7)?;
    /// assert_eq!(feed.committed(), 3); // resume from here
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn producer_stream(&self, id: u32) -> Result<MpmcStream<T>> {
        MpmcStream::new(Arc::clone(&self.mem), WaitStrategy::producer_default(), id)
    }

    /// A consumer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record in the header, so
    /// that what it holds can be repaired if it dies); one more is
    /// `Error::TooManyHandles`.
    pub fn consumer(&self) -> Result<MpmcConsumer<T>> {
        MpmcConsumer::new(Arc::clone(&self.mem), WaitStrategy::default())
    }
}

impl<T: Pod + Send> Mpmc<T> {
    /// Positions claimed by producers so far (pushed, or being written,
    /// or claimed by a producer that died and skipped since): not where a
    /// restarted producer resumes; see [`producer_stream`](Self::producer_stream).
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

    /// Repair what dead processes left: positions a dead producer claimed
    /// and never published are skipped (their values were never committed),
    /// and values a dead consumer took and never released are handed to the
    /// next consumer that finds the ring empty. Blocked calls do this on
    /// their own while they wait behind such a position, and waiting
    /// consumers when a consumer handle died; call it when every handle
    /// only polls. Returns how many positions it repaired or handed
    /// on; 0 also when another handle is repairing at that moment (it does
    /// the same work).
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-mpmc-recover-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 4)?;
    /// // A poller that never blocks calls this now and then; a blocked call
    /// // repairs on its own. With every holder alive there is nothing to do.
    /// assert_eq!(ring.recover(), 0);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn recover(&self) -> u64 {
        recover(&self.mem)
    }

    /// Positions repaired since the ring was created, by any process.
    pub fn repaired(&self) -> u64 {
        self.mem.header().recovery.repaired.load(Ordering::Relaxed)
    }
}

/// What a waiting handle does now and then (the dead wake no one):
/// repair behind a stalled position, or when a consumer died (its
/// record's lease is free) and may have left a value that only a consumer
/// can deliver. Whether it repaired.
fn repair_if_needed<T>(mem: &RingMemory<Slot<T>>) -> bool {
    let needed = stalled_at(mem).is_some()
        || crate::peers::claims::any_dead(mem.segment(), &mem.header().consumer_claims);
    if needed {
        recover(mem);
    }
    needed
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
fn catch_up(ticket: &crate::platform::sync::AtomicU64, pos: u64) -> u64 {
    let now = ticket.load(Ordering::Relaxed);
    if lag(now, pos) > 0 {
        now
    } else {
        pos.wrapping_add(1)
    }
}

/// Take the next ticket of `side` whose slot is ready for it: the next
/// position to write (`tail`, stamped `free`) or to read (`head`, stamped
/// `full`). A reader also takes a `skipped` position, passes its slot on
/// and goes on. `None` when the slot is a lap behind: full or empty.
///
/// The position is named in the handle's claim record before the
/// compare-exchange, and the exchange is Release, so a repairer that reads
/// the ticket past it knows who may hold it (`peers/claims`).
#[inline]
fn claim<T>(mem: &RingMemory<Slot<T>>, side: Side, rec: &Recorder) -> Option<u64> {
    let header = mem.header();
    let (ticket, table, ready): (_, _, fn(u64) -> u64) = match side {
        Side::Producer => (&header.tail, &header.producer_claims, free_stamp),
        Side::Consumer => (&header.head, &header.consumer_claims, full_stamp),
    };
    let mut pos = ticket.load(Ordering::Relaxed);
    let mut noted = false;
    for _ in 0..MAX_RETRIES {
        let stamp = mem.slot(pos).stamp();
        let skipped = side == Side::Consumer && stamp == skipped_stamp(pos);
        match lag(stamp, ready(pos)) {
            d if d == 0 || skipped => {
                rec.note(table, pos);
                noted = true;
                match ticket.compare_exchange(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) if skipped => {
                        release(mem, pos);
                        pos = pos.wrapping_add(1);
                    }
                    Ok(_) => {
                        rec.hold(pos);
                        return Some(pos);
                    }
                    Err(now) => pos = now,
                }
            }
            d if d < 0 => break,
            _ => pos = catch_up(ticket, pos),
        }
    }
    if noted {
        rec.abandon(table);
    }
    None
}

/// Hand the slot of `pos`, which the caller owns (read, or skipped), to
/// the writer one lap later; zeroed first if the ring asks for that.
fn release<T>(mem: &RingMemory<Slot<T>>, pos: u64) {
    if mem.zeroes_after_use() {
        // SAFETY: the caller owns `pos` until the release below, and the
        // slot's writer one lap later waits for that release (Release
        // store, Acquire load of the stamp) before it writes.
        unsafe { mem.zero_values(pos, 1) };
    }
    mem.slot(pos).release(pos, mem.capacity());
    wait::notify(&mem.header().producer_event);
}

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
//! claim record first (`claims.rs`), so a repairer can tell a dead holder
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
//! one gets `Error::Stalled` naming it.
//!
//! Shared memory is untrusted: every retry loop is bounded, so a peer that
//! scribbles on the tickets or stamps makes calls report full or empty (or
//! read a garbage but valid `T`), never spin forever or leave the slots.

use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::Result;
use crate::format::memory::{create_or_open, open_waiting, RingMemory};
use crate::format::slot::{free_stamp, full_stamp, skipped_stamp, Slot};
use crate::kind::RingKind;
use crate::peers::claims::{any_alive, Recorder, Side};
use crate::platform::segment::{CreateOptions, OpenOptions};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

mod consumer; // consumer handles and the in-place read slot
mod producer; // producer handles, streams and the in-place write slot
mod repair; // what dead handles left: skipped or taken over

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
pub struct Mpmc<T> {
    mem: Memory<T>,
}

impl<T: Pod + Send> Mpmc<T> {
    /// Create a ring named `name` with room for `capacity` values (rounded up
    /// to a power of two), mode 0600. The name stays while any process uses
    /// the ring and goes with the last of them, unless
    /// [`persist`](Self::persist) is called.
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
        let mem = RingMemory::open_slots(name, RingKind::Mpmc, None, opts)?;
        Ok(Mpmc { mem: Arc::new(mem) })
    }

    /// Open ring `name`, waiting up to `timeout` for another process to
    /// create it (a consumer started before its producer): an inotify watch
    /// on the shm directory wakes the wait when a name appears, and no wait
    /// sleeps longer than 100 ms between looks. `NotFound` if no ring of
    /// that name appeared in time; every other error at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-mpmc-wait-{}", std::process::id());
    /// let waiter = {
    ///     let name = name.clone();
    ///     std::thread::spawn(move || shmring::Mpmc::<u64>::open_timeout(&name, Duration::from_secs(5)))
    /// };
    /// std::thread::sleep(Duration::from_millis(20)); // the creator starts later
    /// let ring = shmring::Mpmc::<u64>::create(&name, 1024)?;
    /// let opened = waiter.join().unwrap()?;
    /// assert_eq!(opened.capacity(), ring.capacity());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn open_timeout(name: &str, timeout: Duration) -> Result<Self> {
        open_waiting(timeout, |opts| Self::open_with(name, opts))
    }

    /// Create ring `name`, or open it if another process created it first.
    /// Services that start in any order all call this: exactly one of them
    /// creates the ring (see [`is_creator`](Self::is_creator)), the others
    /// open it. A ring of that
    /// name with another kind, element type or capacity is an error
    /// (`KindMismatch`, `TypeMismatch`, `CapacityMismatch`), never a second
    /// ring.
    ///
    /// ```
    /// # let name = format!("shmring-doc-mpmc-ooc-{}", std::process::id());
    /// let first = shmring::Mpmc::<u64>::open_or_create(&name, 1024)?; // creates
    /// let second = shmring::Mpmc::<u64>::open_or_create(&name, 1024)?; // opens
    /// assert!(first.is_creator() && !second.is_creator());
    /// assert!(matches!(
    ///     shmring::Mpmc::<u64>::open_or_create(&name, 64),
    ///     Err(shmring::Error::CapacityMismatch { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self> {
        Self::open_or_create_with(name, capacity, &CreateOptions::default())
    }

    /// [`open_or_create`](Self::open_or_create), creating with options.
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        // The capacity is checked before the opener joins: a mismatch
        // leaves the ring found exactly as it was.
        create_or_open(
            || Self::create_with(name, capacity, opts),
            || {
                let mem =
                    RingMemory::open_slots(name, RingKind::Mpmc, Some(capacity), &opts.to_open())?;
                Ok(Mpmc { mem: Arc::new(mem) })
            },
        )
    }

    /// A producer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record in the header, so
    /// that what it holds can be repaired if it dies); one more is
    /// `Error::TooManyHandles`.
    pub fn producer(&self) -> Result<MpmcProducer<T>> {
        MpmcProducer::new(Arc::clone(&self.mem), WaitStrategy::default())
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
        MpmcStream::new(Arc::clone(&self.mem), WaitStrategy::default(), id)
    }

    /// A consumer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record in the header, so
    /// that what it holds can be repaired if it dies); one more is
    /// `Error::TooManyHandles`.
    pub fn consumer(&self) -> Result<MpmcConsumer<T>> {
        MpmcConsumer::new(Arc::clone(&self.mem), WaitStrategy::default())
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

    /// Keep the ring's name after every process using it has left (by
    /// default the last one out removes it), until [`remove`](crate::remove)
    /// or `shmring rm --force`; nothing removes it as stale. It holds for
    /// every user, in every process, from now on;
    /// [`CreateOptions::persist`] sets it from the start.
    pub fn persist(&self) {
        self.mem.header().set_persistent()
    }

    /// Whether this handle's call created the ring (rather than opened
    /// it): with `open_or_create`, which of the racing processes won.
    /// Creating gives no say over the name; see the crate docs' "Names".
    pub fn is_creator(&self) -> bool {
        self.mem.created()
    }

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

    /// Whether any live producer handle (in any process) exists now; one
    /// that died counts as gone (its claim record's lock is free).
    ///
    /// ```
    /// # let name = format!("shmring-doc-mpmc-has-{}", std::process::id());
    /// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
    /// let (a, b) = (ring.producer()?, ring.producer()?);
    /// drop(a);
    /// assert!(ring.has_producer(), "b is still there");
    /// drop(b);
    /// assert!(!ring.has_producer() && !ring.has_consumer());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn has_producer(&self) -> bool {
        any_alive(self.mem.segment(), &self.mem.header().producer_claims)
    }

    /// Whether any live consumer handle exists now; see
    /// [`has_producer`](Self::has_producer).
    pub fn has_consumer(&self) -> bool {
        any_alive(self.mem.segment(), &self.mem.header().consumer_claims)
    }

    /// Whether a producer closed the ring (and no producer handle was made
    /// since).
    pub fn is_closed(&self) -> bool {
        wait::is_closed(&self.mem.header().consumer_event)
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
/// the ticket past it knows who may hold it (`claims.rs`).
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

fn release<T>(mem: &RingMemory<Slot<T>>, pos: u64) {
    mem.slot(pos).release(pos, mem.capacity());
    wait::notify(&mem.header().producer_event);
}

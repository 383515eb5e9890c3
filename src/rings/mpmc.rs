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

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Full, PushTimeout, Result};
use crate::format::memory::{create_or_open, open_waiting, RingMemory};
use crate::format::slot::{free_stamp, full_stamp, skipped_stamp, Slot};
use crate::kind::{RingKind, Role};
use crate::peers::claims::{self, any_alive, Liveness, Recorder, RepairLock, Side};
use crate::platform::segment::{CreateOptions, OpenOptions, Segment};
use crate::platform::sync::{bump, Ordering};
use crate::wait::{self, WaitStrategy};

/// How many times a claim retries on a moving ticket before it reports
/// full or empty. Honest contention settles in a few; only a hostile peer
/// could exhaust this.
const MAX_RETRIES: u32 = 1 << 12;

type Memory<T> = Arc<RingMemory<Slot<T>>>;

/// How long [`MpmcConsumer::take_over`] waits for another handle's repair
/// (repairs are short; a dead repairer's lock is taken over at once).
const TAKE_OVER_PATIENCE: Duration = Duration::from_millis(200);

/// Positions one repair looks at, at most: honest records name a handful
/// each; a hostile table that names whole laps costs each call this much
/// and no more (the rest waits for the next call).
const REPAIR_BUDGET: u64 = 1 << 16;

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
        MpmcProducer::new_stream(Arc::clone(&self.mem), WaitStrategy::default(), id)
            .map(|tx| MpmcStream { tx })
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

/// Repair what dead handles left unfinished: positions a dead producer
/// claimed and never published are stamped skipped (consumers pass over
/// them); values a dead consumer took and never released are flagged for a
/// live consumer to take over (only a consumer can deliver them). The
/// number of positions repaired or flagged; 0 when another live handle
/// holds the repair lock.
fn recover<T>(mem: &RingMemory<Slot<T>>) -> u64 {
    let Some(lock) = RepairLock::try_acquire(mem.segment(), &mem.header().recovery) else {
        return 0;
    };
    let repaired = repair(mem);
    unlock(mem, lock);
    repaired
}

/// Let the repair lock go, then wake the waiting consumers: one that found
/// the ring closed and empty and the lock taken waits for it to look for a
/// dead consumer's value before it reports `Closed` (see
/// `MpmcConsumer::closing`).
fn unlock<T>(mem: &RingMemory<Slot<T>>, lock: RepairLock<'_>) {
    drop(lock);
    wait::notify(&mem.header().consumer_event);
}

/// [`recover`]'s work, with the repair lock held.
fn repair<T>(mem: &RingMemory<Slot<T>>) -> u64 {
    let header = mem.header();
    let recovery = &header.recovery;
    let seg = mem.segment();
    let cap = mem.capacity();
    let mut repaired = 0;
    let mut budget = REPAIR_BUDGET;
    let mut living = Liveness::new(seg, &header.producer_claims);

    for dead in claims::dead_records(seg, &header.producer_claims) {
        // Before any of its positions is skipped: a stream's count says
        // whether the one it named was committed.
        dead.settle_stream(|_, pos| mem.slot(pos).stamp() != free_stamp(pos));
        // Read after the holder was seen dead: every position it took is
        // below this tail, so none of them is mistaken for unclaimed.
        let tail = header.tail.load(Ordering::Acquire);
        let mut pending = false;
        for pos in dead.positions(cap) {
            if budget == 0 {
                pending = true;
                break;
            }
            budget -= 1;
            let claimed = (1..=cap).contains(&tail.wrapping_sub(pos));
            if !claimed || mem.slot(pos).stamp() != free_stamp(pos) {
                continue;
            }
            if living.held_by_the_living(pos) {
                pending = true;
            } else if mem.slot(pos).skip(pos) {
                repaired += 1;
            }
        }
        if !pending {
            reclaimed(seg, "producer", &dead);
            dead.free();
            bump(&header.producer_stats.takeovers);
        }
    }
    if repaired > 0 {
        recovery.repaired.fetch_add(repaired, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::warn!(
            target: "shmring",
            "ring {:?}: skipped {repaired} positions that dead producers claimed and never \
             committed (nothing committed is lost)",
            seg.name().as_str()
        );
    }

    let Scan::Found(orphans) = scan_orphans(mem, None, &mut budget) else {
        unreachable!("only a consumer adopts")
    };
    if orphans > 0 {
        // Relaxed: a hint; the consumer that acts on it takes the lock.
        recovery.orphaned.store(1, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::info!(
            target: "shmring",
            "ring {:?}: {orphans} values taken by dead consumers and never released wait for \
             a live consumer to deliver them",
            seg.name().as_str()
        );
    }
    repaired + orphans
}

/// Log that the record of a dead `side` handle is being reclaimed.
fn reclaimed(seg: &Segment, side: &str, dead: &claims::DeadRecord) {
    log::info!(
        target: "shmring",
        "ring {:?}: a {side} handle of process {} is gone (its lock was free); its claim record \
         is reclaimed",
        seg.name().as_str(),
        dead.holder_pid()
    );
}

/// What a scan for a dead consumer's values found.
enum Scan {
    /// This many values wait for a consumer to take them over.
    Found(u64),
    /// The consumer handle that scanned took over this position.
    Adopted(u64),
}

/// Find the values dead consumers took and never released, that no live
/// consumer holds (call with the repair lock held). With `adopt`, the first
/// such value is taken over by that consumer handle, which delivers it, and
/// dead consumers' skipped positions are passed on on the way.
fn scan_orphans<T>(mem: &RingMemory<Slot<T>>, adopt: Option<&Recorder>, budget: &mut u64) -> Scan {
    let header = mem.header();
    let recovery = &header.recovery;
    let seg = mem.segment();
    let cap = mem.capacity();
    let mut found = 0;
    let mut living = Liveness::new(seg, &header.consumer_claims);
    for dead in claims::dead_records(seg, &header.consumer_claims) {
        // After the holder was seen dead, as in `recover`.
        let head = header.head.load(Ordering::Acquire);
        let mut pending = false;
        for pos in dead.positions(cap) {
            if *budget == 0 {
                pending = true;
                break;
            }
            *budget -= 1;
            let claimed = (1..=cap).contains(&head.wrapping_sub(pos));
            let stamp = mem.slot(pos).stamp();
            let unreleased = stamp == full_stamp(pos) || stamp == skipped_stamp(pos);
            if !claimed || !unreleased {
                continue;
            }
            if living.held_by_the_living(pos) {
                pending = true;
                continue;
            }
            // Look again: a live consumer that took the value over, released
            // it and moved its record on may have been seen only moved on.
            // Its release comes before the move (Release), so this Acquire
            // load sees it. (A producer's skip needs no second look: its
            // compare-exchange fails on a published stamp.)
            if mem.slot(pos).stamp() != stamp {
                continue;
            }
            match adopt {
                Some(_) if stamp == skipped_stamp(pos) => release(mem, pos),
                Some(rec) => {
                    // Named in our record (with what it already holds)
                    // before the lock is let go, so the next repairer sees
                    // a live holder.
                    rec.adopt(&header.consumer_claims, pos);
                    recovery.repaired.fetch_add(1, Ordering::Relaxed);
                    return Scan::Adopted(pos);
                }
                None => {
                    pending = true;
                    found += 1;
                }
            }
        }
        if !pending {
            reclaimed(seg, "consumer", &dead);
            dead.free();
            bump(&header.consumer_stats.takeovers);
        }
    }
    Scan::Found(found)
}

/// A consumer's way to a dead consumer's value: only when a repairer has
/// flagged one, so the empty path costs one load of a quiet line.
fn adopt_orphan<T>(mem: &RingMemory<Slot<T>>, rec: &Recorder) -> Option<u64> {
    if mem.header().recovery.orphaned.load(Ordering::Relaxed) == 0 {
        return None;
    }
    match look_for_orphan(mem, rec) {
        Orphan::Adopted(pos) => Some(pos),
        Orphan::None | Orphan::Busy => None,
    }
}

/// What a consumer's look for a dead consumer's value found.
enum Orphan {
    /// The consumer took over the value at this position.
    Adopted(u64),
    /// No value that a dead consumer took waits for one (it is delivered,
    /// or a live consumer holds it).
    None,
    /// Another live handle holds the repair lock; it wakes the waiting
    /// consumers when it lets go (see [`unlock`]).
    Busy,
}

/// Take over a value a dead consumer took and never released, if there is
/// one that no live consumer holds (flagged or not).
fn look_for_orphan<T>(mem: &RingMemory<Slot<T>>, rec: &Recorder) -> Orphan {
    match RepairLock::try_acquire(mem.segment(), &mem.header().recovery) {
        Some(lock) => adopt_under(mem, rec, lock),
        None => Orphan::Busy,
    }
}

/// [`look_for_orphan`]'s work, with the repair lock taken (and let go here).
fn adopt_under<T>(mem: &RingMemory<Slot<T>>, rec: &Recorder, lock: RepairLock<'_>) -> Orphan {
    let recovery = &mem.header().recovery;
    let mut budget = REPAIR_BUDGET;
    let found = match scan_orphans(mem, Some(rec), &mut budget) {
        Scan::Adopted(pos) => {
            log::info!(
                target: "shmring",
                "ring {:?}: a consumer took over position {pos} from a dead consumer \
                 (delivered again, out of order, rather than lost)",
                mem.segment().name().as_str()
            );
            Orphan::Adopted(pos)
        }
        Scan::Found(_) => {
            recovery.orphaned.store(0, Ordering::Relaxed);
            Orphan::None
        }
    };
    unlock(mem, lock);
    found
}

/// A producer handle of an [`Mpmc`] ring. Each handle (each clone) has its
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
    fn new(mem: Memory<T>, wait: WaitStrategy) -> Result<Self> {
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
    ///     Err(shmring::Error::Closed { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.mem.header().consumer_event);
    }

    /// Another handle on the same ring, with its own claim record (one per
    /// thread: handles are `Send`, not `Sync`). `TooManyHandles` as for
    /// [`Mpmc::producer`].
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
    /// it (a [`MpmcReadSlot`] not yet dropped, or a consumer preempted
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
    pub fn try_push(&self, value: T) -> std::result::Result<(), Full<T>> {
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
            None => Err(PushTimeout::new(
                value,
                self.timed_out("push_timeout", timeout),
            )),
        }
    }

    /// Claim a slot to write in place, if there is room. The slot is
    /// zeroed; [`MpmcWriteSlot::commit`] publishes it, and dropping the
    /// guard uncommitted (also while the thread panics) publishes a skip:
    /// consumers pass over the position and nothing is delivered, so a
    /// half-written value never is.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-mpmc-claim-{}", std::process::id());
    /// let ring = shmring::Mpmc::<[u64; 8]>::create(&name, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.claim().expect("room");
    /// slot[7] = 42; // written in place
    /// slot.commit();
    /// assert_eq!(rx.try_pop().map(|v| v[7]), Some(42));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn claim(&self) -> Option<MpmcWriteSlot<'_, T>> {
        let Some(pos) = claim(&self.mem, Side::Producer, &self.rec) else {
            self.mem.count_blocked(Role::Producer);
            return None;
        };
        Some(self.lend(pos))
    }

    /// [`claim`](Self::claim), waiting up to `timeout` for room.
    pub fn claim_timeout(&self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>> {
        self.claim_waiting(timeout)
            .map(|pos| self.lend(pos))
            .ok_or_else(|| self.timed_out("claim_timeout", timeout))
    }

    /// The error of a wait for room that ended: who did not make any.
    #[cold]
    fn timed_out(&self, op: &'static str, waited: Duration) -> Error {
        let attached = any_alive(self.mem.segment(), &self.mem.header().consumer_claims);
        self.mem.timed_out(op, waited, Role::Consumer, attached)
    }

    /// How this handle waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
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
/// [`Mpmc::producer_stream`]: a [`MpmcProducer`] that holds one position
/// at a time (its calls take `&mut self`) and keeps a count of what its
/// stream committed that survives the process.
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-mpmc-stream-type-{}", std::process::id());
/// let ring = shmring::Mpmc::<u64>::create(&name, 8)?;
/// let (mut feed, rx) = (ring.producer_stream(1)?, ring.consumer()?);
/// let mut slot = feed.claim().expect("room");
/// *slot = 5;
/// slot.commit();
/// feed.push_timeout(6, Duration::from_millis(10)).unwrap();
/// assert_eq!(feed.committed(), 2);
/// assert_eq!((rx.try_pop(), rx.try_pop()), (Some(5), Some(6)));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct MpmcStream<T> {
    tx: MpmcProducer<T>,
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

    /// [`MpmcProducer::try_push`], counted.
    pub fn try_push(&mut self, value: T) -> std::result::Result<(), Full<T>> {
        self.tx.try_push(value)
    }

    /// [`MpmcProducer::push_timeout`], counted.
    pub fn push_timeout(
        &mut self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), PushTimeout<T>> {
        self.tx.push_timeout(value, timeout)
    }

    /// [`MpmcProducer::claim`]: counted when the slot is committed.
    pub fn claim(&mut self) -> Option<MpmcWriteSlot<'_, T>> {
        self.tx.claim()
    }

    /// [`MpmcProducer::claim_timeout`]: counted when the slot is committed.
    pub fn claim_timeout(&mut self, timeout: Duration) -> Result<MpmcWriteSlot<'_, T>> {
        self.tx.claim_timeout(timeout)
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
/// let mut slot = tx.claim().expect("room");
/// slot[0] = 7; // written in place
/// slot.commit();
/// drop(tx.claim()); // claimed, never committed: a skip
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

/// A consumer handle of an [`Mpmc`] ring. Like a producer, each handle
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
    mem: Memory<T>,
    wait: WaitStrategy,
    rec: Recorder,
}

impl<T> std::fmt::Debug for MpmcConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcConsumer")
            .field("ring", &self.mem.segment().name().as_str())
            .finish_non_exhaustive()
    }
}

impl<T> MpmcConsumer<T> {
    fn new(mem: Memory<T>, wait: WaitStrategy) -> Result<Self> {
        // Repair (and free) the records of the dead first, so that new
        // handles find one even after many deaths.
        recover(&mem);
        let rec = Recorder::take(mem.segment(), &mem.header().consumer_claims, Side::Consumer)?;
        Ok(MpmcConsumer { mem, wait, rec })
    }

    /// Another handle on the same ring, with its own claim record (one per
    /// thread: handles are `Send`, not `Sync`). `TooManyHandles` as for
    /// [`Mpmc::consumer`].
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
    /// [`read`](Self::read) does on an empty ring, and die inside the
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
    /// claimed it and not yet committed (a [`MpmcWriteSlot`] being filled,
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
    /// let slot = a.claim().expect("room"); // position 0, being written
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

    /// Pop a value, waiting up to `timeout`. A zero timeout is a
    /// [`try_pop`](Self::try_pop). Values a dead producer claimed and never
    /// published are repaired (skipped) while waiting, and a value a dead
    /// consumer took and never released is taken over and returned (out of
    /// order), also before `Error::Closed`; `Error::Stalled` if the wait
    /// still ended behind an unpublished position (its producer is alive,
    /// or repair is off, see [`Mpmc::recover`]); else `Timeout`.
    #[inline]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T> {
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
    /// assert_eq!(rx.read().map(|slot| *slot), Some(3));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn read(&self) -> Option<MpmcReadSlot<'_, T>> {
        self.try_claim().map(|pos| MpmcReadSlot { rx: self, pos })
    }

    /// [`read`](Self::read), waiting up to `timeout`; errors as for
    /// [`pop_timeout`](Self::pop_timeout).
    pub fn read_timeout(&self, timeout: Duration) -> Result<MpmcReadSlot<'_, T>> {
        self.claim_waiting(timeout, "read_timeout")
            .map(|pos| MpmcReadSlot { rx: self, pos })
    }

    /// Take over, in place, a value that a dead consumer took and never
    /// released, if one waits that no live consumer holds; `None` when none
    /// does. The ring's other values are not looked at.
    ///
    /// [`read`](Self::read) takes such values over too, but only when the
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
    /// let held = rx.read().expect("a value");
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

    #[inline]
    fn try_claim(&self) -> Option<u64> {
        claim(&self.mem, Side::Consumer, &self.rec).or_else(|| adopt_orphan(&self.mem, &self.rec))
    }

    /// Wait for a value; while the ring is stalled behind an unpublished
    /// position, repair it every few milliseconds if its producer is dead.
    #[inline]
    fn claim_waiting(&self, timeout: Duration, op: &'static str) -> Result<u64> {
        match self.try_claim() {
            Some(pos) => Ok(pos),
            None => self.wait_for_value(timeout, op),
        }
    }

    #[inline(never)]
    fn wait_for_value(&self, timeout: Duration, op: &'static str) -> Result<u64> {
        if !timeout.is_zero() {
            self.mem.count_blocked(Role::Consumer);
        }
        let header = self.mem.header();
        let event = &header.consumer_event;
        // Between slices: repair behind a stalled position, or when a
        // consumer died (its record's lease is free) and may have left a
        // value that only a consumer can deliver. The dead wake no one, so
        // an idle wait looks at least every `IDLE_SLICE`.
        let between = || {
            if stalled_at(&self.mem).is_some()
                || claims::any_dead(self.mem.segment(), &header.consumer_claims)
            {
                recover(&self.mem);
                wait::REPAIR_SLICE
            } else {
                wait::IDLE_SLICE
            }
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
                    self.mem.timed_out(op, timeout, Role::Producer, attached)
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
    fn closing(&self) -> Option<Result<u64>> {
        let dead = claims::any_dead(self.mem.segment(), &self.mem.header().consumer_claims);
        if dead {
            match look_for_orphan(&self.mem, &self.rec) {
                Orphan::Adopted(pos) => return Some(Ok(pos)),
                Orphan::Busy => return None,
                Orphan::None => {}
            }
        }
        Some(Err(Error::Closed {
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

impl<T> MpmcConsumer<T> {
    fn release(&self, pos: u64) {
        release(&self.mem, pos);
        self.rec.finish();
    }
}

fn release<T>(mem: &RingMemory<Slot<T>>, pos: u64) {
    mem.slot(pos).release(pos, mem.capacity());
    wait::notify(&mem.header().producer_event);
}

/// A committed value, lent in place. Dropping it releases the slot (also
/// while panicking: the value was delivered).
///
/// ```
/// # let name = format!("shmring-doc-mpmc-rslot-{}", std::process::id());
/// let ring = shmring::Mpmc::<[u8; 64]>::create(&name, 4)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push([9; 64]).unwrap();
/// let slot = rx.read().expect("a value");
/// assert_eq!(slot[63], 9); // read in place, no copy
/// drop(slot); // released: the producer may reuse the slot
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a read slot releases its value when dropped"]
pub struct MpmcReadSlot<'a, T> {
    rx: &'a MpmcConsumer<T>,
    pos: u64,
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

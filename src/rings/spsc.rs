//! The single-producer single-consumer ring of fixed-size `Pod` values.
//!
//! # Algorithm
//!
//! Positions are u64 counters that only grow (`tail` for the producer,
//! `head` for the consumer); a position's slot is `pos & mask`. The two
//! directions are signalled differently, each through the cheapest line:
//!
//! * data, producer to consumer, through the slot itself: the producer
//!   writes the value, then stamps the slot `full(tail)` (Release). The
//!   consumer polls the stamp of `slot(head)` (Acquire) and never reads the
//!   producer's index, so a value arrives with the one line it lives in.
//! * room, consumer to producer, through the consumer's index: after
//!   reading, the consumer stores `head` (Release) on a line of its own. The
//!   producer keeps a cached copy of `head` and re-reads the shared one
//!   (Acquire) only when the cached copy says the ring is full, so while
//!   there is room it never touches the consumer's line.
//!
//! The consumer never writes a slot, so a slot line moves from producer to
//! consumer and is merely invalidated on the producer's next write: a round
//! trip through two rings costs what a bare cache-line ping-pong costs, plus
//! the value. A released chunk is one index store, however long it is.
//!
//! A stamp is unique to its position (`4p + 1`), so a slot still holding an
//! older lap's value, or the free stamp it was created with, is never taken
//! for the current one.
//!
//! The producer also stores `tail` into the header (Relaxed, on a line only
//! it writes), giving `pushed()` and `len()` for free and telling a
//! successor where to resume after a crash. Both indices are untrusted: a
//! hostile peer that scribbles on them gets `Error::Corrupt` from
//! `len()`/`free()` or an early "full", and slot access is always masked.
//!
//! Blocking: after publishing or releasing, a side calls `wait::notify`:
//! the light half of the fence pair and a load of the other side's
//! `wanted` flag, and a `FUTEX_WAKE` only when a sleeper set it; see
//! `wait.rs`.
//!
//! Recovery: a new consumer resumes at `head`, which is exact (storing it is
//! how values are released). A new producer resumes at the stored `tail`,
//! then steps over slots stamped beyond it: values its dead predecessor
//! committed but did not get to count (at most `cap` steps).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Full, PushTimeout, Result};

use crate::format::memory::{create_or_open, open_waiting, RingMemory};
use crate::format::slot::{full_stamp, Slot};
use crate::kind::{RingKind, Role};
use crate::peers::role;
use crate::peers::role::RoleClaim;
use crate::platform::segment::{CreateOptions, OpenOptions};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// A single-producer single-consumer ring of `T` in a shared-memory segment.
///
/// `Spsc` itself only maps the segment; [`producer`](Self::producer) and
/// [`consumer`](Self::consumer) hand out the two ends. The handles keep the
/// mapping alive, so the `Spsc` may be dropped once they exist.
///
/// ```
/// use shmring::Spsc;
/// # let name = format!("shmring-doc-spsc-{}", std::process::id());
/// // The name goes when the last process using the ring drops its handles.
/// let ring = Spsc::<u64>::create(&name, 1024)?;
/// // Another process opens it by name (here the same one, for the example).
/// let peer = Spsc::<u64>::open(&name)?;
/// let (mut tx, mut rx) = (ring.producer()?, peer.consumer()?);
/// tx.try_push(1).unwrap();
/// assert_eq!(rx.try_pop(), Some(1));
/// assert_eq!((ring.pushed(), ring.popped()), (1, 1));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Spsc<T> {
    mem: Arc<RingMemory<Slot<T>>>,
}

impl<T: Pod + Send> Spsc<T> {
    /// Create a ring named `name` with room for `capacity` values (rounded up
    /// to a power of two), with mode 0600. The name stays while any process
    /// uses the ring and goes with the last of them, unless
    /// [`persist`](Self::persist) is called.
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &CreateOptions::default())
    }

    /// [`create`](Self::create) with options (such as the file mode).
    pub fn create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        let mem = RingMemory::create_slots(name, RingKind::Spsc, capacity, opts)?;
        Ok(Spsc { mem: Arc::new(mem) })
    }

    /// Open a ring another process created. The header is validated against
    /// `T` and the segment's size before anything else is read.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(name: &str, opts: &OpenOptions) -> Result<Self> {
        let mem = RingMemory::open_slots(name, RingKind::Spsc, None, opts)?;
        Ok(Spsc { mem: Arc::new(mem) })
    }

    /// Open ring `name`, waiting up to `timeout` for another process to
    /// create it (a consumer started before its producer): an inotify watch
    /// on the shm directory wakes the wait when a name appears, and no wait
    /// sleeps longer than 100 ms between looks. `NotFound` if no ring of
    /// that name appeared in time; every other error at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-spsc-wait-{}", std::process::id());
    /// let waiter = {
    ///     let name = name.clone();
    ///     std::thread::spawn(move || shmring::Spsc::<u64>::open_timeout(&name, Duration::from_secs(5)))
    /// };
    /// std::thread::sleep(Duration::from_millis(20)); // the creator starts later
    /// let ring = shmring::Spsc::<u64>::create(&name, 1024)?;
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
    /// # let name = format!("shmring-doc-spsc-ooc-{}", std::process::id());
    /// let first = shmring::Spsc::<u64>::open_or_create(&name, 1024)?; // creates
    /// let second = shmring::Spsc::<u64>::open_or_create(&name, 1024)?; // opens
    /// assert!(first.is_creator() && !second.is_creator());
    /// assert!(matches!(
    ///     shmring::Spsc::<u64>::open_or_create(&name, 64),
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
                    RingMemory::open_slots(name, RingKind::Spsc, Some(capacity), &opts.to_open())?;
                Ok(Spsc { mem: Arc::new(mem) })
            },
        )
    }

    /// Claim the producer end. Fails with `RoleTaken` while another live
    /// handle (in any process) holds it; a dead holder's claim is taken over
    /// and writing resumes after the last value it committed.
    pub fn producer(&self) -> Result<Producer<T>> {
        let header = self.mem.header();
        let me = self.mem.claim_role(Role::Producer)?;
        wait::reopen(&header.consumer_event);
        let mut tail = header.tail.load(Ordering::Relaxed);
        for _ in 0..self.mem.capacity() {
            if self.mem.slot(tail).stamp() != full_stamp(tail) {
                break;
            }
            tail = tail.wrapping_add(1);
        }
        Ok(Producer {
            mem: Arc::clone(&self.mem),
            tail,
            // "Full": the first push reads the consumer's real head.
            cached_head: tail.wrapping_sub(self.mem.capacity()),
            me: Some(me),
            wait: WaitStrategy::default(),
            _not_sync: PhantomData,
        })
    }

    /// Claim the consumer end; see [`producer`](Self::producer). A new
    /// consumer receives everything its predecessor did not release.
    pub fn consumer(&self) -> Result<Consumer<T>> {
        let header = self.mem.header();
        let me = self.mem.claim_role(Role::Consumer)?;
        Ok(Consumer {
            mem: Arc::clone(&self.mem),
            head: header.head.load(Ordering::Relaxed),
            me: Some(me),
            wait: WaitStrategy::default(),
            _not_sync: PhantomData,
        })
    }
}

impl<T> Spsc<T> {
    /// Number of slots (the requested capacity rounded up to a power of two).
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

    /// Whether a live producer handle (in any process) holds the
    /// producer end now. A producer that died counts as gone: the kernel
    /// released its lock (see `platform/lease.rs`).
    ///
    /// ```
    /// # let name = format!("shmring-doc-has-producer-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
    /// assert!(!ring.has_producer());
    /// let tx = ring.producer()?;
    /// assert!(ring.has_producer() && !ring.has_consumer());
    /// drop(tx);
    /// assert!(!ring.has_producer());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn has_producer(&self) -> bool {
        holds_role(&self.mem, &self.mem.header().producer_role)
    }

    /// Whether a live consumer handle holds the consumer end now; see
    /// [`has_producer`](Self::has_producer).
    pub fn has_consumer(&self) -> bool {
        holds_role(&self.mem, &self.mem.header().consumer_role)
    }

    /// Whether the producer closed the ring (and no producer reopened it).
    pub fn is_closed(&self) -> bool {
        wait::is_closed(&self.mem.header().consumer_event)
    }

    /// Values pushed over the ring's life (as last stored by the producer).
    pub fn pushed(&self) -> u64 {
        self.mem.header().tail.load(Ordering::Relaxed)
    }

    /// Values popped over the ring's life (as last stored by the consumer).
    pub fn popped(&self) -> u64 {
        self.mem.header().head.load(Ordering::Relaxed)
    }

    /// The pid of the process that created the segment.
    pub fn creator_pid(&self) -> u32 {
        self.mem.info().creator_pid
    }
}

impl<T> std::fmt::Debug for Spsc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spsc")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Number of items between two positions, or `Corrupt` when a peer's index
/// claims more than the ring can hold. `behind` may trail by up to a chunk
/// because indices are stored after the slots are handed over.
fn occupancy<S>(mem: &RingMemory<S>, ahead: u64, behind: u64, what: &str) -> Result<usize> {
    let cap = mem.capacity();
    let diff = ahead.wrapping_sub(behind) as i64;
    if diff > cap as i64 || diff < -(cap as i64) {
        return Err(Error::Corrupt {
            name: mem.segment().name().as_str().to_owned(),
            what: format!("{what} index is {diff} positions away in a ring of {cap}"),
        });
    }
    Ok(diff.max(0) as usize)
}

/// The writing end of an [`Spsc`] ring. Not `Sync`: one thread pushes.
///
/// ```
/// use std::time::Duration;
/// use shmring::{Error, Spsc};
/// # let name = format!("shmring-doc-spsc-producer-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 2)?;
/// let mut tx = ring.producer()?;
/// assert!(matches!(ring.producer(), Err(Error::RoleTaken { .. })), "one producer");
/// tx.try_push(1).unwrap();
/// tx.try_push(2).unwrap();
/// assert_eq!(tx.try_push(3), Err(shmring::Full(3))); // the value comes back
/// let late = tx.push_timeout(3, Duration::from_millis(1)).unwrap_err();
/// assert_eq!(late.into_inner(), 3);
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Producer<T> {
    mem: Arc<RingMemory<Slot<T>>>,
    tail: u64,
    /// The consumer's `head` as last read; re-read only when it says full.
    cached_head: u64,
    me: Option<RoleClaim>,
    wait: WaitStrategy,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

/// Slots a producer that found the ring full waits for, while it spins,
/// before it writes again: taking each slot the moment the consumer frees
/// it keeps the ring full and pulls the consumer's head line across once
/// per value, which more than halved the throughput of both (77 vs 112 M/s
/// with `push_timeout` between threads; the rest of the way to 200 was
/// inlining its fast path).
const ROOM_BATCH: u64 = 32;
/// How many looks at the head the producer takes before it settles for
/// less than a batch. The value it pushes waits behind a full ring anyway.
const ROOM_PATIENCE: u32 = 64;

impl<T: Pod + Send> Producer<T> {
    /// Push `value` if there is room; give it back (in [`Full`]) if the
    /// ring is full.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-push-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
    /// let mut tx = ring.producer()?;
    /// assert_eq!(tx.try_push(1), Ok(()));
    /// assert_eq!(tx.try_push(2), Err(shmring::Full(2)));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> std::result::Result<(), Full<T>> {
        if self.room(1) == 0 {
            // Out of line: the success path is the same as uncounted (an
            // `inspect_err` on the result cost 3 instructions per push).
            self.mem.count_blocked(Role::Producer);
            return Err(Full(value));
        }
        self.write_next(value);
        Ok(())
    }

    /// [`try_push`](Self::try_push), uncounted: for the calls that count
    /// their wait themselves.
    #[inline(always)]
    fn push_if_room(&mut self, value: T) -> std::result::Result<(), Full<T>> {
        if self.room(1) == 0 {
            return Err(Full(value));
        }
        self.write_next(value);
        Ok(())
    }

    /// Write `value` at the tail and publish it; `room` said there is room.
    #[inline(always)]
    fn write_next(&mut self, value: T) {
        let slot = self.mem.slot(self.tail);
        // SAFETY: `room` saw the consumer release this slot (Acquire on its
        // head), and the consumer does not touch it again until we publish.
        unsafe { slot.write(value) };
        slot.publish(self.tail);
        self.advance(1);
    }

    /// Push `value`, waiting up to `timeout` for room (see
    /// [`set_wait_strategy`](Self::set_wait_strategy)). A zero timeout is a
    /// [`try_push`](Self::try_push). On timeout the value is given back.
    #[inline]
    pub fn push_timeout(
        &mut self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), PushTimeout<T>> {
        let Err(Full(value)) = self.push_if_room(value) else {
            return Ok(());
        };
        if self.wait_for_room(timeout) {
            if let Err(Full(value)) = self.push_if_room(value) {
                return Err(PushTimeout::new(
                    value,
                    self.timed_out("push_timeout", timeout),
                ));
            }
            Ok(())
        } else {
            Err(PushTimeout::new(
                value,
                self.timed_out("push_timeout", timeout),
            ))
        }
    }

    /// The error of a wait for room that ended: who did not make any.
    #[cold]
    fn timed_out(&self, op: &'static str, waited: Duration) -> Error {
        let attached = holds_role(&self.mem, &self.mem.header().consumer_role);
        self.mem.timed_out(op, waited, Role::Consumer, attached)
    }

    /// Close the ring: the stream ends after what was pushed so far. The
    /// consumer receives every value committed before, then `Closed` from
    /// its blocking calls instead of waiting. A new producer handle (a
    /// restarted service) reopens it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::Error;
    /// # let name = format!("shmring-doc-close-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(1).unwrap();
    /// tx.close();
    /// assert_eq!(rx.pop_timeout(Duration::from_secs(1))?, 1); // drained first
    /// assert!(matches!(rx.pop_timeout(Duration::from_secs(1)), Err(Error::Closed { .. })));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.mem.header().consumer_event);
    }

    /// [`write_chunk`](Self::write_chunk), waiting up to `timeout` until at
    /// least one slot is free; `Error::Timeout` if none became free.
    pub fn write_chunk_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<WriteChunk<'_, T>> {
        if n > 0 && !self.wait_for_room(timeout) {
            return Err(self.timed_out("write_chunk_timeout", timeout));
        }
        Ok(self.write_chunk(n))
    }

    /// How this producer waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    #[inline(never)]
    fn wait_for_room(&mut self, timeout: Duration) -> bool {
        // Fast path on the cached head: touching the consumer's line on
        // every push would bounce it between the cores once per value.
        if self.room(1) > 0 {
            return true;
        }
        self.mem.count_blocked(Role::Producer);
        let event = &self.mem.header().producer_event;
        let (mem, tail, strategy) = (&self.mem, self.tail, self.wait);
        let cap = mem.capacity();
        let batch = (cap / 8).clamp(1, ROOM_BATCH);
        // Only while spinning: a sleeper would be woken once per freed slot.
        let patience = ROOM_PATIENCE.min(strategy.spins());
        let mut polls = 0u32;
        let head = wait::wait_until(event, strategy, timeout, || {
            let head = mem.header().head.load(Ordering::Acquire);
            let free = cap.saturating_sub(tail.wrapping_sub(head));
            polls += 1;
            (free >= batch || (free > 0 && polls > patience)).then_some(head)
        });
        if let Some(head) = head {
            self.cached_head = head;
        }
        head.is_some()
    }

    /// Free slots, up to `want`: from the cached head while it shows room,
    /// else from the consumer's shared head (Acquire: its reads of the slots
    /// it released happen before our writes to them). A head a peer has
    /// corrupted (ahead of `tail`, or more than a lap behind) shows no room.
    #[inline(always)]
    fn room(&mut self, want: u64) -> u64 {
        let cap = self.mem.capacity();
        let mut used = self.tail.wrapping_sub(self.cached_head);
        if cap.saturating_sub(used) < want {
            self.cached_head = self.mem.header().head.load(Ordering::Acquire);
            used = self.tail.wrapping_sub(self.cached_head);
        }
        cap.saturating_sub(used)
    }

    /// Reserve up to `n` free slots (fewer when the ring has less room; none
    /// when it is full), to be filled in place and committed.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-wchunk-{}", std::process::id());
    /// let ring = shmring::Spsc::<[u8; 16]>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut chunk = tx.write_chunk(8);
    /// assert_eq!(chunk.len(), 4); // only 4 free
    /// chunk.get_mut(0)[0] = 1; // build values in place
    /// chunk.commit(1);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn write_chunk(&mut self, n: usize) -> WriteChunk<'_, T> {
        let len = self.room(n as u64).min(n as u64) as usize;
        WriteChunk {
            producer: self,
            len,
        }
    }

    /// Free slots, as far as the consumer's last stored index tells.
    pub fn free(&self) -> Result<usize> {
        let head = self.mem.header().head.load(Ordering::Relaxed);
        let cap = self.mem.capacity();
        Ok(cap as usize - occupancy(&self.mem, self.tail, head, "consumer")?)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mem.capacity() as usize
    }

    /// Values this ring has had pushed into it, counting from creation.
    pub fn pushed(&self) -> u64 {
        self.tail
    }

    fn pos(&self, i: usize) -> u64 {
        self.tail.wrapping_add(i as u64)
    }

    /// Move past `n` published slots and wake a sleeping consumer.
    #[inline(always)]
    fn advance(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        let header = self.mem.header();
        // A hint for len(), statistics and recovery; the stamps carry the data.
        header.tail.store(self.tail, Ordering::Relaxed);
        wait::notify(&header.consumer_event);
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.mem.header().producer_role, me);
        }
    }
}

/// Whether the role `word` of `mem` is held by a live handle.
fn holds_role<S>(mem: &RingMemory<S>, word: &crate::platform::sync::AtomicU64) -> bool {
    crate::peers::attach::holder(mem.segment(), word).is_some_and(|h| h.alive)
}

/// Free slots reserved by [`Producer::write_chunk`]. Fill them in place, then
/// [`commit`](Self::commit); dropping the chunk commits nothing.
///
/// ```
/// # let name = format!("shmring-doc-spsc-wchunk-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let mut chunk = tx.write_chunk(4); // up to 4 free slots, in place
/// let n = chunk.fill_from_iter(10..13);
/// chunk.commit(n); // publishes 10, 11, 12 with one index store
/// assert_eq!(rx.try_pop(), Some(10));
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a chunk publishes only when committed; dropping it publishes nothing"]
pub struct WriteChunk<'a, T: Pod + Send> {
    producer: &'a mut Producer<T>,
    len: usize,
}

impl<T: Pod + Send> std::fmt::Debug for WriteChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteChunk")
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod + Send> WriteChunk<'_, T> {
    /// Number of reserved slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot could be reserved (the ring is full).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th reserved slot, in place.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    pub fn get_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "slot {i} of a {}-slot chunk", self.len);
        let pos = self.producer.pos(i);
        // SAFETY: reserved slots were released by the consumer (checked in
        // write_chunk) and are unpublished; `&mut self` makes the reference
        // unique.
        unsafe { self.producer.mem.slot(pos).value_mut() }
    }

    /// Store `value` in the `i`th reserved slot.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn write(&mut self, i: usize, value: T) {
        assert!(i < self.len, "slot {i} of a {}-slot chunk", self.len);
        let pos = self.producer.pos(i);
        // SAFETY: as in `get_mut`.
        unsafe { self.producer.mem.slot(pos).write(value) }
    }

    /// Fill reserved slots from `iter` in order; returns how many were filled.
    pub fn fill_from_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let mut n = 0;
        for value in iter.into_iter().take(self.len) {
            self.write(n, value);
            n += 1;
        }
        n
    }

    /// Publish the first `n` reserved slots to the consumer, in order.
    ///
    /// Slots are not cleared between laps: a slot committed without being
    /// written (through [`write`](Self::write), [`get_mut`](Self::get_mut)
    /// or [`fill_from_iter`](Self::fill_from_iter)) delivers whatever it
    /// held, the value of a lap ago. Commit the count `fill_from_iter`
    /// returns, or write every slot below `n`. (Always a valid `T`, since
    /// `T` is `Pod`; never undefined behaviour, but a stale value.)
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn commit(self, n: usize) {
        assert!(n <= self.len, "commit {n} of a {}-slot chunk", self.len);
        let p = self.producer;
        for i in 0..n {
            p.mem.slot(p.pos(i)).publish(p.pos(i));
        }
        p.advance(n as u64);
    }

    /// Publish every reserved slot.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n)
    }
}

/// The reading end of an [`Spsc`] ring. Not `Sync`: one thread pops.
///
/// ```
/// use std::time::Duration;
/// use shmring::{Error, Spsc, WaitStrategy};
/// # let name = format!("shmring-doc-spsc-consumer-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 16)?;
/// let mut rx = ring.consumer()?;
/// rx.set_wait_strategy(WaitStrategy::Spin);
/// // Nothing arrives: the wait ends at its timeout, never later.
/// assert!(matches!(rx.pop_timeout(Duration::from_millis(1)), Err(Error::Timeout { .. })));
/// assert!(rx.is_empty());
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Consumer<T> {
    mem: Arc<RingMemory<Slot<T>>>,
    head: u64,
    me: Option<RoleClaim>,
    wait: WaitStrategy,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<T: Pod + Send> Consumer<T> {
    /// Pop the oldest value, if there is one.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-pop-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert_eq!(rx.try_pop(), None);
    /// tx.try_push(5).unwrap();
    /// assert_eq!(rx.try_pop(), Some(5));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        let slot = self.mem.slot(self.head);
        if !slot.is_full_for(self.head) {
            return None;
        }
        // SAFETY: the stamp says the slot holds our value; the producer does
        // not write it again until we release it by moving `head`.
        let value = unsafe { slot.read() };
        self.advance(1);
        Some(value)
    }

    /// Pop the oldest value, waiting up to `timeout` for one (see
    /// [`set_wait_strategy`](Self::set_wait_strategy)). A zero timeout is a
    /// [`try_pop`](Self::try_pop); `Error::Timeout` if nothing arrived,
    /// `Error::Closed` if the producer closed the ring and every value
    /// before the close was received.
    #[inline]
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T> {
        if let Some(v) = self.try_pop() {
            return Ok(v);
        }
        self.wait_for_data(timeout, "pop_timeout")?;
        self.try_pop()
            .ok_or_else(|| self.timed_out("pop_timeout", timeout))
    }

    /// [`read_chunk`](Self::read_chunk), waiting up to `timeout` until at
    /// least one value is ready; `Error::Timeout` if none arrived.
    pub fn read_chunk_timeout(&mut self, n: usize, timeout: Duration) -> Result<ReadChunk<'_, T>> {
        if n > 0 {
            self.wait_for_data(timeout, "read_chunk_timeout")?;
        }
        Ok(self.read_chunk(n))
    }

    /// How this consumer waits when the ring is empty.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The error of a wait for data that ended: who did not publish.
    #[cold]
    fn timed_out(&self, op: &'static str, waited: Duration) -> Error {
        let attached = holds_role(&self.mem, &self.mem.header().producer_role);
        self.mem.timed_out(op, waited, Role::Producer, attached)
    }

    #[inline(never)]
    fn wait_for_data(&mut self, timeout: Duration, op: &'static str) -> Result<()> {
        let (mem, head) = (&self.mem, self.head);
        let event = &mem.header().consumer_event;
        let ready = || mem.slot(head).is_full_for(head);
        if !timeout.is_zero() && !ready() {
            mem.count_blocked(Role::Consumer);
        }
        wait::wait_until(event, self.wait, timeout, || {
            if ready() {
                return Some(Ok(()));
            }
            // Closed: one more look, now that everything published before
            // the close is visible.
            wait::is_closed(event).then(|| match ready() {
                true => Ok(()),
                false => Err(Error::Closed {
                    name: mem.segment().name().as_str().to_owned(),
                }),
            })
        })
        .unwrap_or_else(|| Err(self.timed_out(op, timeout)))
    }

    /// Borrow up to `n` committed values in place (fewer when fewer are
    /// ready; none when the ring is empty), to be released after reading.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-rchunk-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(1).unwrap();
    /// tx.try_push(2).unwrap();
    /// let chunk = rx.read_chunk(4);
    /// assert_eq!((chunk.len(), *chunk.get(1)), (2, 2));
    /// chunk.release(1); // the second value stays in the ring
    /// assert_eq!(rx.try_pop(), Some(2));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn read_chunk(&mut self, n: usize) -> ReadChunk<'_, T> {
        let max = n.min(self.mem.capacity() as usize);
        let mut len = 0;
        while len < max && self.mem.slot(self.pos(len)).is_full_for(self.pos(len)) {
            len += 1;
        }
        ReadChunk {
            consumer: self,
            len,
        }
    }

    /// Committed values not yet popped, as far as the producer's last stored
    /// index tells. `Corrupt` if that index is impossible.
    pub fn len(&self) -> Result<usize> {
        let tail = self.mem.header().tail.load(Ordering::Relaxed);
        occupancy(&self.mem, tail, self.head, "producer")
    }

    /// Whether the next [`try_pop`](Self::try_pop) would find nothing.
    pub fn is_empty(&self) -> bool {
        !self.mem.slot(self.head).is_full_for(self.head)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mem.capacity() as usize
    }

    /// Values popped from this ring, counting from creation.
    pub fn popped(&self) -> u64 {
        self.head
    }

    fn pos(&self, i: usize) -> u64 {
        self.head.wrapping_add(i as u64)
    }

    /// Release `n` slots to the producer (Release: our reads of them happen
    /// before its next writes) and wake it if it sleeps.
    #[inline(always)]
    fn advance(&mut self, n: u64) {
        self.head = self.head.wrapping_add(n);
        let header = self.mem.header();
        header.head.store(self.head, Ordering::Release);
        wait::notify(&header.producer_event);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.mem.header().consumer_role, me);
        }
    }
}

/// Committed values borrowed by [`Consumer::read_chunk`]. Read them in
/// place; dropping the chunk releases them all (like every read guard),
/// and [`release`](Self::release) releases only the first `n`, leaving the
/// rest in the ring.
///
/// ```
/// # let name = format!("shmring-doc-spsc-rchunk-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// for v in 1..=3 {
///     tx.try_push(v).unwrap();
/// }
/// let chunk = rx.read_chunk(8); // what is ready, up to 8, in place
/// assert_eq!(chunk.iter().sum::<u64>(), 6);
/// drop(chunk); // released
/// assert_eq!(rx.try_pop(), None);
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a chunk releases its values when dropped (or with release)"]
pub struct ReadChunk<'a, T: Pod + Send> {
    consumer: &'a mut Consumer<T>,
    len: usize,
}

impl<T: Pod + Send> std::fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadChunk").field("len", &self.len).finish()
    }
}

impl<T: Pod + Send> ReadChunk<'_, T> {
    /// Number of borrowed values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was ready.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th borrowed value, in place.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    pub fn get(&self, i: usize) -> &T {
        assert!(i < self.len, "value {i} of a {}-value chunk", self.len);
        let pos = self.consumer.pos(i);
        // SAFETY: the slot is full for us (checked in read_chunk) and not
        // released while `self` borrows the consumer.
        unsafe { self.consumer.mem.slot(pos).value_ref() }
    }

    /// A copy of the `i`th borrowed value.
    pub fn read(&self, i: usize) -> T {
        assert!(i < self.len, "value {i} of a {}-value chunk", self.len);
        let pos = self.consumer.pos(i);
        // SAFETY: as in `get`.
        unsafe { self.consumer.mem.slot(pos).read() }
    }

    /// The borrowed values in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).map(move |i| self.get(i))
    }

    /// Hand the first `n` values' slots back to the producer; the others
    /// stay in the ring, to be read again by the next read.
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn release(mut self, n: usize) {
        assert!(n <= self.len, "release {n} of a {}-value chunk", self.len);
        self.consumer.advance(n as u64);
        self.len = 0; // nothing left for drop to release
    }

    /// Release every borrowed value (what dropping the chunk does).
    pub fn release_all(self) {
        drop(self)
    }
}

impl<T: Pod + Send> Drop for ReadChunk<'_, T> {
    /// Release every value still borrowed.
    fn drop(&mut self) {
        if self.len > 0 {
            self.consumer.advance(self.len as u64);
        }
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.mem.segment().name().as_str())
            .field("tail", &self.tail)
            .finish()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.mem.segment().name().as_str())
            .field("head", &self.head)
            .finish()
    }
}

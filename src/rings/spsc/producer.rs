//! The SPSC producer and its in-place write chunk.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Full, PushTimeout, Result, SendError, TimedOut};

use super::{holds_role, occupancy};
use crate::format::slot::{Runtime, Slot};
use crate::kind::Role;
use crate::lifecycle::memory::RingMemory;
use crate::peers::role;
use crate::peers::role::RoleClaim;
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// The writing end of an [`Spsc`](crate::Spsc) ring. Not `Sync`: one thread pushes.
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
    pub(super) mem: Arc<RingMemory<Slot<T>>>,
    pub(super) tail: u64,
    /// The consumer's `head` as last read; re-read only when it says full.
    pub(super) cached_head: u64,
    pub(super) me: Option<RoleClaim>,
    pub(super) wait: WaitStrategy,
    pub(super) _not_sync: PhantomData<std::cell::Cell<()>>,
}

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
    fn timed_out(&self, op: &'static str, waited: Duration) -> TimedOut {
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
    /// use shmring::RecvError;
    /// # let name = format!("shmring-doc-close-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(1).unwrap();
    /// tx.close();
    /// assert_eq!(rx.pop_timeout(Duration::from_secs(1))?, 1); // drained first
    /// assert!(matches!(rx.pop_timeout(Duration::from_secs(1)), Err(RecvError::Closed { .. })));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.mem.header().consumer_event);
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` until
    /// at least one slot is free; [`SendError::Timeout`] if none became
    /// free. The chunk holds at least one slot (none only when `n` is 0).
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-m-spsc-reserve-timeout-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut chunk = tx.reserve_timeout(2, Duration::from_millis(10))?;
    /// chunk.write(0, 7);
    /// chunk.commit(1);
    /// assert_eq!(ring.consumer()?.try_pop(), Some(7));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn reserve_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> std::result::Result<WriteChunk<'_, T>, SendError> {
        if n > 0 && !self.wait_for_room(timeout) {
            return Err(self.timed_out("reserve_timeout", timeout).into());
        }
        Ok(self.chunk(n))
    }

    /// The old name of [`reserve_timeout`](Self::reserve_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `reserve_timeout`: every producer reserves in place"
    )]
    pub fn write_chunk_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<WriteChunk<'_, T>> {
        Ok(self.reserve_timeout(n, timeout)?)
    }

    /// How this producer waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with: [`WaitStrategy::producer_default`] until
    /// [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
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
        let batch = (cap / 8).clamp(1, wait::ROOM_BATCH);
        // Only while spinning: a sleeper would be woken once per freed slot.
        let patience = wait::ROOM_PATIENCE.min(strategy.spins());
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

    /// Reserve up to `n` free slots in place (fewer when the ring has less
    /// room), to be filled and committed; `None` when the ring is full (or
    /// `n` is 0).
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-wchunk-{}", std::process::id());
    /// let ring = shmring::Spsc::<[u8; 16]>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut chunk = tx.try_reserve(8).unwrap();
    /// assert_eq!(chunk.len(), 4); // only 4 free
    /// chunk.get_mut(0)[0] = 1; // build values in place
    /// chunk.commit(1);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_reserve(&mut self, n: usize) -> Option<WriteChunk<'_, T>> {
        let chunk = self.chunk(n);
        (!chunk.is_empty()).then_some(chunk)
    }

    /// The old name of [`try_reserve`](Self::try_reserve), which lends an
    /// empty chunk where `try_reserve` says `None`.
    #[deprecated(
        since = "0.1.0",
        note = "renamed `try_reserve`: every producer reserves in place"
    )]
    pub fn write_chunk(&mut self, n: usize) -> WriteChunk<'_, T> {
        self.chunk(n)
    }

    /// Up to `n` free slots, perhaps none.
    #[inline(always)]
    fn chunk(&mut self, n: usize) -> WriteChunk<'_, T> {
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

/// A ring of a run-time layout (`rings/runtime.rs`): values as bytes,
/// through the same positions, stamps and waits as every value.
impl Producer<Runtime> {
    /// Push `value` (the layout's size: the caller checked) if there is
    /// room; `Full` if not.
    pub(crate) fn try_push_bytes(&mut self, value: &[u8]) -> std::result::Result<(), SendError> {
        if self.room(1) == 0 {
            self.mem.count_blocked(Role::Producer);
            return Err(SendError::Full);
        }
        self.write_bytes_next(value);
        Ok(())
    }

    /// Push `value`, waiting up to `timeout` for room (a zero timeout is
    /// [`try_push_bytes`](Self::try_push_bytes)).
    pub(crate) fn push_bytes_timeout(
        &mut self,
        value: &[u8],
        timeout: Duration,
    ) -> std::result::Result<(), SendError> {
        if timeout.is_zero() {
            return self.try_push_bytes(value);
        }
        if self.wait_for_room(timeout) && self.room(1) > 0 {
            self.write_bytes_next(value);
            return Ok(());
        }
        Err(self.timed_out("push_timeout", timeout).into())
    }

    /// Push the values laid out one after another in `values` (whole
    /// values of `size` bytes: the caller checked) while there is room, as
    /// a write chunk commits: each copied in and stamped, then one index
    /// store and one wakeup for all; how many went.
    pub(crate) fn try_push_bytes_many(&mut self, values: &[u8], size: usize) -> usize {
        let n = values.len() / size.max(1);
        let k = n.min(self.room(n as u64) as usize);
        if k == 0 {
            if n > 0 {
                self.mem.count_blocked(Role::Producer);
            }
            return 0;
        }
        for (i, value) in values.chunks_exact(size.max(1)).take(k).enumerate() {
            let pos = self.tail.wrapping_add(i as u64);
            // SAFETY: `room` saw the consumer release these `k` slots
            // (Acquire on its head), and it does not touch them again until
            // each is published.
            unsafe { self.mem.write_runtime_value(pos, value) };
            self.mem.slot(pos).publish(pos);
        }
        self.advance(k as u64);
        k
    }

    /// Room for the value at the tail, waiting up to `timeout` for it (a
    /// zero timeout does not wait, and says `Full`): the first of its
    /// bytes, in place, the caller's alone until
    /// [`commit_bytes`](Self::commit_bytes) publishes them.
    pub(crate) fn reserve_bytes(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<*mut u8, SendError> {
        if self.room(1) == 0 {
            if timeout.is_zero() {
                self.mem.count_blocked(Role::Producer);
                return Err(SendError::Full);
            }
            if !(self.wait_for_room(timeout) && self.room(1) > 0) {
                return Err(self.timed_out("reserve_timeout", timeout).into());
            }
        }
        // SAFETY: `room` saw the consumer release this slot (Acquire on its
        // head), and it does not touch it again until we publish.
        Ok(unsafe { self.mem.runtime_value_to_write(self.tail) })
    }

    /// Publish the value [`reserve_bytes`](Self::reserve_bytes) lent.
    pub(crate) fn commit_bytes(&mut self) {
        self.mem.slot(self.tail).publish(self.tail);
        self.advance(1);
    }

    /// [`write_next`](Self::write_next), of bytes.
    fn write_bytes_next(&mut self, value: &[u8]) {
        // SAFETY: `room` saw the consumer release this slot (Acquire on its
        // head), and the consumer does not touch it again until we publish.
        unsafe { self.mem.write_runtime_value(self.tail, value) };
        self.mem.slot(self.tail).publish(self.tail);
        self.advance(1);
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.mem.header().producer_role, me);
        }
    }
}

/// Free slots reserved by [`Producer::try_reserve`]. Fill them in place, then
/// [`commit`](Self::commit); dropping the chunk commits nothing.
///
/// ```
/// # let name = format!("shmring-doc-spsc-wchunk-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let mut chunk = tx.try_reserve(4).unwrap(); // up to 4 free slots, in place
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
        // try_reserve) and are unpublished; `&mut self` makes the reference
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
        let (a, b) = self.producer.mem.run(self.producer.tail, self.len);
        let mut values = iter.into_iter();
        let mut n = 0;
        // Two plain loops: a chained iterator costs a branch per value.
        for run in [a, b] {
            for (slot, value) in run.iter().zip(&mut values) {
                // SAFETY: as in `get_mut`, for each of the `len` reserved
                // slots; the chunk is borrowed mutably, so nothing else
                // writes them.
                unsafe { slot.write(value) };
                n += 1;
            }
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
        let (a, b) = p.mem.run(p.tail, n);
        let mut pos = p.tail;
        for run in [a, b] {
            for slot in run {
                slot.publish(pos);
                pos = pos.wrapping_add(1);
            }
        }
        p.advance(n as u64);
    }

    /// Publish every reserved slot.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n)
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

impl<T: Pod + Send> crate::hook::Waitable for Producer<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        crate::hook::WakeWord::new(self.mem.clone(), false)
    }
}

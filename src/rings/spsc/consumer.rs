//! The SPSC consumer and its in-place read chunk.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{RecvError, Result, TimedOut};

use super::{holds_role, occupancy};
use crate::format::slot::{full_stamp, full_stamp_after, Runtime, Slot};
use crate::kind::Role;
use crate::lifecycle::memory::RingMemory;
use crate::peers::role;
use crate::peers::role::RoleClaim;
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// The reading end of an [`Spsc`](crate::Spsc) ring. Not `Sync`: one thread pops.
///
/// ```
/// use std::time::Duration;
/// use shmring::{RecvError, Spsc, WaitStrategy};
/// # let name = format!("shmring-doc-spsc-consumer-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 16)?;
/// let mut rx = ring.consumer()?;
/// rx.set_wait_strategy(WaitStrategy::Spin);
/// // Nothing arrives: the wait ends at its timeout, never later.
/// assert!(matches!(rx.pop_timeout(Duration::from_millis(1)), Err(RecvError::Timeout { .. })));
/// assert!(rx.is_empty());
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Consumer<T> {
    pub(super) mem: Arc<RingMemory<Slot<T>>>,
    pub(super) head: u64,
    pub(super) me: Option<RoleClaim>,
    pub(super) wait: WaitStrategy,
    pub(super) _not_sync: PhantomData<std::cell::Cell<()>>,
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
    /// [`try_pop`](Self::try_pop); [`RecvError::Timeout`] if nothing
    /// arrived, [`RecvError::Closed`] if the producer closed the ring and
    /// every value before the close was received.
    #[inline]
    pub fn pop_timeout(&mut self, timeout: Duration) -> std::result::Result<T, RecvError> {
        if let Some(v) = self.try_pop() {
            return Ok(v);
        }
        self.wait_for_data(timeout, "pop_timeout")?;
        self.try_pop()
            .ok_or_else(|| self.timed_out("pop_timeout", timeout).into())
    }

    /// [`try_read`](Self::try_read), waiting up to `timeout` until at
    /// least one value is ready; [`RecvError::Timeout`] if none arrived.
    /// The chunk holds at least one value (none only when `n` is 0).
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-m-spsc-read-timeout-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(3).unwrap();
    /// let chunk = rx.read_timeout(8, Duration::from_millis(10))?;
    /// assert_eq!(chunk.iter().copied().collect::<Vec<_>>(), [3]);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn read_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> std::result::Result<ReadChunk<'_, T>, RecvError> {
        if n > 0 {
            self.wait_for_data(timeout, "read_timeout")?;
        }
        Ok(self.chunk(n))
    }

    /// The old name of [`read_timeout`](Self::read_timeout).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `read_timeout`: every consumer reads in place"
    )]
    pub fn read_chunk_timeout(&mut self, n: usize, timeout: Duration) -> Result<ReadChunk<'_, T>> {
        Ok(self.read_timeout(n, timeout)?)
    }

    /// How this consumer waits when the ring is empty.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with: [`WaitStrategy::default`] until
    /// [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// The error of a wait for data that ended: who did not publish.
    #[cold]
    fn timed_out(&self, op: &'static str, waited: Duration) -> TimedOut {
        let attached = holds_role(&self.mem, &self.mem.header().producer_role);
        self.mem.timed_out(op, waited, Role::Producer, attached)
    }

    #[inline(never)]
    fn wait_for_data(
        &mut self,
        timeout: Duration,
        op: &'static str,
    ) -> std::result::Result<(), RecvError> {
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
                false => Err(RecvError::Closed {
                    name: mem.segment().name().as_str().to_owned(),
                }),
            })
        })
        .unwrap_or_else(|| Err(self.timed_out(op, timeout).into()))
    }

    /// Borrow up to `n` committed values in place (fewer when fewer are
    /// ready), to be released after reading; `None` when the ring is empty
    /// (or `n` is 0).
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-spsc-rchunk-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(1).unwrap();
    /// tx.try_push(2).unwrap();
    /// let chunk = rx.try_read(4).unwrap();
    /// assert_eq!((chunk.len(), *chunk.get(1)), (2, 2));
    /// chunk.release(1); // the second value stays in the ring
    /// assert_eq!(rx.try_pop(), Some(2));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_read(&mut self, n: usize) -> Option<ReadChunk<'_, T>> {
        let chunk = self.chunk(n);
        (!chunk.is_empty()).then_some(chunk)
    }

    /// The old name of [`try_read`](Self::try_read), which lends an empty
    /// chunk where `try_read` says `None`.
    #[deprecated(
        since = "0.1.0",
        note = "renamed `try_read`: every consumer reads in place"
    )]
    pub fn read_chunk(&mut self, n: usize) -> ReadChunk<'_, T> {
        self.chunk(n)
    }

    /// Up to `n` committed values, perhaps none.
    #[inline(always)]
    fn chunk(&mut self, n: usize) -> ReadChunk<'_, T> {
        let len = self.ready_within(n.min(self.mem.capacity() as usize));
        ReadChunk {
            consumer: self,
            len,
        }
    }

    /// How many positions from `head` on hold committed values, up to
    /// `max`: the stamps are checked in order (Acquire, each showing its
    /// value) up to the first that is not full. Walking them in order
    /// touches only the lines the chunk will lend, plus the one after.
    /// Probing further ahead (bisection over the window, tried) loads
    /// lines the producer has yet to write, and each such load costs it a
    /// line transfer when it writes there: 1.65-1.71x rtrb's time across
    /// cores for chunks of 64, against 1.24-1.28x walking.
    #[inline(always)]
    fn ready_within(&self, max: usize) -> usize {
        let (a, b) = self.mem.run(self.head, max);
        let (mut ready, mut want) = (0, full_stamp(self.head));
        for run in [a, b] {
            for slot in run {
                if slot.stamp() != want {
                    return ready;
                }
                ready += 1;
                want = full_stamp_after(want);
            }
        }
        ready
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

    /// Release `n` slots to the producer (Release: our reads of them, and
    /// our zeroing where the ring asks for it, happen before its next
    /// writes) and wake it if it sleeps.
    #[inline(always)]
    fn advance(&mut self, n: u64) {
        if self.mem.zeroes_after_use() {
            self.zero(n);
        }
        self.head = self.head.wrapping_add(n);
        let header = self.mem.header();
        header.head.store(self.head, Ordering::Release);
        wait::notify(&header.producer_event);
    }
}

impl<T: Pod + Send> Consumer<T> {
    /// Zero the `n` slots from `head`, which we hold until `advance`
    /// releases them. Out of line: the rings that do not zero pay only
    /// the test of the flag.
    #[cold]
    #[inline(never)]
    fn zero(&self, n: u64) {
        // SAFETY: the producer does not write these slots again until we
        // move `head` past them, which we do after this.
        unsafe { self.mem.zero_values(self.head, n as usize) };
    }
}

/// A ring of a run-time layout (`rings/runtime.rs`): values as bytes,
/// through the same positions, stamps and waits as every value.
impl Consumer<Runtime> {
    /// Pop the oldest value into `out` (the layout's size: the caller
    /// checked), if there is one.
    pub(crate) fn try_pop_bytes(&mut self, out: &mut [u8]) -> bool {
        if !self.mem.slot(self.head).is_full_for(self.head) {
            return false;
        }
        // SAFETY: the stamp says the slot holds our value; the producer does
        // not write it again until we release it by moving `head`.
        unsafe { self.mem.read_runtime_value(self.head, out) };
        self.advance(1);
        true
    }

    /// Pop the values ready now, up to as many as `out` holds (whole
    /// values of `size` bytes: the caller checked), as a read chunk
    /// releases them: each stamp checked (Acquire) and its value copied
    /// out, then one index store and one wakeup for all; how many.
    pub(crate) fn try_pop_bytes_many(&mut self, out: &mut [u8], size: usize) -> usize {
        let n = out.len() / size.max(1);
        // As `ready_within` walks them, slot by slot: the slots are no
        // array of `Slot<Runtime>` (their stride is the layout's).
        let mut want = full_stamp(self.head);
        let mut k = 0;
        while k < n.min(self.mem.capacity() as usize) && self.mem.slot(self.pos(k)).stamp() == want
        {
            k += 1;
            want = full_stamp_after(want);
        }
        for (i, value) in out.chunks_exact_mut(size.max(1)).take(k).enumerate() {
            // SAFETY: we saw these `k` stamps full (Acquire, above);
            // the producer does not write them again until we move `head`.
            unsafe { self.mem.read_runtime_value(self.pos(i), value) };
        }
        if k > 0 {
            self.advance(k as u64);
        }
        k
    }

    /// The oldest value's first byte, lent in place until
    /// [`release_bytes`](Self::release_bytes), if there is one.
    pub(crate) fn try_read_bytes(&mut self) -> Option<*const u8> {
        if !self.mem.slot(self.head).is_full_for(self.head) {
            return None;
        }
        // SAFETY: the stamp says the slot holds our value; the producer does
        // not write it again until we release it by moving `head`.
        Some(unsafe { self.mem.runtime_value_to_read(self.head) })
    }

    /// [`try_read_bytes`](Self::try_read_bytes), waiting up to `timeout`
    /// for a value (errors as for [`pop_timeout`](Self::pop_timeout)).
    pub(crate) fn read_bytes_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<*const u8, RecvError> {
        if let Some(value) = self.try_read_bytes() {
            return Ok(value);
        }
        self.wait_for_data(timeout, "read_timeout")?;
        self.try_read_bytes()
            .ok_or_else(|| self.timed_out("read_timeout", timeout).into())
    }

    /// Release the value [`read_bytes`](Self::read_bytes) lent (zeroed
    /// first if the ring asks for it).
    pub(crate) fn release_bytes(&mut self) {
        self.advance(1);
    }

    /// Pop the oldest value into `out`, waiting up to `timeout` for one
    /// (as [`pop_timeout`](Self::pop_timeout)).
    pub(crate) fn pop_bytes_timeout(
        &mut self,
        out: &mut [u8],
        timeout: Duration,
    ) -> std::result::Result<(), RecvError> {
        if self.try_pop_bytes(out) {
            return Ok(());
        }
        self.wait_for_data(timeout, "pop_timeout")?;
        match self.try_pop_bytes(out) {
            true => Ok(()),
            false => Err(self.timed_out("pop_timeout", timeout).into()),
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.mem.header().consumer_role, me);
        }
    }
}

/// Committed values borrowed by [`Consumer::try_read`]. Read them in
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
/// let chunk = rx.try_read(8).unwrap(); // what is ready, up to 8, in place
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
        // SAFETY: the slot is full for us (checked in try_read) and not
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
        let (a, b) = self.consumer.mem.run(self.consumer.head, self.len);
        // SAFETY: as in `get`, for each of the `len` slots from `head`.
        a.iter().chain(b).map(|slot| unsafe { slot.value_ref() })
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

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.mem.segment().name().as_str())
            .field("head", &self.head)
            .finish()
    }
}

impl<T: Pod + Send> crate::hook::Waitable for Consumer<T> {
    fn wake_word(&self) -> crate::hook::WakeWord {
        crate::hook::WakeWord::new(self.mem.clone(), true)
    }
}

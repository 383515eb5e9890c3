//! In-place chunks of the broadcast ring: the producer builds values in
//! their slots, a subscriber reads them where they lie.
//!
//! A write chunk is `write_seq` spread over several slots: reserving marks
//! each lent slot busy with its position, then one Release fence; the
//! values are written in place; committing stamps each full (Release) in
//! order, then stores the tail once. A subscriber that meets a marked
//! slot before the commit waits (its position is not yet published) or,
//! if it was reading the value the slot held a lap ago, finds it
//! overwritten. A chunk dropped uncommitted publishes nothing; its slots
//! keep their busy marks until the producer reserves them again.
//!
//! A read chunk is the seqlock read spread over several slots: each
//! lent slot was stamped full for its position (Acquire), the values are
//! read (copied, or lent in place to a subscriber the producer never
//! overwrites), and releasing issues one Acquire fence and looks at the
//! stamps again, in order. The values up to the first changed stamp were
//! whole; from that one on, the subscriber skips ahead and counts what it
//! passes over as missed. A producer lapping the chunk overwrites its
//! oldest value first, so a lapped chunk is rarely whole at all. A
//! lossless subscriber is never overwritten (the producer waits for its
//! position, which moves only on release), so for it every release is
//! whole, unless the producer made it lossy meanwhile.

use std::time::Duration;

use bytemuck::Pod;

use super::producer::BroadcastProducer;
use super::subscriber::{Subscriber, OVERRUN_RETRIES};
use super::{found, Found};
use crate::error::{Overrun, RecvError, SendError};
use crate::format::slot::full_stamp;
use crate::platform::sync::{fence, Ordering};

impl<T: Pod + Send> BroadcastProducer<T> {
    /// Reserve up to `n` slots in place (fewer when the lossless
    /// subscribers leave less room), to be filled and committed; `None`
    /// when there is no room (or `n` is 0).
    ///
    /// ```
    /// # let name = format!("shmring-doc-bcast-reserve-{}", std::process::id());
    /// let ring = shmring::Broadcast::<[u8; 16]>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut rx = ring.subscriber()?;
    /// let mut chunk = tx.try_reserve(8).unwrap();
    /// assert_eq!(chunk.len(), 4); // the ring's capacity
    /// chunk.get_mut(0)[0] = 1; // build a value in place
    /// chunk.commit(1);
    /// assert_eq!(rx.try_pop().unwrap()[0], 1);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_reserve(&mut self, n: usize) -> Option<BroadcastWriteChunk<'_, T>> {
        let len = self.room_for(n as u64);
        (len > 0).then(|| self.lend(len as usize))
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for the
    /// lossless subscribers to make room for at least one value (see
    /// [`push_timeout`](Self::push_timeout)); [`SendError::Timeout`] if
    /// they did not. An empty chunk only when `n` is 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-bcast-reserve-timeout-{}", std::process::id());
    /// let ring = shmring::Broadcast::<u64>::create(&name, 1)?;
    /// let mut tx = ring.producer()?;
    /// let _slow = ring.subscriber()?; // lossless, never reads
    /// tx.try_push(1).unwrap();
    /// assert!(tx.reserve_timeout(1, Duration::from_millis(1)).is_err());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn reserve_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<BroadcastWriteChunk<'_, T>, SendError> {
        if n == 0 {
            return Ok(self.lend(0));
        }
        let mut len = self.room_for(n as u64);
        if len == 0 && self.wait_for_room(timeout) {
            len = self.room_for(n as u64);
        }
        if len == 0 {
            return Err(self.timed_out("reserve_timeout", timeout).into());
        }
        Ok(self.lend(len as usize))
    }

    /// Lend the `len` slots from `tail` (room checked), marked busy.
    fn lend(&mut self, len: usize) -> BroadcastWriteChunk<'_, T> {
        let mem = &*self.mem;
        for i in 0..len as u64 {
            let pos = self.tail.wrapping_add(i);
            mem.ring.slot(pos).mark_busy(pos);
        }
        // Release: the busy marks happen before any byte of the values
        // written in place, so a reader whose copy saw one of those bytes
        // sees a mark (or later) on its second look.
        fence(Ordering::Release);
        BroadcastWriteChunk {
            producer: self,
            len,
        }
    }
}

/// Slots reserved by [`BroadcastProducer::try_reserve`]: fill them in
/// place, then [`commit`](Self::commit); dropping the chunk publishes
/// nothing.
///
/// A lossy subscriber a lap behind may still be copying the values these
/// slots held; it finds them overwritten and counts them missed, never
/// returns them torn.
///
/// ```
/// # let name = format!("shmring-doc-bcast-wchunk-{}", std::process::id());
/// let ring = shmring::Broadcast::<u64>::create(&name, 8)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.subscriber()?;
/// let mut chunk = tx.try_reserve(4).unwrap();
/// let n = chunk.fill_from_iter(10..13);
/// chunk.commit(n); // publishes 10, 11, 12 with one tail store
/// assert_eq!(rx.try_pop(), Some(10));
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a chunk publishes only when committed; dropping it publishes nothing"]
pub struct BroadcastWriteChunk<'a, T: Pod + Send> {
    producer: &'a mut BroadcastProducer<T>,
    len: usize,
}

impl<T: Pod + Send> std::fmt::Debug for BroadcastWriteChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastWriteChunk")
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod + Send> BroadcastWriteChunk<'_, T> {
    /// Number of reserved slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is reserved (`n` was 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn pos(&self, i: usize) -> u64 {
        assert!(i < self.len, "slot {i} of a {}-slot chunk", self.len);
        self.producer.tail.wrapping_add(i as u64)
    }

    /// The `i`th reserved slot, in place.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    #[cfg(not(shmring_loom))]
    pub fn get_mut(&mut self, i: usize) -> &mut T {
        let pos = self.pos(i);
        // SAFETY: we hold the producer role, so no one else writes the
        // slot; it is marked busy and fenced, so a lossy reader copying it
        // discards what it copies; `&mut self` makes the reference unique.
        unsafe { self.producer.mem.ring.slot(pos).value_mut() }
    }

    /// Store `value` in the `i`th reserved slot.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn write(&mut self, i: usize, value: T) {
        let pos = self.pos(i);
        let mem = &*self.producer.mem;
        let index = pos & (mem.ring.capacity() - 1);
        // SAFETY: as in `get_mut`.
        unsafe { mem.ring.slot(pos).write_marked(value, &mem.values, index) }
    }

    /// Fill reserved slots from `iter` in order; returns how many were
    /// filled.
    pub fn fill_from_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let mut n = 0;
        for value in iter.into_iter().take(self.len) {
            self.write(n, value);
            n += 1;
        }
        n
    }

    /// Publish the first `n` reserved slots to every subscriber, in order.
    /// As with the other rings' chunks, a slot committed without being
    /// written delivers what it held (a lap-old value, or zeros).
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn commit(self, n: usize) {
        assert!(n <= self.len, "commit {n} of a {}-slot chunk", self.len);
        let p = self.producer;
        for i in 0..n as u64 {
            let pos = p.tail.wrapping_add(i);
            p.mem.ring.slot(pos).publish(pos);
        }
        p.published(n as u64);
    }

    /// Publish every reserved slot.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n)
    }
}

impl<T: Pod + Send> Subscriber<T> {
    /// Borrow up to `n` published values in place (fewer when fewer are
    /// published), to be released after reading; `None` when none is (or
    /// `n` is 0). Values it missed are skipped and counted first, as
    /// [`try_pop`](Self::try_pop) does.
    ///
    /// ```
    /// # let name = format!("shmring-doc-bcast-try-read-{}", std::process::id());
    /// let ring = shmring::Broadcast::<u64>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut rx = ring.subscriber()?;
    /// tx.try_push(1).unwrap();
    /// tx.try_push(2).unwrap();
    /// let chunk = rx.try_read(4).unwrap();
    /// assert_eq!((chunk.len(), chunk.read(1)), (2, 2));
    /// chunk.release(1)?; // the second value stays to be read again
    /// assert_eq!(rx.try_pop(), Some(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_read(&mut self, n: usize) -> Option<BroadcastReadChunk<'_, T>> {
        let len = self.ready(n);
        (len > 0).then_some(BroadcastReadChunk {
            subscriber: self,
            len,
        })
    }

    /// [`try_read`](Self::try_read), waiting up to `timeout` for a value;
    /// [`RecvError::Closed`] once the producer closed the ring and every
    /// value before the close was read. An empty chunk only when `n` is 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-bcast-read-timeout-{}", std::process::id());
    /// let ring = shmring::Broadcast::<u64>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut rx = ring.subscriber()?;
    /// tx.try_push(3).unwrap();
    /// let chunk = rx.read_timeout(8, Duration::from_millis(10))?;
    /// assert_eq!(chunk.iter().collect::<Vec<_>>(), [3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<BroadcastReadChunk<'_, T>, RecvError> {
        let mut len = self.ready(n);
        if len == 0 && n > 0 {
            self.count_wait(timeout);
            if self.wait_for_value(timeout) {
                len = self.ready(n);
            }
            if len == 0 && self.closed() {
                // Everything before the close is visible now: one more look.
                len = self.ready(n);
                if len == 0 {
                    return Err(self.closed_error());
                }
            }
            if len == 0 {
                return Err(self.timed_out("read_timeout", timeout).into());
            }
        }
        Ok(BroadcastReadChunk {
            subscriber: self,
            len,
        })
    }

    /// How many values from our position, up to `n`, are published: after
    /// skipping (and counting) what was overwritten before we got there.
    fn ready(&mut self, n: usize) -> usize {
        let cap = self.mem.ring.capacity();
        let want = (n as u64).min(cap);
        if want == 0 {
            return 0;
        }
        for _ in 0..OVERRUN_RETRIES {
            let pos = self.position;
            // Acquire (in `stamp`), as in `try_pop`: the values written
            // before each full stamp are visible.
            match found(self.mem.ring.slot(pos).stamp(), pos) {
                Found::NotYet => return 0,
                Found::Overrun => self.skip(()),
                Found::Ready => {
                    let mut len = 1;
                    while len < want {
                        let p = pos.wrapping_add(len);
                        if self.mem.ring.slot(p).stamp() != full_stamp(p) {
                            break;
                        }
                        len += 1;
                    }
                    return len as usize;
                }
            }
        }
        0
    }

    /// Release the `n` values from our position that a chunk lent: those
    /// before the first whose stamp changed are whole; we move past them,
    /// and skip (and count) from that one.
    fn release_read(&mut self, n: usize) -> Result<(), Overrun> {
        // Acquire: our reads of the values happen before the second look
        // at their stamps, so a read that saw a newer write's bytes sees
        // its busy mark (or later) here.
        fence(Ordering::Acquire);
        let pos = self.position;
        let whole = (0..n as u64)
            .take_while(|&i| {
                let p = pos.wrapping_add(i);
                self.mem.ring.slot(p).stamp_relaxed() == full_stamp(p)
            })
            .count();
        self.advance(pos.wrapping_add(whole as u64));
        if whole == n {
            return Ok(());
        }
        self.skip(());
        Err(Overrun { whole })
    }
}

/// Values lent by [`Subscriber::try_read`]: read them (copies, or in
/// place for a subscriber the producer never overwrites, see
/// [`get`](Self::get)), then [`release`](Self::release) them, which says
/// whether they were whole.
/// Dropping the chunk releases every value (counting overwritten ones as
/// missed, without saying which).
///
/// For a lossless subscriber every release is whole: the producer does
/// not overwrite what it has not released (once it has seen the
/// subscriber: one starting at [`Start::Oldest`](crate::Start::Oldest)
/// may meet values overwritten before that). A lossy subscriber (or one
/// made lossy while it read) may be lapped while it reads; then the values
/// from the first overwritten one on may be torn, and release says how
/// many were whole ([`Overrun`]).
///
/// ```
/// # let name = format!("shmring-doc-bcast-rchunk-{}", std::process::id());
/// let ring = shmring::Broadcast::<u64>::create(&name, 8)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.subscriber()?;
/// for v in 1..=3 {
///     tx.try_push(v).unwrap();
/// }
/// let chunk = rx.try_read(8).unwrap(); // what is published, up to 8
/// assert_eq!(chunk.iter().sum::<u64>(), 6);
/// chunk.release_all()?;
/// assert_eq!(rx.try_pop(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "release the chunk to learn whether its values were whole"]
pub struct BroadcastReadChunk<'a, T: Pod + Send> {
    subscriber: &'a mut Subscriber<T>,
    len: usize,
}

impl<T: Pod + Send> std::fmt::Debug for BroadcastReadChunk<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastReadChunk")
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod + Send> BroadcastReadChunk<'_, T> {
    /// Number of lent values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is lent (`n` was 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position of the first lent value: how many values were
    /// published before it.
    pub fn position(&self) -> u64 {
        self.subscriber.position
    }

    fn pos(&self, i: usize) -> u64 {
        assert!(i < self.len, "value {i} of a {}-value chunk", self.len);
        self.subscriber.position.wrapping_add(i as u64)
    }

    /// The `i`th lent value, in place, for a subscriber whose values the
    /// producer never overwrites while they are lent: lossless, with
    /// `demote_after(None)` and no lag bound, from where it joined on.
    /// `None` for any other (a lossy subscriber's values may change while
    /// borrowed, and a reference must not see that): copy with
    /// [`read`](Self::read).
    ///
    /// ```
    /// use shmring::SubscriberOptions;
    /// # let name = format!("shmring-doc-bcast-get-{}", std::process::id());
    /// let ring = shmring::Broadcast::<[u8; 64]>::create(&name, 4)?;
    /// let mut tx = ring.producer()?;
    /// let mut pinned = ring.subscriber_with(&SubscriberOptions::lossless().demote_after(None))?;
    /// let mut lossy = ring.subscriber_with(&SubscriberOptions::lossy())?;
    /// tx.try_push([7; 64]).unwrap();
    /// assert_eq!(pinned.try_read(1).unwrap().get(0).map(|v| v[0]), Some(7));
    /// assert!(lossy.try_read(1).unwrap().get(0).is_none());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    #[cfg(not(shmring_loom))]
    pub fn get(&self, i: usize) -> Option<&T> {
        let pos = self.pos(i);
        let from = self.subscriber.pinned_from?;
        if (pos.wrapping_sub(from) as i64) < 0 {
            return None;
        }
        // SAFETY: the slot lies in the mapping; the producer does not
        // write it again before this subscriber releases `pos` (it is
        // lossless, never made lossy, and `pos` is past where the
        // producer surely saw it join), which cannot happen while the
        // chunk borrows the subscriber.
        Some(unsafe { self.subscriber.mem.ring.slot(pos).value_ref() })
    }

    /// A copy of the `i`th lent value (whole if release says so).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn read(&self, i: usize) -> T {
        let pos = self.pos(i);
        let mem = &*self.subscriber.mem;
        mem.ring
            .slot(pos)
            .read_seq(&mem.values, pos & (mem.ring.capacity() - 1))
    }

    /// Copies of the lent values, in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(|i| self.read(i))
    }

    /// Release the first `n` values, and say whether they were whole:
    /// [`Overrun`] says how many were, from the first; the subscriber then
    /// skips ahead from the first that was not, counting what it passes
    /// over as missed. Values after the `n` stay, to be read again.
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn release(mut self, n: usize) -> Result<(), Overrun> {
        assert!(n <= self.len, "release {n} of a {}-value chunk", self.len);
        self.len = 0; // nothing left for drop to release
        self.subscriber.release_read(n)
    }

    /// Release every lent value, and say whether they were whole.
    pub fn release_all(self) -> Result<(), Overrun> {
        let n = self.len;
        self.release(n)
    }
}

impl<T: Pod + Send> Drop for BroadcastReadChunk<'_, T> {
    /// Release every value still lent; overwritten ones are counted missed.
    fn drop(&mut self) {
        if self.len > 0 {
            let _ = self.subscriber.release_read(self.len);
        }
    }
}

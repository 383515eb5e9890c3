//! The byte ring's consumer: single messages and batches, read in place.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use super::records::Records;
use super::repair::{recover, stalled};
use crate::error::{Corruption, RecvError, Result};
use crate::format::record::{Kind, Record};
use crate::kind::Role;
use crate::peers::claims::any_alive;
use crate::peers::role;
use crate::peers::role::RoleClaim;
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// The consumer handle of a [`ByteRing`](crate::ByteRing).
///
/// ```
/// use std::time::Duration;
/// use shmring::RecvError;
/// # let name = format!("shmring-doc-bytes-consumer-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let mut rx = ring.consumer()?;
/// assert!(rx.try_recv()?.is_none());
/// assert!(matches!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvError::Timeout { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct ByteConsumer {
    pub(super) rec: Arc<Records>,
    /// Position of the next record to read (equal to `head`: everything
    /// before it has been released).
    pub(super) pos: u64,
    /// The write position when last read; see `Records::read`.
    pub(super) tail_hint: u64,
    /// The message last kept in place ([`Message::keep`]), valid while
    /// `pos` is unchanged: lent again without reading its record again.
    pub(super) kept: Option<Record>,
    pub(super) me: Option<RoleClaim>,
    pub(super) wait: WaitStrategy,
    pub(super) _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl ByteConsumer {
    /// The oldest committed message, lent in place, if there is one;
    /// dropping it releases its space. [`RecvError::Corrupt`] if the ring holds a
    /// record no honest producer could have written.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-bytes-recv-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"one")?;
    /// tx.try_send(b"two")?;
    /// assert_eq!(&*rx.try_recv()?.unwrap(), b"one"); // released at the `;`
    /// assert_eq!(&*rx.try_recv()?.unwrap(), b"two");
    /// assert!(rx.try_recv()?.is_none());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        Ok(self.next()?.map(|r| self.lend(r)))
    }

    /// Wait up to `timeout` for a message. [`RecvError::Stalled`] if the
    /// wait ended behind a record a producer claimed and never committed
    /// (it may have died); [`RecvError::Closed`] once a closed ring is
    /// drained; else [`RecvError::Timeout`].
    // Always: with `next` inlined into it, the compiler kept it out of line
    // at times, and its message came back through memory.
    #[inline(always)]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvError> {
        let r = match self.next()? {
            Some(r) => r,
            None => self.wait_for_message(timeout)?,
        };
        Ok(self.lend(r))
    }

    /// The rest of [`recv_timeout`](Self::recv_timeout), out of line: a
    /// message already there pays nothing for the wait it did not need.
    #[cold]
    fn wait_for_message(&mut self, timeout: Duration) -> Result<Record, RecvError> {
        let rec = Arc::clone(&self.rec);
        if !timeout.is_zero() {
            rec.ring().count_blocked(Role::Consumer);
        }
        let event = &rec.header().consumer_event;
        let strategy = self.wait;
        // While stalled behind an uncommitted record, look every few
        // milliseconds for a dead producer to repair.
        let between = || {
            if stalled(&rec) {
                recover(&rec);
                wait::REPAIR_SLICE
            } else {
                wait::IDLE_SLICE
            }
        };
        let name = || rec.ring().segment().name().as_str().to_owned();
        let ready = || match self.next().transpose() {
            Some(r) => Some(r.map_err(RecvError::from)),
            // Closed: one more look, now that everything committed
            // before the close is visible; behind an uncommitted
            // record, wait for its repair instead.
            None if wait::is_closed(event) => match self.next().transpose() {
                Some(r) => Some(r.map_err(RecvError::from)),
                None if stalled(&rec) => None,
                None => Some(Err(RecvError::Closed { name: name() })),
            },
            None => None,
        };
        match wait::wait_in_slices(event, strategy, timeout, ready, between) {
            Some(r) => r,
            None => Err(self.timed_out(timeout, "recv_timeout")),
        }
    }

    /// Every message committed now, lent in place, released together with
    /// one index store when the batch drops. Empty if there is none.
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-bytes-batch-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"a")?;
    /// tx.try_send(b"b")?;
    /// let joined: Vec<u8> = rx.read_batch()?.iter().flat_map(|m| m.to_vec()).collect();
    /// assert_eq!(joined, b"ab");
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn read_batch(&mut self) -> Result<Batch<'_>, RecvError> {
        self.batch(usize::MAX)
    }

    /// Up to `max` committed messages (and the padding among them).
    pub(super) fn batch(&mut self, max: usize) -> Result<Batch<'_>, RecvError> {
        let start = self.pos;
        let mut end = start;
        let mut count = 0;
        loop {
            match self.rec.read(end, &mut self.tail_hint) {
                Ok(Some(r)) => {
                    if r.kind == Kind::Message {
                        count += 1;
                    }
                    end = r.next;
                    if count == max {
                        break;
                    }
                }
                Ok(None) => break,
                // Hand out what came before the bad record; the next call
                // reports it.
                Err(e) if count == 0 && end == start => return Err(e.into()),
                Err(_) => break,
            }
            if end.wrapping_sub(start) >= self.rec.capacity() {
                break;
            }
        }
        Ok(Batch {
            rx: self,
            start,
            end,
            count,
        })
    }

    /// Bytes written but not yet released, framing included.
    pub fn pending(&self) -> Result<u64> {
        let tail = self.rec.header().tail.load(Ordering::Relaxed);
        let n = tail.wrapping_sub(self.pos);
        if n > self.rec.capacity() {
            return Err(self
                .rec
                .corrupt(format!(
                    "write position {tail} is not within a ring of read position {}",
                    self.pos
                ))
                .into());
        }
        Ok(n)
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

    /// The next committed message, skipping (and releasing) padding.
    /// Inlined: returned out of line, its record went through memory and
    /// was loaded back in wider pieces than it was stored, which the store
    /// buffer cannot forward (a stall per message).
    #[inline]
    fn next(&mut self) -> Result<Option<Record>, Corruption> {
        if let Some(r) = self.kept.take() {
            // Validated when read, and nothing before it released since:
            // its bounds hold whatever a peer wrote since.
            return Ok(Some(r));
        }
        let start = self.pos;
        let mut pos = start;
        let found = loop {
            match self.rec.read(pos, &mut self.tail_hint)? {
                Some(r) if r.kind == Kind::Message => break Some(r),
                Some(pad) => pos = pad.next,
                None => break None,
            }
            // Padding alone can never fill more than the ring.
            if pos.wrapping_sub(start) >= self.rec.capacity() {
                break None;
            }
        };
        // Padding with no message after it is released at once, so that the
        // space it covers does not wait for the next message.
        if found.is_none() && pos != start {
            self.release_to(pos);
        }
        Ok(found)
    }

    /// The message [`Message::keep`] left in place, lent again without
    /// reading its record again; `None` if none was kept.
    #[inline]
    pub(crate) fn take_kept(&mut self) -> Option<Message<'_>> {
        let r = self.kept.take()?;
        Some(self.lend(r))
    }

    /// The payload of the message [`Message::keep`] left in place, if one
    /// was kept (and not lent again since).
    #[inline]
    pub(crate) fn kept(&self) -> Option<&[u8]> {
        let r = self.kept.as_ref()?;
        // SAFETY: as in `Message::deref`: this consumer read the record and
        // releases it only when it is lent again and that message drops.
        Some(unsafe { self.rec.payload(r.offset, r.len) })
    }

    #[inline]
    fn lend(&mut self, r: Record) -> Message<'_> {
        Message { rx: self, r }
    }

    /// Hand everything before `pos` back to the producers, zeroed first
    /// where the ring asks for it.
    #[inline]
    fn release_to(&mut self, pos: u64) {
        if self.rec.ring().zeroes_after_use() {
            self.rec.zero(self.pos, pos);
        }
        self.pos = pos;
        self.kept = None;
        // Release: our reads of the records happen before a producer
        // (Acquire on head) writes over them.
        self.rec.header().head.store(pos, Ordering::Release);
        wait::notify(&self.rec.header().producer_event);
    }

    #[cold]
    fn timed_out(&self, timeout: Duration, op: &'static str) -> RecvError {
        if !timeout.is_zero() && stalled(&self.rec) {
            // One last look, so that a short timeout still repairs.
            recover(&self.rec);
        }
        let tail = self.rec.header().tail.load(Ordering::Relaxed);
        let claimed = tail.wrapping_sub(self.pos);
        if !timeout.is_zero() && claimed > 0 && claimed <= self.rec.capacity() {
            self.rec.ring().stalled(op, self.pos)
        } else {
            let segment = self.rec.ring().segment();
            let attached = any_alive(segment, &self.rec.header().producer_claims);
            self.rec
                .ring()
                .timed_out(op, timeout, Role::Producer, attached)
                .into()
        }
    }
}

impl Drop for ByteConsumer {
    fn drop(&mut self) {
        if let Some(me) = self.me.take() {
            role::release(&self.rec.header().consumer_role, me);
        }
    }
}

impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}

/// One message, lent in place; dropping it releases its space.
///
/// ```
/// # let name = format!("shmring-doc-bytes-message-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_send(b"tick")?;
/// let msg = rx.try_recv()?.expect("a message");
/// assert_eq!(msg.len(), 4); // a &[u8] into the ring
/// let mut copy = Vec::new();
/// msg.copy_into(&mut copy); // or copy it out, for peers you do not trust
/// assert_eq!(copy, b"tick");
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a message is released when dropped"]
pub struct Message<'a> {
    rx: &'a mut ByteConsumer,
    r: Record,
}

impl Deref for Message<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the consumer read this record and releases it only when
        // the message drops.
        unsafe { self.rx.rec.payload(self.r.offset, self.r.len) }
    }
}

impl Message<'_> {
    /// Copy the message into `out` (replacing what it held) without
    /// lending it: volatile reads, each byte read once. This, not the
    /// in-place `&[u8]`, is the read to use when the producers are not
    /// trusted to leave a committed message alone (see the crate docs).
    ///
    /// ```
    /// # fn main() -> shmring::Result<()> {
    /// # let name = format!("doc-copy-into-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 1024)?;
    /// ring.producer()?.try_send(b"quote")?;
    /// let mut rx = ring.consumer()?;
    /// let mut buf = Vec::new();
    /// rx.try_recv()?.expect("a message").copy_into(&mut buf);
    /// assert_eq!(buf, b"quote");
    /// # Ok(()) }
    /// ```
    pub fn copy_into(&self, out: &mut Vec<u8>) {
        // SAFETY: as in `deref`: the consumer read this record and releases
        // it only when the message drops.
        unsafe { self.rx.rec.copy_payload(self.r.offset, self.r.len, out) }
    }

    /// Where the message lies in the ring's byte stream, as
    /// [`Batch::positions`]: the read position is `start` until it is
    /// released and `end` after.
    ///
    /// ```
    /// # let name = format!("shmring-doc-bytes-msg-positions-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"abc")?;
    /// let end = rx.try_recv()?.expect("a message").positions().end;
    /// assert_eq!(ring.bytes_released(), end);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn positions(&self) -> std::ops::Range<u64> {
        self.rx.pos..self.r.next
    }
}

impl Message<'_> {
    /// Leave the message in the ring, to be lent again by the next read
    /// (without reading its record again).
    pub(crate) fn keep(self) {
        self.rx.kept = Some(self.r);
        // Nothing to free: the guard's one effect is the release on drop.
        std::mem::forget(self);
    }
}

impl Drop for Message<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rx.release_to(self.r.next);
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("len", &self.r.len).finish()
    }
}

/// Every message committed when [`ByteConsumer::read_batch`] was called,
/// lent in place; dropping the batch releases them all at once.
///
/// ```
/// # let name = format!("shmring-doc-bytes-batch-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// for m in [&b"a"[..], b"bb", b"ccc"] {
///     tx.try_send(m)?;
/// }
/// let batch = rx.read_batch()?; // everything committed so far
/// assert_eq!(batch.len(), 3);
/// let total: usize = batch.iter().map(|m| m.len()).sum();
/// assert_eq!(total, 6);
/// drop(batch); // all three released with one store
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a batch is released when dropped"]
pub struct Batch<'a> {
    rx: &'a mut ByteConsumer,
    start: u64,
    end: u64,
    count: usize,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("count", &self.count)
            .finish()
    }
}

impl Batch<'_> {
    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Where the batch lies in the ring's byte stream: the consumer's read
    /// position ([`ByteRing::bytes_released`](crate::ByteRing::bytes_released)) is `start` until the batch
    /// is released and `end` after. A forwarder that numbers what it sends
    /// records these before sending, so that after a crash it can tell
    /// whether the batch it sent was released or will be read again.
    ///
    /// ```
    /// # let name = format!("shmring-doc-bytes-positions-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"abc")?;
    /// let batch = rx.read_batch()?;
    /// let span = batch.positions();
    /// assert_eq!(ring.bytes_released(), span.start);
    /// drop(batch);
    /// assert_eq!(ring.bytes_released(), span.end);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn positions(&self) -> std::ops::Range<u64> {
        self.start..self.end
    }

    /// The messages, oldest first.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            rec: &self.rx.rec,
            pos: self.start,
            end: self.end,
        }
    }
}

impl<'b> IntoIterator for &'b Batch<'_> {
    type Item = &'b [u8];
    type IntoIter = BatchIter<'b>;
    fn into_iter(self) -> BatchIter<'b> {
        self.iter()
    }
}

impl Batch<'_> {
    /// The message at or after `pos` (within the batch), and the position
    /// after it.
    pub(super) fn message_at(&self, pos: u64) -> Option<(&[u8], u64)> {
        let mut rest = BatchIter {
            rec: &self.rx.rec,
            pos,
            end: self.end,
        };
        rest.next().map(|message| (message, rest.pos))
    }

    /// Leave the batch in the ring, to be read again.
    pub(super) fn keep(mut self) {
        self.end = self.start;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.end != self.start {
            self.rx.release_to(self.end);
        }
    }
}

/// Iterator over a [`Batch`]'s messages.
///
/// ```
/// # let name = format!("shmring-doc-bytes-iter-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_send(b"x")?;
/// let batch = rx.read_batch()?;
/// for msg in &batch {
///     assert_eq!(msg, b"x");
/// }
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct BatchIter<'a> {
    rec: &'a Records,
    pos: u64,
    end: u64,
}

impl std::fmt::Debug for BatchIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish()
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos != self.end {
            // The batch was validated when it was read; a peer that rewrote
            // it since ends the iteration rather than leading it astray.
            // The batch's end is a write position this consumer has seen.
            let mut end = self.end;
            let r = self.rec.read(self.pos, &mut end).ok().flatten()?;
            if r.next.wrapping_sub(self.pos) > self.end.wrapping_sub(self.pos) {
                return None;
            }
            self.pos = r.next;
            if r.kind == Kind::Message {
                // SAFETY: the record lies between the batch's start and end,
                // which the consumer read and releases only when the batch
                // (which this iterator borrows) drops.
                return Some(unsafe { self.rec.payload(r.offset, r.len) });
            }
        }
        None
    }
}

impl crate::hook::Waitable for ByteConsumer {
    fn wake_word(&self) -> crate::hook::WakeWord {
        let rec = self.rec.clone();
        crate::hook::WakeWord::new(self.rec.clone(), true).repairing(move || {
            if super::repair::stalled(&rec) {
                super::repair::recover(&rec);
            }
        })
    }
}

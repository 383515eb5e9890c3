//! Byte-ring producers: handles, streams and the in-place grant.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use super::records::Records;
use super::{holds_consumer_role, MAX_RETRIES};
use crate::error::{Result, SendError};
use crate::format::record::{record_len, Kind, ALIGN, HEADER_LEN};
use crate::kind::Role;
use crate::peers::claims::Recorder;
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

/// A producer handle of a [`ByteRing`](crate::ByteRing).
///
/// ```
/// use shmring::{ByteRing, SendError};
/// # let name = format!("shmring-doc-bytes-producer-{}", std::process::id());
/// let ring = ByteRing::create(&name, 4096)?;
/// let mut tx = ring.producer()?;
/// let mut grant = tx.try_reserve(3)?; // 3 bytes in the ring, to fill in place
/// grant.copy_from_slice(b"abc");
/// grant.commit();
/// let too_long = vec![0; ring.max_message_len() + 1];
/// assert!(matches!(tx.try_send(&too_long), Err(SendError::MessageTooLarge { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct ByteProducer {
    pub(super) rec: Arc<Records>,
    /// The consumer's `head` when we last read it; space below
    /// `cached_head + capacity` is free for certain.
    pub(super) cached_head: u64,
    pub(super) wait: WaitStrategy,
    /// Our claim record: the span we are claiming or hold.
    pub(super) claims: Recorder,
    /// For loom models: stop a claim between naming its span and taking it.
    #[cfg(shmring_loom)]
    pub(super) dies_naming: bool,
}

impl Drop for ByteProducer {
    fn drop(&mut self) {
        self.claims.release(&self.rec.header().producer_claims);
    }
}

#[cfg(shmring_loom)]
#[doc(hidden)]
impl ByteProducer {
    /// For loom models: this handle's process dies now, holding whatever it
    /// reserved (forget the grant first).
    pub fn die(mut self) {
        self.claims.die(&self.rec.header().producer_claims);
    }

    /// For loom models: claim `len` bytes and die after naming the span,
    /// before the compare-exchange that would take it (the span stays
    /// named, never won).
    pub fn die_naming(mut self, len: usize) {
        self.dies_naming = true;
        let _ = self.try_claim(len);
        self.die();
    }
}

impl ByteProducer {
    /// For a handle of a stream ([`ByteRing::producer_stream`](crate::ByteRing::producer_stream)): the
    /// messages committed under its id so far, by every handle of it (a
    /// killed one included), where a restarted producer resumes. `None`
    /// for a handle without a stream.
    pub fn committed(&self) -> Option<u64> {
        self.claims.committed()
    }

    /// Close the ring: the stream ends after what was sent so far, by this
    /// handle and every other (call it from the last producer). The
    /// consumer receives every message committed before, then `Closed`
    /// from its blocking calls. A new producer handle reopens the ring.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-bytes-close-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"last")?;
    /// tx.close();
    /// assert_eq!(&*rx.recv_timeout(Duration::from_secs(1))?, b"last");
    /// assert!(matches!(
    ///     rx.recv_timeout(Duration::from_secs(1)),
    ///     Err(shmring::RecvError::Closed { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.rec.header().consumer_event);
    }

    /// Reserve `len` bytes in place, if there is room now. Write them
    /// through the grant, then [`commit`](Grant::commit); dropping the grant
    /// uncommitted aborts it. [`SendError::Full`] when there is no room,
    /// [`SendError::MessageTooLarge`] past
    /// [`ByteRing::max_message_len`](crate::ByteRing::max_message_len).
    ///
    /// ```
    /// # let name = format!("shmring-doc-m-bytes-reserve-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let mut tx = ring.producer()?;
    /// let mut grant = tx.try_reserve(4)?;
    /// grant.copy_from_slice(&7u32.to_le_bytes());
    /// grant.commit();
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError> {
        match self.claim(len)? {
            Some(pos) => Ok(self.grant(pos, len)),
            None => {
                self.rec.ring().count_blocked(Role::Producer);
                Err(SendError::Full)
            }
        }
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for room.
    #[inline]
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Grant<'_>, SendError> {
        let pos = self.claim_waiting(len, timeout, "reserve_timeout")?;
        Ok(self.grant(pos, len))
    }

    /// Copy `bytes` into the ring as one message, if there is room now.
    ///
    /// ```
    /// use shmring::SendError;
    /// # let name = format!("shmring-doc-m-bytes-send-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 256)?;
    /// let mut tx = ring.producer()?;
    /// tx.try_send(b"")?; // empty messages are messages too
    /// while tx.try_send(&[0; 100]).is_ok() {}
    /// assert!(matches!(tx.try_send(&[0; 100]), Err(SendError::Full)));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let mut grant = self.try_reserve(bytes.len())?;
        grant.copy_from_slice(bytes);
        grant.commit();
        Ok(())
    }

    /// Copy `bytes` into the ring as one message, waiting up to `timeout`.
    #[inline]
    pub fn send_timeout(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
        let pos = self.claim_waiting(bytes.len(), timeout, "send_timeout")?;
        let mut grant = self.grant(pos, bytes.len());
        grant.copy_from_slice(bytes);
        grant.commit();
        Ok(())
    }

    /// How this handle waits when the ring is full.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The strategy this handle waits with: [`WaitStrategy::producer_default`] until
    /// [`set_wait_strategy`](Self::set_wait_strategy) changes it.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Claim a record for a `len`-byte payload; a claim that gives up
    /// leaves our record naming nothing.
    #[inline]
    fn claim(&mut self, len: usize) -> Result<Option<u64>, SendError> {
        let claimed = self.try_claim(len);
        if !matches!(claimed, Ok(Some(_))) {
            self.claims.clear_span(&self.rec.header().producer_claims);
        }
        claimed
    }

    /// The longest message the ring takes.
    pub fn max_message_len(&self) -> usize {
        self.rec.max_message_len() as usize
    }

    #[inline]
    fn grant(&mut self, pos: u64, len: usize) -> Grant<'_> {
        let this = &*self;
        let off = this.rec.offset(pos);
        // SAFETY: `claim` gave us the record at `pos`: it lies inside the
        // area, the consumer has released its space, and no one else writes
        // it until we commit.
        let payload = unsafe { this.rec.payload_mut(off, len as u64) };
        // Held until the grant finishes: a producer dropped while a grant
        // is forgotten leaves its span to repair.
        this.claims.hold(pos);
        Grant {
            rec: &this.rec,
            claims: &this.claims,
            pos,
            payload,
        }
    }

    #[inline]
    fn claim_waiting(
        &mut self,
        len: usize,
        timeout: Duration,
        op: &'static str,
    ) -> Result<u64, SendError> {
        match self.claim(len)? {
            Some(pos) => Ok(pos),
            None => self.wait_for_room(len, timeout, op),
        }
    }

    /// The rest of [`claim_waiting`](Self::claim_waiting), out of line: a
    /// send that finds room pays nothing for the wait it did not need.
    #[cold]
    fn wait_for_room(
        &mut self,
        len: usize,
        timeout: Duration,
        op: &'static str,
    ) -> Result<u64, SendError> {
        self.rec.ring().count_blocked(Role::Producer);
        let rec = Arc::clone(&self.rec);
        let event = &rec.header().producer_event;
        let strategy = self.wait;
        let waited = wait::wait_until(event, strategy, timeout, || self.claim(len).transpose());
        waited.unwrap_or_else(|| {
            let attached = holds_consumer_role(&rec);
            Err(rec
                .ring()
                .timed_out(op, timeout, Role::Consumer, attached)
                .into())
        })
    }

    /// Claim a record for a `len`-byte payload (and padding before it if it
    /// must wrap); its position, or `None` if there is no room now.
    fn try_claim(&mut self, len: usize) -> Result<Option<u64>, SendError> {
        let max = self.rec.max_message_len();
        if len as u64 > max {
            return Err(SendError::MessageTooLarge {
                len,
                max: max as usize,
            });
        }
        let cap = self.rec.capacity();
        let need = record_len(len as u64);
        let header = self.rec.header();
        // Acquire (here and when the compare-exchange fails) pairs with the
        // Release of the producer that moved the tail there: it had seen the
        // head at most a ring behind that tail, and so, once we read the
        // head, do we. With Relaxed, a stale head next to a fresh tail would
        // look like a corrupt ring. (On success the tail is the one we
        // loaded, so we already synchronized with its writer.)
        let mut tail = header.tail.load(Ordering::Acquire);
        for _ in 0..MAX_RETRIES {
            if !tail.is_multiple_of(ALIGN) {
                return Err(self
                    .rec
                    .corrupt(format!("write position {tail} is not on a record boundary"))
                    .into());
            }
            let to_end = cap - self.rec.offset(tail);
            let pad = if need <= to_end { 0 } else { to_end };
            let total = pad + need;
            let used = tail.wrapping_sub(self.cached_head);
            if used > cap || cap - used < total {
                // Acquire pairs with the consumer's Release store of head:
                // its reads of the space we take happened before our writes.
                self.cached_head = header.head.load(Ordering::Acquire);
                let used = tail.wrapping_sub(self.cached_head);
                if (used as i64) < 0 {
                    // The consumer has read past our stale tail, so the tail
                    // is at least the head: try there, and a failed
                    // compare-exchange hands us the real tail.
                    tail = self.cached_head;
                    continue;
                }
                if used > cap {
                    return Err(self
                        .rec
                        .corrupt(format!(
                            "write position {tail} is more than a ring ahead of read position {}",
                            self.cached_head
                        ))
                        .into());
                }
                if cap - used < total {
                    return Ok(None);
                }
            }
            let table = &header.producer_claims;
            self.claims
                .note_span(table, tail, tail.wrapping_add(total - 1));
            #[cfg(shmring_loom)]
            if self.dies_naming {
                return Ok(None);
            }
            match header.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(total),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if pad > 0 {
                        self.rec.publish(tail, Kind::Padding, pad - HEADER_LEN);
                    }
                    return Ok(Some(tail.wrapping_add(pad)));
                }
                Err(now) => tail = now,
            }
        }
        Ok(None)
    }
}

impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer").finish_non_exhaustive()
    }
}

/// Space reserved in the ring for one message, written in place.
///
/// [`commit`](Self::commit) publishes it; dropping it uncommitted turns it
/// into padding the consumer skips.
///
/// ```
/// # let name = format!("shmring-doc-bytes-grant-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// // Reserve generously, serialize in place, publish what was used.
/// let mut grant = tx.try_reserve(64)?;
/// let text = b"{\"px\":101}";
/// grant[..text.len()].copy_from_slice(text);
/// grant.commit_len(text.len());
/// drop(tx.try_reserve(8)?); // dropped uncommitted: becomes padding
/// assert_eq!(&*rx.try_recv()?.expect("one message"), text);
/// assert!(rx.try_recv()?.is_none());
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a grant publishes only when committed; dropping it aborts the message"]
pub struct Grant<'a> {
    rec: &'a Records,
    claims: &'a Recorder,
    pos: u64,
    payload: &'a mut [u8],
}

impl std::fmt::Debug for Grant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("pos", &self.pos)
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Grant<'_> {
    /// Publish the whole reserved length as a message.
    #[inline]
    pub fn commit(self) {
        let len = self.payload.len();
        self.commit_len(len);
    }

    /// Publish only the first `len` bytes as the message (for a payload
    /// serialized into a generous reservation); the rest is skipped.
    ///
    /// # Panics
    /// If `len` is more than was reserved.
    #[inline]
    pub fn commit_len(self, len: usize) {
        let reserved = self.payload.len() as u64;
        assert!(
            len as u64 <= reserved,
            "commit_len({len}) exceeds the {reserved} bytes reserved"
        );
        let this = std::mem::ManuallyDrop::new(self);
        let (used, whole) = (record_len(len as u64), record_len(reserved));
        if used < whole {
            // The unused end becomes padding, committed first; the consumer
            // reaches it only after the message.
            let gap = this.pos.wrapping_add(used);
            this.rec
                .publish(gap, Kind::Padding, whole - used - HEADER_LEN);
        }
        this.claims.committing(&this.rec.header().producer_claims);
        this.finish(Kind::Message, len as u64);
    }

    /// Give the space back unpublished (the same as dropping the grant).
    pub fn abort(self) {}

    #[inline]
    fn finish(&self, kind: Kind, len: u64) {
        self.rec.publish(self.pos, kind, len);
        self.claims.finish();
        wait::notify(&self.rec.header().consumer_event);
    }
}

impl Deref for Grant<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload
    }
}

impl DerefMut for Grant<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.payload
    }
}

impl Drop for Grant<'_> {
    #[inline]
    fn drop(&mut self) {
        self.finish(Kind::Padding, self.payload.len() as u64);
    }
}

impl crate::hook::Waitable for ByteProducer {
    fn wake_word(&self) -> crate::hook::WakeWord {
        let rec = self.rec.clone();
        crate::hook::WakeWord::new(self.rec.clone(), false).repairing(move || {
            if super::repair::stalled(&rec) {
                super::repair::recover(&rec);
            }
        })
    }
}

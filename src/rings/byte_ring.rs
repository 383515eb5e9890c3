//! The ring of variable-length byte messages: many producers, one consumer.
//!
//! # Algorithm
//!
//! Messages are framed as records (see `record.rs`). `tail` in the header
//! is the next byte position to claim, `head` the position up to which the
//! consumer has released space.
//!
//! * Claim (producer): read `tail` and compute the bytes needed. If the
//!   record does not fit before the area's end, the claim also covers the
//!   rest of the area, which becomes a padding record, and the message goes
//!   to offset 0. Check room against the consumer's `head` (a cached copy,
//!   re-read with Acquire only when the ring looks full, so the consumer's
//!   reads of that space happened before we write it), then take
//!   `tail -> tail + claimed` with one compare-exchange. Producers pass the
//!   head they saw along with the tail (Acquire/Release on it), so no
//!   producer pairs a fresh tail with a head older than its claimant saw.
//! * Write and commit: the producer writes the payload in place, then the
//!   record's length word and, last, its stamp with Release. Dropping a
//!   grant uncommitted commits it as padding, so the consumer never waits
//!   on a hole.
//! * Read (consumer): at its position, load the stamp with Acquire; if it is
//!   the stamp of that position, the record is committed: skip padding,
//!   lend a message in place. Records are read strictly in claim order, so
//!   one producer's messages arrive in its order; a record claimed but not
//!   yet committed holds back the ones behind it.
//! * Release: one Release store of `head` hands everything read back to the
//!   producers, for one message or for a whole batch.
//!
//! Dying peers: the consumer role is claimed like the SPSC ring's, and a
//! dead consumer's successor resumes at `head`, receiving everything not yet
//! released. Each producer handle names the span it is about to claim in its
//! claim record (`claims.rs`) before its compare-exchange, and keeps naming
//! it until it claims again (a claim that gives up names nothing). A
//! producer that dies holding an uncommitted grant (or is dropped while a
//! grant it lent is forgotten) leaves its span named by a dead record: a
//! blocked consumer (or [`ByteRing::recover`]) publishes padding over
//! whatever of it is uncommitted, under the repair lock, and the ring goes
//! on.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::memory::{create_or_open, open_waiting};
use crate::kind::Role;
use crate::peers::claims::{self, any_alive, Liveness, Recorder, RepairLock, Side};
use crate::peers::role;
use crate::peers::role::RoleClaim;
use crate::platform::segment::{CreateOptions, OpenOptions};
use crate::platform::sync::{bump, Ordering};
use crate::rings::record::{record_len, Kind, Record, Records, ALIGN, HEADER_LEN};
use crate::wait::{self, WaitStrategy};

/// How many times a claim retries on a moving tail before it reports full.
/// Honest contention settles in a few; only a hostile peer exhausts this.
const MAX_RETRIES: u32 = 1 << 12;

/// A ring of variable-length byte messages in a shared-memory segment.
///
/// Up to 32 producer handles at once, in any number of processes; one
/// consumer at a time. Messages are written in place ([`ByteProducer::try_reserve`]) and
/// read in place ([`ByteConsumer::try_recv`], [`ByteConsumer::read_batch`]).
/// Payloads are 16-byte aligned. Empty messages are allowed.
///
/// ```
/// use shmring::ByteRing;
/// # let name = format!("shmring-doc-bytes-{}", std::process::id());
/// let ring = ByteRing::create(&name, 1 << 16)?; // data area in bytes
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_send(b"hello")?;
/// let msg = rx.try_recv()?.expect("a message");
/// assert_eq!(&*msg, b"hello");
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct ByteRing {
    rec: Arc<Records>,
}

impl ByteRing {
    /// Create a ring with a data area of `capacity` bytes (rounded up to a
    /// power of two, at least 64), mode 0600. The name stays while any
    /// process uses the ring and goes with the last of them, unless
    /// [`persist`](Self::persist) is called.
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &CreateOptions::default())
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        Ok(ByteRing {
            rec: Arc::new(Records::create(name, capacity, opts)?),
        })
    }

    /// Open a ring another process created, validating its header.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(name: &str, opts: &OpenOptions) -> Result<Self> {
        Ok(ByteRing {
            rec: Arc::new(Records::open(name, None, opts)?),
        })
    }

    /// Open ring `name`, waiting up to `timeout` for another process to
    /// create it (a consumer started before its producer): an inotify watch
    /// on the shm directory wakes the wait when a name appears, and no wait
    /// sleeps longer than 100 ms between looks. `NotFound` if no ring of
    /// that name appeared in time; every other error at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-bytes-wait-{}", std::process::id());
    /// let waiter = {
    ///     let name = name.clone();
    ///     std::thread::spawn(move || shmring::ByteRing::open_timeout(&name, Duration::from_secs(5)))
    /// };
    /// std::thread::sleep(Duration::from_millis(20)); // the creator starts later
    /// let ring = shmring::ByteRing::create(&name, 1024)?;
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
    /// # let name = format!("shmring-doc-bytes-ooc-{}", std::process::id());
    /// let first = shmring::ByteRing::open_or_create(&name, 1024)?; // creates
    /// let second = shmring::ByteRing::open_or_create(&name, 1024)?; // opens
    /// assert!(first.is_creator() && !second.is_creator());
    /// assert!(matches!(
    ///     shmring::ByteRing::open_or_create(&name, 64),
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
                Ok(ByteRing {
                    rec: Arc::new(Records::open(name, Some(capacity), &opts.to_open())?),
                })
            },
        )
    }

    /// A producer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record, so that a grant it
    /// dies holding can be repaired); one more is `Error::TooManyHandles`.
    pub fn producer(&self) -> Result<ByteProducer> {
        let header = self.rec.header();
        // Repair (and free) dead producers' records first, so that a
        // restarted producer finds a record even after many deaths.
        recover(&self.rec);
        let claims = Recorder::take(
            self.rec.ring().segment(),
            &header.producer_claims,
            Side::Producer,
        )?;
        self.producer_with(claims)
    }

    fn producer_with(&self, claims: Recorder) -> Result<ByteProducer> {
        // "Full" by construction: the first claim reads the real head with
        // Acquire before it writes anything.
        let cap = self.rec.capacity();
        wait::reopen(&self.rec.header().consumer_event);
        Ok(ByteProducer {
            claims,
            cached_head: self
                .rec
                .header()
                .tail
                .load(Ordering::Relaxed)
                .wrapping_sub(cap),
            rec: Arc::clone(&self.rec),
            wait: WaitStrategy::default(),
            #[cfg(shmring_loom)]
            dies_naming: false,
        })
    }

    /// A producer handle of stream `id`, a name the application gives to
    /// one of its producers: [`ByteProducer::committed`] then counts the
    /// messages committed under that id by every handle of it so far, a
    /// killed one included, exactly; see
    /// [`Mpmc::producer_stream`](crate::Mpmc::producer_stream).
    ///
    /// ```
    /// # let name = format!("shmring-doc-bytes-stream-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let mut feed = ring.producer_stream(3)?;
    /// feed.try_send(b"one")?;
    /// drop(feed); // or killed: the same
    /// assert_eq!(ring.producer_stream(3)?.committed(), Some(1));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn producer_stream(&self, id: u32) -> Result<ByteProducer> {
        let header = self.rec.header();
        let seg = self.rec.ring().segment();
        let Some(lock) = RepairLock::acquire_within(seg, &header.recovery, STREAM_PATIENCE) else {
            return Err(Error::Busy {
                name: seg.name().as_str().to_owned(),
                what: "another handle held the repair lock past the wait for a stream",
            });
        };
        repair(&self.rec);
        let claims = Recorder::take_stream(seg, &header.producer_claims, id);
        drop(lock);
        self.producer_with(claims?)
    }

    /// Repair what dead producers left: a span a producer claimed and died
    /// before committing becomes padding, so the consumer goes on past it
    /// (its message was never committed, so nothing is lost). A consumer
    /// blocked in [`ByteConsumer::recv_timeout`] does this on its own while
    /// it waits behind such a span; call it when the consumer only polls.
    /// Returns how many spans it repaired; 0 also when another process is
    /// repairing. A producer killed in the instant between taking its span
    /// and recording that it did cannot be told from a live one: that span
    /// still stalls the ring (`Error::Stalled`).
    pub fn recover(&self) -> u64 {
        recover(&self.rec)
    }

    /// Spans repaired since the ring was created, by any process.
    pub fn repaired(&self) -> u64 {
        self.rec.header().recovery.repaired.load(Ordering::Relaxed)
    }

    /// Claim the consumer end. Fails with `RoleTaken` while another live
    /// handle holds it; a dead holder's claim is taken over, and the new
    /// consumer receives everything its predecessor did not release.
    pub fn consumer(&self) -> Result<ByteConsumer> {
        let header = self.rec.header();
        let me = self.rec.ring().claim_role(Role::Consumer)?;
        let pos = header.head.load(Ordering::Relaxed);
        if !pos.is_multiple_of(ALIGN) {
            role::release(&header.consumer_role, me);
            return Err(self
                .rec
                .corrupt(format!("read position {pos} is not on a record boundary")));
        }
        Ok(ByteConsumer {
            pos,
            tail_hint: pos,
            rec: Arc::clone(&self.rec),
            me: Some(me),
            wait: WaitStrategy::default(),
            _not_sync: PhantomData,
        })
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.rec.capacity() as usize
    }

    /// The longest message this ring takes: half the data area less a
    /// record header. A longer one is `Error::MessageTooLarge`.
    pub fn max_message_len(&self) -> usize {
        self.rec.max_message_len() as usize
    }

    /// The segment's name, without a leading `/`.
    pub fn name(&self) -> &str {
        self.rec.ring().segment().name().as_str()
    }

    /// Keep the ring's name after every process using it has left (by
    /// default the last one out removes it), until [`remove`](crate::remove)
    /// or `shmring rm --force`; nothing removes it as stale. It holds for
    /// every user, in every process, from now on;
    /// [`CreateOptions::persist`] sets it from the start.
    pub fn persist(&self) {
        self.rec.ring().header().set_persistent()
    }

    /// Whether this handle's call created the ring (rather than opened
    /// it): with `open_or_create`, which of the racing processes won.
    /// Creating gives no say over the name; see the crate docs' "Names".
    pub fn is_creator(&self) -> bool {
        self.rec.ring().created()
    }

    /// Bytes claimed by producers so far, framing and padding included
    /// (the typed rings count values: `pushed`).
    pub fn bytes_written(&self) -> u64 {
        self.rec.header().tail.load(Ordering::Relaxed)
    }

    /// Bytes released by the consumer so far (the typed rings count
    /// values: `popped`).
    pub fn bytes_released(&self) -> u64 {
        self.rec.header().head.load(Ordering::Relaxed)
    }

    /// Whether any live producer handle (in any process) exists now; one
    /// that died counts as gone (its claim record's lock is free).
    ///
    /// ```
    /// # let name = format!("shmring-doc-bytes-has-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 4096)?;
    /// let rx = ring.consumer()?;
    /// assert!(!ring.has_producer() && ring.has_consumer());
    /// # drop(rx);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn has_producer(&self) -> bool {
        any_alive(
            self.rec.ring().segment(),
            &self.rec.header().producer_claims,
        )
    }

    /// Whether a live consumer handle holds the consumer end now.
    pub fn has_consumer(&self) -> bool {
        holds_consumer_role(&self.rec)
    }

    /// Whether a producer closed the ring (and no producer handle was made
    /// since).
    pub fn is_closed(&self) -> bool {
        wait::is_closed(&self.rec.header().consumer_event)
    }
}

impl std::fmt::Debug for ByteRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteRing")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// A producer handle of a [`ByteRing`].
///
/// ```
/// use shmring::{ByteRing, Error};
/// # let name = format!("shmring-doc-bytes-producer-{}", std::process::id());
/// let ring = ByteRing::create(&name, 4096)?;
/// let mut tx = ring.producer()?;
/// let mut grant = tx.try_reserve(3)?; // 3 bytes in the ring, to fill in place
/// grant.copy_from_slice(b"abc");
/// grant.commit();
/// let too_long = vec![0; ring.max_message_len() + 1];
/// assert!(matches!(tx.try_send(&too_long), Err(Error::MessageTooLarge { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct ByteProducer {
    rec: Arc<Records>,
    /// The consumer's `head` when we last read it; space below
    /// `cached_head + capacity` is free for certain.
    cached_head: u64,
    wait: WaitStrategy,
    /// Our claim record: the span we are claiming or hold.
    claims: Recorder,
    /// For loom models: stop a claim between naming its span and taking it.
    #[cfg(shmring_loom)]
    dies_naming: bool,
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

/// How long taking a stream waits for the repair lock (held by others for
/// a repair, which is short).
const STREAM_PATIENCE: Duration = Duration::from_secs(1);

impl ByteProducer {
    /// For a handle of a stream ([`ByteRing::producer_stream`]): the
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
    ///     Err(shmring::Error::Closed { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn close(self) {
        wait::close(&self.rec.header().consumer_event);
    }

    /// Reserve `len` bytes in place, if there is room now. Write them
    /// through the grant, then [`commit`](Grant::commit); dropping the grant
    /// uncommitted aborts it. `Error::Full` when there is no room,
    /// `Error::MessageTooLarge` past [`ByteRing::max_message_len`].
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
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>> {
        match self.claim(len)? {
            Some(pos) => Ok(self.grant(pos, len)),
            None => {
                self.rec.ring().count_blocked(Role::Producer);
                Err(Error::Full)
            }
        }
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for room.
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<Grant<'_>> {
        let pos = self.claim_waiting(len, timeout, "reserve_timeout")?;
        Ok(self.grant(pos, len))
    }

    /// Copy `bytes` into the ring as one message, if there is room now.
    ///
    /// ```
    /// use shmring::Error;
    /// # let name = format!("shmring-doc-m-bytes-send-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 256)?;
    /// let mut tx = ring.producer()?;
    /// tx.try_send(b"")?; // empty messages are messages too
    /// while tx.try_send(&[0; 100]).is_ok() {}
    /// assert!(matches!(tx.try_send(&[0; 100]), Err(Error::Full)));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<()> {
        let mut grant = self.try_reserve(bytes.len())?;
        grant.copy_from_slice(bytes);
        grant.commit();
        Ok(())
    }

    /// Copy `bytes` into the ring as one message, waiting up to `timeout`.
    pub fn send_timeout(&mut self, bytes: &[u8], timeout: Duration) -> Result<()> {
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

    /// Claim a record for a `len`-byte payload; a claim that gives up
    /// leaves our record naming nothing.
    fn claim(&mut self, len: usize) -> Result<Option<u64>> {
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

    fn claim_waiting(&mut self, len: usize, timeout: Duration, op: &'static str) -> Result<u64> {
        if let Some(pos) = self.claim(len)? {
            return Ok(pos);
        }
        self.rec.ring().count_blocked(Role::Producer);
        let rec = Arc::clone(&self.rec);
        let event = &rec.header().producer_event;
        let strategy = self.wait;
        let waited = wait::wait_until(event, strategy, timeout, || self.claim(len).transpose());
        waited.unwrap_or_else(|| {
            let attached = holds_consumer_role(&rec);
            Err(rec.ring().timed_out(op, timeout, Role::Consumer, attached))
        })
    }

    /// Claim a record for a `len`-byte payload (and padding before it if it
    /// must wrap); its position, or `None` if there is no room now.
    fn try_claim(&mut self, len: usize) -> Result<Option<u64>> {
        let max = self.rec.max_message_len();
        if len as u64 > max {
            return Err(Error::MessageTooLarge {
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
                    .corrupt(format!("write position {tail} is not on a record boundary")));
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
                    return Err(self.rec.corrupt(format!(
                        "write position {tail} is more than a ring ahead of read position {}",
                        self.cached_head
                    )));
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
    pub fn commit(self) {
        let len = self.payload.len();
        self.commit_len(len);
    }

    /// Publish only the first `len` bytes as the message (for a payload
    /// serialized into a generous reservation); the rest is skipped.
    ///
    /// # Panics
    /// If `len` is more than was reserved.
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

    fn finish(&self, kind: Kind, len: u64) {
        self.rec.publish(self.pos, kind, len);
        self.claims.finish();
        wait::notify(&self.rec.header().consumer_event);
    }
}

impl Deref for Grant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.payload
    }
}

impl DerefMut for Grant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.payload
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        self.finish(Kind::Padding, self.payload.len() as u64);
    }
}

/// The consumer handle of a [`ByteRing`].
///
/// ```
/// use std::time::Duration;
/// use shmring::Error;
/// # let name = format!("shmring-doc-bytes-consumer-{}", std::process::id());
/// let ring = shmring::ByteRing::create(&name, 4096)?;
/// let mut rx = ring.consumer()?;
/// assert!(rx.try_recv()?.is_none());
/// assert!(matches!(rx.recv_timeout(Duration::from_millis(1)), Err(Error::Timeout { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct ByteConsumer {
    rec: Arc<Records>,
    /// Position of the next record to read (equal to `head`: everything
    /// before it has been released).
    pos: u64,
    /// The write position when last read; see `Records::read`.
    tail_hint: u64,
    me: Option<RoleClaim>,
    wait: WaitStrategy,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl ByteConsumer {
    /// The oldest committed message, lent in place, if there is one;
    /// dropping it releases its space. `Error::Corrupt` if the ring holds a
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
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>> {
        Ok(self.next()?.map(|r| self.lend(r)))
    }

    /// Wait up to `timeout` for a message. `Error::Stalled` if the wait
    /// ended behind a record a producer claimed and never committed (it may
    /// have died); else `Error::Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        let r = match self.next()? {
            Some(r) => r,
            None => {
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
                    Some(r) => Some(r),
                    // Closed: one more look, now that everything committed
                    // before the close is visible; behind an uncommitted
                    // record, wait for its repair instead.
                    None if wait::is_closed(event) => match self.next().transpose() {
                        Some(r) => Some(r),
                        None if stalled(&rec) => None,
                        None => Some(Err(Error::Closed { name: name() })),
                    },
                    None => None,
                };
                match wait::wait_in_slices(event, strategy, timeout, ready, between) {
                    Some(r) => r?,
                    None => return Err(self.timed_out(timeout, "recv_timeout")),
                }
            }
        };
        Ok(self.lend(r))
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
    pub fn read_batch(&mut self) -> Result<Batch<'_>> {
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
                }
                Ok(None) => break,
                // Hand out what came before the bad record; the next call
                // reports it.
                Err(e) if count == 0 && end == start => return Err(e),
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
            return Err(self.rec.corrupt(format!(
                "write position {tail} is not within a ring of read position {}",
                self.pos
            )));
        }
        Ok(n)
    }

    /// How this handle waits when the ring is empty.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The next committed message, skipping (and releasing) padding.
    fn next(&mut self) -> Result<Option<Record>> {
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

    fn lend(&mut self, r: Record) -> Message<'_> {
        Message { rx: self, r }
    }

    /// Hand everything before `pos` back to the producers.
    fn release_to(&mut self, pos: u64) {
        self.pos = pos;
        // Release: our reads of the records happen before a producer
        // (Acquire on head) writes over them.
        self.rec.header().head.store(pos, Ordering::Release);
        wait::notify(&self.rec.header().producer_event);
    }

    #[cold]
    fn timed_out(&self, timeout: Duration, op: &'static str) -> Error {
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
        }
    }
}

/// Whether a live handle holds the consumer role of `rec`'s ring.
fn holds_consumer_role(rec: &Records) -> bool {
    let word = &rec.header().consumer_role;
    crate::peers::attach::holder(rec.ring().segment(), word).is_some_and(|h| h.alive)
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

impl Drop for Message<'_> {
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
    /// position ([`ByteRing::bytes_released`]) is `start` until the batch
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

/// Whether records are claimed past the consumer's release point (with no
/// message ready, as when a wait came back empty): the consumer waits
/// behind an uncommitted record.
fn stalled(rec: &Records) -> bool {
    let header = rec.header();
    let claimed = header
        .tail
        .load(Ordering::Relaxed)
        .wrapping_sub(header.head.load(Ordering::Relaxed));
    claimed > 0 && claimed <= rec.capacity()
}

/// Pad over uncommitted records whose producers died (see
/// [`ByteRing::recover`]): walk from the consumer's position over committed
/// records; at an uncommitted one, find the spans claim records name around
/// it. The producer that claimed it is among them (it named its span before
/// taking it, and names it until it commits), possibly with handles whose
/// claim of an overlapping span failed. Only if every one is dead is it
/// padded, up to the nearest end any of them names (the owner's end is no
/// nearer, so padding stays inside its span; what is left of the span is
/// padded at the next step). How many spans were repaired.
fn recover(rec: &Records) -> u64 {
    let Some(_lock) = RepairLock::try_acquire(rec.ring().segment(), &rec.header().recovery) else {
        return 0;
    };
    repair(rec)
}

/// [`recover`]'s work, with the repair lock held.
fn repair(rec: &Records) -> u64 {
    let header = rec.header();
    let recovery = &header.recovery;
    let seg = rec.ring().segment();
    let table = &header.producer_claims;
    let cap = rec.capacity();
    let mut repaired = 0;
    // Before any span is padded: a dead stream producer's count says
    // whether the message its record names was committed (the consumer
    // passed it, or it stands committed as a message; a span the dead
    // producer padded itself was never counted).
    for dead in claims::dead_records(seg, table) {
        dead.settle_stream(|first, _| {
            let passed = (header.head.load(Ordering::Relaxed).wrapping_sub(first) as i64) > 0;
            let mut hint = header.tail.load(Ordering::Relaxed);
            passed || matches!(rec.read(first, &mut hint), Ok(Some(r)) if r.kind == Kind::Message)
        });
    }
    // Acquire: a live producer that claimed below this tail is seen in its
    // record (its compare-exchange was Release, after it named its span),
    // and, through the chain of claims' compare-exchanges, so is every
    // claimant's read of the head: the consumer's reads of the space we
    // may pad come before.
    let tail = header.tail.load(Ordering::Acquire);
    let mut tail_hint = tail;
    // Relaxed: where the walk starts only bounds the work. An old head
    // starts it at records already read, which are committed, or were
    // rewritten a lap later, which the second look below tells apart.
    let mut pos = header.head.load(Ordering::Relaxed);
    let within = |pos: u64| (1..=cap).contains(&tail.wrapping_sub(pos));
    let mut steps = cap / ALIGN;
    // Each record's holder asked about once per call.
    let mut living = Liveness::new(seg, table);
    while within(pos) && pos.is_multiple_of(ALIGN) && steps > 0 {
        steps -= 1;
        match rec.read(pos, &mut tail_hint) {
            Ok(Some(r)) => pos = r.next,
            Ok(None) => {
                let spans = living.spans_around(pos);
                if spans.iter().any(|&(alive, _, _)| alive) {
                    break; // its producer may be among the living
                }
                // The shortest span that names it: the dead owner's span
                // covers `pos` and ends at or after that end, so padding up
                // to it stays inside the owner's, and the rest of the
                // owner's is padded on the next step. (Spans named but
                // never won, by handles that died before unnaming them,
                // may disagree with the owner's, but never cut it short.)
                let sane = |e: u64| e.is_multiple_of(ALIGN) && within(e.wrapping_sub(1));
                let Some(end) = spans
                    .iter()
                    .map(|&(_, _, e)| e)
                    .filter(|&e| sane(e))
                    .min_by_key(|&e| e.wrapping_sub(pos))
                else {
                    break; // no record names it: wait for its producer
                };
                // Look again, now that the records are read: still not
                // committed, and then the consumer not past it (so the
                // space is still this lap's, and no one but the dead
                // writes it). In that order: had a later lap's record been
                // committed here, the stamp's Acquire (in `read`) orders
                // its producer's read of a head past `pos` before our load
                // of the head, which so reads that head or a later one
                // (Relaxed suffices); read first, an old head would let us
                // pad over that record.
                if !matches!(rec.read(pos, &mut tail_hint), Ok(None)) {
                    break;
                }
                let unread = (pos.wrapping_sub(header.head.load(Ordering::Relaxed)) as i64) >= 0;
                if !unread {
                    break;
                }
                pad(rec, pos, end);
                repaired += 1;
                pos = end;
            }
            Err(_) => break, // the consumer reports it
        }
    }
    // Free dead records whose span the consumer can no longer be waiting
    // on: behind the walk, or empty.
    for dead in claims::dead_records(seg, table) {
        let (first, end) = dead.span();
        let empty = end.wrapping_sub(first) == 0 || end.wrapping_sub(first) > cap;
        if empty || (pos.wrapping_sub(end) as i64) >= 0 {
            log::info!(
                target: "shmring",
                "ring {:?}: a producer handle of process {} is gone (its lock was free); its \
                 claim record is reclaimed",
                seg.name().as_str(),
                dead.holder_pid()
            );
            dead.free();
            bump(&header.producer_stats.takeovers);
        }
    }
    if repaired > 0 {
        recovery.repaired.fetch_add(repaired, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::warn!(
            target: "shmring",
            "ring {:?}: padded over {repaired} spans that dead producers reserved and never \
             committed (nothing committed is lost)",
            seg.name().as_str()
        );
    }
    repaired
}

/// Publish padding over `first..end`, in records that never wrap: up to
/// the area's end, then on from 0.
fn pad(rec: &Records, first: u64, end: u64) {
    let cap = rec.capacity();
    let mut pos = first;
    while pos != end {
        let chunk = end.wrapping_sub(pos).min(cap - rec.offset(pos));
        rec.publish(pos, Kind::Padding, chunk - HEADER_LEN);
        pos = pos.wrapping_add(chunk);
    }
}

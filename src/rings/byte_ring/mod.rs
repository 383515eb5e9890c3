//! The ring of variable-length byte messages: many producers, one consumer.
//!
//! # Algorithm
//!
//! Messages are framed as records (see `format/record.rs`). `tail` in the header
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
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::memory::{create_or_open, open_waiting};
use crate::kind::Role;
use crate::peers::claims::{any_alive, Recorder, RepairLock, Side};
use crate::peers::role;
use crate::platform::segment::{CreateOptions, OpenOptions};
use crate::platform::sync::Ordering;
use crate::format::record::{Records, ALIGN};
use crate::wait::{self, WaitStrategy};

mod consumer; // the consumer: messages and batches read in place
mod producer; // producer handles, streams and the in-place grant
mod repair; // spans dead producers left: padded over

pub use consumer::{Batch, BatchIter, ByteConsumer, Message};
pub use producer::{ByteProducer, Grant};
use repair::{recover, repair};

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

/// Whether a live handle holds the consumer role of `rec`'s ring.
fn holds_consumer_role(rec: &Records) -> bool {
    let word = &rec.header().consumer_role;
    crate::peers::attach::holder(rec.ring().segment(), word).is_some_and(|h| h.alive)
}

/// How long taking a stream waits for the repair lock (held by others for
/// a repair, which is short).
const STREAM_PATIENCE: Duration = Duration::from_secs(1);

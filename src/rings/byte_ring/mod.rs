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
//! Identity: a byte ring's header records plain bytes as its element
//! type, or, for a typed service's rings (`services/request_reply.rs`),
//! its messages' type; an opener that names a type must find that one, an
//! opener that names none reads the bytes of any.
//!
//! Dying peers: the consumer role is claimed like the SPSC ring's, and a
//! dead consumer's successor resumes at `head`, receiving everything not yet
//! released. Each producer handle names the span it is about to claim in its
//! claim record (`peers/claims`) before its compare-exchange, and keeps naming
//! it until it claims again (a claim that gives up names nothing). A
//! producer that dies holding an uncommitted grant (or is dropped while a
//! grant it lent is forgotten) leaves its span named by a dead record: a
//! blocked consumer (or [`ByteRing::recover`]) publishes padding over
//! whatever of it is uncommitted, under the repair lock, and the ring goes
//! on. A dead record is freed (for a new handle, or its stream's next one)
//! once the consumer cannot be waiting on its span: padded or committed
//! behind the repair's walk, empty, or, for a stream's record, never won
//! (it starts at or past the write position, read after the holder was
//! found dead), so that the stream's next handle is not refused.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::record::{Unit, ALIGN};
use crate::kind::Role;
use crate::lifecycle::memory::RingMemory;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::lifecycle::{sealed::Kind, Ring};
use crate::peers::claims::{any_alive, Recorder, RepairLock, Side};
use crate::peers::role;
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};
use records::Records;

mod consumer; // the consumer: messages and batches read in place
mod messages; // the ring as messages of bytes (rings/messages.rs)
mod producer; // producer handles, streams and the in-place grant
mod records; // the mapped data area, seen as records
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
pub type ByteRing = Ring<BytesFlavor>;

/// The byte-message kind of [`Ring`]: a [`ByteRing`] is a `Ring<BytesFlavor>`.
///
/// ```
/// let ring: shmring::Ring<shmring::BytesFlavor> =
/// #   shmring::ByteRing::create(&format!("shmring-doc-bytes-flavor-{}", std::process::id()), 64)?;
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct BytesFlavor(());

impl Kind for BytesFlavor {
    const NAME: &'static str = "ByteRing";
    type Memory = Records;
    type Slot = Unit;

    fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self::Memory> {
        Records::create(name, capacity, opts)
    }

    fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self::Memory> {
        Records::open(name, capacity, opts)
    }

    fn ring(mem: &Self::Memory) -> &RingMemory<Unit> {
        mem.ring()
    }

    fn capacity(mem: &Self::Memory) -> usize {
        mem.capacity() as usize
    }

    fn has_producer(mem: &Self::Memory) -> bool {
        any_alive(mem.ring().segment(), &mem.header().producer_claims)
    }

    fn has_consumer(mem: &Self::Memory) -> bool {
        holds_consumer_role(mem)
    }
}

impl ByteRing {
    /// A producer handle. There may be up to 32 live ones at once, in any
    /// number of processes (each has a claim record, so that a grant it
    /// dies holding can be repaired); one more is `Error::TooManyHandles`.
    pub fn producer(&self) -> Result<ByteProducer> {
        let header = self.mem.header();
        // Repair (and free) dead producers' records first, so that a
        // restarted producer finds a record even after many deaths.
        recover(&self.mem);
        let claims = Recorder::take(
            self.mem.ring().segment(),
            &header.producer_claims,
            Side::Producer,
        )?;
        self.producer_with(claims)
    }

    fn producer_with(&self, claims: Recorder) -> Result<ByteProducer> {
        // "Full" by construction: the first claim reads the real head with
        // Acquire before it writes anything.
        let cap = self.mem.capacity();
        wait::reopen(&self.mem.header().consumer_event);
        Ok(ByteProducer {
            claims,
            cached_head: self
                .mem
                .header()
                .tail
                .load(Ordering::Relaxed)
                .wrapping_sub(cap),
            rec: Arc::clone(&self.mem),
            wait: WaitStrategy::producer_default(),
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
        let header = self.mem.header();
        let seg = self.mem.ring().segment();
        let Some(lock) = RepairLock::acquire_within(seg, &header.recovery, STREAM_PATIENCE) else {
            return Err(Error::Busy {
                name: seg.name().as_str().to_owned(),
                what: "another handle held the repair lock past the wait for a stream",
            });
        };
        repair(&self.mem);
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
    /// still stalls the ring (`RecvError::Stalled`).
    pub fn recover(&self) -> u64 {
        recover(&self.mem)
    }

    /// Spans repaired since the ring was created, by any process.
    pub fn repaired(&self) -> u64 {
        self.mem.header().recovery.repaired.load(Ordering::Relaxed)
    }

    /// Claim the consumer end. Fails with `RoleTaken` while another live
    /// handle holds it; a dead holder's claim is taken over, and the new
    /// consumer receives everything its predecessor did not release.
    pub fn consumer(&self) -> Result<ByteConsumer> {
        let header = self.mem.header();
        let me = self.mem.ring().claim_role(Role::Consumer)?;
        let pos = header.head.load(Ordering::Relaxed);
        if !pos.is_multiple_of(ALIGN) {
            role::release(&header.consumer_role, me);
            return Err(self
                .mem
                .corrupt(format!("read position {pos} is not on a record boundary"))
                .into());
        }
        Ok(ByteConsumer {
            pos,
            tail_hint: pos,
            kept: None,
            rec: Arc::clone(&self.mem),
            me: Some(me),
            wait: WaitStrategy::default(),
            _not_sync: PhantomData,
        })
    }

    /// The longest message this ring takes: half the data area less a
    /// record header. A longer one is `SendError::MessageTooLarge`.
    pub fn max_message_len(&self) -> usize {
        self.mem.max_message_len() as usize
    }

    /// Bytes claimed by producers so far, framing and padding included
    /// (the typed rings count values: `pushed`).
    pub fn bytes_written(&self) -> u64 {
        self.mem.header().tail.load(Ordering::Relaxed)
    }

    /// Bytes released by the consumer so far (the typed rings count
    /// values: `popped`).
    pub fn bytes_released(&self) -> u64 {
        self.mem.header().head.load(Ordering::Relaxed)
    }

    /// The consumer role's word: its holder's id, 0 when free. A holder
    /// that crashed leaves its id there until the next claim writes a
    /// fresh one, so a change of word is a new consumer, seen without
    /// asking the kernel (which [`has_consumer`](Self::has_consumer) does).
    pub(crate) fn consumer_word(&self) -> u64 {
        self.mem.header().consumer_role.load(Ordering::Relaxed)
    }

    /// The type its messages were created with, if its creator gave one
    /// (a typed service's ring).
    pub(crate) fn message_type(&self) -> Option<crate::kind::TypeLayout> {
        let elem = self.mem.ring().info().elem;
        (elem != records::elem()).then_some(elem)
    }

    /// The request-reply counters in its consumer line (see
    /// `format/header.rs`), which a service's server or client keeps.
    pub(crate) fn service_counters(&self) -> &crate::format::header::ServiceCounters {
        &self.mem.header().consumer_stats.service
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

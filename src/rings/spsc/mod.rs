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
//! Zeroing (a ring created with `zero_after_use`): the consumer zeroes the
//! values it releases before the `head` store, whose Release orders the
//! zeros before the producer's next write there. That is the one case where
//! the consumer writes slot lines, and the line then moves both ways: one
//! value at a time costs 3-4x, chunks of 64 up to 2x (`cargo bench --bench
//! throughput -- zero_after_use`).
//!
//! A read chunk lends the full stamps from `head` on, checked in order up
//! to the first that is not: every value it lends had its own stamp loaded
//! (Acquire). It does not probe further ahead: a load of a slot the
//! producer has yet to write costs the producer a line transfer when it
//! gets there (bisection over the window measured 1.3x slower across cores
//! than this walk). Chunks walk their slots as one or two contiguous runs
//! (`RingMemory::run`), not position by position.
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

use bytemuck::Pod;

use crate::error::{Error, Result};

use crate::format::slot::{full_stamp, Slot};
use crate::kind::{RingKind, Role};
use crate::lifecycle::memory::RingMemory;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::lifecycle::{sealed::Kind, Ring};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

mod consumer; // the consumer end and its in-place read chunk
mod messages;
mod producer; // the producer end and its in-place write chunk // the ring as messages of bytes (rings/messages.rs)

pub use consumer::{Consumer, ReadChunk};
pub use producer::{Producer, WriteChunk};

/// A single-producer single-consumer ring of `T` in a shared-memory segment.
///
/// Its lifecycle (create, open, `open_or_create`, presence, `persist`) is
/// every ring's: see [`Ring`]. [`producer`](Ring::producer) and
/// [`consumer`](Ring::consumer) hand out the two ends; they keep the
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
pub type Spsc<T> = Ring<SpscFlavor<T>>;

/// The SPSC kind of [`Ring`]: a ring of `Spsc<T>` is a `Ring<SpscFlavor<T>>`.
///
/// ```
/// let ring: shmring::Ring<shmring::SpscFlavor<u32>> =
/// #   shmring::Spsc::create(&format!("shmring-doc-spsc-flavor-{}", std::process::id()), 8)?;
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct SpscFlavor<T>(PhantomData<T>);

impl<T> std::fmt::Debug for SpscFlavor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpscFlavor")
    }
}

impl<T: Pod + Send> Kind for SpscFlavor<T> {
    const NAME: &'static str = "Spsc";
    type Memory = RingMemory<Slot<T>>;
    type Slot = Slot<T>;

    fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self::Memory> {
        RingMemory::create_slots(name, RingKind::Spsc, capacity, opts)
    }

    fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self::Memory> {
        RingMemory::open_slots(name, RingKind::Spsc, capacity, opts)
    }

    fn ring(mem: &Self::Memory) -> &RingMemory<Slot<T>> {
        mem
    }

    fn capacity(mem: &Self::Memory) -> usize {
        mem.capacity() as usize
    }

    fn has_producer(mem: &Self::Memory) -> bool {
        holds_role(mem, &mem.header().producer_role)
    }

    fn has_consumer(mem: &Self::Memory) -> bool {
        holds_role(mem, &mem.header().consumer_role)
    }
}

impl<T: Pod + Send> Spsc<T> {
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
            wait: WaitStrategy::producer_default(),
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

impl<T: Pod + Send> Spsc<T> {
    /// Values pushed over the ring's life (as last stored by the producer).
    pub fn pushed(&self) -> u64 {
        self.mem.header().tail.load(Ordering::Relaxed)
    }

    /// Values popped over the ring's life (as last stored by the consumer).
    pub fn popped(&self) -> u64 {
        self.mem.header().head.load(Ordering::Relaxed)
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

/// Whether the role `word` of `mem` is held by a live handle.
fn holds_role<S>(mem: &RingMemory<S>, word: &crate::platform::sync::AtomicU64) -> bool {
    crate::peers::attach::holder(mem.segment(), word).is_some_and(|h| h.alive)
}

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

use crate::error::{Error, Result};

use crate::format::memory::{create_or_open, open_waiting, RingMemory};
use crate::format::slot::{full_stamp, Slot};
use crate::kind::{RingKind, Role};
use crate::platform::segment::{CreateOptions, OpenOptions};
use crate::platform::sync::Ordering;
use crate::wait::{self, WaitStrategy};

mod consumer; // the consumer end and its in-place read chunk
mod producer; // the producer end and its in-place write chunk

pub use consumer::{Consumer, ReadChunk};
pub use producer::{Producer, WriteChunk};

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

/// Whether the role `word` of `mem` is held by a live handle.
fn holds_role<S>(mem: &RingMemory<S>, word: &crate::platform::sync::AtomicU64) -> bool {
    crate::peers::attach::holder(mem.segment(), word).is_some_and(|h| h.alive)
}

//! The lifecycle every ring kind shares, written once: a ring by name
//! (create, open, open-or-create, open with a wait), what anyone may ask of
//! it (name, capacity, who is there, closed), and keeping its name
//! (`persist`). [`Ring<F>`] is that part of every ring; a ring kind is a
//! [`Flavor`]: it says how its memory is made and opened (layout, header
//! checks, capacity rule) and who counts as its producer and consumer, and
//! adds its own methods (`producer`, `consumer`, counters) in an `impl` on
//! `Ring<ItsFlavor>`. `Spsc<T>`, `Mpmc<T>` and `ByteRing` are such rings.
//!
//! How a name goes through it: `create` makes the segment `O_EXCL`, writes
//! and publishes the header, and joins; `open` maps, validates the header
//! (kind, element type, capacity when asked) and only then joins, so an
//! open that fails its checks leaves the ring as it found it;
//! `open_or_create` races the two a bounded number of times
//! (`memory.rs`); `open_timeout` waits for the name on an inotify
//! watch.

use std::sync::Arc;
use std::time::Duration;

pub(crate) mod memory; // a segment created or opened as typed slots; staleness
pub(crate) mod options; // how a ring is created and opened

use crate::error::Result;
use crate::lifecycle::memory::{create_or_open, open_waiting, RingMemory};
use crate::wait;
use options::{CreateOptions, OpenOptions};

pub(crate) mod sealed {
    use super::*;

    /// What a ring kind supplies to the lifecycle layer (sealed: the kinds
    /// are this crate's).
    pub trait Kind: Sized {
        /// The ring's type name, for `Debug`.
        const NAME: &'static str;
        /// The mapped ring: its segment, header and data area.
        type Memory: Send + Sync;
        /// What the memory's slots hold.
        type Slot;
        /// Make a new ring's memory (its segment made `O_EXCL`).
        fn create(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self::Memory>;
        /// Open an existing ring's memory; with `capacity`, it must be the
        /// one `create` makes for it (checked before the opener joins).
        fn open(name: &str, capacity: Option<usize>, opts: &OpenOptions) -> Result<Self::Memory>;
        /// The segment and header under the kind's view of them.
        fn ring(mem: &Self::Memory) -> &RingMemory<Self::Slot>;
        /// The capacity in the kind's unit (values, or bytes).
        fn capacity(mem: &Self::Memory) -> usize;
        /// Whether a live producer handle exists now.
        fn has_producer(mem: &Self::Memory) -> bool;
        /// Whether a live consumer handle exists now.
        fn has_consumer(mem: &Self::Memory) -> bool;
    }
}

/// A kind of ring: [`SpscFlavor`](crate::SpscFlavor),
/// [`MpmcFlavor`](crate::MpmcFlavor) or [`BytesFlavor`](crate::BytesFlavor).
/// Only this crate's kinds implement it; it exists so that one
/// [`Ring`] type carries the lifecycle of all of them.
pub trait Flavor: sealed::Kind {}

impl<K: sealed::Kind> Flavor for K {}

/// A ring in a shared-memory segment, of kind `F`: what every kind has.
/// Use it through its kinds' names, [`Spsc<T>`](crate::Spsc),
/// [`Mpmc<T>`](crate::Mpmc) and [`ByteRing`](crate::ByteRing), which add
/// their handles (`producer`, `consumer`) and counters.
///
/// A `Ring` only maps the segment; the handles it gives out keep the
/// mapping alive, so it may be dropped once they exist.
///
/// ```
/// use shmring::{ByteRing, Mpmc, Spsc};
/// # let name = |k: &str| format!("shmring-doc-ring-{k}-{}", std::process::id());
/// // The same calls for every kind: a capacity in values for the typed
/// // rings, in bytes for the byte ring.
/// let a = Spsc::<u64>::open_or_create(&name("a"), 1024)?;
/// let b = Mpmc::<u64>::open_or_create(&name("b"), 1024)?;
/// let c = ByteRing::open_or_create(&name("c"), 1 << 16)?;
/// assert!(a.is_creator() && b.is_creator() && c.is_creator());
/// assert_eq!((a.capacity(), c.capacity()), (1024, 1 << 16));
/// assert!(!a.has_producer() && !b.has_consumer() && !c.is_closed());
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Ring<F: Flavor> {
    pub(crate) mem: Arc<F::Memory>,
}

impl<F: Flavor> Ring<F> {
    /// Create a ring named `name` with room for `capacity` values (a byte
    /// ring: `capacity` bytes of data area, at least 64), rounded up to a
    /// power of two, mode 0600. The name stays while any process uses the
    /// ring and goes with the last of them, unless
    /// [`persist`](Self::persist) is called.
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &CreateOptions::default())
    }

    /// [`create`](Self::create) with options (the file mode, a schema,
    /// persistence, replacing a stale ring).
    pub fn create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        Ok(Self::from(F::create(name, capacity, opts)?))
    }

    /// Open a ring another process created. The header is validated
    /// against the kind and element type, and the segment's size, before
    /// anything else is read.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(name: &str, opts: &OpenOptions) -> Result<Self> {
        Ok(Self::from(F::open(name, None, opts)?))
    }

    /// Open ring `name`, waiting up to `timeout` for another process to
    /// create it (a consumer started before its producer): an inotify watch
    /// on the shm directory wakes the wait when a name appears, and no wait
    /// sleeps longer than 100 ms between looks. `NotFound` if no ring of
    /// that name appeared in time; every other error at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let name = format!("shmring-doc-ring-wait-{}", std::process::id());
    /// let waiter = {
    ///     let name = name.clone();
    ///     std::thread::spawn(move || shmring::Mpmc::<u64>::open_timeout(&name, Duration::from_secs(5)))
    /// };
    /// std::thread::sleep(Duration::from_millis(20)); // the creator starts later
    /// let ring = shmring::Mpmc::<u64>::create(&name, 1024)?;
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
    /// open it. A ring of that name with another kind, element type or
    /// capacity is an error (`KindMismatch`, `TypeMismatch`,
    /// `CapacityMismatch`), never a second ring, and the ring found is left
    /// as it was.
    ///
    /// ```
    /// # let name = format!("shmring-doc-ring-ooc-{}", std::process::id());
    /// let first = shmring::ByteRing::open_or_create(&name, 1024)?; // creates
    /// let second = shmring::ByteRing::open_or_create(&name, 1024)?; // opens
    /// assert!(first.is_creator() && !second.is_creator());
    /// assert!(matches!(
    ///     shmring::ByteRing::open_or_create(&name, 64),
    ///     Err(shmring::Error::CapacityMismatch { .. })
    /// ));
    /// assert!(matches!(
    ///     shmring::Spsc::<u64>::open_or_create(&name, 1024),
    ///     Err(shmring::Error::KindMismatch { .. })
    /// ));
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self> {
        Self::open_or_create_with(name, capacity, &CreateOptions::default())
    }

    /// [`open_or_create`](Self::open_or_create), creating with options.
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &CreateOptions) -> Result<Self> {
        create_or_open(
            || Self::create_with(name, capacity, opts),
            // The capacity is checked before the opener joins: a mismatch
            // leaves the ring found exactly as it was.
            || Ok(Self::from(F::open(name, Some(capacity), &opts.to_open())?)),
        )
    }

    /// The capacity: values for the typed rings (the requested capacity
    /// rounded up to a power of two), bytes of data area for a byte ring.
    pub fn capacity(&self) -> usize {
        F::capacity(&self.mem)
    }

    /// The segment's name, without a leading `/`.
    pub fn name(&self) -> &str {
        F::ring(&self.mem).segment().name().as_str()
    }

    /// Keep the ring's name after every process using it has left (by
    /// default the last one out removes it), until [`remove`](crate::remove)
    /// or `shmring rm --force`; nothing removes it as stale. It holds for
    /// every user, in every process, from now on;
    /// [`CreateOptions::persist`] sets it from the start.
    pub fn persist(&self) {
        F::ring(&self.mem).header().set_persistent()
    }

    /// Whether this handle's call created the ring (rather than opened
    /// it): with `open_or_create`, which of the racing processes won.
    /// Creating gives no say over the name; see the crate docs' "Names".
    pub fn is_creator(&self) -> bool {
        F::ring(&self.mem).created()
    }

    /// The pid of the process that created the segment (in its own pid
    /// namespace).
    pub fn creator_pid(&self) -> u32 {
        F::ring(&self.mem).info().creator_pid
    }

    /// Whether a live producer handle (in any process) exists now. One that
    /// died counts as gone: the kernel released its lock (see
    /// `platform/lease.rs`).
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
        F::has_producer(&self.mem)
    }

    /// Whether a live consumer handle (in any process) exists now; see
    /// [`has_producer`](Self::has_producer).
    pub fn has_consumer(&self) -> bool {
        F::has_consumer(&self.mem)
    }

    /// Whether the producers closed the ring (and none reopened it).
    pub fn is_closed(&self) -> bool {
        wait::is_closed(&F::ring(&self.mem).header().consumer_event)
    }

    fn from(mem: F::Memory) -> Self {
        Ring { mem: Arc::new(mem) }
    }

    /// Another handle to the same mapping (the segment is left when the
    /// last goes).
    pub(crate) fn handle(&self) -> Self {
        Ring {
            mem: Arc::clone(&self.mem),
        }
    }
}

impl<F: Flavor> std::fmt::Debug for Ring<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(F::NAME)
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .finish()
    }
}

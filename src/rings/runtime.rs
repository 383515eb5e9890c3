//! Rings whose element type is known only at run time: a C struct handed
//! over as a size and an alignment, a numpy dtype, a type another process
//! names. Other languages' bindings (`shmring-c`) use these; a Rust
//! program that knows its type uses [`Spsc<T>`](crate::Spsc) or
//! [`Mpmc<T>`](crate::Mpmc). [`RuntimeRing`] is the lifecycle both kinds
//! share; [`RuntimeSpsc`] and [`RuntimeMpmc`] add their handles.
//!
//! A ring of a run-time [`TypeLayout`] is laid out exactly as a ring of a
//! `#[repr(C)]` Rust type of the same size, alignment and schema: each
//! slot is a `u64` stamp, then the value at the offset a `#[repr(C)]`
//! struct of the two gives it, slots a multiple of the larger alignment
//! apart. Its header records that layout, so either side opens the
//! other's ring, and an opener of another layout is refused with
//! `TypeMismatch`.
//!
//! The protocol is the typed ring's, the same code: positions, stamps,
//! waits, takeover and repair know nothing of the value, which is copied
//! in (after the slot is the writer's) and out (volatile, each byte read
//! once, as a typed pop reads) where a typed ring moves a `T`; or lent
//! in place, as a typed ring lends a `T`: [`RuntimeWriteSlot`] and
//! [`RuntimeReadSlot`] are the value's bytes in its slot. A
//! broadcast subscriber's copy is its seqlock read (`rings/broadcast`):
//! volatile, between its two looks at the stamp, and thrown away if the
//! stamp moved; the producer's copy is volatile too, after the busy stamp
//! and its fence.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::slot::Runtime;
use crate::kind::TypeLayout;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::lifecycle::{Flavor, Ring};
use crate::rings::broadcast::{
    BroadcastFlavor, BroadcastProducer, Policy, Subscriber, SubscriberOptions,
};
use crate::rings::mpmc::{MpmcConsumer, MpmcFlavor, MpmcProducer, MpmcReadSlot, MpmcWriteSlot};
use crate::rings::spsc::{Consumer, Producer, SpscFlavor};
use crate::wait::WaitStrategy;

/// A ring of values of a [`TypeLayout`] given at run time, moved as their
/// bytes: the lifecycle of [`RuntimeSpsc`] and [`RuntimeMpmc`]. It opens
/// a ring a Rust program made of a `#[repr(C)]` type of that layout, and
/// the other way round.
///
/// ```
/// use shmring::{RuntimeMpmc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-ring-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("sample", 2)?, 24, 8)?;
/// let ring = RuntimeMpmc::open_or_create(&name, layout, 256)?;
/// assert_eq!((ring.layout(), ring.capacity()), (layout, 256));
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct RuntimeRing<F: RuntimeFlavor> {
    ring: Ring<F>,
    layout: TypeLayout,
}

/// The kinds a [`RuntimeRing`] can be: SPSC, MPMC and broadcast rings of
/// a run-time layout (sealed).
pub trait RuntimeFlavor: Flavor + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for SpscFlavor<Runtime> {}
impl RuntimeFlavor for SpscFlavor<Runtime> {}
impl sealed::Sealed for MpmcFlavor<Runtime> {}
impl RuntimeFlavor for MpmcFlavor<Runtime> {}
impl sealed::Sealed for BroadcastFlavor<Runtime> {}
impl RuntimeFlavor for BroadcastFlavor<Runtime> {}

/// An SPSC ring of values of a run-time [`TypeLayout`] (see
/// [`RuntimeRing`]).
///
/// ```
/// use shmring::{runtime::Spsc as RuntimeSpsc, Schema, Spsc, TypeLayout};
/// #[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
/// #[repr(C)]
/// struct Tick { px: f64, qty: u32, side: u32 }
/// # let name = format!("shmring-doc-runtime-{}", std::process::id());
/// let typed = Spsc::<Tick>::create(&name, 64)?;
/// // What another language knows of `Tick`: its schema, size and alignment.
/// let layout = TypeLayout::new(Schema::new("Tick", 0)?, 16, 8)?;
/// let ring = RuntimeSpsc::open(&name, layout)?;
/// let mut tx = typed.producer()?;
/// let mut rx = ring.consumer()?;
/// tx.try_push(Tick { px: 101.5, qty: 3, side: 1 }).unwrap();
/// let mut bytes = [0u8; 16];
/// assert!(rx.try_pop(&mut bytes)?);
/// assert_eq!(f64::from_ne_bytes(bytes[..8].try_into().unwrap()), 101.5);
/// # Ok::<(), shmring::Error>(())
/// ```
pub type RuntimeSpsc = RuntimeRing<SpscFlavor<Runtime>>;

/// An MPMC ring of values of a run-time [`TypeLayout`] (see
/// [`RuntimeRing`]).
///
/// ```
/// use shmring::{Mpmc, RuntimeMpmc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-mpmc-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("[u32; 2]", 0)?, 8, 4)?;
/// let ring = RuntimeMpmc::create(&name, layout, 8)?;
/// let typed = Mpmc::<[u32; 2]>::open(&name)?;
/// let tx = ring.producer()?;
/// tx.try_push(bytemuck::bytes_of(&[3u32, 4]))?;
/// assert_eq!(typed.consumer()?.try_pop(), Some([3, 4]));
/// # Ok::<(), shmring::Error>(())
/// ```
pub type RuntimeMpmc = RuntimeRing<MpmcFlavor<Runtime>>;

/// A broadcast ring of values of a run-time [`TypeLayout`] (see
/// [`RuntimeRing`] and [`Broadcast`](crate::Broadcast)): one producer,
/// and subscribers that each read every value, under their own
/// [`Policy`].
///
/// ```
/// use shmring::{Broadcast, RuntimeBroadcast, Schema, SubscriberOptions, TypeLayout};
/// # let name = format!("shmring-doc-runtime-bcast-{}", std::process::id());
/// let typed = Broadcast::<u64>::create(&name, 8)?;
/// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
/// let ring = RuntimeBroadcast::open(&name, layout)?;
/// let mut a = ring.subscriber()?;
/// let mut b = ring.subscriber_with(&SubscriberOptions::lossy())?;
/// typed.producer()?.try_push(9).unwrap();
/// let mut out = [0u8; 8];
/// assert!(a.try_pop(&mut out)?);
/// assert_eq!(u64::from_ne_bytes(out), 9);
/// assert!(b.try_pop(&mut out)?);
/// # Ok::<(), shmring::Error>(())
/// ```
pub type RuntimeBroadcast = RuntimeRing<BroadcastFlavor<Runtime>>;

impl<F: RuntimeFlavor> std::fmt::Debug for RuntimeRing<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeRing")
            .field("ring", &self.ring)
            .field("layout", &self.layout)
            .finish()
    }
}

/// `layout` as [`TypeLayout::new`] makes it: its fields are public, so a
/// caller may have built one no ring can hold (an alignment that is not a
/// power of two), or with a stale fingerprint. A run-time ring's values
/// are at least a byte (a value of none has no bytes to move).
fn checked(layout: TypeLayout) -> Result<TypeLayout> {
    if layout.size == 0 {
        return Err(Error::InvalidLayout {
            reason: "a run-time ring's values are at least a byte",
        });
    }
    TypeLayout::new(layout.schema, layout.size, layout.align)
}

impl<F: RuntimeFlavor> RuntimeRing<F> {
    /// Create ring `name` of `capacity` values of `layout` (rounded up to
    /// a power of two), mode 0600.
    pub fn create(name: &str, layout: TypeLayout, capacity: usize) -> Result<Self> {
        Self::create_with(name, layout, capacity, &CreateOptions::default())
    }

    /// [`create`](Self::create) with options (the schema is the layout's).
    pub fn create_with(
        name: &str,
        layout: TypeLayout,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self> {
        let layout = checked(layout)?;
        let mut opts = opts.clone();
        opts.elem = Some(layout);
        Ok(RuntimeRing {
            ring: Ring::create_with(name, capacity, &opts)?,
            layout,
        })
    }

    /// Open ring `name`, whose header must record `layout` (`TypeMismatch`
    /// if not).
    pub fn open(name: &str, layout: TypeLayout) -> Result<Self> {
        Self::open_with(name, layout, &OpenOptions::default())
    }

    /// [`open`](Self::open) with options (the schema is the layout's).
    pub fn open_with(name: &str, layout: TypeLayout, opts: &OpenOptions) -> Result<Self> {
        let layout = checked(layout)?;
        let mut opts = opts.clone();
        opts.elem = Some(layout);
        Ok(RuntimeRing {
            ring: Ring::open_with(name, &opts)?,
            layout,
        })
    }

    /// Open ring `name`, waiting up to `timeout` for it to be created (see
    /// [`Ring::open_timeout`]).
    pub fn open_timeout(name: &str, layout: TypeLayout, timeout: Duration) -> Result<Self> {
        crate::lifecycle::memory::open_waiting(timeout, |opts| Self::open_with(name, layout, opts))
    }

    /// Create ring `name`, or open it if another process created it first
    /// (see [`Ring::open_or_create`]).
    pub fn open_or_create(name: &str, layout: TypeLayout, capacity: usize) -> Result<Self> {
        Self::open_or_create_with(name, layout, capacity, &CreateOptions::default())
    }

    /// [`open_or_create`](Self::open_or_create), creating with options (the
    /// schema is the layout's).
    ///
    /// ```
    /// use shmring::{CreateOptions, RuntimeSpsc, Schema, TypeLayout};
    /// # let name = format!("shmring-doc-runtime-ooc-{}", std::process::id());
    /// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
    /// let opts = CreateOptions::new().zero_after_use(true);
    /// let ring = RuntimeSpsc::open_or_create_with(&name, layout, 64, &opts)?;
    /// assert!(ring.is_creator());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn open_or_create_with(
        name: &str,
        layout: TypeLayout,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self> {
        let layout = checked(layout)?;
        let mut opts = opts.clone();
        opts.elem = Some(layout);
        Ok(RuntimeRing {
            ring: Ring::open_or_create_with(name, capacity, &opts)?,
            layout,
        })
    }

    /// Keep the ring's name after every process using it has left (see
    /// [`Ring::persist`]).
    pub fn persist(&self) {
        self.ring.persist()
    }

    /// Whether this handle's call created the ring (see
    /// [`Ring::is_creator`]).
    pub fn is_creator(&self) -> bool {
        self.ring.is_creator()
    }

    /// The values' layout.
    pub fn layout(&self) -> TypeLayout {
        self.layout
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        self.ring.name()
    }

    /// The capacity, in values.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Whether a live handle (in any process) holds the producer role (an
    /// MPMC ring: whether any live producer is attached).
    pub fn has_producer(&self) -> bool {
        self.ring.has_producer()
    }

    /// Whether a live handle (in any process) holds the consumer role (an
    /// MPMC ring: whether any live consumer is attached).
    pub fn has_consumer(&self) -> bool {
        self.ring.has_consumer()
    }
}

impl RuntimeSpsc {
    /// Values pushed over the ring's life (as last stored by the producer).
    pub fn pushed(&self) -> u64 {
        self.ring.pushed()
    }

    /// Values popped over the ring's life (as last stored by the consumer).
    pub fn popped(&self) -> u64 {
        self.ring.popped()
    }

    /// Claim the producer end (see [`Spsc::producer`](crate::Spsc::producer)).
    pub fn producer(&self) -> Result<RuntimeProducer> {
        Ok(RuntimeProducer {
            inner: self.ring.producer()?,
            len: ValueLen(self.layout.size as usize),
        })
    }

    /// Claim the consumer end (see [`Spsc::consumer`](crate::Spsc::consumer)).
    pub fn consumer(&self) -> Result<RuntimeConsumer> {
        Ok(RuntimeConsumer {
            inner: self.ring.consumer()?,
            len: ValueLen(self.layout.size as usize),
        })
    }
}

impl RuntimeMpmc {
    /// Positions claimed by producers so far (see
    /// [`Mpmc::pushed`](crate::Mpmc::pushed)).
    pub fn pushed(&self) -> u64 {
        self.ring.pushed()
    }

    /// Positions claimed by consumers so far.
    pub fn popped(&self) -> u64 {
        self.ring.popped()
    }

    /// The position consumers wait behind, if a producer claimed it and
    /// has not published it (see [`Mpmc::stalled_at`](crate::Mpmc::stalled_at)).
    pub fn stalled_at(&self) -> Option<u64> {
        self.ring.stalled_at()
    }

    /// Repair what dead processes left (see
    /// [`Mpmc::recover`](crate::Mpmc::recover)): what a blocked call does on
    /// its own, for handles that only poll; how many positions it repaired
    /// or handed on.
    ///
    /// ```
    /// use shmring::{RuntimeMpmc, Schema, TypeLayout};
    /// # let name = format!("shmring-doc-runtime-recover-{}", std::process::id());
    /// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
    /// let ring = RuntimeMpmc::create(&name, layout, 4)?;
    /// assert_eq!(ring.recover(), 0); // every holder is alive
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn recover(&self) -> u64 {
        self.ring.recover()
    }

    /// A producer handle (see [`Mpmc::producer`](crate::Mpmc::producer)).
    pub fn producer(&self) -> Result<RuntimeMpmcProducer> {
        Ok(RuntimeMpmcProducer {
            inner: self.ring.producer()?,
            len: ValueLen(self.layout.size as usize),
        })
    }

    /// A consumer handle (see [`Mpmc::consumer`](crate::Mpmc::consumer)).
    pub fn consumer(&self) -> Result<RuntimeMpmcConsumer> {
        Ok(RuntimeMpmcConsumer {
            inner: self.ring.consumer()?,
            len: ValueLen(self.layout.size as usize),
        })
    }
}

impl RuntimeBroadcast {
    /// Values published over the ring's life (as last stored by the
    /// producer).
    pub fn pushed(&self) -> u64 {
        self.ring.pushed()
    }

    /// Claim the producer end (see
    /// [`Broadcast::producer`](crate::Broadcast::producer)).
    pub fn producer(&self) -> Result<RuntimeBroadcastProducer> {
        Ok(RuntimeBroadcastProducer {
            inner: self.ring.producer()?,
            len: ValueLen(self.layout.size as usize),
        })
    }

    /// A lossless subscriber starting at the next value published.
    pub fn subscriber(&self) -> Result<RuntimeSubscriber> {
        self.subscriber_with(&SubscriberOptions::lossless())
    }

    /// A subscriber with `opts` (see
    /// [`Broadcast::subscriber_with`](crate::Broadcast::subscriber_with)).
    pub fn subscriber_with(&self, opts: &SubscriberOptions) -> Result<RuntimeSubscriber> {
        Ok(RuntimeSubscriber {
            inner: self.ring.subscriber_with(opts)?,
            len: ValueLen(self.layout.size as usize),
            copy: vec![0; self.layout.size as usize].into_boxed_slice(),
        })
    }
}

/// The size every value of a ring is, checked on each call.
#[derive(Clone, Copy, Debug)]
struct ValueLen(usize);

impl ValueLen {
    /// `len` bytes are whole values (none included).
    fn check_whole(self, len: usize) -> Result<()> {
        match self.0 > 0 && len.is_multiple_of(self.0) {
            true => Ok(()),
            false => Err(Error::WrongLength {
                len,
                expected: self.0,
            }),
        }
    }

    fn check(self, len: usize) -> Result<()> {
        match len == self.0 {
            true => Ok(()),
            false => Err(Error::WrongLength {
                len,
                expected: self.0,
            }),
        }
    }
}

/// The writing end of a [`RuntimeSpsc`]: each value is its layout's size
/// in bytes.
///
/// ```
/// use shmring::{runtime::Spsc as RuntimeSpsc, Error, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-tx-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("pair", 1)?, 8, 4)?;
/// let ring = RuntimeSpsc::create(&name, layout, 1)?;
/// let mut tx = ring.producer()?;
/// tx.try_push(&[1; 8])?;
/// assert!(matches!(tx.try_push(&[2; 8]), Err(Error::Full)));
/// assert!(matches!(tx.try_push(&[3; 7]), Err(Error::WrongLength { len: 7, expected: 8 })));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeProducer {
    inner: Producer<Runtime>,
    len: ValueLen,
}

impl RuntimeProducer {
    /// Push `value` if there is room (`Full` if not); `WrongLength` unless
    /// it is the layout's size.
    pub fn try_push(&mut self, value: &[u8]) -> Result<()> {
        self.len.check(value.len())?;
        Ok(self.inner.try_push_bytes(value)?)
    }

    /// Push `value`, waiting up to `timeout` for room (`Timeout` if none
    /// came; a zero timeout is [`try_push`](Self::try_push), and says
    /// `Full`).
    pub fn push_timeout(&mut self, value: &[u8], timeout: Duration) -> Result<()> {
        self.len.check(value.len())?;
        Ok(self.inner.push_bytes_timeout(value, timeout)?)
    }

    /// Close the ring (see [`Producer::close`](crate::Producer::close)):
    /// the consumer pops what was pushed, then `Closed`.
    pub fn close(self) {
        self.inner.close();
    }

    /// The next value's bytes in place, if there is room now (`Full` if
    /// not): write them, then [`commit`](RuntimeWriteSlot::commit);
    /// dropping the slot publishes nothing.
    ///
    /// ```
    /// use shmring::{runtime::Spsc as RuntimeSpsc, Schema, TypeLayout};
    /// # let name = format!("shmring-doc-runtime-reserve-{}", std::process::id());
    /// let layout = TypeLayout::new(Schema::new("u32", 0)?, 4, 4)?;
    /// let ring = RuntimeSpsc::create(&name, layout, 2)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve()?;
    /// slot.bytes_mut().copy_from_slice(&7u32.to_ne_bytes()); // in place
    /// slot.commit();
    /// let read = rx.try_read().expect("a value");
    /// assert_eq!(read.bytes(), 7u32.to_ne_bytes()); // in place too
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_reserve(&mut self) -> Result<RuntimeWriteSlot<'_>> {
        self.reserve_timeout(Duration::ZERO)
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for room
    /// (`Timeout`; a zero timeout says `Full`).
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<RuntimeWriteSlot<'_>> {
        let len = self.len.0;
        let value = self.inner.reserve_bytes(timeout)?;
        Ok(RuntimeWriteSlot {
            lent: WriteLent::Spsc(&mut self.inner),
            value,
            len,
        })
    }

    /// Push the values laid out one after another in `values` while there
    /// is room now, with one index store and one wakeup for all (as a
    /// write chunk commits); how many went (0 if the ring is full).
    /// `WrongLength` unless `values` holds whole values.
    ///
    /// ```
    /// use shmring::{runtime::Spsc as RuntimeSpsc, Schema, TypeLayout};
    /// # let name = format!("shmring-doc-runtime-many-{}", std::process::id());
    /// let layout = TypeLayout::new(Schema::new("u32", 0)?, 4, 4)?;
    /// let ring = RuntimeSpsc::create(&name, layout, 2)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let three: Vec<u8> = [1u32, 2, 3].iter().flat_map(|v| v.to_ne_bytes()).collect();
    /// assert_eq!(tx.try_push_many(&three)?, 2); // room for two
    /// let mut out = [0u8; 12];
    /// assert_eq!(rx.try_pop_many(&mut out)?, 2);
    /// assert_eq!(&out[..8], &three[..8]);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_push_many(&mut self, values: &[u8]) -> Result<usize> {
        self.len.check_whole(values.len())?;
        Ok(self.inner.try_push_bytes_many(values, self.len.0))
    }

    /// How this producer waits for room.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }
}

/// The reading end of a [`RuntimeSpsc`]: each value is copied out into a
/// buffer of its layout's size.
///
/// ```
/// use std::time::Duration;
/// use shmring::{runtime::Spsc as RuntimeSpsc, Error, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-rx-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("word", 0)?, 8, 8)?;
/// let ring = RuntimeSpsc::create(&name, layout, 4)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let mut out = [0u8; 8];
/// assert!(!rx.try_pop(&mut out)?);
/// tx.try_push(&7u64.to_ne_bytes())?;
/// rx.pop_timeout(&mut out, Duration::from_secs(1))?;
/// assert_eq!(u64::from_ne_bytes(out), 7);
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeConsumer {
    inner: Consumer<Runtime>,
    len: ValueLen,
}

impl RuntimeConsumer {
    /// Pop the oldest value into `out`, if there is one (`false` if not);
    /// `WrongLength` unless `out` is the layout's size.
    pub fn try_pop(&mut self, out: &mut [u8]) -> Result<bool> {
        self.len.check(out.len())?;
        Ok(self.inner.try_pop_bytes(out))
    }

    /// Pop the oldest value into `out`, waiting up to `timeout` for one
    /// (`Timeout`; `Closed` once the producer closed the ring and every
    /// value was popped).
    pub fn pop_timeout(&mut self, out: &mut [u8], timeout: Duration) -> Result<()> {
        self.len.check(out.len())?;
        Ok(self.inner.pop_bytes_timeout(out, timeout)?)
    }

    /// How this consumer waits for a value.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }

    /// Pop the values ready now into `out`, one after another, up to as
    /// many as it holds, with one index store and one wakeup for all (as a
    /// read chunk releases); how many (0 if none is ready). `WrongLength`
    /// unless `out` holds whole values.
    pub fn try_pop_many(&mut self, out: &mut [u8]) -> Result<usize> {
        self.len.check_whole(out.len())?;
        Ok(self.inner.try_pop_bytes_many(out, self.len.0))
    }

    /// Values popped from this ring, counting from creation.
    pub fn popped(&self) -> u64 {
        self.inner.popped()
    }

    /// The oldest value's bytes in place, if there is one (`None` if
    /// not), until the slot is dropped (or
    /// [`release`](RuntimeReadSlot::release)d), which releases it.
    pub fn try_read(&mut self) -> Option<RuntimeReadSlot<'_>> {
        let len = self.len.0;
        let value = self.inner.try_read_bytes()?;
        Some(RuntimeReadSlot {
            lent: ReadLent::Spsc(&mut self.inner),
            value,
            len,
        })
    }

    /// [`try_read`](Self::try_read), waiting up to `timeout` for a value
    /// (`Timeout`; `Closed` once the producer closed the ring and every
    /// value was read).
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<RuntimeReadSlot<'_>> {
        let len = self.len.0;
        let value = self.inner.read_bytes_timeout(timeout)?;
        Ok(RuntimeReadSlot {
            lent: ReadLent::Spsc(&mut self.inner),
            value,
            len,
        })
    }
}

/// A producer of a [`RuntimeMpmc`]: each value is its layout's size in
/// bytes. Several, in any processes, push at once.
///
/// ```
/// use shmring::{RuntimeMpmc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-mpmc-tx-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
/// let ring = RuntimeMpmc::create(&name, layout, 4)?;
/// let (a, b) = (ring.producer()?, ring.producer()?);
/// a.try_push(&1u64.to_ne_bytes())?;
/// b.try_push(&2u64.to_ne_bytes())?;
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeMpmcProducer {
    inner: MpmcProducer<Runtime>,
    len: ValueLen,
}

impl RuntimeMpmcProducer {
    /// Push `value` if there is room (`Full` if not); `WrongLength` unless
    /// it is the layout's size.
    pub fn try_push(&self, value: &[u8]) -> Result<()> {
        self.len.check(value.len())?;
        Ok(self.inner.try_push_bytes(value)?)
    }

    /// Push `value`, waiting up to `timeout` for room (`Timeout` if none
    /// came; a zero timeout is [`try_push`](Self::try_push), and says
    /// `Full`).
    pub fn push_timeout(&self, value: &[u8], timeout: Duration) -> Result<()> {
        self.len.check(value.len())?;
        Ok(self.inner.push_bytes_timeout(value, timeout)?)
    }

    /// Close the ring for every consumer (see
    /// [`MpmcProducer::close`](crate::MpmcProducer::close)).
    pub fn close(self) {
        self.inner.close();
    }

    /// A claimed value's bytes in place, zeroed, if there is room now
    /// (`Full` if not): write them, then
    /// [`commit`](RuntimeWriteSlot::commit); dropping the slot publishes
    /// the position as skipped.
    ///
    /// ```
    /// use shmring::{RuntimeMpmc, Schema, TypeLayout};
    /// # let name = format!("shmring-doc-runtime-mpmc-reserve-{}", std::process::id());
    /// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
    /// let ring = RuntimeMpmc::create(&name, layout, 4)?;
    /// let (tx, rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve()?;
    /// slot.bytes_mut()[0] = 9;
    /// slot.commit();
    /// assert_eq!(rx.try_read().expect("a value").bytes()[0], 9);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn try_reserve(&self) -> Result<RuntimeWriteSlot<'_>> {
        self.reserve_timeout(Duration::ZERO)
    }

    /// [`try_reserve`](Self::try_reserve), waiting up to `timeout` for room
    /// (`Timeout`; a zero timeout says `Full`).
    pub fn reserve_timeout(&self, timeout: Duration) -> Result<RuntimeWriteSlot<'_>> {
        let (slot, value) = self.inner.reserve_bytes(timeout)?;
        Ok(RuntimeWriteSlot {
            lent: WriteLent::Mpmc(slot),
            value,
            len: self.len.0,
        })
    }

    /// Push the values laid out one after another in `values`, in order,
    /// while there is room now (each its own claim, as MPMC values are);
    /// how many went. `WrongLength` unless `values` holds whole values.
    pub fn try_push_many(&self, values: &[u8]) -> Result<usize> {
        self.len.check_whole(values.len())?;
        let mut n = 0;
        for value in values.chunks_exact(self.len.0) {
            match self.inner.try_push_bytes(value) {
                Ok(()) => n += 1,
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// How this producer waits for room.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }
}

/// A consumer of a [`RuntimeMpmc`]: each value is copied out into a
/// buffer of its layout's size. Several, in any processes, pop at once,
/// each value reaching one of them.
///
/// ```
/// use std::time::Duration;
/// use shmring::{RuntimeMpmc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-mpmc-rx-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
/// let ring = RuntimeMpmc::create(&name, layout, 4)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(&5u64.to_ne_bytes())?;
/// let mut out = [0u8; 8];
/// rx.pop_timeout(&mut out, Duration::from_secs(1))?;
/// assert_eq!(u64::from_ne_bytes(out), 5);
/// assert!(!rx.try_pop(&mut out)?);
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeMpmcConsumer {
    inner: MpmcConsumer<Runtime>,
    len: ValueLen,
}

impl RuntimeMpmcConsumer {
    /// Pop the oldest value into `out`, if there is one (`false` if not);
    /// `WrongLength` unless `out` is the layout's size.
    pub fn try_pop(&self, out: &mut [u8]) -> Result<bool> {
        self.len.check(out.len())?;
        Ok(self.inner.try_pop_bytes(out))
    }

    /// Pop a value into `out`, waiting up to `timeout` for one (as
    /// [`MpmcConsumer::pop_timeout`](crate::MpmcConsumer::pop_timeout):
    /// dead producers' claims repaired, a dead consumer's value taken
    /// over; `Timeout`, `Stalled`, or `Closed`).
    pub fn pop_timeout(&self, out: &mut [u8], timeout: Duration) -> Result<()> {
        self.len.check(out.len())?;
        Ok(self.inner.pop_bytes_timeout(out, timeout)?)
    }

    /// A value's bytes in place, if there is one (`None` if not), until the
    /// slot is dropped (or [`release`](RuntimeReadSlot::release)d), which
    /// releases it.
    pub fn try_read(&self) -> Option<RuntimeReadSlot<'_>> {
        let (slot, value) = self.inner.try_read_bytes()?;
        Some(RuntimeReadSlot {
            lent: ReadLent::Mpmc(slot),
            value,
            len: self.len.0,
        })
    }

    /// [`try_read`](Self::try_read), waiting up to `timeout` for a value
    /// (errors as for [`pop_timeout`](Self::pop_timeout)).
    pub fn read_timeout(&self, timeout: Duration) -> Result<RuntimeReadSlot<'_>> {
        let (slot, value) = self.inner.read_bytes_timeout(timeout)?;
        Ok(RuntimeReadSlot {
            lent: ReadLent::Mpmc(slot),
            value,
            len: self.len.0,
        })
    }

    /// Pop the values there now into `out`, one after another, up to as
    /// many as it holds (each its own claim); how many. `WrongLength`
    /// unless `out` holds whole values.
    pub fn try_pop_many(&self, out: &mut [u8]) -> Result<usize> {
        self.len.check_whole(out.len())?;
        let mut n = 0;
        for value in out.chunks_exact_mut(self.len.0) {
            if !self.inner.try_pop_bytes(value) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// How this consumer waits for a value.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }
}

/// The producer of a [`RuntimeBroadcast`]: each value is its layout's
/// size in bytes, published to every subscriber.
///
/// ```
/// use shmring::{RuntimeBroadcast, Error, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-bcast-tx-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("u32", 0)?, 4, 4)?;
/// let ring = RuntimeBroadcast::create(&name, layout, 1)?;
/// let mut tx = ring.producer()?;
/// let _slow = ring.subscriber()?; // lossless: the producer waits for it
/// tx.try_push(&1u32.to_ne_bytes())?;
/// assert!(matches!(tx.try_push(&2u32.to_ne_bytes()), Err(Error::Full)));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeBroadcastProducer {
    inner: BroadcastProducer<Runtime>,
    len: ValueLen,
}

impl RuntimeBroadcastProducer {
    /// Publish `value` unless a lossless subscriber has not read the value
    /// it would overwrite (`Full`); `WrongLength` unless it is the
    /// layout's size.
    pub fn try_push(&mut self, value: &[u8]) -> Result<()> {
        self.len.check(value.len())?;
        match self.inner.try_push_bytes(value) {
            true => Ok(()),
            false => Err(Error::Full),
        }
    }

    /// Publish `value`, waiting up to `timeout` for the lossless
    /// subscribers to make room (see
    /// [`BroadcastProducer::push_timeout`](crate::BroadcastProducer::push_timeout));
    /// a zero timeout is [`try_push`](Self::try_push), and says `Full`.
    pub fn push_timeout(&mut self, value: &[u8], timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return self.try_push(value);
        }
        self.len.check(value.len())?;
        self.inner
            .push_bytes_timeout(value, timeout)
            .map_err(|e| Error::from(crate::error::SendError::from(e)))
    }

    /// Publish the values laid out one after another in `values`, in
    /// order, while there is room now; how many went. `WrongLength`
    /// unless `values` holds whole values.
    pub fn try_push_many(&mut self, values: &[u8]) -> Result<usize> {
        self.len.check_whole(values.len())?;
        let mut n = 0;
        for value in values.chunks_exact(self.len.0) {
            if !self.inner.try_push_bytes(value) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Close the ring: subscribers read what was published, then
    /// `Closed`. A new producer reopens it.
    pub fn close(&mut self) {
        self.inner.close();
    }

    /// Values published over the ring's life.
    pub fn pushed(&self) -> u64 {
        self.inner.pushed()
    }

    /// How this producer waits for room.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }
}

/// A subscriber of a [`RuntimeBroadcast`]: it reads every value from where
/// it started, each copied out into a buffer of the layout's size, and
/// counts what it missed (see [`Subscriber`](crate::Subscriber)).
///
/// ```
/// use shmring::{RuntimeBroadcast, Schema, SubscriberOptions, TypeLayout};
/// # let name = format!("shmring-doc-runtime-sub-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
/// let ring = RuntimeBroadcast::create(&name, layout, 4)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.subscriber_with(&SubscriberOptions::lossy())?;
/// for v in 0..10u64 {
///     tx.try_push(&v.to_ne_bytes())?; // a lossy subscriber never holds it up
/// }
/// let mut out = [0u8; 8];
/// assert!(rx.try_pop(&mut out)?);
/// assert_eq!(rx.missed(), u64::from_ne_bytes(out)); // it says how far it skipped
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Debug)]
pub struct RuntimeSubscriber {
    inner: Subscriber<Runtime>,
    len: ValueLen,
    /// Where a value is copied first: a copy the producer tore is thrown
    /// away here, never left in the caller's buffer.
    copy: Box<[u8]>,
}

impl RuntimeSubscriber {
    /// Copy the next value into `out`, if one was published (`false` if
    /// not, `out` unchanged); values it missed are skipped and counted.
    /// `WrongLength` unless `out` is the layout's size.
    pub fn try_pop(&mut self, out: &mut [u8]) -> Result<bool> {
        self.len.check(out.len())?;
        let got = self.inner.try_pop_bytes(&mut self.copy);
        if got {
            out.copy_from_slice(&self.copy);
        }
        Ok(got)
    }

    /// Copy the next value into `out`, waiting up to `timeout` for one
    /// (`Timeout`; `Closed` once the producer closed the ring and every
    /// value before the close was read; `out` unchanged on an error).
    pub fn pop_timeout(&mut self, out: &mut [u8], timeout: Duration) -> Result<()> {
        self.len.check(out.len())?;
        self.inner.pop_bytes_timeout(&mut self.copy, timeout)?;
        out.copy_from_slice(&self.copy);
        Ok(())
    }

    /// Copy the values published now into `out`, one after another, up to
    /// as many as it holds; how many (the bytes after them unchanged).
    /// `WrongLength` unless `out` holds whole values.
    pub fn try_pop_many(&mut self, out: &mut [u8]) -> Result<usize> {
        self.len.check_whole(out.len())?;
        let mut n = 0;
        for value in out.chunks_exact_mut(self.len.0) {
            if !self.inner.try_pop_bytes(&mut self.copy) {
                break;
            }
            value.copy_from_slice(&self.copy);
            n += 1;
        }
        Ok(n)
    }

    /// Values it missed: overwritten before they were read (see
    /// [`Subscriber::missed`](crate::Subscriber::missed)).
    pub fn missed(&self) -> u64 {
        self.inner.missed()
    }

    /// The position of the next value it reads.
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Values published that it has not read yet.
    pub fn lag(&self) -> u64 {
        self.inner.lag()
    }

    /// Its policy now (lossy once the producer made it so).
    pub fn policy(&self) -> Policy {
        self.inner.policy()
    }

    /// Whether the producer made it lossy, held up past its bound.
    pub fn is_demoted(&self) -> bool {
        self.inner.is_demoted()
    }

    /// How this subscriber waits for values.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.inner.set_wait_strategy(strategy);
    }

    /// The size of a value, in bytes.
    pub fn value_len(&self) -> usize {
        self.len.0
    }
}

/// Who lent a [`RuntimeWriteSlot`], and what commits it.
enum WriteLent<'a> {
    Spsc(&'a mut Producer<Runtime>),
    Mpmc(MpmcWriteSlot<'a, Runtime>),
}

/// A value's bytes reserved in place in its slot, by
/// [`RuntimeProducer::try_reserve`] or
/// [`RuntimeMpmcProducer::try_reserve`] (and their `reserve_timeout`):
/// write them, then [`commit`](Self::commit). Dropping it publishes
/// nothing (an MPMC ring: the position is skipped). What the slot held
/// before is not the writer's to read: an SPSC slot keeps an earlier
/// lap's value, an MPMC one is zeroed.
///
/// ```
/// use shmring::{runtime::Spsc as RuntimeSpsc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-wslot-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("pair", 0)?, 8, 4)?;
/// let ring = RuntimeSpsc::create(&name, layout, 4)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// drop(tx.try_reserve()?); // not committed: nothing published
/// assert!(rx.try_read().is_none());
/// let mut slot = tx.try_reserve()?;
/// assert_eq!(slot.len(), 8);
/// slot.bytes_mut()[..4].copy_from_slice(&1u32.to_ne_bytes());
/// slot.bytes_mut()[4..].copy_from_slice(&2u32.to_ne_bytes());
/// slot.commit();
/// let mut out = [0u8; 8];
/// assert!(rx.try_pop(&mut out)?);
/// assert_eq!(&out[4..], 2u32.to_ne_bytes());
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a reserved value is published only when committed"]
pub struct RuntimeWriteSlot<'a> {
    lent: WriteLent<'a>,
    value: *mut u8,
    len: usize,
}

impl std::fmt::Debug for RuntimeWriteSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeWriteSlot")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl RuntimeWriteSlot<'_> {
    /// The value's bytes, in its slot.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the slot is ours from the reservation until it commits or
        // is dropped (the producer's `reserve_bytes`); `len` is the
        // layout's size, the value's bytes in the slot; `&mut self` makes
        // the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.value, self.len) }
    }

    /// The value's first byte, for a caller that writes through a pointer
    /// (`len()` bytes, until the slot commits or is dropped).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.value
    }

    /// The value's size, in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the value has no bytes (never: a run-time layout's values
    /// are at least a byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Publish the value: the consumer may read it from now on.
    pub fn commit(self) {
        match self.lent {
            WriteLent::Spsc(tx) => tx.commit_bytes(),
            WriteLent::Mpmc(slot) => slot.commit(),
        }
    }
}

/// Who lent a [`RuntimeReadSlot`], and what releases it.
enum ReadLent<'a> {
    Spsc(&'a mut Consumer<Runtime>),
    /// Held for its drop, which releases the claim.
    Mpmc(#[allow(dead_code)] MpmcReadSlot<'a, Runtime>),
}

/// A value's bytes lent in place in its slot, by
/// [`RuntimeConsumer::try_read`] or [`RuntimeMpmcConsumer::try_read`] (and
/// their `read_timeout`). Dropping it releases the value, as
/// [`release`](Self::release) does.
///
/// ```
/// use shmring::{RuntimeMpmc, Schema, TypeLayout};
/// # let name = format!("shmring-doc-runtime-rslot-{}", std::process::id());
/// let layout = TypeLayout::new(Schema::new("u64", 0)?, 8, 8)?;
/// let ring = RuntimeMpmc::create(&name, layout, 4)?;
/// let (tx, rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(&5u64.to_ne_bytes())?;
/// let value = rx.try_read().expect("a value");
/// assert_eq!(value.bytes(), 5u64.to_ne_bytes()); // no copy
/// value.release();
/// assert!(rx.try_read().is_none());
/// # Ok::<(), shmring::Error>(())
/// ```
#[must_use = "a read slot releases its value when dropped"]
pub struct RuntimeReadSlot<'a> {
    lent: ReadLent<'a>,
    value: *const u8,
    len: usize,
}

impl std::fmt::Debug for RuntimeReadSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeReadSlot")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl RuntimeReadSlot<'_> {
    /// The value's bytes, in its slot. A cooperating producer does not
    /// write them until the slot is released; a hostile one can, and a
    /// reader that must not see bytes change copies them
    /// ([`RuntimeConsumer::try_pop`]).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the slot is ours, published, until it is released (the
        // consumer's `read_bytes`); `len` is the layout's size, the value's
        // bytes in the slot.
        unsafe { std::slice::from_raw_parts(self.value, self.len) }
    }

    /// The value's first byte (`len()` bytes, until the slot is released).
    pub fn as_ptr(&self) -> *const u8 {
        self.value
    }

    /// The value's size, in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the value has no bytes (never: a run-time layout's values
    /// are at least a byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Release the value to the producer (what dropping the slot does).
    pub fn release(self) {
        drop(self)
    }
}

impl Drop for RuntimeReadSlot<'_> {
    fn drop(&mut self) {
        // An MPMC slot releases itself when the field drops.
        if let ReadLent::Spsc(rx) = &mut self.lent {
            rx.release_bytes();
        }
    }
}

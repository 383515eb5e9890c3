//! Typed rings (SPSC, MPMC and broadcast, values of one fixed-size type)
//! from C: the library's rings of a run-time layout (`shmring::runtime`),
//! whose format is a Rust `Spsc<T>`'s, `Mpmc<T>`'s or `Broadcast<T>`'s
//! for a `#[repr(C)]` `T` of that size, alignment and schema, so a C
//! program and a Rust one share a ring whichever made it. A broadcast
//! ring's consumers are its subscribers ([`shmring_typed_subscriber`]).
//!
//! The caller describes its type with a [`ShmringLayout`]; a ring of
//! another layout is refused with [`SHMRING_MISMATCH`](crate::SHMRING_MISMATCH). Values move by
//! copy, one or a batch per call, each exactly the layout's size; or, on
//! SPSC and MPMC rings, in place (`lent.rs`).

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use std::ptr::NonNull;

use shmring::{
    Error, RuntimeBroadcast, RuntimeBroadcastProducer, RuntimeConsumer, RuntimeMpmc,
    RuntimeMpmcConsumer, RuntimeMpmcProducer, RuntimeProducer, RuntimeReadSlot, RuntimeSpsc,
    RuntimeSubscriber, RuntimeWriteSlot, Schema, Start, SubscriberOptions, TypeLayout,
};

use crate::bytes::{close, handle, name, put, OutCount};
use crate::inspect::{SHMRING_KIND_BROADCAST, SHMRING_KIND_MPMC, SHMRING_KIND_SPSC};
use crate::status::{guard, Failure, SHMRING_BUSY, SHMRING_EMPTY, SHMRING_FULL, SHMRING_OK};

/// A value type as C describes it: what a Rust peer's
/// `TypeLayout::of::<T>()` says of the same `#[repr(C)]` type.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShmringLayout {
    /// The schema's name, NUL-terminated, at most 32 bytes: a Rust type's
    /// name without its module path (`Quote` for `feed::Quote`), or the
    /// name a Rust peer pins with `.schema()`.
    pub schema: *const c_char,
    /// The schema's version (a Rust type's default is 0).
    pub version: u32,
    /// `sizeof` the type.
    pub size: u32,
    /// `_Alignof` the type: a power of two up to 4096.
    pub align: u32,
}

#[derive(Debug)]
enum Ring {
    Spsc(RuntimeSpsc),
    Mpmc(RuntimeMpmc),
    Broadcast(RuntimeBroadcast),
}

/// A typed ring, as opened or created. Close with [`shmring_typed_close`].
#[derive(Debug)]
pub struct ShmringTyped {
    ring: Ring,
}

#[derive(Debug)]
pub(crate) enum Tx {
    Spsc(RuntimeProducer),
    Mpmc(RuntimeMpmcProducer),
    Broadcast(Box<RuntimeBroadcastProducer>),
}

/// A typed ring's producer. Close with [`shmring_typed_producer_close`].
#[derive(Debug)]
pub struct ShmringTypedProducer {
    /// The value lent by `shmring_typed_reserve`; declared first, so it
    /// drops before the producer it borrows is freed.
    pub(crate) lent: Option<RuntimeWriteSlot<'static>>,
    /// Owned (made by `Box::into_raw`); borrowed by `lent` while it lasts.
    tx: NonNull<Tx>,
    /// End the stream when the handle closes ([`shmring_typed_producer_end`]).
    end: bool,
    pub(crate) len: usize,
    pub(crate) name: String,
}

#[derive(Debug)]
pub(crate) enum Rx {
    Spsc(RuntimeConsumer),
    Mpmc(RuntimeMpmcConsumer),
    Subscriber(RuntimeSubscriber),
}

/// A typed ring's consumer. Close with [`shmring_typed_consumer_close`].
#[derive(Debug)]
pub struct ShmringTypedConsumer {
    /// The value lent by `shmring_typed_read`; declared first, so it drops
    /// (released) before the consumer it borrows is freed.
    pub(crate) lent: Option<RuntimeReadSlot<'static>>,
    /// Owned (made by `Box::into_raw`); borrowed by `lent` while it lasts.
    rx: NonNull<Rx>,
    pub(crate) len: usize,
    pub(crate) name: String,
}

impl ShmringTypedProducer {
    fn new(tx: Tx, len: usize, name: String) -> Self {
        ShmringTypedProducer {
            lent: None,
            tx: NonNull::from(Box::leak(Box::new(tx))),
            end: false,
            len,
            name,
        }
    }

    /// The producer, if no value is lent ([`SHMRING_BUSY`] if one is).
    pub(crate) fn tx(&mut self, function: &str) -> Result<&mut Tx, Failure> {
        self.tx_and_name(function).map(|(tx, _)| tx)
    }

    /// [`tx`](Self::tx), for a value lent from it and kept in `lent`: the
    /// borrow is not tied to the handle's.
    ///
    /// # Safety
    /// The caller keeps what it borrows from the producer in `self.lent`
    /// (or drops it within the call), and nothing else: the producer is
    /// its own allocation, which stays put, every call checks `lent`
    /// first, and `Drop` drops `lent` before it frees the producer.
    pub(crate) unsafe fn tx_for_lending<'a>(
        &mut self,
        function: &str,
    ) -> Result<&'a mut Tx, Failure> {
        self.tx(function)?;
        // SAFETY: no value is lent (checked by `tx`); the caller's contract.
        Ok(unsafe { &mut *self.tx.as_ptr() })
    }

    /// [`tx`](Self::tx), and the ring's name for errors.
    fn tx_and_name(&mut self, function: &str) -> Result<(&mut Tx, &str), Failure> {
        if self.lent.is_some() {
            return Err(Failure::new(
                SHMRING_BUSY,
                format!("{function}: a value is reserved: commit or abort it first"),
            ));
        }
        // SAFETY: owned by this handle, and no lent value borrows it
        // (checked above); the `&mut self` makes this the only access.
        Ok((unsafe { &mut *self.tx.as_ptr() }, &self.name))
    }
}

impl Drop for ShmringTypedProducer {
    fn drop(&mut self) {
        // A reserved value is given back first (SPSC: nothing published;
        // MPMC: its position skipped).
        self.lent = None;
        // SAFETY: `tx` came from `Box::into_raw` and nothing borrows it now
        // that the lent value is gone.
        let tx = unsafe { Box::from_raw(self.tx.as_ptr()) };
        if self.end {
            (*tx).end();
        }
    }
}

impl ShmringTypedConsumer {
    fn new(rx: Rx, len: usize, name: String) -> Self {
        ShmringTypedConsumer {
            lent: None,
            rx: NonNull::from(Box::leak(Box::new(rx))),
            len,
            name,
        }
    }

    /// The consumer, if no value is lent ([`SHMRING_BUSY`] if one is).
    pub(crate) fn rx(&mut self, function: &str) -> Result<&mut Rx, Failure> {
        self.rx_and_name(function).map(|(rx, _)| rx)
    }

    /// [`rx`](Self::rx), for a value lent from it and kept in `lent`: the
    /// borrow is not tied to the handle's.
    ///
    /// # Safety
    /// As for [`tx_for_lending`](ShmringTypedProducer::tx_for_lending).
    pub(crate) unsafe fn rx_for_lending<'a>(
        &mut self,
        function: &str,
    ) -> Result<&'a mut Rx, Failure> {
        self.rx(function)?;
        // SAFETY: no value is lent (checked by `rx`); the caller's contract.
        Ok(unsafe { &mut *self.rx.as_ptr() })
    }

    /// [`rx`](Self::rx), and the ring's name for errors.
    fn rx_and_name(&mut self, function: &str) -> Result<(&mut Rx, &str), Failure> {
        if self.lent.is_some() {
            return Err(Failure::new(
                SHMRING_BUSY,
                format!("{function}: a value is lent: release it first"),
            ));
        }
        // SAFETY: owned by this handle, and no lent value borrows it
        // (checked above); the `&mut self` makes this the only access.
        Ok((unsafe { &mut *self.rx.as_ptr() }, &self.name))
    }

    /// The subscriber, for calls that read its counts: `None` while a
    /// value is lent (only SPSC and MPMC consumers lend, and a lent SPSC
    /// value holds the consumer's `&mut`, which no other reference may
    /// touch meanwhile).
    fn subscriber(&self) -> Option<&RuntimeSubscriber> {
        if self.lent.is_some() {
            return None;
        }
        // SAFETY: owned by this handle, and nothing borrows it (no value
        // is lent, checked above); `&self` keeps it so for this borrow.
        match unsafe { &*self.rx.as_ptr() } {
            Rx::Subscriber(rx) => Some(rx),
            _ => None,
        }
    }
}

impl Drop for ShmringTypedConsumer {
    fn drop(&mut self) {
        // A lent value is released first.
        self.lent = None;
        // SAFETY: `rx` came from `Box::into_raw` and nothing borrows it now
        // that the lent value is gone.
        drop(unsafe { Box::from_raw(self.rx.as_ptr()) });
    }
}

impl Tx {
    fn push(&mut self, value: &[u8], timeout: Duration) -> Result<(), Error> {
        match self {
            Tx::Spsc(tx) => tx.push_timeout(value, timeout),
            Tx::Mpmc(tx) => tx.push_timeout(value, timeout),
            Tx::Broadcast(tx) => tx.push_timeout(value, timeout),
        }
    }

    /// End the stream: consumers take what was pushed, then `Closed`.
    fn end(self) {
        match self {
            Tx::Spsc(tx) => tx.close(),
            Tx::Mpmc(tx) => tx.close(),
            Tx::Broadcast(mut tx) => tx.close(),
        }
    }

    /// Push whole values while there is room now; how many went.
    fn try_push_many(&mut self, values: &[u8]) -> Result<usize, Error> {
        match self {
            Tx::Spsc(tx) => tx.try_push_many(values),
            Tx::Mpmc(tx) => tx.try_push_many(values),
            Tx::Broadcast(tx) => tx.try_push_many(values),
        }
    }
}

impl Rx {
    /// Pop the values there now into `out`; how many.
    fn try_pop_many(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        match self {
            Rx::Spsc(rx) => rx.try_pop_many(out),
            Rx::Mpmc(rx) => rx.try_pop_many(out),
            Rx::Subscriber(rx) => rx.try_pop_many(out),
        }
    }

    /// Pop into `out`: whether there was a value (a zero timeout), or an
    /// error (a longer one that ended without).
    fn pop(&mut self, out: &mut [u8], timeout: Duration) -> Result<bool, Error> {
        if timeout.is_zero() {
            return match self {
                Rx::Spsc(rx) => rx.try_pop(out),
                Rx::Mpmc(rx) => rx.try_pop(out),
                Rx::Subscriber(rx) => rx.try_pop(out),
            };
        }
        match self {
            Rx::Spsc(rx) => rx.pop_timeout(out, timeout),
            Rx::Mpmc(rx) => rx.pop_timeout(out, timeout),
            Rx::Subscriber(rx) => rx.pop_timeout(out, timeout),
        }
        .map(|()| true)
    }
}

/// The layout at `layout`, checked.
///
/// # Safety
/// `layout` is NULL or readable, its `schema` NULL or a NUL-terminated
/// string.
unsafe fn layout(layout: *const ShmringLayout, function: &str) -> Result<TypeLayout, Failure> {
    // SAFETY: the caller's contract above.
    let given = unsafe { layout.as_ref() }
        .ok_or_else(|| Failure::invalid(function, "the layout is NULL"))?;
    if given.schema.is_null() {
        return Err(Failure::invalid(function, "the layout's schema is NULL"));
    }
    // SAFETY: non-NULL (checked), NUL-terminated (the contract).
    let schema = unsafe { name(given.schema, function)? };
    if given.size == 0 {
        return Err(Failure::invalid(function, "the layout's size is 0"));
    }
    let schema = Schema::new(schema, given.version)
        .map_err(|e| Failure::invalid(function, &format!("the layout's schema: {e}")))?;
    Ok(TypeLayout::new(schema, given.size, given.align)?)
}

/// How a typed ring is made or opened.
enum How {
    Create(usize),
    Open,
    OpenOrCreate(usize),
    Wait(Duration),
}

/// Make or open typed ring `name` of `kind` and `layout`, handing it out
/// through `out`.
///
/// # Safety
/// As [`shmring_typed_create`]'s arguments.
unsafe fn hand_out(
    name_ptr: *const c_char,
    kind: u32,
    layout_ptr: *const ShmringLayout,
    how: How,
    out: *mut *mut ShmringTyped,
    function: &str,
) -> Result<c_int, Failure> {
    if out.is_null() {
        return Err(Failure::invalid(function, "out is NULL"));
    }
    // SAFETY: the caller's contract.
    let (name, layout) = unsafe {
        (
            name(name_ptr, function)?,
            self::layout(layout_ptr, function)?,
        )
    };
    let ring = match kind {
        SHMRING_KIND_SPSC => Ring::Spsc(match how {
            How::Create(cap) => RuntimeSpsc::create(name, layout, cap)?,
            How::Open => RuntimeSpsc::open(name, layout)?,
            How::OpenOrCreate(cap) => RuntimeSpsc::open_or_create(name, layout, cap)?,
            How::Wait(t) => RuntimeSpsc::open_timeout(name, layout, t)?,
        }),
        SHMRING_KIND_MPMC => Ring::Mpmc(match how {
            How::Create(cap) => RuntimeMpmc::create(name, layout, cap)?,
            How::Open => RuntimeMpmc::open(name, layout)?,
            How::OpenOrCreate(cap) => RuntimeMpmc::open_or_create(name, layout, cap)?,
            How::Wait(t) => RuntimeMpmc::open_timeout(name, layout, t)?,
        }),
        SHMRING_KIND_BROADCAST => Ring::Broadcast(match how {
            How::Create(cap) => RuntimeBroadcast::create(name, layout, cap)?,
            How::Open => RuntimeBroadcast::open(name, layout)?,
            How::OpenOrCreate(cap) => RuntimeBroadcast::open_or_create(name, layout, cap)?,
            How::Wait(t) => RuntimeBroadcast::open_timeout(name, layout, t)?,
        }),
        _ => {
            return Err(Failure::invalid(
                function,
                "kind is not SHMRING_KIND_SPSC, SHMRING_KIND_MPMC or SHMRING_KIND_BROADCAST",
            ))
        }
    };
    // SAFETY: non-NULL (checked); writable by the caller's contract.
    unsafe {
        put(
            out,
            Box::into_raw(Box::new(ShmringTyped { ring })),
            function,
        )?
    };
    Ok(SHMRING_OK)
}

/// Create a typed ring named `name`: `kind` is [`SHMRING_KIND_SPSC`],
/// [`SHMRING_KIND_MPMC`] or [`SHMRING_KIND_BROADCAST`], of `capacity` values (rounded up to a power of
/// two) of `*layout`, mode 0600; [`SHMRING_ALREADY_EXISTS`](crate::SHMRING_ALREADY_EXISTS)
/// if there is one. The handle goes to `*out`. A Rust process opens it as
/// an `Spsc<T>`, `Mpmc<T>` or `Broadcast<T>` of a `#[repr(C)]` `T` of
/// that layout.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `layout` is NULL or
/// readable, its `schema` NULL or a NUL-terminated string; `out` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_create(
    name: *const c_char,
    kind: u32,
    layout: *const ShmringLayout,
    capacity: usize,
    out: *mut *mut ShmringTyped,
) -> c_int {
    const F: &str = "shmring_typed_create";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(name, kind, layout, How::Create(capacity), out, F)
    })
}

/// Open the typed ring named `name`, of `kind` and `*layout`;
/// [`SHMRING_NOT_FOUND`](crate::SHMRING_NOT_FOUND) if there is none,
/// [`SHMRING_MISMATCH`](crate::SHMRING_MISMATCH) if it is of another kind
/// or layout (the message says which).
///
/// # Safety
/// As [`shmring_typed_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_open(
    name: *const c_char,
    kind: u32,
    layout: *const ShmringLayout,
    out: *mut *mut ShmringTyped,
) -> c_int {
    const F: &str = "shmring_typed_open";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(name, kind, layout, How::Open, out, F)
    })
}

/// Open the typed ring named `name`, or create it with `capacity` values
/// if there is none (either side may start first).
///
/// # Safety
/// As [`shmring_typed_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_open_or_create(
    name: *const c_char,
    kind: u32,
    layout: *const ShmringLayout,
    capacity: usize,
    out: *mut *mut ShmringTyped,
) -> c_int {
    const F: &str = "shmring_typed_open_or_create";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(name, kind, layout, How::OpenOrCreate(capacity), out, F)
    })
}

/// Open the typed ring named `name`, waiting up to `timeout_ns` for its
/// creator to make it.
///
/// # Safety
/// As [`shmring_typed_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_open_timeout(
    name: *const c_char,
    kind: u32,
    layout: *const ShmringLayout,
    timeout_ns: u64,
    out: *mut *mut ShmringTyped,
) -> c_int {
    const F: &str = "shmring_typed_open_timeout";
    let wait = How::Wait(Duration::from_nanos(timeout_ns));
    // SAFETY: the caller's contract above.
    guard(F, || unsafe { hand_out(name, kind, layout, wait, out, F) })
}

/// Close a typed ring handle (NULL: nothing). Producers and consumers
/// made from it stay usable until closed themselves.
///
/// # Safety
/// `ring` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_close(ring: *mut ShmringTyped) {
    if !ring.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        close(unsafe { Box::from_raw(ring) });
    }
}

/// The size of one value of `ring`, in bytes (0 for NULL).
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_value_len(ring: *const ShmringTyped) -> usize {
    // SAFETY: the caller's contract above.
    match unsafe { ring.as_ref() } {
        Some(r) => value_len(r),
        None => 0,
    }
}

/// Whether a live process holds a producer of `ring` (0 or 1; 0 for
/// NULL): an SPSC ring's producer role, any of an MPMC ring's producers.
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_has_producer(ring: *const ShmringTyped) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { ring.as_ref() }.is_some_and(|r| match &r.ring {
        Ring::Spsc(r) => r.has_producer(),
        Ring::Mpmc(r) => r.has_producer(),
        Ring::Broadcast(r) => r.has_producer(),
    }) as c_int
}

/// Whether a live process holds a consumer of `ring` (0 or 1; 0 for
/// NULL): a broadcast ring's, any live subscriber.
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_has_consumer(ring: *const ShmringTyped) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { ring.as_ref() }.is_some_and(|r| match &r.ring {
        Ring::Spsc(r) => r.has_consumer(),
        Ring::Mpmc(r) => r.has_consumer(),
        Ring::Broadcast(r) => r.has_consumer(),
    }) as c_int
}

fn ring_name(ring: &ShmringTyped) -> &str {
    match &ring.ring {
        Ring::Spsc(r) => r.name(),
        Ring::Mpmc(r) => r.name(),
        Ring::Broadcast(r) => r.name(),
    }
}

/// `e` as a failure of `function` on ring `name`, said in its message if
/// the error's own text does not (a wrong length names neither).
pub(crate) fn named(e: Error, function: &str, name: &str) -> Failure {
    let f = Failure::from(e);
    match f.message.contains(name) {
        true => Failure::new(f.code, format!("{function}: {}", f.message)),
        false => Failure::new(
            f.code,
            format!("{function} on ring {name:?}: {}", f.message),
        ),
    }
}

/// Repair what dead processes left in `ring`, for callers that only poll
/// (a blocked call repairs on its own): an MPMC ring's positions a dead
/// producer claimed and never published are skipped, values a dead
/// consumer took are handed on; how many (0 for an SPSC or broadcast
/// ring, whose successor handles resume on their own, and for NULL).
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_recover(ring: *const ShmringTyped) -> u64 {
    // SAFETY: the caller's contract above.
    let Some(ring) = (unsafe { ring.as_ref() }) else {
        return 0;
    };
    let recover = || match &ring.ring {
        Ring::Spsc(_) | Ring::Broadcast(_) => 0,
        Ring::Mpmc(r) => r.recover(),
    };
    // No panic crosses into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(recover)).unwrap_or(0)
}

fn value_len(ring: &ShmringTyped) -> usize {
    match &ring.ring {
        Ring::Spsc(r) => r.layout().size as usize,
        Ring::Mpmc(r) => r.layout().size as usize,
        Ring::Broadcast(r) => r.layout().size as usize,
    }
}

/// Make a handle of `ring` with `make(ring, its value length, its name)`,
/// handed out through `out`.
///
/// # Safety
/// `ring` is NULL or a live handle; `out` is NULL or writable.
unsafe fn hand_out_handle<H>(
    ring: *mut ShmringTyped,
    out: *mut *mut H,
    function: &str,
    make: impl FnOnce(&ShmringTyped, usize, String) -> Result<H, Failure>,
) -> c_int {
    guard(function, || {
        // SAFETY: the caller's contract above.
        let ring = unsafe { handle(ring, function)? };
        if out.is_null() {
            return Err(Failure::invalid(function, "out is NULL"));
        }
        let made = make(ring, value_len(ring), ring_name(ring).to_owned())?;
        // SAFETY: non-NULL (checked); writable by the caller's contract.
        unsafe { put(out, Box::into_raw(Box::new(made)), function)? };
        Ok(SHMRING_OK)
    })
}

/// Take `ring`'s producer role (an SPSC or broadcast ring:
/// [`SHMRING_ROLE_TAKEN`](crate::SHMRING_ROLE_TAKEN) while a live handle
/// holds it; an MPMC ring has many producers). The handle goes to `*out`.
///
/// # Safety
/// `ring` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_producer(
    ring: *mut ShmringTyped,
    out: *mut *mut ShmringTypedProducer,
) -> c_int {
    let make = |ring: &ShmringTyped, len, name| {
        let tx = match &ring.ring {
            Ring::Spsc(r) => Tx::Spsc(r.producer()?),
            Ring::Mpmc(r) => Tx::Mpmc(r.producer()?),
            Ring::Broadcast(r) => Tx::Broadcast(Box::new(r.producer()?)),
        };
        Ok(ShmringTypedProducer::new(tx, len, name))
    };
    // SAFETY: the caller's contract above.
    unsafe { hand_out_handle(ring, out, "shmring_typed_producer", make) }
}

/// Take `ring`'s consumer role (an SPSC ring: one consumer; an MPMC ring
/// has many, each value reaching one; a broadcast ring: a lossless
/// subscriber from the next value, as [`shmring_typed_subscriber`] with
/// NULL options). The handle goes to `*out`.
///
/// # Safety
/// `ring` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_consumer(
    ring: *mut ShmringTyped,
    out: *mut *mut ShmringTypedConsumer,
) -> c_int {
    let make = |ring: &ShmringTyped, len, name| {
        let rx = match &ring.ring {
            Ring::Spsc(r) => Rx::Spsc(r.consumer()?),
            Ring::Mpmc(r) => Rx::Mpmc(r.consumer()?),
            Ring::Broadcast(r) => Rx::Subscriber(r.subscriber()?),
        };
        Ok(ShmringTypedConsumer::new(rx, len, name))
    };
    // SAFETY: the caller's contract above.
    unsafe { hand_out_handle(ring, out, "shmring_typed_consumer", make) }
}

/// [`ShmringSubscriberOptions::policy`]: the producer waits for this
/// subscriber (unless it holds the producer up past its bounds).
pub const SHMRING_LOSSLESS: u32 = 0;
/// [`ShmringSubscriberOptions::policy`]: the producer never waits for
/// this subscriber; it skips what was overwritten and counts it.
pub const SHMRING_LOSSY: u32 = 1;
/// [`ShmringSubscriberOptions::start`]: at the next value published.
pub const SHMRING_START_NEXT: u32 = 0;
/// [`ShmringSubscriberOptions::start`]: at the oldest value still in the
/// ring.
pub const SHMRING_START_OLDEST: u32 = 1;
/// [`ShmringSubscriberOptions::start`]: at position `start_at` (values
/// published before it).
pub const SHMRING_START_AT: u32 = 2;

/// How a broadcast subscriber reads (Rust's `SubscriberOptions`). All
/// zeros is the default: lossless, from the next value, anonymous, made
/// lossy after holding the producer up for 1 s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShmringSubscriberOptions {
    /// [`SHMRING_LOSSLESS`] or [`SHMRING_LOSSY`].
    pub policy: u32,
    /// [`SHMRING_START_NEXT`], [`SHMRING_START_OLDEST`] or
    /// [`SHMRING_START_AT`]; a subscriber resuming an identity starts
    /// where the last one of it left off instead.
    pub start: u32,
    /// The position to start at, for [`SHMRING_START_AT`].
    pub start_at: u64,
    /// The identity to resume under, if `has_identity` is 1.
    pub identity: u64,
    /// 1: resume under `identity` (and leave a position for the next
    /// subscriber of it); 0: anonymous.
    pub has_identity: u32,
    /// 0 (kept for later versions).
    pub reserved: u32,
    /// How long a lossless subscriber may hold the producer up before it
    /// is made lossy, in nanoseconds: 0 is the default (1 s),
    /// `UINT64_MAX` never.
    pub demote_after_ns: u64,
    /// How many values a lossless subscriber may fall behind before it is
    /// made lossy at once: 0 is no such bound.
    pub demote_after_lag: u64,
}

impl ShmringSubscriberOptions {
    fn to_rust(self, function: &str) -> Result<SubscriberOptions, Failure> {
        let opts = match self.policy {
            SHMRING_LOSSLESS => SubscriberOptions::lossless(),
            SHMRING_LOSSY => SubscriberOptions::lossy(),
            _ => {
                return Err(Failure::invalid(
                    function,
                    "policy is not SHMRING_LOSSLESS or SHMRING_LOSSY",
                ))
            }
        };
        let start = match self.start {
            SHMRING_START_NEXT => Start::Next,
            SHMRING_START_OLDEST => Start::Oldest,
            SHMRING_START_AT => Start::At(self.start_at),
            _ => {
                return Err(Failure::invalid(
                    function,
                    "start is not SHMRING_START_NEXT, _OLDEST or _AT",
                ))
            }
        };
        let mut opts = opts.start(start);
        opts = match self.has_identity {
            0 => opts,
            1 => opts.identity(self.identity),
            _ => return Err(Failure::invalid(function, "has_identity is not 0 or 1")),
        };
        if self.reserved != 0 {
            return Err(Failure::invalid(function, "reserved is not 0"));
        }
        opts = match self.demote_after_ns {
            0 => opts,
            u64::MAX => opts.demote_after(None),
            ns => opts.demote_after(Some(Duration::from_nanos(ns))),
        };
        Ok(opts.demote_after_lag((self.demote_after_lag > 0).then_some(self.demote_after_lag)))
    }
}

/// A subscriber of broadcast ring `ring`, reading as `*opts` says (NULL:
/// the defaults, as all zeros): it reads every value from where it
/// starts, at its own pace, through the consumer calls
/// ([`shmring_typed_try_pop`], [`shmring_typed_pop_timeout`],
/// [`shmring_typed_pop_many`]). [`SHMRING_MISMATCH`](crate::SHMRING_MISMATCH)
/// for a ring of another kind; [`SHMRING_ROLE_TAKEN`](crate::SHMRING_ROLE_TAKEN)
/// when every entry of the ring's table (64) is held, or the identity is.
/// The handle goes to `*out`; close it with [`shmring_typed_consumer_close`].
///
/// # Safety
/// `ring` is NULL or a live handle; `opts` is NULL or readable; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_subscriber(
    ring: *mut ShmringTyped,
    opts: *const ShmringSubscriberOptions,
    out: *mut *mut ShmringTypedConsumer,
) -> c_int {
    const F: &str = "shmring_typed_subscriber";
    // SAFETY: the caller's contract above.
    let given = unsafe { opts.as_ref() }.copied().unwrap_or_default();
    let make = |ring: &ShmringTyped, len, name: String| {
        let Ring::Broadcast(r) = &ring.ring else {
            return Err(Failure::new(
                crate::SHMRING_MISMATCH,
                format!("{F}: ring {name:?} is not a broadcast ring"),
            ));
        };
        let rx = Rx::Subscriber(r.subscriber_with(&given.to_rust(F)?)?);
        Ok(ShmringTypedConsumer::new(rx, len, name))
    };
    // SAFETY: the caller's contract above.
    unsafe { hand_out_handle(ring, out, F, make) }
}

/// Values subscriber `rx` missed: overwritten before it read them (a
/// lossy subscriber, or one made lossy, or one that started at a position
/// already overwritten). 0 for a consumer of another kind of ring, and
/// for NULL.
///
/// # Safety
/// `rx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_missed(rx: *const ShmringTypedConsumer) -> u64 {
    // SAFETY: the caller's contract above.
    unsafe { rx.as_ref() }
        .and_then(|rx| rx.subscriber())
        .map_or(0, |rx| rx.missed())
}

/// Whether the producer made subscriber `rx` lossy, held up past its
/// bounds (0 or 1; 0 for a consumer of another kind of ring, and for
/// NULL).
///
/// # Safety
/// `rx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_is_demoted(rx: *const ShmringTypedConsumer) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { rx.as_ref() }
        .and_then(|rx| rx.subscriber())
        .is_some_and(|rx| rx.is_demoted()) as c_int
}

/// End the stream and close producer `tx` (NULL: nothing): consumers take
/// every value pushed before it, then [`SHMRING_CLOSED`](crate::SHMRING_CLOSED)
/// from their waiting calls. A new producer reopens the ring.
///
/// # Safety
/// `tx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_producer_end(tx: *mut ShmringTypedProducer) {
    if !tx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let mut handle = unsafe { Box::from_raw(tx) };
        handle.end = true;
        close(handle);
    }
}

/// Close a producer (NULL: nothing), giving its role back.
///
/// # Safety
/// `tx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_producer_close(tx: *mut ShmringTypedProducer) {
    if !tx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        close(unsafe { Box::from_raw(tx) });
    }
}

/// Close a consumer (NULL: nothing), giving its role back.
///
/// # Safety
/// `rx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_consumer_close(rx: *mut ShmringTypedConsumer) {
    if !rx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        close(unsafe { Box::from_raw(rx) });
    }
}

/// `len` readable bytes at `data` (NULL allowed for none).
///
/// # Safety
/// A non-NULL `data` points to `len` readable bytes.
unsafe fn readable<'a>(
    data: *const c_void,
    len: usize,
    function: &str,
) -> Result<&'a [u8], Failure> {
    match (data.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Failure::invalid(function, "the value is NULL")),
        // SAFETY: the caller's contract above.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }),
    }
}

/// `len` writable bytes at `data` (NULL allowed for none).
///
/// # Safety
/// A non-NULL `data` points to `len` writable bytes.
unsafe fn writable<'a>(
    data: *mut c_void,
    len: usize,
    function: &str,
) -> Result<&'a mut [u8], Failure> {
    match (data.is_null(), len) {
        (_, 0) => Ok(&mut []),
        (true, _) => Err(Failure::invalid(function, "the buffer is NULL")),
        // SAFETY: the caller's contract above.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) }),
    }
}

/// A push's status: OK, or FULL for no room now.
fn pushed(result: Result<(), Error>) -> Result<c_int, Failure> {
    match result {
        Ok(()) => Ok(SHMRING_OK),
        Err(Error::Full) => Ok(SHMRING_FULL),
        Err(e) => Err(e.into()),
    }
}

/// Copy the value at `value` (`len` bytes: the layout's size, else
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT)) in, if
/// there is room now; [`SHMRING_FULL`] if not.
///
/// # Safety
/// `tx` is NULL or a live handle; `value` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_try_push(
    tx: *mut ShmringTypedProducer,
    value: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { push(tx, value, len, 0, "shmring_typed_try_push") }
}

/// Copy the value at `value` in, waiting up to `timeout_ns` for room
/// ([`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came; 0: as
/// [`shmring_typed_try_push`]).
///
/// # Safety
/// As [`shmring_typed_try_push`].
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_push_timeout(
    tx: *mut ShmringTypedProducer,
    value: *const c_void,
    len: usize,
    timeout_ns: u64,
) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { push(tx, value, len, timeout_ns, "shmring_typed_push_timeout") }
}

/// # Safety
/// As [`shmring_typed_try_push`].
unsafe fn push(
    tx: *mut ShmringTypedProducer,
    value: *const c_void,
    len: usize,
    timeout_ns: u64,
    function: &str,
) -> c_int {
    guard(function, || {
        // SAFETY: the caller's contract.
        let tx = unsafe { handle(tx, function)? };
        // SAFETY: the caller's contract.
        let value = unsafe { readable(value, len, function)? };
        let result = tx
            .tx(function)?
            .push(value, Duration::from_nanos(timeout_ns));
        match result {
            Err(e @ Error::Full) | Err(e @ Error::Timeout { .. }) => pushed(Err(e)),
            Err(e) => Err(named(e, function, &tx.name)),
            Ok(()) => pushed(Ok(())),
        }
    })
}

/// Copy the oldest value into `out` (`len` bytes: the layout's size, else
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT)) and
/// release it, if there is one now; [`SHMRING_EMPTY`] if not.
///
/// # Safety
/// `rx` is NULL or a live handle; `out` is NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_try_pop(
    rx: *mut ShmringTypedConsumer,
    out: *mut c_void,
    len: usize,
) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { pop(rx, out, len, 0, "shmring_typed_try_pop") }
}

/// Copy the oldest value into `out`, waiting up to `timeout_ns` for one
/// ([`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came;
/// [`SHMRING_CLOSED`](crate::SHMRING_CLOSED) once a producer closed the
/// ring and every value was popped; 0: as [`shmring_typed_try_pop`]).
///
/// # Safety
/// As [`shmring_typed_try_pop`].
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_pop_timeout(
    rx: *mut ShmringTypedConsumer,
    out: *mut c_void,
    len: usize,
    timeout_ns: u64,
) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { pop(rx, out, len, timeout_ns, "shmring_typed_pop_timeout") }
}

/// # Safety
/// As [`shmring_typed_try_pop`].
unsafe fn pop(
    rx: *mut ShmringTypedConsumer,
    out: *mut c_void,
    len: usize,
    timeout_ns: u64,
    function: &str,
) -> c_int {
    guard(function, || {
        // SAFETY: the caller's contract.
        let rx = unsafe { handle(rx, function)? };
        // SAFETY: the caller's contract.
        let out = unsafe { writable(out, len, function)? };
        match rx.rx(function)?.pop(out, Duration::from_nanos(timeout_ns)) {
            Ok(true) => Ok(SHMRING_OK),
            Ok(false) => Ok(SHMRING_EMPTY),
            Err(e) => Err(named(e, function, &rx.name)),
        }
    })
}

/// Push `count` values at once, laid out one after another at `values`
/// (`count` times the layout's size): waits up to `timeout_ns` for room
/// for the first (0: not at all), then pushes while there is room now,
/// in order; how many went goes to `*pushed` (whatever the status).
/// [`SHMRING_FULL`] (0 pushed) if there was no room now for the first,
/// [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came in time. An
/// error after the first ends the batch with [`SHMRING_OK`] and the count
/// of those pushed; the next call reports it.
///
/// # Safety
/// `tx` is NULL or a live handle; `values` is NULL or `count` values'
/// readable bytes; `pushed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_push_many(
    tx: *mut ShmringTypedProducer,
    values: *const c_void,
    count: usize,
    timeout_ns: u64,
    pushed: *mut usize,
) -> c_int {
    const F: &str = "shmring_typed_push_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let pushed = unsafe { OutCount::zeroed(pushed, F)? };
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        tx.tx(F)?; // BUSY while a value is reserved, even for no values
        let total = count
            .checked_mul(tx.len)
            .ok_or_else(|| Failure::invalid(F, "count values are more than SIZE_MAX bytes"))?;
        // SAFETY: the caller's contract above.
        let values = unsafe { readable(values, total, F)? };
        if count == 0 {
            return Ok(SHMRING_OK);
        }
        // The first may wait; the rest go in one batch (an SPSC ring: one
        // index store and one wakeup for all).
        let (first, rest) = values.split_at(tx.len);
        let (producer, name) = tx.tx_and_name(F)?;
        match producer.push(first, Duration::from_nanos(timeout_ns)) {
            Ok(()) => {}
            Err(e @ Error::Full) => return self::pushed(Err(e)),
            Err(e) => return Err(named(e, F, name)),
        }
        // An error after the first ends the batch; the next call reports it.
        let more = producer.try_push_many(rest).unwrap_or(0);
        pushed.set(1 + more);
        Ok(SHMRING_OK)
    })
}

/// Pop up to `max` values at once into `out` (room for `max` values, one
/// after another): waits up to `timeout_ns` for the first (0: not at all,
/// [`SHMRING_EMPTY`] if there is none; [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT)
/// if none came in time), then takes those there now; how many goes to
/// `*count` (`max` is at least 1). An error after the first ends the
/// batch with [`SHMRING_OK`] and what was taken; the next call reports it.
///
/// # Safety
/// `rx` is NULL or a live handle; `out` is NULL or room for `max`
/// values; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_pop_many(
    rx: *mut ShmringTypedConsumer,
    out: *mut c_void,
    max: usize,
    count: *mut usize,
    timeout_ns: u64,
) -> c_int {
    const F: &str = "shmring_typed_pop_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let count = unsafe { OutCount::zeroed(count, F)? };
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        if max == 0 {
            return Err(Failure::invalid(F, "max is 0"));
        }
        let total = max
            .checked_mul(rx.len)
            .ok_or_else(|| Failure::invalid(F, "max values are more than SIZE_MAX bytes"))?;
        // SAFETY: the caller's contract above.
        let out = unsafe { writable(out, total, F)? };
        // The first may wait; the rest come in one batch (an SPSC ring:
        // one index store and one wakeup for all).
        let (first, rest) = out.split_at_mut(rx.len);
        let (consumer, name) = rx.rx_and_name(F)?;
        match consumer.pop(first, Duration::from_nanos(timeout_ns)) {
            Ok(true) => {}
            Ok(false) => return Ok(SHMRING_EMPTY),
            Err(e) => return Err(named(e, F, name)),
        }
        // An error after the first ends the batch; the next call reports it.
        let more = consumer.try_pop_many(rest).unwrap_or(0);
        count.set(1 + more);
        Ok(SHMRING_OK)
    })
}

//! Byte rings (variable-length messages) from C: the ring, its producer
//! and its consumer, copying calls and in-place (zero-copy) ones.
//!
//! A producer lending a reservation holds the `Grant` that borrows its
//! `ByteProducer`; a consumer lending a message holds the `Message` that
//! borrows its `ByteConsumer`. Both borrowers live in the handle beside
//! what they borrow, which is therefore kept behind a raw pointer to its
//! own allocation: nothing else touches it while the loan lasts (every
//! call checks the loan first), and the loan ends before it is freed.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;
use std::time::Duration;

use shmring::{ByteConsumer, ByteProducer, ByteRing, Grant, Message};

use crate::status::{
    guard, Failure, SHMRING_BUFFER_TOO_SMALL, SHMRING_BUSY, SHMRING_EMPTY, SHMRING_FULL, SHMRING_OK,
};

/// A byte ring, as opened or created. Close with [`shmring_bytes_close`].
#[derive(Debug)]
pub struct ShmringBytes {
    ring: ByteRing,
}

/// A byte ring's producer. Close with [`shmring_bytes_producer_close`].
#[derive(Debug)]
pub struct ShmringBytesProducer {
    /// The reservation lent to the caller; declared first, so it drops
    /// before the producer it borrows is freed.
    grant: Option<Grant<'static>>,
    /// Owned (made by `Box::into_raw`); borrowed by `grant` while it lasts.
    tx: NonNull<ByteProducer>,
    /// Close the ring when the handle closes ([`shmring_bytes_producer_end`]).
    end: bool,
}

/// A byte ring's consumer. Close with [`shmring_bytes_consumer_close`].
#[derive(Debug)]
pub struct ShmringBytesConsumer {
    /// The message lent to the caller by `shmring_bytes_read`; declared
    /// first, so it drops before the consumer it borrows is freed.
    msg: Option<Message<'static>>,
    /// Where a copying receive copies a message first (volatile reads:
    /// each byte of shared memory read once), kept for its capacity.
    scratch: Vec<u8>,
    /// Owned (made by `Box::into_raw`); borrowed by `msg` while it lasts.
    rx: NonNull<ByteConsumer>,
}

impl ShmringBytes {
    pub(crate) fn ring(&self) -> &ByteRing {
        &self.ring
    }
}

impl Drop for ShmringBytesProducer {
    fn drop(&mut self) {
        // An open reservation is given back first (becomes padding).
        self.grant = None;
        // SAFETY: `tx` came from `Box::into_raw` and nothing borrows it
        // now that the grant is gone.
        let tx = unsafe { Box::from_raw(self.tx.as_ptr()) };
        if self.end {
            tx.close();
        }
    }
}

impl Drop for ShmringBytesConsumer {
    fn drop(&mut self) {
        // A lent message is released first.
        self.msg = None;
        // SAFETY: `rx` came from `Box::into_raw` and nothing borrows it
        // now that the message is gone.
        drop(unsafe { Box::from_raw(self.rx.as_ptr()) });
    }
}

impl ShmringBytesProducer {
    /// The producer, if no reservation is lent.
    fn tx(&mut self, function: &str) -> Result<&mut ByteProducer, Failure> {
        if self.grant.is_some() {
            return Err(Failure::new(
                SHMRING_BUSY,
                format!("{function}: a reservation is open: commit or abort it first"),
            ));
        }
        // SAFETY: owned by this handle, and no grant borrows it (checked
        // above); the `&mut self` makes this the only access.
        Ok(unsafe { &mut *self.tx.as_ptr() })
    }
}

impl ShmringBytesConsumer {
    /// The next message, waiting up to `wait` (none or zero: not at all);
    /// `None` if there is none now.
    fn take(
        &mut self,
        wait: Option<Duration>,
        function: &str,
    ) -> Result<Option<Message<'static>>, Failure> {
        if self.msg.is_some() {
            return Err(Failure::new(
                SHMRING_BUSY,
                format!("{function}: a message is lent: release it first"),
            ));
        }
        // SAFETY: owned by this handle, and no message borrows it (none is
        // lent); the `&mut self` makes this the only access.
        let consumer = unsafe { &mut *self.rx.as_ptr() };
        let msg = match wait {
            Some(t) if !t.is_zero() => consumer.recv_timeout(t)?,
            _ => match consumer.try_recv()? {
                Some(m) => m,
                None => return Ok(None),
            },
        };
        // SAFETY: the message borrows the consumer behind `self.rx`, its
        // own allocation, which stays put and is touched by nothing else
        // while the message lives (the caller drops it within the call, or
        // lends it through `self.msg`, which every call checks first), and
        // which is freed only after `self.msg` is dropped (see `Drop`).
        Ok(Some(unsafe {
            std::mem::transmute::<Message<'_>, Message<'static>>(msg)
        }))
    }
}

/// The handle behind `ptr`, or an invalid-argument failure for NULL.
///
/// # Safety
/// A non-NULL `ptr` is a live handle of this type, used by no other thread
/// during the call (the ABI's contract).
pub(crate) unsafe fn handle<'a, T>(ptr: *mut T, function: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller's contract above.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(function, "the handle is NULL"))
}

/// The name behind `name`.
///
/// # Safety
/// A non-NULL `name` points to a NUL-terminated string.
pub(crate) unsafe fn name<'a>(name: *const c_char, function: &str) -> Result<&'a str, Failure> {
    if name.is_null() {
        return Err(Failure::invalid(function, "the name is NULL"));
    }
    // SAFETY: the caller's contract above.
    unsafe { CStr::from_ptr(name) }
        .to_str()
        .map_err(|_| Failure::invalid(function, "the name is not UTF-8"))
}

/// The `len` bytes at `data` (NULL allowed for none), for a message of at
/// most `max` bytes: a longer one is refused before any slice is made.
///
/// # Safety
/// A non-NULL `data` points to `len` readable bytes.
pub(crate) unsafe fn bytes<'a>(
    data: *const u8,
    len: usize,
    max: usize,
    function: &str,
) -> Result<&'a [u8], Failure> {
    if len > max {
        return Err(shmring::SendError::MessageTooLarge { len, max }.into());
    }
    match (data.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Failure::invalid(function, "the data is NULL")),
        // SAFETY: the caller's contract above.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(data, len) }),
    }
}

/// Store `value` through `out`, which must not be NULL.
///
/// # Safety
/// A non-NULL `out` is valid for a write of a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, function: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(function, "an out-pointer is NULL"));
    }
    // SAFETY: the caller's contract above.
    unsafe { out.write(value) };
    Ok(())
}

fn timeout(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

/// Reserve `len` bytes, waiting up to `ns` nanoseconds (0: not at all);
/// `None` if there is no room now.
fn reserve(tx: &mut ByteProducer, len: usize, ns: u64) -> Result<Option<Grant<'_>>, Failure> {
    let reserved = match ns {
        0 => tx.try_reserve(len),
        ns => tx.reserve_timeout(len, timeout(ns)),
    };
    match reserved {
        Ok(grant) => Ok(Some(grant)),
        Err(shmring::SendError::Full) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A send's status: no room now is [`SHMRING_FULL`], not an error.
fn sent(result: Result<(), shmring::SendError>) -> Result<c_int, Failure> {
    match result {
        Ok(()) => Ok(SHMRING_OK),
        Err(shmring::SendError::Full) => Ok(SHMRING_FULL),
        Err(e) => Err(e.into()),
    }
}

/// Drop a handle, a panic in its `Drop` caught here: it must not cross
/// into C (the handle is gone either way).
pub(crate) fn close<T>(handle: Box<T>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(handle)));
}

/// Hand a new ring handle out through `out`.
///
/// # Safety
/// As [`put`].
unsafe fn hand_out(
    make: impl FnOnce() -> Result<ByteRing, Failure>,
    out: *mut *mut ShmringBytes,
    function: &str,
) -> Result<c_int, Failure> {
    // Checked first: nothing is made (or waited for) for a call that
    // could not hand it out.
    if out.is_null() {
        return Err(Failure::invalid(function, "out is NULL"));
    }
    let ring = Box::new(ShmringBytes { ring: make()? });
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { put(out, Box::into_raw(ring), function)? };
    Ok(SHMRING_OK)
}

/// Create a byte ring named `name` with `capacity` bytes of data area
/// (rounded up to a power of two), mode 0600; [`SHMRING_ALREADY_EXISTS`](crate::SHMRING_ALREADY_EXISTS)
/// if there is one. The handle goes to `*out`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_create(
    name: *const c_char,
    capacity: usize,
    out: *mut *mut ShmringBytes,
) -> c_int {
    const F: &str = "shmring_bytes_create";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(
            || Ok(ByteRing::create(self::name(name, F)?, capacity)?),
            out,
            F,
        )
    })
}

/// Open the byte ring named `name`; [`SHMRING_NOT_FOUND`](crate::SHMRING_NOT_FOUND)
/// if there is none.
///
/// # Safety
/// As [`shmring_bytes_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_open(
    name: *const c_char,
    out: *mut *mut ShmringBytes,
) -> c_int {
    const F: &str = "shmring_bytes_open";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(|| Ok(ByteRing::open(self::name(name, F)?)?), out, F)
    })
}

/// Open the byte ring named `name`, or create it with `capacity` bytes if
/// there is none (either side may start first).
///
/// # Safety
/// As [`shmring_bytes_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_open_or_create(
    name: *const c_char,
    capacity: usize,
    out: *mut *mut ShmringBytes,
) -> c_int {
    const F: &str = "shmring_bytes_open_or_create";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(
            || Ok(ByteRing::open_or_create(self::name(name, F)?, capacity)?),
            out,
            F,
        )
    })
}

/// Open the byte ring named `name`, waiting up to `timeout_ns` for its
/// creator to make it.
///
/// # Safety
/// As [`shmring_bytes_create`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_open_timeout(
    name: *const c_char,
    timeout_ns: u64,
    out: *mut *mut ShmringBytes,
) -> c_int {
    const F: &str = "shmring_bytes_open_timeout";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        hand_out(
            || {
                Ok(ByteRing::open_timeout(
                    self::name(name, F)?,
                    timeout(timeout_ns),
                )?)
            },
            out,
            F,
        )
    })
}

/// Close a ring handle (NULL: nothing). Producers and consumers made from
/// it stay usable until closed themselves.
///
/// # Safety
/// `ring` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_close(ring: *mut ShmringBytes) {
    if !ring.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let handle = unsafe { Box::from_raw(ring) };
        close(handle);
    }
}

/// The largest message `ring` takes, in bytes (0 for NULL).
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_max_message_len(ring: *const ShmringBytes) -> usize {
    // SAFETY: the caller's contract above.
    unsafe { ring.as_ref() }.map_or(0, |r| r.ring.max_message_len())
}

/// Whether a live process holds `ring`'s consumer role (0 or 1; 0 for
/// NULL): the kernel's answer, not a pid's.
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_has_consumer(ring: *const ShmringBytes) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { ring.as_ref() }.is_some_and(|r| r.ring.has_consumer()) as c_int
}

/// Whether a live process holds `ring`'s producer role (0 or 1; 0 for
/// NULL).
///
/// # Safety
/// `ring` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_has_producer(ring: *const ShmringBytes) -> c_int {
    // SAFETY: the caller's contract above.
    unsafe { ring.as_ref() }.is_some_and(|r| r.ring.has_producer()) as c_int
}

/// Make a producer of `ring` (a byte ring takes up to 32 at once, across
/// processes; [`SHMRING_ROLE_TAKEN`](crate::SHMRING_ROLE_TAKEN) past
/// that); the handle goes to `*out`.
///
/// # Safety
/// `ring` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_producer(
    ring: *mut ShmringBytes,
    out: *mut *mut ShmringBytesProducer,
) -> c_int {
    const F: &str = "shmring_bytes_producer";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let ring = unsafe { handle(ring, F)? };
        if out.is_null() {
            return Err(Failure::invalid(F, "out is NULL"));
        }
        let tx = Box::new(ring.ring.producer()?);
        let made = Box::new(ShmringBytesProducer {
            grant: None,
            tx: NonNull::from(Box::leak(tx)),
            end: false,
        });
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(out, Box::into_raw(made), F)? };
        Ok(SHMRING_OK)
    })
}

/// Take `ring`'s consumer role (one live handle holds it at a time:
/// [`SHMRING_ROLE_TAKEN`](crate::SHMRING_ROLE_TAKEN)); the handle goes to
/// `*out`.
///
/// # Safety
/// As [`shmring_bytes_producer`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_consumer(
    ring: *mut ShmringBytes,
    out: *mut *mut ShmringBytesConsumer,
) -> c_int {
    const F: &str = "shmring_bytes_consumer";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let ring = unsafe { handle(ring, F)? };
        if out.is_null() {
            return Err(Failure::invalid(F, "out is NULL"));
        }
        let rx = Box::new(ring.ring.consumer()?);
        let made = Box::new(ShmringBytesConsumer {
            msg: None,
            scratch: Vec::new(),
            rx: NonNull::from(Box::leak(rx)),
        });
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(out, Box::into_raw(made), F)? };
        Ok(SHMRING_OK)
    })
}

/// Close a producer (NULL: nothing), giving its role back; an open
/// reservation is aborted.
///
/// # Safety
/// `tx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_producer_close(tx: *mut ShmringBytesProducer) {
    if !tx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let handle = unsafe { Box::from_raw(tx) };
        close(handle);
    }
}

/// End the stream and close producer `tx` (NULL: nothing): an open
/// reservation is aborted, and the consumer receives every message sent
/// before, then [`SHMRING_CLOSED`](crate::SHMRING_CLOSED) from its waiting
/// calls. A new producer reopens the ring.
///
/// # Safety
/// `tx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_producer_end(tx: *mut ShmringBytesProducer) {
    if !tx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let mut handle = unsafe { Box::from_raw(tx) };
        handle.end = true;
        close(handle);
    }
}

/// Close a consumer (NULL: nothing), giving its role back; a lent message
/// is released.
///
/// # Safety
/// `rx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_consumer_close(rx: *mut ShmringBytesConsumer) {
    if !rx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let handle = unsafe { Box::from_raw(rx) };
        close(handle);
    }
}

/// Copy `len` bytes at `data` into the ring as one message, if there is
/// room now ([`SHMRING_FULL`] if not).
///
/// # Safety
/// `tx` is NULL or a live handle; `data` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_try_send(
    tx: *mut ShmringBytesProducer,
    data: *const u8,
    len: usize,
) -> c_int {
    const F: &str = "shmring_bytes_try_send";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? }.tx(F)?;
        // SAFETY: the caller's contract above.
        let data = unsafe { bytes(data, len, tx.max_message_len(), F)? };
        sent(tx.try_send(data))
    })
}

/// [`shmring_bytes_try_send`], waiting up to `timeout_ns` for room
/// ([`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came; 0: not at
/// all, [`SHMRING_FULL`] if there is none now).
///
/// # Safety
/// As [`shmring_bytes_try_send`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_send_timeout(
    tx: *mut ShmringBytesProducer,
    data: *const u8,
    len: usize,
    timeout_ns: u64,
) -> c_int {
    const F: &str = "shmring_bytes_send_timeout";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? }.tx(F)?;
        // SAFETY: the caller's contract above.
        let data = unsafe { bytes(data, len, tx.max_message_len(), F)? };
        match timeout_ns {
            0 => sent(tx.try_send(data)),
            ns => sent(tx.send_timeout(data, timeout(ns))),
        }
    })
}

/// Reserve `len` bytes in the ring, waiting up to `timeout_ns` for room
/// (0: not at all, [`SHMRING_FULL`] if there is none now);
/// `*data` points to them, to be written in place and published with
/// [`shmring_bytes_commit`] (or given back with [`shmring_bytes_abort`]).
/// Until then, the producer's other calls answer [`SHMRING_BUSY`].
///
/// # Safety
/// `tx` is NULL or a live handle; `data` is NULL or writable. The bytes at
/// `*data` are the caller's to write until it commits or aborts, no
/// longer.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_reserve(
    tx: *mut ShmringBytesProducer,
    len: usize,
    timeout_ns: u64,
    data: *mut *mut u8,
) -> c_int {
    const F: &str = "shmring_bytes_reserve";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        if data.is_null() {
            return Err(Failure::invalid(F, "data is NULL"));
        }
        let producer = tx.tx(F)?;
        let Some(grant) = reserve(producer, len, timeout_ns)? else {
            return Ok(SHMRING_FULL);
        };
        // SAFETY: the grant borrows the producer behind `tx.tx`, its own
        // allocation, which stays put and is touched by nothing else while
        // `tx.grant` holds it (every call checks first), and which is freed
        // only after the grant is dropped (see `Drop`).
        let grant = unsafe { std::mem::transmute::<Grant<'_>, Grant<'static>>(grant) };
        tx.grant = Some(grant);
        let at = tx
            .grant
            .as_mut()
            .map_or(std::ptr::null_mut(), |g| g.as_mut_ptr());
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(data, at, F)? };
        Ok(SHMRING_OK)
    })
}

/// Publish the first `len` bytes of the open reservation as a message (the
/// rest is skipped). [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT)
/// if none is open or `len` is more than was reserved (the reservation
/// stays open).
///
/// # Safety
/// `tx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_commit(tx: *mut ShmringBytesProducer, len: usize) -> c_int {
    const F: &str = "shmring_bytes_commit";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        match tx.grant.as_ref().map(|g| g.len()) {
            None => Err(Failure::invalid(F, "no reservation is open")),
            Some(reserved) if len > reserved => Err(Failure::invalid(
                F,
                &format!("{len} bytes is more than the {reserved} reserved"),
            )),
            Some(_) => {
                let grant = tx.grant.take().expect("checked above");
                grant.commit_len(len);
                Ok(SHMRING_OK)
            }
        }
    })
}

/// Give the open reservation back unpublished (none open: nothing).
///
/// # Safety
/// `tx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_abort(tx: *mut ShmringBytesProducer) -> c_int {
    const F: &str = "shmring_bytes_abort";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        tx.grant = None;
        Ok(SHMRING_OK)
    })
}

/// Copy the oldest message into `buf` (of `cap` bytes) and release it;
/// its length goes to `*len`. [`SHMRING_EMPTY`] if there is none now;
/// [`SHMRING_BUFFER_TOO_SMALL`] if it is longer than `cap` (its length
/// goes to `*len`; it stays in the ring, for the next receive). Each byte
/// of shared memory is read once (a copy safe from a producer that
/// rewrites the message as it is read).
///
/// # Safety
/// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
/// `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_try_recv(
    rx: *mut ShmringBytesConsumer,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_try_recv";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe { recv_into(rx, buf, cap, len, None, F) })
}

/// [`shmring_bytes_try_recv`], waiting up to `timeout_ns` for a message
/// ([`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came; 0: not at
/// all, [`SHMRING_EMPTY`] if there is none now).
///
/// # Safety
/// As [`shmring_bytes_try_recv`].
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_recv_timeout(
    rx: *mut ShmringBytesConsumer,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_ns: u64,
) -> c_int {
    const F: &str = "shmring_bytes_recv_timeout";
    // SAFETY: the caller's contract above.
    guard(F, || unsafe {
        recv_into(rx, buf, cap, len, Some(timeout(timeout_ns)), F)
    })
}

/// Receive into the caller's buffer (see [`shmring_bytes_try_recv`]).
///
/// # Safety
/// As [`shmring_bytes_try_recv`].
unsafe fn recv_into(
    rx: *mut ShmringBytesConsumer,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    wait: Option<Duration>,
    function: &str,
) -> Result<c_int, Failure> {
    // SAFETY: the caller's contract.
    let rx = unsafe { handle(rx, function)? };
    if len.is_null() || (buf.is_null() && cap > 0) {
        return Err(Failure::invalid(function, "buf or len is NULL"));
    }
    let Some(msg) = rx.take(wait, function)? else {
        return Ok(SHMRING_EMPTY);
    };
    let n = msg.len();
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { len.write(n) };
    if n > cap {
        // Not released: the next receive (from any handle) reads it again.
        std::mem::forget(msg);
        return Ok(SHMRING_BUFFER_TOO_SMALL);
    }
    msg.copy_into(&mut rx.scratch);
    drop(msg);
    if n > 0 {
        // SAFETY: `buf` holds `cap >= n` writable bytes (the caller's
        // contract), its own, apart from the handle's scratch.
        let out = unsafe { std::slice::from_raw_parts_mut(buf, n) };
        out.copy_from_slice(&rx.scratch);
    }
    Ok(SHMRING_OK)
}

/// Lend the oldest message in place, waiting up to `timeout_ns` for one
/// (0: not at all, [`SHMRING_EMPTY`] if there is none): `*data` points to
/// its `*len` bytes until [`shmring_bytes_release`]. Until then, the
/// consumer's other calls answer [`SHMRING_BUSY`].
///
/// # Safety
/// `rx` is NULL or a live handle; `data` and `len` are NULL or writable.
/// The bytes at `*data` are readable until the release, no longer.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_read(
    rx: *mut ShmringBytesConsumer,
    timeout_ns: u64,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_read";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        if data.is_null() || len.is_null() {
            return Err(Failure::invalid(F, "data or len is NULL"));
        }
        let Some(msg) = rx.take(Some(timeout(timeout_ns)), F)? else {
            return Ok(SHMRING_EMPTY);
        };
        // SAFETY: both checked non-NULL; the caller's contract makes them
        // writable. The bytes stay in place while `rx.msg` holds them.
        unsafe {
            data.write(msg.as_ptr());
            len.write(msg.len());
        }
        rx.msg = Some(msg);
        Ok(SHMRING_OK)
    })
}

/// Release the message [`shmring_bytes_read`] lent (none lent: nothing).
///
/// # Safety
/// `rx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_release(rx: *mut ShmringBytesConsumer) -> c_int {
    const F: &str = "shmring_bytes_release";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        rx.msg = None;
        Ok(SHMRING_OK)
    })
}

/// End the loan of the message [`shmring_bytes_read`] lent without
/// releasing it: it stays at the ring's head, and the next receive (by
/// any handle) gets it again (none lent: nothing). For a reader stopped
/// before it could handle the message (Python's Ctrl-C).
///
/// # Safety
/// `rx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_unread(rx: *mut ShmringBytesConsumer) -> c_int {
    const F: &str = "shmring_bytes_unread";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        // Not released: its record is read again by the next receive.
        std::mem::forget(rx.msg.take());
        Ok(SHMRING_OK)
    })
}

/// Send `count` messages at once, one call for many (a caller in a slow
/// language pays its crossing once): the messages lie one after another
/// at `data`, message `i` being `lens[i]` bytes long. Waits up to
/// `timeout_ns` for room for the first (0: not at all), sends the rest
/// while there is room now, in order; how many were sent goes to `*sent`
/// (whatever the status). [`SHMRING_FULL`] (0 sent) if there was no room
/// now for the first, [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none
/// came in time. An error after the first ends the batch with
/// [`SHMRING_OK`] and the count of those sent; the next call reports it.
/// Every length is checked before anything is sent: one longer than the
/// ring's largest message is [`SHMRING_MESSAGE_TOO_LARGE`](crate::SHMRING_MESSAGE_TOO_LARGE),
/// and none is sent.
///
/// # Safety
/// `tx` is NULL or a live handle; `lens` is NULL or `count` readable
/// lengths; `data` is NULL or as many readable bytes as they add up to;
/// `sent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_send_many(
    tx: *mut ShmringBytesProducer,
    data: *const u8,
    lens: *const usize,
    count: usize,
    timeout_ns: u64,
    sent: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_send_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let sent = unsafe { OutCount::zeroed(sent, F)? };
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? }.tx(F)?;
        // SAFETY: the caller's contract above.
        let (data, lens) = unsafe { batch(data, lens, count, tx.max_message_len(), F)? };
        let (n, status) = send_batch(data, lens, |message, first| match (first, timeout_ns) {
            (true, 0) | (false, _) => tx.try_send(message),
            (true, ns) => tx.send_timeout(message, timeout(ns)),
        })?;
        sent.set(n);
        Ok(status)
    })
}

/// Where a batch call's count goes, written 0 first: an error before
/// anything went has sent (or taken) nothing. A pointer, not a
/// reference: the caller's count may lie anywhere, even among its own
/// lengths.
pub(crate) struct OutCount(*mut usize);

impl OutCount {
    /// # Safety
    /// A non-NULL `count` is writable for as long as the `OutCount` lives.
    pub(crate) unsafe fn zeroed(count: *mut usize, function: &str) -> Result<OutCount, Failure> {
        if count.is_null() {
            return Err(Failure::invalid(function, "an out-pointer is NULL"));
        }
        let out = OutCount(count);
        out.set(0);
        Ok(out)
    }

    pub(crate) fn set(&self, n: usize) {
        // SAFETY: non-NULL (checked), and writable (the contract of
        // `zeroed`).
        unsafe { self.0.write(n) }
    }
}

/// A batch to send: `count` lengths at `lens`, every one checked against
/// the ring's largest message `max` before anything is sent, and the
/// bytes they add up to at `data`.
///
/// # Safety
/// `lens` is NULL or `count` readable lengths; `data` is NULL or as many
/// readable bytes as they add up to.
pub(crate) unsafe fn batch<'a>(
    data: *const u8,
    lens: *const usize,
    count: usize,
    max: usize,
    function: &str,
) -> Result<(&'a [u8], &'a [usize]), Failure> {
    let lens = match count {
        0 => &[][..],
        _ if lens.is_null() => return Err(Failure::invalid(function, "lens is NULL")),
        // SAFETY: non-NULL (checked), `count` readable (the contract).
        _ => unsafe { std::slice::from_raw_parts(lens, count) },
    };
    let mut total = 0usize;
    for &len in lens {
        if len > max {
            return Err(shmring::SendError::MessageTooLarge { len, max }.into());
        }
        total = total
            .checked_add(len)
            .ok_or_else(|| Failure::invalid(function, "the lengths add up past SIZE_MAX"))?;
    }
    // SAFETY: the caller's contract: `total` readable bytes at `data`.
    let data = unsafe { bytes(data, total, usize::MAX, function)? };
    Ok((data, lens))
}

/// Send a batch's messages in order with `send` (told whether it sends
/// the first, which may wait; the rest go while there is room now); how
/// many went, and the status. After the first, anything else (no room, an
/// error) ends the batch with OK: the count must say what went, or a
/// caller would send it again; the next call reports an error.
pub(crate) fn send_batch(
    data: &[u8],
    lens: &[usize],
    mut send: impl FnMut(&[u8], bool) -> Result<(), shmring::SendError>,
) -> Result<(usize, c_int), Failure> {
    let (mut n, mut at) = (0, 0);
    for &len in lens {
        match send(&data[at..at + len], n == 0) {
            Ok(()) => (n, at) = (n + 1, at + len),
            Err(_) if n > 0 => break,
            Err(e) => return Ok((0, sent(Err(e))?)),
        }
    }
    Ok((n, SHMRING_OK))
}

/// Receive up to `max` messages at once, copied one after another into
/// `buf` (of `cap` bytes), message `i` being `lens[i]` bytes long; how
/// many goes to `*count`. Waits up to `timeout_ns` for the first (0: not
/// at all, [`SHMRING_EMPTY`] if there is none;
/// [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came in time), then
/// takes what is there now, up to the first that does not fit (it stays
/// in the ring, its length not reported). [`SHMRING_BUFFER_TOO_SMALL`] if
/// the first does not fit: its length goes to `lens[0]`, `*count` is 0.
/// An error after the first (a corrupt ring) ends the batch with
/// [`SHMRING_OK`] and what was taken; the next call reports it. Copied as
/// [`shmring_bytes_try_recv`] copies: each byte of shared memory read
/// once.
///
/// # Safety
/// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
/// `lens` is NULL or `max` writable lengths; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_recv_many(
    rx: *mut ShmringBytesConsumer,
    buf: *mut u8,
    cap: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
    timeout_ns: u64,
) -> c_int {
    const F: &str = "shmring_bytes_recv_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        // SAFETY: the caller's contract above.
        let mut out = unsafe { Landing::new(buf, cap, lens, max, count, F)? };
        while !out.is_full() {
            let wait = (out.n == 0).then(|| timeout(timeout_ns));
            let msg = match rx.take(wait, F) {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) if out.n == 0 => return Err(e),
                // What was copied is the caller's (released: it must not
                // be lost); the next call reports the error.
                Err(_) => break,
            };
            if out.land(msg, &mut rx.scratch).is_err() {
                break;
            }
        }
        Ok(out.finish())
    })
}

/// Where a batch receive copies messages to: the caller's buffer and
/// lengths, and how many so far (written to the caller's count by
/// [`finish`](Landing::finish)).
pub(crate) struct Landing {
    buf: *mut u8,
    cap: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
    used: usize,
    pub(crate) n: usize,
    /// The length of a first message that did not fit.
    too_long: Option<usize>,
}

impl Landing {
    /// The caller's buffer, lengths and count, checked; the count is
    /// written 0 first: an error before anything was taken took nothing.
    ///
    /// # Safety
    /// `buf` is NULL or `cap` writable bytes; `lens` is NULL or `max`
    /// writable lengths; `count` is NULL or writable; all stay so while
    /// the landing lives.
    pub(crate) unsafe fn new(
        buf: *mut u8,
        cap: usize,
        lens: *mut usize,
        max: usize,
        count: *mut usize,
        function: &str,
    ) -> Result<Landing, Failure> {
        if count.is_null() || lens.is_null() || max == 0 || (buf.is_null() && cap > 0) {
            return Err(Failure::invalid(
                function,
                "buf, lens or count is NULL, or max is 0",
            ));
        }
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { count.write(0) };
        Ok(Landing {
            buf,
            cap,
            lens,
            max,
            count,
            used: 0,
            n: 0,
            too_long: None,
        })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.n == self.max
    }

    /// Copy `msg` in (through `scratch`: each byte of shared memory read
    /// once) and release it; one that does not fit stays in the ring
    /// (`Err`), its length kept if it was the first.
    pub(crate) fn land(&mut self, msg: Message<'_>, scratch: &mut Vec<u8>) -> Result<(), ()> {
        let len = msg.len();
        if len > self.cap - self.used {
            // Not released: the next receive reads it again.
            std::mem::forget(msg);
            if self.n == 0 {
                self.too_long = Some(len);
            }
            return Err(());
        }
        msg.copy_into(scratch);
        drop(msg);
        if len > 0 {
            // SAFETY: `buf` holds `cap` writable bytes (the contract of
            // `new`) and `used + len <= cap`; its own, apart from the
            // scratch.
            let out = unsafe { std::slice::from_raw_parts_mut(self.buf.add(self.used), len) };
            out.copy_from_slice(scratch);
        }
        // SAFETY: `n < max` (the caller checks `is_full` first, and `n`
        // grows by one a message): within the caller's `max` lengths.
        unsafe { self.lens.add(self.n).write(len) };
        (self.n, self.used) = (self.n + 1, self.used + len);
        Ok(())
    }

    /// Write the count; the status: OK with what was taken,
    /// [`SHMRING_BUFFER_TOO_SMALL`] (its length in `lens[0]`) if the
    /// first did not fit, [`SHMRING_EMPTY`] if there was none.
    pub(crate) fn finish(self) -> c_int {
        // SAFETY: checked non-NULL in `new`; writable by its contract.
        unsafe { self.count.write(self.n) };
        match (self.n, self.too_long) {
            (0, Some(len)) => {
                // SAFETY: `lens` holds `max >= 1` writable lengths.
                unsafe { self.lens.write(len) };
                SHMRING_BUFFER_TOO_SMALL
            }
            (0, None) => SHMRING_EMPTY,
            _ => SHMRING_OK,
        }
    }
}

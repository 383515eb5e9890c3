//! Typed values in place from C: a producer reserves a value's bytes in
//! its slot and commits them, a consumer reads a value in its slot and
//! releases it; no copy either way. SPSC and MPMC rings (a broadcast
//! ring's values are copied: its subscribers read by seqlock, and a
//! value lent in place could be overwritten under a lossy one).
//!
//! While a value is lent, the handle's other calls answer
//! [`SHMRING_BUSY`](crate::SHMRING_BUSY); closing the handle gives the
//! value back (a reservation: nothing published, an MPMC position
//! skipped; a read: released).

use std::ffi::{c_int, c_void};
use std::time::Duration;

use shmring::Error;

use crate::bytes::{handle, put};
use crate::status::{guard, Failure, SHMRING_EMPTY, SHMRING_FULL, SHMRING_OK};
use crate::typed::{named, Rx, ShmringTypedConsumer, ShmringTypedProducer, Tx};

/// Reserve the next value's bytes in place, waiting up to `timeout_ns` for
/// room (0: not at all, [`SHMRING_FULL`] if there is none now;
/// [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came): `*value`
/// points to them (the layout's size, aligned as the layout says), to be
/// written and published with [`shmring_typed_commit`] or given back with
/// [`shmring_typed_abort`]. What the bytes hold before is not the
/// caller's to read (an SPSC slot keeps an earlier value, an MPMC one is
/// zeroed). [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT)
/// for a broadcast producer, which publishes by copy.
///
/// # Safety
/// `tx` is NULL or a live handle; `value` is NULL or writable. The bytes
/// at `*value` are the caller's to write until it commits or aborts, no
/// longer.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_reserve(
    tx: *mut ShmringTypedProducer,
    timeout_ns: u64,
    value: *mut *mut c_void,
) -> c_int {
    const F: &str = "shmring_typed_reserve";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        if value.is_null() {
            return Err(Failure::invalid(F, "value is NULL"));
        }
        let timeout = Duration::from_nanos(timeout_ns);
        // SAFETY: what it lends is kept in `tx.lent`, or dropped here.
        let producer: &'static mut Tx = unsafe { tx.tx_for_lending(F)? };
        let reserved = match producer {
            Tx::Spsc(p) => p.reserve_timeout(timeout),
            Tx::Mpmc(p) => p.reserve_timeout(timeout),
            Tx::Broadcast(_) => {
                return Err(Failure::invalid(
                    F,
                    "a broadcast producer publishes by copy (shmring_typed_push_timeout)",
                ))
            }
        };
        let mut slot = match reserved {
            Ok(slot) => slot,
            Err(Error::Full) => return Ok(SHMRING_FULL),
            Err(e) => return Err(named(e, F, &tx.name)),
        };
        let at = slot.as_mut_ptr().cast::<c_void>();
        tx.lent = Some(slot);
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(value, at, F)? };
        Ok(SHMRING_OK)
    })
}

/// Publish the reserved value: consumers may read it from now on.
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT) if none
/// is reserved.
///
/// # Safety
/// `tx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_commit(tx: *mut ShmringTypedProducer) -> c_int {
    let take = |tx: &mut ShmringTypedProducer| tx.lent.take();
    // SAFETY: the caller's contract above.
    unsafe { end_loan(tx, "shmring_typed_commit", take, "reserved", |s| s.commit()) }
}

/// Give the reserved value back unpublished (an MPMC ring skips its
/// position). [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT)
/// if none is reserved.
///
/// # Safety
/// `tx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_abort(tx: *mut ShmringTypedProducer) -> c_int {
    let take = |tx: &mut ShmringTypedProducer| tx.lent.take();
    // Dropped uncommitted: given back.
    // SAFETY: the caller's contract above.
    unsafe { end_loan(tx, "shmring_typed_abort", take, "reserved", drop) }
}

/// Lend the oldest value in place, waiting up to `timeout_ns` for one (0:
/// not at all, [`SHMRING_EMPTY`] if there is none now;
/// [`SHMRING_TIMEOUT`](crate::SHMRING_TIMEOUT) if none came;
/// [`SHMRING_CLOSED`](crate::SHMRING_CLOSED) once a producer closed the
/// ring and every value was read): `*value` points to its bytes (the
/// layout's size), valid until [`shmring_typed_release`].
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT) for a
/// broadcast subscriber, which reads by copy.
///
/// # Safety
/// `rx` is NULL or a live handle; `value` is NULL or writable. The bytes at
/// `*value` are readable until the release, no longer; a producer that
/// cooperates does not write them meanwhile (one that does not can: a
/// reader that must not see bytes change copies them with
/// [`shmring_typed_pop_timeout`](crate::shmring_typed_pop_timeout)).
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_read(
    rx: *mut ShmringTypedConsumer,
    timeout_ns: u64,
    value: *mut *const c_void,
) -> c_int {
    const F: &str = "shmring_typed_read";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        if value.is_null() {
            return Err(Failure::invalid(F, "value is NULL"));
        }
        let timeout = Duration::from_nanos(timeout_ns);
        // SAFETY: what it lends is kept in `rx.lent`, or dropped here.
        let consumer: &'static mut Rx = unsafe { rx.rx_for_lending(F)? };
        let read = match (consumer, timeout.is_zero()) {
            (Rx::Spsc(c), true) => Ok(c.try_read()),
            (Rx::Spsc(c), false) => c.read_timeout(timeout).map(Some),
            (Rx::Mpmc(c), true) => Ok(c.try_read()),
            (Rx::Mpmc(c), false) => c.read_timeout(timeout).map(Some),
            (Rx::Subscriber(_), _) => {
                return Err(Failure::invalid(
                    F,
                    "a broadcast subscriber reads by copy (shmring_typed_pop_timeout)",
                ))
            }
        };
        let slot = match read {
            Ok(Some(slot)) => slot,
            Ok(None) => return Ok(SHMRING_EMPTY),
            Err(e) => return Err(named(e, F, &rx.name)),
        };
        let at = slot.as_ptr().cast::<c_void>();
        rx.lent = Some(slot);
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(value, at, F)? };
        Ok(SHMRING_OK)
    })
}

/// Release the value [`shmring_typed_read`] lent, to the producer.
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT) if none
/// is lent.
///
/// # Safety
/// `rx` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn shmring_typed_release(rx: *mut ShmringTypedConsumer) -> c_int {
    let take = |rx: &mut ShmringTypedConsumer| rx.lent.take();
    // SAFETY: the caller's contract above.
    unsafe { end_loan(rx, "shmring_typed_release", take, "lent", |s| s.release()) }
}

/// End the loan `take` takes from the handle at `ptr` with `end`;
/// [`SHMRING_INVALID_ARGUMENT`](crate::SHMRING_INVALID_ARGUMENT) if none
/// is open (no value is `what`).
///
/// # Safety
/// `ptr` is NULL or a live handle.
unsafe fn end_loan<H, L>(
    ptr: *mut H,
    function: &str,
    take: impl FnOnce(&mut H) -> Option<L>,
    what: &str,
    end: impl FnOnce(L),
) -> c_int {
    guard(function, || {
        // SAFETY: the caller's contract above.
        let handle = unsafe { handle(ptr, function)? };
        let lent = take(handle)
            .ok_or_else(|| Failure::invalid(function, &format!("no value is {what}")))?;
        end(lent);
        Ok(SHMRING_OK)
    })
}

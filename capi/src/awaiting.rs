//! Sends and receives an event loop awaits (Python's `asyncio`, a C
//! program's `epoll`): byte ring producers and consumers whose wakeups
//! arrive on a file descriptor.
//!
//! Each is `shmring-async`'s [`AsyncProducer`] or [`AsyncConsumer`],
//! polled with a waker that sends a byte to one end of a datagram socket
//! pair (sent with `MSG_NOSIGNAL`: a pair closed meanwhile is no
//! `SIGPIPE`); the caller watches the other end. A poll drains that end,
//! then tries: a message sent or taken, or [`SHMRING_FULL`] /
//! [`SHMRING_EMPTY`] with the waker registered, so that the end becomes
//! readable once there may be room or a message (the async crate's
//! waiter thread wakes it, as it wakes a task). Trying again after
//! registering is the async crate's protocol: no release or publication
//! meanwhile is missed. A wakeup may be spurious (the next poll answers
//! FULL or EMPTY again), never lost. Only a poll that answered FULL or
//! EMPTY leaves a waker armed: one that sent or took a message did not,
//! so whoever waits on the fd must poll again then.

use std::ffi::c_int;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use shmring::{ByteConsumer, ByteProducer};
use shmring_async::{AsyncConsumer, AsyncProducer};

use crate::bytes::{batch, bytes, handle, put, send_batch, Landing, OutCount, ShmringBytes};
use crate::status::{
    guard, Failure, SHMRING_BUFFER_TOO_SMALL, SHMRING_EMPTY, SHMRING_FULL, SHMRING_OK,
};

/// A byte ring's consumer whose waits an event loop awaits. Close with
/// [`shmring_bytes_async_consumer_close`].
#[derive(Debug)]
pub struct ShmringBytesAsyncConsumer {
    rx: AsyncConsumer<ByteConsumer>,
    wake: Awakener,
    /// Where a message is copied first (volatile reads, each byte once).
    scratch: Vec<u8>,
}

/// Wakes an event loop: one byte on its socket. A full socket is already
/// readable, so a send that would block is not needed.
#[derive(Debug)]
struct SocketWaker(UnixDatagram);

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.send(&[1]);
    }
}

/// What wakes an event loop: a waker, and the socket its wakeups arrive on.
#[derive(Debug)]
struct Awakener {
    /// Sends a byte to the socket pair's other end when woken.
    waker: Waker,
    /// The end the caller watches (its fd handed out, owned here).
    readable: UnixDatagram,
}

impl Awakener {
    fn new(function: &str) -> Result<Awakener, Failure> {
        let io = |e: std::io::Error| Failure::invalid(function, &format!("a socket pair: {e}"));
        let (readable, writable) = UnixDatagram::pair().map_err(io)?;
        readable.set_nonblocking(true).map_err(io)?;
        writable.set_nonblocking(true).map_err(io)?;
        Ok(Awakener {
            waker: Waker::from(Arc::new(SocketWaker(writable))),
            readable,
        })
    }

    /// Spend the wakeups so far (this poll tries the ring), and the
    /// context to poll with.
    fn poll_context(&self) -> Context<'_> {
        let mut drain = [0u8; 64];
        while self.readable.recv(&mut drain).is_ok() {}
        Context::from_waker(&self.waker)
    }
}

/// Hand an awaiting handle out: the handle to `*out`, the file
/// descriptor its wakeups arrive on to `*fd`; neither written, and the
/// handle dropped, if either is NULL.
///
/// # Safety
/// `out` and `fd` are NULL or writable.
unsafe fn hand_out_awaiting<T>(
    made: Box<T>,
    wake: impl FnOnce(&T) -> &Awakener,
    out: *mut *mut T,
    fd: *mut c_int,
    function: &str,
) -> Result<c_int, Failure> {
    if out.is_null() || fd.is_null() {
        return Err(Failure::invalid(function, "out or fd is NULL"));
    }
    let raw = wake(&made).readable.as_raw_fd();
    // SAFETY: the caller's contract above (`put` refuses NULL).
    unsafe {
        put(fd, raw, function)?;
        put(out, Box::into_raw(made), function)?;
    }
    Ok(SHMRING_OK)
}

/// Take `ring`'s consumer role for receives an event loop awaits; the
/// handle goes to `*out`, and the file descriptor to watch for
/// readability to `*fd` (owned by the handle: closed with it, not by the
/// caller). Costs a socket pair, and on the first wait a place in the
/// process's waiter thread (Linux 5.16: `futex_waitv`).
///
/// # Safety
/// `ring` is NULL or a live handle; `out` and `fd` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_async_consumer(
    ring: *mut ShmringBytes,
    out: *mut *mut ShmringBytesAsyncConsumer,
    fd: *mut c_int,
) -> c_int {
    const F: &str = "shmring_bytes_async_consumer";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let ring = unsafe { handle(ring, F)? };
        if out.is_null() || fd.is_null() {
            return Err(Failure::invalid(F, "out or fd is NULL"));
        }
        let made = Box::new(ShmringBytesAsyncConsumer {
            rx: AsyncConsumer::new(ring.ring().consumer()?),
            wake: Awakener::new(F)?,
            scratch: Vec::new(),
        });
        // SAFETY: both checked non-NULL; the caller's contract makes them
        // writable.
        unsafe { hand_out_awaiting(made, |rx| &rx.wake, out, fd, F) }
    })
}

/// Copy the oldest message into `buf` (of `cap` bytes) and release it,
/// its length to `*len`, if there is one; else [`SHMRING_EMPTY`], and the
/// handle's file descriptor becomes readable when one may have come (poll
/// again then: only a poll that answered EMPTY arms it, so whoever waits
/// on the fd polls again after another caller's poll took a message).
/// [`SHMRING_BUFFER_TOO_SMALL`] as for
/// [`shmring_bytes_try_recv`](crate::shmring_bytes_try_recv) (the message
/// stays); [`SHMRING_CLOSED`](crate::SHMRING_CLOSED) once a producer
/// closed the ring (Rust's `ByteProducer::close`; closing a producer
/// handle here does not) and everything was read. Never blocks.
///
/// # Safety
/// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
/// `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_poll_recv(
    rx: *mut ShmringBytesAsyncConsumer,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_poll_recv";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        if len.is_null() || (buf.is_null() && cap > 0) {
            return Err(Failure::invalid(F, "buf or len is NULL"));
        }
        let mut cx = rx.wake.poll_context();
        let scratch = &mut rx.scratch;
        let copied = rx.rx.poll_recv_with(&mut cx, &mut |msg| {
            let n = msg.len();
            if n > cap {
                // Not released: the next receive reads it again.
                std::mem::forget(msg);
                return Err(n);
            }
            msg.copy_into(scratch);
            Ok(n)
        });
        let (status, n) = match copied {
            Poll::Pending => return Ok(SHMRING_EMPTY),
            Poll::Ready(Err(e)) => return Err(e.into()),
            Poll::Ready(Ok(Err(n))) => (SHMRING_BUFFER_TOO_SMALL, n),
            Poll::Ready(Ok(Ok(n))) => {
                if n > 0 {
                    // SAFETY: `buf` holds `cap >= n` writable bytes (the
                    // caller's contract), apart from the handle's scratch.
                    let out = unsafe { std::slice::from_raw_parts_mut(buf, n) };
                    out.copy_from_slice(&rx.scratch);
                }
                (SHMRING_OK, n)
            }
        };
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { len.write(n) };
        Ok(status)
    })
}

/// Receive up to `max` messages at once, laid out as
/// [`shmring_bytes_recv_many`](crate::shmring_bytes_recv_many) lays them
/// out: the first if there is one now, then the rest there now that fit;
/// how many goes to `*count`. If there is none, [`SHMRING_EMPTY`], and
/// the handle's file descriptor becomes readable when one may have come
/// (poll again then). [`SHMRING_BUFFER_TOO_SMALL`] as for
/// `shmring_bytes_recv_many`; [`SHMRING_CLOSED`](crate::SHMRING_CLOSED)
/// as for [`shmring_bytes_poll_recv`]. Never blocks.
///
/// # Safety
/// `rx` is NULL or a live handle; `buf` is NULL or `cap` writable bytes;
/// `lens` is NULL or `max` writable lengths; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_poll_recv_many(
    rx: *mut ShmringBytesAsyncConsumer,
    buf: *mut u8,
    cap: usize,
    lens: *mut usize,
    max: usize,
    count: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_poll_recv_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let rx = unsafe { handle(rx, F)? };
        // SAFETY: the caller's contract above.
        let mut out = unsafe { Landing::new(buf, cap, lens, max, count, F)? };
        let mut cx = rx.wake.poll_context();
        let scratch = &mut rx.scratch;
        let first = rx
            .rx
            .poll_recv_with(&mut cx, &mut |msg| out.land(msg, scratch));
        match first {
            Poll::Ready(Err(e)) => return Err(e.into()),
            Poll::Ready(Ok(Ok(()))) => {
                // The rest there now; an error after the first ends the
                // batch (what was taken is the caller's), and the next
                // poll reports it.
                while !out.is_full() {
                    let Ok(Some(msg)) = rx.rx.get_mut().try_recv() else {
                        break;
                    };
                    if out.land(msg, scratch).is_err() {
                        break;
                    }
                }
            }
            // Too long for the buffer (it stays), or none (armed).
            Poll::Ready(Ok(Err(()))) | Poll::Pending => {}
        }
        Ok(out.finish())
    })
}

/// Close an awaiting consumer (NULL: nothing), giving its role back and
/// closing its file descriptor (stop watching it first).
///
/// # Safety
/// `rx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_async_consumer_close(rx: *mut ShmringBytesAsyncConsumer) {
    if !rx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let handle = unsafe { Box::from_raw(rx) };
        crate::bytes::close(handle);
    }
}

/// A byte ring's producer whose waits for room an event loop awaits.
/// Close with [`shmring_bytes_async_producer_close`].
#[derive(Debug)]
pub struct ShmringBytesAsyncProducer {
    tx: AsyncProducer<ByteProducer>,
    wake: Awakener,
}

/// Become a producer of `ring` for sends an event loop awaits; the handle
/// goes to `*out`, and the file descriptor to watch for readability to
/// `*fd` (owned by the handle: closed with it, not by the caller). Costs
/// a socket pair, and on the first wait a place in the process's waiter
/// thread (Linux 5.16: `futex_waitv`).
///
/// # Safety
/// `ring` is NULL or a live handle; `out` and `fd` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_async_producer(
    ring: *mut ShmringBytes,
    out: *mut *mut ShmringBytesAsyncProducer,
    fd: *mut c_int,
) -> c_int {
    const F: &str = "shmring_bytes_async_producer";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let ring = unsafe { handle(ring, F)? };
        if out.is_null() || fd.is_null() {
            return Err(Failure::invalid(F, "out or fd is NULL"));
        }
        let made = Box::new(ShmringBytesAsyncProducer {
            tx: AsyncProducer::new(ring.ring().producer()?),
            wake: Awakener::new(F)?,
        });
        // SAFETY: both checked non-NULL; the caller's contract makes them
        // writable.
        unsafe { hand_out_awaiting(made, |tx| &tx.wake, out, fd, F) }
    })
}

/// Copy the `len` bytes at `data` in as one message, if there is room
/// now; else [`SHMRING_FULL`], and the handle's file descriptor becomes
/// readable when there may be room (poll again then: only a poll that
/// answered FULL arms it).
/// [`SHMRING_MESSAGE_TOO_LARGE`](crate::SHMRING_MESSAGE_TOO_LARGE) for a
/// message longer than the ring's largest. Never blocks.
///
/// # Safety
/// `tx` is NULL or a live handle; `data` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_poll_send(
    tx: *mut ShmringBytesAsyncProducer,
    data: *const u8,
    len: usize,
) -> c_int {
    const F: &str = "shmring_bytes_poll_send";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        // SAFETY: the caller's contract above.
        let message = unsafe { bytes(data, len, tx.tx.get_ref().max_message_len(), F)? };
        Ok(match poll_first(tx, message) {
            Ok(()) => SHMRING_OK,
            Err(shmring::SendError::Full) => SHMRING_FULL,
            Err(e) => return Err(e.into()),
        })
    })
}

/// Send `count` messages at once, laid out as
/// [`shmring_bytes_send_many`](crate::shmring_bytes_send_many) takes
/// them: the first if there is room now, then the rest while there is
/// room; how many went goes to `*sent` (whatever the status). If there is
/// no room for the first, [`SHMRING_FULL`] (0 sent), and the handle's
/// file descriptor becomes readable when there may be room (poll again
/// then: only FULL arms it, so after a batch that sent some, call again
/// for the rest). Lengths and errors as for `shmring_bytes_send_many`.
/// Never blocks.
///
/// # Safety
/// `tx` is NULL or a live handle; `lens` is NULL or `count` readable
/// lengths; `data` is NULL or as many readable bytes as they add up to;
/// `sent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_poll_send_many(
    tx: *mut ShmringBytesAsyncProducer,
    data: *const u8,
    lens: *const usize,
    count: usize,
    sent: *mut usize,
) -> c_int {
    const F: &str = "shmring_bytes_poll_send_many";
    guard(F, || {
        // SAFETY: the caller's contract above.
        let sent = unsafe { OutCount::zeroed(sent, F)? };
        // SAFETY: the caller's contract above.
        let tx = unsafe { handle(tx, F)? };
        let max = tx.tx.get_ref().max_message_len();
        // SAFETY: the caller's contract above.
        let (data, lens) = unsafe { batch(data, lens, count, max, F)? };
        let (n, status) = send_batch(data, lens, |message, first| match first {
            true => poll_first(tx, message),
            false => tx.tx.get_mut().try_send(message),
        })?;
        sent.set(n);
        Ok(status)
    })
}

/// Send `message` if there is room now; else `Full`, with the waker
/// armed.
fn poll_first(
    tx: &mut ShmringBytesAsyncProducer,
    message: &[u8],
) -> Result<(), shmring::SendError> {
    let mut cx = tx.wake.poll_context();
    match tx.tx.poll_send(&mut cx, &mut Some(message)) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(shmring::SendError::Full),
    }
}

/// Close an awaiting producer (NULL: nothing), giving its place back and
/// closing its file descriptor (stop watching it first).
///
/// # Safety
/// `tx` is NULL or a handle not closed before.
#[no_mangle]
pub unsafe extern "C" fn shmring_bytes_async_producer_close(tx: *mut ShmringBytesAsyncProducer) {
    if !tx.is_null() {
        // SAFETY: a handle made by `Box::into_raw`, closed once.
        let handle = unsafe { Box::from_raw(tx) };
        crate::bytes::close(handle);
    }
}

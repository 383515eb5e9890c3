//! Receives an event loop awaits (Python's `asyncio`, a C program's
//! `epoll`): a byte ring consumer whose wakeups arrive on a file
//! descriptor.
//!
//! The consumer is `shmring-async`'s [`AsyncConsumer`], polled with a
//! waker that sends a byte to one end of a datagram socket pair (sent
//! with `MSG_NOSIGNAL`: a pair closed meanwhile is no `SIGPIPE`); the
//! caller watches the other end. A poll drains that end, then looks at the ring:
//! a message, or [`SHMRING_EMPTY`] with the waker registered, so that the
//! end becomes readable once a message may have come (the async crate's
//! waiter thread wakes it, as it wakes a task). Looking after registering
//! is the async crate's protocol: no message published meanwhile is
//! missed. A wakeup may be spurious (the next poll answers EMPTY again),
//! never lost. Only a poll that answered EMPTY leaves a waker armed: one
//! that took a message did not, so whoever waits on the fd must poll
//! again then.

use std::ffi::c_int;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use shmring::ByteConsumer;
use shmring_async::AsyncConsumer;

use crate::bytes::{handle, put, ShmringBytes};
use crate::status::{guard, Failure, SHMRING_BUFFER_TOO_SMALL, SHMRING_EMPTY, SHMRING_OK};

/// A byte ring's consumer whose waits an event loop awaits. Close with
/// [`shmring_bytes_async_consumer_close`].
#[derive(Debug)]
pub struct ShmringBytesAsyncConsumer {
    rx: AsyncConsumer<ByteConsumer>,
    /// Sends a byte to the socket pair's other end when woken.
    waker: Waker,
    /// The end the caller watches (its fd handed out, owned here).
    readable: UnixDatagram,
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
        let io = |e: std::io::Error| Failure::invalid(F, &format!("a socket pair: {e}"));
        let (readable, writable) = UnixDatagram::pair().map_err(io)?;
        readable.set_nonblocking(true).map_err(io)?;
        writable.set_nonblocking(true).map_err(io)?;
        let made = Box::new(ShmringBytesAsyncConsumer {
            rx: AsyncConsumer::new(ring.ring().consumer()?),
            waker: Waker::from(Arc::new(SocketWaker(writable))),
            readable,
            scratch: Vec::new(),
        });
        let raw = made.readable.as_raw_fd();
        // SAFETY: both checked non-NULL; the caller's contract makes them
        // writable.
        unsafe {
            put(fd, raw, F)?;
            put(out, Box::into_raw(made), F)?;
        }
        Ok(SHMRING_OK)
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
        // Wakeups so far are spent: this poll looks at the ring.
        let mut drain = [0u8; 64];
        while rx.readable.recv(&mut drain).is_ok() {}
        let mut cx = Context::from_waker(&rx.waker);
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

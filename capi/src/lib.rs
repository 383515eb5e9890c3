//! shmring's rings from C: a stable C ABI over the Rust library, and the
//! header `include/shmring.h` generated from this crate.
//!
//! # The contract
//!
//! - **Handles are opaque** pointers made by a `*_create`/`*_open`/
//!   `*_producer`/`*_consumer` call and freed by the matching `*_close`
//!   (which takes NULL and does nothing). A handle is used by one thread at
//!   a time; a child made by `fork` closes its copies and opens its own.
//! - **Every call that can fail returns a status**: [`SHMRING_OK`] (0), a non-error
//!   outcome ([`SHMRING_EMPTY`], [`SHMRING_FULL`]) or an error code. After
//!   an error, [`shmring_last_error`] gives its message (which names the
//!   ring, the operation and the likely cause) on the calling thread.
//! - **Every pointer is checked**: a NULL handle, name or out-pointer, a
//!   NULL buffer with a non-zero length, a name that is not UTF-8: all are
//!   [`SHMRING_INVALID_ARGUMENT`], never a crash. Lengths are checked
//!   against the ring and the caller's buffer.
//! - **No panic crosses the boundary**: one is caught and reported as
//!   [`SHMRING_PANIC`].
//! - **Zero-copy**: [`shmring_bytes_reserve`] lends room in the ring to
//!   write in place until [`shmring_bytes_commit`]; [`shmring_bytes_read`]
//!   lends a message in place until [`shmring_bytes_release`]. While a
//!   producer or consumer lends, its other calls answer [`SHMRING_BUSY`].
//!   Copying calls (`try_send`, `try_recv`, ...) exist beside them, and
//!   batch ones ([`shmring_bytes_send_many`], [`shmring_bytes_recv_many`])
//!   that move many messages per call, for callers whose every crossing
//!   costs (Python's `ctypes`: a microsecond).
//! - **Awaiting**: [`shmring_bytes_async_consumer`] and
//!   [`shmring_bytes_async_producer`] make handles whose waits an event
//!   loop awaits (Python's `asyncio`, `epoll`): a file descriptor becomes
//!   readable when [`shmring_bytes_poll_recv`] (or
//!   [`shmring_bytes_poll_recv_many`]) may find a message, or
//!   [`shmring_bytes_poll_send`] (or [`shmring_bytes_poll_send_many`])
//!   room, woken by the `shmring-async` crate's waiter thread.
//! - **Typed rings**: [`shmring_typed_create`] and its siblings make or
//!   open SPSC and MPMC rings of a C type described by a
//!   [`ShmringLayout`] (schema name, version, size, alignment): the
//!   format of a Rust `Spsc<T>` or `Mpmc<T>` of a `#[repr(C)]` `T` of that
//!   layout, so either side makes the ring and the other opens it, and a
//!   ring of another layout is [`SHMRING_MISMATCH`]. Values are copied in
//!   and out, one ([`shmring_typed_try_push`], ...) or a batch
//!   ([`shmring_typed_push_many`], [`shmring_typed_pop_many`]) per call.
//! - **Inspection**: [`shmring_inspect`] reads a ring's header (kind,
//!   type, fill, live peers, counters) without joining it, as
//!   `shmring stat` does.
//! - **Versioned**: [`SHMRING_C_ABI_VERSION`] changes whenever a function
//!   of an earlier version changes or goes (a test compares the header
//!   with the prototypes each version recorded); adding a function keeps
//!   it. [`SHMRING_FORMAT_VERSION`] is the shared-memory format a ring
//!   made here has, the one Rust processes of the same format read.
//!
//! What the Rust library guarantees holds here too: a peer that writes
//! anything into shared memory cannot make a call read or write out of
//! bounds or hang; a message read in place may change under a reader
//! whose producers are not trusted (copy it out with the copying calls).
//!
//! ```c
//! ShmringBytes *ring;
//! ShmringBytesProducer *tx;
//! if (shmring_bytes_open_or_create("prices", 1 << 16, &ring) != SHMRING_OK ||
//!     shmring_bytes_producer(ring, &tx) != SHMRING_OK) {
//!     fprintf(stderr, "%s\n", shmring_last_error());
//!     return 1;
//! }
//! shmring_bytes_send_timeout(tx, (const uint8_t *)"101.5", 5, 1000000000);
//! shmring_bytes_producer_close(tx);
//! shmring_bytes_close(ring);
//! ```

mod awaiting;
mod bytes;
mod inspect;
mod lent;
mod status;
mod typed;

pub use awaiting::*;
pub use bytes::*;
pub use inspect::*;
pub use lent::*;
pub use status::*;
pub use typed::*;

/// The version of this C ABI. It changes when a function of an earlier
/// version changes its prototype or meaning, or goes; new functions keep
/// it.
pub const SHMRING_C_ABI_VERSION: u32 = 1;

/// The shared-memory format version of a ring made through this ABI (the
/// `version` word of its header; Rust processes of the same format open
/// it).
pub const SHMRING_FORMAT_VERSION: u32 = 7;

/// The C ABI's version: [`SHMRING_C_ABI_VERSION`] of the library loaded,
/// to compare with the header's at run time.
#[no_mangle]
pub extern "C" fn shmring_abi_version() -> u32 {
    SHMRING_C_ABI_VERSION
}

/// The library's version, as text ("0.1.0"): a static string.
#[no_mangle]
pub extern "C" fn shmring_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

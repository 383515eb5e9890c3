//! Lock-free, zero-copy message rings in POSIX shared memory.
//!
//! A ring lives in a segment under /dev/shm: a validated `#[repr(C)]` header
//! followed by slots. One process creates it, others open it by name, and
//! values move between them with no copy beyond writing them once.
//!
//! ```no_run
//! # fn main() -> shmring::Result<()> {
//! // Process A
//! let ring = shmring::Spsc::<u64>::create("quotes", 4096)?;
//! let mut tx = ring.producer()?;
//! tx.try_push(42).ok();
//!
//! // Process B
//! let ring = shmring::Spsc::<u64>::open("quotes")?;
//! let mut rx = ring.consumer()?;
//! assert_eq!(rx.try_pop(), Some(42));
//! # Ok(()) }
//! ```
//!
//! Every kind of ring is a [`Ring`] of its [`Flavor`]: [`Spsc<T>`],
//! [`Mpmc<T>`] and [`ByteRing`] share one lifecycle (create, open,
//! `open_or_create`, `open_timeout`, presence, `persist`) and add their
//! handles. Code that moves messages without caring which kind carries
//! them (a bridge, a recorder, bindings) takes any producer as a
//! [`MessageSender`] and any consumer as a [`MessageReceiver`]: messages of
//! bytes (a typed ring's value as its bytes), read in place in runs with
//! their ring positions. [`RuntimeSpsc`], [`RuntimeMpmc`] and
//! [`RuntimeBroadcast`] are the typed rings for a type known only at run
//! time (a C struct, a numpy
//! dtype, for other languages' bindings): the same format and protocol,
//! so each opens the other's rings.
//!
//! The folders of `src/` are the architecture, bottom to top: `platform/`
//! (segments, futexes, fences, liveness from the kernel, and `sync.rs`,
//! which swaps in loom's atomics for the model checks), `peers/` (roles,
//! claim records and the repair lock, the attach table), `format/` (the
//! header, its layout, stamped slots, the byte ring's framing), `wait.rs`
//! (blocking), `lifecycle/` (a ring by name: create, open, join, leave,
//! presence, options), `rings/` (each kind in a folder, split by role), and
//! `inspect.rs` on top.

//! # Guards
//!
//! Writes reserve in place and commit; reads borrow in place and release.
//! One rule for every write guard: what is not committed is not published
//! (also when the guard drops during a panic).
//!
//! | guard | lent by | commit | dropped without commit |
//! |---|---|---|---|
//! | [`WriteChunk`] | [`Producer::try_reserve`] | `commit(n)`: the first `n` slots | nothing is published |
//! | [`MpmcWriteSlot`] | [`MpmcProducer::try_reserve`] | `commit()` | a skip: consumers pass over the position |
//! | [`Grant`] | [`ByteProducer::try_reserve`] | `commit()` | the space becomes padding: nothing is delivered |
//!
//! | guard | lent by | dropped |
//! |---|---|---|
//! | [`ReadChunk`] | [`Consumer::try_read`] | releases the values it lent (or `release(n)` some) |
//! | [`MpmcReadSlot`] | [`MpmcConsumer::try_read`] | releases the value |
//! | [`Message`] | [`ByteConsumer::try_recv`] | releases the message |
//! | [`Batch`] | [`ByteConsumer::read_batch`] | releases every message in it, with one store |
//!
//! # Names
//!
//! One scheme for every kind: `try_x` never waits, `x_timeout` waits up to
//! its bound (nothing waits without one). Values are pushed and popped by
//! copy (`try_push`, `pop_timeout`); byte messages are sent and received
//! (`try_send`, `recv_timeout`). In place, every producer *reserves*
//! (`try_reserve`, `reserve_timeout`, then `commit`) and every typed
//! consumer *reads* (`try_read`, `read_timeout`, released on drop). The
//! earlier names (`write_chunk`, `read_chunk`, `claim`, MPMC `read`) stay
//! as deprecated aliases.
//!
//! Each call's error names only what can happen to it, and converts into
//! [`Error`], the umbrella of every other call, so `?` works anywhere:
//!
//! | calls | error | can be |
//! |---|---|---|
//! | `try_push` | [`Full<T>`] | full (the value handed back) |
//! | `push_timeout` | [`PushTimeout<T>`] | a [`SendError`] (the value handed back) |
//! | typed `reserve_timeout`; every byte producer call | [`SendError`] | full, too large, timed out, corrupt |
//! | `try_pop`, `try_read`, typed `try_reserve` | none: `None` | empty, or full |
//! | `pop_timeout`, `read_timeout`, `try_recv`, `recv_timeout`, `read_batch` | [`RecvError`] | timed out, closed, stalled, corrupt |
//! | create, open, handles, repair, inspection | [`Error`] | any of its variants |
//!
//! # Your own types
//!
//! Rings carry any [`Pod`] type: plain bytes, valid for every bit pattern,
//! so whatever another process writes is a valid value. Derive it through
//! shmring's re-export, with no dependency of your own on bytemuck:
//!
//! ```
//! #[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
//! #[bytemuck(crate = "shmring::bytemuck")]
//! #[repr(C)]
//! struct Quote {
//!     price: f64,
//!     qty: u32,
//!     venue: u32, // 8 + 4 + 4: no padding bytes
//! }
//!
//! let name = format!("shmring-doc-pod-{}", std::process::id());
//! let ring = shmring::Spsc::<Quote>::create(&name, 64)?;
//! let quote = Quote { price: 101.5, qty: 10, venue: 3 };
//! ring.producer()?.try_push(quote).unwrap();
//! assert_eq!(ring.consumer()?.try_pop(), Some(quote));
//! # Ok::<(), shmring::Error>(())
//! ```
//!
//! The type must be `#[repr(C)]` (or `transparent`) and have **no padding**:
//! the derive refuses a struct whose fields leave gaps (a `u8` before a
//! `u64`, or a size that is not a multiple of the alignment), because
//! padding bytes are uninitialized and would be copied into shared memory.
//! Make the gaps explicit fields (`_pad: [u8; 7]`) or reorder the fields
//! from the largest alignment down. Both processes must agree on the
//! layout: the header records the element's size, alignment and
//! [`Schema`] (by default the type's name without its module path, so the
//! same struct defined in two services' crates matches; or one given
//! explicitly, with a version), and `open` refuses a mismatch with both
//! sides named ([`Error::TypeMismatch`]).
//!
//! # Names, restarts and shutdown
//!
//! A ring's name belongs to the processes using it, together, not to its
//! creator: services start in any order with `open_or_create` (exactly one
//! creates) or `open_timeout` (waits for the creator), and the last process
//! to drop its handles removes the name. A service killed at any moment and
//! started again with the same code gets its ring back: its new handle
//! takes over the dead one's role or claims and resumes where it stopped,
//! with nothing committed lost or delivered twice. If every user dies
//! without dropping its handles, the name stays so that restarted services
//! resume the ring; it is then stale ([`SegmentInfo::is_stale`]) and
//! [`CreateOptions::replace_stale`] or `shmring rm --stale` remove it.
//! The last user to leave removes the ring with whatever it still holds;
//! [`Spsc::persist`] (or [`CreateOptions::persist`]) keeps it after the
//! last user leaves, until [`remove`]. Looking in ([`inspect`]) is not
//! using. A producer that is done calls
//! `close()`; its consumers drain what was committed, then get
//! [`RecvError::Closed`]. `has_producer()` and `has_consumer()` ask the kernel
//! whether the other side is there.
//!
//! ```
//! use shmring::{Error, Spsc};
//! # let name = format!("shmring-doc-names-{}", std::process::id());
//! let a = Spsc::<u64>::open_or_create(&name, 64)?; // the first service creates
//! let b = Spsc::<u64>::open_or_create(&name, 64)?; // the second opens
//! assert!(a.is_creator() && !b.is_creator());
//! drop(a); // the creator exits: the ring stays, in use by b
//! assert!(Spsc::<u64>::open(&name).is_ok());
//! drop(b); // the last user out removes the name
//! assert!(matches!(Spsc::<u64>::open(&name), Err(Error::NotFound { .. })));
//! # Ok::<(), shmring::Error>(())
//! ```
//!
//! # Trust
//!
//! Shared memory is untrusted: whatever a peer writes in a segment, every
//! safe call stays in bounds and terminates (a corrupt index is
//! [`Error::Corrupt`], a garbage value is still a valid `Pod`). The
//! in-place views (`&T`, `&[u8]`, `&mut T`, `&mut [u8]` lent by guards and
//! chunks, SPSC read chunks' `get` and `iter` included) are sound only between peers that follow the protocol, since a
//! hostile peer could write the memory while it is lent; and any process
//! that can write the segment file can `ftruncate` it, after which every
//! mapping faults (SIGBUS). With peers you do not trust, read through the
//! copying calls (`try_pop`, `pop_timeout`, `ReadChunk::read`: a volatile
//! copy out of the slot; [`Message::copy_into`] for byte messages) and keep write access
//! to the segment from them.

// Lints as policy: `[workspace.lints]` in the top Cargo.toml (every public
// item documented and debuggable, every unsafe operation in a block of its
// own that says why it holds), and CI denies warnings.
// Under loom, leases and looks are stand-ins that hold nothing of the
// kernel's, so the drops that let go of real ones drop plain values there.
#![cfg_attr(shmring_loom, allow(clippy::drop_non_drop))]

// The folders are the layers, bottom to top; a module imports only from
// its own layer or below (`tests/architecture.rs` checks it).
/// The README's code, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// The layers, bottom to top (one declaration per group, so that rustfmt
// keeps this order).

// The plain values every layer names (ring kinds, type layouts, roles),
// and the error type that reports them.
mod kind;

mod error;

// Linux, wrapped once: shm segments, futexes, fences, kernel-held liveness.
mod platform;

// Who holds what in a header: roles, claim records, the attach table.
mod peers;

// The shared format: header, layout, stamped slots, record framing.
mod format;

// Blocking: wait strategies and the wakeup protocol.
mod wait;

// What every ring kind shares: by name, presence, persistence.
mod lifecycle;

// What a waiter outside the library (shmring-async) needs of a handle.
#[doc(hidden)]
pub mod hook;

// The rings: SPSC, MPMC, byte messages, broadcast, each split by role.
mod rings;

// Patterns built from the rings' handles: request-reply.
mod services;

// Looking into segments from outside: ls, stat, stale segments.
mod inspect;

/// The SPSC ring's types under one scheme shared by the three rings:
/// `spsc::Producer`, `mpmc::Producer`, `bytes::Producer`, and so on. The
/// crate root has them too, under the names they first had.
pub mod spsc {
    pub use crate::rings::spsc::{Consumer, Producer, ReadChunk, Spsc, WriteChunk};
}

/// The MPMC ring's types (see [`spsc`] for the scheme).
pub mod mpmc {
    pub use crate::rings::mpmc::{
        Mpmc, MpmcConsumer as Consumer, MpmcProducer as Producer, MpmcReadSlot as ReadSlot,
        MpmcStream as Stream, MpmcWriteSlot as WriteSlot,
    };
}

/// The byte ring's types (see [`spsc`] for the scheme).
pub mod bytes {
    pub use crate::rings::byte_ring::{
        Batch, BatchIter, ByteConsumer as Consumer, ByteProducer as Producer, ByteRing, Grant,
        Message,
    };
}

/// The broadcast ring's types (see [`spsc`] for the scheme).
pub mod broadcast {
    pub use crate::rings::broadcast::{
        Broadcast, BroadcastProducer as Producer, BroadcastReadChunk as ReadChunk,
        BroadcastWriteChunk as WriteChunk, Policy, Start, Subscriber, SubscriberOptions,
    };
}

/// Rings whose element type is known only at run time (a C struct, a
/// numpy dtype), for other languages' bindings; see
/// [`RuntimeSpsc`].
pub mod runtime {
    pub use crate::rings::runtime::{
        RuntimeBroadcast as Broadcast, RuntimeBroadcastProducer as BroadcastProducer,
        RuntimeConsumer as Consumer, RuntimeFlavor as Flavor, RuntimeMpmc as Mpmc,
        RuntimeMpmcConsumer as MpmcConsumer, RuntimeMpmcProducer as MpmcProducer,
        RuntimeProducer as Producer, RuntimeReadSlot as ReadSlot, RuntimeRing as Ring,
        RuntimeSpsc as Spsc, RuntimeSubscriber as Subscriber, RuntimeWriteSlot as WriteSlot,
    };
}

pub use services::request_reply;

/// bytemuck, re-exported so that a user's own types can derive [`Pod`]
/// without depending on it themselves (see [the crate docs](crate#your-own-types)).
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use error::{Error, Full, Overrun, PushTimeout, RecvError, Result, SendError};
#[cfg(shmring_loom)]
#[doc(hidden)]
pub use format::header::model as header_model;
pub use format::header::offsets as header_offsets;
pub use inspect::{
    inspect, inspect_service, inspect_with, list, remove, remove_if_stale, SegmentInfo,
    ServiceInfo, SideCounters, SubscriberInfo,
};
pub use kind::{InvalidSchema, RingKind, Role, Schema, TypeLayout, SCHEMA_NAME_LEN};
pub use lifecycle::options::{CreateOptions, OpenOptions};
pub use lifecycle::{Flavor, Ring};
pub use peers::attach::Attached;
pub use platform::futex::{futex_calls, FutexCalls};
pub use platform::name::SegmentName;
pub use rings::broadcast::{
    Broadcast, BroadcastFlavor, BroadcastProducer, BroadcastReadChunk, BroadcastWriteChunk, Policy,
    Start, Subscriber, SubscriberOptions,
};
pub use rings::byte_ring::{
    Batch, BatchIter, ByteConsumer, ByteProducer, ByteRing, BytesFlavor, Grant, Message,
};
pub use rings::messages::{AfterRun, MessageLen, MessageReceiver, MessageSender, Run, RunIter};
pub use rings::mpmc::{
    Mpmc, MpmcConsumer, MpmcFlavor, MpmcProducer, MpmcReadSlot, MpmcStream, MpmcWriteSlot,
};
pub use rings::runtime::{
    RuntimeBroadcast, RuntimeBroadcastProducer, RuntimeConsumer, RuntimeFlavor, RuntimeMpmc,
    RuntimeMpmcConsumer, RuntimeMpmcProducer, RuntimeProducer, RuntimeReadSlot, RuntimeRing,
    RuntimeSpsc, RuntimeSubscriber, RuntimeWriteSlot,
};
pub use rings::spsc::{Consumer, Producer, ReadChunk, Spsc, SpscFlavor, WriteChunk};
pub use wait::WaitStrategy;

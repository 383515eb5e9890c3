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
//! The file layout is the architecture, bottom to top:
//! `sync` (std or loom atomics), `segment`, `name` and `lease` (the
//! platform; `lease` is liveness from the kernel), `process` and `role`
//! (who holds what), `header` and `layout` (the format),
//! `slot` and `ring` (typed memory), `record` (framing of byte messages),
//! `wait` (blocking), and the rings themselves (`spsc`, `mpmc`, `byte_ring`).

//! # Trust
//!
//! Shared memory is untrusted: whatever a peer writes in a segment, every
//! safe call stays in bounds and terminates (a corrupt index is
//! [`Error::Corrupt`], a garbage value is still a valid `Pod`). The
//! in-place views (`&T`, `&[u8]`, `&mut T`, `&mut [u8]` lent by guards and
//! chunks) are sound only between peers that follow the protocol, since a
//! hostile peer could write the memory while it is lent; and any process
//! that can write the segment file can `ftruncate` it, after which every
//! mapping faults (SIGBUS). With peers you do not trust, read through the
//! copying calls (`try_pop`, `pop_timeout`: a volatile copy out of the
//! slot; [`Message::copy_into`] for byte messages) and keep write access
//! to the segment from them.

// Lints as policy (CI denies warnings): every public item documented and
// debuggable, every unsafe operation in a block of its own that says why
// it holds.
#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod attach;
mod barrier;
mod byte_ring;
mod claims;
mod error;
mod futex;
mod header;
#[cfg(not(shmring_loom))]
mod inspect;
mod layout;
mod lease;
mod mpmc;
mod name;
mod process;
mod record;
mod ring;
mod role;
mod segment;
mod slot;
mod spsc;
mod sync;
mod wait;

pub use attach::Attached;
pub use byte_ring::{Batch, BatchIter, ByteConsumer, ByteProducer, ByteRing, Grant, Message};
pub use bytemuck::{Pod, Zeroable};
pub use error::{Error, PushTimeout, Result, RingKind, Role, TypeLayout};
pub use futex::{futex_calls, FutexCalls};
#[cfg(shmring_loom)]
#[doc(hidden)]
pub use header::model as header_model;
pub use header::offsets as header_offsets;
#[cfg(not(shmring_loom))]
pub use inspect::{inspect, inspect_with, list, remove_if_stale, SegmentInfo};
pub use mpmc::{Mpmc, MpmcConsumer, MpmcProducer, MpmcReadSlot, MpmcWriteSlot};
pub use name::SegmentName;
pub use segment::{remove, CreateOptions, OpenOptions};
pub use spsc::{Consumer, Producer, ReadChunk, Spsc, WriteChunk};
pub use wait::WaitStrategy;

//! What the `shmring` command shares with the root crate's benches: the
//! typed protocol of a worker process (the demo's and the round-trip
//! benches' other side) and the bare floors rings are measured against.
//! The command itself (`src/main.rs` and its modules) is the binary.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod floors;
pub mod worker;

//! What the `shmring` command shares with the root crate's benches: the
//! typed protocol of a worker process (the demo's and the round-trip
//! benches' other side) and the bare floors rings are measured against.
//! The command itself (`src/main.rs` and its modules) is the binary.

pub mod floors;
pub mod worker;

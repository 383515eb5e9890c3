//! What the `shmring` command's demo and the root crate's benches run
//! against: the typed protocol of a worker process (their other side, this
//! executable re-run with a hidden argument) and the bare floors rings are
//! measured against (a two-line ping-pong, a futex wake). A crate of its
//! own, so that the benches use it without depending on the command (no
//! dev-dependency cycle), and so that its `unsafe` (the floors' raw mapping
//! and futex calls) stays out of the command.

pub mod floors;
pub mod placement;
pub mod worker;

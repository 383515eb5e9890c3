//! The platform: what Linux provides, wrapped once. Nothing here knows
//! about rings.

pub(crate) mod barrier; // asymmetric fences (membarrier)
#[cfg(not(shmring_loom))]
pub(crate) mod fork; // a forked child neither acts for its parent nor keeps its locks
pub(crate) mod futex; // sleep and wake on a word in shared memory
pub(crate) mod lease; // liveness from the kernel: a held word's lock
pub(crate) mod name; // validated segment names
#[cfg(not(shmring_loom))]
pub(crate) mod ofd; // open-file-description locks on a descriptor
pub(crate) mod process; // holder ids: a pid for operators, a unique tag
pub(crate) mod segment; // shm files: create, open, map, unlink
pub(crate) mod sync; // std atomics, or loom's under cfg(shmring_loom)
pub(crate) mod watch; // waiting for a name to appear (inotify)

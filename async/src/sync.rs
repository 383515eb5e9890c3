//! The one place that picks std or loom (under `cfg(shmring_loom)`), as in
//! the core crate, so the loom models check the shipped reactor.

#[cfg(not(shmring_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(shmring_loom))]
pub(crate) use std::thread::{spawn, JoinHandle};

#[cfg(shmring_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(shmring_loom)]
pub(crate) use loom::thread::{spawn, JoinHandle};

pub(crate) use shmring::hook::AtomicU32;

/// Lock, ignoring poison: the table stays consistent across a panicking
/// waker (every update is a single assignment under the lock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

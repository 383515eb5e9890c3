//! The one place that decides which atomics and cells the rings use.
//!
//! Under `cfg(shmring_loom)` (a name of our own, so that an application
//! model-checking its own code with `--cfg loom` still gets the real rings)
//! every atomic, cell and spin hint comes from loom, so the
//! model tests in `loom-tests/` check the code that ships, not a copy of it
//! (the same trick as tokio's `src/loom/`). The only other users of
//! `std::sync::atomic` are process-local flags and counters that no model
//! involves (`process.rs`, `futex.rs`'s call counters, `barrier.rs`'s
//! registration mode, `segment.rs`'s unlink-guard flag).

#[cfg(not(shmring_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(shmring_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Relax the CPU inside a spin loop (a `pause` on x86; a loom yield point
/// under the model checker, so spinning threads let others make progress).
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(shmring_loom))]
    core::hint::spin_loop();
    #[cfg(shmring_loom)]
    loom::thread::yield_now();
}

/// Give the rest of this time slice to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(shmring_loom))]
    std::thread::yield_now();
    #[cfg(shmring_loom)]
    loom::thread::yield_now();
}

/// An `UnsafeCell` with loom's closure API, so that under the model checker
/// every read and write of a slot's value is tracked and a missing
/// happens-before edge is reported as a data race.
#[cfg(not(shmring_loom))]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(shmring_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(shmring_loom)]
pub(crate) use loom::cell::UnsafeCell;

//! The platform's sleep/wake primitive: Linux futexes on a u32 in shared
//! memory (no `FUTEX_PRIVATE_FLAG`, because sleeper and waker are usually
//! different processes).
//!
//! Under `cfg(shmring_loom)` a futex is modelled with one loom `Mutex` + `Condvar`:
//! `wait` checks the word and sleeps atomically with respect to `wake`, as the
//! kernel does, so a lost wakeup in the protocol above shows up as a loom
//! deadlock.

use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::platform::sync::AtomicU32;

static WAITS: StdAtomicU64 = StdAtomicU64::new(0);
static WAKES: StdAtomicU64 = StdAtomicU64::new(0);

/// Futex system calls made by this process so far, for measuring how often
/// the rings fall back to the kernel.
///
/// ```
/// let before = shmring::futex_calls();
/// // ... run a workload ...
/// let after = shmring::futex_calls();
/// let sleeps = after.waits - before.waits; // how often a side went to sleep
/// # let _ = sleeps;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FutexCalls {
    /// `FUTEX_WAIT` calls (a side went to sleep).
    pub waits: u64,
    /// `FUTEX_WAKE` calls (a side woke a sleeper).
    pub wakes: u64,
}

/// Futex calls made by this process so far.
pub fn futex_calls() -> FutexCalls {
    FutexCalls {
        waits: WAITS.load(Relaxed),
        wakes: WAKES.load(Relaxed),
    }
}

/// Sleep while `*word == expected`, for at most `timeout`. Returns on a wake,
/// a changed word (`EAGAIN`), a signal (`EINTR`), the timeout, or spuriously:
/// the caller re-checks its condition and its deadline either way.
#[cfg(not(shmring_loom))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    WAITS.fetch_add(1, Relaxed);
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 (in shared memory or ours) for the
    // whole call; the kernel only reads it. `ts` outlives the call. A relative
    // FUTEX_WAIT timeout is measured on CLOCK_MONOTONIC.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wake every process sleeping on `word`.
#[cfg(not(shmring_loom))]
pub(crate) fn wake_all(word: &AtomicU32) {
    WAKES.fetch_add(1, Relaxed);
    // SAFETY: as in `wait`; FUTEX_WAKE does not even read the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(shmring_loom)]
mod model {
    use loom::sync::{Condvar, Mutex};

    pub(super) struct Futexes {
        pub(super) lock: Mutex<()>,
        pub(super) wakeup: Condvar,
    }

    loom::lazy_static! {
        pub(super) static ref FUTEXES: Futexes = Futexes {
            lock: Mutex::new(()),
            wakeup: Condvar::new(),
        };
    }
}

/// Model: the check and the sleep happen under the registry lock that
/// `wake_all` takes, like the kernel's hash-bucket lock. The timeout is not
/// modelled: a model sleeper is only ever woken, so a lost wakeup deadlocks.
#[cfg(shmring_loom)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
    WAITS.fetch_add(1, Relaxed);
    let f = &*model::FUTEXES;
    let guard = f.lock.lock().unwrap();
    // loom: not modelled (this is the model of the kernel's check itself)
    if word.load(crate::platform::sync::Ordering::SeqCst) == expected {
        drop(f.wakeup.wait(guard).unwrap());
    }
}

/// Model of `FUTEX_WAKE`: wake every model sleeper.
#[cfg(shmring_loom)]
pub(crate) fn wake_all(_word: &AtomicU32) {
    WAKES.fetch_add(1, Relaxed);
    let f = &*model::FUTEXES;
    let _guard = f.lock.lock().unwrap();
    f.wakeup.notify_all();
}

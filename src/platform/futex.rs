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
    futex_wake(word);
}

/// `FUTEX_WAKE` of every sleeper on `word`.
#[cfg(not(shmring_loom))]
fn futex_wake(word: &AtomicU32) {
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

/// How a [`wait_any`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitAny {
    /// Woken, a word differed from its expected value, a signal, or
    /// spuriously: look at the words.
    Woken,
    /// The timeout passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (Linux before 5.16, or a seccomp
    /// filter refuses it): nothing waited.
    Unsupported,
}

/// One entry of the kernel's `struct futex_waitv` (24 bytes; libc's has a
/// private field and no constructor).
#[cfg(not(shmring_loom))]
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// Most words one [`wait_any`] takes (the kernel's `FUTEX_WAITV_MAX`).
pub const WAIT_ANY_MAX: usize = 128;

/// Sleep until one of `words` is woken or differs from its expected
/// value, for at most `timeout` (`None`: no limit). Every word is a
/// shared futex (no `FUTEX2_PRIVATE`), so a `FUTEX_WAKE` from another
/// process reaches it, as in `wait`. At most [`WAIT_ANY_MAX`] words; more
/// is `Woken` at once (the caller shards).
#[cfg(not(shmring_loom))]
pub fn wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> WaitAny {
    if words.is_empty() || words.len() > WAIT_ANY_MAX {
        return WaitAny::Woken;
    }
    let mut v = [const {
        FutexWaitv {
            val: 0,
            uaddr: 0,
            flags: 0,
            reserved: 0,
        }
    }; WAIT_ANY_MAX];
    for (entry, (word, expected)) in v.iter_mut().zip(words) {
        *entry = FutexWaitv {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as u64,
            flags: libc::FUTEX2_SIZE_U32 as u32,
            reserved: 0,
        };
    }
    // The timeout is absolute, on CLOCK_MONOTONIC.
    let deadline = timeout.map(|t| {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
        libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(t.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
                .saturating_add((nanos / 1_000_000_000) as libc::time_t),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let ts = deadline
        .as_ref()
        .map_or(std::ptr::null(), |d| d as *const libc::timespec);
    WAITS.fetch_add(1, Relaxed);
    // SAFETY: `v` holds `words.len()` initialised entries, each naming a
    // live, aligned u32 that the caller keeps mapped for the whole call (the
    // kernel only reads them); `ts` is null or points at `deadline`, which
    // outlives the call; the flags argument is 0 as the kernel requires.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            words.len() as libc::c_uint,
            0u32,
            ts,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitAny::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => WaitAny::TimedOut,
        Some(libc::ENOSYS) | Some(libc::EPERM) => WaitAny::Unsupported,
        // EAGAIN (a word differed), EINTR, and anything else: look again.
        _ => WaitAny::Woken,
    }
}

/// Wake a waiter of this process sleeping on `word` (a word of its own,
/// not a ring's): not counted in [`futex_calls`], which counts the rings'
/// own waits and wakes.
#[cfg(not(shmring_loom))]
pub fn wake_local(word: &AtomicU32) {
    futex_wake(word);
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

/// Model of `futex_waitv`: like [`wait`], for several words at once; the
/// timeout is not modelled (a lost wakeup deadlocks).
#[cfg(shmring_loom)]
pub fn wait_any(words: &[(&AtomicU32, u32)], _timeout: Option<Duration>) -> WaitAny {
    WAITS.fetch_add(1, Relaxed);
    let f = &*model::FUTEXES;
    let guard = f.lock.lock().unwrap();
    let differs = |&(w, v): &(&AtomicU32, u32)| {
        // loom: not modelled (this is the model of the kernel's check itself)
        w.load(crate::platform::sync::Ordering::SeqCst) != v
    };
    if !words.iter().any(differs) {
        drop(f.wakeup.wait(guard).unwrap());
    }
    WaitAny::Woken
}

/// Model of [`wake_local`]: as `wake_all`.
#[cfg(shmring_loom)]
pub fn wake_local(_word: &AtomicU32) {
    let f = &*model::FUTEXES;
    let _guard = f.lock.lock().unwrap();
    f.wakeup.notify_all();
}

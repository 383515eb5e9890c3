//! Asymmetric fences for the wakeup protocol (see `wait.rs`).
//!
//! The protocol needs a SeqCst fence on both sides: the notifier, after every
//! publication, and the waiter, before it sleeps. A full fence costs tens of
//! cycles, which would more than double the cost of a push. Notifying is hot
//! and sleeping is rare, so the cost is moved to the sleeper: the notifier
//! issues only a compiler fence, and the waiter calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which makes every CPU
//! running a registered process execute a full barrier (a CPU that is not
//! running one gets a full barrier from the context switch anyway). This is
//! the same pairing as liburcu's and folly's asymmetric barriers.
//!
//! Every process that maps a ring registers (`init`), so that it can take the
//! light side. A process that cannot register (an old kernel, a seccomp
//! filter) uses full fences on both sides; a waiter that cannot issue the
//! heavy barrier uses a full fence and sleeps in short slices, so that if a
//! registered peer's light fence does not pair with it, a wakeup is late by
//! at most a slice, never lost.
//!
//! Under loom both sides are one read-modify-write of one location (see
//! the model's `imp` below).

#[cfg(not(shmring_loom))]
mod imp {
    use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};
    use std::sync::OnceLock;

    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
    const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

    /// This process registered: it may use the light side.
    const REGISTERED: u8 = 1;
    /// It may not: full fences on the light side.
    const UNREGISTERED: u8 = 2;

    static MODE: AtomicU8 = AtomicU8::new(0);
    static HEAVY_AVAILABLE: OnceLock<bool> = OnceLock::new();

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes integers only and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0u32, 0i32) }
    }

    fn heavy_available() -> bool {
        *HEAVY_AVAILABLE.get_or_init(|| {
            let mask = membarrier(MEMBARRIER_CMD_QUERY);
            mask >= 0 && mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED as libc::c_long != 0
        })
    }

    /// Register this process as a target of other processes' heavy barriers.
    /// Called before this process touches any ring; cheap after the first call.
    pub(crate) fn init() {
        if MODE.load(Ordering::Relaxed) != 0 {
            return;
        }
        let ok = heavy_available() && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
        // A flag for this process alone: no other memory hangs on it.
        MODE.store(
            if ok { REGISTERED } else { UNREGISTERED },
            Ordering::Relaxed,
        );
    }

    /// The notifier's side: a full fence in effect, when paired with `heavy`.
    #[inline(always)]
    pub(crate) fn light() {
        if MODE.load(Ordering::Relaxed) == REGISTERED {
            compiler_fence(Ordering::SeqCst); // loom: not modelled
        } else {
            fence(Ordering::SeqCst); // loom: not modelled
        }
    }

    /// The waiter's side. Returns false if it could only issue a local full
    /// fence, which does not pair with a registered peer's `light`.
    pub(crate) fn heavy() -> bool {
        let paired = heavy_available() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
        fence(Ordering::SeqCst); // loom: not modelled
        paired
    }
}

/// The pair as the model checks it: both sides are one read-modify-write
/// (AcqRel) of one location, which is totally ordered, so of a light and a
/// heavy side, the later acquires everything before the earlier, which is
/// the pairing promised above, and no more. Not SeqCst fences: loom's
/// synchronize with every earlier one and act as release fences for the
/// stores that follow, which a compiler fence (the registered light side)
/// does not, so they would hide orderings production needs.
#[cfg(shmring_loom)]
mod imp {
    use crate::platform::sync::{AtomicU64, Ordering};

    loom::lazy_static! {
        static ref PAIR: AtomicU64 = AtomicU64::new(0);
    }

    pub(crate) fn init() {}

    pub(crate) fn light() {
        PAIR.fetch_add(1, Ordering::AcqRel); // loom: not modelled (the model itself)
    }

    pub(crate) fn heavy() -> bool {
        PAIR.fetch_add(1, Ordering::AcqRel); // loom: not modelled (the model itself)
        true
    }
}

pub(crate) use imp::{heavy, init, light};

//! What a waiter outside the library needs of a handle: the word its side
//! sleeps on, and the steps of the wakeup protocol (`wait.rs`) done for it.
//! For `shmring-async`, which waits for many rings on one thread; not a
//! stable interface (hidden from the docs).
//!
//! An outside waiter follows the protocol of `wait.rs` with its steps
//! split between a task and a waiter thread:
//!
//! 1. the task reads [`WakeWord::seq`] (the snapshot),
//! 2. [`WakeWord::arm`]s the word (`wanted = 1`, then the heavy barrier),
//! 3. records the snapshot for its waiter thread,
//! 4. looks at its condition again, and only if it still fails
//! 5. lets the waiter thread sleep on the snapshot ([`wait_any`]), which
//!    returns once any word it sleeps on differs from its snapshot or was
//!    woken (the kernel compares them as the sleep begins).
//!
//! A notifier is unchanged: it wakes the word when it finds `wanted` set,
//! so a ring nobody waits on still costs its notifier no system call.
//! Each armed word is counted in `sleepers` (for `stat`) until
//! [`WakeWord::disarm`].

use std::sync::Arc;

use crate::format::header::{Event, Header};
use crate::platform::barrier;
pub use crate::platform::futex::{wait_any, wake_local, WaitAny, WAIT_ANY_MAX};
use crate::platform::sync::Ordering;
/// The atomic a waiter's own futex word is made of (loom's, under the model).
#[cfg(shmring_loom)]
pub use loom::sync::atomic::AtomicU32;
/// The atomic a waiter's own futex word is made of: std's, or loom's under
/// `cfg(shmring_loom)` (so a model of the waiter sleeps in the model's
/// futex).
#[cfg(not(shmring_loom))]
pub use std::sync::atomic::AtomicU32;

/// Memory that starts with a ring header.
pub(crate) trait HasHeader: Send + Sync {
    fn header(&self) -> &Header;
    fn ring_name(&self) -> &str;
}

/// The futex word one side of a ring sleeps on, keeping the ring mapped
/// while it lives.
#[derive(Clone)]
pub struct WakeWord {
    mem: Arc<dyn HasHeader>,
    consumers: bool,
    /// Looks for dead peers and repairs what they left (MPMC and byte
    /// rings: a peer that dies holding a claim wakes no one).
    repair: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for WakeWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeWord")
            .field("ring", &self.mem.ring_name())
            .field(
                "side",
                &if self.consumers {
                    "consumers"
                } else {
                    "producers"
                },
            )
            .finish()
    }
}

impl WakeWord {
    /// The word consumers (or producers) of the ring in `mem` sleep on.
    pub(crate) fn new(mem: Arc<dyn HasHeader>, consumers: bool) -> Self {
        WakeWord {
            mem,
            consumers,
            repair: None,
        }
    }

    /// A word whose waiter must run `repair` now and then.
    pub(crate) fn repairing(self, repair: impl Fn() + Send + Sync + 'static) -> Self {
        WakeWord {
            repair: Some(Arc::new(repair)),
            ..self
        }
    }

    /// Whether a waiter must look for dead peers now and then, as the
    /// blocking calls do between slices of their wait.
    pub fn repairs(&self) -> bool {
        self.repair.is_some()
    }

    /// Look for dead peers and repair what they left; a repair that
    /// publishes wakes the word as any notifier does.
    pub fn repair(&self) {
        if let Some(r) = &self.repair {
            r();
        }
    }

    fn event(&self) -> &Event {
        let h = self.mem.header();
        match self.consumers {
            true => &h.consumer_event,
            false => &h.producer_event,
        }
    }

    /// The ring's name, for errors.
    pub fn ring_name(&self) -> &str {
        self.mem.ring_name()
    }

    /// Step 1: the snapshot to sleep on.
    pub fn seq(&self) -> u32 {
        // Acquire, as the same load in `wait::wait_until`: a waiter that
        // reads a bumped `seq` sees what was published before the bump.
        // ordering-justified(load-buffering): the execution it excludes
        // reads the notifier's later bump before its earlier publication,
        // which loom never schedules (see `wait::wait_until`).
        self.event().seq.load(Ordering::Acquire)
    }

    /// Step 3: announce a sleeper and issue the heavy barrier; true when
    /// the barrier pairs with the notifiers' light one (else the waiter
    /// cannot rely on being woken and must look again within a
    /// millisecond, as `wait::wait_until` does).
    pub fn arm(&self) -> bool {
        let event = self.event();
        event.sleepers.fetch_add(1, Ordering::Relaxed);
        // Relaxed: the heavy barrier orders it before the re-check (as in
        // `wait::wait_until`).
        event.wanted.swap(1, Ordering::Relaxed);
        barrier::heavy()
    }

    /// Wake whoever sleeps on the word, as a notifier does (a look that
    /// found something for the waiting task other than a message).
    pub(crate) fn wake(&self) {
        crate::wait::wake(self.event());
    }

    /// The armed sleeper is gone (woken, or no longer waiting).
    pub fn disarm(&self) {
        self.event().sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The word itself, for [`wait_any`].
    pub fn futex(&self) -> &AtomicU32 {
        &self.event().seq
    }

    /// Whether the other side closed the ring (Acquire: what it published
    /// before is visible).
    pub fn is_closed(&self) -> bool {
        crate::wait::is_closed(self.event())
    }
}

/// A handle an outside waiter can wait for.
pub trait Waitable {
    /// The word this handle's side sleeps on (with its repair, where the
    /// ring kind needs one).
    fn wake_word(&self) -> WakeWord;
}

/// This process's fork incarnation and pid: they differ in every forked
/// child (even one whose pid, in a new pid namespace, equals its
/// parent's), so per-process state (a waiter thread) can be rebuilt there.
pub fn incarnation() -> (u64, u32) {
    #[cfg(not(shmring_loom))]
    return crate::platform::fork::incarnation();
    // A model is one process that never forks.
    #[cfg(shmring_loom)]
    (1, 0)
}

impl<S: Sync> HasHeader for crate::lifecycle::memory::RingMemory<S> {
    fn header(&self) -> &Header {
        crate::lifecycle::memory::RingMemory::header(self)
    }
    fn ring_name(&self) -> &str {
        self.segment().name().as_str()
    }
}

//! How a side waits for the other: spin, then yield, then sleep on a futex,
//! and how the other side wakes it without a system call per message.
//!
//! The two sides wait differently by default. A consumer waiting for a
//! value spins long, for the lowest latency; a producer waiting for room
//! spins briefly, then yields between looks
//! ([`WaitStrategy::producer_default`]): it has a full ring queued ahead of
//! it, and looking at the consumer's index at spinning speed slows the
//! consumer (measured there).
//!
//! # The wakeup protocol
//!
//! Each direction has an [`Event`]: a futex word `seq` and a flag `wanted`
//! that says someone may sleep on it. A waiter that runs out of patience
//!
//! 1. reads `seq`,
//! 2. announces itself (`wanted = 1`),
//! 3. issues a full fence (the heavy side of `barrier.rs`), then re-checks
//!    its condition,
//! 4. sleeps on `seq` only if the condition still fails and `seq` is
//!    unchanged (the kernel checks that atomically).
//!
//! A notifier, after publishing (a Release store the waiter's condition
//! reads), issues a fence (the light side of `barrier.rs`: a compiler fence
//! that the waiter's heavy barrier turns into a full one), then reads
//! `wanted`; only if it is set does it clear it, bump `seq` and wake every
//! sleeper (`FUTEX_WAKE` of all).
//!
//! The two fences are the classic store-buffering (Dekker) pair: in their
//! single total order, either the waiter's fence comes first, so the
//! notifier sees `wanted` and wakes it, or the notifier's comes first,
//! so the waiter's re-check sees the publication and it does not sleep.
//! Without them both sides could read stale values and the waiter would
//! sleep through its wakeup (until its timeout). A waiter that slept and
//! the notifier's `seq` bump are ordered by the futex itself: the kernel
//! refuses to sleep on a `seq` that has already changed.
//!
//! Why a flag the notifier clears, not a count of sleepers: a waiter whose
//! flag a notifier cleared before it slept read `seq` before that notifier
//! bumped it, so the kernel does not let it sleep (or the wake reaches it);
//! a waiter that read the bumped `seq` sets the flag after the clear. Every
//! sleeper is woken and sets the flag again if it sleeps again. So a waiter
//! that dies asleep leaves a flag that costs the next notifier one wake, where
//! a count would stay raised and cost every notification a system call for
//! the life of the ring. (`sleepers` still counts waiters, for `stat`,
//! which caps it by the side's live handles, since the dead stay counted;
//! `sleeps` and `wakes` count futex waits and wakes since creation, on
//! the line these paths write anyway.)
//!
//! A peer that dies never wakes anyone, so every wait has a deadline.
//!
//! # Waiters outside the library
//!
//! `shmring-async` parks tasks instead of threads, through `hook.rs`: the
//! task does steps 1 to 3 and the re-check, and a waiter thread of its
//! process does step 4 for many words at once (`futex_waitv`, each word
//! with the snapshot its task read). The notifier cannot tell the two
//! kinds of waiter apart and need not: both raise the same flag and sleep
//! on the same word. A waiter thread also runs, for MPMC and byte rings,
//! the repair a blocking wait runs between its slices.
//!
//! # Closing
//!
//! A producer that is done closes its end: it sets the consumers' event's
//! `closed` (Release) after everything it published, then notifies like
//! any publication (the same fence pair wakes a consumer about to sleep).
//! A consumer that finds the ring empty loads `closed` (Acquire) and, if
//! set, looks at the ring once more: what was published before the close
//! is visible now, so "empty and closed" means the stream ended, not that
//! a value is still on its way. A new producer handle reopens the ring.

use std::time::{Duration, Instant};

use crate::format::header::Event;
use crate::platform::barrier;
use crate::platform::futex;
use crate::platform::sync::{bump, spin_loop, time_slice, yield_now, Ordering};

/// How a handle waits when the ring is empty (consumer) or full (producer).
///
/// ```
/// use std::time::Duration;
/// use shmring::WaitStrategy;
/// # let name = format!("shmring-doc-wait-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let mut rx = ring.consumer()?;
/// // A latency-critical consumer on a core of its own spins; the default
/// // spins briefly, then sleeps on a futex; Sleep goes straight to the futex.
/// rx.set_wait_strategy(WaitStrategy::Spin);
/// assert!(rx.pop_timeout(Duration::from_millis(1)).is_err());
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin on the CPU until the deadline; never yield or sleep. The lowest
    /// latency, for a core dedicated to this handle.
    Spin,
    /// Spin `spins` times, yield the CPU `yields` times, then sleep on the
    /// futex. The default; a peer that answers within the spin phase never
    /// costs a system call.
    SpinThenSleep {
        /// Iterations of `spin_loop` before yielding.
        spins: u32,
        /// `sched_yield` calls before sleeping.
        yields: u32,
    },
    /// Sleep on the futex at once, for handles that are idle most of the
    /// time and must not burn CPU.
    Sleep,
}

impl WaitStrategy {
    /// How many times a wait looks at its condition before it yields or
    /// sleeps.
    pub(crate) fn spins(self) -> u32 {
        match self {
            WaitStrategy::Spin => u32::MAX,
            WaitStrategy::SpinThenSleep { spins, .. } => spins,
            WaitStrategy::Sleep => 0,
        }
    }
}

impl WaitStrategy {
    /// How every producer handle waits for room unless told otherwise:
    /// look 64 times, then yield the CPU between looks (256 times), then
    /// sleep.
    ///
    /// Not the consumers' [`default`](Self::default), because the two waits
    /// differ. A consumer that waits for a value wants it the moment it
    /// lands; a producer that waits for room has a full ring of values
    /// queued ahead of it, so coming back late by a yield costs it nothing,
    /// while looking at the consumer's index at spinning speed slows the
    /// consumer it waits for. Measured (one value at a time between two
    /// pinned threads, 4096 slots, medians of 11 alternated pairs, AMD EPYC
    /// VM): 5-6% faster than the consumers' default, and twice as fast as
    /// [`Spin`](Self::Spin), whose producer keeps writing the lines the
    /// consumer is reading (see the README's "Regimes").
    ///
    /// ```
    /// use shmring::WaitStrategy;
    /// # let name = format!("shmring-doc-producer-default-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
    /// let mut tx = ring.producer()?; // waits this way already
    /// tx.set_wait_strategy(WaitStrategy::producer_default());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub const fn producer_default() -> Self {
        WaitStrategy::SpinThenSleep {
            spins: 64,
            yields: 256,
        }
    }
}

impl Default for WaitStrategy {
    /// How every consumer handle waits for a value: spin for about the time
    /// of a few cross-core round trips, then sleep. (Producers wait for room
    /// as [`producer_default`](Self::producer_default) says.)
    fn default() -> Self {
        WaitStrategy::SpinThenSleep {
            spins: 4096,
            yields: 4,
        }
    }
}

/// How often to read the clock while spinning.
const CLOCK_EVERY: u32 = 256;

/// Longest sleep when the heavy barrier was unavailable (see `barrier.rs`).
const UNPAIRED_SLICE: Duration = Duration::from_millis(1);

/// Wait until `ready` returns `Some`, or until `timeout` has passed. A zero
/// timeout checks once. `event` is where this side sleeps.
pub(crate) fn wait_until<R>(
    event: &Event,
    strategy: WaitStrategy,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<R>,
) -> Option<R> {
    if let Some(r) = ready() {
        return Some(r);
    }
    if timeout.is_zero() {
        return None;
    }
    // The clock is first read only after CLOCK_EVERY spins: a vDSO
    // clock_gettime costs as much as a cache-line transfer, and most waits
    // end sooner. The deadline is late by those few microseconds at most.
    let mut start = None;
    let (spins, yields, sleep) = match strategy {
        WaitStrategy::Spin => (u32::MAX, 0, false),
        WaitStrategy::SpinThenSleep { spins, yields } => (spins, yields, true),
        WaitStrategy::Sleep => (0, 0, true),
    };
    let mut i = 0u32;
    loop {
        if sleep && i >= spins {
            break;
        }
        spin_loop();
        if let Some(r) = ready() {
            return Some(r);
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(CLOCK_EVERY) && expired(&mut start, timeout) {
            return None;
        }
    }
    for _ in 0..yields {
        yield_now();
        if let Some(r) = ready() {
            return Some(r);
        }
        if expired(&mut start, timeout) {
            return None;
        }
    }
    loop {
        // Acquire pairs with the Release bump in `wake`: a waiter that reads
        // an already-bumped `seq` must also see what was published before the
        // bump, or it could sleep on the new value with nobody left to wake
        // it.
        // ordering-justified(load-buffering): with Relaxed, this load may
        // read the bump while the re-check after the heavy fence still reads
        // the publication's older value; that needs the waker's earlier store
        // to be read after its later bump, which loom never schedules.
        let seq = event.seq.load(Ordering::Acquire);
        event.sleepers.fetch_add(1, Ordering::Relaxed);
        // Relaxed: the heavy fence below orders it before the re-check. A
        // read-modify-write, like the count it replaced: with a plain store,
        // loom finds a lost wakeup (`bytes::two_producers_wrap_pad_and_abort`)
        // that the fence rules did not show impossible or possible; on the
        // way to sleep the difference costs nothing.
        event.wanted.swap(1, Ordering::Relaxed);
        let paired = barrier::heavy();
        let r = ready();
        let started = *start.get_or_insert_with(Instant::now);
        let mut remaining = timeout.saturating_sub(started.elapsed());
        if !paired {
            remaining = remaining.min(UNPAIRED_SLICE);
        }
        if r.is_none() && !remaining.is_zero() {
            bump(&event.sleeps);
            futex::wait(&event.seq, seq, remaining);
        }
        event.sleepers.fetch_sub(1, Ordering::Relaxed);
        if r.is_some() {
            return r;
        }
        if let Some(r) = ready() {
            return Some(r);
        }
        if expired(&mut start, timeout) {
            return None;
        }
    }
}

/// Whether `timeout` has passed since the first call (which starts the clock).
fn expired(start: &mut Option<Instant>, timeout: Duration) -> bool {
    start.get_or_insert_with(Instant::now).elapsed() >= timeout
}

/// Close the side that sleeps on `event`: after everything published so
/// far, and waking it (see "Closing" above).
pub(crate) fn close(event: &Event) {
    // Release, with the Acquire in `is_closed`: a consumer that sees the
    // ring closed sees every value published before it.
    event.closed.store(1, Ordering::Release);
    notify(event);
}

/// Whether the side that sleeps on `event` was closed; everything
/// published before the close is visible once this returns true.
#[inline]
pub(crate) fn is_closed(event: &Event) -> bool {
    // Acquire: see `close`.
    event.closed.load(Ordering::Acquire) != 0
}

/// A new producer: the ring is open again.
pub(crate) fn reopen(event: &Event) {
    // Relaxed: nothing is published by reopening; a consumer that still
    // sees it closed returns Closed, as it would have a moment earlier.
    event.closed.store(0, Ordering::Relaxed);
}

/// Slots a producer (SPSC, broadcast) that found the ring full waits for, while it spins,
/// before it writes again: taking each slot the moment the consumer frees
/// it keeps the ring full and pulls the consumer's head line across once
/// per value, which more than halved the throughput of both (77 vs 112 M/s
/// with `push_timeout` between threads; the rest of the way to 200 was
/// inlining its fast path).
pub(crate) const ROOM_BATCH: u64 = 32;
/// How many looks at the head the producer takes before it settles for
/// less than a batch. The value it pushes waits behind a full ring anyway.
pub(crate) const ROOM_PATIENCE: u32 = 64;

/// Wake whoever sleeps on `event`, if anyone may. Call after publishing.
#[inline]
pub(crate) fn notify(event: &Event) {
    barrier::light();
    if event.wanted.load(Ordering::Relaxed) != 0 {
        woken(event);
    }
}

/// A waiter may sleep: wake them all, unless another notifier just did.
#[cold]
fn woken(event: &Event) {
    // Relaxed: a waiter whose flag this clears either read `seq` before the
    // bump below (the kernel will not let it sleep on it) or reads the bump
    // (Release/Acquire) and so sets its flag after this clear.
    if event.wanted.swap(0, Ordering::Relaxed) != 0 {
        wake(event);
    }
}

/// Wake whoever sleeps on `event`, unconditionally.
#[cold]
pub(crate) fn wake(event: &Event) {
    // Release: see the Acquire load of `seq` in `wait_until`, and `woken`.
    // ordering-justified(load-buffering): the execution it excludes is the
    // one described at that load (a bump read before the publication it
    // follows), which loom never schedules.
    event.seq.fetch_add(1, Ordering::Release);
    bump(&event.wakes);
    futex::wake_all(&event.seq);
}

/// How long a blocked call waits before it looks for dead peers to repair
/// after, while the ring is stalled or full. (Under loom, forever: model
/// time does not pass, and the repair models poll instead.)
pub(crate) const REPAIR_SLICE: Duration = time_slice(Duration::from_millis(10));

/// Longest sleep of an idle consumer between checks for a stall that began
/// while it slept (a producer that died holding a claim wakes no one).
pub(crate) const IDLE_SLICE: Duration = time_slice(Duration::from_millis(100));

/// Wait up to `timeout` for `ready`, in slices: the first is
/// [`REPAIR_SLICE`]; after each slice that ends without a result, `between`
/// runs (the repairs) and says how long the next slice may be.
///
/// Nothing but `ready` runs before the first slice has passed: a wait that
/// ends within it (nearly all of them) reads no clock and no line the other
/// side writes beyond what `ready` reads.
pub(crate) fn wait_in_slices<R>(
    event: &Event,
    strategy: WaitStrategy,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<R>,
    mut between: impl FnMut() -> Duration,
) -> Option<R> {
    let first = timeout.min(REPAIR_SLICE);
    if let Some(r) = wait_until(event, strategy, first, &mut ready) {
        return Some(r);
    }
    if first >= timeout {
        return None;
    }
    // The first slice's clock started a few spins late; so does this one.
    let now = Instant::now();
    let start = now.checked_sub(first).unwrap_or(now);
    loop {
        let slice = between();
        let remaining = timeout.saturating_sub(start.elapsed());
        if let Some(r) = wait_until(event, strategy, remaining.min(slice), &mut ready) {
            return Some(r);
        }
        if start.elapsed() >= timeout {
            return None;
        }
    }
}

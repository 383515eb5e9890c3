//! async/await on shmring's rings, on any executor.
//!
//! [`AsyncConsumer`] wraps a consumer handle of any kind (SPSC, MPMC, a
//! broadcast subscriber, a byte ring) so that its receives can be awaited;
//! [`AsyncProducer`] does the same for sends into a full ring, and for
//! room reserved in place ([`AsyncProducer::reserve_with`]: a write chunk,
//! an MPMC slot, a byte ring's grant);
//! [`AsyncConsumer::recv_runs`] awaits batches of messages in place, for a
//! forwarder (the Zenoh bridge's outbound side runs on it);
//! [`AsyncClient`] awaits a request-reply client's replies, and is woken
//! too when a server it waits on dies. All are
//! plain futures over the blocking library's handles: no runtime is
//! pulled in, a ring with data is read at the cost of a `try_pop`, and a
//! ring producer pays nothing for a consumer that awaits unless it is
//! actually parked (as with the blocking calls).
//!
//! ```
//! use shmring_async::AsyncConsumer;
//! # let pid = std::process::id();
//! let prices = shmring::Spsc::<f64>::create(&format!("doc-prices-{pid}"), 64)?;
//! let orders = shmring::ByteRing::create(&format!("doc-orders-{pid}"), 4096)?;
//! let (mut ptx, mut otx) = (prices.producer()?, orders.producer()?);
//! let mut prices = AsyncConsumer::new(prices.consumer()?);
//! let mut orders = AsyncConsumer::new(orders.consumer()?);
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! rt.block_on(async {
//!     otx.try_send(b"buy 10")?;
//!     // A receive takes nothing unless it wins: the loser loses nothing.
//!     tokio::select! {
//!         p = prices.recv() => println!("price {}", p?),
//!         o = orders.recv() => assert_eq!(o?, b"buy 10"),
//!         _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
//!     }
//!     ptx.try_push(101.5).unwrap();
//!     assert_eq!(prices.recv().await?, 101.5);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a task waits
//!
//! The rings' wakeup protocol (`shmring`'s `wait.rs`) is unchanged; its
//! steps are split between the task and a *waiter thread* of the process:
//!
//! 1. A receive (or send) first looks at the ring (and spins, if given a
//!    [spin budget](AsyncConsumer::set_spin_budget)). Only if it finds
//!    nothing does the handle register with the process's [`Reactor`],
//!    once for the handle's life: its ring's futex word joins a waiter
//!    thread's set (up to 127 words a thread; more rings, more threads).
//! 2. To park, the task reads the word's sequence (the snapshot), raises
//!    the word's `wanted` flag and issues the heavy barrier, stores its
//!    waker and the snapshot in its entry, and **looks at the ring
//!    again**: a value published before the flag was visible is seen
//!    here. Only then does it return `Pending`, and bump the waiter's own
//!    control word so that the waiter sleeps on the new snapshot too.
//! 3. The waiter thread sleeps in `futex_waitv` (Linux 5.16) on its
//!    control word and every armed ring word, each with its snapshot. A
//!    notifier that finds `wanted` set bumps the ring's word and wakes it,
//!    as for a blocked thread; the kernel ends the wait (or refuses to
//!    begin it, if a word already differs from its snapshot). The waiter
//!    then wakes the task of every entry whose word moved, disarming it.
//!
//! Steps 2 and 3 are the blocking protocol's store-buffering pair: either
//! the task's barrier comes first and the notifier sees `wanted`, or the
//! notifier's comes first and the task's second look sees the value. The
//! loom models in `loom-tests/tests/async.rs` check this against the
//! shipped reactor (threads: the task, the peer, the waiter); without the
//! second look, or without the control-word bump, they deadlock. No timer
//! stands in for a wakeup: an SPSC or broadcast entry has no timeout.
//!
//! A future is cancellation-safe: it takes a value (or commits a send)
//! only in the poll that returns `Ready`, and dropping it while pending
//! removes its waker. A parked future polled again that finds a value
//! (`select!` polls every branch when one wakes) disarms its entry itself,
//! so no stale waker is fired. An entry whose task left keeps `wanted`
//! raised at most until the next notifier, which pays one wake for it, as
//! for a blocking waiter that timed out.
//!
//! # Dead peers
//!
//! A producer that dies holding an MPMC or byte-ring claim wakes no one.
//! As a blocking wait does between its slices, the waiter thread looks
//! for such peers for the MPMC and byte-ring words it sleeps on, and
//! repairs; a repair that publishes wakes the word, so the task is woken
//! only when there is something for it. It looks 100 ms after the task
//! parked, then at doubling intervals up to 800 ms while the task waits:
//! each look is a wakeup of the waiter (tens of microseconds of CPU on a
//! VM), and a peer that died mid-claim is still found within a second.
//!
//! # Why one waiter thread, not an eventfd per ring
//!
//! A task must be woken by a producer in *another process*. Measured by
//! `cargo bench -p shmring-async --bench wake` (one run, 2 vCPUs):
//!
//! | | futex words, one waiter thread (this crate) | an eventfd per ring, in the executor's epoll |
//! |---|---|---|
//! | wake, p50 / p99 | 26.8 / 100 µs (two hops: waiter, then executor) | 13.2 / 52 µs (one hop) |
//! | producer's cost per value, nobody parked | 2.3 ns (push and pop; the notifier loads `wanted`) | 263 ns (a `write` per value) |
//! | idle task, CPU per second | 0.18 ms | none |
//!
//! The eventfd halves the wake, and costs every value a system call: its
//! producer cannot know whether the consumer sleeps, unless it joins the
//! futex protocol and writes only when `wanted` is raised. Either way the
//! descriptor belongs to the consumer's process, so a producer elsewhere
//! must be handed a duplicate over a Unix socket (a rendezvous per ring
//! and process, redone when either side restarts) or take one with
//! `pidfd_getfd` (ptrace rights, which services under Yama do not have),
//! and keep a table of them, one `write` per waiting process. A futex word
//! in the ring needs none of that: the producer's wake is the one it
//! already issues for blocked threads, and shared memory is all the two
//! processes share. `futex_waitv` lets one thread sleep on 127 of them, so
//! a process awaiting many rings costs one stack per 127 rings and almost
//! no CPU while idle. The streaming path, which is what the rings are for,
//! keeps its 2 ns; the wake, which only happens when the consumer has run
//! dry, pays one more hop. (An eventfd for epoll or io_uring users could
//! be layered on this: the waiter would write a per-handle eventfd
//! instead of waking a waker. Not built yet; nor io_uring's futex waits,
//! Linux 6.7, which could end in the executor's epoll in one hop.)
//!
//! # Costs, measured
//!
//! `cargo bench -p shmring-async --bench wake` (a value every 0.2-2 ms,
//! so every value finds the consumer parked; figures in the README):
//! the cross-process wake of an awaiting task costs two scheduler wakeups
//! (the waiter thread, then the executor's thread) where a blocked thread
//! costs one, and a task awaiting an empty ring for a second costs well
//! under a millisecond of CPU.
//!
//! # Limits
//!
//! * Linux 5.16 or later. Where `futex_waitv` is missing or refused (a
//!   seccomp filter), the waiter looks at its words every millisecond:
//!   correct, but no longer free while idle ([`Stats::polls`] counts it).
//! * Without `membarrier` the heavy barrier does not pair with the
//!   notifiers' light one; an armed entry is then also looked at every
//!   millisecond, as a blocking wait's sleep is capped, and the waiter
//!   makes no looks for dead peers: an [`AsyncClient`]'s task asks the
//!   kernel itself, every 5 ms, whether its servers live.
//! * A forked child gets a reactor of its own (its parent's threads are
//!   not in it); a handle is never inherited across fork anyway.
//! * A peer that never publishes, or publishes without waking (a hostile
//!   one), leaves a task waiting: bound every await with the executor's
//!   timeout, as every blocking call takes one.

mod client;
mod reactor;
mod receiver;
mod sender;
mod sync;

pub use client::{AsyncClient, RecvReply};
pub use reactor::{Reactor, Stats};
pub use receiver::{AsyncConsumer, Own, Receive, Recv, RecvRuns, RecvWith};
pub use sender::{AsyncProducer, Refused, Reserve, ReserveWith, SendWith, Sending, Transmit};

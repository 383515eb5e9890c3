//! One suite, run against every ring kind: an awaiting task is woken by a
//! value published in this process or another, a dropped future takes
//! nothing and leaves no waker behind, a closed ring ends the stream, and
//! a send waits for room. Every wait a test needs is made to happen by
//! construction: the publisher acts only once the reactor shows the task
//! armed (or, across processes, the ring's header shows it asleep).

#[macro_use]
#[path = "../../tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::{spawn_child, unique_name};
use shmring_async::{AsyncConsumer, AsyncProducer, Reactor};

children!(child);

/// Long enough to mean "hung"; never reached by a passing test.
const PATIENCE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Wait (bounded) until `reactor` has `n` tasks armed.
fn await_armed(reactor: &Reactor, n: usize) {
    let hung = Instant::now() + PATIENCE;
    while reactor.stats().armed != n {
        assert!(Instant::now() < hung, "hung: {:?}", reactor.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait (bounded) until ring `name`'s header shows a consumer asleep.
fn await_sleeping_consumer(name: &str) {
    let hung = Instant::now() + PATIENCE;
    while shmring::inspect(name).unwrap().sleeping_consumers == 0 {
        assert!(Instant::now() < hung, "hung: no consumer fell asleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Poll `fut` once, with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The tests, for one kind. `$make(name)` gives `(ring, tx, rx)`
/// (the ring to keep alive), `$push(&mut tx, v)` publishes `v: u64`
/// synchronously, `$value(owned)` reads a received message back as a
/// u64, `$item(&v_bytes, v)` is what `AsyncProducer::send` takes,
/// `$close(tx)` closes, `$open_tx(name)` opens a producer in a child,
/// and `$fill(&mut tx)` fills the ring.
macro_rules! conformance {
    ($kind:ident,
     make: $make:expr,
     push: $push:expr,
     value: $value:expr,
     close: $close:expr,
     open_tx: $open_tx:expr,
     fill: $fill:expr,
     pop: $pop:expr,
     item: |$b:ident, $v:ident| $item:expr,
     reserve: $n:expr, $write:expr) => {
        mod $kind {
            use super::*;

            /// A task that waits on an empty ring wakes on the next value.
            #[test]
            fn wakes_a_waiting_task() {
                let (_ring, mut tx, rx) = $make(&unique_name(stringify!($kind)));
                let reactor = Reactor::new();
                let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
                std::thread::scope(|s| {
                    s.spawn(|| {
                        await_armed(&reactor, 1);
                        $push(&mut tx, 42);
                    });
                    let got = runtime().block_on(rx.recv()).unwrap();
                    assert_eq!($value(got), 42);
                });
                let stats = reactor.stats();
                assert_eq!((stats.armed, stats.fired), (0, 1), "{stats:?}");
                drop(rx);
                reactor.shutdown();
            }

            /// A receive dropped while it waits takes nothing and leaves no
            /// waker armed; the value sent next is the next one received.
            #[test]
            fn a_dropped_receive_loses_nothing_and_leaves_nothing() {
                let (_ring, mut tx, rx) = $make(&unique_name(stringify!($kind)));
                let reactor = Reactor::new();
                let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
                {
                    let fut = pin!(rx.recv());
                    assert!(poll_once(fut).is_pending());
                    assert_eq!(reactor.stats().armed, 1);
                }
                assert_eq!(reactor.stats().armed, 0);
                $push(&mut tx, 5);
                assert_eq!($value(runtime().block_on(rx.recv()).unwrap()), 5);
                drop(rx);
                reactor.shutdown();
            }

            /// A parked receive polled again (as `select!` polls every
            /// branch) that finds a value disarms its entry itself: no
            /// stale waker is left for the waiter to fire.
            #[test]
            fn a_value_found_by_another_poll_leaves_nothing_armed() {
                let (_ring, mut tx, rx) = $make(&unique_name(stringify!($kind)));
                let reactor = Reactor::new();
                let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
                let mut fut = Box::pin(rx.recv());
                assert!(poll_once(fut.as_mut()).is_pending());
                $push(&mut tx, 3);
                match poll_once(fut.as_mut()) {
                    Poll::Ready(v) => assert_eq!($value(v.unwrap()), 3),
                    Poll::Pending => panic!("the value was not found"),
                }
                assert_eq!(reactor.stats().armed, 0);
                drop(fut);
                drop(rx);
                reactor.shutdown();
            }

            /// A waiting task sees the close, after every value before it.
            #[test]
            fn a_close_ends_the_stream_after_every_value() {
                use futures_core::Stream;
                let (_ring, mut tx, rx) = $make(&unique_name(stringify!($kind)));
                let reactor = Reactor::new();
                let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
                $push(&mut tx, 1);
                $push(&mut tx, 2);
                let got = std::thread::scope(|s| {
                    s.spawn(|| {
                        await_armed(&reactor, 1);
                        $close(tx);
                    });
                    runtime().block_on(async {
                        let mut got = Vec::new();
                        while let Some(v) =
                            std::future::poll_fn(|cx| std::pin::Pin::new(&mut rx).poll_next(cx))
                                .await
                        {
                            got.push($value(v.unwrap()));
                        }
                        got
                    })
                });
                assert_eq!(got, [1, 2]);
                drop(rx);
                reactor.shutdown();
            }

            /// A send, or a reservation, into a full ring waits, and
            /// completes once a value is taken: the value sent, or the
            /// room written in place, is the last one out.
            #[test]
            fn a_send_and_a_reservation_wait_for_room() {
                for reserve in [false, true] {
                    let (_ring, mut tx, mut rx) = $make(&unique_name(stringify!($kind)));
                    let filled = $fill(&mut tx);
                    let reactor = Reactor::new();
                    let mut tx = AsyncProducer::with_reactor(tx, &reactor);
                    let $v: u64 = 99;
                    #[allow(unused_variables)]
                    let $b = $v.to_ne_bytes();
                    let popped = std::thread::scope(|s| {
                        let taker = s.spawn(|| {
                            await_armed(&reactor, 1);
                            $pop(&mut rx)
                        });
                        let rt = runtime();
                        if reserve {
                            rt.block_on(tx.reserve_with($n, |c| $write(c, $v))).unwrap();
                        } else {
                            rt.block_on(tx.send($item)).unwrap();
                        }
                        taker.join().unwrap()
                    });
                    assert_eq!(popped, Some(0), "the first value filled");
                    let mut rest = Vec::new();
                    while let Some(v) = $pop(&mut rx) {
                        rest.push(v);
                        if rest.len() == filled {
                            break;
                        }
                    }
                    assert_eq!(rest.last(), Some(&99), "reserve {reserve}: {rest:?}");
                    drop(tx);
                    reactor.shutdown();
                }
            }

            /// Another process's value wakes a task waiting here.
            #[test]
            fn a_value_from_another_process_wakes_the_task() {
                let name = unique_name(stringify!($kind));
                let (_ring, tx, rx) = $make(&name);
                drop(tx);
                let mut rx = AsyncConsumer::new(rx);
                let child = spawn_child(
                    concat!(stringify!($kind), "-push-when-asleep"),
                    &[("RING", name.clone())],
                );
                let got =
                    runtime().block_on(async { tokio::time::timeout(PATIENCE, rx.recv()).await });
                assert_eq!($value(got.expect("woken").unwrap()), 7);
                child.wait_success(PATIENCE);
            }

            pub(super) fn push_when_asleep() {
                let name = std::env::var("RING").unwrap();
                let mut tx = $open_tx(&name);
                await_sleeping_consumer(&name);
                $push(&mut tx, 7);
            }
        }
    };
}

conformance!(spsc,
    make: |name: &str| {
        let ring = shmring::Spsc::<u64>::create(name, 4).unwrap();
        let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        (ring, tx, rx)
    },
    push: |tx: &mut shmring::spsc::Producer<u64>, v| tx.try_push(v).unwrap(),
    value: |v: u64| v,
    close: |tx: shmring::spsc::Producer<u64>| tx.close(),
    open_tx: |name: &str| shmring::Spsc::<u64>::open(name).unwrap().producer().unwrap(),
    fill: |tx: &mut shmring::spsc::Producer<u64>| {
        let mut n = 0;
        while tx.try_push(n).is_ok() { n += 1; }
        n as usize
    },
    pop: |rx: &mut shmring::spsc::Consumer<u64>| rx.try_pop(),
    item: |b, v| v,
    reserve: 1, |mut c: shmring::spsc::WriteChunk<'_, u64>, v| {
        *c.get_mut(0) = v;
        c.commit(1);
    }
);

conformance!(mpmc,
    make: |name: &str| {
        let ring = shmring::Mpmc::<u64>::create(name, 4).unwrap();
        let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        (ring, tx, rx)
    },
    push: |tx: &mut shmring::mpmc::Producer<u64>, v| tx.try_push(v).unwrap(),
    value: |v: u64| v,
    close: |tx: shmring::mpmc::Producer<u64>| tx.close(),
    open_tx: |name: &str| shmring::Mpmc::<u64>::open(name).unwrap().producer().unwrap(),
    fill: |tx: &mut shmring::mpmc::Producer<u64>| {
        let mut n = 0;
        while tx.try_push(n).is_ok() { n += 1; }
        n as usize
    },
    pop: |rx: &mut shmring::mpmc::Consumer<u64>| rx.try_pop(),
    item: |b, v| v,
    reserve: 1, |mut slot: shmring::mpmc::WriteSlot<'_, u64>, v| {
        *slot = v;
        slot.commit();
    }
);

conformance!(broadcast,
    make: |name: &str| {
        let ring = shmring::Broadcast::<u64>::create(name, 4).unwrap();
        let (tx, rx) = (ring.producer().unwrap(), ring.subscriber().unwrap());
        (ring, tx, rx)
    },
    push: |tx: &mut shmring::broadcast::Producer<u64>, v| tx.try_push(v).unwrap(),
    value: |v: u64| v,
    close: |mut tx: shmring::broadcast::Producer<u64>| tx.close(),
    open_tx: |name: &str| shmring::Broadcast::<u64>::open(name).unwrap().producer().unwrap(),
    fill: |tx: &mut shmring::broadcast::Producer<u64>| {
        let mut n = 0;
        while tx.try_push(n).is_ok() { n += 1; }
        n as usize
    },
    pop: |rx: &mut shmring::broadcast::Subscriber<u64>| rx.try_pop(),
    item: |b, v| v,
    reserve: 1, |mut c: shmring::broadcast::WriteChunk<'_, u64>, v| {
        *c.get_mut(0) = v;
        c.commit(1);
    }
);

conformance!(bytes,
    make: |name: &str| {
        let ring = shmring::ByteRing::create(name, 64).unwrap();
        let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        (ring, tx, rx)
    },
    push: |tx: &mut shmring::bytes::Producer, v: u64| tx.try_send(&v.to_ne_bytes()).unwrap(),
    value: |m: Vec<u8>| u64::from_ne_bytes(m.try_into().unwrap()),
    close: |tx: shmring::bytes::Producer| tx.close(),
    open_tx: |name: &str| shmring::ByteRing::open(name).unwrap().producer().unwrap(),
    fill: |tx: &mut shmring::bytes::Producer| {
        let mut n = 0u64;
        while tx.try_send(&n.to_ne_bytes()).is_ok() { n += 1; }
        n as usize
    },
    pop: |rx: &mut shmring::bytes::Consumer| {
        rx.try_recv().unwrap().map(|m| u64::from_ne_bytes((&*m).try_into().unwrap()))
    },
    item: |b, v| &b[..],
    reserve: 8, |mut g: shmring::bytes::Grant<'_>, v: u64| {
        g.copy_from_slice(&v.to_ne_bytes());
        g.commit();
    }
);

fn child(role: &str) {
    match role {
        "spsc-push-when-asleep" => spsc::push_when_asleep(),
        "mpmc-push-when-asleep" => mpmc::push_when_asleep(),
        "broadcast-push-when-asleep" => broadcast::push_when_asleep(),
        "bytes-push-when-asleep" => bytes::push_when_asleep(),
        "count-wakes" => count_wakes(),
        "die-holding-a-claim" => die_holding_a_claim(),
        other => panic!("no child role {other}"),
    }
}

/// In a process of its own (the futex counters are per process): a ring
/// nobody awaits costs its producer no system call, and one armed task
/// costs exactly one wake.
fn count_wakes() {
    let ring = shmring::Spsc::<u64>::create(&unique_name("wakes"), 1024).unwrap();
    let (mut tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let reactor = Reactor::new();
    let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
    let rt = runtime();
    let before = shmring::futex_calls();
    for round in 0..100u64 {
        for v in 0..10 {
            tx.try_push(round * 10 + v).unwrap();
        }
        for v in 0..10 {
            assert_eq!(rt.block_on(rx.recv()).unwrap(), round * 10 + v);
        }
    }
    assert_eq!(shmring::futex_calls().wakes, before.wakes, "no one waited");
    std::thread::scope(|s| {
        s.spawn(|| {
            await_armed(&reactor, 1);
            tx.try_push(1).unwrap();
        });
        assert_eq!(rt.block_on(rx.recv()).unwrap(), 1);
    });
    assert_eq!(
        shmring::futex_calls().wakes,
        before.wakes + 1,
        "one wait, one wake"
    );
    drop(rx);
    reactor.shutdown();
}

#[test]
fn a_producer_pays_a_system_call_only_when_a_task_waits() {
    spawn_child("count-wakes", &[]).wait_success(PATIENCE);
}

/// More rings than one waiter thread takes (127): every task waits at
/// once, and each is woken by its own ring's value, in any order.
#[test]
fn many_rings_wait_at_once_across_waiter_threads() {
    const RINGS: usize = 200;
    let reactor = Reactor::new();
    let rings: Vec<_> = (0..RINGS)
        .map(|i| shmring::Spsc::<u64>::create(&unique_name(&format!("many{i}")), 2).unwrap())
        .collect();
    let mut txs: Vec<_> = rings.iter().map(|r| r.producer().unwrap()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let tasks: Vec<_> = rings
        .iter()
        .map(|r| {
            let mut rx = AsyncConsumer::with_reactor(r.consumer().unwrap(), &reactor);
            rt.spawn(async move { rx.recv().await })
        })
        .collect();
    await_armed(&reactor, RINGS);
    for (i, tx) in txs.iter_mut().enumerate().rev() {
        tx.try_push(i as u64).unwrap();
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(rt.block_on(t).unwrap().unwrap(), i as u64);
    }
    assert_eq!(reactor.stats().fired as usize, RINGS);
    drop(rt);
    reactor.shutdown();
}

/// A forked child has none of its parent's threads: its awaits use a
/// waiter thread of its own (with its parent's, nothing would wake it).
#[test]
fn a_forked_child_awaits_through_its_own_waiter_thread() {
    // The parent's process-wide reactor runs a thread first.
    let warm = shmring::Spsc::<u64>::create(&unique_name("fork-warm"), 2).unwrap();
    let mut rx = AsyncConsumer::new(warm.consumer().unwrap());
    assert!(poll_once(pin!(rx.recv())).is_pending());
    let name = unique_name("fork");
    let ring = shmring::Spsc::<u64>::create(&name, 2).unwrap();
    let pid = fork_child!({
        use std::io::Write;
        std::panic::set_hook(Box::new(|p| {
            let _ = writeln!(std::io::stderr(), "forked child: {p}");
        }));
        let ring = shmring::Spsc::<u64>::open(&name).unwrap();
        let mut rx = AsyncConsumer::new(ring.consumer().unwrap());
        let mut tx = ring.producer().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                await_sleeping_consumer(&name);
                tx.try_push(3).unwrap();
            });
            let got = runtime().block_on(async { tokio::time::timeout(PATIENCE, rx.recv()).await });
            match got {
                Ok(Ok(3)) => 0,
                other => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "the forked child's await ended with {other:?}"
                    );
                    1
                }
            }
        })
    });
    assert_eq!(common::reap(pid), 0);
    drop(ring);
}

/// Claims an MPMC position, says so, and waits to be killed.
fn die_holding_a_claim() {
    let ring = shmring::Mpmc::<u64>::open(&std::env::var("RING").unwrap()).unwrap();
    let tx = ring.producer().unwrap();
    let _slot = tx.try_reserve().unwrap();
    println!("held");
    std::thread::sleep(PATIENCE);
}

/// A producer killed holding a claim stalls the ring, and wakes no one: a
/// task awaiting the value behind it is woken once the waiter thread,
/// looking for dead peers as a blocking wait does, repairs the ring.
#[test]
fn a_task_waiting_behind_a_dead_producer_is_woken_by_the_repair() {
    let name = unique_name("dead-claim");
    let ring = shmring::Mpmc::<u64>::create(&name, 4).unwrap();
    // Made first: a new handle repairs what the dead left at once.
    let tx = ring.producer().unwrap();
    let reactor = Reactor::new();
    let mut rx = AsyncConsumer::with_reactor(ring.consumer().unwrap(), &reactor);
    let mut child = common::ChildGuard::from(
        common::child_command("die-holding-a-claim")
            .env("RING", &name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(child.first_line(), "held");
    child.kill(); // SIGKILL, reaped: its claim is a dead one now
    tx.try_push(9).unwrap(); // behind the dead claim
    let got = runtime().block_on(async { tokio::time::timeout(PATIENCE, rx.recv()).await });
    assert_eq!(got.expect("woken by the repair").unwrap(), 9);
    assert!(ring.repaired() >= 1, "the value came through a repair");
    drop(rx);
    reactor.shutdown();
}

/// The `Sink` of a producer feeds a ring smaller than what it sends,
/// waiting for room as a consumer thread drains it; every item arrives once
/// and in order.
#[test]
fn a_sink_feeds_a_small_ring_in_order() {
    use futures_sink::Sink;
    use std::pin::Pin;
    let ring = shmring::Spsc::<u64>::create(&unique_name("sink"), 2).unwrap();
    let mut rx = ring.consumer().unwrap();
    let reactor = Reactor::new();
    let mut tx = AsyncProducer::with_reactor(ring.producer().unwrap(), &reactor);
    let got = std::thread::scope(|s| {
        let drain = s.spawn(move || {
            (0..20)
                .map(|_| rx.pop_timeout(PATIENCE).unwrap())
                .collect::<Vec<_>>()
        });
        runtime().block_on(async {
            for v in 0..20u64 {
                std::future::poll_fn(|cx| Pin::new(&mut tx).poll_ready(cx))
                    .await
                    .unwrap();
                Pin::new(&mut tx).start_send(v).unwrap();
            }
            std::future::poll_fn(|cx| Pin::new(&mut tx).poll_flush(cx))
                .await
                .unwrap();
        });
        drain.join().unwrap()
    });
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    drop(tx);
    reactor.shutdown();
}

/// Runs awaited, as a forwarder does: a dropped wait takes nothing and
/// leaves no waker; a waiting task wakes on the next message; a kept run
/// completes the await (the caller has something to act on) and is lent
/// again next time.
fn runs_are_awaited<H>(rx: H, mut push: impl FnMut(u64))
where
    H: shmring_async::Receive + shmring::MessageReceiver,
{
    use shmring::AfterRun;
    let reactor = Reactor::new();
    let mut rx = AsyncConsumer::with_reactor(rx, &reactor);
    let got = std::cell::RefCell::new(Vec::new());
    let mut take = |run: shmring::Run<'_>| {
        let values = run
            .iter()
            .map(|m| u64::from_ne_bytes(m.try_into().unwrap()));
        got.borrow_mut().extend(values);
        AfterRun::Release
    };
    {
        let fut = pin!(rx.recv_runs(8, &mut take));
        assert!(poll_once(fut).is_pending());
        assert_eq!(reactor.stats().armed, 1);
    }
    assert_eq!(reactor.stats().armed, 0);
    // The value is pushed only once the task is parked: the waiter's wake
    // is what ends the await.
    let released = runtime().block_on(async {
        let publish = async {
            while reactor.stats().armed != 1 {
                tokio::task::yield_now().await;
            }
            push(1);
        };
        tokio::join!(rx.recv_runs(8, &mut take), publish).0
    });
    let released = released.unwrap();
    assert_eq!((released, &got.borrow()[..]), (1, &[1][..]));
    push(2);
    let kept = runtime().block_on(rx.recv_runs(8, |_| AfterRun::Keep));
    assert_eq!(kept.unwrap(), 0);
    assert_eq!(runtime().block_on(rx.recv_runs(8, &mut take)).unwrap(), 1);
    assert_eq!(*got.borrow(), [1, 2]);
    let stats = reactor.stats();
    assert_eq!((stats.armed, stats.fired), (0, 1), "{stats:?}");
    drop(rx);
    reactor.shutdown();
}

#[test]
fn runs_are_awaited_on_every_kind_with_runs() {
    let spsc = shmring::Spsc::<u64>::create(&unique_name("runs-spsc"), 4).unwrap();
    let mut tx = spsc.producer().unwrap();
    runs_are_awaited(spsc.consumer().unwrap(), |v| tx.try_push(v).unwrap());
    let mpmc = shmring::Mpmc::<u64>::create(&unique_name("runs-mpmc"), 4).unwrap();
    let tx = mpmc.producer().unwrap();
    runs_are_awaited(mpmc.consumer().unwrap(), |v| tx.try_push(v).unwrap());
    let bytes = shmring::ByteRing::create(&unique_name("runs-bytes"), 64).unwrap();
    let mut tx = bytes.producer().unwrap();
    runs_are_awaited(bytes.consumer().unwrap(), |v| {
        tx.try_send(&v.to_ne_bytes()).unwrap()
    });
}

/// Awaiting runs on an empty ring, spinning first, looks without the
/// blocking call's timeout path: no liveness system call per look, and no
/// timeout counted for the operators to misread.
#[test]
fn awaiting_runs_on_an_empty_ring_counts_no_timeouts() {
    use shmring::AfterRun;
    let spsc_name = unique_name("runs-quiet-spsc");
    let spsc = shmring::Spsc::<u64>::create(&spsc_name, 4).unwrap();
    let mpmc_name = unique_name("runs-quiet-mpmc");
    let mpmc = shmring::Mpmc::<u64>::create(&mpmc_name, 4).unwrap();
    let bytes_name = unique_name("runs-quiet-bytes");
    let bytes = shmring::ByteRing::create(&bytes_name, 64).unwrap();
    let reactor = Reactor::new();
    fn park<H: shmring_async::Receive + shmring::MessageReceiver>(rx: H, reactor: &Reactor) {
        let mut rx = AsyncConsumer::with_reactor(rx, reactor);
        rx.set_spin_budget(100);
        let fut = pin!(rx.recv_runs(8, |_| AfterRun::Release));
        assert!(poll_once(fut).is_pending());
    }
    park(spsc.consumer().unwrap(), &reactor);
    park(mpmc.consumer().unwrap(), &reactor);
    park(bytes.consumer().unwrap(), &reactor);
    for name in [&spsc_name, &mpmc_name, &bytes_name] {
        let counted = shmring::inspect(name).unwrap().consumers.timeouts;
        assert_eq!(counted, 0, "{name}");
    }
    reactor.shutdown();
}

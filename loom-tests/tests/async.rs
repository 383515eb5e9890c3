//! Model checks of `shmring-async`'s registration against the notifier:
//! a task that finds the ring empty hands its snapshot to a waiter thread,
//! arms the word and looks again; a notifier in another thread publishes
//! and wakes only if the word is armed. A wakeup lost anywhere in between
//! leaves `block_on` parked for ever, which loom reports as a deadlock
//! (the model futex has no timeout, and the reactor sets none for these
//! rings). Threads: the task, the peer, the waiter.
//!
//! ```sh
//! cd loom-tests && RUSTFLAGS="--cfg shmring_loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test async
//! ```
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use loom::future::block_on;
use loom::thread;
use shmring::{RecvError, Spsc};
use shmring_async::{AsyncConsumer, AsyncProducer, Reactor};

fn ring(capacity: usize) -> Spsc<u64> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    Spsc::<u64>::create(
        &format!("loom-async-{}", NEXT.fetch_add(1, Relaxed)),
        capacity,
    )
    .unwrap()
}

/// A task awaiting an empty ring is woken by a push from another thread,
/// wherever the push falls in its registration.
#[test]
fn a_waiting_receive_is_woken_by_a_push() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let reactor = Reactor::new();
        let mut rx = AsyncConsumer::with_reactor(ring.consumer().unwrap(), &reactor);
        let p = thread::spawn(move || tx.try_push(7).unwrap());
        assert_eq!(block_on(rx.recv()).unwrap(), 7);
        p.join().unwrap();
        drop(rx);
        assert_eq!(reactor.stats().armed, 0);
        reactor.shutdown();
    });
}

/// A task awaiting room in a full ring is woken by a pop.
#[test]
fn a_waiting_send_is_woken_by_a_pop() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        let mut rx = ring.consumer().unwrap();
        let reactor = Reactor::new();
        let mut tx = AsyncProducer::with_reactor(tx, &reactor);
        let c = thread::spawn(move || {
            assert_eq!(rx.try_pop(), Some(1));
            rx
        });
        block_on(tx.send(2)).unwrap();
        let mut rx = c.join().unwrap();
        assert_eq!(rx.try_pop(), Some(2));
        drop(tx);
        reactor.shutdown();
    });
}

/// A task awaiting an empty ring sees a close made in another thread.
#[test]
fn a_waiting_receive_sees_the_close() {
    loom::model(|| {
        let ring = ring(1);
        let tx = ring.producer().unwrap();
        let reactor = Reactor::new();
        let mut rx = AsyncConsumer::with_reactor(ring.consumer().unwrap(), &reactor);
        let p = thread::spawn(move || tx.close());
        assert!(matches!(block_on(rx.recv()), Err(RecvError::Closed { .. })));
        p.join().unwrap();
        drop(rx);
        reactor.shutdown();
    });
}

//! Model checks of the SPSC ring, its blocking handshake, role hand-over and
//! header publication. Run with:
//!
//! ```sh
//! cd loom-tests && RUSTFLAGS="--cfg shmring_loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release
//! ```
//!
//! The rings here are the shipped code: under `cfg(shmring_loom)` shmring's atomics,
//! cells and futexes come from loom (`src/platform/sync.rs`, `src/platform/futex.rs`), and a
//! segment is heap memory.
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use shmring::{CreateOptions, Spsc, WaitStrategy};

/// Long enough never to expire inside a model: a model futex sleeper is only
/// ever woken, so a lost wakeup is reported as a deadlock.
const FOREVER: Duration = Duration::from_secs(3600);

fn ring(capacity: usize) -> Arc<Spsc<u64>> {
    ring_with(capacity, &CreateOptions::new())
}

fn ring_with(capacity: usize, opts: &CreateOptions) -> Arc<Spsc<u64>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(Spsc::<u64>::create_with(&name, capacity, opts).unwrap())
}

fn push_spinning(tx: &mut shmring::Producer<u64>, mut v: u64) {
    while let Err(shmring::Full(back)) = tx.try_push(v) {
        v = back;
        thread::yield_now();
    }
}

fn pop_spinning(rx: &mut shmring::Consumer<u64>) -> u64 {
    loop {
        if let Some(v) = rx.try_pop() {
            return v;
        }
        thread::yield_now();
    }
}

/// Values pass in order across wraparound: at capacity 1 every push reuses
/// the slot the consumer just released; at 2, the producer can run ahead.
fn push_pop(capacity: usize, count: u64) {
    push_pop_with(capacity, count, CreateOptions::new())
}

fn push_pop_with(capacity: usize, count: u64, opts: CreateOptions) {
    loom::model(move || {
        let ring = ring_with(capacity, &opts);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=count {
                push_spinning(&mut tx, v);
            }
        });
        for v in 1..=count {
            assert_eq!(pop_spinning(&mut rx), v);
        }
        assert_eq!(rx.try_pop(), None);
        producer.join().unwrap();
    });
}

#[test]
fn push_pop_capacity_1_wraps() {
    push_pop(1, 3);
}

#[test]
fn push_pop_capacity_2_wraps() {
    push_pop(2, 3);
}

/// A ring that zeroes what its consumer releases: at capacity 1 every
/// push writes the slot just zeroed, so zeros not ordered before that
/// write (by the `head` store's Release) race with it, or wipe the next
/// value before it is read.
#[test]
fn zeros_land_before_the_next_lap_writes() {
    push_pop_with(1, 3, CreateOptions::new().zero_after_use(true));
}

/// Chunks: the producer writes and commits two at a time, the consumer
/// borrows and releases whatever is there, across wraparound.
#[test]
fn chunks_capacity_2_wrap() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            let mut next = 1u64;
            while next <= 4 {
                let Some(mut chunk) = tx.try_reserve(2) else {
                    thread::yield_now();
                    continue;
                };
                let n = chunk.len();
                for i in 0..n {
                    chunk.write(i, next + i as u64);
                }
                chunk.commit(n);
                next += n as u64;
            }
        });
        let mut expected = 1u64;
        while expected <= 4 {
            let Some(chunk) = rx.try_read(2) else {
                thread::yield_now();
                continue;
            };
            for i in 0..chunk.len() {
                assert_eq!(chunk.read(i), expected);
                expected += 1;
            }
            chunk.release_all();
        }
        producer.join().unwrap();
    });
}

/// A read chunk lends the values whose stamps it finds full, walking them
/// in order from `head`, while the producer publishes one at a time: every
/// value arrives whole and in order, whatever the interleaving. Fails if
/// `publish`'s Release is weakened (a value read before it is written), or
/// if the walk lends a position not yet published (a stale 0).
#[test]
fn a_chunk_lends_only_published_values_in_order() {
    loom::model(|| {
        let ring = ring(4);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                push_spinning(&mut tx, v);
            }
        });
        let mut expected = 1u64;
        while expected <= 3 {
            let Some(chunk) = rx.try_read(3) else {
                thread::yield_now();
                continue;
            };
            for i in 0..chunk.len() {
                assert_eq!(chunk.read(i), expected);
                expected += 1;
            }
            chunk.release_all();
        }
        producer.join().unwrap();
    });
}

/// Closing: a consumer that finds the ring closed has seen every value
/// pushed before the close (then gets `Closed`, not a timeout), and one
/// asleep when the close comes is woken. Fails if the close's Release or
/// `is_closed`'s Acquire is weakened (the value is lost behind `Closed`), or
/// if closing does not wake a sleeper (a deadlock).
#[test]
fn a_close_comes_after_every_value_pushed_before_it() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        rx.set_wait_strategy(WaitStrategy::Sleep);
        let producer = thread::spawn(move || {
            push_spinning(&mut tx, 7);
            tx.close();
        });
        let mut got = Vec::new();
        loop {
            match rx.pop_timeout(FOREVER) {
                Ok(v) => got.push(v),
                Err(shmring::RecvError::Closed { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, [7]);
        producer.join().unwrap();
    });
}

/// The blocking handshake in both directions: a consumer that sleeps on an
/// empty ring and a producer that sleeps on a full one must both be woken.
#[test]
fn sleepers_are_woken() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        tx.set_wait_strategy(WaitStrategy::Sleep);
        rx.set_wait_strategy(WaitStrategy::Sleep);
        let producer = thread::spawn(move || {
            tx.push_timeout(1, FOREVER).unwrap();
            tx.push_timeout(2, FOREVER).unwrap();
        });
        assert_eq!(rx.pop_timeout(FOREVER).unwrap(), 1);
        assert_eq!(rx.pop_timeout(FOREVER).unwrap(), 2);
        producer.join().unwrap();
    });
}

/// Chunk waits use the same handshake.
#[test]
fn chunk_waiters_are_woken() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        tx.set_wait_strategy(WaitStrategy::Sleep);
        rx.set_wait_strategy(WaitStrategy::Sleep);
        let producer = thread::spawn(move || {
            for v in 1..=2 {
                let mut chunk = tx.reserve_timeout(1, FOREVER).unwrap();
                chunk.write(0, v);
                chunk.commit_all();
            }
        });
        for v in 1..=2 {
            let chunk = rx.read_timeout(1, FOREVER).unwrap();
            assert_eq!(chunk.read(0), v);
            chunk.release_all();
        }
        producer.join().unwrap();
    });
}

/// A producer in one thread hands its role to a successor in another,
/// which must resume exactly where the first stopped: it learns the position
/// only through the role hand-over, while the consumer runs concurrently.
/// Everyone blocks (sleep strategy) rather than spins, and the successor
/// tries once, so that three threads stay within loom's budget.
#[test]
fn role_hand_over_resumes_at_the_right_position() {
    loom::model(|| {
        let ring = ring(1);
        let mut rx = ring.consumer().unwrap();
        rx.set_wait_strategy(WaitStrategy::Sleep);
        let mut first = ring.producer().unwrap();
        first.set_wait_strategy(WaitStrategy::Sleep);
        let r = Arc::clone(&ring);
        let first = thread::spawn(move || {
            first.push_timeout(1, FOREVER).unwrap();
            first.push_timeout(2, FOREVER).unwrap();
        });
        let successor = thread::spawn(move || {
            let Ok(mut tx) = r.producer() else {
                return false; // the first still holds it: nothing to check
            };
            assert_eq!(tx.pushed(), 2, "resumed at the wrong position");
            tx.set_wait_strategy(WaitStrategy::Sleep);
            tx.push_timeout(3, FOREVER).unwrap();
            true
        });
        assert_eq!(rx.pop_timeout(FOREVER).unwrap(), 1);
        assert_eq!(rx.pop_timeout(FOREVER).unwrap(), 2);
        first.join().unwrap();
        if successor.join().unwrap() {
            assert_eq!(rx.pop_timeout(FOREVER).unwrap(), 3);
        }
    });
}

/// Two threads race for the producer role: exactly one wins.
#[test]
fn a_role_has_one_holder() {
    loom::model(|| {
        let ring = ring(1);
        let r = Arc::clone(&ring);
        let other = thread::spawn(move || r.producer().map(std::mem::forget).is_ok());
        let mine = ring.producer();
        let theirs = other.join().unwrap();
        assert!(mine.is_ok() != theirs, "exactly one claim must win");
    });
}

/// An opener that sees the header ready sees every field the creator wrote.
#[test]
fn header_publication() {
    loom::model(|| {
        let header = Arc::new(shmring::header_model::ModelHeader::default());
        let h = Arc::clone(&header);
        let creator = thread::spawn(move || h.publish());
        header.open().unwrap();
        creator.join().unwrap();
    });
}

//! Model checks of the broadcast ring: gating on a lossless subscriber,
//! overrun detection by a lossy one (never a torn or wrong value, misses
//! counted exactly), a subscriber joining while the producer runs, a
//! dead subscriber that stops holding the producer, and the same
//! guarantees through in-place chunks on both sides. Run with:
//!
//! ```sh
//! cd loom-tests && RUSTFLAGS="--cfg shmring_loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test broadcast
//! ```
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use loom::thread;
use shmring::{Broadcast, BroadcastProducer, SubscriberOptions};

fn ring(capacity: usize) -> Arc<Broadcast<u64>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-bcast-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(Broadcast::<u64>::create(&name, capacity).unwrap())
}

fn lossless() -> SubscriberOptions {
    // Model time does not pass: nobody is made lossy.
    SubscriberOptions::lossless().demote_after(None)
}

fn push_spinning(tx: &mut BroadcastProducer<u64>, mut v: u64) {
    while let Err(shmring::Full(back)) = tx.try_push(v) {
        v = back;
        thread::yield_now();
    }
}

/// At capacity 1 every value overwrites the one before: the producer
/// writes the next only after the lossless subscriber read this one, and
/// the subscriber gets each value once, in order, missing none.
#[test]
fn a_lossless_subscriber_gets_every_value() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&lossless()).unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                push_spinning(&mut tx, v);
            }
        });
        for want in 1..=3 {
            let got = loop {
                if let Some(v) = rx.try_pop() {
                    break v;
                }
                thread::yield_now();
            };
            assert_eq!(got, want);
        }
        assert_eq!(rx.missed(), 0);
        producer.join().unwrap();
    });
}

/// A lossy subscriber racing a producer that laps it: every value it
/// returns is the value of the position it read (never one a newer write
/// tore or replaced), in order, and what it read plus what it missed is
/// how far it moved.
#[test]
fn a_lossy_subscriber_never_returns_a_wrong_value() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
        let producer = thread::spawn(move || {
            for v in 0..3 {
                tx.try_push(v).unwrap();
            }
        });
        let mut read = 0;
        for _ in 0..3 {
            if let Some(v) = rx.try_pop() {
                assert_eq!(v, rx.position() - 1, "the value of its own position");
                read += 1;
            }
        }
        producer.join().unwrap();
        while let Some(v) = rx.try_pop() {
            assert_eq!(v, rx.position() - 1);
            read += 1;
        }
        assert_eq!(read + rx.missed(), 3);
    });
}

/// A lossless subscriber joins at the next value while the producer
/// runs: the producer never overwrites a value it has not read, so it
/// misses nothing from where it started.
#[test]
fn a_subscriber_joining_a_running_producer_misses_nothing() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let joiner = Arc::clone(&ring);
        let subscriber = thread::spawn(move || {
            let mut rx = joiner.subscriber_with(&lossless()).unwrap();
            let start = rx.position();
            while rx.position() < 2 {
                match rx.try_pop() {
                    Some(v) => assert_eq!(v, rx.position() - 1),
                    None => thread::yield_now(),
                }
            }
            assert_eq!(rx.missed(), 0, "started at {start}");
        });
        for v in 0..2 {
            push_spinning(&mut tx, v);
        }
        // Room for the subscriber to read up to 2 unless it started later.
        subscriber.join().unwrap();
    });
}

/// A lossless subscriber dies after reading one value: the producer,
/// held up by it at capacity 1, stops waiting for it and publishes the
/// rest (a producer that kept waiting spins until loom gives up).
#[test]
fn a_dead_subscriber_stops_holding_the_producer() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&lossless()).unwrap();
        let subscriber = thread::spawn(move || {
            while rx.try_pop().is_none() {
                thread::yield_now();
            }
            rx.die();
        });
        for v in 0..3 {
            push_spinning(&mut tx, v);
        }
        assert_eq!(tx.pushed(), 3);
        subscriber.join().unwrap();
    });
}

/// Write chunks against read chunks at capacity 1: a lossless
/// subscriber reading in place gets each value once, in order, every
/// release whole; the producer reserves a slot only once it was released.
#[test]
fn lossless_read_chunks_get_every_value_from_write_chunks() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&lossless()).unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=2 {
                let mut chunk = loop {
                    match tx.try_reserve(1) {
                        Some(chunk) => break chunk,
                        None => thread::yield_now(),
                    }
                };
                chunk.write(0, v);
                chunk.commit_all();
            }
        });
        for want in 1..=2 {
            let chunk = loop {
                match rx.try_read(1) {
                    Some(chunk) => break chunk,
                    None => thread::yield_now(),
                }
            };
            assert_eq!(chunk.read(0), want);
            chunk.release_all().unwrap();
        }
        assert_eq!(rx.missed(), 0);
        producer.join().unwrap();
    });
}

/// A lossy subscriber reading chunks of two while chunks of two lap it,
/// at capacity 2: a value a release counts whole is its position's (each
/// lent slot's busy mark before the writer's fence, the reader's fence
/// and second look at each stamp), and what it read plus what it missed
/// is how far it moved.
#[test]
fn a_lossy_read_chunk_never_passes_a_wrong_value_as_whole() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
        let producer = thread::spawn(move || {
            for first in [0, 2] {
                let mut chunk = tx.try_reserve(2).unwrap();
                assert_eq!(chunk.len(), 2);
                chunk.write(0, first);
                chunk.write(1, first + 1);
                chunk.commit_all();
            }
        });
        let mut read = 0;
        let mut look = |rx: &mut shmring::Subscriber<u64>| {
            if let Some(chunk) = rx.try_read(2) {
                let at = chunk.position();
                let values: Vec<u64> = chunk.iter().collect();
                let whole = chunk
                    .release_all()
                    .map_or_else(|o| o.whole(), |()| values.len());
                for (i, v) in values[..whole].iter().enumerate() {
                    assert_eq!(*v, at + i as u64, "a whole value is its position's");
                }
                read += whole as u64;
            }
        };
        look(&mut rx);
        look(&mut rx);
        producer.join().unwrap();
        for _ in 0..3 {
            look(&mut rx);
        }
        assert_eq!(read + rx.missed(), 4);
    });
}

/// A lossless subscriber with a lag bound of one value, racing a producer
/// that makes it lossy when it falls behind (no clock: the bound is in
/// values) and then laps it: whatever the interleaving, every value it
/// returns is its position's, and what it read plus what it missed is how
/// far it moved.
#[test]
fn a_subscriber_made_lossy_by_its_lag_bound_never_returns_a_wrong_value() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let opts = lossless().demote_after_lag(Some(1));
        let mut rx = ring.subscriber_with(&opts).unwrap();
        let producer = thread::spawn(move || {
            for v in 0..4 {
                push_spinning(&mut tx, v);
            }
        });
        let mut read = 0;
        for _ in 0..2 {
            if let Some(v) = rx.try_pop() {
                assert_eq!(v, rx.position() - 1, "the value of its own position");
                read += 1;
            }
        }
        producer.join().unwrap();
        assert!(rx.is_demoted(), "4 values past a bound of 1 behind");
        while let Some(v) = rx.try_pop() {
            assert_eq!(v, rx.position() - 1);
            read += 1;
        }
        assert_eq!(read + rx.missed(), 4);
    });
}

/// A lossless subscriber with a lag bound of one value leaves, and a
/// lossless one without bounds takes its entry while the producer runs:
/// the producer never makes the newcomer lossy, neither by pairing its
/// policy with the old holder's bound (the policy's Release and Acquire)
/// nor by a compare-exchange meant for the old holder (the join count in
/// the policy word).
#[test]
fn the_next_holder_of_an_entry_never_inherits_the_last_ones_bound() {
    // Two preemptions: three at this size take minutes, and every failing
    // schedule found needs no more than two.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let bounded = ring
            .subscriber_with(&lossless().demote_after_lag(Some(1)))
            .unwrap();
        let joiner = Arc::clone(&ring);
        let subscriber = thread::spawn(move || {
            drop(bounded);
            let mut rx = joiner.subscriber_with(&lossless()).unwrap();
            let start = rx.position();
            while rx.position() < 3 {
                if rx.try_pop().is_none() {
                    thread::yield_now();
                }
            }
            assert!(!rx.is_demoted(), "joined at {start}");
        });
        for v in 0..3 {
            push_spinning(&mut tx, v);
        }
        subscriber.join().unwrap();
    });
}

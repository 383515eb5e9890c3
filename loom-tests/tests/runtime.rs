//! Model checks of the rings of a run-time layout (`shmring::runtime`):
//! the typed rings' protocol with the value copied in and out as bytes.
//! The stamps' orderings are the typed rings' own, checked by `spsc.rs`
//! and `mpmc.rs`; loom cannot see plain copies race, so what these
//! models check is where the copies sit: a value copied in after its
//! slot was published, or out after it was released, arrives torn or
//! overwritten in some interleaving, and the value check fails. The
//! broadcast models check the run-time producer's and subscribers' own
//! seqlock code (their value words are the model's atomics, as the typed
//! broadcast ring's are: see `platform/sync.rs`'s `SeqValues`). Run as
//! `spsc.rs` says.
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use loom::thread;
use shmring::{
    CreateOptions, Error, RuntimeBroadcast, RuntimeMpmc, RuntimeSpsc, Schema, SubscriberOptions,
    TypeLayout,
};

/// Three words: a value that is not one atomic load or store.
fn layout() -> TypeLayout {
    TypeLayout::new(Schema::new("triple", 0).unwrap(), 24, 8).unwrap()
}

fn name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("loom-runtime-{}", NEXT.fetch_add(1, Relaxed))
}

/// Value `v`: every word says `v`.
fn value(v: u64) -> [u8; 24] {
    shmring::bytemuck::cast([v, v, v])
}

const COUNT: u64 = 3;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

/// SPSC, at capacity 1 (every push reuses the slot just released) and 2,
/// with and without zeroing on release.
#[test]
fn runtime_spsc_values_arrive_whole_and_in_order() {
    for (capacity, zero) in [(1, false), (2, false), (1, true)] {
        model(move || {
            let opts = CreateOptions::new().zero_after_use(zero);
            let ring =
                Arc::new(RuntimeSpsc::create_with(&name(), layout(), capacity, &opts).unwrap());
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let producer = thread::spawn(move || {
                for v in 1..=COUNT {
                    while matches!(tx.try_push(&value(v)), Err(Error::Full)) {
                        thread::yield_now();
                    }
                }
            });
            let mut out = [0u8; 24];
            for v in 1..=COUNT {
                while !rx.try_pop(&mut out).unwrap() {
                    thread::yield_now();
                }
                assert_eq!(out, value(v), "capacity {capacity}, zeroing {zero}");
            }
            producer.join().unwrap();
        });
    }
}

/// SPSC batches at capacity 2: three values pushed in batches as room
/// comes (one index store for each batch), popped in batches as they are
/// ready, each whole and in order.
#[test]
fn runtime_spsc_batches_arrive_whole_and_in_order() {
    model(|| {
        let ring = Arc::new(RuntimeSpsc::create(&name(), layout(), 2).unwrap());
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            let all: Vec<u8> = (1..=COUNT).flat_map(value).collect();
            let mut at = 0;
            while at < all.len() {
                at += tx.try_push_many(&all[at..]).unwrap() * 24;
                if at < all.len() {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        let mut out = [0u8; 48];
        while got.len() < COUNT as usize {
            let n = rx.try_pop_many(&mut out).unwrap();
            got.extend(out[..n * 24].chunks_exact(24).map(|v| v.to_vec()));
            if n == 0 {
                thread::yield_now();
            }
        }
        let want: Vec<Vec<u8>> = (1..=COUNT).map(|v| value(v).to_vec()).collect();
        assert_eq!(got, want);
        producer.join().unwrap();
    });
}

/// MPMC, one producer and one consumer at capacity 1 and 2.
#[test]
fn runtime_mpmc_values_arrive_whole_and_in_order() {
    for capacity in [1, 2] {
        model(move || {
            let ring = Arc::new(RuntimeMpmc::create(&name(), layout(), capacity).unwrap());
            let tx = ring.producer().unwrap();
            let rx = ring.consumer().unwrap();
            let producer = thread::spawn(move || {
                for v in 1..=COUNT {
                    while matches!(tx.try_push(&value(v)), Err(Error::Full)) {
                        thread::yield_now();
                    }
                }
            });
            let mut out = [0u8; 24];
            for v in 1..=COUNT {
                while !rx.try_pop(&mut out).unwrap() {
                    thread::yield_now();
                }
                assert_eq!(out, value(v), "capacity {capacity}");
            }
            producer.join().unwrap();
        });
    }
}

/// A broadcast value as the model holds one: a word (see the module doc).
fn word_layout() -> TypeLayout {
    TypeLayout::new(Schema::new("word", 0).unwrap(), 8, 8).unwrap()
}

/// A run-time lossless subscriber at capacity 1 reads every value a
/// run-time producer publishes, in order: the producer waits for its
/// release before it overwrites.
#[test]
fn a_runtime_lossless_subscriber_gets_every_value() {
    model(|| {
        let ring = Arc::new(RuntimeBroadcast::create(&name(), word_layout(), 1).unwrap());
        let mut tx = ring.producer().unwrap();
        // Never made lossy: demotion reads the clock, which the model
        // does not schedule.
        let lossless = SubscriberOptions::lossless().demote_after(None);
        let mut rx = ring.subscriber_with(&lossless).unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=COUNT {
                while matches!(tx.try_push(&v.to_ne_bytes()), Err(Error::Full)) {
                    thread::yield_now();
                }
            }
        });
        let mut out = [0u8; 8];
        for v in 1..=COUNT {
            while !rx.try_pop(&mut out).unwrap() {
                thread::yield_now();
            }
            assert_eq!(u64::from_ne_bytes(out), v);
        }
        assert_eq!(rx.missed(), 0);
        producer.join().unwrap();
    });
}

/// A run-time lossy subscriber racing a producer that laps it at
/// capacity 1: every value it returns is its own position's (never one a
/// newer write replaced while it copied), and what it read plus what it
/// missed is how far it moved.
#[test]
fn a_runtime_lossy_subscriber_never_returns_a_wrong_value() {
    model(|| {
        let ring = Arc::new(RuntimeBroadcast::create(&name(), word_layout(), 1).unwrap());
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
        let producer = thread::spawn(move || {
            for v in 0..COUNT {
                tx.try_push(&v.to_ne_bytes()).unwrap();
            }
        });
        let mut out = [0u8; 8];
        let mut read = 0;
        let mut check = |rx: &mut shmring::RuntimeSubscriber, read: &mut u64| {
            while rx.try_pop(&mut out).unwrap() {
                assert_eq!(
                    u64::from_ne_bytes(out),
                    rx.position() - 1,
                    "its own position's"
                );
                *read += 1;
            }
        };
        check(&mut rx, &mut read);
        producer.join().unwrap();
        check(&mut rx, &mut read);
        assert_eq!(read + rx.missed(), COUNT);
    });
}

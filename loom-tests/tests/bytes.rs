//! Model checks of the byte ring: one and two producers and one consumer
//! on the smallest ring (64 bytes: two 32-byte records), so every model
//! wraps, and the interleavings that leave too little room before the end
//! make padding. Payload reads and writes are tracked by loom (see
//! `record.rs`), so a missing happens-before edge between a producer's
//! write and the consumer's read (or the consumer's read and the next lap's
//! write) is reported as a data race, and a lost wakeup as a deadlock.
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use shmring::{ByteConsumer, ByteProducer, ByteRing, CreateOptions, WaitStrategy};

const FOREVER: Duration = Duration::from_secs(3600);

fn ring() -> Arc<ByteRing> {
    ring_with(&CreateOptions::new())
}

fn ring_with(opts: &CreateOptions) -> Arc<ByteRing> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-bytes-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(ByteRing::create_with(&name, 64, opts).unwrap())
}

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

fn sleepy_producer(ring: &ByteRing) -> ByteProducer {
    let mut tx = ring.producer().unwrap();
    tx.set_wait_strategy(WaitStrategy::Sleep);
    tx
}

fn sleepy_consumer(ring: &ByteRing) -> ByteConsumer {
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Sleep);
    rx
}

/// Message `i` of producer `p`: `len` bytes, all `p * 16 + i + 1`.
fn body(p: u8, i: u8, len: usize) -> Vec<u8> {
    vec![p * 16 + i + 1; len]
}

/// Write a message in place through a grant.
fn send(tx: &mut ByteProducer, bytes: &[u8]) {
    let mut grant = tx.reserve_timeout(bytes.len(), FOREVER).unwrap();
    grant.copy_from_slice(bytes);
    grant.commit();
}

/// Two producers, one consumer: producer 0 sends an 8-byte and an empty
/// message, producer 1 aborts a grant and sends a 16-byte message (112
/// bytes of records through a 64-byte ring). Every message arrives once,
/// intact, each producer's in order; the aborted grant never arrives.
#[test]
fn two_producers_wrap_pad_and_abort() {
    model(2, || {
        let ring = ring();
        let mut tx0 = sleepy_producer(&ring);
        let mut tx1 = sleepy_producer(&ring);
        let mut rx = sleepy_consumer(&ring);
        let p0 = thread::spawn(move || {
            send(&mut tx0, &body(0, 0, 8));
            send(&mut tx0, &body(0, 1, 0));
        });
        let p1 = thread::spawn(move || {
            tx1.reserve_timeout(16, FOREVER).unwrap().abort();
            send(&mut tx1, &body(1, 0, 16));
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv_timeout(FOREVER).unwrap().to_vec());
        }
        p0.join().unwrap();
        p1.join().unwrap();
        assert!(
            rx.try_recv().unwrap().is_none(),
            "an extra message: {got:?}"
        );
        let from = |p: u8| -> Vec<&Vec<u8>> {
            got.iter()
                .filter(|m| m.first().map_or(p == 0, |b| (b - 1) / 16 == p))
                .collect()
        };
        assert_eq!(from(0), [&body(0, 0, 8), &body(0, 1, 0)], "{got:?}");
        assert_eq!(from(1), [&body(1, 0, 16)], "{got:?}");
    });
}

/// One producer laps the ring twice through full-ring waits while the
/// consumer sleeps on empty: both wakeups, and the head hand-over that lets
/// the producer reuse space only after the consumer read it.
#[test]
fn one_producer_laps_the_ring() {
    laps(3, CreateOptions::new());
}

/// The same in a ring that zeroes what the consumer releases, framing
/// included: zeros not ordered before the producer's next record there
/// (by the `head` store's Release) wipe its commit word, and the
/// consumer sleeps for ever.
#[test]
fn zeros_land_before_the_next_lap_writes() {
    laps(2, CreateOptions::new().zero_after_use(true));
}

fn laps(preemptions: usize, opts: CreateOptions) {
    model(preemptions, move || {
        let ring = ring_with(&opts);
        let mut tx = sleepy_producer(&ring);
        let mut rx = sleepy_consumer(&ring);
        let producer = thread::spawn(move || {
            for i in 0..4 {
                send(&mut tx, &body(0, i, 16));
            }
        });
        for i in 0..4 {
            assert_eq!(*rx.recv_timeout(FOREVER).unwrap(), body(0, i, 16));
        }
        producer.join().unwrap();
    });
}

/// A message that leaves 16 bytes before the end forces the next one to
/// wrap behind padding; the consumer takes batches, and releases each with
/// one store.
#[test]
fn batches_across_padding() {
    model(2, || {
        let ring = ring();
        let mut tx = sleepy_producer(&ring);
        let mut rx = sleepy_consumer(&ring);
        let producer = thread::spawn(move || {
            send(&mut tx, &body(0, 0, 16)); // 32 bytes
            send(&mut tx, &body(0, 1, 0)); // 16 bytes: 16 left before the end
            send(&mut tx, &body(0, 2, 1)); // 32 bytes: wraps behind padding
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let batch = rx.read_batch().unwrap();
            if batch.is_empty() {
                drop(batch);
                thread::yield_now();
                continue;
            }
            got.extend(batch.iter().map(<[u8]>::to_vec));
        }
        producer.join().unwrap();
        assert_eq!(got, [body(0, 0, 16), body(0, 1, 0), body(0, 2, 1)]);
    });
}

//! Model checks of the MPMC ring: 2 producers x 2 consumers, 2 x 1 and
//! 1 x 2, at capacities 1, 2 and 4, spinning (try calls and a yield) and
//! through the blocking path (every wait sleeps on the model futex, so a
//! lost wakeup is a loom deadlock), and the zero-copy guards. The blocking
//! models are the smallest that still make every side sleep: each sleeping
//! wait multiplies loom's state space.
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use shmring::{CreateOptions, Mpmc, MpmcConsumer, MpmcProducer, WaitStrategy};

const FOREVER: Duration = Duration::from_secs(3600);

fn ring(capacity: usize) -> Arc<Mpmc<u64>> {
    ring_with(capacity, &CreateOptions::new())
}

fn ring_with(capacity: usize, opts: &CreateOptions) -> Arc<Mpmc<u64>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-mpmc-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(Mpmc::<u64>::create_with(&name, capacity, opts).unwrap())
}

fn sleepy_producer(ring: &Mpmc<u64>) -> MpmcProducer<u64> {
    let mut tx = ring.producer().unwrap();
    tx.set_wait_strategy(WaitStrategy::Sleep);
    tx
}

fn sleepy_consumer(ring: &Mpmc<u64>) -> MpmcConsumer<u64> {
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Sleep);
    rx
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(2, f)
}

/// Up to four threads: bound preemptions so the model finishes in CI time.
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Models with long executions (a skipped position passed over and
/// rewritten a lap later): more steps than loom's default bound allows.
/// The models of dead handles and repairs are in `repair.rs`.
fn long_model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.max_branches = 20_000;
    builder.check(f);
}

fn push(tx: &MpmcProducer<u64>, v: u64, blocking: bool) {
    if blocking {
        tx.push_timeout(v, FOREVER).unwrap();
    } else {
        while tx.try_push(v).is_err() {
            thread::yield_now();
        }
    }
}

fn pop(rx: &MpmcConsumer<u64>, blocking: bool) -> u64 {
    if blocking {
        return rx.pop_timeout(FOREVER).unwrap();
    }
    loop {
        if let Some(v) = rx.try_pop() {
            return v;
        }
        thread::yield_now();
    }
}

/// Producers `p` push `per` values each (tagged `p * 10 + i`); consumers
/// pop until all arrived. Every value arrives exactly once, and each
/// consumer sees each producer's values in order.
fn exchange(capacity: usize, producers: u64, consumers: u64, per: u64, blocking: bool) {
    // Four threads explode at two preemptions; three stay in seconds.
    let preemptions = if producers + consumers > 3 { 1 } else { 2 };
    model_bounded(preemptions, move || {
        let ring = ring(capacity);
        let total = producers * per;
        assert_eq!(total % consumers, 0);
        let mut threads = Vec::new();
        for p in 0..producers {
            let tx = sleepy_producer(&ring);
            threads.push(thread::spawn(move || {
                for i in 0..per {
                    push(&tx, p * 10 + i, blocking);
                }
                Vec::new()
            }));
        }
        for _ in 1..consumers {
            let rx = sleepy_consumer(&ring);
            threads.push(thread::spawn(move || {
                (0..total / consumers).map(|_| pop(&rx, blocking)).collect()
            }));
        }
        let rx = sleepy_consumer(&ring);
        let mine: Vec<u64> = (0..total / consumers).map(|_| pop(&rx, blocking)).collect();
        let mut all = mine.clone();
        let mut seen = vec![mine];
        for t in threads {
            let got = t.join().unwrap();
            all.extend(&got);
            seen.push(got);
        }
        all.sort_unstable();
        let mut expected: Vec<u64> = (0..producers)
            .flat_map(|p| (0..per).map(move |i| p * 10 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected, "lost or duplicated values");
        for got in seen {
            for p in 0..producers {
                let mine: Vec<u64> = got.iter().copied().filter(|v| v / 10 == p).collect();
                assert!(
                    mine.windows(2).all(|w| w[0] < w[1]),
                    "out of order: {got:?}"
                );
            }
        }
    });
}

#[test]
fn two_by_two_capacity_1() {
    exchange(1, 2, 2, 1, true);
}

#[test]
fn two_by_two_capacity_2() {
    exchange(2, 2, 2, 1, true);
}

#[test]
fn two_by_two_capacity_4() {
    exchange(4, 2, 2, 1, true);
}

#[test]
fn two_by_one_capacity_2_wraps() {
    exchange(2, 2, 1, 2, true);
}

#[test]
fn one_by_two_capacity_1_wraps() {
    exchange(1, 1, 2, 2, true);
}

#[test]
fn one_by_two_capacity_4() {
    exchange(4, 1, 2, 2, true);
}

/// Two producers contend for one slot while the consumer sleeps: both
/// producer-side and consumer-side sleepers must be woken.
#[test]
fn blocking_two_by_one_capacity_1() {
    exchange(1, 2, 1, 1, true);
}

/// Two consumers sleep on an empty ring until the producer publishes.
#[test]
fn blocking_one_by_two_capacity_1() {
    exchange(1, 1, 2, 2, true);
}

/// The zero-copy guards: a value written in place through a claim is read
/// in place by a consumer, across wraparound at capacity 1.
#[test]
fn guards_hand_values_over() {
    model(|| {
        let ring = ring(1);
        let tx = sleepy_producer(&ring);
        let rx = sleepy_consumer(&ring);
        let producer = thread::spawn(move || {
            for v in 1..=2 {
                let mut slot = tx.reserve_timeout(FOREVER).unwrap();
                *slot = v;
                slot.commit();
            }
        });
        for v in 1..=2 {
            let slot = rx.read_timeout(FOREVER).unwrap();
            assert_eq!(*slot, v);
        }
        producer.join().unwrap();
    });
}

/// A producer drops a claimed slot unwritten (a skip) while another
/// producer writes the same slot a lap later: the skip is published with
/// Release, so the second writer's write comes after the first's zeroing
/// (loom reports the race otherwise), and the consumer passes over the
/// skip and gets only the written value.
#[test]
fn a_write_slot_dropped_unwritten_is_passed_over() {
    long_model(|| {
        let ring = ring(1);
        let skipper = ring.producer().unwrap();
        let writer = ring.producer().unwrap();
        let rx = ring.consumer().unwrap();
        // Unless the writer took position 0 first (then there is no room).
        let first = thread::spawn(move || drop(skipper.try_reserve()));
        // One thread writes and reads, so only one spins.
        let mut got = Vec::new();
        while writer.try_push(7).is_err() {
            got.extend(rx.try_pop());
            thread::yield_now();
        }
        got.push(pop(&rx, false));
        first.join().unwrap();
        assert_eq!(got, vec![7]);
        assert_eq!(rx.try_pop(), None);
    });
}

/// A ring that zeroes what its consumers release: at capacity 1 each
/// push writes the slot a consumer just zeroed, so zeros not ordered
/// before that write (by the release stamp's Release) race with it, or
/// wipe a value before it is read. Two consumers: either may zero.
#[test]
fn zeros_land_before_the_next_lap_writes() {
    model(|| {
        let ring = ring_with(1, &CreateOptions::new().zero_after_use(true));
        let tx = ring.producer().unwrap();
        let (rx1, rx2) = (ring.consumer().unwrap(), ring.consumer().unwrap());
        let other = thread::spawn(move || pop(&rx2, false));
        push(&tx, 1, false);
        push(&tx, 2, false);
        let mut got = [pop(&rx1, false), other.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

//! Model checks of the MPMC ring: 2 producers x 2 consumers, 2 x 1 and
//! 1 x 2, at capacities 1, 2 and 4, spinning (try calls and a yield) and
//! through the blocking path (every wait sleeps on the model futex, so a
//! lost wakeup is a loom deadlock), and the zero-copy guards. The blocking
//! models are the smallest that still make every side sleep: each sleeping
//! wait multiplies loom's state space.
#![cfg(loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use shmring::{Mpmc, MpmcConsumer, MpmcProducer, WaitStrategy};

const FOREVER: Duration = Duration::from_secs(3600);

fn ring(capacity: usize) -> Arc<Mpmc<u64>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-mpmc-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(Mpmc::<u64>::create(&name, capacity).unwrap())
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

/// The repair models: a consumer that polls runs a repair scan (dozens of
/// atomic operations) each time it finds the ring empty, so an execution
/// takes more steps than loom's default bound allows.
fn repair_model(f: impl Fn() + Sync + Send + 'static) {
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
                let mut slot = tx.claim_timeout(FOREVER).unwrap();
                *slot = v;
            }
        });
        for v in 1..=2 {
            let slot = rx.read_timeout(FOREVER).unwrap();
            assert_eq!(*slot, v);
        }
        producer.join().unwrap();
    });
}

/// Consumer side of the repair models: take values until `want` have come,
/// running the repairs whenever the ring looks empty (as a blocked call
/// does every few milliseconds), then check that nothing else is left.
fn drain_repairing(ring: &Mpmc<u64>, rx: &MpmcConsumer<u64>, want: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < want {
        match rx.try_pop() {
            Some(v) => got.push(v),
            None => {
                ring.recover();
                thread::yield_now();
            }
        }
    }
    ring.recover();
    assert_eq!(rx.try_pop(), None, "more values than were committed");
    got.sort_unstable();
    got
}

/// A producer dies holding two claims while a live producer's position
/// lies between them, inside the dead one's record: the repair skips the
/// dead positions only, and the live value arrives once.
#[test]
fn a_dead_producers_claims_are_skipped_and_a_live_ones_kept() {
    repair_model(|| {
        let ring = ring(4);
        let dead = ring.producer().unwrap();
        let live = ring.producer().unwrap();
        let rx = ring.consumer().unwrap();
        let doomed = thread::spawn(move || {
            for _ in 0..2 {
                let slot = dead.claim().unwrap();
                std::mem::forget(slot);
            }
            dead.die();
        });
        let survivor = thread::spawn(move || push(&live, 7, false));
        assert_eq!(drain_repairing(&ring, &rx, 1), vec![7]);
        doomed.join().unwrap();
        survivor.join().unwrap();
    });
}

/// A consumer dies holding a value while a live consumer takes another:
/// the dead one's value is handed to the live one, and each value arrives
/// once.
#[test]
fn a_dead_consumers_value_is_handed_on_once() {
    repair_model(|| {
        let ring = ring(2);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        let rx = ring.consumer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let doomed = thread::spawn(move || {
            if let Some(slot) = dead.read() {
                std::mem::forget(slot);
            }
            dead.die();
        });
        let got = drain_repairing(&ring, &rx, 2);
        assert_eq!(got, vec![1, 2], "lost or duplicated values");
        doomed.join().unwrap();
    });
}

/// A consumer dies holding a value while two live consumers both look for
/// it: exactly one of them takes it over (the repair lock hands the
/// adopter's claim record to the other, and the other looks at the slot
/// again after the records), and each value arrives once.
#[test]
fn two_consumers_never_both_take_over_a_dead_ones_value() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        for v in 1..=3 {
            tx.try_push(v).unwrap();
        }
        std::mem::forget(dead.read().unwrap());
        dead.die();
        let taken = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let other = {
            let (ring, taken) = (Arc::clone(&ring), Arc::clone(&taken));
            let rx = ring.consumer().unwrap();
            thread::spawn(move || take_until(&ring, &rx, &taken, 3))
        };
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 3);
        got.extend(other.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3], "lost, or taken over twice");
        ring.recover();
        assert_eq!(rx.try_pop(), None, "taken over again later");
    });
}

/// Take values (repairing when empty) until `taken`, shared by all
/// consumers, reaches `total`.
fn take_until(
    ring: &Mpmc<u64>,
    rx: &MpmcConsumer<u64>,
    taken: &loom::sync::atomic::AtomicUsize,
    total: usize,
) -> Vec<u64> {
    let mut got = Vec::new();
    while taken.load(Relaxed) < total {
        if let Some(slot) = rx.read() {
            got.push(*slot);
            taken.fetch_add(1, Relaxed);
            // Hold it a moment, so the other consumer looks meanwhile.
            thread::yield_now();
            drop(slot);
        } else {
            ring.recover();
            thread::yield_now();
        }
    }
    got
}

/// A consumer dies holding two values while a live consumer holds one that
/// lies between them, inside the dead one's record: only the dead one's
/// values are taken over, each value arrives once.
#[test]
fn a_live_consumers_value_inside_a_dead_ones_record_is_left_alone() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        for v in 1..=3 {
            tx.try_push(v).unwrap();
        }
        let dead = ring.consumer().unwrap();
        let taken = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        // What it holds when it dies counts as not yet delivered.
        let doomed = thread::spawn(move || {
            for _ in 0..2 {
                if let Some(slot) = dead.read() {
                    std::mem::forget(slot);
                }
            }
            dead.die();
        });
        let live = {
            let rx = ring.consumer().unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let got = rx.read().map(|slot| {
                    thread::yield_now();
                    *slot
                });
                if got.is_some() {
                    taken.fetch_add(1, Relaxed);
                }
                got
            })
        };
        doomed.join().unwrap();
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 3);
        got.extend(live.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3], "lost, or delivered twice");
    });
}

/// A consumer holds a value (position 1) and then takes over a dead
/// consumer's (position 0) while a third consumer looks for it: the
/// adopter's record must name both, so the third never takes position 0
/// over again (a record that named `1..=0`, nothing, let it: the value
/// was delivered twice).
#[test]
fn a_consumer_holding_a_value_adopts_an_orphan_once() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let dead = ring.consumer().unwrap();
        std::mem::forget(dead.read().unwrap());
        dead.die();
        let taken = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let holder = {
            let rx = ring.consumer().unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let first = rx.read();
                let second = rx.read();
                let got: Vec<u64> = first.iter().chain(second.iter()).map(|s| **s).collect();
                taken.fetch_add(got.len(), Relaxed);
                // Hold both a moment, so the other consumer looks meanwhile.
                thread::yield_now();
                got
            })
        };
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 2);
        got.extend(holder.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2], "lost, or taken over twice");
        ring.recover();
        assert_eq!(rx.try_pop(), None, "taken over again later");
    });
}

/// A producer drops a claimed slot unwritten (a skip) while another
/// producer writes the same slot a lap later: the skip is published with
/// Release, so the second writer's write comes after the first's zeroing
/// (loom reports the race otherwise), and the consumer passes over the
/// skip and gets only the written value.
#[test]
fn a_write_slot_dropped_unwritten_is_passed_over() {
    repair_model(|| {
        let ring = ring(1);
        let skipper = ring.producer().unwrap();
        let writer = ring.producer().unwrap();
        let rx = ring.consumer().unwrap();
        // Unless the writer took position 0 first (then there is no room).
        let first = thread::spawn(move || drop(skipper.claim()));
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

//! Two real processes move 10 million sequence numbers through an SPSC ring,
//! one value at a time and in chunks, at capacities 1, 2, 64 and 4096; the
//! consumer checks that every value arrives exactly once and in order.

#[macro_use]
mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use shmring::Spsc;

const COUNT: u64 = 10_000_000;
const CHUNK: usize = 64;
const DEADLINE: Duration = Duration::from_secs(300);

/// The runs spin; on two cores, two of them at once would only slow each other.
static SERIAL: Mutex<()> = Mutex::new(());

children!(child);

/// Entry point of the producer child: opens the ring and pushes 0..COUNT.
fn child(role: &str) {
    assert_eq!(role, "producer");
    let name: String = arg("RING");
    let chunked: bool = arg("CHUNKED");
    let count: u64 = arg("COUNT");
    let ring = Spsc::<u64>::open(&name).unwrap();
    assert!(!ring.is_creator(), "an opener did not create the ring");
    let mut tx = ring.producer().unwrap();
    let mut next = 0u64;
    let mut backoff = Backoff::new();
    let start = Instant::now();
    while next < count {
        assert!(start.elapsed() < DEADLINE, "producer stuck at {next}");
        if chunked {
            let Some(mut chunk) = tx.try_reserve(CHUNK.min((count - next) as usize)) else {
                backoff.snooze();
                continue;
            };
            let n = chunk.fill_from_iter(next..);
            chunk.commit(n);
            next += n as u64;
            backoff.reset();
        } else {
            match tx.try_push(next) {
                Ok(()) => {
                    next += 1;
                    backoff.reset();
                }
                Err(v) => {
                    assert_eq!(v.into_inner(), next, "a refused push gives the value back");
                    backoff.snooze();
                }
            }
        }
    }
}

fn run(capacity: usize, chunked: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("xproc");
    let ring = Spsc::<u64>::create(&name, capacity).unwrap();
    assert_eq!(ring.capacity(), capacity);
    let mut rx = ring.consumer().unwrap();
    let child = spawn_child(
        "producer",
        &[
            ("RING", name.clone()),
            ("CHUNKED", chunked.to_string()),
            ("COUNT", COUNT.to_string()),
        ],
    );
    let mut expected = 0u64;
    let mut backoff = Backoff::new();
    let start = Instant::now();
    while expected < COUNT {
        assert!(start.elapsed() < DEADLINE, "consumer stuck at {expected}");
        if chunked {
            let Some(chunk) = rx.try_read(CHUNK) else {
                backoff.snooze();
                continue;
            };
            for &v in chunk.iter() {
                assert_eq!(v, expected, "lost, duplicated or reordered value");
                expected += 1;
            }
            chunk.release_all();
            backoff.reset();
        } else if let Some(v) = rx.try_pop() {
            assert_eq!(v, expected, "lost, duplicated or reordered value");
            expected += 1;
            backoff.reset();
        } else {
            backoff.snooze();
        }
    }
    child.wait_success(DEADLINE);
    assert_eq!(rx.try_pop(), None, "nothing beyond the last value");
    assert_eq!(ring.pushed(), COUNT);
    assert_eq!(ring.popped(), COUNT);
}

#[test]
fn one_at_a_time_capacity_1() {
    run(1, false)
}
#[test]
fn one_at_a_time_capacity_2() {
    run(2, false)
}
#[test]
fn one_at_a_time_capacity_64() {
    run(64, false)
}
#[test]
fn one_at_a_time_capacity_4096() {
    run(4096, false)
}
#[test]
fn chunks_capacity_1() {
    run(1, true)
}
#[test]
fn chunks_capacity_2() {
    run(2, true)
}
#[test]
fn chunks_capacity_64() {
    run(64, true)
}
#[test]
fn chunks_capacity_4096() {
    run(4096, true)
}

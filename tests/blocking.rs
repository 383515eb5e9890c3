//! Blocking calls: timeouts, futex wakeups across processes, and a waiter
//! whose peer dies.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use shmring::{ByteRing, Mpmc, RecvError, SendError, Spsc, WaitStrategy};

const STRATEGIES: [WaitStrategy; 3] = [
    WaitStrategy::Spin,
    WaitStrategy::SpinThenSleep {
        spins: 100,
        yields: 2,
    },
    WaitStrategy::Sleep,
];

#[test]
fn pop_timeout_on_an_empty_ring_times_out_with_every_strategy() {
    let ring = Spsc::<u64>::create(&unique_name("popto"), 4).unwrap();
    let mut rx = ring.consumer().unwrap();
    for s in STRATEGIES {
        rx.set_wait_strategy(s);
        let t = Instant::now();
        let timeout = Duration::from_millis(30);
        assert!(matches!(
            rx.pop_timeout(timeout),
            Err(RecvError::Timeout { .. })
        ));
        assert!(t.elapsed() >= timeout, "{s:?} returned before its timeout");
        assert!(matches!(
            rx.read_timeout(8, timeout),
            Err(RecvError::Timeout { .. })
        ));
    }
    assert!(matches!(
        rx.pop_timeout(Duration::ZERO),
        Err(RecvError::Timeout { .. })
    ));
}

#[test]
fn push_timeout_on_a_full_ring_gives_the_value_back() {
    let ring = Spsc::<u64>::create(&unique_name("pushto"), 2).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.push_timeout(1, Duration::ZERO).unwrap();
    tx.push_timeout(2, Duration::ZERO).unwrap();
    for s in STRATEGIES {
        tx.set_wait_strategy(s);
        let timeout = Duration::from_millis(30);
        let t = Instant::now();
        let err = tx.push_timeout(77, timeout).unwrap_err();
        assert_eq!(err.into_inner(), 77);
        assert!(t.elapsed() >= timeout);
        assert!(matches!(
            tx.reserve_timeout(4, timeout),
            Err(SendError::Timeout { .. })
        ));
    }
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.pop_timeout(Duration::ZERO).unwrap(), 1);
    // Room again: a zero timeout succeeds without waiting.
    tx.push_timeout(3, Duration::ZERO).unwrap();
    assert!(matches!(
        tx.reserve_timeout(4, Duration::ZERO),
        Err(SendError::Timeout { .. })
    ));
}

/// A producer that found a large ring full waits a little for a batch of
/// room while it spins, but takes a single freed slot when no more comes,
/// with every strategy, and loses nothing.
#[test]
fn a_full_ring_with_one_freed_slot_takes_the_push() {
    const CAP: u64 = 256;
    for s in STRATEGIES {
        let ring = Spsc::<u64>::create(&unique_name("onefree"), CAP as usize).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.set_wait_strategy(s);
        for v in 0..CAP {
            tx.try_push(v).unwrap();
        }
        let mut rx = ring.consumer().unwrap();
        let consumer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let first = rx.try_pop();
            // Free nothing more until the producer has pushed.
            std::thread::sleep(Duration::from_millis(300));
            (first, rx)
        });
        tx.push_timeout(CAP, Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{s:?}: one free slot was not taken"));
        let (first, mut rx) = consumer.join().unwrap();
        assert_eq!(first, Some(0), "{s:?}");
        let rest: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
        assert_eq!(rest, (1..=CAP).collect::<Vec<_>>(), "{s:?}");
    }
}

#[test]
fn a_zero_chunk_request_never_waits() {
    let ring = Spsc::<u64>::create(&unique_name("zerochunk"), 2).unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(rx
        .read_timeout(0, Duration::from_secs(3600))
        .unwrap()
        .is_empty());
}

children!(child);

/// Children: producers that stream with the blocking API, or that push
/// after a pause, or that hold the producer role and hang.
fn child(role: &str) {
    let name: String = arg("RING");
    let ring = Spsc::<u64>::open(&name).unwrap();
    if role == "sleep-as-consumer" {
        let mut rx = ring.consumer().unwrap();
        rx.set_wait_strategy(WaitStrategy::Sleep);
        let _ = rx.pop_timeout(Duration::from_secs(600));
        return;
    }
    let mut tx = ring.producer().unwrap();
    match role {
        "push-after-pause" => {
            std::thread::sleep(Duration::from_millis(100));
            tx.try_push(42).unwrap();
        }
        "stream-blocking" => {
            tx.set_wait_strategy(arg::<String>("STRATEGY").parse_strategy());
            let count: u64 = arg("COUNT");
            for v in 0..count {
                tx.push_timeout(v, Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("push {v} timed out: lost wakeup?"));
            }
        }
        "hang" => std::thread::sleep(Duration::from_secs(600)),
        "push-and-count-wakes" => {
            // Alone in its process, so the futex counters are its own.
            let count: u64 = arg("COUNT");
            let before = shmring::futex_calls().wakes;
            for v in 0..count {
                tx.try_push(v).unwrap();
            }
            let wakes = shmring::futex_calls().wakes - before;
            assert!(wakes <= 1, "{wakes} wake calls for {count} pushes");
        }
        other => panic!("unknown role {other}"),
    }
}

trait ParseStrategy {
    fn parse_strategy(&self) -> WaitStrategy;
}

impl ParseStrategy for String {
    fn parse_strategy(&self) -> WaitStrategy {
        match self.as_str() {
            "spin" => WaitStrategy::Spin,
            "sleep" => WaitStrategy::Sleep,
            _ => WaitStrategy::default(),
        }
    }
}

#[test]
fn a_sleeping_consumer_is_woken_by_another_process() {
    let name = unique_name("wake");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Sleep);
    let child = spawn_child("push-after-pause", &[("RING", name)]);
    let before = shmring::futex_calls();
    let t = Instant::now();
    assert_eq!(rx.pop_timeout(Duration::from_secs(60)).unwrap(), 42);
    // Woken, not timed out (the bound is far above any wake latency).
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        shmring::futex_calls().waits > before.waits,
        "it really slept"
    );
    child.wait_success(Duration::from_secs(30));
}

fn stream_blocking(strategy: &str) {
    let name = unique_name("stream");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(strategy.to_owned().parse_strategy());
    const COUNT: u64 = 300_000;
    let child = spawn_child(
        "stream-blocking",
        &[
            ("RING", name),
            ("COUNT", COUNT.to_string()),
            ("STRATEGY", strategy.to_owned()),
        ],
    );
    for expected in 0..COUNT {
        let v = rx
            .pop_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("pop {expected}: {e} (lost wakeup?)"));
        assert_eq!(v, expected);
    }
    child.wait_success(Duration::from_secs(60));
}

/// Both sides sleep whenever they wait: every hand-off exercises the
/// wakeup protocol, so a lost wakeup would surface as a 30 s timeout.
#[test]
fn streaming_with_both_sides_sleeping_loses_no_wakeup() {
    stream_blocking("sleep");
}

#[test]
fn streaming_with_the_default_strategy() {
    stream_blocking("default");
}

#[test]
fn a_waiter_whose_producer_dies_returns_at_its_timeout() {
    let name = unique_name("deadpeer");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    let mut rx = ring.consumer().unwrap();
    let child = spawn_child("hang", &[("RING", name)]);
    // Wait until the child holds the producer role, then kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ring.producer().is_ok() {
        assert!(Instant::now() < deadline, "child never claimed the role");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill();
    let t = Instant::now();
    assert!(matches!(
        rx.pop_timeout(Duration::from_millis(200)),
        Err(RecvError::Timeout { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_consumer_that_dies_asleep_costs_one_wake_not_one_per_push() {
    let name = unique_name("deadsleeper");
    let ring = Spsc::<u64>::create(&name, 1024).unwrap();
    let sleeper = spawn_child("sleep-as-consumer", &[("RING", name.clone())]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while shmring::inspect(&name).unwrap().sleeping_consumers == 0 {
        assert!(Instant::now() < deadline, "the child never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    sleeper.kill();
    let pusher = spawn_child(
        "push-and-count-wakes",
        &[("RING", name), ("COUNT", "1000".into())],
    );
    pusher.wait_success(Duration::from_secs(60));
    drop(ring);
}

#[test]
fn producers_wait_for_room_by_yielding_and_consumers_by_spinning_unless_told_otherwise() {
    let (room, value) = (WaitStrategy::producer_default(), WaitStrategy::default());
    assert_ne!(room, value, "two waits, two defaults");
    let spsc = Spsc::<u64>::create(&unique_name("defaults-spsc"), 8).unwrap();
    let mpmc = Mpmc::<u64>::create(&unique_name("defaults-mpmc"), 8).unwrap();
    let bytes = ByteRing::create(&unique_name("defaults-bytes"), 4096).unwrap();
    let waits = [
        (
            "spsc producer",
            spsc.producer().unwrap().wait_strategy(),
            room,
        ),
        (
            "spsc consumer",
            spsc.consumer().unwrap().wait_strategy(),
            value,
        ),
        (
            "mpmc producer",
            mpmc.producer().unwrap().wait_strategy(),
            room,
        ),
        (
            "mpmc stream",
            mpmc.producer_stream(1).unwrap().wait_strategy(),
            room,
        ),
        (
            "mpmc consumer",
            mpmc.consumer().unwrap().wait_strategy(),
            value,
        ),
        (
            "byte producer",
            bytes.producer().unwrap().wait_strategy(),
            room,
        ),
        (
            "byte consumer",
            bytes.consumer().unwrap().wait_strategy(),
            value,
        ),
    ];
    for (handle, got, want) in waits {
        assert_eq!(got, want, "{handle}");
    }
    let mut tx = spsc.producer().unwrap();
    tx.set_wait_strategy(WaitStrategy::Spin);
    assert_eq!(tx.wait_strategy(), WaitStrategy::Spin, "the setter sticks");
}

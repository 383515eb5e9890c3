//! shmring against its closest peers, case by case, as ratios: each case
//! runs the two rings alternately (which one goes first alternates too),
//! with the producer pinned to CPU 0 and the consumer to CPU 1, and reports
//! the median of the per-pair ratios. On a shared, noisy machine the
//! absolute times drift by 2x between minutes; a pair's two runs are
//! seconds apart, so the ratio is what to quote.
//!
//! `cargo bench --bench versus` runs every case; name cases to run some
//! (`cargo bench --bench versus -- blocking chunks`); `VERSUS_PAIRS` sets
//! how many pairs (9).
//!
//! Like with like: a blocking call against a blocking call (ringfire's
//! lossless `push` waits for room the way our `push_timeout` does), a
//! spinning loop around a `try_` call against the same loop.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shmring::{Broadcast, Mpmc, Spsc};
use shmring_bench_kit::placement::{cpu_model, pin_to_cpu};

mod common;
use common::name;

/// Values per run of a streaming case, and round trips per run.
const VALUES: u64 = 4_000_000;
const TRIPS: u64 = 200_000;
const CAPACITY: usize = 4096;
const CHUNK: usize = 64;
/// Messages in flight in a round trip: one; a small ring, as a service uses.
const TRIP_CAPACITY: usize = 64;
const LONG: Duration = Duration::from_secs(30);

/// Run `produce` on CPU 0 (this thread) and `consume` on CPU 1; time both.
fn pair(produce: impl FnOnce() + Send, consume: impl FnOnce() + Send) -> Duration {
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            pin_to_cpu(1);
            consume()
        });
        pin_to_cpu(0);
        let start = Instant::now();
        produce();
        consumer.join().unwrap();
        start.elapsed()
    })
}

/// Pop `n` values with `pop`, spinning while it finds none.
fn drain(n: u64, mut pop: impl FnMut() -> Option<u64>) {
    for _ in 0..n {
        loop {
            if let Some(v) = pop() {
                black_box(v);
                break;
            }
            std::hint::spin_loop();
        }
    }
}

/// Push `0..n` with `push`, spinning while it refuses.
fn fill(n: u64, mut push: impl FnMut(u64) -> bool) {
    for v in 0..n {
        while !push(v) {
            std::hint::spin_loop();
        }
    }
}

/// A ringfire ring of `capacity` in /dev/shm, lossless (the producer waits
/// for its reader), with its one reader attached; the file goes with the
/// guard.
struct RingfireRing<T: Copy + 'static> {
    tx: ringfire::RingProducer<T>,
    rx: ringfire::RingConsumer<T>,
    path: String,
}

impl<T: Copy + 'static> RingfireRing<T> {
    fn new(tag: &str, capacity: usize) -> Self {
        let path = format!("/dev/shm/{}", name(tag));
        let tx = ringfire::RingProducerBuilder::new(capacity as u64)
            .flow_control(ringfire::FlowControl::LosslessBackpressure)
            .build::<T, _>(&path)
            .unwrap();
        let rx = ringfire::RingConsumer::<T>::attach(&path).unwrap();
        RingfireRing { tx, rx, path }
    }
}

impl<T: Copy + 'static> Drop for RingfireRing<T> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// --- one value at a time, blocking calls -------------------------------

fn shmring_blocking() -> Duration {
    let ring = Spsc::<u64>::create(&name("versus-blocking"), CAPACITY).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    pair(
        move || (0..VALUES).for_each(|v| tx.push_timeout(v, LONG).unwrap()),
        move || drain(VALUES, || rx.try_pop()),
    )
}

fn ringfire_blocking() -> Duration {
    let mut ring = RingfireRing::<u64>::new("rf", CAPACITY);
    let (tx, rx) = (&mut ring.tx, &mut ring.rx);
    pair(
        move || (0..VALUES).for_each(|v| tx.push(&v)),
        move || drain(VALUES, || rx.try_recv()),
    )
}

// --- one value at a time, spinning on try_ ------------------------------

fn shmring_try() -> Duration {
    let ring = Spsc::<u64>::create(&name("versus-try"), CAPACITY).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    pair(
        move || fill(VALUES, |v| tx.try_push(v).is_ok()),
        move || drain(VALUES, || rx.try_pop()),
    )
}

fn ringfire_try() -> Duration {
    let mut ring = RingfireRing::<u64>::new("rf", CAPACITY);
    let (tx, rx) = (&mut ring.tx, &mut ring.rx);
    pair(
        move || fill(VALUES, |v| tx.try_push(&v).is_ok()),
        move || drain(VALUES, || rx.try_recv()),
    )
}

// --- the broadcast ring with one lossless subscriber --------------------
// ringfire's ring is itself SPMC: its rows above are the peer's.

fn broadcast_blocking() -> Duration {
    let ring = Broadcast::<u64>::create(&name("versus-bc-blocking"), CAPACITY).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.subscriber().unwrap());
    pair(
        move || (0..VALUES).for_each(|v| tx.push_timeout(v, LONG).unwrap()),
        move || drain(VALUES, || rx.try_pop()),
    )
}

fn broadcast_try() -> Duration {
    let ring = Broadcast::<u64>::create(&name("versus-bc-try"), CAPACITY).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.subscriber().unwrap());
    pair(
        move || fill(VALUES, |v| tx.try_push(v).is_ok()),
        move || drain(VALUES, || rx.try_pop()),
    )
}

fn rtrb_try() -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    pair(
        move || fill(VALUES, |v| tx.push(v).is_ok()),
        move || drain(VALUES, || rx.pop().ok()),
    )
}

// --- chunks of 64 -------------------------------------------------------

fn shmring_chunks() -> Duration {
    let ring = Spsc::<u64>::create(&name("versus-chunks"), CAPACITY).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    pair(
        move || {
            let mut v = 0;
            while v < VALUES {
                match tx.try_reserve(CHUNK.min((VALUES - v) as usize)) {
                    Some(mut chunk) => {
                        let n = chunk.fill_from_iter(v..);
                        chunk.commit(n);
                        v += n as u64;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        },
        move || {
            let mut got = 0;
            while got < VALUES {
                match rx.try_read(CHUNK) {
                    Some(chunk) => {
                        chunk.iter().for_each(|v| {
                            black_box(*v);
                        });
                        got += chunk.len() as u64;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        },
    )
}

fn rtrb_chunks() -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    pair(
        move || {
            let mut v = 0;
            while v < VALUES {
                let n = tx.slots().min(CHUNK).min((VALUES - v) as usize);
                if n == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = tx.write_chunk_uninit(n).unwrap();
                v += chunk.fill_from_iter(v..) as u64;
            }
        },
        move || {
            let mut got = 0;
            while got < VALUES {
                let n = rx.slots().min(CHUNK);
                if n == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = rx.read_chunk(n).unwrap();
                let (a, b) = chunk.as_slices();
                a.iter().chain(b).for_each(|v| {
                    black_box(*v);
                });
                got += n as u64;
                chunk.commit_all();
            }
        },
    )
}

// --- MPMC, one producer and one consumer --------------------------------

fn shmring_mpmc() -> Duration {
    let ring = Mpmc::<u64>::create(&name("versus-mpmc"), CAPACITY).unwrap();
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    pair(
        move || fill(VALUES, |v| tx.try_push(v).is_ok()),
        move || drain(VALUES, || rx.try_pop()),
    )
}

fn array_queue() -> Duration {
    let queue = crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY);
    let q = &queue;
    pair(
        move || fill(VALUES, |v| q.push(v).is_ok()),
        move || drain(VALUES, || q.pop()),
    )
}

// --- round trips, both sides spinning -----------------------------------

fn shmring_trip<T: shmring::Pod + Send + Default>() -> Duration {
    let ping = Spsc::<T>::create(&name("versus-ping"), TRIP_CAPACITY).unwrap();
    let pong = Spsc::<T>::create(&name("versus-pong"), TRIP_CAPACITY).unwrap();
    let (mut ping_tx, mut ping_rx) = (ping.producer().unwrap(), ping.consumer().unwrap());
    let (mut pong_tx, mut pong_rx) = (pong.producer().unwrap(), pong.consumer().unwrap());
    pair(
        move || {
            for _ in 0..TRIPS {
                while ping_tx.try_push(T::default()).is_err() {}
                loop {
                    if let Some(v) = pong_rx.try_pop() {
                        black_box(v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..TRIPS {
                loop {
                    if let Some(v) = ping_rx.try_pop() {
                        while pong_tx.try_push(v).is_err() {}
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
    )
}

fn ringfire_trip<T: Copy + Send + Default + 'static>() -> Duration {
    let (mut ping, mut pong) = (
        RingfireRing::<T>::new("ping", TRIP_CAPACITY),
        RingfireRing::<T>::new("pong", TRIP_CAPACITY),
    );
    let (ping_tx, ping_rx) = (&mut ping.tx, &mut ping.rx);
    let (pong_tx, pong_rx) = (&mut pong.tx, &mut pong.rx);
    pair(
        move || {
            for _ in 0..TRIPS {
                ping_tx.push(&T::default());
                loop {
                    if let Some(v) = pong_rx.try_recv() {
                        black_box(v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            for _ in 0..TRIPS {
                loop {
                    if let Some(v) = ping_rx.try_recv() {
                        pong_tx.push(&v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
    )
}

// --- the pairing ----------------------------------------------------------

/// One timed run of a ring through a case.
type Run = fn() -> Duration;

struct Case {
    name: &'static str,
    what: &'static str,
    per: u64,
    ours: Run,
    peers: Vec<(&'static str, Run)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let pairs: usize = std::env::var("VERSUS_PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9);
    let cases = [
        Case {
            name: "blocking",
            what: "SPSC u64 one at a time, blocking push (ours: push_timeout, default wait)",
            per: VALUES,
            ours: shmring_blocking,
            peers: vec![("ringfire push", ringfire_blocking)],
        },
        Case {
            name: "try",
            what: "SPSC u64 one at a time, spinning on try_push / try_pop",
            per: VALUES,
            ours: shmring_try,
            peers: vec![("ringfire try_push", ringfire_try), ("rtrb", rtrb_try)],
        },
        Case {
            name: "broadcast",
            what: "broadcast u64 to one lossless subscriber, blocking push (ours: push_timeout)",
            per: VALUES,
            ours: broadcast_blocking,
            peers: vec![("ringfire push", ringfire_blocking)],
        },
        Case {
            name: "broadcast_try",
            what: "broadcast u64 to one lossless subscriber, spinning on try_push / try_pop",
            per: VALUES,
            ours: broadcast_try,
            peers: vec![("ringfire try_push", ringfire_try)],
        },
        Case {
            name: "chunks",
            what: "SPSC u64 in chunks of 64, in place",
            per: VALUES,
            ours: shmring_chunks,
            peers: vec![("rtrb chunks", rtrb_chunks)],
        },
        Case {
            name: "mpmc",
            what: "MPMC u64, one producer and one consumer",
            per: VALUES,
            ours: shmring_mpmc,
            peers: vec![("crossbeam ArrayQueue", array_queue)],
        },
        Case {
            name: "trip8",
            what: "round trip of an 8-byte message, both sides spinning",
            per: TRIPS,
            ours: shmring_trip::<u64>,
            peers: vec![("ringfire", ringfire_trip::<u64>)],
        },
        Case {
            name: "trip64",
            what: "round trip of a 64-byte message, both sides spinning",
            per: TRIPS,
            ours: shmring_trip::<[u64; 8]>,
            peers: vec![("ringfire", ringfire_trip::<[u64; 8]>)],
        },
    ];
    println!(
        "host: {}, {} CPUs; {pairs} alternated pairs per row; ratio = shmring's time / the peer's (below 1: shmring faster)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for case in cases
        .iter()
        .filter(|c| chosen.is_empty() || chosen.iter().any(|n| n == c.name))
    {
        println!("{} [{}]", case.what, case.name);
        for (peer, theirs) in &case.peers {
            let (mut ours_ns, mut theirs_ns, mut ratios) = (vec![], vec![], vec![]);
            for i in 0..pairs {
                let (a, b) = if i % 2 == 0 {
                    let a = (case.ours)();
                    (a, theirs())
                } else {
                    let b = theirs();
                    ((case.ours)(), b)
                };
                let (a, b) = (
                    a.as_nanos() as f64 / case.per as f64,
                    b.as_nanos() as f64 / case.per as f64,
                );
                ours_ns.push(a);
                theirs_ns.push(b);
                ratios.push(a / b);
            }
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
            println!(
                "  vs {peer:22} shmring {:7.2} ns, peer {:7.2} ns: ratio {:.2} (pairs {lo:.2}-{hi:.2})",
                median(ours_ns),
                median(theirs_ns),
                median(ratios)
            );
        }
    }
}

//! SPSC throughput of u64 values between two threads, one value at a time
//! and in chunks of 64, for shmring (in a real shm segment) and its peers,
//! same capacity and same workload in one run; shmring also between two
//! processes; MPMC against crossbeam's `ArrayQueue`; shmring with and
//! without zeroing what is released; the broadcast ring against
//! ringfire's SPMC ring, with one subscriber (in the one-at-a-time group)
//! and fanned out to 1-8 subscriber processes. Ratios between the rows are
//! what to quote: this is a shared 2-core machine.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use shmring::CreateOptions;

const CAPACITY: usize = 4096;
const CHUNK: usize = 64;

mod common;
use common::name;
use shmring_bench_kit::placement::pin_to_cpu;

/// Run `produce(n)` on this thread, pinned to CPU 0, and `consume(n)` on
/// another, pinned to CPU 1; time both. (Unpinned, which row ran where
/// moved ratios by 2x between runs.)
fn two_threads<P, C>(n: u64, produce: P, consume: C) -> Duration
where
    P: FnOnce(u64),
    C: FnOnce(u64) + Send + 'static,
{
    let consumer = std::thread::spawn(move || {
        pin_to_cpu(1);
        consume(n)
    });
    pin_to_cpu(0);
    let start = Instant::now();
    produce(n);
    consumer.join().unwrap();
    start.elapsed()
}

/// Push 0..n with `push` (retried while it refuses) on this thread, pop n
/// values with `pop` (retried while empty) on another, spinning in between.
fn spin_pair(
    n: u64,
    mut push: impl FnMut(u64) -> bool,
    mut pop: impl FnMut() -> Option<u64> + Send + 'static,
) -> Duration {
    two_threads(
        n,
        |n| {
            for v in 0..n {
                while !push(v) {
                    std::hint::spin_loop();
                }
            }
        },
        move |n| {
            for _ in 0..n {
                loop {
                    if let Some(v) = pop() {
                        black_box(v);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// Run `bench` on a lossless ringfire ring of `CAPACITY` in /dev/shm and
/// its one reader; the ring's file goes afterwards.
fn with_ringfire(
    bench: impl FnOnce(ringfire::RingProducer<u64>, ringfire::RingConsumer<u64>) -> Duration,
) -> Duration {
    let path = format!("/dev/shm/{}", name("ringfire"));
    let tx = ringfire::RingProducerBuilder::new(CAPACITY as u64)
        .flow_control(ringfire::FlowControl::LosslessBackpressure)
        .build::<u64, _>(&path)
        .unwrap();
    let rx = ringfire::RingConsumer::<u64>::attach(&path).unwrap();
    let took = bench(tx, rx);
    let _ = std::fs::remove_file(&path);
    took
}

/// Elements per second, 20 samples of 2 s after 0.5 s of warm-up.
fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.throughput(Throughput::Elements(1));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// shmring's SPSC ring made with `opts`, one value at a time.
fn shmring_one(n: u64, opts: &CreateOptions) -> Duration {
    let ring = shmring::Spsc::<u64>::create_with(&name("one"), CAPACITY, opts).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    spin_pair(n, |v| tx.try_push(v).is_ok(), move || rx.try_pop())
}

/// shmring's SPSC ring made with `opts`, in chunks of up to `CHUNK`
/// written and read in place.
fn shmring_chunks(n: u64, opts: &CreateOptions) -> Duration {
    let ring = shmring::Spsc::<u64>::create_with(&name("chunk"), CAPACITY, opts).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    two_threads(
        n,
        |n| {
            let mut next = 0;
            while next < n {
                match tx.try_reserve(CHUNK.min((n - next) as usize)) {
                    Some(mut chunk) => {
                        let k = chunk.fill_from_iter(next..);
                        chunk.commit(k);
                        next += k as u64;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        },
        move |n| {
            let mut got = 0;
            while got < n {
                match rx.try_read(CHUNK) {
                    Some(chunk) => {
                        let k = chunk.len();
                        for v in chunk.iter() {
                            black_box(v);
                        }
                        chunk.release_all();
                        got += k as u64;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        },
    )
}

/// What zeroing each released value costs (`CreateOptions::zero_after_use`),
/// one at a time and in chunks: the same ring with and without it.
fn zero_after_use(c: &mut Criterion) {
    let mut g = c.benchmark_group("zero_after_use");
    configure(&mut g);
    for (label, zero) in [("plain", false), ("zeroed", true)] {
        let opts = CreateOptions::new().zero_after_use(zero);
        g.bench_function(BenchmarkId::new("spsc_u64_one_at_a_time", label), |b| {
            b.iter_custom(|n| shmring_one(n, &opts))
        });
        g.bench_function(BenchmarkId::new("spsc_u64_chunks_of_64", label), |b| {
            b.iter_custom(|n| shmring_chunks(n, &opts))
        });
    }
    g.finish();
}

/// Set in a subscriber process of the fan-out bench: `shmring:NAME` or
/// `ringfire:PATH`, the ring it reads (with `CHILD_COUNT`, how many values).
const CHILD_SUBSCRIBE: &str = "SHMRING_BENCH_SUBSCRIBE";

/// In a subscriber process: join the ring, say "ready", read n values
/// with the blocking call (each ring's own spin-then-sleep on a futex:
/// subscribers outnumbering the cores must give theirs up).
fn subscribe_and_read(ring: &str, n: u64) {
    use std::io::Write;
    let ready = || {
        let mut out = std::io::stdout().lock();
        out.write_all(b"ready\n").unwrap();
        out.flush().unwrap();
    };
    match ring.split_once(':') {
        Some(("shmring", name)) => {
            let ring = shmring::Broadcast::<u64>::open(name).unwrap();
            let mut rx = ring.subscriber().unwrap();
            ready();
            for _ in 0..n {
                black_box(rx.pop_timeout(Duration::from_secs(30)).unwrap());
            }
        }
        Some(("ringfire", path)) => {
            let mut rx = ringfire::RingConsumer::<u64>::attach(path).unwrap();
            let mut wait = ringfire::FutexWait::default();
            ready();
            for _ in 0..n {
                black_box(rx.recv_blocking(&mut wait));
            }
        }
        _ => panic!("bad {CHILD_SUBSCRIBE}: {ring}"),
    }
}

/// Start `k` subscriber processes on `ring` (see `CHILD_SUBSCRIBE`), wait
/// until each has joined, then push 0..n with `push` (a blocking call) on
/// this thread; the time until every subscriber has read all.
fn fan_out(n: u64, k: usize, ring: &str, mut push: impl FnMut(u64)) -> Duration {
    use std::io::BufRead;
    let mut children: Vec<_> = (0..k)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .env(CHILD_SUBSCRIBE, ring)
                .env(CHILD_COUNT, n.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "a subscriber process failed");
    }
    let start = Instant::now();
    for v in 0..n {
        push(v);
    }
    for child in &mut children {
        assert!(
            child.wait().unwrap().success(),
            "a subscriber process failed"
        );
    }
    start.elapsed()
}

/// Broadcast to 1, 2, 4 and 8 lossless subscriber processes, shmring and
/// ringfire, blocking calls on both sides, time per value published
/// (every subscriber reads each). On 2 cores, more than one subscriber
/// shares a core with the producer or another subscriber: the curve shows
/// what oversubscription costs each ring (sleeps and wakes), not how
/// either scales on a machine with a core per reader.
fn broadcast_fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_fan_out");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for k in [1usize, 2, 4, 8] {
        g.bench_function(BenchmarkId::new("shmring", k), |b| {
            b.iter_custom(|n| {
                let ring = shmring::Broadcast::<u64>::create(&name("bc-fan"), CAPACITY).unwrap();
                let mut tx = ring.producer().unwrap();
                let target = format!("shmring:{}", ring.name());
                let long = Duration::from_secs(30);
                fan_out(n, k, &target, |v| tx.push_timeout(v, long).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("ringfire", k), |b| {
            b.iter_custom(|n| {
                let path = format!("/dev/shm/{}", name("ringfire-fan"));
                let mut tx = ringfire::RingProducerBuilder::new(CAPACITY as u64)
                    .flow_control(ringfire::FlowControl::LosslessBackpressure)
                    .build::<u64, _>(&path)
                    .unwrap();
                let target = format!("ringfire:{path}");
                let took = fan_out(n, k, &target, |v| tx.push(&v));
                let _ = std::fs::remove_file(&path);
                took
            })
        });
    }
    g.finish();
}

fn one_at_a_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_u64_one_at_a_time");
    configure(&mut g);

    g.bench_function(BenchmarkId::from_parameter("shmring"), |b| {
        b.iter_custom(|n| shmring_one(n, &CreateOptions::new()))
    });

    // The broadcast ring with one lossless subscriber, beside ringfire's
    // SPMC ring with one lossless reader (`ringfire_push`, below).
    g.bench_function(BenchmarkId::from_parameter("shmring_broadcast"), |b| {
        b.iter_custom(|n| {
            let ring = shmring::Broadcast::<u64>::create(&name("bc-one"), CAPACITY).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.subscriber().unwrap();
            spin_pair(n, |v| tx.try_push(v).is_ok(), move || rx.try_pop())
        })
    });

    // Blocking pushes, like with like: ours waits with the producers'
    // default strategy, ringfire's lossless `push` with its own backoff.
    g.bench_function(BenchmarkId::from_parameter("shmring_push_timeout"), |b| {
        b.iter_custom(|n| {
            let ring = shmring::Spsc::<u64>::create(&name("one-blocking"), CAPACITY).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let long = Duration::from_secs(30);
            spin_pair(
                n,
                |v| tx.push_timeout(v, long).is_ok(),
                move || rx.try_pop(),
            )
        })
    });

    g.bench_function(BenchmarkId::from_parameter("ringfire_push"), |b| {
        b.iter_custom(|n| {
            with_ringfire(|mut tx, mut rx| {
                let push = |v| {
                    tx.push(&v);
                    true
                };
                spin_pair(n, push, move || rx.try_recv())
            })
        })
    });

    g.bench_function(BenchmarkId::from_parameter("ringfire_try_push"), |b| {
        b.iter_custom(|n| {
            with_ringfire(|mut tx, mut rx| {
                spin_pair(n, |v| tx.try_push(&v).is_ok(), move || rx.try_recv())
            })
        })
    });

    g.bench_function(BenchmarkId::from_parameter("rtrb"), |b| {
        b.iter_custom(|n| {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            spin_pair(n, |v| tx.push(v).is_ok(), move || rx.pop().ok())
        })
    });

    g.bench_function(BenchmarkId::from_parameter("ringbuf"), |b| {
        use ringbuf::traits::{Consumer, Producer, Split};
        b.iter_custom(|n| {
            let (mut tx, mut rx) = ringbuf::HeapRb::<u64>::new(CAPACITY).split();
            spin_pair(n, |v| tx.try_push(v).is_ok(), move || rx.try_pop())
        })
    });

    g.bench_function(BenchmarkId::from_parameter("crossbeam_array_queue"), |b| {
        b.iter_custom(|n| {
            let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
            let rq = q.clone();
            spin_pair(n, |v| q.push(v).is_ok(), move || rq.pop())
        })
    });

    // The channels block instead of failing; `spin_pair` never retries them.
    g.bench_function(BenchmarkId::from_parameter("crossbeam_channel"), |b| {
        b.iter_custom(|n| {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
            spin_pair(n, |v| tx.send(v).is_ok(), move || rx.recv().ok())
        })
    });

    g.bench_function(BenchmarkId::from_parameter("std_sync_channel"), |b| {
        b.iter_custom(|n| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
            spin_pair(n, |v| tx.send(v).is_ok(), move || rx.recv().ok())
        })
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_u64_chunks_of_64");
    configure(&mut g);

    g.bench_function(BenchmarkId::from_parameter("shmring"), |b| {
        b.iter_custom(|n| shmring_chunks(n, &CreateOptions::new()))
    });

    g.bench_function(BenchmarkId::from_parameter("rtrb"), |b| {
        b.iter_custom(|n| {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            two_threads(
                n,
                |n| {
                    let mut next = 0;
                    while next < n {
                        let want = CHUNK.min(tx.slots()).min((n - next) as usize);
                        if want == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = tx.write_chunk_uninit(want).unwrap();
                        next += chunk.fill_from_iter(next..) as u64;
                    }
                },
                move |n| {
                    let mut got = 0;
                    while got < n {
                        let k = CHUNK.min(rx.slots());
                        if k == 0 {
                            std::hint::spin_loop();
                            continue;
                        }
                        let chunk = rx.read_chunk(k).unwrap();
                        let (a, b) = chunk.as_slices();
                        for v in a.iter().chain(b) {
                            black_box(v);
                        }
                        chunk.commit_all();
                        got += k as u64;
                    }
                },
            )
        })
    });
    g.finish();
}

/// `p` producer threads push `n` values in all, `c` consumer threads pop
/// `n / c` each; `n` is rounded to a multiple of `p * c`.
/// `p` producer and `c` consumer threads, each with the handle its
/// factory makes (shmring handles have a claim record each: one per thread).
fn many_to_many<P, C>(
    n: u64,
    p: u64,
    c: u64,
    make_push: impl Fn() -> P + Sync,
    make_pop: impl Fn() -> C + Sync,
) -> Duration
where
    P: FnMut(u64) -> bool + Send,
    C: FnMut() -> Option<u64> + Send,
{
    let n = (n / (p * c)).max(1) * p * c;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..c {
            let mut pop = make_pop();
            s.spawn(move || {
                for _ in 0..n / c {
                    loop {
                        if let Some(v) = pop() {
                            black_box(v);
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            });
        }
        for _ in 0..p {
            let mut push = make_push();
            s.spawn(move || {
                for v in 0..n / p {
                    while !push(v) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_u64");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (p, k) in [(1u64, 1u64), (2, 2), (4, 4)] {
        let label = format!("{p}p{k}c");
        g.bench_function(BenchmarkId::new("shmring", &label), |b| {
            b.iter_custom(|n| {
                let ring = shmring::Mpmc::<u64>::create(&name("mpmc"), CAPACITY).unwrap();
                many_to_many(
                    n,
                    p,
                    k,
                    || {
                        let tx = ring.producer().unwrap();
                        move |v| tx.try_push(v).is_ok()
                    },
                    || {
                        let rx = ring.consumer().unwrap();
                        move || rx.try_pop()
                    },
                )
            })
        });
        g.bench_function(BenchmarkId::new("crossbeam_array_queue", &label), |b| {
            b.iter_custom(|n| {
                let q = crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY);
                many_to_many(n, p, k, || |v| q.push(v).is_ok(), || || q.pop())
            })
        });
    }
    g.finish();
}

/// Set in a child process of this bench: the ring it pushes into.
const CHILD_RING: &str = "SHMRING_BENCH_PUSH_INTO";
/// And how many values.
const CHILD_COUNT: &str = "SHMRING_BENCH_PUSH_COUNT";

/// Push 0..n into ring `name`, spinning while it is full. The same machine
/// code whether a thread or a child process runs it.
#[inline(never)]
fn push_all(name: &str, n: u64) {
    let ring = shmring::Spsc::<u64>::open(name).unwrap();
    let mut tx = ring.producer().unwrap();
    for v in 0..n {
        while tx.try_push(v).is_err() {
            std::hint::spin_loop();
        }
    }
}

/// Pop n values, spinning while the ring is empty; the time from the first
/// value to the last (so that starting a thread or a process is left out),
/// scaled to n values.
#[inline(never)]
fn pop_all(rx: &mut shmring::Consumer<u64>, n: u64) -> Duration {
    let mut pop = || loop {
        if let Some(v) = rx.try_pop() {
            break black_box(v);
        }
        std::hint::spin_loop();
    };
    pop();
    let start = Instant::now();
    for _ in 1..n {
        pop();
    }
    let elapsed = start.elapsed();
    elapsed.mul_f64(n as f64 / n.saturating_sub(1).max(1) as f64)
}

/// The same SPSC ring and the same code on both sides, the producer in
/// another thread or in another process (this bench binary, re-run).
fn threads_vs_processes(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_u64_threads_vs_processes");
    configure(&mut g);
    for processes in [false, true] {
        let id = if processes { "processes" } else { "threads" };
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|n| {
                let name = name("tvp");
                let ring = shmring::Spsc::<u64>::create(&name, CAPACITY).unwrap();
                let mut rx = ring.consumer().unwrap();
                if processes {
                    let mut child = Command::new(std::env::current_exe().unwrap())
                        .env(CHILD_RING, &name)
                        .env(CHILD_COUNT, n.to_string())
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap();
                    let elapsed = pop_all(&mut rx, n);
                    assert!(child.wait().unwrap().success(), "producer process failed");
                    elapsed
                } else {
                    let producer = std::thread::spawn(move || push_all(&name, n));
                    let elapsed = pop_all(&mut rx, n);
                    producer.join().unwrap();
                    elapsed
                }
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    one_at_a_time,
    threads_vs_processes,
    chunks,
    mpmc,
    zero_after_use,
    broadcast_fan_out
);

fn main() {
    if let Ok(ring) = std::env::var(CHILD_SUBSCRIBE) {
        let n = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
        subscribe_and_read(&ring, n);
        return;
    }
    if let Ok(ring) = std::env::var(CHILD_RING) {
        let n = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
        push_all(&ring, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

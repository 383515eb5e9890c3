//! What an awaiting task costs: the latency of a wake across processes
//! (a push, then the parked consumer runs), and the CPU an idle await
//! burns, beside ringfire's async consumer, shmring's own blocking call
//! and tokio's `mpsc` (within one process: it cannot cross one).
//!
//! ```sh
//! cargo bench -p shmring-async --bench wake            # WAKE_SAMPLES=2000 by default
//! ```
//!
//! The producer sleeps 0.2-2 ms between values, so every value finds the
//! consumer parked: this measures the wake path, not streaming. A value
//! carries the producer's CLOCK_MONOTONIC time (system-wide, so valid in
//! the other process); the consumer records how long after that it ran.

use std::time::Duration;

use hdrhistogram::Histogram;
use shmring::WaitStrategy;
use shmring_async::AsyncConsumer;

/// `clock`'s time, in ns.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC: system-wide, so a stamp is valid in another process.
fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time of this process (every thread), in ns.
fn cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Voluntary context switches of this process so far.
fn switches() -> i64 {
    // SAFETY: an all-zero rusage is valid for the call to fill.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    r.ru_nvcsw
}

/// The gaps between values: a fixed pseudo-random sequence in 0.2-2 ms.
fn gaps(n: usize) -> impl Iterator<Item = Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_micros(200 + x % 1800)
    })
}

/// Run `produce` in a forked child process (it exits after), and
/// `consume` here; the child is reaped.
fn across_processes(produce: impl FnOnce(), consume: impl FnOnce()) {
    // SAFETY: the child runs `produce` (shared-memory pushes, sleeps and
    // clock reads; no lock another thread could hold but malloc's, which
    // glibc makes safe across fork) and `_exit`s.
    match unsafe { libc::fork() } {
        0 => {
            produce();
            // SAFETY: ends the child without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        pid if pid > 0 => {
            consume();
            let mut status = 0;
            // SAFETY: reaps the child forked above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        _ => panic!("fork failed"),
    }
}

fn report(what: &str, h: &Histogram<u64>) {
    println!(
        "{what:<44} p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>8.1} µs  max {:>8.1} µs",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3
    );
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()
}

fn name(tag: &str) -> String {
    format!("shmring-bench-wake-{}-{tag}", std::process::id())
}

/// The producer of the shmring rows, in the child: a stamp per gap.
fn push_stamps(name: &str, samples: usize) {
    // A handle is never inherited across fork: open the ring anew.
    let ring = shmring::Spsc::<u64>::open(name).unwrap();
    let mut tx = ring.producer().unwrap();
    for gap in gaps(samples) {
        std::thread::sleep(gap);
        tx.try_push(now_ns()).unwrap();
    }
}

fn shmring_async(samples: usize) -> Histogram<u64> {
    let ring = shmring::Spsc::<u64>::create(&name("async"), 1024).unwrap();
    let mut h = histogram();
    across_processes(
        || push_stamps(ring.name(), samples),
        || {
            let mut rx = AsyncConsumer::new(ring.consumer().unwrap());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for _ in 0..samples {
                    let stamp = rx.recv().await.unwrap();
                    h.record(now_ns().saturating_sub(stamp).max(1)).unwrap();
                }
            });
        },
    );
    h
}

/// The design the crate did not take, measured: an eventfd per ring that
/// the producer writes after every push (it cannot know whether the
/// consumer sleeps without the futex protocol), awaited with tokio's
/// `AsyncFd` (epoll). The child inherits the descriptor over fork; real
/// processes would pass it over a Unix socket.
fn eventfd_async(samples: usize) -> Histogram<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let ring = shmring::Spsc::<u64>::create(&name("eventfd"), 1024).unwrap();
    // SAFETY: plain syscall; the result is checked before it is owned.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut h = histogram();
    across_processes(
        || {
            let ring = shmring::Spsc::<u64>::open(ring.name()).unwrap();
            let mut tx = ring.producer().unwrap();
            let one = 1u64.to_ne_bytes();
            for gap in gaps(samples) {
                std::thread::sleep(gap);
                tx.try_push(now_ns()).unwrap();
                // SAFETY: writes 8 bytes from a live buffer to our eventfd.
                unsafe { libc::write(efd.as_raw_fd(), one.as_ptr().cast(), 8) };
            }
        },
        || {
            let mut rx = ring.consumer().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            rt.block_on(async {
                // SAFETY: `efd` stays open, the same descriptor, for the
                // whole life of this AsyncFd (dropped before it).
                let fd = unsafe { tokio::io::unix::AsyncFd::register(efd.as_raw_fd()) }.unwrap();
                let mut count = [0u8; 8];
                for _ in 0..samples {
                    let stamp = loop {
                        if let Some(v) = rx.try_pop() {
                            break v;
                        }
                        let mut ready = fd.readable().await.unwrap();
                        // SAFETY: reads 8 bytes into a live buffer from our
                        // eventfd; EAGAIN (nothing written) is fine.
                        let n =
                            unsafe { libc::read(*ready.get_inner(), count.as_mut_ptr().cast(), 8) };
                        if n < 0 {
                            ready.clear_ready();
                        }
                    };
                    h.record(now_ns().saturating_sub(stamp).max(1)).unwrap();
                }
            });
        },
    );
    h
}

/// What a value costs its producer when no consumer is parked: a push and
/// a pop on one thread, alone (the futex protocol's notifier finds no
/// sleeper: a load) and with the eventfd write the other design pays for
/// every value, since the producer cannot tell whether the consumer
/// sleeps.
fn notify_cost() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const N: u32 = 200_000;
    let ring = shmring::Spsc::<u64>::create(&name("notify"), 1024).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    // SAFETY: plain syscall; the result is checked before it is owned.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(raw >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one = 1u64.to_ne_bytes();
    let mut run = |with_eventfd: bool| {
        let start = std::time::Instant::now();
        for i in 0..N {
            tx.try_push(u64::from(i)).unwrap();
            if with_eventfd {
                // SAFETY: writes 8 bytes from a live buffer to our eventfd.
                unsafe { libc::write(efd.as_raw_fd(), one.as_ptr().cast(), 8) };
            }
            std::hint::black_box(rx.try_pop());
        }
        start.elapsed().as_nanos() as f64 / f64::from(N)
    };
    let (futex, eventfd) = (run(false), run(true));
    println!("a value's cost to its producer when no consumer is parked (push + pop, one thread):");
    println!(
        "{:<44} {futex:>8.1} ns",
        "futex protocol (shmring, shmring-async)"
    );
    println!(
        "{:<44} {eventfd:>8.1} ns",
        "eventfd per ring (a write per value)"
    );
}

fn shmring_blocking(samples: usize) -> Histogram<u64> {
    let ring = shmring::Spsc::<u64>::create(&name("blocking"), 1024).unwrap();
    let mut h = histogram();
    across_processes(
        || push_stamps(ring.name(), samples),
        || {
            let mut rx = ring.consumer().unwrap();
            rx.set_wait_strategy(WaitStrategy::Sleep);
            for _ in 0..samples {
                let stamp = rx.pop_timeout(Duration::from_secs(10)).unwrap();
                h.record(now_ns().saturating_sub(stamp).max(1)).unwrap();
            }
        },
    );
    h
}

/// ringfire's lossless SPMC ring; its file goes with the guard.
struct RingfirePath(String);

impl Drop for RingfirePath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ringfire_async(samples: usize) -> Histogram<u64> {
    let path = RingfirePath(format!("/dev/shm/{}", name("ringfire")));
    let mut tx = ringfire::RingProducerBuilder::new(1024)
        .flow_control(ringfire::FlowControl::LosslessBackpressure)
        .build::<u64, _>(&path.0)
        .unwrap();
    let rx = ringfire::RingConsumer::<u64>::attach(&path.0).unwrap();
    let mut h = histogram();
    across_processes(
        || {
            for gap in gaps(samples) {
                std::thread::sleep(gap);
                tx.push(&now_ns());
            }
        },
        || {
            let mut rx = ringfire::AsyncRingConsumer::from_consumer(rx);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async {
                for _ in 0..samples {
                    let stamp = rx.recv().await;
                    h.record(now_ns().saturating_sub(stamp).max(1)).unwrap();
                }
            });
        },
    );
    h
}

fn tokio_mpsc(samples: usize) -> Histogram<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut h = histogram();
    let producer = std::thread::spawn(move || {
        for gap in gaps(samples) {
            std::thread::sleep(gap);
            tx.send(now_ns()).unwrap();
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..samples {
            let stamp = rx.recv().await.unwrap();
            h.record(now_ns().saturating_sub(stamp).max(1)).unwrap();
        }
    });
    producer.join().unwrap();
    h
}

/// CPU time and voluntary context switches of this process while one task
/// awaits an empty ring for `$idle` with the future `$wait` (made afresh
/// each time): the median of three such periods, after one not counted
/// (the first await registers the handle, and may start the waiter
/// thread). A macro: each period's future borrows the handle anew.
macro_rules! idle_cost {
    ($idle:expr, $wait:expr) => {{
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut costs: Vec<(u64, i64)> = Vec::new();
        for period in 0..4 {
            let (cpu, sw) = (cpu_ns(), switches());
            rt.block_on(async {
                let _ = tokio::time::timeout($idle, $wait).await;
            });
            if period > 0 {
                costs.push((cpu_ns() - cpu, switches() - sw));
            }
        }
        costs.sort();
        costs[1]
    }};
}

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported here.
    let samples: usize = std::env::var("WAKE_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!("wake latency, one value per 0.2-2 ms ({samples} samples each):");
    report("shmring-async (cross-process)", &shmring_async(samples));
    report(
        "ringfire AsyncRingConsumer (cross-process)",
        &ringfire_async(samples),
    );
    report(
        "eventfd + tokio AsyncFd (cross-process)",
        &eventfd_async(samples),
    );
    report(
        "shmring pop_timeout, Sleep (cross-process)",
        &shmring_blocking(samples),
    );
    report(
        "tokio mpsc, thread to task (one process)",
        &tokio_mpsc(samples),
    );

    notify_cost();

    let idle = Duration::from_secs(1);
    println!("idle: one task awaiting an empty ring for {idle:?} (median of 3):");
    {
        let ring = shmring::Spsc::<u64>::create(&name("idle"), 8).unwrap();
        let mut rx = AsyncConsumer::new(ring.consumer().unwrap());
        let (cpu, sw) = idle_cost!(idle, rx.recv());
        println!(
            "{:<44} {:>8.1} µs CPU, {sw} context switches",
            "shmring-async",
            cpu as f64 / 1e3
        );
    }
    {
        let ring = shmring::Mpmc::<u64>::create(&name("idle-mpmc"), 8).unwrap();
        let mut rx = AsyncConsumer::new(ring.consumer().unwrap());
        let (cpu, sw) = idle_cost!(idle, rx.recv());
        println!(
            "{:<44} {:>8.1} µs CPU, {sw} context switches",
            "shmring-async, MPMC (looks for dead peers)",
            cpu as f64 / 1e3
        );
    }
    {
        let path = RingfirePath(format!("/dev/shm/{}", name("ringfire-idle")));
        let _tx = ringfire::RingProducerBuilder::new(8)
            .flow_control(ringfire::FlowControl::LosslessBackpressure)
            .build::<u64, _>(&path.0)
            .unwrap();
        let rx = ringfire::RingConsumer::<u64>::attach(&path.0).unwrap();
        let mut rx = ringfire::AsyncRingConsumer::from_consumer(rx);
        let (cpu, sw) = idle_cost!(idle, rx.recv());
        println!(
            "{:<44} {:>8.1} µs CPU, {sw} context switches",
            "ringfire AsyncRingConsumer",
            cpu as f64 / 1e3
        );
    }
}

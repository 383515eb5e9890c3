//! Round-trip latency: a ping-pong through two rings (or two of whatever the
//! peer offers), between two threads and between two processes, next to the
//! hardware floor (a bare cache-line ping-pong) and the kernel floor (a bare
//! futex ping-pong), measured side by side in one run. The request-reply
//! rows put a service's call beside the two byte rings beneath it and a
//! Unix socket's request and reply.
//!
//! Each sample spawns its echo thread or process, does one untimed round so
//! start-up is not measured, then times `iters` rounds.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkGroup, Criterion};
use shmring::{Mpmc, Spsc, WaitStrategy};
use shmring_bench_kit::floors::PingPong;
use shmring_bench_kit::worker::{run_if_worker, Job, Strategy, Worker};

mod common;
use common::name;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Do round 0 untimed, then time rounds 1..=iters.
fn timed(iters: u64, mut round: impl FnMut(u64)) -> Duration {
    round(0);
    let start = Instant::now();
    for i in 1..=iters {
        round(i);
    }
    start.elapsed()
}

/// The echo side in another process: this bench binary, re-run as a worker.
fn child(job: Job, name: &str, count: u64, strategy: Strategy) -> Command {
    let worker = Worker {
        job,
        name: name.to_owned(),
        count,
        ..Worker::default()
    };
    let mut cmd = Worker { strategy, ..worker }.command(std::env::current_exe().unwrap());
    cmd.stderr(Stdio::null());
    cmd
}

fn reap(mut c: Child) {
    assert!(c.wait().unwrap().success(), "echo process failed");
}

struct Rings {
    name: String,
    _ping: Spsc<u64>,
    _pong: Spsc<u64>,
    tx: shmring::Producer<u64>,
    rx: shmring::Consumer<u64>,
}

/// Our ends of a ping ring and a pong ring; the echo side opens the others.
fn rings(strategy: WaitStrategy) -> Rings {
    let name = name("rtt");
    let ping = Spsc::<u64>::create(&format!("{name}-ping"), 64).unwrap();
    let pong = Spsc::<u64>::create(&format!("{name}-pong"), 64).unwrap();
    let tx = ping.producer().unwrap();
    let mut rx = pong.consumer().unwrap();
    rx.set_wait_strategy(strategy);
    Rings {
        name,
        _ping: ping,
        _pong: pong,
        tx,
        rx,
    }
}

fn shmring_round(r: &mut Rings, i: u64) {
    r.tx.try_push(i).unwrap();
    assert_eq!(r.rx.pop_timeout(TIMEOUT).unwrap(), i);
}

/// One round trip through two MPMC rings, spinning: the echo side is a
/// thread or a child process.
fn mpmc_round_trips(iters: u64, echo_in_thread: bool) -> Duration {
    let n = name("mrtt");
    let ping = Mpmc::<u64>::create(&format!("{n}-ping"), 64).unwrap();
    let pong = Mpmc::<u64>::create(&format!("{n}-pong"), 64).unwrap();
    let tx = ping.producer().unwrap();
    let mut rx = pong.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Spin);
    let echo: Box<dyn FnOnce()> = if echo_in_thread {
        let n = n.clone();
        let t = std::thread::spawn(move || {
            let ping = Mpmc::<u64>::open(&format!("{n}-ping")).unwrap();
            let pong = Mpmc::<u64>::open(&format!("{n}-pong")).unwrap();
            let mut rx = ping.consumer().unwrap();
            let tx = pong.producer().unwrap();
            rx.set_wait_strategy(WaitStrategy::Spin);
            for _ in 0..=iters {
                let v = rx.pop_timeout(TIMEOUT).unwrap();
                tx.try_push(v).unwrap();
            }
        });
        Box::new(move || t.join().unwrap())
    } else {
        let c = child(Job::MpmcEcho, &n, iters + 1, Strategy::Spin)
            .spawn()
            .unwrap();
        Box::new(move || reap(c))
    };
    let d = timed(iters, |i| {
        tx.try_push(i).unwrap();
        assert_eq!(rx.pop_timeout(TIMEOUT).unwrap(), i);
    });
    echo();
    d
}

/// Two byte rings of 64 KiB, ping and pong, their consumers spinning: our
/// ends (a producer of ping, a consumer of pong) and the echo's.
fn byte_ring_pair(
    tag: &str,
) -> (
    shmring::ByteProducer,
    shmring::ByteConsumer,
    shmring::ByteConsumer,
    shmring::ByteProducer,
) {
    use shmring::ByteRing;
    let n = name(tag);
    let ping = ByteRing::create(&format!("{n}-ping"), 64 * 1024).unwrap();
    let pong = ByteRing::create(&format!("{n}-pong"), 64 * 1024).unwrap();
    let (tx, mut rx) = (ping.producer().unwrap(), pong.consumer().unwrap());
    let (mut echo_rx, echo_tx) = (ping.consumer().unwrap(), pong.producer().unwrap());
    rx.set_wait_strategy(WaitStrategy::Spin);
    echo_rx.set_wait_strategy(WaitStrategy::Spin);
    (tx, rx, echo_rx, echo_tx)
}

/// One round trip through two byte rings (8-byte messages), spinning:
/// the rings beneath a request-reply service, without its protocol.
fn byte_ring_round_trips(iters: u64) -> Duration {
    let (mut tx, mut rx, mut echo_rx, mut echo_tx) = byte_ring_pair("brtt");
    let echo = std::thread::spawn(move || {
        for _ in 0..=iters {
            let m = echo_rx.recv_timeout(TIMEOUT).unwrap();
            let mut word = [0u8; 8];
            word.copy_from_slice(&m);
            drop(m);
            echo_tx.try_send(&word).unwrap();
        }
    });
    let d = timed(iters, |i| {
        tx.try_send(&i.to_le_bytes()).unwrap();
        assert_eq!(&*rx.recv_timeout(TIMEOUT).unwrap(), i.to_le_bytes());
    });
    echo.join().unwrap();
    d
}

/// The byte rings above carrying what a call's request and reply weigh
/// (their headers, then 8 bytes), each sent whole, the request released
/// after the reply as a server does: the floor under a call, a protocol
/// that costs nothing but its bytes.
fn call_sized_round_trips(iters: u64) -> Duration {
    use shmring::request_reply::{REPLY_HEADER, REQUEST_HEADER};
    let (mut tx, mut rx, mut echo_rx, mut echo_tx) = byte_ring_pair("crtt");
    let echo = std::thread::spawn(move || {
        for _ in 0..=iters {
            let request = echo_rx.recv_timeout(TIMEOUT).unwrap();
            echo_tx
                .try_send(&request[REQUEST_HEADER - REPLY_HEADER..])
                .unwrap();
        }
    });
    let mut request = [0u8; REQUEST_HEADER + 8];
    let d = timed(iters, |i| {
        request[REQUEST_HEADER..].copy_from_slice(&i.to_le_bytes());
        tx.try_send(&request).unwrap();
        assert_eq!(
            rx.recv_timeout(TIMEOUT).unwrap()[REPLY_HEADER..],
            i.to_le_bytes()
        );
    });
    echo.join().unwrap();
    d
}

/// One call (an 8-byte request, its 8-byte reply) through a request-reply
/// service, the server a thread: beside the two-ring ping-pong above,
/// what the protocol adds (headers, a reply ring per client, the look
/// for a live server while waiting).
fn request_reply_round_trips(iters: u64, strategy: WaitStrategy) -> Duration {
    use shmring::request_reply::Service;
    let service = Service::open_or_create(&name("rr"), 64 * 1024).unwrap();
    let mut server = service.server().unwrap();
    server.set_wait_strategy(strategy);
    let mut client = service.client(64 * 1024).unwrap();
    client.set_wait_strategy(strategy);
    let echo = std::thread::spawn(move || {
        for _ in 0..=iters {
            let request = server.recv_timeout(TIMEOUT).unwrap();
            let mut word = [0u8; 8];
            word.copy_from_slice(request.payload());
            request.reply_last(&word).unwrap();
        }
    });
    let d = timed(iters, |i| {
        let reply = client.call_timeout(&i.to_le_bytes(), TIMEOUT).unwrap();
        assert_eq!(reply.payload(), i.to_le_bytes());
    });
    echo.join().unwrap();
    d
}

fn strategies() -> [(&'static str, Strategy, WaitStrategy); 3] {
    [
        ("shmring_spin", Strategy::Spin, WaitStrategy::Spin),
        (
            "shmring_default",
            Strategy::Default,
            WaitStrategy::default(),
        ),
        ("shmring_sleep", Strategy::Sleep, WaitStrategy::Sleep),
    ]
}

fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(15)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip_threads");
    configure(&mut g);

    g.bench_function("floor_cache_line", |b| {
        b.iter_custom(|iters| {
            let n = name("line");
            let word = PingPong::create(&n).unwrap();
            let echo = std::thread::spawn(move || {
                let w = PingPong::open(&n).unwrap();
                for i in 0..=iters {
                    w.spin_pong(i as u32).unwrap();
                }
            });
            let d = timed(iters, |i| word.spin_ping(i as u32).unwrap());
            echo.join().unwrap();
            d
        })
    });

    g.bench_function("floor_two_lines", |b| {
        b.iter_custom(|iters| {
            let n = name("lines");
            let word = PingPong::create(&n).unwrap();
            let echo = std::thread::spawn(move || {
                let w = PingPong::open(&n).unwrap();
                for i in 0..=iters {
                    w.two_line_pong(i as u32).unwrap();
                }
            });
            let d = timed(iters, |i| word.two_line_ping(i as u32).unwrap());
            echo.join().unwrap();
            d
        })
    });

    for (label, _, strategy) in strategies() {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut r = rings(strategy);
                let n = r.name.clone();
                let echo = std::thread::spawn(move || {
                    let ping = Spsc::<u64>::open(&format!("{n}-ping")).unwrap();
                    let pong = Spsc::<u64>::open(&format!("{n}-pong")).unwrap();
                    let mut rx = ping.consumer().unwrap();
                    let mut tx = pong.producer().unwrap();
                    rx.set_wait_strategy(strategy);
                    for _ in 0..=iters {
                        let v = rx.pop_timeout(TIMEOUT).unwrap();
                        tx.try_push(v).unwrap();
                    }
                });
                let d = timed(iters, |i| shmring_round(&mut r, i));
                echo.join().unwrap();
                d
            })
        });
    }

    g.bench_function("shmring_mpmc_spin", |b| {
        b.iter_custom(|iters| mpmc_round_trips(iters, true))
    });

    g.bench_function("byte_rings_spin", |b| b.iter_custom(byte_ring_round_trips));

    for (label, strategy) in [
        ("request_reply_spin", WaitStrategy::Spin),
        ("request_reply_sleep", WaitStrategy::Sleep),
    ] {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| request_reply_round_trips(iters, strategy))
        });
    }

    g.bench_function("rtrb_spin", |b| {
        b.iter_custom(|iters| {
            let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(64);
            let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(64);
            let echo = std::thread::spawn(move || {
                for _ in 0..=iters {
                    let v = loop {
                        if let Ok(v) = ping_rx.pop() {
                            break v;
                        }
                        std::hint::spin_loop();
                    };
                    pong_tx.push(v).unwrap();
                }
            });
            let d = timed(iters, |i| {
                ping_tx.push(i).unwrap();
                loop {
                    if let Ok(v) = pong_rx.pop() {
                        assert_eq!(v, i);
                        break;
                    }
                    std::hint::spin_loop();
                }
            });
            echo.join().unwrap();
            d
        })
    });

    g.bench_function("floor_futex", |b| {
        b.iter_custom(|iters| {
            let n = name("futex");
            let word = PingPong::create(&n).unwrap();
            let echo = std::thread::spawn(move || {
                let w = PingPong::open(&n).unwrap();
                for i in 0..=iters {
                    w.futex_pong(i as u32).unwrap();
                }
            });
            let d = timed(iters, |i| word.futex_ping(i as u32).unwrap());
            echo.join().unwrap();
            d
        })
    });

    g.bench_function("unix_socketpair", |b| {
        b.iter_custom(|iters| {
            let (mut ours, mut theirs) = UnixStream::pair().unwrap();
            let echo = std::thread::spawn(move || {
                let mut buf = [0u8; 8];
                for _ in 0..=iters {
                    theirs.read_exact(&mut buf).unwrap();
                    theirs.write_all(&buf).unwrap();
                }
            });
            let mut buf = [0u8; 8];
            let d = timed(iters, |i| {
                ours.write_all(&i.to_le_bytes()).unwrap();
                ours.read_exact(&mut buf).unwrap();
            });
            echo.join().unwrap();
            d
        })
    });

    g.bench_function("pipe", |b| {
        b.iter_custom(|iters| {
            let (mut ping_r, mut ping_w) = std::io::pipe().unwrap();
            let (mut pong_r, mut pong_w) = std::io::pipe().unwrap();
            let echo = std::thread::spawn(move || {
                let mut buf = [0u8; 8];
                for _ in 0..=iters {
                    ping_r.read_exact(&mut buf).unwrap();
                    pong_w.write_all(&buf).unwrap();
                }
            });
            let mut buf = [0u8; 8];
            let d = timed(iters, |i| {
                ping_w.write_all(&i.to_le_bytes()).unwrap();
                pong_r.read_exact(&mut buf).unwrap();
            });
            echo.join().unwrap();
            d
        })
    });
    g.finish();
}

fn processes(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip_processes");
    configure(&mut g);

    type Ping = fn(&PingPong, u32) -> std::io::Result<()>;
    let floors: [(&str, Job, Ping); 3] = [
        ("floor_cache_line", Job::SpinPong, PingPong::spin_ping),
        ("floor_two_lines", Job::TwoLinePong, PingPong::two_line_ping),
        ("floor_futex", Job::FutexPong, PingPong::futex_ping),
    ];
    for (label, job, ping) in floors {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let n = name("pfloor");
                let word = PingPong::create(&n).unwrap();
                let echo = child(job, &n, iters + 1, Strategy::Default)
                    .spawn()
                    .unwrap();
                let d = timed(iters, |i| ping(&word, i as u32).unwrap());
                reap(echo);
                d
            })
        });
    }

    for (label, arg, strategy) in strategies() {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut r = rings(strategy);
                let echo = child(Job::SpscEcho, &r.name, iters + 1, arg)
                    .spawn()
                    .unwrap();
                let d = timed(iters, |i| shmring_round(&mut r, i));
                reap(echo);
                d
            })
        });
    }

    g.bench_function("shmring_mpmc_spin", |b| {
        b.iter_custom(|iters| mpmc_round_trips(iters, false))
    });

    g.bench_function("unix_socketpair", |b| {
        b.iter_custom(|iters| {
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            let out = theirs.try_clone().unwrap();
            let echo = child(Job::SocketEcho, "", iters + 1, Strategy::Default)
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                .stdout(Stdio::from(std::os::fd::OwnedFd::from(out)))
                .spawn()
                .unwrap();
            let mut buf = [0u8; 8];
            let d = timed(iters, |i| {
                ours.write_all(&i.to_le_bytes()).unwrap();
                ours.read_exact(&mut buf).unwrap();
            });
            reap(echo);
            d
        })
    });

    g.bench_function("pipe", |b| {
        b.iter_custom(|iters| {
            let mut echo = child(Job::SocketEcho, "", iters + 1, Strategy::Default)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut w = echo.stdin.take().unwrap();
            let mut r = echo.stdout.take().unwrap();
            let mut buf = [0u8; 8];
            let d = timed(iters, |i| {
                w.write_all(&i.to_le_bytes()).unwrap();
                r.read_exact(&mut buf).unwrap();
            });
            reap(echo);
            d
        })
    });
    g.finish();
}

/// Request-reply against the two byte rings beneath it, as a ratio that
/// the host cannot skew: on a shared host a pair of threads runs at one
/// speed for a while (which cores they got), then another, so two rows
/// measured a minute apart can differ by more than the protocol costs.
/// Each round times the byte rings, the same rings carrying a call's
/// bytes (the floor: a protocol that costs nothing else), the byte rings,
/// the service, and the byte rings again, and divides the floor's and the
/// service's times by the mean of the byte rings' times on either side;
/// the median of the rounds is the figure (the goal for the
/// service: 1.2x).
/// Run with `cargo bench --bench round_trip -- request_reply_ratio`, or
/// with no filter; `cargo test --benches` skips it.
fn request_reply_ratio() {
    const ROUNDS: usize = 21;
    const CALLS: u64 = 100_000;
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / CALLS as f64;
    let mut rings = Vec::new();
    let (mut floors, mut calls) = (Vec::new(), Vec::new());
    let (mut floor_ratios, mut call_ratios) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Each between two times of the byte rings: a steady drift cancels.
        let before = per_call(byte_ring_round_trips(CALLS));
        let floor = per_call(call_sized_round_trips(CALLS));
        let middle = per_call(byte_ring_round_trips(CALLS));
        let call = per_call(request_reply_round_trips(CALLS, WaitStrategy::Spin));
        let after = per_call(byte_ring_round_trips(CALLS));
        floor_ratios.push(floor / ((before + middle) / 2.0));
        call_ratios.push(call / ((middle + after) / 2.0));
        rings.extend([before, middle, after]);
        floors.push(floor);
        calls.push(call);
    }
    let q = |v: &mut Vec<f64>, k: usize| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) * k / 4]
    };
    let name = "round_trip_threads/request_reply_ratio";
    let (r, f, c) = (q(&mut rings, 2), q(&mut floors, 2), q(&mut calls, 2));
    println!("{name}: {ROUNDS} sandwiched rounds of {CALLS} round trips; medians:");
    println!("  byte rings, 8 bytes each way:         {r:.0} ns");
    for (what, ns, ratios) in [
        ("the same carrying a call's bytes", f, &mut floor_ratios),
        ("a request-reply call", c, &mut call_ratios),
    ] {
        let (q1, q2, q3) = (q(ratios, 1), q(ratios, 2), q(ratios, 3));
        println!("  {what:<37} {ns:.0} ns: {q2:.2}x the byte rings (quartiles {q1:.2}-{q3:.2})");
    }
}

/// Whether this run is `cargo bench` (not `cargo test --benches`, nor a
/// `--list`) and its filter, if any, contains `request_reply_ratio` (a
/// plain substring: criterion's regular expressions are not read here).
fn ratio_wanted() -> bool {
    // Criterion's options that take a value, which is not a filter.
    const VALUED: [&str; 14] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--color",
        "--output-format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filters = Vec::new();
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if VALUED.contains(&a.as_str()) {
            words.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    args.iter().any(|a| a == "--bench")
        && !args.iter().any(|a| a == "--list")
        && (filters.is_empty() || filters.iter().any(|f| f.contains("request_reply_ratio")))
}

criterion_group!(benches, threads, processes);

fn main() {
    run_if_worker();
    benches();
    if ratio_wanted() {
        request_reply_ratio();
    }
    Criterion::default().configure_from_args().final_summary();
}

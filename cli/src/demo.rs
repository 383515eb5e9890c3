//! `shmring demo`: a producer process and a consumer process on fresh
//! segments, with the hardware and kernel floors and a Unix socketpair
//! measured in the same run.

use std::io::{BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};

use std::time::{Duration, Instant};

use crate::progress::Progress;
use crate::report::{self, Latency, MessageRate, Throughput};
use clap::Args;
use hdrhistogram::Histogram;
use shmring::{ByteRing, FutexCalls, Mpmc, Spsc, WaitStrategy};
use shmring_bench_kit::floors::PingPong;
use shmring_bench_kit::worker::{
    message_seq, Job, Strategy, Worker, CHUNK, FUTEX_LINE, PEER_TIMEOUT,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Arguments of `shmring demo`.
#[derive(Args, Debug, Clone, Copy)]
pub struct DemoArgs {
    /// Values moved in each throughput run.
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    /// Ring capacity, in values.
    #[arg(long, default_value_t = 4096)]
    pub capacity: usize,
    /// Round trips in each spinning latency run (sleeping runs do a tenth).
    #[arg(long, default_value_t = 200_000)]
    pub round_trips: u64,
}

/// The demo's other process; killed if the demo fails before reaping it.
struct Peer(Option<Child>);

impl Peer {
    fn spawn(job: Job, name: &str, count: u64, strategy: Strategy) -> Res<Peer> {
        Self::spawn_with(job, name, count, strategy, 0, None)
    }

    fn spawn_with(
        job: Job,
        name: &str,
        count: u64,
        strategy: Strategy,
        size: usize,
        socket: Option<UnixStream>,
    ) -> Res<Peer> {
        let worker = Worker {
            job,
            name: name.to_owned(),
            count,
            size,
            strategy,
        };
        let mut cmd = worker.command(std::env::current_exe()?);
        cmd.stderr(Stdio::piped());
        if let Some(sock) = socket {
            let out = sock.try_clone()?;
            cmd.stdin(Stdio::from(OwnedFd::from(sock)))
                .stdout(Stdio::from(OwnedFd::from(out)));
        }
        let child = cmd.spawn()?;
        crate::signals::track_child(child.id());
        Ok(Peer(Some(child)))
    }

    /// Wait for the peer; return the futex calls it reported.
    fn finish(mut self) -> Res<FutexCalls> {
        let child = self.0.take().expect("not reaped yet");
        let pid = child.id();
        let out = child.wait_with_output()?;
        crate::signals::untrack_child(pid);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut calls = FutexCalls::default();
        for line in stderr.lines() {
            match line.strip_prefix(FUTEX_LINE) {
                Some(rest) => {
                    let mut n = rest.split_whitespace().map(|v| v.parse().unwrap_or(0));
                    calls.waits = n.next().unwrap_or(0);
                    calls.wakes = n.next().unwrap_or(0);
                }
                None => eprintln!("peer: {line}"),
            }
        }
        if !out.status.success() {
            return Err(format!("peer process failed: {}", out.status).into());
        }
        Ok(calls)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
            crate::signals::untrack_child(child.id());
        }
    }
}

fn check(expected: u64, got: u64) -> Res<()> {
    if got != expected {
        return Err(format!("expected value {expected}, received {got}").into());
    }
    Ok(())
}

/// Futex calls made by both processes between `before` and now.
fn futex_delta(before: FutexCalls, peer: FutexCalls) -> u64 {
    let now = shmring::futex_calls();
    now.waits - before.waits + now.wakes - before.wakes + peer.waits + peer.wakes
}

fn spsc_throughput(name: &str, args: &DemoArgs, chunked: bool) -> Res<Throughput> {
    let ring = Spsc::<u64>::create(name, args.capacity)?;
    let mut rx = ring.consumer()?;
    let job = if chunked {
        Job::SpscChunks
    } else {
        Job::SpscPush
    };
    let before = shmring::futex_calls();
    let peer = Peer::spawn(job, name, args.count, Strategy::Default)?;
    let mut expected = 0u64;
    let mut start = None;
    while expected < args.count {
        if chunked {
            let chunk = rx.read_timeout(CHUNK, PEER_TIMEOUT)?;
            start.get_or_insert_with(Instant::now);
            for &v in chunk.iter() {
                check(expected, v)?;
                expected += 1;
            }
            chunk.release_all();
        } else {
            let v = rx.pop_timeout(PEER_TIMEOUT)?;
            start.get_or_insert_with(Instant::now);
            check(expected, v)?;
            expected += 1;
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    let peer_calls = peer.finish()?;
    let label = if chunked {
        format!("shmring spsc, chunks of {CHUNK}")
    } else {
        "shmring spsc, one value at a time".to_owned()
    };
    Ok(Throughput {
        label,
        values: args.count,
        elapsed,
        futex_calls: Some(futex_delta(before, peer_calls)),
    })
}

fn mpmc_throughput(name: &str, args: &DemoArgs) -> Res<Throughput> {
    let ring = Mpmc::<u64>::create(name, args.capacity)?;
    let rx = ring.consumer()?;
    let before = shmring::futex_calls();
    let peer = Peer::spawn(Job::MpmcPush, name, args.count, Strategy::Default)?;
    let mut start = None;
    for expected in 0..args.count {
        let v = rx.pop_timeout(PEER_TIMEOUT)?;
        start.get_or_insert_with(Instant::now);
        check(expected, v)?;
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    let peer_calls = peer.finish()?;
    Ok(Throughput {
        label: "shmring mpmc (1P1C), one value at a time".into(),
        values: args.count,
        elapsed,
        futex_calls: Some(futex_delta(before, peer_calls)),
    })
}

fn socket_throughput(count: u64, batched: bool) -> Res<Throughput> {
    let (ours, theirs) = UnixStream::pair()?;
    let job = if batched {
        Job::SocketStream
    } else {
        Job::SocketMessages
    };
    let peer = Peer::spawn_with(job, "", count, Strategy::Default, 0, Some(theirs))?;
    let mut input = BufReader::with_capacity(if batched { 64 * 1024 } else { 8 }, ours);
    let mut buf = [0u8; 8];
    let mut start = None;
    for expected in 0..count {
        input.read_exact(&mut buf)?;
        start.get_or_insert_with(Instant::now);
        check(expected, u64::from_le_bytes(buf))?;
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    peer.finish()?;
    let label = if batched {
        "unix socketpair, 64 KiB batches"
    } else {
        "unix socketpair, one value per call"
    };
    Ok(Throughput {
        label: label.into(),
        values: count,
        elapsed,
        futex_calls: None,
    })
}

/// Message sizes of the byte-ring runs.
const MESSAGE_SIZES: [usize; 3] = [64, 1024, 64 * 1024];

/// How many messages of `size` bytes a run moves: about 512 MiB, at most
/// `count`, at least 1000.
fn messages_for(size: usize, count: u64) -> u64 {
    ((512u64 << 20) / size as u64).clamp(1000, count.max(1000))
}

fn check_message(msg: &[u8], seq: u64) -> Res<()> {
    match message_seq(msg) {
        Some(got) => check(seq, got),
        None => Err(format!("message {seq} arrived damaged").into()),
    }
}

fn bytes_throughput(name: &str, size: usize, count: u64) -> Res<MessageRate> {
    let ring = ByteRing::create(name, 1 << 20)?;
    let mut rx = ring.consumer()?;
    let peer = Peer::spawn_with(Job::BytesSend, name, count, Strategy::Default, size, None)?;
    let mut start = None;
    let mut seq = 0;
    while seq < count {
        let batch = rx.read_batch()?;
        if batch.is_empty() {
            drop(batch);
            let msg = rx.recv_timeout(PEER_TIMEOUT)?;
            start.get_or_insert_with(Instant::now);
            check_message(&msg, seq)?;
            seq += 1;
            continue;
        }
        start.get_or_insert_with(Instant::now);
        for msg in &batch {
            check_message(msg, seq)?;
            seq += 1;
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    peer.finish()?;
    Ok(MessageRate {
        size,
        messages: count,
        elapsed,
    })
}

fn socket_bytes_throughput(size: usize, count: u64) -> Res<MessageRate> {
    let (ours, theirs) = UnixStream::pair()?;
    let peer = Peer::spawn_with(
        Job::SocketBytes,
        "",
        count,
        Strategy::Default,
        size,
        Some(theirs),
    )?;
    let mut input = ours;
    let mut buf = vec![0u8; size];
    let mut start = None;
    for seq in 0..count {
        input.read_exact(&mut buf)?;
        start.get_or_insert_with(Instant::now);
        check_message(&buf, seq)?;
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    peer.finish()?;
    Ok(MessageRate {
        size,
        messages: count,
        elapsed,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Time `trips` round trips of `one`, after a tenth as many for warm-up.
fn time_round_trips(trips: u64, mut one: impl FnMut(u64) -> Res<()>) -> Res<Histogram<u64>> {
    let warmup = trips / 10;
    let mut hist = histogram();
    for i in 0..warmup + trips {
        let t0 = Instant::now();
        one(i)?;
        let rtt = t0.elapsed().as_nanos() as u64;
        if i >= warmup {
            hist.record(rtt.max(1))?;
        }
    }
    Ok(hist)
}

fn total(trips: u64) -> u64 {
    trips + trips / 10
}

/// Time `trips` round trips through a ping ring and a pong ring whose
/// other ends a peer running `job` opens; `round(i)` sends `i` and checks
/// the echo.
fn echo_round_trips(
    name: &str,
    trips: u64,
    strategy: Strategy,
    label: &str,
    job: Job,
    round: impl FnMut(u64) -> Res<()>,
) -> Res<Latency> {
    let peer = Peer::spawn(job, name, total(trips), strategy)?;
    let hist = time_round_trips(trips, round)?;
    peer.finish()?;
    Ok(Latency {
        label: label.into(),
        hist,
    })
}

fn spsc_round_trip(name: &str, trips: u64, strategy: Strategy, label: &str) -> Res<Latency> {
    let ping = Spsc::<u64>::create(&format!("{name}-ping"), 64)?;
    let pong = Spsc::<u64>::create(&format!("{name}-pong"), 64)?;
    let mut tx = ping.producer()?;
    let mut rx = pong.consumer()?;
    rx.set_wait_strategy(WaitStrategy::from(strategy));
    echo_round_trips(name, trips, strategy, label, Job::SpscEcho, |i| {
        tx.try_push(i).map_err(|_| "ping ring full")?;
        check(i, rx.pop_timeout(PEER_TIMEOUT)?)
    })
}

fn mpmc_round_trip(name: &str, trips: u64, strategy: Strategy, label: &str) -> Res<Latency> {
    let ping = Mpmc::<u64>::create(&format!("{name}-ping"), 64)?;
    let pong = Mpmc::<u64>::create(&format!("{name}-pong"), 64)?;
    let tx = ping.producer()?;
    let mut rx = pong.consumer()?;
    rx.set_wait_strategy(WaitStrategy::from(strategy));
    echo_round_trips(name, trips, strategy, label, Job::MpmcEcho, |i| {
        tx.try_push(i).map_err(|_| "ping ring full")?;
        check(i, rx.pop_timeout(PEER_TIMEOUT)?)
    })
}

/// Run `fut` to completion on this thread: park until its waker unparks
/// it. The simplest executor, to show that the futures need no runtime.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The SPSC ping-pong with the pong awaited by a task (`shmring-async`):
/// each trip wakes the task through the process's waiter thread.
fn async_round_trip(name: &str, trips: u64) -> Res<Latency> {
    let ping = Spsc::<u64>::create(&format!("{name}-ping"), 64)?;
    let pong = Spsc::<u64>::create(&format!("{name}-pong"), 64)?;
    let mut tx = ping.producer()?;
    let mut rx = shmring_async::AsyncConsumer::new(pong.consumer()?);
    let label = "shmring-async task, parked (no spin)";
    echo_round_trips(name, trips, Strategy::Sleep, label, Job::SpscEcho, |i| {
        tx.try_push(i).map_err(|_| "ping ring full")?;
        check(i, block_on(rx.recv())?)
    })
}

/// Which bare ping-pong to measure.
#[derive(Clone, Copy)]
enum Floor {
    OneLine,
    TwoLines,
    Futex,
}

fn floor_round_trip(name: &str, trips: u64, floor: Floor) -> Res<Latency> {
    let word = PingPong::create(name)?;
    let job = match floor {
        Floor::OneLine => Job::SpinPong,
        Floor::TwoLines => Job::TwoLinePong,
        Floor::Futex => Job::FutexPong,
    };
    let peer = Peer::spawn(job, name, total(trips), Strategy::Default)?;
    let hist = time_round_trips(trips, |i| {
        match floor {
            Floor::OneLine => word.spin_ping(i as u32)?,
            Floor::TwoLines => word.two_line_ping(i as u32)?,
            Floor::Futex => word.futex_ping(i as u32)?,
        }
        Ok(())
    })?;
    peer.finish()?;
    let label = match floor {
        Floor::OneLine => "floor: one cache line, both ways",
        Floor::TwoLines => "floor: two cache lines, one per way",
        Floor::Futex => "floor: raw futex ping-pong",
    };
    Ok(Latency {
        label: label.into(),
        hist,
    })
}

fn socket_round_trip(trips: u64) -> Res<Latency> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let peer = Peer::spawn_with(
        Job::SocketEcho,
        "",
        total(trips),
        Strategy::Default,
        0,
        Some(theirs),
    )?;
    let mut buf = [0u8; 8];
    let hist = time_round_trips(trips, |i| {
        ours.write_all(&i.to_le_bytes())?;
        ours.read_exact(&mut buf)?;
        check(i, u64::from_le_bytes(buf))
    })?;
    peer.finish()?;
    Ok(Latency {
        label: "unix socketpair".into(),
        hist,
    })
}

/// CPU time this thread spends in a `pop_timeout` on an empty ring.
fn idle_cost(name: &str, wait: Duration) -> Res<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let ring = Spsc::<u64>::create(name, 4)?;
    let mut rx = ring.consumer()?;
    let cpu = || -> Res<Duration> {
        let u = getrusage(UsageWho::RUSAGE_THREAD)?;
        let t = |tv: nix::sys::time::TimeVal| {
            Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
        };
        Ok(t(u.user_time()) + t(u.system_time()))
    };
    let before = cpu()?;
    if rx.pop_timeout(wait).is_ok() {
        return Err("an empty ring yielded a value".into());
    }
    Ok(cpu()? - before)
}

/// Refuse arguments that leave a run with nothing to measure (every rate
/// and percentile of its row would be 0/0): a usage error.
pub fn check_args(args: &DemoArgs) -> Result<(), &'static str> {
    if args.count == 0 || args.round_trips < 10 {
        return Err(
            "--count must be at least 1, and --round-trips at least 10 (the sleeping runs do a \
             tenth)",
        );
    }
    Ok(())
}

pub fn run(args: &DemoArgs) -> Res<()> {
    let prefix = format!("shmring-demo-{}", std::process::id());
    crate::signals::track_segments(&prefix);
    let p = |s: &str| format!("{prefix}-{s}");
    println!("shmring demo on {}", report::machine());
    let busy = report::busy_share(Duration::from_millis(200));
    if let Some(warning) = busy.and_then(report::busy_warning) {
        println!("{warning}");
    }

    let mut progress = Progress::new(6 + 2 * MESSAGE_SIZES.len() + 10);
    // Warm-up, discarded: the first run of a process pair pays for page
    // faults, cold caches and a CPU clocked down at rest, and would be
    // compared with runs that do not.
    progress.step("warming up");
    let warm = DemoArgs {
        count: (args.count / 5).max(1000),
        ..*args
    };
    spsc_throughput(&p("warm"), &warm, false)?;
    progress.step("spsc, one value at a time");
    let one = spsc_throughput(&p("one"), args, false)?;
    progress.step("mpmc, one value at a time");
    let mpmc = mpmc_throughput(&p("mpmc"), args)?;
    progress.step("socketpair, one value per call");
    let socket = socket_throughput((args.count / 10).max(1000), false)?;
    progress.step("spsc, chunks");
    let chunks = spsc_throughput(&p("chunks"), args, true)?;
    progress.step("socketpair, batches");
    let batched = socket_throughput(args.count, true)?;
    progress.clear();
    // Like with like: a value per operation against a value per system
    // call, then batches against batches.
    println!(
        "\nThroughput, one value per operation: {} u64 values from a producer \
         process to a consumer process (ring of {}, default wait strategy) \
         against one write and one read per value on a socketpair",
        args.count, args.capacity
    );
    report::print_throughput(&[one, mpmc, socket.clone()], &socket);
    println!(
        "\nThroughput in batches: shmring chunks of {CHUNK} values (reserved and \
         released in place) against 64 KiB per write and read on a socketpair"
    );
    report::print_throughput(&[chunks, batched.clone()], &batched);

    println!(
        "\nByte messages from a producer process to a consumer process \
         (byte ring of 1 MiB, read in place in batches; the socket reader \
         reads each message into its buffer)"
    );
    let mut rows = Vec::new();
    for size in MESSAGE_SIZES {
        let n = messages_for(size, args.count);
        progress.step(&format!("byte ring, {size}-byte messages"));
        let ring = bytes_throughput(&p(&format!("bytes-{size}")), size, n)?;
        progress.step(&format!("socketpair, {size}-byte messages"));
        let socket = socket_bytes_throughput(size, (n / 4).max(1000))?;
        rows.push((ring, socket));
    }
    progress.clear();
    report::print_messages(&rows);

    let spin_trips = args.round_trips;
    let sleep_trips = (args.round_trips / 10).max(1000);
    println!(
        "\nRound trip between two processes ({spin_trips} trips spinning, \
         {sleep_trips} sleeping; ping-pong through two rings)"
    );
    progress.step("round trip: one-line floor");
    let line = floor_round_trip(&p("line"), spin_trips, Floor::OneLine)?;
    progress.step("round trip: two-line floor");
    let lines = floor_round_trip(&p("lines"), spin_trips, Floor::TwoLines)?;
    progress.step("round trip: spsc, spin");
    let spin = spsc_round_trip(&p("spin"), spin_trips, Strategy::Spin, "shmring spsc, spin")?;
    progress.step("round trip: spsc, default strategy");
    let default = spsc_round_trip(
        &p("default"),
        spin_trips,
        Strategy::Default,
        "shmring spsc, spin then sleep (default)",
    )?;
    progress.step("round trip: mpmc, spin");
    let mpmc_spin = mpmc_round_trip(
        &p("mpmc-spin"),
        spin_trips,
        Strategy::Spin,
        "shmring mpmc, spin",
    )?;
    progress.step("round trip: futex floor");
    let futex = floor_round_trip(&p("futex"), sleep_trips, Floor::Futex)?;
    progress.step("round trip: spsc, sleep");
    let sleep = spsc_round_trip(
        &p("sleep"),
        sleep_trips,
        Strategy::Sleep,
        "shmring spsc, sleep (futex only)",
    )?;
    progress.step("round trip: spsc, awaited by a task");
    let awaited = async_round_trip(&p("async"), sleep_trips)?;
    progress.step("round trip: socketpair");
    let socket = socket_round_trip(sleep_trips)?;
    progress.clear();
    report::print_latency(
        &[
            (line.clone(), &line),
            (lines.clone(), &line),
            (spin, &lines),
            (default, &lines),
            (mpmc_spin, &lines),
            (futex.clone(), &futex),
            (sleep, &futex),
            (awaited, &futex),
            (socket.clone(), &futex),
        ],
        &socket,
    );

    let wait = Duration::from_secs(1);
    progress.step("idle cost");
    let cpu = idle_cost(&p("idle"), wait)?;
    progress.clear();
    println!(
        "\nIdle cost: a consumer blocked {:.1} s in pop_timeout on an empty ring \
         (default strategy) used {:.2} ms of CPU",
        wait.as_secs_f64(),
        cpu.as_secs_f64() * 1e3
    );
    Ok(())
}

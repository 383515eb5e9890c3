//! `shmring demo`: a producer process and a consumer process on fresh
//! segments, with a Unix socketpair carrying the same workload in the same
//! run as the baseline.

use std::io::{BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use shmring::Spsc;

use crate::child::{Job, CHUNK};
use crate::report::{self, Latency, Throughput};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Arguments of `shmring demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Values moved in each throughput run.
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    /// Ring capacity, in values.
    #[arg(long, default_value_t = 4096)]
    pub capacity: usize,
    /// Round trips in each latency run.
    #[arg(long, default_value_t = 200_000)]
    pub round_trips: u64,
}

/// The demo's other process; killed if the demo fails before it is reaped.
struct Peer(Option<Child>);

impl Peer {
    fn spawn(job: Job, name: &str, count: u64, socket: Option<UnixStream>) -> Res<Peer> {
        let mut cmd = Command::new(std::env::current_exe()?);
        let job = job.to_possible_value().expect("job has a name");
        cmd.args(["__child", "--job", job.get_name(), "--name", name])
            .args(["--count", &count.to_string()]);
        if let Some(sock) = socket {
            let out = sock.try_clone()?;
            cmd.stdin(Stdio::from(OwnedFd::from(sock)))
                .stdout(Stdio::from(OwnedFd::from(out)));
        }
        Ok(Peer(Some(cmd.spawn()?)))
    }

    /// Fail if the peer has already exited (so a waiting loop cannot hang).
    fn check_running(&mut self) -> Res<()> {
        if let Some(status) = self.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            return Err(format!("peer process exited early: {status}").into());
        }
        Ok(())
    }

    fn finish(mut self) -> Res<()> {
        let status = self.0.take().expect("not reaped yet").wait()?;
        if !status.success() {
            return Err(format!("peer process failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spin on `poll` until it yields, checking every so often that the peer lives.
fn spin_until<T>(peer: &mut Peer, mut poll: impl FnMut() -> Option<T>) -> Res<T> {
    let mut spins = 0u32;
    loop {
        if let Some(v) = poll() {
            return Ok(v);
        }
        spins = spins.wrapping_add(1);
        if spins % (1 << 16) == 0 {
            peer.check_running()?;
        }
        std::hint::spin_loop();
    }
}

fn spsc_throughput(name: &str, args: &DemoArgs, chunked: bool) -> Res<Throughput> {
    let ring = Spsc::<u64>::create(name, args.capacity)?;
    let mut rx = ring.consumer()?;
    let job = if chunked {
        Job::SpscChunks
    } else {
        Job::SpscPush
    };
    let mut peer = Peer::spawn(job, name, args.count, None)?;
    let mut expected = 0u64;
    let mut start = None;
    while expected < args.count {
        if chunked {
            spin_until(&mut peer, || (!rx.is_empty()).then_some(()))?;
            let chunk = rx.read_chunk(CHUNK);
            start.get_or_insert_with(Instant::now);
            for &v in chunk.iter() {
                if v != expected {
                    return Err(format!("expected {expected}, received {v}").into());
                }
                expected += 1;
            }
            chunk.release_all();
        } else {
            let v = spin_until(&mut peer, || rx.try_pop())?;
            start.get_or_insert_with(Instant::now);
            if v != expected {
                return Err(format!("expected {expected}, received {v}").into());
            }
            expected += 1;
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    peer.finish()?;
    let label = if chunked {
        format!("shmring spsc, chunks of {CHUNK}")
    } else {
        "shmring spsc, one value at a time".to_owned()
    };
    Ok(Throughput {
        label,
        values: args.count,
        elapsed,
    })
}

fn socket_throughput(count: u64, buffered: bool) -> Res<Throughput> {
    let (ours, theirs) = UnixStream::pair()?;
    let job = if buffered {
        Job::SocketStream
    } else {
        Job::SocketMessages
    };
    let peer = Peer::spawn(job, "", count, Some(theirs))?;
    let mut input = BufReader::with_capacity(if buffered { 64 * 1024 } else { 8 }, ours);
    let mut buf = [0u8; 8];
    let mut start = None;
    for expected in 0..count {
        input.read_exact(&mut buf)?;
        start.get_or_insert_with(Instant::now);
        let v = u64::from_le_bytes(buf);
        if v != expected {
            return Err(format!("socket: expected {expected}, received {v}").into());
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    peer.finish()?;
    let label = if buffered {
        "unix socketpair, 64 KiB batches"
    } else {
        "unix socketpair, one value per call"
    };
    Ok(Throughput {
        label: label.into(),
        values: count,
        elapsed,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn spsc_round_trip(name: &str, trips: u64) -> Res<Latency> {
    let ping = Spsc::<u64>::create(&format!("{name}-ping"), 64)?;
    let pong = Spsc::<u64>::create(&format!("{name}-pong"), 64)?;
    let mut tx = ping.producer()?;
    let mut rx = pong.consumer()?;
    let warmup = trips / 10;
    let mut peer = Peer::spawn(Job::SpscEcho, name, trips + warmup, None)?;
    let mut hist = histogram();
    for i in 0..trips + warmup {
        let t0 = Instant::now();
        tx.try_push(i).map_err(|_| "ping ring full")?;
        let v = spin_until(&mut peer, || rx.try_pop())?;
        let rtt = t0.elapsed().as_nanos() as u64;
        if v != i {
            return Err(format!("echo returned {v}, expected {i}").into());
        }
        if i >= warmup {
            hist.record(rtt.max(1))?;
        }
    }
    peer.finish()?;
    Ok(Latency {
        label: "shmring spsc, spinning".into(),
        hist,
    })
}

fn socket_round_trip(trips: u64) -> Res<Latency> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let warmup = trips / 10;
    let peer = Peer::spawn(Job::SocketEcho, "", trips + warmup, Some(theirs))?;
    let mut hist = histogram();
    let mut buf = [0u8; 8];
    for i in 0..trips + warmup {
        let t0 = Instant::now();
        ours.write_all(&i.to_le_bytes())?;
        ours.read_exact(&mut buf)?;
        let rtt = t0.elapsed().as_nanos() as u64;
        if u64::from_le_bytes(buf) != i {
            return Err("socket echo returned the wrong value".into());
        }
        if i >= warmup {
            hist.record(rtt.max(1))?;
        }
    }
    peer.finish()?;
    Ok(Latency {
        label: "unix socketpair".into(),
        hist,
    })
}

pub fn run(args: &DemoArgs) -> Res<()> {
    let prefix = format!("shmring-demo-{}", std::process::id());
    println!("shmring demo on {}", report::machine());
    println!(
        "\nThroughput: {} u64 values, producer process -> consumer process, ring of {}",
        args.count, args.capacity
    );
    let one = spsc_throughput(&format!("{prefix}-one"), args, false)?;
    let chunks = spsc_throughput(&format!("{prefix}-chunks"), args, true)?;
    let batched = socket_throughput(args.count, true)?;
    let socket = socket_throughput((args.count / 10).max(1000), false)?;
    report::print_throughput(&[one, chunks, batched, socket.clone()], &socket);

    let socket_trips = (args.round_trips / 10).max(1000);
    println!(
        "\nRound trip between two processes (ping-pong through two rings; {} trips, socketpair {})",
        args.round_trips, socket_trips
    );
    let spin = spsc_round_trip(&format!("{prefix}-rtt"), args.round_trips)?;
    let socket = socket_round_trip(socket_trips)?;
    report::print_latency(&[spin, socket.clone()], &socket);
    Ok(())
}

//! `shmring bench`: one chosen workload between real processes, P producer
//! processes and C consumer processes on a fresh segment, for a fixed time:
//! throughput and one-way latency percentiles (each message carries its
//! send time on CLOCK_MONOTONIC, which every process shares), as a table or
//! as JSON.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use shmring::{ByteRing, Mpmc, Pod, Spsc, WaitStrategy};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Which ring to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// One producer, one consumer, fixed-size values.
    Spsc,
    /// Many producers and consumers, fixed-size values.
    Mpmc,
    /// Variable-length byte messages, many producers, one consumer.
    Bytes,
}

/// Arguments of `shmring bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Ring kind.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Message size in bytes: 8, 64, 256 or 1024 for spsc and mpmc; any
    /// size from 8 up to the ring's maximum for bytes.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Producer processes (spsc: 1).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer processes (spsc and bytes: 1).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Ring capacity: values for spsc and mpmc, bytes for bytes.
    #[arg(long, default_value_t = 4096)]
    pub capacity: usize,
    /// Messages per second per producer, paced; 0 sends as fast as the
    /// ring takes them. Latency is then measured from each message's
    /// scheduled send time, so a producer held up by a full ring is charged
    /// for the wait (no coordinated omission).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which side a bench worker process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// Send messages until `until_ns`, then the stop marker.
    Produce,
    /// Receive until every producer's stop marker arrived.
    Consume,
}

/// Arguments of the hidden bench worker (one producer or consumer
/// process): written by [`WorkerArgs::command`], read back by clap, so the
/// two ends share one definition.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub size: usize,
    /// Producer or consumer.
    #[arg(long, value_enum)]
    pub side: Side,
    /// Nanoseconds on CLOCK_MONOTONIC at which producers start: every
    /// worker is running by then, and the run lasts exactly the duration.
    #[arg(long)]
    pub start_ns: u64,
    /// Nanoseconds on CLOCK_MONOTONIC at which producers stop.
    #[arg(long)]
    pub until_ns: u64,
    /// Messages per second to send (0: flood).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// The hidden subcommand that runs a bench worker.
pub const WORKER_COMMAND: &str = "__bench-worker";

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .expect("every variant has a name")
        .get_name()
        .to_owned()
}

impl WorkerArgs {
    /// The command that starts this worker: `exe` (the shmring binary)
    /// with the hidden subcommand and every field as an argument.
    pub fn command(&self, exe: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(exe);
        shmring_bench_kit::worker::tie_to_this_process(&mut cmd);
        cmd.arg(WORKER_COMMAND)
            .args(["--kind", &value_name(self.kind)])
            .args(["--name", &self.name])
            .args(["--size", &self.size.to_string()])
            .args(["--side", &value_name(self.side)])
            .args(["--start-ns", &self.start_ns.to_string()])
            .args(["--until-ns", &self.until_ns.to_string()])
            .args(["--rate", &self.rate.to_string()]);
        cmd
    }
}

/// When a producer sends: as fast as it can, or on a schedule.
struct Pacer {
    interval_ns: u64,
    due_ns: u64,
}

impl Pacer {
    fn new(args: &WorkerArgs) -> Self {
        Pacer {
            interval_ns: 1_000_000_000u64.checked_div(args.rate).unwrap_or(0),
            due_ns: args.start_ns,
        }
    }

    /// The send time to stamp the next message with, once it is due (reading
    /// the clock once per call); `None` at the deadline. Paced, it is the
    /// scheduled time, not the time the ring took the message.
    fn next(&mut self, until_ns: u64) -> Option<u64> {
        loop {
            let now = now_ns();
            if now >= until_ns {
                return None;
            }
            if now < self.due_ns {
                std::hint::spin_loop();
                continue;
            }
            return Some(if self.interval_ns == 0 {
                now
            } else {
                self.due_ns
            });
        }
    }

    /// The message stamped by the last `next` was sent.
    fn sent(&mut self) {
        self.due_ns += self.interval_ns;
    }
}

/// Nanoseconds on CLOCK_MONOTONIC: comparable between processes.
fn now_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// How long a consumer waits for more after the producers' deadline.
const DRAIN: Duration = Duration::from_millis(200);
const SIZES: [usize; 4] = [8, 64, 256, 1024];

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A consumer's report on stdout: its count and its latency histogram.
fn report(count: u64, hist: &Histogram<u64>) -> Res<()> {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(hist, &mut buf)
        .map_err(|e| format!("{e:?}"))?;
    println!("count {count} hist {}", hex(&buf));
    Ok(())
}

/// The hidden worker: produce or consume until the deadline.
pub fn worker(args: &WorkerArgs) -> Res<()> {
    let words = args.size / 8;
    match (args.kind, words) {
        (Kind::Bytes, _) => bytes_worker(args),
        (_, 1) => typed_worker::<[u64; 1]>(args),
        (_, 8) => typed_worker::<[u64; 8]>(args),
        (_, 32) => typed_worker::<[u64; 32]>(args),
        (_, 128) => typed_worker::<[u64; 128]>(args),
        _ => Err(format!("unsupported size {}", args.size).into()),
    }
}

/// Push values stamped with their send time until the deadline.
fn produce<T: Pod + AsMut<[u64]>>(args: &WorkerArgs, mut push: impl FnMut(T) -> bool) {
    let mut value = T::zeroed();
    let mut count = 0u64;
    let mut pacer = Pacer::new(args);
    // One clock read per message: it is both the send time and the deadline
    // check.
    while let Some(send_ns) = pacer.next(args.until_ns) {
        value.as_mut()[0] = send_ns;
        if push(value) {
            count += 1;
            pacer.sent();
        }
    }
    println!("count {count}");
}

/// Pop values and record their one-way latency until the producers have
/// stopped and the ring stayed empty for `DRAIN`.
fn consume<T: Pod + AsRef<[u64]>>(until_ns: u64, mut pop: impl FnMut() -> Option<T>) -> Res<()> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut quiet = None;
    loop {
        if let Some(v) = pop() {
            hist.record(now_ns().saturating_sub(v.as_ref()[0]).max(1))?;
            count += 1;
            quiet = None;
        } else if now_ns() >= until_ns && quiet.get_or_insert_with(Instant::now).elapsed() > DRAIN {
            break;
        }
    }
    report(count, &hist)
}

fn typed_worker<T: Pod + Send + AsRef<[u64]> + AsMut<[u64]>>(args: &WorkerArgs) -> Res<()> {
    let timeout = Duration::from_millis(10);
    let producing = args.side == Side::Produce;
    match args.kind {
        Kind::Spsc => {
            let ring = Spsc::<T>::open(&args.name)?;
            if producing {
                let mut tx = ring.producer()?;
                tx.set_wait_strategy(WaitStrategy::Spin);
                produce(args, |v| tx.push_timeout(v, timeout).is_ok());
            } else {
                let mut rx = ring.consumer()?;
                rx.set_wait_strategy(WaitStrategy::Spin);
                consume(args.until_ns, || rx.pop_timeout(timeout).ok())?;
            }
        }
        _ => {
            let ring = Mpmc::<T>::open(&args.name)?;
            if producing {
                let tx = ring.producer()?;
                produce(args, |v| tx.push_timeout(v, timeout).is_ok());
            } else {
                let rx = ring.consumer()?;
                consume(args.until_ns, || rx.pop_timeout(timeout).ok())?;
            }
        }
    }
    Ok(())
}

fn bytes_worker(args: &WorkerArgs) -> Res<()> {
    let ring = ByteRing::open(&args.name)?;
    let timeout = Duration::from_millis(10);
    if args.side == Side::Produce {
        let mut tx = ring.producer()?;
        let mut count = 0u64;
        let body = vec![0x5au8; args.size];
        let mut pacer = Pacer::new(args);
        while let Some(send_ns) = pacer.next(args.until_ns) {
            if let Ok(mut grant) = tx.reserve_timeout(args.size, timeout) {
                grant.copy_from_slice(&body);
                grant[..8].copy_from_slice(&send_ns.to_le_bytes());
                grant.commit();
                count += 1;
                pacer.sent();
            }
        }
        println!("count {count}");
        return Ok(());
    }
    let mut rx = ring.consumer()?;
    let mut hist = histogram();
    let mut count = 0u64;
    let mut quiet = None;
    loop {
        let batch = rx.read_batch()?;
        if batch.is_empty() {
            drop(batch);
            if now_ns() >= args.until_ns && quiet.get_or_insert_with(Instant::now).elapsed() > DRAIN
            {
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        quiet = None;
        let now = now_ns();
        for msg in &batch {
            let sent = u64::from_le_bytes(msg[..8].try_into()?);
            hist.record(now.saturating_sub(sent).max(1))?;
            count += 1;
        }
    }
    report(count, &hist)
}

/// Usage errors (exit 2, as `--help` says): arguments that cannot work.
pub fn check(args: &BenchArgs) -> Result<(), String> {
    let one = |what: &str, n: usize| -> Result<(), String> {
        if n != 1 {
            let kind = args.kind.to_possible_value().expect("named");
            return Err(format!("a {} ring has exactly one {what}", kind.get_name()));
        }
        Ok(())
    };
    match args.kind {
        Kind::Spsc => {
            one("producer", args.producers)?;
            one("consumer", args.consumers)?;
        }
        Kind::Bytes => one("consumer", args.consumers)?,
        Kind::Mpmc => {}
    }
    if args.kind != Kind::Bytes && !SIZES.contains(&args.size) {
        return Err(format!("--size must be one of {SIZES:?} for spsc and mpmc"));
    }
    if args.size < 8 {
        return Err("--size must be at least 8 (the send time travels in the message)".into());
    }
    if args.producers == 0 || args.consumers == 0 || args.producers + args.consumers > 64 {
        return Err("--producers and --consumers must be 1 or more, 64 in all at most".into());
    }
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        return Err("--duration must be more than 0 and at most 3600 seconds".into());
    }
    Ok(())
}

/// Keeps the ring's segment alive and the workers' processes reaped.
struct Run {
    _ring: Box<dyn std::any::Any>,
    children: Vec<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn create(args: &BenchArgs, name: &str) -> Res<Box<dyn std::any::Any>> {
    macro_rules! typed {
        ($t:ty) => {
            match args.kind {
                Kind::Spsc => {
                    Box::new(Spsc::<$t>::create(name, args.capacity)?) as Box<dyn std::any::Any>
                }
                _ => Box::new(Mpmc::<$t>::create(name, args.capacity)?),
            }
        };
    }
    Ok(match (args.kind, args.size / 8) {
        (Kind::Bytes, _) => {
            let ring = ByteRing::create(name, args.capacity)?;
            if args.size > ring.max_message_len() {
                return Err(format!(
                    "--size {} is over this ring's maximum message of {} bytes (raise --capacity)",
                    args.size,
                    ring.max_message_len()
                )
                .into());
            }
            Box::new(ring)
        }
        (_, 1) => typed!([u64; 1]),
        (_, 8) => typed!([u64; 8]),
        (_, 32) => typed!([u64; 32]),
        _ => typed!([u64; 128]),
    })
}

/// `shmring bench`.
pub fn run(args: &BenchArgs) -> Res<()> {
    check(args)?;
    let name = format!("shmring-bench-{}", std::process::id());
    crate::signals::track_segments(&name);
    let ring = create(args, &name)?;
    let start_ns = now_ns() + 200_000_000; // time for the workers to start
    let until_ns = start_ns + (args.duration * 1e9) as u64;
    let spawn = |side: Side| -> Res<Child> {
        let worker = WorkerArgs {
            kind: args.kind,
            name: name.clone(),
            size: args.size,
            side,
            start_ns,
            until_ns,
            rate: args.rate,
        };
        let exe = std::env::current_exe()?;
        let child = worker.command(exe).stdout(Stdio::piped()).spawn()?;
        crate::signals::track_child(child.id());
        Ok(child)
    };
    let mut run = Run {
        _ring: ring,
        children: Vec::new(),
    };
    for _ in 0..args.consumers {
        run.children.push(spawn(Side::Consume)?);
    }
    for _ in 0..args.producers {
        run.children.push(spawn(Side::Produce)?);
    }
    let mut hist = histogram();
    let mut received = 0u64;
    let mut sent = 0u64;
    for (i, child) in std::mem::take(&mut run.children).into_iter().enumerate() {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("a worker process failed: {}", out.status).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let mut parts = line.split_whitespace();
        let count: u64 = match (parts.next(), parts.next()) {
            (Some("count"), Some(n)) => n.parse()?,
            _ => return Err(format!("a worker printed {line:?}").into()),
        };
        if i < args.consumers {
            received += count;
            if let (Some("hist"), Some(h)) = (parts.next(), parts.next()) {
                let bytes = unhex(h).ok_or("a worker's histogram is not hex")?;
                let h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| format!("{e:?}"))?;
                hist.add(h).map_err(|e| format!("{e:?}"))?;
            }
        } else {
            sent += count;
        }
    }
    drop(run);
    if received != sent {
        return Err(format!("{sent} messages sent but {received} received").into());
    }
    print_result(args, received, &hist)
}

fn print_result(args: &BenchArgs, messages: u64, hist: &Histogram<u64>) -> Res<()> {
    let per_sec = messages as f64 / args.duration;
    let q = |x: f64| hist.value_at_quantile(x);
    let kind = args.kind.to_possible_value().expect("named");
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{{\"kind\":\"{}\",\"size\":{},\"producers\":{},\"consumers\":{},\"duration_s\":{},\
             \"capacity\":{},\"rate_per_producer\":{},\"messages\":{messages},\"messages_per_s\":{per_sec:.0},\
             \"bytes_per_s\":{:.0},\"latency_ns\":{{\"p50\":{},\"p90\":{},\"p99\":{},\
             \"p99_9\":{},\"max\":{}}},\"machine\":\"{}\"}}",
            kind.get_name(),
            args.size,
            args.producers,
            args.consumers,
            args.duration,
            args.capacity,
            args.rate,
            per_sec * args.size as f64,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            hist.max(),
            crate::report::machine().replace('"', "'"),
        )?;
    } else {
        writeln!(
            out,
            "shmring bench: {} ring, {}-byte messages, {}P{}C, {} s, capacity {}, on {}",
            kind.get_name(),
            args.size,
            args.producers,
            args.consumers,
            args.duration,
            args.capacity,
            crate::report::machine()
        )?;
        writeln!(
            out,
            "{:>14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "messages/s", "MB/s", "p50", "p90", "p99", "p99.9", "max"
        )?;
        writeln!(
            out,
            "{per_sec:>14.0} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9}",
            per_sec * args.size as f64 / 1e6,
            crate::report::ns(q(0.5)),
            crate::report::ns(q(0.9)),
            crate::report::ns(q(0.99)),
            crate::report::ns(q(0.999)),
            crate::report::ns(hist.max())
        )?;
        if args.rate == 0 {
            writeln!(
                out,
                "(latency: one way, send to receive, across processes, at full load: it includes the time spent queued in the ring; --rate N measures it at N messages/s per producer)"
            )?;
        } else {
            writeln!(
                out,
                "(latency: one way, from each message's scheduled send time to its receipt, across processes, at {} messages/s per producer)",
                args.rate
            )?;
        }
    }
    Ok(())
}

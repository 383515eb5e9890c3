//! The other process of the demo and of the round-trip benches: the same
//! binary started again with a [`Worker`] as its arguments, so both sides
//! run exactly the same code. [`Worker::command`] writes the arguments and
//! [`run_if_worker`] (first thing in `main`) reads them back, through one
//! clap definition: the two ends cannot disagree about the protocol.

use std::ffi::OsStr;
use std::io::{BufWriter, Read, Write};
use std::process::Command;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use shmring::{ByteRing, Mpmc, Spsc, WaitStrategy};

use crate::floors::PingPong;

/// What the child process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Job {
    /// Push 0..count into the ring, one value at a time.
    SpscPush,
    /// Push 0..count into the ring in chunks.
    SpscChunks,
    /// Pop from ring `name`-ping and push each value back on `name`-pong.
    SpscEcho,
    /// Push 0..count into the MPMC ring, one value at a time.
    MpmcPush,
    /// The MPMC version of `SpscEcho`.
    MpmcEcho,
    /// Answer a cache-line ping-pong on segment `name`.
    SpinPong,
    /// Answer a two-line ping-pong on segment `name`.
    TwoLinePong,
    /// Answer a futex ping-pong on segment `name`.
    FutexPong,
    /// Send `count` messages of `size` bytes into the byte ring, in place.
    BytesSend,
    /// Write `count` messages of `size` bytes to stdout, one write each.
    SocketBytes,
    /// Write 0..count as little-endian u64s to stdout, in 64 KiB batches.
    SocketStream,
    /// Write 0..count to stdout, one 8-byte write call per value.
    SocketMessages,
    /// Read 8-byte messages from stdin and write each back to stdout.
    SocketEcho,
}

/// How the child's ring handles wait (mirrors [`WaitStrategy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Spin only.
    Spin,
    /// Spin, then yield, then sleep on the futex.
    #[default]
    Default,
    /// Sleep on the futex at once.
    Sleep,
}

impl From<Strategy> for WaitStrategy {
    fn from(s: Strategy) -> Self {
        match s {
            Strategy::Spin => WaitStrategy::Spin,
            Strategy::Default => WaitStrategy::default(),
            Strategy::Sleep => WaitStrategy::Sleep,
        }
    }
}

/// The first argument of a worker process; the rest is a [`Worker`].
const WORKER_ARG: &str = "__worker";

/// One job for a worker process, with everything it needs.
///
/// ```
/// use shmring_bench_kit::worker::{Job, Worker};
///
/// let w = Worker { job: Job::SpscEcho, name: "rtt".into(), count: 10, ..Worker::default() };
/// let cmd = w.command("/path/to/exe");
/// assert_eq!(cmd.get_args().next().unwrap(), "__worker");
/// ```
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = WORKER_ARG, no_binary_name = true)]
pub struct Worker {
    /// What to do.
    #[arg(long, value_enum)]
    pub job: Job,
    /// Segment name (or prefix, for echo).
    #[arg(long, default_value = "")]
    pub name: String,
    /// How many values.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Message size in bytes, for the byte jobs.
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// How the child's ring handle waits.
    #[arg(long, value_enum, default_value_t)]
    pub strategy: Strategy,
}

/// Values per chunk in the chunked runs.
pub const CHUNK: usize = 64;

/// How long either side waits for the other before declaring it gone.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The line a ring child prints on stderr at the end, for the demo to count.
pub const FUTEX_LINE: &str = "futex-calls";

type Res = Result<(), Box<dyn std::error::Error>>;

/// Put `seq` in the first and last 8 bytes of a message (at least 8 long).
pub fn stamp_message(buf: &mut [u8], seq: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number a message carries, if both ends agree.
pub fn message_seq(msg: &[u8]) -> Option<u64> {
    let n = msg.len();
    let head = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    let tail = u64::from_le_bytes(msg.get(n - 8..)?.try_into().ok()?);
    (head == tail).then_some(head)
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            job: Job::SocketEcho,
            name: String::new(),
            count: 0,
            size: 0,
            strategy: Strategy::Default,
        }
    }
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .expect("every variant has a name")
        .get_name()
        .to_owned()
}

/// Through which a spawner names itself to its worker.
const PARENT_ENV: &str = "SHMRING_WORKER_PARENT";

/// Make `cmd` a worker of this process, one that ends when this process
/// ends ([`die_with_parent`]). Spawn it from a thread that outlives it
/// (the main thread): the kernel ties the worker to the spawning thread.
pub fn tie_to_this_process(cmd: &mut Command) -> &mut Command {
    cmd.env(PARENT_ENV, std::process::id().to_string())
}

/// In a worker that [`tie_to_this_process`] started: end as soon as the
/// spawner ends, however it ends (a SIGKILL included), rather than run on
/// to its deadline. The kernel sends this process SIGKILL when the thread
/// that spawned it exits (`PR_SET_PDEATHSIG`); a spawner that was gone
/// before this call is seen in the parent pid, no longer the one it named.
/// Nothing in a process that was not started as a tied worker.
pub fn die_with_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    // A worker that cannot ask this keeps its deadline, as before.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(1);
    }
}

impl Worker {
    /// The command that starts `exe` (a binary whose `main` calls
    /// [`run_if_worker`] first) as this worker, tied to this process
    /// ([`tie_to_this_process`]); add stdio before spawning.
    pub fn command(&self, exe: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(exe);
        tie_to_this_process(&mut cmd);
        cmd.arg(WORKER_ARG)
            .args(["--job", &value_name(self.job)])
            .args(["--name", &self.name])
            .args(["--count", &self.count.to_string()])
            .args(["--size", &self.size.to_string()])
            .args(["--strategy", &value_name(self.strategy)]);
        cmd
    }

    /// Parse the arguments [`Worker::command`] wrote (after `__worker`).
    fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Self, clap::Error> {
        Worker::try_parse_from(args)
    }

    /// Do the job.
    pub fn run(&self) -> Res {
        run(self)
    }
}

/// If this process was started by [`Worker::command`], do the job and exit
/// (status 1 with the error on stderr if it failed); otherwise return.
pub fn run_if_worker() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(WORKER_ARG)) {
        return;
    }
    // A terminal's Ctrl-C reaches the whole process group: leave it to the
    // parent, which ends its workers and cleans up (a handler that does
    // nothing keeps the signal from ending this process first).
    let _ = ctrlc::set_handler(|| {});
    die_with_parent();
    let result = Worker::parse(args)
        .map_err(|e| e.to_string().into())
        .and_then(|w| w.run());
    if let Err(e) = result {
        eprintln!("worker: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn run(args: &Worker) -> Res {
    match args.job {
        Job::SpscPush | Job::SpscChunks => {
            let ring = Spsc::<u64>::open(&args.name)?;
            let mut tx = ring.producer()?;
            tx.set_wait_strategy(args.strategy.into());
            let mut next = 0;
            while next < args.count {
                if matches!(args.job, Job::SpscChunks) {
                    let want = CHUNK.min((args.count - next) as usize);
                    let mut chunk = tx.reserve_timeout(want, PEER_TIMEOUT)?;
                    let n = chunk.fill_from_iter(next..);
                    chunk.commit(n);
                    next += n as u64;
                } else {
                    tx.push_timeout(next, PEER_TIMEOUT)?;
                    next += 1;
                }
            }
        }
        Job::SpscEcho => {
            let ping = Spsc::<u64>::open(&format!("{}-ping", args.name))?;
            let pong = Spsc::<u64>::open(&format!("{}-pong", args.name))?;
            let mut rx = ping.consumer()?;
            let mut tx = pong.producer()?;
            rx.set_wait_strategy(args.strategy.into());
            for _ in 0..args.count {
                let v = rx.pop_timeout(PEER_TIMEOUT)?;
                tx.push_timeout(v, PEER_TIMEOUT)?;
            }
        }
        Job::MpmcPush => {
            let ring = Mpmc::<u64>::open(&args.name)?;
            let mut tx = ring.producer()?;
            tx.set_wait_strategy(args.strategy.into());
            for v in 0..args.count {
                tx.push_timeout(v, PEER_TIMEOUT)?;
            }
        }
        Job::MpmcEcho => {
            let ping = Mpmc::<u64>::open(&format!("{}-ping", args.name))?;
            let pong = Mpmc::<u64>::open(&format!("{}-pong", args.name))?;
            let mut rx = ping.consumer()?;
            let tx = pong.producer()?;
            rx.set_wait_strategy(args.strategy.into());
            for _ in 0..args.count {
                let v = rx.pop_timeout(PEER_TIMEOUT)?;
                tx.push_timeout(v, PEER_TIMEOUT)?;
            }
        }
        Job::SpinPong | Job::TwoLinePong | Job::FutexPong => {
            let word = PingPong::open(&args.name)?;
            for i in 0..args.count {
                match args.job {
                    Job::SpinPong => word.spin_pong(i as u32)?,
                    Job::TwoLinePong => word.two_line_pong(i as u32)?,
                    _ => word.futex_pong(i as u32)?,
                }
            }
        }
        Job::BytesSend => {
            let ring = ByteRing::open(&args.name)?;
            let mut tx = ring.producer()?;
            tx.set_wait_strategy(args.strategy.into());
            let mut src = vec![0xa5u8; args.size];
            for seq in 0..args.count {
                stamp_message(&mut src, seq);
                let mut grant = tx.reserve_timeout(args.size, PEER_TIMEOUT)?;
                grant.copy_from_slice(&src);
                grant.commit();
            }
        }
        Job::SocketBytes => {
            let mut out = std::io::stdout().lock();
            let mut src = vec![0xa5u8; args.size];
            for seq in 0..args.count {
                stamp_message(&mut src, seq);
                out.write_all(&src)?;
            }
            out.flush()?;
        }
        Job::SocketStream => {
            let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            for v in 0..args.count {
                out.write_all(&v.to_le_bytes())?;
            }
            out.flush()?;
        }
        Job::SocketMessages => {
            let mut out = std::io::stdout().lock();
            for v in 0..args.count {
                out.write_all(&v.to_le_bytes())?;
                out.flush()?;
            }
        }
        Job::SocketEcho => {
            let mut input = std::io::stdin().lock();
            let mut output = std::io::stdout().lock();
            let mut buf = [0u8; 8];
            for _ in 0..args.count {
                input.read_exact(&mut buf)?;
                output.write_all(&buf)?;
                output.flush()?;
            }
        }
    }
    let calls = shmring::futex_calls();
    eprintln!("{FUTEX_LINE} {} {}", calls.waits, calls.wakes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `command` writes, `parse` reads back, for every job and strategy.
    #[test]
    fn a_worker_survives_its_command_line() {
        for job in Job::value_variants() {
            for strategy in Strategy::value_variants() {
                let w = Worker {
                    job: *job,
                    name: "a ring-name".into(),
                    count: u64::MAX,
                    size: 4096,
                    strategy: *strategy,
                };
                let cmd = w.command("exe");
                let mut args = cmd.get_args().map(OsStr::to_os_string);
                assert_eq!(args.next().unwrap(), WORKER_ARG);
                assert_eq!(Worker::parse(args).unwrap(), w);
            }
        }
    }
}

//! `shmring-bridge`: forward a byte ring to a Zenoh key expression (`out`),
//! or a key expression into a byte ring (`in`). One process per direction
//! and ring; see the library docs for what is delivered and counted.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod bench;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shmring_bridge::{Congestion, InOptions, Inbound, Link, OutOptions, Outbound};
use shmring_bridge_state::{default_path, Direction};

#[derive(Parser)]
#[command(
    name = "shmring-bridge",
    about = "Forward shmring byte rings over Zenoh, with sequence numbers and loss accounting",
    after_help = "Host A:  shmring-bridge out --ring orders --key site/orders --zenoh-config tls-listen.json5\n\
                  Host B:  shmring-bridge in --key site/orders --ring orders --zenoh-config tls-connect.json5\n\
                  (mutual TLS: see the README; a plain tcp/ endpoint lets anyone who reaches it read\n\
                  and write the key)\n\n\
                  SIGINT or SIGTERM stops a bridge cleanly (exit 130, as `shmring`): its counters and\n\
                  restart state stay in its state file, which `shmring stat RING` shows."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read ring NAME (as its consumer) and publish each message to KEY.
    Out {
        /// The byte ring to read.
        #[arg(long)]
        ring: String,
        /// The Zenoh key expression to publish to.
        #[arg(long)]
        key: String,
        /// When Zenoh cannot take more: block (the ring fills, its
        /// producers wait) or drop (the receiver counts the loss).
        #[arg(long, value_enum, default_value_t = CongestionArg::Block)]
        congestion: CongestionArg,
        /// Seconds to wait for the ring to exist.
        #[arg(long, default_value_t = 60.0)]
        open_wait: f64,
        /// Send each message at once, without Zenoh's batching: lower
        /// latency, less throughput for small messages.
        #[arg(long)]
        express: bool,
        /// Spin a while (tens of microseconds) on an empty ring before
        /// parking: for a bridge with a core of its own (else it slows
        /// Zenoh's threads).
        #[arg(long)]
        spin: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Subscribe to KEY and write each sample into ring NAME (created if
    /// missing).
    In {
        /// The Zenoh key expression to subscribe to.
        #[arg(long)]
        key: String,
        /// The byte ring to write.
        #[arg(long)]
        ring: String,
        /// The ring's capacity in bytes, if it has to be created.
        #[arg(long, default_value_t = 1 << 20)]
        capacity: usize,
        /// Milliseconds to wait for room in a full ring before a sample is
        /// dropped (and counted).
        #[arg(long, default_value_t = 100)]
        full_wait_ms: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Compare ring-bridge-Zenoh-bridge-ring with Zenoh alone, over
    /// 127.0.0.1 in this process: messages/s and round-trip percentiles.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Messages per throughput run.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Throughput runs per side and size, alternated; the medians are
    /// compared.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Round trips per latency run.
    #[arg(long, default_value_t = 5_000)]
    round_trips: u64,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 4096])]
    sizes: Vec<usize>,
}

#[derive(Args)]
struct Common {
    /// Endpoints to listen on (repeatable), such as tcp/0.0.0.0:7447.
    #[arg(long)]
    listen: Vec<String>,
    /// Endpoints to connect to (repeatable), such as tcp/10.0.0.2:7447.
    #[arg(long)]
    connect: Vec<String>,
    /// Zenoh mode: peer, or client (of a router or peer).
    #[arg(long, value_enum, default_value_t = Mode::Peer)]
    mode: Mode,
    /// Find peers by multicast scouting (off: explicit endpoints only).
    #[arg(long)]
    multicast_scouting: bool,
    /// A Zenoh configuration file (JSON5) to start from, for TLS or mTLS
    /// endpoints, access control and authentication (see the README);
    /// the options above override it where given.
    #[arg(long)]
    zenoh_config: Option<PathBuf>,
    /// Where to keep numbering and counters across restarts [default:
    /// /dev/shm/RING.bridge-out or .bridge-in].
    #[arg(long, conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Keep no state: a restart starts afresh (a new source, or counting
    /// from the first sample heard).
    #[arg(long)]
    no_state: bool,
    /// Print the counters every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 0.0)]
    stats_every: f64,
}

#[derive(Clone, Copy, ValueEnum)]
enum CongestionArg {
    Block,
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Peer,
    Client,
}

impl Common {
    fn link(&self) -> Link {
        Link {
            client: self.mode == Mode::Client,
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            multicast_scouting: self.multicast_scouting,
            config_file: self.zenoh_config.clone(),
        }
    }

    fn state(&self, ring: &str, direction: Direction) -> Option<PathBuf> {
        if self.no_state {
            None
        } else {
            Some(
                self.state
                    .clone()
                    .unwrap_or_else(|| default_path(ring, direction)),
            )
        }
    }

    fn every(&self) -> Option<Duration> {
        (self.stats_every > 0.0).then(|| Duration::from_secs_f64(self.stats_every))
    }
}

/// Set by SIGINT or SIGTERM; the bridge's task is told through `notify`.
struct Stop {
    asked: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    /// Completes once a stop is asked (at once if it was already).
    async fn asked(&self) {
        while !self.asked.load(Ordering::SeqCst) {
            self.notify.notified().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(Stop {
        asked: AtomicBool::new(false),
        notify: tokio::sync::Notify::new(),
    });
    let flag = Arc::clone(&stop);
    let handler = move || {
        flag.asked.store(true, Ordering::SeqCst);
        // A permit is kept if the task is not waiting at this moment.
        flag.notify.notify_one();
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("shmring-bridge: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli.command, &stop) {
        // Stopped by SIGINT or SIGTERM, after a clean stop: 130, as the
        // shell reports an interrupted command and `shmring` exits.
        Ok(()) if stop.asked.load(Ordering::SeqCst) => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmring-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command forwards byte rings; say so when given another kind.
fn byte_rings_only(ring: &str, e: shmring_bridge::Error) -> Box<dyn std::error::Error> {
    match e {
        shmring_bridge::Error::Ring(shmring::Error::KindMismatch { found, .. }) => format!(
            "ring {ring:?} is a {found} ring, and `shmring-bridge` forwards byte rings only: \
             have its producer write a byte ring (shmring::ByteRing), or bridge it from a \
             program with shmring_bridge::Outbound::{} (each value as its bytes)",
            if found == "mpmc" { "mpmc" } else { "spsc" }
        )
        .into(),
        e => e.into(),
    }
}

/// Either direction, as the command runs it.
trait Bridge {
    /// Bridge until the stop.
    fn run_until<'a>(
        &'a mut self,
        stop: &'a Stop,
    ) -> impl Future<Output = shmring_bridge::Result<()>> + 'a;
    /// Print its counters.
    fn print(&self);
}

/// Both directions' `run` take the stop and print their own counters.
macro_rules! bridge {
    ($ty:ty, $print:ident) => {
        impl Bridge for $ty {
            fn run_until<'a>(
                &'a mut self,
                stop: &'a Stop,
            ) -> impl Future<Output = shmring_bridge::Result<()>> + 'a {
                self.run(stop.asked())
            }
            fn print(&self) {
                $print(self);
            }
        }
    };
}

bridge!(Outbound, print_out);
bridge!(Inbound, print_in);

/// Run `bridge` on this thread until the stop, printing its counters every
/// `every` and at the end. One thread: the bridge is a task, and rings are
/// awaited through `shmring_async`'s waiter thread.
fn drive(
    bridge: &mut impl Bridge,
    stop: &Stop,
    every: Option<Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let ran: shmring_bridge::Result<()> = rt.block_on(async {
        loop {
            let Some(every) = every else {
                return bridge.run_until(stop).await;
            };
            // Cancelling the bridge's run between reports loses nothing.
            match tokio::time::timeout(every, bridge.run_until(stop)).await {
                Ok(r) => return r,
                Err(_report) => bridge.print(),
            }
        }
    });
    ran?;
    bridge.print();
    Ok(())
}

fn run(command: Command, stop: &Stop) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Bench(b) => bench::run(b.count, b.rounds.max(1), b.round_trips, &b.sizes)?,
        Command::Out {
            ring,
            key,
            congestion,
            open_wait,
            express,
            spin,
            common,
        } => {
            let session = common.link().open()?;
            let opts = OutOptions {
                congestion: match congestion {
                    CongestionArg::Block => Congestion::Block,
                    CongestionArg::Drop => Congestion::Drop,
                },
                open_wait: Duration::from_secs_f64(open_wait.max(0.0)),
                express,
                wait: if spin {
                    shmring::WaitStrategy::Spin
                } else {
                    shmring::WaitStrategy::Sleep
                },
                state: common.state(&ring, Direction::Out),
            };
            let mut out = Outbound::new(&session, &ring, &key, &opts)
                .map_err(|e| byte_rings_only(&ring, e))?;
            // The first line says the bridge is ready (scripts and tests
            // wait for it).
            println!(
                "out ready: ring {ring} -> key {key}, source {:016x}, next seq {} ({})",
                out.source(),
                out.next_seq(),
                if out.resumed() {
                    "resumed"
                } else {
                    "new source"
                }
            );
            drive(&mut out, stop, common.every())?;
            drop(out);
            drop(session);
        }
        Command::In {
            key,
            ring,
            capacity,
            full_wait_ms,
            common,
        } => {
            let session = common.link().open()?;
            let opts = InOptions {
                capacity,
                full_wait: Duration::from_millis(full_wait_ms),
                state: common.state(&ring, Direction::In),
            };
            let mut inb = Inbound::new(&session, &key, &ring, &opts)
                .map_err(|e| byte_rings_only(&ring, e))?;
            println!(
                "in ready: key {key} -> ring {ring} ({})",
                if inb.resumed() {
                    "resumed"
                } else {
                    "fresh state"
                }
            );
            drive(&mut inb, stop, common.every())?;
            drop(inb);
            drop(session);
        }
    }
    Ok(())
}

// Counters go to stdout, whoever reads it; a reader that went away is not
// a reason to fail a stop.
fn print_out(out: &Outbound) {
    let s = out.stats();
    let _ = writeln!(
        std::io::stdout(),
        "out stats: sent={} bytes={} next_seq={}",
        s.sent,
        s.bytes,
        out.next_seq()
    );
}

fn print_in(inb: &Inbound) {
    let s = inb.stats();
    let _ =
        writeln!(
        std::io::stdout(),
        "in stats: delivered={} lost={} duplicates={} reordered={} dropped_full={} unnumbered={}",
        s.delivered, s.lost, s.duplicates, s.reordered, s.dropped_full, s.unnumbered
    );
}

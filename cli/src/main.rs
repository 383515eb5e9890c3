//! The `shmring` command: a cross-process demo with latency percentiles and
//! throughput, measured side by side with a Unix socketpair, and tools to
//! look into segments and clean them up.

// The command's own code holds no `unsafe`: what needs it (the floors'
// mapping and futex calls) is in `bench-kit/`.
#![forbid(unsafe_code)]

mod bench;
mod clock;
mod demo;
mod doctor;
mod events;
mod inspect;
mod metrics;
mod progress;
mod report;
mod signals;
mod top;
mod view;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Lock-free, zero-copy message rings in POSIX shared memory.
///
/// Exit status: 0 on success, 1 on an error (the message says which), 2 on
/// bad usage, 3 when `rm` refused to remove a segment in use, 130 when
/// interrupted (Ctrl-C or SIGTERM: segments it made are removed and
/// processes it started are ended first).
#[derive(Parser)]
#[command(name = "shmring", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Move a workload between two processes through shmring and through a
    /// Unix socketpair, and print throughput and round-trip latency.
    Demo(demo::DemoArgs),
    /// List every shmring segment in /dev/shm: kind, element size,
    /// capacity, fill level, attached pids (alive or dead), and whether it
    /// is stale (no process maps it or holds anything in it, as the kernel
    /// sees its locks); or all of it, counters included, as JSON.
    Ls(inspect::LsArgs),
    /// Run one workload between processes for a fixed time: throughput and
    /// one-way latency percentiles, as a table or JSON.
    Bench(bench::BenchArgs),
    /// Show one ring's header, holders and counters: once, or redrawn with
    /// --watch (rates over the interval); as a table, JSON, or in the
    /// Prometheus text format.
    Stat(inspect::StatArgs),
    /// Print every ring's counters and gauges in the Prometheus text format.
    Metrics(metrics::MetricsArgs),
    /// Serve `shmring metrics` over HTTP (GET /metrics) for Prometheus to
    /// scrape, until interrupted.
    ServeMetrics(metrics::ServeArgs),
    /// Remove segments by name (refusing one in use unless --force), or
    /// every stale one with --stale.
    Rm(inspect::RmArgs),
    /// Every ring at once, refreshed every interval: rates, fill, holders
    /// and whether they live; sortable, or only one process's rings.
    Top(top::TopArgs),
    /// Check this host or container for what breaks shared-memory IPC
    /// (the size and kind of /dev/shm, free space, systemd's RemoveIPC,
    /// peers in other namespaces), with what to do about each.
    Doctor(doctor::DoctorArgs),
    /// Internal: one producer or consumer process of `bench`.
    #[command(name = bench::WORKER_COMMAND, hide = true)]
    BenchWorker(bench::WorkerArgs),
}

fn main() -> ExitCode {
    shmring_bench_kit::worker::run_if_worker();
    let cli = Cli::parse();
    events::install();
    // Long-running subcommands stop cleanly on SIGINT/SIGTERM (exit 130).
    let long_running = match &cli.command {
        Command::Demo(_) => Some("demo"),
        Command::Bench(_) => Some("bench"),
        Command::Stat(a) if a.watch => Some("stat"),
        Command::Top(_) => Some("top"),
        Command::ServeMetrics(_) => Some("serve-metrics"),
        Command::BenchWorker(_) => {
            signals::ignore_in_worker();
            // A bench killed with SIGKILL takes its workers along.
            shmring_bench_kit::worker::die_with_parent();
            None
        }
        _ => None,
    };
    if let Some(what) = long_running {
        if let Err(e) = signals::install(what) {
            eprintln!("shmring: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Demo(args) => {
            if let Err(usage) = demo::check_args(&args) {
                Cli::command()
                    .error(clap::error::ErrorKind::ValueValidation, usage)
                    .exit();
            }
            demo::run(&args)
        }
        Command::Ls(args) => inspect::ls(&args),
        Command::Bench(args) => {
            if let Err(usage) = bench::check(&args) {
                Cli::command()
                    .error(clap::error::ErrorKind::ValueValidation, usage)
                    .exit();
            }
            bench::run(&args)
        }
        Command::BenchWorker(args) => bench::worker(&args),
        Command::Stat(args) => inspect::stat(&args),
        Command::Metrics(args) => metrics::metrics(&args),
        Command::ServeMetrics(args) => metrics::serve(&args),
        Command::Top(args) => top::run(&args),
        Command::Doctor(args) => match doctor::run(&args) {
            Ok(false) => return ExitCode::FAILURE,
            other => other.map(|_| ()),
        },
        Command::Rm(args) => match inspect::rm(&args) {
            Ok(false) => return ExitCode::from(inspect::IN_USE),
            other => other.map(|_| ()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // An error after an interrupt is its doing (a child it ended):
        // the handler reports and exits 130.
        Err(_) if signals::interrupted() => signals::wait_for_handler(),
        // The reader went away (`shmring top | head -1`): the output was
        // wanted no further, which is no failure.
        Err(e) if closed_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmring: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` is a write to a pipe whose reader closed it.
fn closed_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        || e.downcast_ref::<serde_json::Error>()
            .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// What `WorkerArgs::command` writes, the command line parses back.
    #[test]
    fn a_bench_worker_survives_its_command_line() {
        for kind in bench::Kind::value_variants() {
            for side in bench::Side::value_variants() {
                let w = bench::WorkerArgs {
                    kind: *kind,
                    name: "ring".into(),
                    size: 64,
                    side: *side,
                    start_ns: 1,
                    until_ns: u64::MAX,
                    rate: 1000,
                };
                let cmd = w.command("shmring");
                let args = std::iter::once("shmring".into())
                    .chain(cmd.get_args().map(|a| a.to_os_string()));
                match Cli::try_parse_from(args).unwrap().command {
                    Command::BenchWorker(parsed) => assert_eq!(parsed, w),
                    _ => panic!("parsed as another command"),
                }
            }
        }
    }
}

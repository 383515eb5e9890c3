//! The `shmring` command: a cross-process demo with latency percentiles and
//! throughput, measured side by side with a Unix socketpair.

mod child;
mod demo;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lock-free, zero-copy message rings in POSIX shared memory.
#[derive(Parser)]
#[command(name = "shmring", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Move a workload between two processes through shmring and through a
    /// Unix socketpair, and print throughput and round-trip latency.
    Demo(demo::DemoArgs),
    /// Internal: the other process of the demo.
    #[command(name = "__child", hide = true)]
    Child(child::ChildArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Child(args) => child::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmring: {e}");
            ExitCode::FAILURE
        }
    }
}

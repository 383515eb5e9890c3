//! The demo's second process: it is this same binary, started with the
//! hidden `__child` command, so the two sides are exactly the same code.

use std::io::{BufWriter, Read, Write};

use clap::{Args, ValueEnum};
use shmring::Spsc;

/// What the child process does.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Job {
    /// Push 0..count into the ring, one value at a time.
    SpscPush,
    /// Push 0..count into the ring in chunks.
    SpscChunks,
    /// Pop from ring `name`-ping and push each value back on `name`-pong.
    SpscEcho,
    /// Write 0..count as little-endian u64s to stdout (a socket).
    SocketStream,
    /// Write 0..count to stdout, one 8-byte write call per value.
    SocketMessages,
    /// Read 8-byte messages from stdin and write each back to stdout.
    SocketEcho,
}

/// Arguments of the hidden child command.
#[derive(Args, Debug)]
pub struct ChildArgs {
    /// What to do.
    #[arg(long, value_enum)]
    pub job: Job,
    /// Ring name (or prefix, for echo).
    #[arg(long, default_value = "")]
    pub name: String,
    /// How many values.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// Values per chunk in the chunked runs.
pub const CHUNK: usize = 64;

pub fn run(args: &ChildArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.job {
        Job::SpscPush => {
            let ring = Spsc::<u64>::open(&args.name)?;
            let mut tx = ring.producer()?;
            for v in 0..args.count {
                let mut v = v;
                while let Err(back) = tx.try_push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        }
        Job::SpscChunks => {
            let ring = Spsc::<u64>::open(&args.name)?;
            let mut tx = ring.producer()?;
            let mut next = 0;
            while next < args.count {
                let mut chunk = tx.write_chunk(CHUNK.min((args.count - next) as usize));
                let n = chunk.fill_from_iter(next..);
                chunk.commit(n);
                next += n as u64;
                if n == 0 {
                    std::hint::spin_loop();
                }
            }
        }
        Job::SpscEcho => {
            let ping = Spsc::<u64>::open(&format!("{}-ping", args.name))?;
            let pong = Spsc::<u64>::open(&format!("{}-pong", args.name))?;
            let mut rx = ping.consumer()?;
            let mut tx = pong.producer()?;
            for _ in 0..args.count {
                let v = loop {
                    if let Some(v) = rx.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                let mut v = v;
                while let Err(back) = tx.try_push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
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
    Ok(())
}

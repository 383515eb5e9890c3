//! Two producer processes and two consumer processes on one MPMC ring:
//! this program starts itself four times, and every copy calls
//! `open_or_create` (whichever is first creates the ring). When both
//! producers are done, this process closes the ring; consumers drain it and
//! stop at `Error::Closed`.
//!
//! ```sh
//! cargo run --release --example mpmc
//! ```

use std::process::{Child, Command};
use std::time::Duration;

use shmring::{Mpmc, RecvError};

const PER_PRODUCER: u64 = 200_000;
const CAPACITY: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name, n] if role == "producer" => return produce(name, n.parse()?),
        [role, name, _] if role == "consumer" => return consume(name),
        _ => {}
    }
    let name = format!("shmring-example-mpmc-{}", std::process::id());
    let spawn = |role: &str, n: u64| -> std::io::Result<Child> {
        Command::new(std::env::current_exe()?)
            .args([role, &name, &n.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
    };
    // Held until the end, so that the ring outlives every child.
    let ring = Mpmc::<u64>::open_or_create(&name, CAPACITY)?;
    // The consumers share what both producers send, in any proportion.
    let consumers = [spawn("consumer", 0)?, spawn("consumer", 1)?];
    for mut producer in [spawn("producer", 0)?, spawn("producer", 1)?] {
        if !producer.wait()?.success() {
            return Err("a producer failed".into());
        }
    }
    // Every producer is done: end the stream after what they pushed.
    ring.producer()?.close();
    let mut counts = Vec::new();
    for child in consumers {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err("a consumer failed".into());
        }
        counts.push(String::from_utf8(out.stdout)?.trim().parse::<u64>()?);
    }
    let received: u64 = counts.iter().sum();
    assert_eq!(
        received,
        2 * PER_PRODUCER,
        "everything sent was received once"
    );
    println!(
        "2 producers and 2 consumers moved {} values (the consumers took {counts:?})",
        2 * PER_PRODUCER
    );
    Ok(())
}

/// Producer `id` sends its id in the top bit and a sequence number below.
fn produce(name: &str, id: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Mpmc::<u64>::open_or_create(name, CAPACITY)?;
    let tx = ring.producer()?;
    for seq in 0..PER_PRODUCER {
        tx.push_timeout(id << 63 | seq, TIMEOUT)?;
    }
    Ok(())
}

/// Each producer's values reach a given consumer in the order sent.
fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Mpmc::<u64>::open_or_create(name, CAPACITY)?;
    let rx = ring.consumer()?;
    let mut last = [None::<u64>; 2];
    let mut count = 0u64;
    loop {
        let v = match rx.pop_timeout(TIMEOUT) {
            Ok(v) => v,
            Err(RecvError::Closed { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        let (from, seq) = ((v >> 63) as usize, v & (u64::MAX >> 1));
        assert!(last[from].is_none_or(|l| l < seq), "in order per producer");
        last[from] = Some(seq);
        count += 1;
    }
    println!("{count}");
    Ok(())
}

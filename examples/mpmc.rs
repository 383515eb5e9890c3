//! Two producer processes and two consumer processes on one MPMC ring:
//! this program creates the ring and starts itself four times.
//!
//! ```sh
//! cargo run --release --example mpmc
//! ```

use std::process::{Child, Command};
use std::time::Duration;

use shmring::Mpmc;

const PER_PRODUCER: u64 = 200_000;
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name, n] if role == "producer" => return produce(name, n.parse()?),
        [role, name, n] if role == "consumer" => return consume(name, n.parse()?),
        _ => {}
    }
    let name = format!("shmring-example-mpmc-{}", std::process::id());
    let ring = Mpmc::<u64>::create(&name, 1024)?;
    let spawn = |role: &str, n: u64| -> std::io::Result<Child> {
        Command::new(std::env::current_exe()?)
            .args([role, &name, &n.to_string()])
            .spawn()
    };
    // Each consumer takes half of what both producers send.
    let children = [
        spawn("producer", 0)?,
        spawn("producer", 1)?,
        spawn("consumer", 0)?,
        spawn("consumer", 1)?,
    ];
    for mut child in children {
        if !child.wait()?.success() {
            return Err("a child failed".into());
        }
    }
    let left = ring.consumer()?.try_pop();
    assert_eq!(left, None, "everything sent was received");
    println!(
        "2 producers and 2 consumers moved {} values",
        2 * PER_PRODUCER
    );
    Ok(())
}

/// Producer `id` sends its id in the top bit and a sequence number below.
fn produce(name: &str, id: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Mpmc::<u64>::open(name)?;
    let tx = ring.producer()?;
    for seq in 0..PER_PRODUCER {
        tx.push_timeout(id << 63 | seq, TIMEOUT)
            .map_err(|e| format!("{e}"))?;
    }
    Ok(())
}

/// Each producer's values reach a given consumer in the order sent.
fn consume(name: &str, id: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Mpmc::<u64>::open(name)?;
    let rx = ring.consumer()?;
    let mut last = [None::<u64>; 2];
    for _ in 0..PER_PRODUCER {
        let v = rx.pop_timeout(TIMEOUT)?;
        let (from, seq) = ((v >> 63) as usize, v & (u64::MAX >> 1));
        assert!(last[from].is_none_or(|l| l < seq), "in order per producer");
        last[from] = Some(seq);
    }
    println!("consumer {id}: {PER_PRODUCER} values");
    Ok(())
}

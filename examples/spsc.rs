//! Two processes, one SPSC ring: this program creates the ring and
//! produces, and starts itself again as the consumer.
//!
//! ```sh
//! cargo run --release --example spsc
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use shmring::Spsc;

const COUNT: u64 = 1_000_000;
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(name)) = (args.next(), args.next()) {
        assert_eq!(role, "consumer");
        return consume(&name);
    }
    let name = format!("shmring-example-spsc-{}", std::process::id());
    // The creator owns the name: it is removed when `ring` drops.
    let ring = Spsc::<u64>::create(&name, 4096)?;
    let mut tx = ring.producer()?;
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consumer", &name])
        .spawn()?;
    let start = Instant::now();
    for v in 0..COUNT {
        // Waits while the ring is full (spins, then sleeps); gives the value
        // back if the consumer has not made room within the timeout.
        tx.push_timeout(v, TIMEOUT).map_err(|e| format!("{e}"))?;
    }
    if !consumer.wait()?.success() {
        return Err("the consumer failed".into());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{COUNT} values in {secs:.3} s: {:.1} M/s",
        COUNT as f64 / secs / 1e6
    );
    Ok(())
}

fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Spsc::<u64>::open(name)?;
    let mut rx = ring.consumer()?;
    let mut sum = 0u64;
    for expected in 0..COUNT {
        let v = rx.pop_timeout(TIMEOUT)?;
        assert_eq!(v, expected, "values arrive once, in order");
        sum += v;
    }
    println!("consumer: {COUNT} values, sum {sum}");
    Ok(())
}

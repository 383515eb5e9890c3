//! Two services, one SPSC ring, started in any order: this program starts a
//! copy of itself as the consumer, and both call `open_or_create`, so
//! whichever gets there first creates the ring. The producer closes the ring
//! when done; the consumer drains it and stops at `Error::Closed`. The last
//! of the two to leave removes the name.
//!
//! ```sh
//! cargo run --release --example spsc
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use shmring::{RecvError, Spsc};

const COUNT: u64 = 1_000_000;
const CAPACITY: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(name)) = (args.next(), args.next()) {
        assert_eq!(role, "consumer");
        return consume(&name);
    }
    let name = format!("shmring-example-spsc-{}", std::process::id());
    // Started first, the consumer may well create the ring itself.
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consumer", &name])
        .spawn()?;
    let ring = Spsc::<u64>::open_or_create(&name, CAPACITY)?;
    let mut tx = ring.producer()?;
    let start = Instant::now();
    for v in 0..COUNT {
        // Waits while the ring is full (spins, then sleeps); the error
        // names the ring and says whether a consumer is attached at all.
        tx.push_timeout(v, TIMEOUT)?;
    }
    tx.close(); // the end of the stream, after everything pushed
    if !consumer.wait()?.success() {
        return Err("the consumer failed".into());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{COUNT} values in {secs:.3} s: {:.1} M/s ({} created the ring)",
        COUNT as f64 / secs / 1e6,
        if ring.is_creator() {
            "the producer"
        } else {
            "the consumer"
        }
    );
    Ok(())
}

fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Spsc::<u64>::open_or_create(name, CAPACITY)?;
    let mut rx = ring.consumer()?;
    let (mut expected, mut sum) = (0u64, 0u64);
    loop {
        match rx.pop_timeout(TIMEOUT) {
            Ok(v) => {
                assert_eq!(v, expected, "values arrive once, in order");
                expected += 1;
                sum += v;
            }
            Err(RecvError::Closed { .. }) => break, // drained, and the producer is done
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(expected, COUNT, "every value arrived");
    println!("consumer: {COUNT} values, sum {sum}");
    Ok(())
}

//! Two processes, one byte ring: variable-length messages written in place
//! by this process and read in place, in batches, by a copy of itself. Both
//! call `open_or_create`; the producer closes the ring when done.
//!
//! ```sh
//! cargo run --release --example bytes
//! ```

use std::process::Command;
use std::time::Duration;

use shmring::{ByteRing, RecvError};

const COUNT: u64 = 100_000;
const CAPACITY: usize = 1 << 16;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Message `i`: its number in 8 bytes, then `i % 200` bytes of `i as u8`.
fn message_len(i: u64) -> usize {
    8 + (i % 200) as usize
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(name)) = (args.next(), args.next()) {
        assert_eq!(role, "consumer");
        return consume(&name);
    }
    let name = format!("shmring-example-bytes-{}", std::process::id());
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consumer", &name])
        .spawn()?;
    let ring = ByteRing::open_or_create(&name, CAPACITY)?;
    let mut tx = ring.producer()?;
    for i in 0..COUNT {
        // Reserve room in the ring, write the message there, commit it.
        let mut grant = tx.reserve_timeout(message_len(i), TIMEOUT)?;
        grant[..8].copy_from_slice(&i.to_le_bytes());
        grant[8..].fill(i as u8);
        grant.commit();
    }
    tx.close();
    if !consumer.wait()?.success() {
        return Err("the consumer failed".into());
    }
    println!("{COUNT} messages of 8 to 207 bytes");
    Ok(())
}

fn consume(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ring = ByteRing::open_or_create(name, CAPACITY)?;
    let mut rx = ring.consumer()?;
    let mut next = 0u64;
    let mut batches = 0;
    loop {
        // Everything committed so far, read in place and released with one
        // store when the batch drops; when there is nothing yet, wait for
        // one message (spinning, then sleeping).
        let batch = rx.read_batch()?;
        if batch.is_empty() {
            drop(batch);
            match rx.recv_timeout(TIMEOUT) {
                Ok(msg) => check(&msg, &mut next)?,
                Err(RecvError::Closed { .. }) => break, // drained; the producer is done
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        batches += 1;
        for msg in &batch {
            check(msg, &mut next)?;
        }
    }
    assert_eq!(next, COUNT, "every message arrived");
    println!("consumer: {COUNT} messages checked, {batches} batches");
    Ok(())
}

/// Message `next` is whole; count it.
fn check(msg: &[u8], next: &mut u64) -> Result<(), Box<dyn std::error::Error>> {
    let i = u64::from_le_bytes(msg[..8].try_into()?);
    assert_eq!(i, *next, "messages arrive once, in order");
    assert_eq!(msg.len(), message_len(i));
    assert!(msg[8..].iter().all(|&b| b == i as u8));
    *next += 1;
    Ok(())
}

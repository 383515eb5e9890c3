//! One producer, three subscriber processes on one broadcast ring: this
//! program starts itself three times as subscribers (two lossless, one
//! lossy that reads slowly), waits until all three have joined, then
//! publishes. Each lossless subscriber reads every value once and in
//! order; the lossy one reads an in-order part of them and says exactly
//! how many it missed. The producer closes the ring when done.
//!
//! ```sh
//! cargo run --release --example broadcast
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use shmring::{Broadcast, RecvError, SubscriberOptions};

const VALUES: u64 = 1_000_000;
const CAPACITY: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [role, name] = args.as_slice() {
        return subscribe(name, role == "lossy");
    }
    let name = format!("shmring-example-broadcast-{}", std::process::id());
    let ring = Broadcast::<u64>::create(&name, CAPACITY)?;
    let mut tx = ring.producer()?;
    let mut children = Vec::new();
    for role in ["lossless", "lossless", "lossy"] {
        let mut child = Command::new(std::env::current_exe()?)
            .args([role, &name])
            .stdout(Stdio::piped())
            .spawn()?;
        // Its first line says it has joined: no value is published before.
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        children.push((role, child, out));
    }
    for v in 0..VALUES {
        tx.push_timeout(v, TIMEOUT)?;
    }
    tx.close();
    for (role, mut child, out) in children {
        let report = out.lines().next().ok_or("no report")??;
        if !child.wait()?.success() {
            return Err(format!("a {role} subscriber failed").into());
        }
        println!("{role:>8} subscriber: {report}");
    }
    Ok(())
}

/// Read until the ring closes; check the order; report what was read and
/// missed. The lossy subscriber pauses now and then, so the producer laps it.
fn subscribe(name: &str, lossy: bool) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Broadcast::<u64>::open(name)?;
    let opts = if lossy {
        SubscriberOptions::lossy()
    } else {
        SubscriberOptions::lossless()
    };
    let mut rx = ring.subscriber_with(&opts)?;
    println!("joined");
    let (mut read, mut last) = (0u64, None);
    loop {
        match rx.pop_timeout(TIMEOUT) {
            Ok(v) => {
                if last.is_some_and(|l| v <= l) {
                    return Err(format!("{v} after {last:?}: out of order").into());
                }
                last = Some(v);
                read += 1;
                if lossy && read % 50_000 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(RecvError::Closed { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if read + rx.missed() != VALUES || (!lossy && rx.missed() != 0) {
        return Err(format!("read {read}, missed {}", rx.missed()).into());
    }
    println!("read {read} values in order, missed {}", rx.missed());
    Ok(())
}

//! A Rust process for other languages' tests to talk to: opens ring `IN`
//! as its consumer and ring `OUT` as its producer (waiting for whoever
//! makes them), and answers each of `COUNT` messages with its number
//! (8 bytes, little-endian) then its bytes reversed.
//!
//! `cargo run -p shmring-c --example echo -- IN OUT COUNT`

use std::time::Duration;

use shmring::ByteRing;

const WAIT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, count] = &args[..] else {
        eprintln!("usage: echo IN OUT COUNT");
        std::process::exit(2);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let (input, output) = (
        ByteRing::open_timeout(input, WAIT).unwrap(),
        ByteRing::open_timeout(output, WAIT).unwrap(),
    );
    let (mut rx, mut tx) = (input.consumer().unwrap(), output.producer().unwrap());
    for i in 0..count {
        let msg = rx.recv_timeout(WAIT).unwrap();
        let mut answer = i.to_le_bytes().to_vec();
        answer.extend(msg.iter().rev());
        drop(msg);
        tx.send_timeout(&answer, WAIT).unwrap();
    }
    println!("echoed {count}");
}

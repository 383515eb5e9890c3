//! A Rust process for other languages' tests to talk to: opens ring `IN`
//! as its consumer and ring `OUT` as its producer (waiting for whoever
//! makes them), and answers each of `COUNT` messages with its number
//! (8 bytes, little-endian) then its bytes reversed. With `--ticks`, `IN`
//! is an `Spsc<Tick>` and `OUT` an `Mpmc<Tick>`, and each tick is
//! answered with its `qty` plus one. With `--broadcast`, both are
//! `Broadcast<Tick>` rings: it subscribes to `IN` from its oldest value
//! (and says `subscribed` on stdout), publishes the answers on `OUT`,
//! then closes `OUT`.
//!
//! `cargo run -p shmring-c --example echo -- [--ticks|--broadcast] IN OUT COUNT`

use std::time::Duration;

use shmring::{Broadcast, ByteRing, Mpmc, Spsc, Start, SubscriberOptions};

const WAIT: Duration = Duration::from_secs(30);

/// A C struct's twin: `double px; uint32_t qty; uint32_t side;`.
#[derive(Clone, Copy, Debug, shmring::Pod, shmring::Zeroable)]
#[bytemuck(crate = "shmring::bytemuck")]
#[repr(C)]
struct Tick {
    px: f64,
    qty: u32,
    side: u32,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some(m @ ("--ticks" | "--broadcast")) => m.to_owned(),
        _ => String::new(),
    };
    if !mode.is_empty() {
        args.remove(0);
    }
    let ticks = mode == "--ticks";
    let [input, output, count] = &args[..] else {
        eprintln!("usage: echo [--ticks|--broadcast] IN OUT COUNT");
        std::process::exit(2);
    };
    if mode == "--broadcast" {
        let count: u64 = count.parse().expect("COUNT is a number");
        let input = Broadcast::<Tick>::open_timeout(input, WAIT).unwrap();
        let output = Broadcast::<Tick>::open_timeout(output, WAIT).unwrap();
        let oldest = SubscriberOptions::lossless()
            .start(Start::Oldest)
            .demote_after(None);
        let mut rx = input.subscriber_with(&oldest).unwrap();
        let mut tx = output.producer().unwrap();
        // The test's producer goes on from here: what it publishes now
        // waits for this subscriber.
        println!("subscribed");
        for _ in 0..count {
            let tick = rx.pop_timeout(WAIT).unwrap();
            let answer = Tick {
                qty: tick.qty + 1,
                ..tick
            };
            tx.push_timeout(answer, WAIT).unwrap();
        }
        assert_eq!(rx.missed(), 0, "a lossless subscriber misses nothing");
        tx.close();
        println!("published {count} answers");
        return;
    }
    if ticks {
        let count: u64 = count.parse().expect("COUNT is a number");
        let input = Spsc::<Tick>::open_timeout(input, WAIT).unwrap();
        let output = Mpmc::<Tick>::open_timeout(output, WAIT).unwrap();
        let (mut rx, tx) = (input.consumer().unwrap(), output.producer().unwrap());
        for _ in 0..count {
            let tick = rx.pop_timeout(WAIT).unwrap();
            tx.push_timeout(
                Tick {
                    qty: tick.qty + 1,
                    ..tick
                },
                WAIT,
            )
            .unwrap();
        }
        println!("answered {count} ticks");
        return;
    }
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

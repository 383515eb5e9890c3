//! Producer streams: a producer the application names resumes exactly
//! where its stream stopped, after a clean exit or a SIGKILL at any moment,
//! on MPMC and byte rings (issue 25, item 8).

#[macro_use]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shmring::{ByteRing, Error, Mpmc, RecvError};

const PATIENCE: Duration = Duration::from_secs(30);

children!(child);

/// A value of stream `id`, number `n`.
fn encode(id: u32, n: u64) -> u64 {
    u64::from(id) << 48 | n
}

fn decode(v: u64) -> (u32, u64) {
    ((v >> 48) as u32, v & ((1 << 48) - 1))
}

/// A stream producer: takes stream ID (waiting while its killed
/// predecessor's locks are still being dropped), says READY, then sends
/// values COUNT.. from where the stream stopped, and says DONE.
fn child(role: &str) {
    let (ring, id, count): (String, u32, u64) = (arg("RING"), arg("ID"), arg("COUNT"));
    let start = Instant::now();
    let retry = |e: &Error| {
        matches!(e, Error::StreamTaken { .. } | Error::Busy { .. }) && start.elapsed() < PATIENCE
    };
    match role {
        "mpmc-stream" => {
            let ring = Mpmc::<u64>::open(&ring).unwrap();
            let mut tx = loop {
                match ring.producer_stream(id) {
                    Ok(tx) => break tx,
                    Err(e) if retry(&e) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("{e}"),
                }
            };
            println!("READY {}", tx.committed());
            for n in tx.committed()..count {
                tx.push_timeout(encode(id, n), PATIENCE).unwrap();
            }
        }
        "bytes-stream" => {
            let ring = ByteRing::open(&ring).unwrap();
            let mut tx = loop {
                match ring.producer_stream(id) {
                    Ok(tx) => break tx,
                    Err(e) if retry(&e) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("{e}"),
                }
            };
            let from = tx.committed().unwrap();
            println!("READY {from}");
            for n in from..count {
                tx.send_timeout(&encode(id, n).to_le_bytes(), PATIENCE)
                    .unwrap();
            }
        }
        other => panic!("unknown child role {other}"),
    }
    println!("DONE");
}

/// Start stream `id`'s producer and wait until it holds its stream.
fn start(
    role: &str,
    ring: &str,
    id: u32,
    count: u64,
) -> (ChildGuard, BufReader<std::process::ChildStdout>) {
    let mut child: ChildGuard = child_command(role)
        .env("RING", ring)
        .env("ID", id.to_string())
        .env("COUNT", count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .into();
    let mut out = BufReader::new(child.stdout());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "{line:?}");
    (child, out)
}

/// A small xorshift, so that the kill points differ from run to run but
/// need no dependency.
fn random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Two stream producers, killed 100 times in all at random moments and
/// restarted; then each runs to the end. Every value of each stream is
/// delivered exactly once, in order.
fn killed_streams_deliver_everything_once(
    role: &str,
    name: &str,
    recv: impl FnOnce(Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u64>>,
) {
    const COUNT: u64 = 300_000;
    // A child that aborts (a failed assertion in one) drops nothing, and
    // may be the ring's last user: the name goes with the test anyway.
    let _name = Unlink(name.to_owned());
    let done = Arc::new(AtomicBool::new(false));
    let consumer = recv(Arc::clone(&done));
    let mut seed = u64::from(std::process::id()) | 1;
    let mut children: Vec<_> = (1..=2)
        .map(|id| Some(start(role, name, id, COUNT)))
        .collect();
    let mut kills = 0;
    while kills < 100 {
        let i = (random(&mut seed) % 2) as usize;
        std::thread::sleep(Duration::from_micros(random(&mut seed) % 2000));
        let (child, _) = children[i].take().unwrap();
        child.kill();
        kills += 1;
        children[i] = Some(start(role, name, i as u32 + 1, COUNT));
    }
    for slot in &mut children {
        let (child, mut out) = slot.take().unwrap();
        let mut line = String::new();
        while line.trim() != "DONE" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "a producer died");
        }
        child.wait_success(PATIENCE);
    }
    done.store(true, Ordering::Relaxed);
    let values = consumer.join().unwrap();
    let mut streams: HashMap<u32, Vec<u64>> = HashMap::new();
    for v in values {
        let (id, n) = decode(v);
        streams.entry(id).or_default().push(n);
    }
    for id in 1..=2 {
        let got = streams.remove(&id).unwrap_or_default();
        let first_bad = got.iter().enumerate().find(|&(i, &n)| n != i as u64);
        assert!(
            first_bad.is_none() && got.len() as u64 == COUNT,
            "stream {id}: {} values, first out of place: {first_bad:?}",
            got.len()
        );
    }
    assert!(streams.is_empty(), "values of unknown streams: {streams:?}");
}

/// The consumer side: take values with `next` (waiting up to its
/// argument) until the producers are `done`, a wait finds nothing, and a
/// repair (`recover`) has nothing left to hand on.
fn drain(
    done: &AtomicBool,
    mut next: impl FnMut(Duration) -> Result<u64, RecvError>,
    recover: impl Fn() -> u64,
) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match next(Duration::from_millis(20)) {
            Ok(v) => got.push(v),
            Err(RecvError::Timeout { .. }) if done.load(Ordering::Relaxed) && recover() == 0 => {
                return got
            }
            Err(RecvError::Timeout { .. } | RecvError::Stalled { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn killed_mpmc_stream_producers_resume_exactly() {
    let name = unique_name("mpmc-streams");
    let ring = Arc::new(Mpmc::<u64>::create(&name, 64).unwrap());
    let rx = ring.consumer().unwrap();
    killed_streams_deliver_everything_once("mpmc-stream", &name, move |done| {
        std::thread::spawn(move || drain(&done, |wait| rx.pop_timeout(wait), || ring.recover()))
    });
}

#[test]
fn killed_byte_stream_producers_resume_exactly() {
    let name = unique_name("byte-streams");
    let ring = Arc::new(ByteRing::create(&name, 4096).unwrap());
    let mut rx = ring.consumer().unwrap();
    killed_streams_deliver_everything_once("bytes-stream", &name, move |done| {
        std::thread::spawn(move || {
            let next = |wait| {
                rx.recv_timeout(wait)
                    .map(|m| u64::from_le_bytes(m[..8].try_into().unwrap()))
            };
            drain(&done, next, || ring.recover())
        })
    });
}

#[test]
fn a_stream_has_one_live_handle_and_keeps_its_count() {
    let name = unique_name("stream-basics");
    let ring = Mpmc::<u64>::create(&name, 16).unwrap();
    let mut a = ring.producer_stream(9).unwrap();
    assert!(matches!(
        ring.producer_stream(9),
        Err(Error::StreamTaken { stream: 9, .. })
    ));
    a.try_push(1).unwrap();
    let slot = a.try_reserve().unwrap();
    drop(slot); // uncommitted: not counted
    a.try_push(2).unwrap();
    assert_eq!(a.committed(), 2);
    drop(a);
    // Anonymous producers fill every other record; the stream's is kept.
    let others: Vec<_> = (0..31).map(|_| ring.producer().unwrap()).collect();
    assert!(matches!(ring.producer(), Err(Error::TooManyHandles { .. })));
    let b = ring.producer_stream(9).unwrap();
    assert_eq!(b.committed(), 2);
    drop((b, others));
    let rx = ring.consumer().unwrap();
    assert_eq!(
        std::iter::from_fn(|| rx.try_pop()).collect::<Vec<_>>(),
        [1, 2]
    );
    // Streams of a byte ring count messages, not padding.
    let bytes = ByteRing::create(&unique_name("stream-bytes"), 4096).unwrap();
    let mut tx = bytes.producer_stream(1).unwrap();
    tx.try_send(b"one").unwrap();
    drop(tx.try_reserve(8).unwrap()); // aborted: padding
    tx.try_reserve(3).unwrap().commit();
    assert_eq!(tx.committed(), Some(2));
    assert_eq!(bytes.producer().unwrap().committed(), None);
}

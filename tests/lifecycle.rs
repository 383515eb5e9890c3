//! A ring's life in services: started in any order (open-or-create with
//! exactly one creator, opening a ring that does not exist yet), killed and
//! restarted with the same code, closed, and gone.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use shmring::{ByteRing, Error, Mpmc, RecvError, Role, SendError, Spsc};

const TIMEOUT: Duration = Duration::from_secs(10);

children!(child);

/// Children: racers of open_or_create (they report whether they created the
/// ring, then hold it until stdin closes), and a late creator.
fn child(role: &str) {
    let name: String = arg("RING");
    match role {
        "race" => {
            let start: u64 = arg("START_MS");
            // Start together: spin until the agreed moment.
            while now_ms() < start {
                std::hint::spin_loop();
            }
            // Each keeps its handle (so the name outlives the race).
            let (created, _ring): (bool, Box<dyn std::any::Any>) =
                match arg::<String>("KIND").as_str() {
                    "spsc" => {
                        let r = Spsc::<u64>::open_or_create(&name, 64).unwrap();
                        (r.is_creator(), Box::new(r))
                    }
                    "mpmc" => {
                        let r = Mpmc::<u64>::open_or_create(&name, 64).unwrap();
                        (r.is_creator(), Box::new(r))
                    }
                    _ => {
                        let r = ByteRing::open_or_create(&name, 4096).unwrap();
                        (r.is_creator(), Box::new(r))
                    }
                };
            println!("{}", if created { "created" } else { "opened" });
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        "late-creator" => {
            std::thread::sleep(Duration::from_millis(arg("DELAY_MS")));
            let ring = Spsc::<u64>::create(&name, 8).unwrap();
            let mut tx = ring.producer().unwrap();
            tx.push_timeout(42, TIMEOUT).unwrap();
            // Hold the ring until the consumer has read.
            let start = Instant::now();
            while ring.popped() == 0 && start.elapsed() < TIMEOUT {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // A producer service: push position numbers from wherever the ring
        // stands (after a predecessor killed mid-stream), forever, or
        // EXTRA more and then close.
        "producer-service" => {
            let ring = Spsc::<u64>::open_or_create(&name, 64).unwrap();
            let mut tx = ring.producer().unwrap();
            println!("ready");
            let mut v = tx.pushed();
            let until = std::env::var("EXTRA").map_or(u64::MAX, |n| v + n.parse::<u64>().unwrap());
            while v < until {
                tx.push_timeout(v, TIMEOUT).unwrap();
                v += 1;
            }
            tx.close();
            println!("end {v}");
        }
        // A consumer service: every value must be the next position, until
        // the stream is closed.
        "consumer-service" => {
            let ring = Spsc::<u64>::open_or_create(&name, 64).unwrap();
            let mut rx = ring.consumer().unwrap();
            println!("ready");
            let mut expected = rx.popped();
            let mut progress = Instant::now();
            loop {
                match rx.pop_timeout(Duration::from_millis(100)) {
                    Ok(v) => {
                        assert_eq!(v, expected, "lost, duplicated or torn value");
                        expected += 1;
                        progress = Instant::now();
                    }
                    Err(RecvError::Closed { .. }) => break,
                    Err(RecvError::Timeout { .. }) if progress.elapsed() < TIMEOUT * 3 => {}
                    Err(e) => panic!("at value {expected}: {e}"),
                }
            }
            println!("received {expected}");
        }
        // Another crate's `Quote` (tests/peer-crate) creates and pushes,
        // then holds the ring until stdin closes.
        "peer-crate-producer" => {
            let ring = Spsc::<peer_crate::Quote>::create(&name, 8).unwrap();
            let quote = peer_crate::Quote {
                px: 101.5,
                qty: 3,
                venue: 7,
            };
            ring.producer().unwrap().try_push(quote).unwrap();
            println!("ready");
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        "hold-producer" => {
            let ring = Spsc::<u64>::open(&name).unwrap();
            let _tx = ring.producer().unwrap();
            println!("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Spawn a service child with piped stdio; its stdout, once it said ready.
fn start_service(
    role: &str,
    name: &str,
    extra: Option<u64>,
) -> (
    ChildGuard,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut cmd = child_command(role);
    cmd.env("RING", name).stdout(Stdio::piped());
    if let Some(n) = extra {
        cmd.env("EXTRA", n.to_string());
    }
    let mut child = ChildGuard::from(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.stdout()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "ready",
        "{role} did not start"
    );
    (child, lines)
}

/// The last line a service printed, parsed after `word`.
fn report(lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>, word: &str) -> u64 {
    let line = lines.next().expect("a report line").unwrap();
    let n = line
        .strip_prefix(word)
        .unwrap_or_else(|| panic!("{line:?}"));
    n.trim().parse().unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_consumer_started_before_its_producer_opens_the_ring_when_it_appears() {
    let name = unique_name("late");
    let _cleanup = Unlink(name.clone());
    let creator = spawn_child(
        "late-creator",
        &[("RING", name.clone()), ("DELAY_MS", "300".into())],
    );
    // Today's `open` fails at once; `open_timeout` waits for the creator.
    assert!(matches!(
        Spsc::<u64>::open(&name),
        Err(Error::NotFound { .. })
    ));
    let start = Instant::now();
    let ring = Spsc::<u64>::open_timeout(&name, TIMEOUT).unwrap();
    assert!(start.elapsed() < TIMEOUT);
    assert!(!ring.is_creator());
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.pop_timeout(TIMEOUT).unwrap(), 42);
    creator.wait_success(TIMEOUT);
}

#[test]
fn open_timeout_is_not_found_when_no_one_creates_the_ring() {
    let name = unique_name("never");
    let start = Instant::now();
    let err = ByteRing::open_timeout(&name, Duration::from_millis(150)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(150));
}

fn race(kind: &str) {
    const RACERS: usize = 6;
    let name = unique_name(&format!("race-{kind}"));
    let _cleanup = Unlink(name.clone());
    let start = now_ms() + 300;
    let mut racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let mut cmd = child_command("race");
            cmd.env("RING", &name)
                .env("KIND", kind)
                .env("START_MS", start.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            ChildGuard::from(cmd.spawn().unwrap())
        })
        .collect();
    let outcomes: Vec<String> = racers.iter_mut().map(ChildGuard::first_line).collect();
    let created = outcomes.iter().filter(|o| *o == "created").count();
    let opened = outcomes.iter().filter(|o| *o == "opened").count();
    assert_eq!((created, opened), (1, RACERS - 1), "{outcomes:?}");
    for mut c in racers {
        c.close_stdin();
        c.wait_success(TIMEOUT);
    }
}

#[test]
fn processes_racing_open_or_create_have_exactly_one_creator() {
    race("spsc");
    race("mpmc");
    race("bytes");
}

#[test]
fn open_or_create_refuses_a_ring_of_another_kind_type_or_capacity() {
    let name = unique_name("ooc-mismatch");
    let _ring = Spsc::<u64>::open_or_create(&name, 100).unwrap();
    let same = Spsc::<u64>::open_or_create(&name, 128).unwrap(); // 100 rounds to 128
    assert_eq!(same.capacity(), 128);
    match Spsc::<u64>::open_or_create(&name, 64) {
        Err(Error::CapacityMismatch {
            requested, found, ..
        }) => assert_eq!((requested, found), (64, 128)),
        other => panic!("expected CapacityMismatch, got {:?}", other.err()),
    }
    assert!(matches!(
        Spsc::<u32>::open_or_create(&name, 128),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        ByteRing::open_or_create(&name, 4096),
        Err(Error::KindMismatch { .. })
    ));
    assert!(matches!(
        Mpmc::<u64>::open_or_create(&name, 128),
        Err(Error::KindMismatch { .. })
    ));
}

/// This test crate's definitions of messages (another crate's `Quote` is
/// in tests/peer-crate): same layout, same type name, another path.
mod producer_crate {
    #[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
    #[bytemuck(crate = "shmring::bytemuck")]
    #[repr(C)]
    pub struct Quote {
        pub px: f64,
        pub qty: u32,
        pub venue: u32,
    }
}

mod consumer_crate {
    #[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
    #[bytemuck(crate = "shmring::bytemuck")]
    #[repr(C)]
    pub struct Quote {
        pub px: f64,
        pub qty: u32,
        pub venue: u32,
    }

    /// Same name, another layout.
    #[derive(Clone, Copy, Debug, PartialEq, shmring::Pod, shmring::Zeroable)]
    #[bytemuck(crate = "shmring::bytemuck")]
    #[repr(C)]
    pub struct Wide {
        pub px: f64,
        pub qty: u64,
        pub venue: u64,
    }
}

#[test]
fn the_same_struct_defined_in_two_crates_opens_the_same_ring() {
    let name = unique_name("two-crates");
    // A process of the other crate's type creates the ring and pushes.
    let mut cmd = child_command("peer-crate-producer");
    cmd.env("RING", &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut producer = ChildGuard::from(cmd.spawn().unwrap());
    assert_eq!(producer.first_line(), "ready");
    // This crate's own definition opens it.
    let ring = Spsc::<consumer_crate::Quote>::open(&name).unwrap();
    let got = ring.consumer().unwrap().try_pop().unwrap();
    assert_eq!((got.px, got.qty, got.venue), (101.5, 3, 7));
    assert_ne!(
        std::any::type_name::<peer_crate::Quote>(),
        std::any::type_name::<consumer_crate::Quote>(),
        "two different types"
    );
    // The header holds the schema in plain bytes, for a peer in C.
    let bytes = std::fs::read(shm_path(&name)).unwrap();
    let off = shmring::header_offsets::SCHEMA_NAME;
    assert_eq!(&bytes[off..off + 6], b"Quote\0");
    let len = shmring::header_offsets::SCHEMA_LEN;
    assert_eq!(&bytes[len..len + 4], &5u32.to_le_bytes());
    producer.close_stdin();
    producer.wait_success(TIMEOUT);
}

#[test]
fn a_type_or_schema_mismatch_names_both_sides() {
    use shmring::{OpenOptions, Schema};
    let name = unique_name("schema");
    let v1 = Schema::new("md.quote", 1).unwrap();
    let opts = shmring::CreateOptions::new().schema(v1);
    let _ring = Spsc::<producer_crate::Quote>::create_with(&name, 8, &opts).unwrap();
    // The type's own name no longer matches: the ring pinned a schema.
    let err = Spsc::<producer_crate::Quote>::open(&name).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{text}");
    assert!(
        text.contains("`md.quote` v1") && text.contains("`Quote` v0"),
        "{text}"
    );
    let v2 = OpenOptions::new().schema(Schema::new("md.quote", 2).unwrap());
    let text = Spsc::<producer_crate::Quote>::open_with(&name, &v2)
        .unwrap_err()
        .to_string();
    assert!(text.contains("v1") && text.contains("v2"), "{text}");
    let same = OpenOptions::new().schema(v1);
    assert!(Spsc::<consumer_crate::Quote>::open_with(&name, &same).is_ok());
    // Same schema, another layout: refused, with both sizes.
    let text = Spsc::<consumer_crate::Wide>::open_with(&name, &same)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("size 16") && text.contains("size 24"),
        "{text}"
    );
    let other = unique_name("schema-size");
    let _q = Spsc::<producer_crate::Quote>::create(&other, 8).unwrap();
    let text = Spsc::<consumer_crate::Wide>::open(&other)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`Quote` v0") && text.contains("`Wide` v0"),
        "{text}"
    );
    assert!(Schema::new("", 0).is_err() && Schema::new(&"x".repeat(33), 0).is_err());
}

#[test]
fn a_closed_ring_is_drained_then_closed_for_every_kind() {
    let timeout = Duration::from_secs(5);
    let name = unique_name("close-spsc");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(1).unwrap();
    tx.try_push(2).unwrap();
    tx.close();
    assert!(ring.is_closed());
    assert_eq!(rx.pop_timeout(timeout).unwrap(), 1);
    assert_eq!(rx.read_timeout(4, timeout).unwrap().read(0), 2);
    assert!(matches!(
        rx.pop_timeout(timeout),
        Err(RecvError::Closed { .. })
    ));
    assert!(matches!(
        rx.read_timeout(4, timeout),
        Err(RecvError::Closed { .. })
    ));
    // A restarted producer reopens the stream.
    let mut tx = ring.producer().unwrap();
    assert!(!ring.is_closed());
    tx.try_push(3).unwrap();
    assert_eq!(rx.pop_timeout(timeout).unwrap(), 3);
    assert!(matches!(
        rx.pop_timeout(Duration::ZERO),
        Err(RecvError::Timeout { .. })
    ));

    let name = unique_name("close-mpmc");
    let ring = Mpmc::<u64>::create(&name, 8).unwrap();
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(1).unwrap();
    tx.close();
    assert_eq!(rx.pop_timeout(timeout).unwrap(), 1);
    assert!(matches!(
        rx.read_timeout(timeout),
        Err(RecvError::Closed { .. })
    ));

    let name = unique_name("close-bytes");
    let ring = ByteRing::create(&name, 4096).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_send(b"end").unwrap();
    tx.close();
    assert_eq!(&*rx.recv_timeout(timeout).unwrap(), b"end");
    let err = rx.recv_timeout(timeout).unwrap_err();
    assert!(matches!(err, RecvError::Closed { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
}

#[test]
fn a_consumer_asleep_on_an_empty_ring_is_woken_by_the_close() {
    let name = unique_name("close-wakes");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(shmring::WaitStrategy::Sleep);
    let waiter = std::thread::spawn(move || rx.pop_timeout(TIMEOUT));
    std::thread::sleep(Duration::from_millis(50));
    tx.close();
    // Not woken, it would give Timeout after TIMEOUT.
    assert!(matches!(
        waiter.join().unwrap(),
        Err(RecvError::Closed { .. })
    ));
}

#[test]
fn a_dead_producer_counts_as_gone() {
    let name = unique_name("gone");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let mut cmd = child_command("hold-producer");
    cmd.env("RING", &name).stdout(Stdio::piped());
    let mut holder = ChildGuard::from(cmd.spawn().unwrap());
    holder.first_line();
    assert!(ring.has_producer(), "a live holder in another process");
    assert!(!ring.has_consumer());
    holder.kill(); // SIGKILL: no cleanup ran
    assert!(eventually(|| !ring.has_producer()), "a dead holder is gone");
    let mpmc = Mpmc::<u64>::create(&unique_name("gone-mpmc"), 8).unwrap();
    let tx = mpmc.producer().unwrap();
    assert!(mpmc.has_producer());
    drop(tx);
    assert!(!mpmc.has_producer());
}

#[test]
fn a_producer_service_killed_and_restarted_100_times_loses_and_duplicates_nothing() {
    let name = unique_name("restart");
    // A safety net for a failing run; the assertion below is the test.
    let _cleanup = Unlink(name.clone());
    let mut consumer = None;
    for trial in 0..100u64 {
        let (producer, _out) = start_service("producer-service", &name, None);
        if consumer.is_none() {
            // Started second, after the first producer created the ring.
            consumer = Some(start_service("consumer-service", &name, None));
        }
        let ring = Spsc::<u64>::open(&name).unwrap();
        let before = ring.pushed();
        // Every kill lands mid-stream: once this service is seen pushing
        // (however loaded the machine), 0 to 3 ms on, SIGKILL, so no
        // cleanup runs.
        assert!(
            eventually(|| ring.pushed() > before),
            "trial {trial}: the restarted service never streamed"
        );
        std::thread::sleep(Duration::from_micros(trial * 7919 % 3000));
        drop(ring);
        producer.kill();
    }
    let (producer, mut out) = start_service("producer-service", &name, Some(10_000));
    let end = report(&mut out, "end");
    producer.wait_success(TIMEOUT);
    let (consumer, mut got) = consumer.unwrap();
    assert_eq!(
        report(&mut got, "received"),
        end,
        "every value, once, in order"
    );
    consumer.wait_success(TIMEOUT);
    assert!(!exists(&name), "both services exited and the name stayed");
}

/// Whether `err` is a timeout of `op` on `name` that waited for `peer` and
/// says whether one was attached; its message names all of it.
/// The text of a timeout names the ring and the call, and says when the
/// peer it waited for was not attached.
fn names(text: &str, name: &str, op: &str, peer: Role, attached: bool) -> bool {
    let hint = format!("no {peer} is attached");
    text.contains(name) && text.contains(op) && text.contains(&hint) != attached
}

fn is_timeout(err: &RecvError, name: &str, op: &str, peer: Role, attached: bool) -> bool {
    matches!(err, RecvError::Timeout { name: n, op: o, peer: p, peer_attached: a, .. }
        if n == name && *o == op && *p == peer && *a == attached)
        && names(&err.to_string(), name, op, peer, attached)
}

fn is_send_timeout(err: &SendError, name: &str, op: &str, peer: Role, attached: bool) -> bool {
    matches!(err, SendError::Timeout { name: n, op: o, peer: p, peer_attached: a, .. }
        if n == name && *o == op && *p == peer && *a == attached)
        && names(&err.to_string(), name, op, peer, attached)
}

#[test]
fn timeouts_name_the_ring_the_call_and_a_missing_peer() {
    let t = Duration::from_millis(5);
    let spsc = Spsc::<u64>::create(&unique_name("err-spsc"), 1).unwrap();
    let mut tx = spsc.producer().unwrap();
    tx.try_push(1).unwrap();
    let full = tx.push_timeout(2, t).unwrap_err();
    assert!(
        is_send_timeout(
            full.cause(),
            spsc.name(),
            "push_timeout",
            Role::Consumer,
            false
        ),
        "{full}"
    );
    let mut rx = spsc.consumer().unwrap();
    let err = tx.reserve_timeout(1, t).unwrap_err();
    assert!(
        is_send_timeout(&err, spsc.name(), "reserve_timeout", Role::Consumer, true),
        "{err}"
    );
    rx.try_pop().unwrap();
    drop(tx);
    let err = rx.pop_timeout(t).unwrap_err();
    assert!(
        is_timeout(&err, spsc.name(), "pop_timeout", Role::Producer, false),
        "{err}"
    );

    let mpmc = Mpmc::<u64>::create(&unique_name("err-mpmc"), 1).unwrap();
    let rx = mpmc.consumer().unwrap();
    let err = rx.read_timeout(t).unwrap_err();
    assert!(
        is_timeout(&err, mpmc.name(), "read_timeout", Role::Producer, false),
        "{err}"
    );
    let tx = mpmc.producer().unwrap();
    tx.try_push(1).unwrap();
    let err = tx.reserve_timeout(t).unwrap_err();
    assert!(
        is_send_timeout(&err, mpmc.name(), "reserve_timeout", Role::Consumer, true),
        "{err}"
    );

    let bytes = ByteRing::create(&unique_name("err-bytes"), 64).unwrap();
    let mut tx = bytes.producer().unwrap();
    while tx.try_send(&[0; 16]).is_ok() {}
    let err = tx.send_timeout(&[0; 16], t).unwrap_err();
    assert!(
        is_send_timeout(&err, bytes.name(), "send_timeout", Role::Consumer, false),
        "{err}"
    );
    let mut rx = bytes.consumer().unwrap();
    while rx.try_recv().unwrap().is_some() {}
    let err = rx.recv_timeout(t).unwrap_err();
    assert!(
        is_timeout(&err, bytes.name(), "recv_timeout", Role::Producer, true),
        "{err}"
    );
}

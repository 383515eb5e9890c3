//! Ring A -> outbound bridge -> Zenoh over 127.0.0.1 -> inbound bridge ->
//! ring B, scouting off, explicit endpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, unique};
use shmring::ByteRing;
use shmring_bridge::{InOptions, Inbound, Link, OutOptions, Outbound};
use zenoh::Session;
use zenoh::Wait;

const PATIENCE: Duration = Duration::from_secs(60);

/// Message `i`: its number, then `i % 300` bytes of `i as u8`.
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.resize(8 + (i % 300) as usize, i as u8);
    m
}

/// Two peers over 127.0.0.1 (scouting off): one listens, one connects.
fn linked_sessions() -> (Session, Session) {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port());
    let open = |listen: Vec<String>, connect: Vec<String>| {
        Link {
            listen,
            connect,
            ..Link::default()
        }
        .open()
        .unwrap()
    };
    (
        open(vec![endpoint.clone()], vec![]),
        open(vec![], vec![endpoint]),
    )
}

#[test]
fn messages_cross_zenoh_once_in_order_byte_for_byte() {
    const N: u64 = 20_000;
    let (a, b) = linked_sessions();
    let (ring_a, ring_b, key) = (unique("a"), unique("b"), unique("key").replace('-', "/"));
    let source = ByteRing::create(&ring_a, 1 << 16).unwrap();
    let in_opts = InOptions {
        capacity: 1 << 16,
        full_wait: Duration::from_secs(5),
        state: None,
    };
    let mut inbound = Inbound::new(&b, &key, &ring_b, &in_opts).unwrap();
    let mut outbound = Outbound::new(&a, &ring_a, &key, &OutOptions::default()).unwrap();
    let sink = ByteRing::open(&ring_b).unwrap();
    let mut rx = sink.consumer().unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                outbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                inbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        // Zenoh delivers only once the peers have met: wait for a probe.
        let mut tx = source.producer().unwrap();
        let start = Instant::now();
        let mut i = 0;
        let mut got = 0;
        while got < N {
            assert!(start.elapsed() < PATIENCE, "stuck at {got} of {N}");
            if i < N && tx.try_send(&message(i)).is_ok() {
                i += 1;
            }
            while let Some(msg) = rx.try_recv().unwrap() {
                assert_eq!(&*msg, &message(got)[..], "message {got}");
                got += 1;
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    let stats = inbound.stats();
    assert_eq!(
        (stats.delivered, stats.lost, stats.duplicates),
        (N, 0, 0),
        "{stats:?}"
    );
    assert_eq!(outbound.stats().sent, N);
}

/// Typed rings cross as their values' bytes: an `Spsc<[u64; 4]>` on one
/// side feeds an `Mpmc<[u64; 4]>` on the other; a sample of another size
/// is dropped and counted malformed, never cut or padded into a value.
#[test]
fn typed_rings_cross_as_their_bytes_and_a_wrong_size_is_counted() {
    use shmring::{Mpmc, Spsc};
    const N: u64 = 20_000;
    let (a, b) = linked_sessions();
    let (ring_a, ring_b, key) = (unique("ta"), unique("tb"), unique("tkey").replace('-', "/"));
    let source = Spsc::<[u64; 4]>::create(&ring_a, 1024).unwrap();
    let sink = Mpmc::<[u64; 4]>::create(&ring_b, 1024).unwrap();
    let in_opts = InOptions {
        capacity: 1024,
        full_wait: Duration::from_secs(5),
        state: None,
    };
    let mut inbound = Inbound::mpmc::<[u64; 4]>(&b, &key, &ring_b, &in_opts).unwrap();
    let mut outbound =
        Outbound::spsc::<[u64; 4]>(&a, &ring_a, &key, &OutOptions::default()).unwrap();
    let rx = sink.consumer().unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                outbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                inbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        let mut tx = source.producer().unwrap();
        let start = Instant::now();
        let (mut i, mut got) = (0, 0);
        while got < N {
            assert!(start.elapsed() < PATIENCE, "stuck at {got} of {N}");
            if i < N && tx.try_push([i, !i, i * 3, 7]).is_ok() {
                i += 1;
            }
            while let Some(v) = rx.try_pop() {
                assert_eq!(v, [got, !got, got * 3, 7], "value {got}");
                got += 1;
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    let stats = inbound.stats();
    assert_eq!((stats.delivered, stats.lost, stats.malformed), (N, 0, 0));
    // A stranger's sample of the wrong size, on the same key.
    b.put(&key, vec![1u8; 31]).wait().unwrap();
    let start = Instant::now();
    while inbound.stats().malformed == 0 {
        assert!(start.elapsed() < PATIENCE, "never counted");
        inbound.pump(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(inbound.stats().unnumbered, 1);
    assert!(rx.try_pop().is_none(), "nothing written for it");
}

/// A request-reply service's requests cross as their bytes: a traced
/// request sent to service A arrives in service B's lane, where B's
/// server reads it as a request, its W3C `traceparent` intact (the reply
/// path back across hosts is not bridged: B's reply to a client it cannot
/// reach is dropped and counted).
#[test]
fn a_traced_request_crosses_with_its_trace_context() {
    use shmring::request_reply::Service;
    let (a, b) = linked_sessions();
    let (service_a, service_b, key) = (
        unique("rr-a"),
        unique("rr-b"),
        unique("key").replace('-', "/"),
    );
    let here = Service::open_or_create(&service_a, 1 << 16).unwrap();
    let in_opts = InOptions {
        capacity: 1 << 16,
        full_wait: Duration::from_secs(5),
        state: None,
    };
    // The outbound bridge serves A's lane 0: its consumer.
    let mut outbound = Outbound::new(&a, &service_a, &key, &OutOptions::default()).unwrap();
    let mut inbound = Inbound::new(&b, &key, &service_b, &in_opts).unwrap();
    let there = Service::open(&service_b).unwrap();
    let mut server = there.server().unwrap();
    let mut client = here.client(4096).unwrap();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let id = client.send_traced(b"work", trace, PATIENCE).unwrap();
    let done = AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                outbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                inbound.pump(Duration::from_millis(10)).unwrap();
            }
        });
        let request = server.recv_timeout(PATIENCE);
        let got = request.map(|r| {
            let seen = (
                r.client(),
                r.id(),
                r.traceparent().map(str::to_owned),
                r.payload().to_vec(),
            );
            r.reply_last(b"unreachable").unwrap();
            seen
        });
        done.store(true, Ordering::Relaxed);
        got
    });
    let got = got.unwrap();
    assert_eq!(
        got,
        (client.id(), id, Some(trace.to_owned()), b"work".to_vec())
    );
    assert_eq!(server.stats().to_dead_clients, 1);
}

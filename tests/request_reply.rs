//! Request-reply: correlation (a reply reaches only the client that
//! asked), streams, late replies dropped and counted, every request
//! answered or failed, back-pressure, and a dead client or server, each in
//! a process of its own, handled. Every event a test needs is made to
//! happen by construction (a child says when it holds what the test waits
//! for; a kill is then a kill at that moment).

#[macro_use]
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{arg, child_command, exists, unique_name, ChildGuard, Sweep};
use shmring::request_reply::{lane_ring_name, reply_ring_name, CallError, Failure, Service};

children!(child);

/// Long enough to mean "hung"; never reached by a passing test.
const PATIENCE: Duration = Duration::from_secs(30);

fn child(role: &str) {
    let service = Service::open(&arg::<String>("SERVICE")).unwrap();
    match role {
        // Serve one request: say so, then hang (until killed).
        "serve-and-hang" => {
            let mut server = service.server().unwrap();
            let _request = server.recv_timeout(PATIENCE).unwrap();
            println!("holding");
            std::thread::sleep(PATIENCE);
        }
        // Send a request and die without reading its reply.
        "ask-and-die" => {
            let mut client = service.client(4096).unwrap();
            client.send_timeout(b"for nobody", PATIENCE).unwrap();
            println!("{:016x}", client.id());
            // SAFETY: ends the process at once: no destructor releases
            // the client's reply ring, as a crash would not.
            unsafe { libc::_exit(0) };
        }
        // Send 100 requests, read the first reply, and die.
        "ask-many-read-one-and-die" => {
            let mut client = service.client(1 << 16).unwrap();
            for i in 0..300u64 {
                client.send_value(&i, PATIENCE).unwrap();
            }
            println!("{:016x}", client.id());
            // A reply, or a failure (a typed server's, to this untyped
            // client's ring of bytes).
            match client.recv_timeout(PATIENCE) {
                Ok(_) | Err(CallError::Failed { .. }) => {}
                Err(e) => panic!("{e}"),
            }
            // SAFETY: ends the process at once, as a crash would.
            unsafe { libc::_exit(0) };
        }
        // Echo every request with its client's ID, until killed.
        "echo-server" => {
            let mut server = service.server().unwrap();
            println!("serving");
            loop {
                let request = match server.recv_timeout(PATIENCE) {
                    Ok(r) => r,
                    Err(CallError::Timeout { .. }) => continue,
                    Err(e) => panic!("{e}"),
                };
                let mut echo = request.client().to_le_bytes().to_vec();
                echo.extend(request.payload());
                request.reply_last(&echo).unwrap();
            }
        }
        // Make calls until stdin closes, checking that each reply is this
        // call's; a call may fail (the server was killed), never be
        // answered wrong.
        "caller" => {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            let idempotent = std::env::var_os("IDEMPOTENT").is_some();
            let mut client = service.client(4096).unwrap();
            let me = client.id().to_le_bytes();
            let (mut answered, mut failed) = (0u64, 0u64);
            for i in 0u64.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let payload = [me, i.to_le_bytes()].concat();
                let call = if idempotent {
                    client.call_idempotent_timeout(&payload, PATIENCE)
                } else {
                    client.call_timeout(&payload, PATIENCE)
                };
                match call {
                    Ok(reply) => {
                        let p = reply.payload();
                        assert_eq!(&p[..8], &me, "another client's reply");
                        assert_eq!(&p[8..], &payload[..], "another request's reply");
                        answered += 1;
                    }
                    Err(CallError::ServerGone { .. } | CallError::Full { .. }) => {
                        failed += 1;
                        // No server for now: let the test start one.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("call {i}: {e}"),
                }
            }
            assert_eq!(client.outstanding(), 0);
            println!(
                "answered {answered} failed {failed} retried {}",
                client.stats().retried
            );
        }
        other => panic!("no child role {other}"),
    }
}

fn spawn(role: &str, service: &str) -> ChildGuard {
    let mut cmd = child_command(role);
    cmd.env("SERVICE", service).stdout(Stdio::piped());
    ChildGuard::from(cmd.spawn().unwrap())
}

#[test]
fn each_reply_reaches_the_client_that_asked() {
    let service = Service::open_or_create(&unique_name("rr-correlate"), 64 * 1024).unwrap();
    let mut server = service.server().unwrap();
    let mut a = service.client(4096).unwrap();
    let mut b = service.client(4096).unwrap();
    assert_ne!(a.id(), b.id());
    // Interleaved requests; the server answers each with its payload
    // doubled and the client's ID.
    let ids: Vec<(char, u64)> = (0..6)
        .map(|i| {
            let (who, c) = if i % 2 == 0 {
                ('a', &mut a)
            } else {
                ('b', &mut b)
            };
            (who, c.send_timeout(&[i as u8], PATIENCE).unwrap())
        })
        .collect();
    for _ in 0..6 {
        let request = server.recv_timeout(PATIENCE).unwrap();
        let mut answer = vec![request.payload()[0] * 2];
        answer.extend(request.client().to_le_bytes());
        request.reply_last(&answer).unwrap();
    }
    for (who, client) in [('a', &mut a), ('b', &mut b)] {
        let me = client.id();
        let mut got = Vec::new();
        for _ in 0..3 {
            let reply = client.recv_timeout(PATIENCE).unwrap();
            assert!(reply.is_last());
            let p = reply.payload();
            assert_eq!(u64::from_le_bytes(p[1..9].try_into().unwrap()), me);
            got.push((reply.id(), p[0]));
        }
        let want: Vec<(u64, u8)> = ids
            .iter()
            .enumerate()
            .filter(|(_, (w, _))| *w == who)
            .map(|(i, (_, id))| (*id, i as u8 * 2))
            .collect();
        assert_eq!(got, want, "client {who}");
        assert_eq!(client.outstanding(), 0);
    }
    assert_eq!(server.stats().replies, 6);
}

#[test]
fn a_stream_ends_with_its_last_reply_and_a_dropped_request_fails() {
    let service = Service::open_or_create(&unique_name("rr-stream"), 64 * 1024).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    let streamed = client.send_timeout(b"count to 3", PATIENCE).unwrap();
    let dropped = client.send_timeout(b"ignored", PATIENCE).unwrap();
    {
        let mut request = server.recv_timeout(PATIENCE).unwrap();
        request.reply(b"1").unwrap();
        request.reply(b"2").unwrap();
        request.reply_last(b"3").unwrap();
    }
    // Let go without a reply: answered NoReply for it.
    drop(server.recv_timeout(PATIENCE).unwrap());
    let mut got = Vec::new();
    loop {
        let reply = client.recv_timeout(PATIENCE).unwrap();
        assert_eq!(reply.id(), streamed);
        got.push(reply.payload().to_vec());
        if reply.is_last() {
            break;
        }
    }
    assert_eq!(got, [b"1", b"2", b"3"]);
    match client.recv_timeout(PATIENCE) {
        Err(CallError::Failed { id, why, .. }) => {
            assert_eq!((id, why), (dropped, Failure::NoReply));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.outstanding(), 0);
    assert_eq!(server.stats().unanswered, 1);
}

#[test]
fn a_late_reply_to_a_cancelled_request_is_dropped_and_counted() {
    let service = Service::open_or_create(&unique_name("rr-late"), 64 * 1024).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    let first = client.send_timeout(b"slow", PATIENCE).unwrap();
    client.cancel(first);
    let second = client.send_timeout(b"fast", PATIENCE).unwrap();
    for _ in 0..2 {
        let request = server.recv_timeout(PATIENCE).unwrap();
        let answer = request.payload().to_vec();
        request.reply_last(&answer).unwrap();
    }
    let reply = client.recv_timeout(PATIENCE).unwrap();
    assert_eq!((reply.id(), reply.payload()), (second, &b"fast"[..]));
    drop(reply);
    assert_eq!(client.stats().late, 1);
    // A call that times out gives its request up the same way.
    match client.call_timeout(b"never answered", Duration::ZERO) {
        Err(CallError::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(client.outstanding(), 0);
}

#[test]
fn a_full_request_ring_pushes_back_with_a_clear_error() {
    let service = Service::open_or_create(&unique_name("rr-full"), 4096).unwrap();
    let _server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    let mut sent = 0;
    let err = loop {
        match client.send_timeout(&[0; 200], Duration::ZERO) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "a 4 KiB ring never filled");
    };
    assert!(sent > 0);
    assert!(matches!(err, CallError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains(service.name()), "{err}");
}

#[test]
fn a_message_without_the_header_is_refused_and_the_next_served() {
    let name = unique_name("rr-malformed");
    let service = Service::open_or_create(&name, 4096).unwrap();
    let mut server = service.server().unwrap();
    let ring = shmring::ByteRing::open(&name).unwrap();
    ring.producer().unwrap().try_send(b"not a request").unwrap();
    let mut client = service.client(4096).unwrap();
    let id = client.send_timeout(b"ok", PATIENCE).unwrap();
    match server.recv_timeout(PATIENCE) {
        Err(CallError::Malformed { what, len, .. }) => assert_eq!((what, len), ("request", 13)),
        other => panic!("{other:?}"),
    }
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert_eq!(request.id(), id);
    request.reply_last(b"").unwrap();
    assert_eq!(client.recv_timeout(PATIENCE).unwrap().id(), id);
}

#[test]
fn a_dead_server_ends_the_wait_with_server_gone_not_a_timeout() {
    let name = unique_name("rr-dead-server");
    let service = Service::open_or_create(&name, 4096).unwrap();
    let mut client = service.client(4096).unwrap();
    // No server yet: said at once.
    let early = client.send_timeout(b"early", PATIENCE).unwrap();
    match client.recv_timeout(PATIENCE) {
        Err(CallError::ServerGone {
            outstanding: 1,
            stranded,
            ..
        }) => assert_eq!(stranded, [early]),
        other => panic!("{other:?}"),
    }
    let mut server = spawn("serve-and-hang", &name);
    assert_eq!(server.first_line(), "holding");
    assert!(service.has_server());
    server.kill();
    // The kill is done: the next slice sees no server, whatever the
    // scheduler does, long before PATIENCE.
    match client.recv_timeout(PATIENCE) {
        Err(e @ CallError::ServerGone { .. }) => {
            assert!(e.to_string().contains(&name), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The request is still there for a server started again, which
    // answers it: at least once.
    let mut again = service.server().unwrap();
    let request = again.recv_timeout(PATIENCE).unwrap();
    assert_eq!(request.payload(), b"early");
    request.reply_last(b"late but there").unwrap();
    assert_eq!(
        client.recv_timeout(PATIENCE).unwrap().payload(),
        b"late but there"
    );
}

#[test]
fn replies_to_a_dead_client_are_dropped_counted_and_its_ring_goes() {
    let name = unique_name("rr-dead-client");
    let service = Service::open_or_create(&name, 4096).unwrap();
    let mut server = service.server().unwrap();
    let mut asker = spawn("ask-and-die", &name);
    let id = u64::from_str_radix(&asker.first_line(), 16).unwrap();
    asker.wait_success(PATIENCE);
    let reply_ring = reply_ring_name(&name, id);
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert_eq!(request.client(), id);
    request.reply_last(b"to the void").unwrap();
    let stats = server.stats();
    assert_eq!((stats.to_dead_clients, stats.replies), (1, 0), "{stats:?}");
    // The server let the ring go, and with it went its name.
    assert!(
        common::eventually(|| !exists(&reply_ring)),
        "{reply_ring} stayed"
    );
}

#[test]
fn a_trace_context_crosses_checked_on_both_sides() {
    let name = unique_name("rr-trace");
    let service = Service::open_or_create(&name, 4096).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let id = client.send_traced(b"work", trace, PATIENCE).unwrap();
    // Not a traceparent: refused before anything is sent.
    for bad in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        match client.send_traced(b"work", bad, PATIENCE) {
            Err(CallError::BadTraceparent { value, .. }) => assert_eq!(value, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(client.stats().sent, 1);
    let plain = client.send_timeout(b"plain", PATIENCE).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert_eq!(
        (request.id(), request.traceparent(), request.payload()),
        (id, Some(trace), &b"work"[..])
    );
    drop(request);
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert_eq!(
        (request.id(), request.traceparent(), request.payload()),
        (plain, None, &b"plain"[..])
    );
    drop(request);
    // A peer that flags a trace context it does not carry is refused.
    let mut forged = b"shRQ".to_vec();
    forged.extend(1u32.to_le_bytes());
    forged.extend(client.id().to_le_bytes());
    forged.extend(99u64.to_le_bytes());
    forged.extend(b"00-not-a-trace-context-at-all-but-fifty-five-bytes-long");
    let ring = shmring::ByteRing::open(&name).unwrap();
    ring.producer().unwrap().try_send(&forged).unwrap();
    assert!(matches!(
        server.recv_timeout(PATIENCE),
        Err(CallError::Malformed {
            what: "request",
            ..
        })
    ));
}

#[test]
fn values_cross_as_their_bytes_and_a_wrong_size_is_an_error() {
    let service = Service::open_or_create(&unique_name("rr-values"), 4096).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    client.send_value(&[6u64, 7], PATIENCE).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert!(matches!(
        request.value::<u64>(),
        Err(CallError::WrongSize {
            len: 16,
            expected: 8,
            ..
        })
    ));
    let [a, b] = request.value::<[u64; 2]>().unwrap();
    request.reply_value_last(&(a * b)).unwrap();
    assert_eq!(
        client
            .recv_timeout(PATIENCE)
            .unwrap()
            .value::<u64>()
            .unwrap(),
        42
    );
}

/// Servers and clients SIGKILLed while calls are in flight: every call is
/// answered with its own reply or fails with an error its client sees
/// (the callers check each reply against the request, and panic on any
/// other outcome), and every surviving caller finishes.
#[test]
fn servers_and_clients_killed_mid_call_never_misdeliver() {
    let name = unique_name("rr-chaos");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 16 * 1024).unwrap();
    let spawn_caller = || {
        let mut cmd = child_command("caller");
        cmd.env("SERVICE", &name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        ChildGuard::from(cmd.spawn().unwrap())
    };
    let mut callers: Vec<ChildGuard> = (0..3).map(|_| spawn_caller()).collect();
    let mut victim = spawn_caller();
    let mut server = spawn("echo-server", &name);
    assert_eq!(server.first_line(), "serving");
    // Chaos: kill the server (and a client, once) at pseudo-random
    // moments, a new server after each; the invariants hold whatever the
    // moments are.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(5 + x % 40));
        server.kill();
        // Longer than a waiting client's look for a live server: calls
        // in flight fail now (most of the time; the invariants hold either
        // way), where a quick restart would answer them again.
        std::thread::sleep(Duration::from_millis(20));
        if round == 3 {
            victim.kill();
            victim = spawn_caller();
        }
        server = spawn("echo-server", &name);
        assert_eq!(server.first_line(), "serving");
    }
    victim.kill();
    let mut answered = 0;
    for mut caller in callers.drain(..) {
        caller.close_stdin();
        let said = caller.first_line();
        let n: u64 = said
            .strip_prefix("answered ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{said}"));
        answered += n;
        caller.wait_success(PATIENCE);
    }
    // The last server ran while they called: calls were answered.
    assert!(answered > 0);
    server.kill();
    drop(service);
}

/// A client that dies after the server wrote to it: the server trusts it
/// for 256 more replies (asking the kernel costs more than a round trip),
/// then finds it dead, drops and counts the rest, and lets its ring go.
#[test]
fn a_client_dead_after_a_reply_takes_at_most_256_more() {
    dead_client_takes_at_most_256_more(false);
}

/// The same when every reply is a failure: a client of another reply
/// type (an untyped client of a typed service) hears `WrongType`, 256
/// times more at most once it is dead.
#[test]
fn a_dead_client_of_another_reply_type_takes_at_most_256_more_failures() {
    dead_client_takes_at_most_256_more(true);
}

fn dead_client_takes_at_most_256_more(typed: bool) {
    let name = unique_name("rr-dies-later");
    let service = if typed {
        Service::open_or_create_typed::<u64, u64>(&name, 1 << 16)
    } else {
        Service::open_or_create(&name, 1 << 16)
    }
    .unwrap();
    let mut server = service.server().unwrap();
    let mut asker = spawn("ask-many-read-one-and-die", &name);
    let id = u64::from_str_radix(&asker.first_line(), 16).unwrap();
    // To the typed service's untyped client: a failure, and an error here.
    let answered = |r: Result<(), CallError>, dropped: bool| match r {
        Ok(()) if !typed || dropped => {}
        Err(CallError::Ring(shmring::Error::TypeMismatch { .. })) if typed => {}
        other => panic!("{other:?}"),
    };
    answered(
        server.recv_timeout(PATIENCE).unwrap().reply_last(b"first"),
        false,
    );
    asker.wait_success(PATIENCE);
    for _ in 1..300 {
        let request = server.recv_timeout(PATIENCE).unwrap();
        answered(request.reply_last(b"late"), true);
    }
    let stats = server.stats();
    assert_eq!(
        (stats.replies, stats.to_dead_clients),
        (1 + 256, 299 - 256),
        "{stats:?}"
    );
    let reply_ring = reply_ring_name(&name, id);
    assert!(
        common::eventually(|| !exists(&reply_ring)),
        "{reply_ring} stayed"
    );
}

/// A request whose header names its client but carries a flag the server
/// does not know fails at its client, not by its timeout; a reply too
/// large for the client's ring fails there too.
#[test]
fn a_refused_request_and_an_oversized_reply_fail_at_the_client() {
    let name = unique_name("rr-refused");
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    // A request from this client, as a newer one would flag it.
    let mut future = b"shRQ".to_vec();
    future.extend(0x80u32.to_le_bytes());
    future.extend(client.id().to_le_bytes());
    future.extend(1u64.to_le_bytes());
    let ring = shmring::ByteRing::open(&name).unwrap();
    ring.producer().unwrap().try_send(&future).unwrap();
    // The client waits for number 1 (its first request), which the
    // forged one claims to be.
    let id = client.send_timeout(b"real", PATIENCE).unwrap();
    assert_eq!(id, 1);
    assert!(matches!(
        server.recv_timeout(PATIENCE),
        Err(CallError::Malformed {
            what: "request",
            ..
        })
    ));
    match client.recv_timeout(PATIENCE) {
        Err(CallError::Failed { id: 1, why, .. }) => assert_eq!(why, Failure::Malformed),
        other => panic!("{other:?}"),
    }
    // The real request: its reply cannot fit a 4 KiB ring.
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert!(request.reply_last(&[0; 8192]).is_err());
    let id2 = client.send_timeout(b"again", PATIENCE).unwrap();
    drop(server.recv_timeout(PATIENCE).unwrap()); // NoReply
    match client.recv_timeout(PATIENCE) {
        // Number 1 is done (failed above): its too-large failure is late.
        Err(CallError::Failed { id, why, .. }) => assert_eq!((id, why), (id2, Failure::NoReply)),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.stats().late, 1);
}

/// Several servers share a service, a lane each: a client's requests go
/// to the lane with the fewest bytes waiting, idle servers taking turns,
/// and every reply still reaches the client that asked.
#[test]
fn servers_share_the_work_a_lane_each() {
    let name = unique_name("rr-lanes");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut servers = [service.server().unwrap(), service.server().unwrap()];
    assert_eq!([servers[0].lane(), servers[1].lane()], [0, 1]);
    assert!(exists(&lane_ring_name(&name, 1)));
    let (mut a, mut b) = (
        service.client(1 << 16).unwrap(),
        service.client(1 << 16).unwrap(),
    );
    // Nothing read between sends: each goes to the shorter queue, so the
    // lanes alternate.
    let mut sent = Vec::new();
    for i in 0..10u64 {
        let client = if i % 3 == 0 { &mut b } else { &mut a };
        sent.push((client.id(), client.send_value(&i, PATIENCE).unwrap(), i));
    }
    let mut served = [0, 0];
    for (lane, server) in servers.iter_mut().enumerate() {
        while let Ok(request) = server.recv_timeout(Duration::ZERO) {
            served[lane] += 1;
            let value: u64 = request.value().unwrap();
            request.reply_value_last(&(value * 10)).unwrap();
        }
    }
    assert_eq!(served, [5, 5]);
    for client in [&mut a, &mut b] {
        let mut got = std::collections::BTreeMap::new();
        while client.outstanding() > 0 {
            let reply = client.recv_timeout(PATIENCE).unwrap();
            got.insert(reply.id(), reply.value::<u64>().unwrap());
        }
        let want: std::collections::BTreeMap<u64, u64> = sent
            .iter()
            .filter(|&&(asker, ..)| asker == client.id())
            .map(|&(_, id, value)| (id, value * 10))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!((a.outstanding(), b.outstanding()), (0, 0));
    // A third server takes the next lane; lane 0's, once gone, is taken
    // again first.
    let third = service.server().unwrap();
    assert_eq!(third.lane(), 2);
    let [first, _second] = servers;
    drop(first);
    assert_eq!(service.server().unwrap().lane(), 0);
}

/// An idempotent request sent again (under a new number on the wire)
/// whose second server goes too, with no other lane served: `ServerGone`
/// names it by the number its sender knows, not the wire's.
#[test]
fn a_request_stranded_after_it_was_sent_again_is_named_as_its_sender_knows_it() {
    let name = unique_name("rr-stranded-again");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut hanging = spawn("serve-and-hang", &name);
    let mut client = service.client(1 << 16).unwrap();
    let id = client.send_idempotent(b"again", PATIENCE).unwrap();
    assert_eq!(hanging.first_line(), "holding");
    let second = service.server().unwrap();
    assert_eq!(second.lane(), 1);
    hanging.kill();
    // Lane 0's server is dead: the request goes to lane 1, under a new
    // number, and nothing is stranded.
    client.check_servers().unwrap();
    assert_eq!(client.stats().retried, 1);
    drop(second);
    match client.check_servers() {
        Err(CallError::ServerGone {
            outstanding: 1,
            stranded,
            ..
        }) => assert_eq!(stranded, [id]),
        other => panic!("{other:?}"),
    }
}

/// A server killed holding an idempotent request: its client sends it
/// again, under a new number, to the server of another lane, and the wait
/// goes on; a request that is not idempotent ends the wait with
/// `ServerGone`. A server started again on the dead lane serves both (at
/// least once): the old number's reply is late, dropped and counted.
#[test]
fn an_idempotent_request_goes_to_another_server_when_its_own_dies() {
    let name = unique_name("rr-retry");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut hanging = spawn("serve-and-hang", &name);
    let mut client = service.client(1 << 16).unwrap();
    // No other lane yet: both go to lane 0, whose server takes the first.
    let retried = client.send_idempotent(b"again", PATIENCE).unwrap();
    let stranded = client.send_timeout(b"once", PATIENCE).unwrap();
    assert_eq!(hanging.first_line(), "holding");
    let mut other = service.server().unwrap();
    assert_eq!(other.lane(), 1);
    hanging.kill();
    // The kill is done: the client's next slice finds lane 0 dead.
    let reply = std::thread::scope(|s| {
        let served = s.spawn(|| {
            let request = other.recv_timeout(PATIENCE).unwrap();
            assert_eq!(request.payload(), b"again");
            assert!(request.is_idempotent());
            request.reply_last(b"from lane 1").unwrap();
        });
        let reply = loop {
            match client.recv_timeout(PATIENCE) {
                Ok(reply) => break (reply.id(), reply.payload().to_vec()),
                // The other request is stranded on lane 0: said each time
                // a slice passes without a reply.
                Err(CallError::ServerGone {
                    outstanding: 1,
                    stranded: ids,
                    ..
                }) => assert_eq!(ids, [stranded]),
                Err(e) => panic!("{e}"),
            }
        };
        served.join().unwrap();
        reply
    });
    assert_eq!(reply, (retried, b"from lane 1".to_vec()));
    assert_eq!((client.stats().retried, client.outstanding()), (1, 1));
    // Lane 0 again: its new server serves what the dead one held.
    let mut again = service.server().unwrap();
    assert_eq!(again.lane(), 0);
    for payload in [&b"again"[..], b"once"] {
        let request = again.recv_timeout(PATIENCE).unwrap();
        assert_eq!(request.payload(), payload);
        request.reply_last(payload).unwrap();
    }
    let reply = client.recv_timeout(PATIENCE).unwrap();
    assert_eq!((reply.id(), reply.payload()), (stranded, &b"once"[..]));
    drop(reply);
    assert_eq!((client.stats().late, client.outstanding()), (1, 0));
}

/// Two servers, each SIGKILLed in turn while idempotent calls are in
/// flight, the other alive meanwhile: every call is answered, with its
/// own reply; none fails.
#[test]
fn idempotent_calls_survive_servers_killed_in_turn() {
    let name = unique_name("rr-chaos-retry");
    let _sweep = Sweep(name.clone());
    let _service = Service::open_or_create(&name, 16 * 1024).unwrap();
    let mut servers = vec![spawn("echo-server", &name), spawn("echo-server", &name)];
    for server in &mut servers {
        assert_eq!(server.first_line(), "serving");
    }
    let mut callers: Vec<ChildGuard> = (0..3)
        .map(|_| {
            let mut cmd = child_command("caller");
            cmd.env("SERVICE", &name)
                .env("IDEMPOTENT", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            ChildGuard::from(cmd.spawn().unwrap())
        })
        .collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(5 + x % 40));
        // One at a time: the other serves meanwhile.
        servers.remove(round % 2).kill();
        let mut server = spawn("echo-server", &name);
        assert_eq!(server.first_line(), "serving");
        servers.insert(round % 2, server);
    }
    let (mut answered, mut retried) = (0, 0);
    for mut caller in callers.drain(..) {
        caller.close_stdin();
        let said = caller.first_line();
        let words: Vec<&str> = said.split(' ').collect();
        match words[..] {
            ["answered", a, "failed", "0", "retried", r] => {
                answered += a.parse::<u64>().unwrap();
                retried += r.parse::<u64>().unwrap();
            }
            _ => panic!("a caller said {said:?}"),
        }
        caller.wait_success(PATIENCE);
    }
    assert!(answered > 0);
    eprintln!("{answered} calls answered, {retried} sent again");
    for server in servers {
        server.kill();
    }
}

/// A typed service's rings record its request and reply types: an opener
/// of another request type is refused, naming both; a client of another
/// reply type gets each request failed `WrongType`, and its server an
/// error naming the client's ring; a plain open still reads the bytes.
#[test]
fn a_typed_service_refuses_other_types_with_errors_naming_both() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Order {
        price: u64,
        qty: u32,
        side: u32,
    }
    let name = unique_name("rr-typed");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create_typed::<Order, u64>(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    let mut client = Service::open_typed::<Order, u64>(&name)
        .unwrap()
        .client(4096)
        .unwrap();
    let order = Order {
        price: 101,
        qty: 3,
        side: 1,
    };
    client.send_value(&order, PATIENCE).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap();
    let got: Order = request.value().unwrap();
    request
        .reply_value_last(&(got.price * u64::from(got.qty)))
        .unwrap();
    assert_eq!(
        client
            .recv_timeout(PATIENCE)
            .unwrap()
            .value::<u64>()
            .unwrap(),
        303
    );
    // Another request type: refused at open, naming the ring and both.
    match Service::open_typed::<[u64; 2], u64>(&name) {
        Err(e @ shmring::Error::TypeMismatch { .. }) => {
            let said = e.to_string();
            assert!(said.contains(&name) && said.contains("Order"), "{said}");
        }
        other => panic!("{other:?}"),
    }
    // Another reply type: the lanes match, the reply ring does not.
    let mut wrong = Service::open_typed::<Order, u32>(&name)
        .unwrap()
        .client(4096)
        .unwrap();
    wrong.send_value(&order, PATIENCE).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap();
    match request.reply_value_last(&7u64) {
        Err(CallError::Ring(e @ shmring::Error::TypeMismatch { .. })) => {
            assert!(e.to_string().contains(&reply_ring_name(&name, wrong.id())));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        wrong.recv_timeout(PATIENCE),
        Err(CallError::Failed {
            why: Failure::WrongType,
            ..
        })
    ));
    // Bytes: a plain open reads a typed service (to inspect or bridge
    // it); its client's calls fail, their ring holding bytes.
    let mut plain = Service::open(&name).unwrap().client(4096).unwrap();
    plain.send_timeout(b"not an order", PATIENCE).unwrap();
    drop(server.recv_timeout(PATIENCE).unwrap().reply_last(b"x"));
    assert!(matches!(
        plain.recv_timeout(PATIENCE),
        Err(CallError::Failed {
            why: Failure::WrongType,
            ..
        })
    ));
}

/// What operators see (`shmring::inspect_service`, which `shmring stat`
/// and the metrics show): servers by lane, clients alive and dead, what
/// each side counted, requests outstanding; a lane's counts go on from
/// its last server's when another takes it.
#[test]
fn operators_see_servers_clients_counts_and_outstanding_requests() {
    let name = unique_name("rr-inspect");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut first = service.server().unwrap();
    let mut asker = spawn("ask-and-die", &name);
    let dead = u64::from_str_radix(&asker.first_line(), 16).unwrap();
    asker.wait_success(PATIENCE);
    let mut client = service.client(1 << 16).unwrap();
    let given_up = client.send_timeout(b"given up", PATIENCE).unwrap();
    client.cancel(given_up);
    let waited_for = client.send_timeout(b"waited for", PATIENCE).unwrap();
    let info = shmring::inspect_service(&name).unwrap();
    assert_eq!((info.servers(), info.lanes.len()), (1, 1));
    let ids: Vec<u64> = info.clients.iter().map(|(id, _)| *id).collect();
    let mut want = vec![dead, client.id()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(info.dead_clients(), 1);
    // The live client's: the dead one's does not count.
    assert_eq!(info.outstanding(), 1);
    assert_eq!(info.client_totals().sent, 3);
    assert!(info.lanes[0].1.fill() > 0);
    // The first server answers the dead client (dropped), then goes; the
    // next on lane 0 answers the rest, its counts added to the first's.
    first
        .recv_timeout(PATIENCE)
        .unwrap()
        .reply_last(b"x")
        .unwrap();
    drop(first);
    let mut again = service.server().unwrap();
    assert_eq!(again.lane(), 0);
    for _ in 0..2 {
        again
            .recv_timeout(PATIENCE)
            .unwrap()
            .reply_last(b"y")
            .unwrap();
    }
    assert_eq!(client.recv_timeout(PATIENCE).unwrap().id(), waited_for);
    let _second = service.server().unwrap();
    let info = shmring::inspect_service(&name).unwrap();
    assert_eq!((info.servers(), info.lanes.len()), (2, 2));
    assert_eq!((info.clients.len(), info.dead_clients()), (1, 0));
    assert_eq!(info.outstanding(), 0);
    let (counts, _) = info.clients[0].1.client_counts;
    assert_eq!((counts.sent, counts.replies, counts.late), (2, 1, 1));
    let lane = info.lanes[0].1.server_counts;
    assert_eq!(
        (lane.requests, lane.replies, lane.to_dead_clients),
        (3, 2, 1)
    );
}

/// A lane whose ring went (no handle left) does not hide a later lane
/// that serves: a new client finds it, and the service has a server.
#[test]
fn a_lane_gone_does_not_hide_the_lanes_after_it() {
    let name = unique_name("rr-gap");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let (first, second) = (service.server().unwrap(), service.server().unwrap());
    let mut third = service.server().unwrap();
    assert_eq!(third.lane(), 2);
    // Lane 1's ring goes with its server (no client holds it); lane 0's
    // server goes too: only lane 2 serves.
    drop(second);
    assert!(!exists(&lane_ring_name(&name, 1)));
    drop(first);
    assert!(service.has_server());
    let mut client = service.client(4096).unwrap();
    client.send_timeout(b"to lane 2", PATIENCE).unwrap();
    let request = third.recv_timeout(PATIENCE).unwrap();
    assert_eq!(request.payload(), b"to lane 2");
    request.reply_last(b"ok").unwrap();
    assert_eq!(client.recv_timeout(PATIENCE).unwrap().payload(), b"ok");
}

/// A client of a build before the 8-byte reply header (its ring says
/// nothing of it) gets the 16-byte header it reads.
#[test]
fn a_client_of_an_earlier_build_gets_the_reply_header_it_reads() {
    let name = unique_name("rr-legacy-client");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    // What such a client does: a plain ring of its own, a request by hand.
    let id = 0x5eed_u64;
    let ring = shmring::ByteRing::create(&reply_ring_name(&name, id), 4096).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut request = b"shRQ".to_vec();
    request.extend(0u32.to_le_bytes());
    request.extend(id.to_le_bytes());
    request.extend(7u64.to_le_bytes());
    request.extend(b"hi");
    let lane = shmring::ByteRing::open(&name).unwrap();
    lane.producer().unwrap().try_send(&request).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap();
    assert_eq!((request.client(), request.id()), (id, 7));
    request.reply_last(b"ok").unwrap();
    let mut expected = b"shRP".to_vec();
    expected.extend(1u32.to_le_bytes());
    expected.extend(7u64.to_le_bytes());
    expected.extend(b"ok");
    assert_eq!(&*rx.recv_timeout(PATIENCE).unwrap(), &expected[..]);
    // The word the server went by: 0 in that ring, 1 in this build's.
    let format = |ring: &str| {
        use std::os::unix::fs::FileExt;
        let mut word = [0; 8];
        let at = shmring::header_offsets::SERVICE_REPLY_FORMAT as u64;
        let file = std::fs::File::open(common::shm_path(ring)).unwrap();
        file.read_exact_at(&mut word, at).unwrap();
        u64::from_le_bytes(word)
    };
    assert_eq!(format(&reply_ring_name(&name, id)), 0);
    let mut client = service.client(4096).unwrap();
    assert_eq!(format(&reply_ring_name(&name, client.id())), 1);
    // What each got: a 48-byte record there (16 of framing, a 16-byte
    // header and "ok" padded to 32), a 32-byte one here (an 8-byte header).
    assert_eq!(ring.bytes_written(), 48);
    client.send_timeout(b"hi", PATIENCE).unwrap();
    server
        .recv_timeout(PATIENCE)
        .unwrap()
        .reply_last(b"ok")
        .unwrap();
    assert_eq!(client.recv_timeout(PATIENCE).unwrap().payload(), b"ok");
    let mine = shmring::ByteRing::open(&reply_ring_name(&name, client.id())).unwrap();
    assert_eq!(mine.bytes_written(), 32);
}

/// A failed reply ends its request even when not marked last (a server
/// of another build, or a hostile one): the next call is not refused.
/// Written with the 16-byte header of a server of an earlier build, which
/// this build's clients still read.
#[test]
fn a_failed_reply_ends_its_request_marked_last_or_not() {
    let name = unique_name("rr-failed-not-last");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    let mut client = service.client(4096).unwrap();
    let id = client.send_timeout(b"x", PATIENCE).unwrap();
    let mut request = server.recv_timeout(PATIENCE).unwrap();
    request.reply(b"part").unwrap();
    // Written by hand: FAILED (2) without LAST (1), code NoReply.
    let ring = shmring::ByteRing::open(&reply_ring_name(&name, client.id())).unwrap();
    let mut forged = b"shRP".to_vec();
    forged.extend(2u32.to_le_bytes());
    forged.extend(id.to_le_bytes());
    forged.extend(1u32.to_le_bytes());
    ring.producer().unwrap().try_send(&forged).unwrap();
    assert_eq!(client.recv_timeout(PATIENCE).unwrap().payload(), b"part");
    assert!(matches!(
        client.recv_timeout(PATIENCE),
        Err(CallError::Failed {
            why: Failure::NoReply,
            ..
        })
    ));
    assert_eq!(client.outstanding(), 0);
    // The server's own failure (NoReply, as it lets the request go) is
    // late now.
    drop(request);
    assert!(matches!(
        client.recv_timeout(Duration::ZERO),
        Err(CallError::Timeout { .. })
    ));
    assert_eq!(client.stats().late, 1);
}

/// A server started from a plain open of a typed service makes its lane
/// of the service's type, so typed clients use it.
#[test]
fn a_plain_opens_server_keeps_a_typed_services_lanes_typed() {
    let name = unique_name("rr-typed-lane");
    let _sweep = Sweep(name.clone());
    let typed = Service::open_or_create_typed::<u64, u64>(&name, 1 << 16).unwrap();
    let _first = typed.server().unwrap();
    let mut second = Service::open(&name).unwrap().server().unwrap();
    assert_eq!(second.lane(), 1);
    let mut client = typed.client(4096).unwrap();
    // Two requests: one to each lane (idle servers take turns).
    client.send_value(&1u64, PATIENCE).unwrap();
    client.send_value(&2u64, PATIENCE).unwrap();
    let request = second.recv_timeout(PATIENCE).unwrap();
    assert_eq!(request.value::<u64>().unwrap(), 2);
}

/// What a lane's header shows is what its server counted, every counter:
/// each path that counts shows its count (operators read the header).
#[test]
fn the_header_shows_every_count_of_the_server() {
    let name = unique_name("rr-shown");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    server.set_reply_wait(Duration::ZERO);
    let mut client = service.client(4096).unwrap();
    let mut full = service.client(4096).unwrap();
    let mut gone = service.client(4096).unwrap();
    // Answered; let go unanswered (NoReply); to a client gone; to a ring
    // left full, until one is dropped.
    client.send_timeout(b"answered", PATIENCE).unwrap();
    client.send_timeout(b"let go", PATIENCE).unwrap();
    gone.send_timeout(b"for nobody", PATIENCE).unwrap();
    drop(gone);
    for _ in 0..4 {
        full.send_timeout(b"fill", PATIENCE).unwrap();
    }
    let request = server.recv_timeout(PATIENCE).unwrap();
    request.reply_last(b"yes").unwrap();
    drop(server.recv_timeout(PATIENCE).unwrap());
    let request = server.recv_timeout(PATIENCE).unwrap();
    request.reply_last(b"late").unwrap();
    for _ in 0..4 {
        let request = server.recv_timeout(PATIENCE).unwrap();
        request.reply_last(&[7; 1500]).unwrap();
    }
    let counted = server.stats();
    assert!(
        counted.replies > 0
            && counted.unanswered == 1
            && counted.to_dead_clients == 1
            && counted.dropped_full > 0,
        "{counted:?}"
    );
    let shown = shmring::inspect_service(&name).unwrap().server_totals();
    assert_eq!(shown, counted);
    drop(full);
}

/// A server that lets go of one client's ring (found dead when full)
/// still answers every other client in its own ring: the rings it holds
/// move, the replies do not.
#[test]
fn replies_after_a_client_is_let_go_still_reach_their_own_clients() {
    let name = unique_name("rr-let-go");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    server.set_reply_wait(Duration::ZERO);
    let mut first = service.client(4096).unwrap();
    let mut clients: Vec<_> = (0..3).map(|_| service.client(4096).unwrap()).collect();
    // Every client's ring opened, the first's before the others'.
    first.send_timeout(b"", PATIENCE).unwrap();
    for c in &mut clients {
        c.send_timeout(b"", PATIENCE).unwrap();
    }
    answer_with_their_ids(&mut server, 4);
    each_hears_its_id(&mut clients);
    // The first goes with requests its server fills its ring with.
    for _ in 0..4 {
        first.send_timeout(b"", PATIENCE).unwrap();
    }
    drop(first);
    for _ in 0..4 {
        let request = server.recv_timeout(PATIENCE).unwrap();
        request.reply_last(&[0; 1500]).unwrap();
    }
    // Two fit; the third finds the ring full and its client dead, and
    // lets it go; the fourth finds it gone.
    assert_eq!(server.stats().to_dead_clients, 2, "{:?}", server.stats());
    for _ in 0..2 {
        for c in &mut clients {
            c.send_timeout(b"", PATIENCE).unwrap();
        }
        answer_with_their_ids(&mut server, clients.len());
        each_hears_its_id(&mut clients);
    }
}

/// Answer `n` requests, each with its client's ID.
fn answer_with_their_ids(server: &mut shmring::request_reply::Server, n: usize) {
    for _ in 0..n {
        let request = server.recv_timeout(PATIENCE).unwrap();
        let who = request.client().to_le_bytes();
        request.reply_last(&who).unwrap();
    }
}

/// Each client's next reply is its own ID.
fn each_hears_its_id(clients: &mut [shmring::request_reply::Client]) {
    for c in clients {
        let id = c.id();
        assert_eq!(
            c.recv_timeout(PATIENCE).unwrap().payload(),
            id.to_le_bytes()
        );
    }
}

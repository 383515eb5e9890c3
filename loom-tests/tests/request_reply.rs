//! Model check of request-reply's correlation (`services/request_reply.rs`)
//! on the real code: two clients and one server, one client gone before
//! its reply. Under every interleaving the model explores, the client that
//! waits gets its own reply and no other, and the server's reply to the
//! gone client is dropped and counted, never delivered elsewhere.
//!
//! The protocol has no atomic of its own: everything it shares goes
//! through the byte rings, whose orderings `bytes.rs` checks (and whose
//! mutants run this model too, see `mutate.sh`). What this adds is the
//! protocol's logic run against those rings' interleavings: the reply
//! written into the asker's ring, the late-reply and dead-client paths.
//!
//! cd loom-tests && RUSTFLAGS="--cfg shmring_loom" cargo test --release --test request_reply
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use loom::thread;
use shmring::request_reply::Service;
use shmring::WaitStrategy;

const FOREVER: Duration = Duration::from_secs(3600);

/// Three threads and four rings: two preemptions (4 s here; three take
/// 100 s, which the mutation check would pay for every mutant it runs
/// this model on).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}

fn service_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("loom-rr-{}", NEXT.fetch_add(1, Relaxed))
}

/// Client A calls and waits; client B sends and is gone before its reply
/// (its handle dropped: its reply ring has no consumer). The server
/// answers both in arrival order, each with its request's payload
/// upper-cased.
#[test]
fn each_reply_reaches_its_asker_and_a_gone_clients_is_dropped() {
    model(|| {
        let name = service_name();
        let service = Service::open_or_create(&name, 256).unwrap();
        // Sleep at once: the model's threads must not spin.
        let mut server = service.server().unwrap();
        server.set_wait_strategy(WaitStrategy::Sleep);
        let mut a = service.client(128).unwrap();
        let mut b = service.client(128).unwrap();
        a.set_wait_strategy(WaitStrategy::Sleep);
        b.set_wait_strategy(WaitStrategy::Sleep);
        let asker = a.id();
        let caller = thread::spawn(move || {
            let reply = a.call_timeout(b"a", FOREVER).unwrap();
            assert_eq!((reply.payload(), reply.is_last()), (&b"A"[..], true));
            drop(reply);
            assert_eq!((a.outstanding(), a.stats().late), (0, 0));
        });
        let gone = thread::spawn(move || {
            b.send_timeout(b"b", FOREVER).unwrap();
            drop(b);
        });
        let mut to = Vec::new();
        for _ in 0..2 {
            let request = server.recv_timeout(FOREVER).unwrap();
            to.push(request.client());
            let upper = request.payload().to_ascii_uppercase();
            request.reply_last(&upper).unwrap();
        }
        caller.join().unwrap();
        gone.join().unwrap();
        assert!(to.contains(&asker));
        let stats = server.stats();
        // A's reply written; B's written (B still there) or dropped.
        assert_eq!(stats.replies + stats.to_dead_clients, 2, "{stats:?}");
        assert!(stats.replies >= 1);
    });
}

//! The MPMC ring across processes: 3 producer processes and 3 consumer
//! processes move 3 million tagged values, and peers killed with SIGKILL
//! while they hold a claimed slot.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shmring::{Mpmc, RecvError, WaitStrategy};

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 3;
const PER_PRODUCER: u64 = 1_000_000;
const STOP: u64 = u64::MAX;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Six processes share two cores: spin briefly, then sleep.
const SHARED_CORES: WaitStrategy = WaitStrategy::SpinThenSleep {
    spins: 64,
    yields: 4,
};

fn tag(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

children!(child);

/// What this binary does when re-run as a child (see `tests/common`).
fn child(role: &str) {
    let name: String = arg("RING");
    let ring = Mpmc::<u64>::open(&name).unwrap();
    match role {
        "producer" => {
            let id: u64 = arg("ID");
            let mut tx = ring.producer().unwrap();
            tx.set_wait_strategy(SHARED_CORES);
            for seq in 0..PER_PRODUCER {
                tx.push_timeout(tag(id, seq), TIMEOUT)
                    .unwrap_or_else(|_| panic!("producer {id} stuck at {seq}"));
            }
        }
        "consumer" => {
            // Checks each producer's order here; reports every value in a
            // file so the parent can check that each arrived exactly once.
            let mut rx = ring.consumer().unwrap();
            rx.set_wait_strategy(SHARED_CORES);
            let report: String = arg("REPORT");
            let mut out = BufWriter::new(std::fs::File::create(report).unwrap());
            let mut last = [None::<u64>; PRODUCERS as usize];
            loop {
                let v = rx.pop_timeout(TIMEOUT).unwrap();
                if v == STOP {
                    break;
                }
                let (p, seq) = ((v >> 32) as usize, v & 0xffff_ffff);
                assert!(p < PRODUCERS as usize, "foreign value {v:#x}");
                if let Some(prev) = last[p] {
                    assert!(seq > prev, "producer {p}: {seq} after {prev}");
                }
                last[p] = Some(seq);
                out.write_all(&v.to_le_bytes()).unwrap();
            }
            out.flush().unwrap();
        }
        "claim-and-hang" => {
            let tx = ring.producer().unwrap();
            let slot = tx.try_reserve().unwrap();
            println!("claimed");
            std::thread::sleep(Duration::from_secs(600));
            drop(slot);
        }
        "read-and-hang" => {
            let rx = ring.consumer().unwrap();
            let slot = rx.try_read().unwrap();
            assert_eq!(*slot, 1);
            println!("reading");
            std::thread::sleep(Duration::from_secs(600));
            drop(slot);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn three_producers_three_consumers_every_value_once_in_producer_order() {
    let name = unique_name("mpmc3x3");
    let ring = Mpmc::<u64>::create(&name, 1024).unwrap();
    let reports: Vec<Report> = (0..CONSUMERS)
        .map(|i| Report(std::env::temp_dir().join(format!("{name}-{i}.bin"))))
        .collect();
    let spawn = |role: &str, id: u64| {
        let report = reports
            .get(id as usize)
            .map_or(String::new(), |r| r.0.to_string_lossy().into_owned());
        let child = child_command(role)
            .env("RING", &name)
            .env("ID", id.to_string())
            .env("REPORT", report)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        ChildGuard::from(child)
    };
    let consumers: Vec<_> = (0..CONSUMERS).map(|i| spawn("consumer", i)).collect();
    let producers: Vec<_> = (0..PRODUCERS).map(|i| spawn("producer", i)).collect();
    for p in producers {
        p.wait_success(Duration::from_secs(600));
    }
    let tx = ring.producer().unwrap();
    for _ in 0..CONSUMERS {
        tx.push_timeout(STOP, TIMEOUT).unwrap();
    }
    for c in consumers {
        c.wait_success(Duration::from_secs(600));
    }
    let mut seen = vec![vec![false; PER_PRODUCER as usize]; PRODUCERS as usize];
    let mut total = 0u64;
    for r in &reports {
        for v in std::fs::read(&r.0).unwrap().chunks_exact(8) {
            let v = u64::from_le_bytes(v.try_into().unwrap());
            let (p, seq) = ((v >> 32) as usize, (v & 0xffff_ffff) as usize);
            assert!(!seen[p][seq], "value {v:#x} delivered twice");
            seen[p][seq] = true;
            total += 1;
        }
    }
    assert_eq!(total, PRODUCERS * PER_PRODUCER, "values were lost");
    assert_eq!(ring.pushed(), ring.popped());
}

/// A consumer's report file, removed even if the test fails.
struct Report(std::path::PathBuf);

impl Drop for Report {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Wait until a child prints `line` on stdout (past the test harness's own
/// lines): it has done its claim.
fn await_line(child: &mut std::process::Child, line: &str) {
    let out = BufReader::new(child.stdout.as_mut().unwrap());
    for l in out.lines() {
        if l.unwrap().trim() == line {
            return;
        }
    }
    panic!("child exited before printing {line:?}");
}

#[test]
fn a_producer_killed_holding_a_claim_is_skipped_and_nothing_else_is_lost() {
    let name = unique_name("mpmcdeadtx");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    let mut child = child_command("claim-and-hang")
        .env("RING", &name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_line(&mut child, "claimed");
    child.kill().unwrap(); // SIGKILL while it holds position 0
    child.wait().unwrap();
    // A consumer made before the death waits behind the dead claim, with
    // a live producer's value behind it (made before the death too: a new
    // handle repairs at once).
    assert_eq!(ring.stalled_at(), Some(0));
    tx.try_push(7).unwrap();
    // The blocked consumer finds the claim's holder dead and skips it.
    assert_eq!(rx.pop_timeout(Duration::from_secs(10)).unwrap(), 7);
    assert_eq!(ring.repaired(), 1);
    assert_eq!(ring.stalled_at(), None);
    assert!(matches!(
        rx.pop_timeout(Duration::ZERO),
        Err(RecvError::Timeout { .. })
    ));
    // The ring goes on: every slot comes round again.
    for v in 10..30 {
        tx.try_push(v).unwrap();
        assert_eq!(rx.try_pop(), Some(v));
    }
}

#[test]
fn a_live_producer_holding_a_claim_is_waited_for_not_skipped() {
    let name = unique_name("mpmcslowtx");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let mut child = child_command("claim-and-hang")
        .env("RING", &name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_line(&mut child, "claimed");
    let child = ChildGuard::from(child);
    ring.producer().unwrap().try_push(7).unwrap();
    let rx = ring.consumer().unwrap();
    let err = rx.pop_timeout(Duration::from_millis(100)).unwrap_err();
    assert!(
        matches!(
            err,
            RecvError::Stalled {
                position: 0,
                op: "pop_timeout",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ring.recover(), 0, "a live holder's claim is not repaired");
    assert_eq!(ring.repaired(), 0);
    child.kill();
    assert_eq!(ring.recover(), 1);
    assert_eq!(rx.try_pop(), Some(7));
}

#[test]
fn a_consumer_killed_holding_a_value_hands_it_to_the_next_consumer() {
    let name = unique_name("mpmcdeadrx");
    let ring = Mpmc::<u64>::create(&name, 2).unwrap();
    let tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    let mut child = child_command("read-and-hang")
        .env("RING", &name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_line(&mut child, "reading");
    child.kill().unwrap();
    child.wait().unwrap();
    tx.try_push(2).unwrap();
    let rx = ring.consumer().unwrap();
    assert_eq!(rx.try_pop(), Some(2));
    // Position 3 reuses the slot the dead consumer never released: the
    // blocked producer finds its holder dead and flags the value, and the
    // blocked consumer takes it over.
    std::thread::scope(|s| {
        let pusher = s.spawn(move || tx.push_timeout(3, Duration::from_secs(10)).is_ok());
        let again = rx.pop_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(again, 1, "the dead consumer's value comes again");
        assert_eq!(rx.pop_timeout(Duration::from_secs(10)).unwrap(), 3);
        assert!(pusher.join().unwrap());
    });
    assert_eq!(rx.try_pop(), None);
    assert_eq!(ring.repaired(), 1);
}

/// Start a consumer child that takes value 1 and holds it; return once it
/// says it holds it (so the kill below lands while it does, by
/// construction). Killed if the test fails first.
fn consumer_holding_value_1(name: &str) -> ChildGuard {
    let mut child = child_command("read-and-hang")
        .env("RING", name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_line(&mut child, "reading");
    ChildGuard::from(child)
}

#[test]
fn a_consumer_already_waiting_gets_a_dead_consumers_value() {
    let name = unique_name("mpmcorphanwait");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let tx = ring.producer().unwrap();
    // Made before the death: a new handle would repair on its own.
    let rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    let child = consumer_holding_value_1(&name);
    let rx = std::thread::scope(|s| {
        let waiter = s.spawn(move || (rx.pop_timeout(Duration::from_secs(30)), rx));
        // Kill once the consumer sleeps in its wait (the dead wake no one).
        assert!(eventually(|| {
            shmring::inspect(&name).unwrap().sleeping_consumers >= 1 || waiter.is_finished()
        }));
        child.kill(); // SIGKILL, reaped
        let (got, rx) = waiter.join().unwrap();
        assert!(
            matches!(got, Ok(1)),
            "the waiting consumer did not get the dead consumer's value: {got:?}"
        );
        rx
    });
    assert_eq!(ring.repaired(), 1);
    assert!(matches!(
        rx.pop_timeout(Duration::ZERO),
        Err(RecvError::Timeout { .. })
    ));
}

#[test]
fn a_dead_consumers_value_comes_before_closed() {
    let name = unique_name("mpmcorphanclosed");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    consumer_holding_value_1(&name).kill(); // SIGKILL, reaped
    tx.try_push(2).unwrap();
    tx.close();
    // The stream's end comes after every committed value, the dead
    // consumer's included (out of order), and only once.
    let mut got = Vec::new();
    let end = loop {
        match rx.pop_timeout(Duration::from_secs(10)) {
            Ok(v) => got.push(v),
            Err(e) => break e,
        }
    };
    assert!(matches!(end, RecvError::Closed { .. }), "{end}");
    assert_eq!(got, [2, 1], "the dead consumer's value, before Closed");
    assert!(matches!(
        rx.pop_timeout(Duration::from_secs(10)),
        Err(RecvError::Closed { .. })
    ));
    assert_eq!(ring.repaired(), 1);
}

#[test]
fn take_over_hands_a_dead_consumers_value_before_newer_ones_and_never_a_live_ones() {
    let name = unique_name("mpmctakeover");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    consumer_holding_value_1(&name).kill(); // SIGKILL at position 0, reaped
    tx.try_push(2).unwrap();
    tx.try_push(3).unwrap();
    let (live, rx) = (ring.consumer().unwrap(), ring.consumer().unwrap());
    let held = live.try_read().expect("value 2");
    // The kernel lets the dead holder's lock go a moment after the reap.
    let mut slot = None;
    assert!(eventually(|| {
        slot = rx.take_over().unwrap();
        slot.is_some()
    }));
    let slot = slot.unwrap();
    assert_eq!((*slot, slot.position()), (1, 0), "the dead one's, first");
    drop(slot);
    // Value 2 is held by a live consumer: not taken over.
    assert!(rx.take_over().unwrap().is_none());
    assert_eq!((*held, held.position()), (2, 1));
    drop(held);
    assert_eq!(rx.try_pop(), Some(3));
    assert_eq!(ring.repaired(), 1);
}

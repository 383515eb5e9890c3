//! Processes killed with SIGKILL at random points while they stream, 100
//! trials per case: a successor takes over, and nothing committed is lost or
//! delivered twice (broadcast: lossless subscribers read everything once,
//! lossy ones and resumed ones count exactly what they missed). And a killed creator: the survivors keep the segment,
//! and it is removable once stale.
//!
//! MPMC producers and consumers are killed while they hold claimed slots:
//! the ring repairs the positions of the dead. So are byte-ring producers,
//! killed while they hold an uncommitted grant: the ring pads over the dead
//! one's span. In these cases every other kill lands inside a claim by
//! construction (the child says "holding" while it holds one and waits to
//! be killed), so the test never depends on the scheduler to prove
//! anything; the others land at random moments, inside a claim or not.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use shmring::{Broadcast, ByteRing, Mpmc, Spsc, SubscriberOptions};

const TRIALS: u64 = 100;
const TIMEOUT: Duration = Duration::from_secs(30);
/// Values a killed producer child would push if nobody killed it.
const ENDLESS: u64 = u64::MAX / 2;

/// xorshift64*: random kill times, reproducible from the trial number.
fn random(seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A kill delay between 0 and 3 ms, after the child has started.
fn kill_after(trial: u64) -> Duration {
    Duration::from_micros(random(trial) % 3000)
}

/// Where a child of the cases that kill inside claims stops and waits to
/// be killed: even trials, after this many items (it holds the claim or
/// grant of the next); odd trials are killed at a random moment.
fn hold_at(trial: u64) -> Option<u64> {
    trial.is_multiple_of(2).then(|| random(trial) % 200)
}

/// How many of the trials kill inside a claim by construction.
fn held_trials() -> u64 {
    (0..TRIALS).filter(|&t| hold_at(t).is_some()).count() as u64
}

/// In a child: say that a claim is held, then wait for the SIGKILL (or
/// for stdin to close: the parent gave up, and the child must not outlive
/// it).
fn hold_until_killed(stdout: &mut impl Write) -> ! {
    writeln!(stdout, "holding").unwrap();
    stdout.flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(1)
}

/// The child's `HOLD_AT`, if the parent asked it to hold a claim.
fn child_hold_at() -> Option<u64> {
    std::env::var("HOLD_AT").ok().map(|v| v.parse().unwrap())
}

/// Kill trial `trial`'s child (its stdout read past "ready"): once it says
/// it holds a claim, if it was asked to (`hold_at`), else after a random
/// delay. Reaped. The lines it wrote before "holding" are fed to `line`.
fn kill_trial(
    child: &mut std::process::Child,
    out: &mut BufReader<std::process::ChildStdout>,
    trial: u64,
    held: bool,
    mut line: impl FnMut(&str),
) {
    if held {
        let mut l = String::new();
        loop {
            l.clear();
            let n = out.read_line(&mut l).unwrap();
            assert!(
                n > 0,
                "trial {trial}: the child ended before it held a claim"
            );
            if l.trim() == "holding" {
                break;
            }
            line(l.trim());
        }
    } else {
        std::thread::sleep(kill_after(trial));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn spawn(role: &str, ring: &str, until: u64) -> std::process::Child {
    child_command(role)
        .env("RING", ring)
        .env("UNTIL", until.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn spawn_trial(
    role: &str,
    ring: &str,
    trial: u64,
    until: u64,
    hold: Option<u64>,
) -> std::process::Child {
    let mut cmd = child_command(role);
    if let Some(at) = hold {
        cmd.env("HOLD_AT", at.to_string());
    }
    cmd.env("RING", ring)
        .env("UNTIL", until.to_string())
        .env("TRIAL", trial.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Read the child's stdout until it says `ready` (so the kill lands while
/// it streams, not while it starts), then hand the reader back.
fn await_ready(child: &mut std::process::Child) -> BufReader<std::process::ChildStdout> {
    await_ready_seeing(child, |_| {})
}

/// [`await_ready`], handing each line before "ready" to `seen`.
fn await_ready_seeing(
    child: &mut std::process::Child,
    mut seen: impl FnMut(&str),
) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 || line.trim() == "ready" {
            return out;
        }
        seen(line.trim());
    }
}

children!(child);

/// What this binary does when re-run as a child (see `tests/common`).
fn child(role: &str) {
    if role == "creator" {
        let _ring = Spsc::<u64>::create(&arg::<String>("RING"), 64).unwrap();
        println!("ready");
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let name: String = arg("RING");
    let until: u64 = arg("UNTIL");
    let hold_at = child_hold_at();
    let mut stdout = std::io::stdout().lock();
    match role {
        // Push position numbers, resuming wherever the ring stands.
        "spsc-producer" => {
            let ring = Spsc::<u64>::open(&name).unwrap();
            let mut tx = ring.producer().unwrap();
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            let mut v = tx.pushed();
            while v < until {
                tx.push_timeout(v, TIMEOUT).unwrap();
                v += 1;
            }
        }
        // Report each value before releasing it, and each release after.
        "spsc-consumer" => {
            let ring = Spsc::<u64>::open(&name).unwrap();
            let mut rx = ring.consumer().unwrap();
            writeln!(stdout, "ready").unwrap();
            writeln!(stdout, "start {}", rx.popped()).unwrap();
            stdout.flush().unwrap();
            while rx.popped() < until {
                let chunk = rx.read_timeout(16, TIMEOUT).unwrap();
                for v in chunk.iter() {
                    writeln!(stdout, "got {v}").unwrap();
                }
                stdout.flush().unwrap();
                chunk.release_all();
                writeln!(stdout, "released {}", rx.popped()).unwrap();
            }
            stdout.flush().unwrap();
        }
        "bytes-consumer" => {
            let ring = ByteRing::open(&name).unwrap();
            let mut rx = ring.consumer().unwrap();
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            loop {
                let msg = rx.recv_timeout(TIMEOUT).unwrap();
                let seq = message_seq(&msg);
                writeln!(stdout, "got {seq}").unwrap();
                stdout.flush().unwrap();
                drop(msg);
                writeln!(stdout, "released {seq}").unwrap();
                if seq + 1 >= until {
                    break;
                }
            }
            stdout.flush().unwrap();
        }
        // Push (trial, seq) values, holding each claimed slot for a while
        // (and the one at HOLD_AT until killed).
        "mpmc-producer" => {
            let ring = Mpmc::<u64>::open(&name).unwrap();
            let tx = ring.producer().unwrap();
            let trial: u64 = arg("TRIAL");
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            for seq in 0..until {
                let mut slot = tx.reserve_timeout(TIMEOUT).unwrap();
                *slot = (trial << 40) | seq;
                if hold_at == Some(seq) {
                    hold_until_killed(&mut stdout);
                }
                hold_briefly(seq);
                slot.commit();
            }
        }
        // Report each value when it is taken and again just before it is
        // released, until the STOP value; then take over anything a dead
        // consumer left and finish. A consumer killed after "got v" and
        // before "released v" surely held v; after "released v", maybe not.
        // The one at HOLD_AT (counting this child's values) is held until
        // the kill.
        "mpmc-consumer" => {
            let ring = Mpmc::<u64>::open(&name).unwrap();
            let rx = ring.consumer().unwrap();
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            for taken in 0.. {
                let slot = rx.read_timeout(TIMEOUT).unwrap();
                let v = *slot;
                if v == STOP {
                    break;
                }
                writeln!(stdout, "got {v}").unwrap();
                stdout.flush().unwrap();
                if hold_at == Some(taken) {
                    hold_until_killed(&mut stdout);
                }
                hold_briefly(v);
                writeln!(stdout, "released {v}").unwrap();
                stdout.flush().unwrap();
                drop(slot);
            }
            ring.recover();
            while let Some(v) = rx.try_pop() {
                writeln!(stdout, "got {v}").unwrap();
                writeln!(stdout, "released {v}").unwrap();
            }
            stdout.flush().unwrap();
        }
        // Send (trial, seq) messages, holding each grant for a while (and
        // the one at HOLD_AT until killed).
        "bytes-producer" => {
            let ring = ByteRing::open(&name).unwrap();
            let mut tx = ring.producer().unwrap();
            let trial: u64 = arg("TRIAL");
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            for seq in 0..until {
                let body = byte_message(trial, seq);
                let mut grant = tx.reserve_timeout(body.len(), TIMEOUT).unwrap();
                grant.copy_from_slice(&body);
                if hold_at == Some(seq) {
                    hold_until_killed(&mut stdout);
                }
                hold_briefly(seq);
                grant.commit();
            }
        }
        // Publish position numbers, resuming wherever the ring stands: in
        // write chunks on three trials of four (the one at HOLD_AT filled
        // with values no position has, and held uncommitted until the
        // kill), one push at a time on the fourth.
        "bcast-producer" => {
            let ring = Broadcast::<u64>::open(&name).unwrap();
            let mut tx = ring.producer().unwrap();
            let trial: u64 = std::env::var("TRIAL").map_or(0, |t| t.parse().unwrap());
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            let mut v = tx.pushed();
            let mut n = 0;
            while v < until {
                if trial % 4 != 3 {
                    let mut chunk = tx.reserve_timeout(1 + (v % 5) as usize, TIMEOUT).unwrap();
                    if hold_at == Some(n) {
                        chunk.fill_from_iter(std::iter::repeat(NEVER_PUBLISHED));
                        hold_until_killed(&mut stdout);
                    }
                    let k = chunk.fill_from_iter(v..until);
                    chunk.commit(k);
                    v += k as u64;
                } else {
                    tx.push_timeout(v, TIMEOUT).unwrap();
                    v += 1;
                }
                n += 1;
            }
        }
        // A lossless subscriber of identity 1: where it starts, each value
        // read in place before its release, what its release found torn
        // (retracted), and each release after: position and missed count.
        // The chunk at HOLD_AT is held unreleased until the kill.
        "bcast-subscriber" => {
            let ring = Broadcast::<u64>::open(&name).unwrap();
            let opts = SubscriberOptions::lossless().demote_after(None).identity(1);
            let mut rx = ring.subscriber_with(&opts).unwrap();
            writeln!(stdout, "start {} {}", rx.position(), rx.missed()).unwrap();
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
            let mut chunks = 0;
            while rx.position() < until {
                let chunk = rx.read_timeout(8, TIMEOUT).unwrap();
                let n = chunk.len();
                for v in chunk.iter() {
                    writeln!(stdout, "got {v}").unwrap();
                }
                stdout.flush().unwrap();
                if hold_at == Some(chunks) {
                    hold_until_killed(&mut stdout);
                }
                chunks += 1;
                let whole = chunk.release_all().map_or_else(|o| o.whole(), |()| n);
                if whole < n {
                    writeln!(stdout, "retract {}", n - whole).unwrap();
                }
                writeln!(stdout, "released {} {}", rx.position(), rx.missed()).unwrap();
            }
            writeln!(stdout, "end {} {}", rx.position(), rx.missed()).unwrap();
            stdout.flush().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// A byte message of producer `trial`, number `seq`: its length and every
/// byte follow from the two, so a torn or mixed-up message shows.
fn byte_message(trial: u64, seq: u64) -> Vec<u8> {
    let mut body = [trial.to_le_bytes(), seq.to_le_bytes()].concat();
    body.resize(16 + (seq % 100) as usize, (seq as u8) ^ (trial as u8));
    body
}

/// (trial, seq) of a byte message, checked against `byte_message`.
fn parse_byte_message(msg: &[u8]) -> (u64, u64) {
    let trial = u64::from_le_bytes(msg[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(msg[8..16].try_into().unwrap());
    assert_eq!(
        msg,
        byte_message(trial, seq),
        "message ({trial}, {seq}) is torn"
    );
    (trial, seq)
}

/// Busy-wait a few microseconds (varying with `seed`) inside a claim.
fn hold_briefly(seed: u64) {
    let until = Instant::now() + Duration::from_nanos(500 + random(seed) % 4000);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// What a killed broadcast producer fills the chunk it never commits
/// with: a value no position has, so its delivery would show.
const NEVER_PUBLISHED: u64 = u64::MAX - 1;

/// End of an MPMC consumer test's stream.
const STOP: u64 = u64::MAX;

#[test]
fn killed_spsc_producers_lose_and_duplicate_nothing() {
    let ring = Spsc::<u64>::create(&unique_name("crash-p"), 64).unwrap();
    let name = ring.name().to_owned();
    let mut rx = ring.consumer().unwrap();
    // Where the last producer stops; unknown while producers are killed.
    let end = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        let checker = s.spawn(|| {
            let mut expected = 0;
            let mut progress = Instant::now();
            while expected < end.load(Ordering::Acquire) {
                match rx.pop_timeout(Duration::from_millis(50)) {
                    Ok(v) => {
                        assert_eq!(v, expected, "lost, duplicated or torn value");
                        expected += 1;
                        progress = Instant::now();
                    }
                    Err(shmring::RecvError::Timeout { .. }) => {
                        assert!(
                            progress.elapsed() < TIMEOUT,
                            "stuck before value {expected}"
                        )
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(rx.try_pop().is_none(), "a value past the end");
            expected
        });
        for trial in 0..TRIALS {
            let mut child = spawn("spsc-producer", &name, ENDLESS);
            let _out = await_ready(&mut child);
            std::thread::sleep(kill_after(trial));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // The header's count may lag the dead producer's last commits by at
        // most a ring; the successor finds them and goes on from there.
        let stop = ring.pushed() + 100_000;
        end.store(stop, Ordering::Release);
        let mut last = spawn("spsc-producer", &name, stop);
        let _out = await_ready(&mut last);
        assert!(last.wait().unwrap().success());
        assert_eq!(checker.join().unwrap(), stop);
    });
}

/// What one consumer child reported: where it started, each value it got,
/// and the last release it confirmed.
#[derive(Default, Debug)]
struct Report {
    got: Vec<u64>,
    released: Option<u64>,
    released_all: Vec<u64>,
    /// The value of the last line, if it was a "got".
    last_got: Option<u64>,
}

impl Report {
    fn line(&mut self, line: &str) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().and_then(|v| v.parse().ok())) {
            (Some("got"), Some(v)) => {
                self.got.push(v);
                self.last_got = Some(v);
            }
            (Some("released"), Some(v)) => {
                self.released = Some(v);
                self.released_all.push(v);
                self.last_got = None;
            }
            _ => {}
        }
    }

    /// The rest of the child's lines, to its end.
    fn read_rest(mut self, out: BufReader<std::process::ChildStdout>) -> Self {
        for line in out.lines() {
            self.line(&line.unwrap());
        }
        self
    }
}

fn read_report(out: BufReader<std::process::ChildStdout>) -> Report {
    Report::default().read_rest(out)
}

/// Check a chain of consumer reports: each successor starts at or before
/// the value after the last one its predecessor got (nothing unreleased is
/// lost) and after the last one its predecessor confirmed released (nothing
/// released comes twice), and each consumer gets consecutive values.
fn check_chain(reports: &[Report], total: u64, released_is_next: bool) {
    let mut next_unreported = 0u64;
    let mut released = 0u64;
    for (i, r) in reports.iter().enumerate() {
        let Some(&first) = r.got.first() else {
            continue;
        };
        assert!(first <= next_unreported, "consumer {i} skipped to {first}");
        assert!(
            first >= released,
            "consumer {i} got {first} again after its release"
        );
        assert!(
            r.got.windows(2).all(|w| w[1] == w[0] + 1),
            "consumer {i} got values out of order"
        );
        next_unreported = next_unreported.max(r.got.last().unwrap() + 1);
        if let Some(x) = r.released {
            released = if released_is_next { x } else { x + 1 };
        }
    }
    assert_eq!(next_unreported, total, "values never delivered");
}

/// Kill `TRIALS` consumer children (`role`) while `produce` streams
/// `total` messages from a thread, then let a last one finish; the reports
/// of all of them, in order. With `hold`, every other child is killed
/// while it holds a value by construction (`hold_at`); the others, and
/// all without `hold`, at random points.
fn killed_consumers(
    role: &str,
    name: &str,
    total: u64,
    hold: bool,
    produce: impl FnOnce() + Send,
) -> Vec<Report> {
    let mut reports = Vec::new();
    std::thread::scope(|s| {
        s.spawn(produce);
        for trial in 0..TRIALS {
            let at = hold_at(trial).filter(|_| hold);
            let mut child = spawn_trial(role, name, trial, total, at);
            let mut out = await_ready(&mut child);
            let mut report = Report::default();
            kill_trial(&mut child, &mut out, trial, at.is_some(), |l| {
                report.line(l)
            });
            reports.push(report.read_rest(out));
        }
        let mut last = spawn(role, name, total);
        let out = await_ready(&mut last);
        reports.push(read_report(out));
        assert!(last.wait().unwrap().success());
    });
    reports
}

#[test]
fn killed_spsc_consumers_resume_at_their_release_point() {
    let ring = Spsc::<u64>::create(&unique_name("crash-c"), 64).unwrap();
    let mut tx = ring.producer().unwrap();
    let total = 300_000u64;
    let reports = killed_consumers("spsc-consumer", ring.name(), total, false, move || {
        for v in 0..total {
            tx.push_timeout(v, TIMEOUT).unwrap();
        }
    });
    check_chain(&reports, total, true);
}

fn message_seq(msg: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(msg[..8].try_into().unwrap());
    let len = 8 + (seq % 100) as usize;
    assert_eq!(msg.len(), len, "message {seq} has the wrong length");
    assert!(
        msg[8..].iter().all(|&b| b == seq as u8),
        "message {seq} is torn"
    );
    seq
}

#[test]
fn killed_byte_ring_consumers_resume_at_their_release_point() {
    let ring = ByteRing::create(&unique_name("crash-b"), 4096).unwrap();
    let mut tx = ring.producer().unwrap();
    let total = 300_000u64;
    let reports = killed_consumers("bytes-consumer", ring.name(), total, false, move || {
        for seq in 0..total {
            let mut body = seq.to_le_bytes().to_vec();
            body.resize(8 + (seq % 100) as usize, seq as u8);
            tx.send_timeout(&body, TIMEOUT).unwrap();
        }
    });
    check_chain(&reports, total, false);
}

/// Kill `TRIALS` producer children (`role`, each sending (trial, seq)
/// items numbered from 0), every other one while it holds a claim by
/// construction (`hold_at`), the rest at random points, then let a last
/// one send `FINAL_COUNT`, while `receive` (one wait of up to 50 ms:
/// `Ok(Some)` an item, `Ok(None)` nothing yet) drains the ring in this
/// process. Each trial's items must arrive once each, in order, with no
/// gap: everything a producer committed before dying, and nothing it did
/// not. `repaired` is the ring's repair count afterwards: at least one
/// repair per kill inside a claim.
fn killed_producers(
    role: &str,
    name: &str,
    receive: impl FnMut() -> Result<Option<(u64, u64)>, shmring::RecvError> + Send,
    repaired: impl FnOnce() -> u64,
) {
    const FINAL_COUNT: u64 = 20_000;
    let mut receive = receive;
    let got = std::thread::scope(|s| {
        let checker = s.spawn(move || {
            // Items received from each trial's producer, in order.
            let mut got = vec![Vec::new(); TRIALS as usize + 1];
            let mut progress = Instant::now();
            while (got[TRIALS as usize].len() as u64) < FINAL_COUNT {
                match receive() {
                    Ok(Some((trial, seq))) => {
                        got[trial as usize].push(seq);
                        progress = Instant::now();
                    }
                    Ok(None) | Err(shmring::RecvError::Stalled { .. }) => {
                        assert!(progress.elapsed() < TIMEOUT, "stuck")
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(matches!(receive(), Ok(None)), "an item past the end");
            got
        });
        for trial in 0..TRIALS {
            let at = hold_at(trial);
            let mut child = spawn_trial(role, name, trial, ENDLESS, at);
            let mut out = await_ready(&mut child);
            kill_trial(&mut child, &mut out, trial, at.is_some(), |_| {});
        }
        let mut last = spawn_trial(role, name, TRIALS, FINAL_COUNT, None);
        let _out = await_ready(&mut last);
        assert!(last.wait().unwrap().success());
        checker.join().unwrap()
    });
    for (trial, seqs) in got.iter().enumerate() {
        assert!(
            seqs.iter().enumerate().all(|(i, &seq)| seq == i as u64),
            "trial {trial}: items lost, repeated or out of order"
        );
        // A child killed holding the claim of item `at` had committed
        // every item before it, and never that one.
        if let Some(at) = hold_at(trial as u64).filter(|_| trial < TRIALS as usize) {
            assert_eq!(
                seqs.len() as u64,
                at,
                "trial {trial}: killed holding item {at}"
            );
        }
    }
    let repaired = repaired();
    eprintln!("{TRIALS} killed {role}s, {repaired} claims of the dead repaired");
    assert!(
        repaired >= held_trials(),
        "{repaired} repairs after {} kills inside a claim",
        held_trials()
    );
}

#[test]
fn killed_mpmc_producers_lose_and_duplicate_nothing() {
    let ring = Mpmc::<u64>::create(&unique_name("crash-mp"), 64).unwrap();
    let rx = ring.consumer().unwrap();
    let receive = move || match rx.pop_timeout(Duration::from_millis(50)) {
        Ok(v) => Ok(Some((v >> 40, v & ((1 << 40) - 1)))),
        Err(shmring::RecvError::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    killed_producers("mpmc-producer", ring.name(), receive, || ring.repaired());
}

#[test]
fn killed_mpmc_consumers_hand_on_what_they_held() {
    let ring = Mpmc::<u64>::create(&unique_name("crash-mc"), 64).unwrap();
    let name = ring.name().to_owned();
    let tx = ring.producer().unwrap();
    let total = 100_000u64;
    let producer = move || {
        for v in 0..total {
            tx.push_timeout(v, TIMEOUT).unwrap();
        }
        tx.push_timeout(STOP, TIMEOUT).unwrap();
    };
    let reports = killed_consumers("mpmc-consumer", &name, total, true, producer);
    // Every value arrives; nothing comes again after it was surely
    // released; what a killed consumer surely held comes again.
    let mut times = vec![0u32; total as usize];
    let mut released = vec![false; total as usize];
    let mut held_by_the_dead = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let killed = i < reports.len() - 1;
        for &v in &r.got {
            assert!(
                !released[v as usize],
                "value {v} delivered after its release"
            );
            times[v as usize] += 1;
        }
        // A killed consumer's last "released" may have come just before
        // the release itself: not sure.
        let sure = if killed && r.last_got.is_none() {
            r.released_all.len().saturating_sub(1)
        } else {
            r.released_all.len()
        };
        for &v in &r.released_all[..sure] {
            released[v as usize] = true;
        }
        if killed {
            held_by_the_dead.extend(r.last_got);
        }
    }
    let lost: Vec<_> = (0..total).filter(|&v| times[v as usize] == 0).collect();
    assert!(lost.is_empty(), "values never delivered: {lost:?}");
    for v in &held_by_the_dead {
        assert!(
            times[*v as usize] >= 2,
            "value {v}, held by a dead consumer, was lost"
        );
    }
    let repaired = ring.repaired();
    eprintln!("{TRIALS} killed consumers, {repaired} values of the dead handed on");
    assert!(
        repaired >= held_trials(),
        "{repaired} values handed on after {} kills inside a read",
        held_trials()
    );
}

#[test]
fn killed_byte_ring_producers_lose_and_duplicate_nothing() {
    let ring = ByteRing::create(&unique_name("crash-bp"), 4096).unwrap();
    let mut rx = ring.consumer().unwrap();
    let receive = move || match rx.recv_timeout(Duration::from_millis(50)) {
        Ok(msg) => Ok(Some(parse_byte_message(&msg))),
        Err(shmring::RecvError::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    killed_producers("bytes-producer", ring.name(), receive, || ring.repaired());
}

#[test]
fn a_killed_creator_leaves_its_ring_to_the_survivors_and_the_last_removes_it() {
    let name = unique_name("crash-creator");
    let _cleanup = Unlink(name.clone());
    let mut creator = child_command("creator")
        .env("RING", &name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _out = await_ready(&mut creator);
    let ring = Spsc::<u64>::open(&name).unwrap();
    creator.kill().unwrap();
    creator.wait().unwrap();
    // The creator never ran its cleanup; the name and memory are ours now.
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let start = Instant::now();
    for v in 0..1000 {
        tx.try_push(v).unwrap();
        assert_eq!(rx.try_pop(), Some(v));
    }
    assert!(start.elapsed() < TIMEOUT);
    let info = shmring::inspect(&name).unwrap();
    assert!(!info.is_stale(), "we still use it");
    assert!(!shmring::remove_if_stale(&name).unwrap());
    let again = Spsc::<u64>::open(&name).unwrap();
    drop((tx, rx, ring));
    assert!(exists(&name), "removed while another handle maps it");
    drop(again);
    assert!(!exists(&name), "the last user out left the name behind");
}

/// Broadcast producers killed at random moments, every other one inside a
/// write chunk it filled with a value no position has and did not commit
/// (by construction), most of the others while they publish in chunks: a
/// lossless subscriber reads every position once, in order; a lossy one
/// reads an in-order subsequence of whole values whose missed count makes
/// up the rest exactly.
#[test]
fn killed_broadcast_producers_lose_and_duplicate_nothing() {
    let ring = Broadcast::<u64>::create(&unique_name("crash-bcp"), 64).unwrap();
    let name = ring.name().to_owned();
    let lossless = SubscriberOptions::lossless().demote_after(None);
    let mut all = ring.subscriber_with(&lossless).unwrap();
    let mut some = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    // Where the last producer stops; unknown while producers are killed.
    let end = AtomicU64::new(u64::MAX);
    std::thread::scope(|s| {
        let every = s.spawn(|| {
            let mut progress = Instant::now();
            while all.position() < end.load(Ordering::Acquire) {
                match all.pop_timeout(Duration::from_millis(50)) {
                    Ok(v) => {
                        assert_eq!(v, all.position() - 1, "lost, duplicated or torn value");
                        progress = Instant::now();
                    }
                    Err(shmring::RecvError::Timeout { .. }) => {
                        assert!(progress.elapsed() < TIMEOUT, "stuck at {}", all.position())
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(all.missed(), 0);
            assert!(all.try_pop().is_none(), "a value past the end");
            all.position()
        });
        let subsequence = s.spawn(|| {
            let (mut read, mut last) = (0u64, None);
            let mut progress = Instant::now();
            while some.position() < end.load(Ordering::Acquire) {
                match some.pop_timeout(Duration::from_millis(50)) {
                    Ok(v) => {
                        assert_eq!(v, some.position() - 1, "a torn or wrong value");
                        assert!(last < Some(v), "out of order");
                        (read, last) = (read + 1, Some(v));
                        progress = Instant::now();
                    }
                    Err(shmring::RecvError::Timeout { .. }) => {
                        assert!(progress.elapsed() < TIMEOUT, "stuck at {}", some.position())
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(
                read + some.missed(),
                some.position(),
                "read and missed add up"
            );
            some.position()
        });
        for trial in 0..TRIALS {
            let at = hold_at(trial);
            let mut child = spawn_trial("bcast-producer", &name, trial, ENDLESS, at);
            let mut out = await_ready(&mut child);
            kill_trial(&mut child, &mut out, trial, at.is_some(), |_| {});
        }
        // The header's count may lag the dead producer's last values by at
        // most a ring; the successor finds them and goes on from there.
        let stop = ring.pushed() + 100_000;
        end.store(stop, Ordering::Release);
        let mut last = spawn("bcast-producer", &name, stop);
        let _out = await_ready(&mut last);
        assert!(last.wait().unwrap().success());
        assert_eq!(every.join().unwrap(), stop);
        assert_eq!(subsequence.join().unwrap(), stop);
    });
}

/// What one broadcast subscriber child reported.
#[derive(Default, Debug)]
struct SubscriberReport {
    /// Position and missed count when it joined.
    start: (u64, u64),
    got: Vec<u64>,
    /// Position and missed count at its last confirmed release (or its
    /// start).
    released: (u64, u64),
    /// Position and missed count when it finished, if it did.
    end: Option<(u64, u64)>,
}

impl SubscriberReport {
    fn line(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| words[i].parse::<u64>().unwrap();
        match words[0] {
            "start" => (self.start, self.released) = ((num(1), num(2)), (num(1), num(2))),
            "got" => self.got.push(num(1)),
            "retract" => self.got.truncate(self.got.len() - num(1) as usize),
            "released" => self.released = (num(1), num(2)),
            "end" => self.end = Some((num(1), num(2))),
            _ => {}
        }
    }

    /// The report of a child whose stdout is read to its end from here.
    fn read_rest(mut self, out: BufReader<std::process::ChildStdout>) -> Self {
        for line in out.lines() {
            self.line(&line.unwrap());
        }
        self
    }
}

/// Lossless subscribers of one identity killed at random moments (every
/// other one holding a read chunk it has not released, by construction)
/// while a producer streams (each dead one stops holding it up), a witness
/// subscriber beside them: the witness reads every value once, in order;
/// each successor resumes at its predecessor's last release (after its
/// last confirmed one, at most one past the last value it reported, plus
/// what it counted missed); and the last one's reads and misses add up to
/// exactly the positions it passed.
#[test]
fn killed_broadcast_subscribers_resume_under_their_identity() {
    let ring = Broadcast::<u64>::create(&unique_name("crash-bcs"), 64).unwrap();
    let mut tx = ring.producer().unwrap();
    let lossless = SubscriberOptions::lossless().demote_after(None);
    let mut witness = ring.subscriber_with(&lossless).unwrap();
    let mut reports = Vec::new();
    // Set once the killed subscribers are done: the producer stops, and
    // says how many values it published.
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut v = 0;
            while !done.load(Ordering::Relaxed) {
                tx.push_timeout(v, TIMEOUT).unwrap();
                v += 1;
            }
            tx.close(); // the witness reads to here
            v
        });
        let every = s.spawn(|| {
            let mut progress = Instant::now();
            loop {
                match witness.pop_timeout(Duration::from_millis(50)) {
                    Ok(v) => {
                        assert_eq!(v, witness.position() - 1, "lost, duplicated or torn");
                        progress = Instant::now();
                    }
                    Err(shmring::RecvError::Closed { .. }) => break,
                    Err(shmring::RecvError::Timeout { .. }) => {
                        assert!(
                            progress.elapsed() < TIMEOUT,
                            "stuck at {}",
                            witness.position()
                        )
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(witness.missed(), 0);
            witness.position()
        });
        for trial in 0..TRIALS {
            let at = hold_at(trial);
            let mut child = spawn_trial("bcast-subscriber", ring.name(), trial, ENDLESS, at);
            let mut report = SubscriberReport::default();
            let mut out = await_ready_seeing(&mut child, |l| report.line(l));
            kill_trial(&mut child, &mut out, trial, at.is_some(), |l| {
                report.line(l)
            });
            reports.push(report.read_rest(out));
        }
        done.store(true, Ordering::Relaxed);
        let total = producer.join().unwrap();
        let mut last = spawn("bcast-subscriber", ring.name(), total);
        let mut report = SubscriberReport::default();
        let out = await_ready_seeing(&mut last, |l| report.line(l));
        reports.push(report.read_rest(out));
        assert!(last.wait().unwrap().success());
        assert_eq!(every.join().unwrap(), total);
    });
    // Every other one by construction, holding a chunk it had read.
    assert!(reports.iter().filter(|r| !r.got.is_empty()).count() as u64 >= held_trials());
    for (i, r) in reports.iter().enumerate() {
        assert!(
            r.got.windows(2).all(|w| w[0] < w[1]),
            "subscriber {i} read out of order"
        );
        assert!(
            r.got.first().is_none_or(|&v| v >= r.start.0),
            "subscriber {i}"
        );
    }
    for (i, pair) in reports.windows(2).enumerate() {
        let (dead, next) = (&pair[0], &pair[1]);
        let reported = dead.got.last().map_or(dead.start.0, |v| v + 1);
        assert!(
            next.start.0 >= dead.released.0,
            "{} re-read what {i} released",
            i + 1
        );
        let skipped = next.start.1 - dead.released.1;
        assert!(
            next.start.0 <= reported + skipped,
            "{} resumed at {}, past what {i} reported ({reported}) and missed",
            i + 1,
            next.start.0
        );
    }
    let last = reports.last().unwrap();
    let (at, missed) = last.end.expect("the last subscriber finished");
    assert_eq!(
        last.got.len() as u64 + (missed - last.start.1),
        at - last.start.0,
        "the last one's reads and misses add up"
    );
}

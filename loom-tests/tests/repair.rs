//! Model checks of the repair protocol (`src/peers/claims/`, and the repairs in
//! `src/rings/mpmc/` and `src/rings/byte_ring/`): handles that die holding
//! positions, spans or the repair lock, and the live handles that must be
//! told apart from them. A model kills a handle with its loom-only `die*`
//! hooks, which leave the handle's claim record (or the lock) as a killed
//! process would: marked dead, everything stored before it visible.
//!
//! `loom-tests/mutate.sh` runs these first for every mutant of the repair
//! code, so each ordering there is caught here or justified in a structured
//! comment. The models are the smallest that reach each execution: at most
//! one thread spins (several spinning threads exceed loom's branch bound),
//! and consumers that must not synchronize through the wakeup fences look
//! with `read` alone, never `recover` (whose wakeups are SeqCst fences
//! under loom, which would order what the C++ model leaves unordered).
#![cfg(shmring_loom)]

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::AtomicUsize;
use loom::thread;
use shmring::{ByteRing, Error, Mpmc, MpmcConsumer, RecvError, SendError, WaitStrategy};

fn ring(capacity: usize) -> Arc<Mpmc<u64>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-repair-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(Mpmc::<u64>::create(&name, capacity).unwrap())
}

/// The smallest byte ring: 64 bytes, two 32-byte records (8-byte messages).
fn byte_ring() -> Arc<ByteRing> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("loom-repair-bytes-{}", NEXT.fetch_add(1, Relaxed));
    Arc::new(ByteRing::create(&name, 64).unwrap())
}

/// Message `i` of producer `p`: `len` bytes, all `p * 16 + i + 1`.
fn body(p: u8, i: u8, len: usize) -> Vec<u8> {
    vec![p * 16 + i + 1; len]
}

/// A polling consumer runs a repair scan (dozens of atomic operations)
/// each time it finds the ring empty, so an execution takes more steps
/// than loom's default branch bound allows.
fn repair_model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.max_branches = 20_000;
    builder.check(f);
}

fn push(tx: &shmring::MpmcProducer<u64>, v: u64) {
    while tx.try_push(v).is_err() {
        thread::yield_now();
    }
}

/// Consumer side of the repair models: take values until `want` have come,
/// running the repairs whenever the ring looks empty (as a blocked call
/// does every few milliseconds), then check that nothing else is left.
fn drain_repairing(ring: &Mpmc<u64>, rx: &MpmcConsumer<u64>, want: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < want {
        match rx.try_pop() {
            Some(v) => got.push(v),
            None => {
                ring.recover();
                thread::yield_now();
            }
        }
    }
    ring.recover();
    assert_eq!(rx.try_pop(), None, "more values than were committed");
    got.sort_unstable();
    got
}

/// A producer dies holding two claims while a live producer's position
/// lies between them, inside the dead one's record: the repair skips the
/// dead positions only, and the live value arrives once.
#[test]
fn a_dead_producers_claims_are_skipped_and_a_live_ones_kept() {
    repair_model(|| {
        let ring = ring(4);
        let dead = ring.producer().unwrap();
        let live = ring.producer().unwrap();
        let rx = ring.consumer().unwrap();
        let doomed = thread::spawn(move || {
            for _ in 0..2 {
                let slot = dead.try_reserve().unwrap();
                std::mem::forget(slot);
            }
            dead.die();
        });
        let survivor = thread::spawn(move || push(&live, 7));
        assert_eq!(drain_repairing(&ring, &rx, 1), vec![7]);
        doomed.join().unwrap();
        survivor.join().unwrap();
    });
}

/// A consumer dies holding a value while a live consumer takes another:
/// the dead one's value is handed to the live one, and each value arrives
/// once.
#[test]
fn a_dead_consumers_value_is_handed_on_once() {
    repair_model(|| {
        let ring = ring(2);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        let rx = ring.consumer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let doomed = thread::spawn(move || {
            if let Some(slot) = dead.try_read() {
                std::mem::forget(slot);
            }
            dead.die();
        });
        let got = drain_repairing(&ring, &rx, 2);
        assert_eq!(got, vec![1, 2], "lost or duplicated values");
        doomed.join().unwrap();
    });
}

/// A consumer dies holding a value while two live consumers both look for
/// it: exactly one of them takes it over (the repair lock hands the
/// adopter's claim record to the other, and the other looks at the slot
/// again after the records), and each value arrives once.
#[test]
fn two_consumers_never_both_take_over_a_dead_ones_value() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        for v in 1..=3 {
            tx.try_push(v).unwrap();
        }
        std::mem::forget(dead.try_read().unwrap());
        dead.die();
        let taken = Arc::new(AtomicUsize::new(0));
        let other = {
            let (ring, taken) = (Arc::clone(&ring), Arc::clone(&taken));
            let rx = ring.consumer().unwrap();
            thread::spawn(move || take_until(&ring, &rx, &taken, 3))
        };
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 3);
        got.extend(other.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3], "lost, or taken over twice");
        nothing_left(&ring, &rx);
    });
}

/// Take values (repairing when empty) until `taken`, shared by all
/// consumers, reaches `total`.
fn take_until(
    ring: &Mpmc<u64>,
    rx: &MpmcConsumer<u64>,
    taken: &AtomicUsize,
    total: usize,
) -> Vec<u64> {
    let mut got = Vec::new();
    while taken.load(Relaxed) < total {
        if let Some(slot) = rx.try_read() {
            got.push(*slot);
            taken.fetch_add(1, Relaxed);
            // Hold it a moment, so the other consumer looks meanwhile.
            thread::yield_now();
            drop(slot);
        } else {
            ring.recover();
            thread::yield_now();
        }
    }
    got
}

/// A consumer dies holding two values while a live consumer holds one that
/// lies between them, inside the dead one's record: only the dead one's
/// values are taken over, each value arrives once.
#[test]
fn a_live_consumers_value_inside_a_dead_ones_record_is_left_alone() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        for v in 1..=3 {
            tx.try_push(v).unwrap();
        }
        let dead = ring.consumer().unwrap();
        let taken = Arc::new(AtomicUsize::new(0));
        // What it holds when it dies counts as not yet delivered.
        let doomed = thread::spawn(move || {
            for _ in 0..2 {
                if let Some(slot) = dead.try_read() {
                    std::mem::forget(slot);
                }
            }
            dead.die();
        });
        let live = {
            let rx = ring.consumer().unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let got = rx.try_read().map(|slot| {
                    thread::yield_now();
                    *slot
                });
                if got.is_some() {
                    taken.fetch_add(1, Relaxed);
                }
                got
            })
        };
        doomed.join().unwrap();
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 3);
        got.extend(live.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3], "lost, or delivered twice");
    });
}

/// A consumer holds a value (position 1) and then takes over a dead
/// consumer's (position 0) while a third consumer looks for it: the
/// adopter's record must name both, so the third never takes position 0
/// over again (a record that named `1..=0`, nothing, let it: the value
/// was delivered twice).
#[test]
fn a_consumer_holding_a_value_adopts_an_orphan_once() {
    repair_model(|| {
        let ring = ring(4);
        let tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let dead = ring.consumer().unwrap();
        std::mem::forget(dead.try_read().unwrap());
        dead.die();
        let taken = Arc::new(AtomicUsize::new(0));
        let holder = {
            let rx = ring.consumer().unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let first = rx.try_read();
                let second = rx.try_read();
                let got: Vec<u64> = first.iter().chain(second.iter()).map(|s| **s).collect();
                taken.fetch_add(got.len(), Relaxed);
                // Hold both a moment, so the other consumer looks meanwhile.
                thread::yield_now();
                got
            })
        };
        let rx = ring.consumer().unwrap();
        let mut got = take_until(&ring, &rx, &taken, 2);
        got.extend(holder.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2], "lost, or taken over twice");
        nothing_left(&ring, &rx);
    });
}

/// A producer dies holding a grant while a live producer sends behind it
/// (and a third handle's claim may race for the same span): the consumer,
/// polling and repairing, pads over the dead one's span only, and gets the
/// live message once, intact.
#[test]
fn a_dead_producers_grant_is_padded_over_and_a_live_ones_kept() {
    repair_model(|| {
        let ring = byte_ring();
        let mut dead = ring.producer().unwrap();
        let mut live = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let doomed = thread::spawn(move || {
            if let Ok(grant) = dead.try_reserve(8) {
                std::mem::forget(grant);
            }
            dead.die();
        });
        let survivor = thread::spawn(move || {
            let bytes = body(1, 0, 8);
            while live.try_send(&bytes).is_err() {
                thread::yield_now();
            }
        });
        let got = loop {
            match rx.try_recv().unwrap() {
                Some(msg) => break msg.to_vec(),
                None => {
                    ring.recover();
                    thread::yield_now();
                }
            }
        };
        assert_eq!(got, body(1, 0, 8));
        doomed.join().unwrap();
        survivor.join().unwrap();
        ring.recover();
        assert!(rx.try_recv().unwrap().is_none(), "a message nobody sent");
    });
}

/// A ring of `capacity` whose one value (1) a consumer took and died
/// holding, and its producer.
fn one_orphan(capacity: usize) -> (Arc<Mpmc<u64>>, shmring::MpmcProducer<u64>) {
    let ring = ring(capacity);
    let tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    let dead = ring.consumer().unwrap();
    std::mem::forget(dead.try_read().unwrap());
    dead.die();
    (ring, tx)
}

/// After a repair, `rx` finds nothing: no value is taken over again.
fn nothing_left(ring: &Mpmc<u64>, rx: &MpmcConsumer<u64>) {
    ring.recover();
    assert_eq!(rx.try_pop(), None, "taken over again later");
}

/// Take values with `read` alone (which takes a flagged dead consumer's
/// value over when the ring is otherwise empty) until `taken`, shared by
/// all consumers, reaches `total`. No `recover`: see the module docs.
fn read_until(rx: &MpmcConsumer<u64>, taken: &AtomicUsize, total: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while taken.load(Relaxed) < total {
        match rx.try_read() {
            Some(slot) => {
                got.push(*slot);
                taken.fetch_add(1, Relaxed);
            }
            None => thread::yield_now(),
        }
    }
    got
}

/// A consumer takes a dead one's value over, releases it, then moves on:
/// it pushes and takes another value (its record moves past the adopted
/// position) and drops its handle (its record is freed). A second
/// consumer looks meanwhile. Whenever it finds the adopter's record moved
/// past or freed, it must also find the adopted value released (the
/// Release of the record's `first` and of its owner word, with the
/// repairer's Acquire loads), or it takes the value over a second time.
#[test]
fn an_adopted_value_released_and_moved_past_is_not_taken_over_again() {
    repair_model(|| {
        let (ring, tx) = one_orphan(4);
        // Flags the dead one's value for a consumer to take over.
        ring.recover();
        let taken = Arc::new(AtomicUsize::new(0));
        let adopter = {
            let rx = ring.consumer().unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let mut got: Vec<u64> = rx.try_read().iter().map(|s| **s).collect();
                tx.try_push(2).unwrap();
                got.extend(rx.try_read().iter().map(|s| **s));
                taken.fetch_add(got.len(), Relaxed);
                drop(rx);
                got
            })
        };
        let rx = ring.consumer().unwrap();
        let mut got = read_until(&rx, &taken, 2);
        got.extend(adopter.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, vec![1, 2], "lost, or taken over twice");
        nothing_left(&ring, &rx);
    });
}

/// A consumer takes a dead one's value over and dies inside the repair,
/// holding the value and the repair lock. The lock is taken over from the
/// dead repairer (not waited on forever), and the value is delivered once,
/// by the live consumer.
#[test]
fn a_repairer_killed_holding_the_lock_is_taken_over() {
    repair_model(|| {
        let (ring, _tx) = one_orphan(2);
        ring.recover();
        let dying = ring.consumer().unwrap();
        let rx = ring.consumer().unwrap();
        let doomed = thread::spawn(move || dying.die_adopting());
        let taken = AtomicUsize::new(0);
        let got = read_until(&rx, &taken, 1);
        assert_eq!(got, vec![1], "lost, or taken over twice");
        doomed.join().unwrap();
        nothing_left(&ring, &rx);
    });
}

/// Every consumer record is held (the model's table has four): one by a
/// dead consumer that held a value, three by live handles. A new handle is
/// refused with `TooManyHandles` until a record is freed: the adopter's,
/// when it drops, or the dead one's, when a repair finds its value
/// delivered. The value is delivered once either way.
#[test]
fn a_full_table_refuses_a_handle_until_a_record_is_freed() {
    repair_model(|| {
        let (ring, _tx) = one_orphan(2);
        let adopter = ring.consumer().unwrap();
        let others = [ring.consumer().unwrap(), ring.consumer().unwrap()];
        assert!(
            matches!(ring.consumer(), Err(Error::TooManyHandles { .. })),
            "a fifth consumer got a record"
        );
        let taken = Arc::new(AtomicUsize::new(0));
        let t = {
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let got: Vec<u64> = adopter.try_read().iter().map(|s| **s).collect();
                taken.fetch_add(got.len(), Relaxed);
                got
            })
        };
        let rx = loop {
            match ring.consumer() {
                Ok(rx) => break rx,
                Err(Error::TooManyHandles { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let mut got = read_until(&rx, &taken, 1);
        got.extend(t.join().unwrap());
        assert_eq!(got, vec![1], "lost, or taken over twice");
        drop(others);
        nothing_left(&ring, &rx);
    });
}

/// Take messages (repairing when there are none) until `want` have come.
/// A message padded over is never seen: the loop then polls until loom
/// ends the execution ("exceeded maximum number of branches").
fn recv_repairing(ring: &ByteRing, rx: &mut shmring::ByteConsumer, want: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < want {
        match rx.try_recv().unwrap() {
            Some(msg) => got.push(msg.to_vec()),
            None => {
                ring.recover();
                thread::yield_now();
            }
        }
    }
    got
}

/// A dead producer named the first record's span but never won it; a live
/// producer won it, commits a message there, gives a claim up (its record
/// names nothing) and sends a second message (its record names the next
/// span). A repairer that finds the span uncommitted sees only the dead
/// record naming it, unless the live record still does: when it sees the
/// live record moved off, its second look must find the message committed
/// (the Release of the record's `first`, with `spans_around`'s Acquire), or
/// it pads over a committed message, which is lost.
#[test]
fn a_never_won_span_over_a_live_producers_message_is_left_alone() {
    repair_model(|| {
        let ring = byte_ring();
        ring.producer().unwrap().die_naming(8);
        let mut live = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let sender = thread::spawn(move || {
            live.try_send(&body(1, 0, 8)).unwrap();
            assert!(matches!(
                live.try_reserve(1000),
                Err(SendError::MessageTooLarge { .. })
            ));
            live.try_send(&body(1, 1, 8)).unwrap();
        });
        let got = recv_repairing(&ring, &mut rx, 2);
        assert_eq!(got, [body(1, 0, 8), body(1, 1, 8)]);
        sender.join().unwrap();
    });
}

/// A dead producer won the first span and left it uncommitted; a second
/// one named the next span and died before taking it; a live producer
/// takes that span and sends. The repair pads the dead won span only: it
/// reads the write position with Acquire, so it sees the live producer's
/// record naming the next span whenever the position is past it, and
/// never pads over a live claim.
#[test]
fn a_dead_won_span_next_to_a_dead_never_won_one() {
    repair_model(|| {
        let ring = byte_ring();
        let mut live = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        // Made before anyone dies: a new handle repairs first.
        let mut won = ring.producer().unwrap();
        let namer = ring.producer().unwrap();
        std::mem::forget(won.try_reserve(8).unwrap());
        namer.die_naming(8);
        won.die();
        let sender = thread::spawn(move || live.try_send(&body(1, 0, 8)).unwrap());
        // One repair before the polling loop: after a thread yields, loom
        // gives its loads only stores newer than those it saw before the
        // yield, so only a repairer that has not yet yielded can read the
        // live record as it was before the claim.
        ring.recover();
        let got = recv_repairing(&ring, &mut rx, 1);
        assert_eq!(got, [body(1, 0, 8)]);
        sender.join().unwrap();
        ring.recover();
        assert!(rx.try_recv().unwrap().is_none(), "a message nobody sent");
    });
}

/// Pop with the blocking call (sleeping at once, so that a wait for the
/// repair lock sleeps on the model futex: a lost wakeup is a deadlock)
/// until the closed ring reports `Closed`.
fn pop_until_closed(rx: &MpmcConsumer<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match rx.pop_timeout(Duration::from_secs(3600)) {
            Ok(v) => got.push(v),
            Err(RecvError::Closed { .. }) => return got,
            Err(e) => panic!("{e}"),
        }
    }
}

fn sleepy(rx: MpmcConsumer<u64>) -> MpmcConsumer<u64> {
    let mut rx = rx;
    rx.set_wait_strategy(WaitStrategy::Sleep);
    rx
}

/// The producer closed the ring; a consumer takes a value and dies holding
/// it while a consumer made before (so nothing flagged the value for it)
/// drains the ring with the blocking call. What it got before `Closed`,
/// and after the death what it gets before `Closed` again, is every value
/// once: the look before `Closed` takes a dead consumer's value over, and
/// one that died before that look (here: before the join) is always seen
/// dead.
#[test]
fn a_dead_consumers_value_comes_before_closed() {
    repair_model(|| {
        let ring = ring(2);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        let rx = sleepy(ring.consumer().unwrap());
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        tx.close();
        let doomed = thread::spawn(move || {
            if let Some(slot) = dead.try_read() {
                std::mem::forget(slot);
            }
            dead.die();
        });
        let mut got = pop_until_closed(&rx);
        doomed.join().unwrap();
        got.extend(pop_until_closed(&rx));
        got.sort_unstable();
        assert_eq!(got, vec![1, 2], "lost before Closed, or delivered twice");
    });
}

/// A consumer died holding a value; the ring is closed. Two consumers made
/// before the death both reach the look before `Closed`: one takes the
/// value over, the other finds the repair lock taken and sleeps until its
/// holder lets it go and wakes it (else: a deadlock here, a slice's wait
/// for real), then finds nothing left. The value is delivered once.
#[test]
fn two_consumers_at_a_closed_rings_end_deliver_a_dead_ones_value_once() {
    repair_model(|| {
        let ring = ring(2);
        let tx = ring.producer().unwrap();
        let dead = ring.consumer().unwrap();
        let a = sleepy(ring.consumer().unwrap());
        let b = sleepy(ring.consumer().unwrap());
        tx.try_push(1).unwrap();
        std::mem::forget(dead.try_read().unwrap());
        dead.die();
        tx.close();
        let other = thread::spawn(move || pop_until_closed(&a));
        let mut got = pop_until_closed(&b);
        got.extend(other.join().unwrap());
        assert_eq!(got, vec![1], "lost, or taken over twice");
    });
}

/// A stream's handle dies after counting a value and before the stamp
/// that would commit it: the repair takes the count back, skips the
/// position, and the stream's next handle resumes at 0, with nothing
/// delivered.
#[test]
fn a_stream_killed_between_its_count_and_its_commit_resumes_before_it() {
    repair_model(|| {
        let ring = ring(2);
        let rx = ring.consumer().unwrap();
        let stream = ring.producer_stream(1).unwrap();
        let doomed = thread::spawn(move || stream.die_committing(5));
        // A consumer polls and repairs while the producer dies.
        ring.recover();
        assert_eq!(rx.try_pop(), None, "a value never committed arrived");
        doomed.join().unwrap();
        let mut s = ring.producer_stream(1).unwrap();
        assert_eq!(s.committed(), 0, "counted a value never committed");
        s.try_push(6).unwrap();
        assert_eq!(drain_repairing(&ring, &rx, 1), vec![6]);
    });
}

/// A stream's handle dies right after a commit, its count still marked
/// pending: the count stands, and the value arrives once.
#[test]
fn a_stream_killed_after_a_commit_keeps_its_count() {
    repair_model(|| {
        let ring = ring(2);
        let rx = ring.consumer().unwrap();
        let mut stream = ring.producer_stream(1).unwrap();
        let doomed = thread::spawn(move || {
            while stream.try_push(5).is_err() {
                thread::yield_now();
            }
            stream.die();
        });
        let got = drain_repairing(&ring, &rx, 1);
        doomed.join().unwrap();
        assert_eq!(got, vec![5]);
        assert_eq!(ring.producer_stream(1).unwrap().committed(), 1);
    });
}

/// A stream's handle leaves cleanly while its next handle waits for it:
/// the next one sees the count the last one stored before leaving (the
/// Acquire on the record's owner in `take_stream`).
#[test]
fn a_streams_next_handle_sees_the_count_its_last_left() {
    repair_model(|| {
        let ring = ring(2);
        let mut stream = ring.producer_stream(1).unwrap();
        let leaving = thread::spawn(move || {
            stream.try_push(5).unwrap();
            drop(stream);
        });
        let r = ring.clone();
        let next = thread::spawn(move || loop {
            match r.producer_stream(1) {
                Ok(s) => return s.committed(),
                Err(_) => thread::yield_now(),
            }
        });
        assert_eq!(next.join().unwrap(), 1);
        leaving.join().unwrap();
    });
}

/// A byte-ring stream's handle dies after naming a span and before the
/// compare-exchange that would take it, and nobody writes after it: its
/// record names space at the write position that it never took. The
/// stream's next handle gets the stream at once, with the count it had
/// (not `Busy` until some other producer writes past that space).
#[test]
fn a_byte_stream_killed_before_winning_its_span_is_taken_again_at_once() {
    repair_model(|| {
        let ring = byte_ring();
        let mut stream = ring.producer_stream(1).unwrap();
        stream.try_send(&body(1, 0, 8)).unwrap();
        stream.die_naming(8);
        let next = ring.producer_stream(1).expect("the stream back, not Busy");
        assert_eq!(next.committed(), Some(1));
        let mut rx = ring.consumer().unwrap();
        assert_eq!(recv_repairing(&ring, &mut rx, 1), [body(1, 0, 8)]);
    });
}

//! The broadcast ring: every subscriber reads every value in order;
//! lossless ones hold the producer, lossy ones count exactly what they
//! missed; dead subscribers stop holding it, stuck ones are made lossy;
//! identities resume; start positions; the table's bound.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use shmring::{Broadcast, Error, Policy, RecvError, Start, SubscriberOptions};

const PATIENCE: Duration = Duration::from_secs(30);

fn ring(tag: &str, capacity: usize) -> Broadcast<u64> {
    Broadcast::<u64>::create(&unique_name(tag), capacity).unwrap()
}

#[test]
fn every_lossless_subscriber_reads_every_value_in_order() {
    const N: u64 = 200_000;
    let ring = ring("bc-all", 64);
    let mut tx = ring.producer().unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut rx = ring.subscriber().unwrap();
            std::thread::spawn(move || {
                for want in 0..N {
                    assert_eq!(rx.pop_timeout(PATIENCE).unwrap(), want);
                }
                assert_eq!(rx.missed(), 0);
                rx.try_pop()
            })
        })
        .collect();
    for v in 0..N {
        tx.push_timeout(v, PATIENCE).unwrap();
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), None, "nothing more than was pushed");
    }
}

#[test]
fn a_lossless_subscriber_holds_the_producer_until_it_reads() {
    let ring = ring("bc-gate", 4);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring
        .subscriber_with(&SubscriberOptions::lossless().demote_after(None))
        .unwrap();
    for v in 0..4 {
        tx.try_push(v).unwrap();
    }
    assert!(tx.try_push(4).is_err(), "a lap ahead of the subscriber");
    assert!(tx.push_timeout(4, Duration::from_millis(20)).is_err());
    assert_eq!(rx.try_pop(), Some(0));
    tx.try_push(4).unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(rx.missed(), 0);
}

/// A lossy subscriber that never reads does not hold the producer; when
/// it reads, every value it gets is the one at its position, in order,
/// and what it got plus what it missed is exactly what was published.
#[test]
fn a_lossy_subscriber_counts_exactly_what_it_missed() {
    const N: u64 = 1000;
    let ring = ring("bc-lossy", 8);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    let mut got = 0;
    for v in 0..N {
        tx.try_push(v).unwrap();
        if v % 37 == 0 {
            while let Some(value) = rx.try_pop() {
                assert_eq!(value, rx.position() - 1, "the value of its position");
                got += 1;
            }
        }
    }
    while let Some(value) = rx.try_pop() {
        assert_eq!(value, rx.position() - 1);
        got += 1;
    }
    assert!(rx.missed() > 0, "it fell behind");
    assert_eq!(got + rx.missed(), N);
    assert_eq!(rx.policy(), Policy::Lossy);
}

/// A lossless subscriber whose process died stops holding the producer:
/// its lease went with it.
#[test]
fn a_dead_subscriber_stops_holding_the_producer() {
    let name = unique_name("bc-dead");
    let ring = Broadcast::<u64>::create(&name, 4).unwrap();
    let mut tx = ring.producer().unwrap();
    let code = reap(fork_child!({
        let ring = Broadcast::<u64>::open(&name).unwrap();
        let opts = SubscriberOptions::lossless().demote_after(None);
        std::mem::forget(ring.subscriber_with(&opts).unwrap());
        0
    }));
    assert_eq!(code, 0);
    for v in 0..4 {
        tx.try_push(v).unwrap();
    }
    // A lap ahead of the dead subscriber's position: written all the same.
    tx.push_timeout(4, PATIENCE).unwrap();
    assert_eq!(tx.pushed(), 5);
}

/// A lossless subscriber that holds the producer past its bound is made
/// lossy, once, and says so; it then reads on and counts what it missed.
#[test]
fn a_stuck_lossless_subscriber_is_made_lossy_after_its_bound() {
    let ring = ring("bc-stuck", 4);
    let mut tx = ring.producer().unwrap();
    let opts = SubscriberOptions::lossless().demote_after(Some(Duration::from_millis(20)));
    let mut rx = ring.subscriber_with(&opts).unwrap();
    for v in 0..4 {
        tx.try_push(v).unwrap();
    }
    tx.push_timeout(4, PATIENCE).unwrap();
    assert!(rx.is_demoted() && rx.policy() == Policy::Lossy);
    assert_eq!(rx.demotions(), 1);
    for v in 5..20 {
        tx.try_push(v).unwrap();
    }
    let first = rx.try_pop().unwrap();
    assert_eq!(first, rx.missed(), "skipped exactly the values before it");
}

/// A lag bound below the capacity: the producer makes the subscriber
/// lossy at once when the next value would put it past the bound, without
/// waiting; one that keeps up within it stays lossless.
#[test]
fn a_lossless_subscriber_past_its_lag_bound_is_made_lossy_at_once() {
    let ring = ring("bc-lag", 16);
    let mut tx = ring.producer().unwrap();
    let bounded = SubscriberOptions::lossless()
        .demote_after(None)
        .demote_after_lag(Some(3));
    let mut slow = ring.subscriber_with(&bounded).unwrap();
    let mut keeps_up = ring.subscriber_with(&bounded).unwrap();
    for v in 0..3 {
        tx.try_push(v).unwrap();
        assert_eq!(keeps_up.try_pop(), Some(v));
    }
    assert!(!slow.is_demoted(), "3 behind is within its bound");
    tx.try_push(3).unwrap(); // would be 4 behind: made lossy, no wait
    assert!(slow.is_demoted() && slow.policy() == Policy::Lossy);
    assert_eq!(slow.demotions(), 1);
    assert!(!keeps_up.is_demoted());
    assert_eq!(keeps_up.try_pop(), Some(3));
    // Lossy now, it holds nothing up: a lap and more goes by.
    for v in 4..40 {
        tx.try_push(v).unwrap();
        assert_eq!(keeps_up.try_pop(), Some(v));
    }
    let first = slow.try_pop().unwrap();
    assert_eq!(first, slow.missed(), "skipped exactly the values before it");
}

/// A named subscriber resumes where the last one of its name left off;
/// what was overwritten while none was there is counted missed.
#[test]
fn an_identity_resumes_where_it_left_off() {
    let ring = ring("bc-identity", 4);
    let mut tx = ring.producer().unwrap();
    let opts = SubscriberOptions::lossless().identity(7);
    let mut rx = ring.subscriber_with(&opts).unwrap();
    for v in 0..3 {
        tx.try_push(v).unwrap();
    }
    assert_eq!(rx.try_pop(), Some(0));
    match ring.subscriber_with(&opts) {
        Err(Error::SubscriberTaken { identity: 7, .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(rx);
    let mut rx = ring.subscriber_with(&opts).unwrap();
    assert_eq!(rx.try_pop(), Some(1), "where it left off");
    drop(rx);
    // Gone, it holds nothing: the producer laps its position.
    for v in 3..12 {
        tx.try_push(v).unwrap();
    }
    let mut rx = ring.subscriber_with(&opts).unwrap();
    let next = rx.try_pop().unwrap();
    assert_eq!(
        rx.missed(),
        next - 2,
        "positions 2..{next} were overwritten"
    );
}

#[test]
fn a_subscriber_starts_next_oldest_or_at_a_position() {
    let ring = ring("bc-start", 8);
    let mut tx = ring.producer().unwrap();
    for v in 0..12 {
        tx.try_push(v).unwrap();
    }
    let with = |start| {
        ring.subscriber_with(&SubscriberOptions::lossless().start(start))
            .unwrap()
    };
    let (mut next, mut oldest, mut at) =
        (with(Start::Next), with(Start::Oldest), with(Start::At(10)));
    assert_eq!(next.try_pop(), None);
    assert_eq!(oldest.try_pop(), Some(4), "the oldest of the 8 in the ring");
    assert_eq!(at.try_pop(), Some(10));
    tx.try_push(12).unwrap();
    assert_eq!(next.try_pop(), Some(12));
    let mut late = with(Start::At(1));
    assert_eq!(late.try_pop(), Some(late.missed() + 1));
    assert!(late.missed() >= 3, "1..4 were overwritten");
}

#[test]
fn a_ring_takes_64_subscribers_and_refuses_one_more() {
    let ring = ring("bc-64", 8);
    let subs: Vec<_> = (0..64).map(|_| ring.subscriber().unwrap()).collect();
    match ring.subscriber() {
        Err(Error::TooManyHandles {
            side, limit: 64, ..
        }) => assert_eq!(side, "subscriber"),
        other => panic!("{other:?}"),
    }
    let mut tx = ring.producer().unwrap();
    tx.try_push(9).unwrap();
    for mut s in subs {
        assert_eq!(s.try_pop(), Some(9));
    }
    assert!(ring.subscriber().is_ok(), "dropped ones free their entries");
}

#[test]
fn a_closed_ring_ends_each_subscribers_stream_after_its_values() {
    let ring = ring("bc-close", 8);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.subscriber().unwrap();
    tx.try_push(1).unwrap();
    tx.close();
    assert_eq!(rx.pop_timeout(PATIENCE).unwrap(), 1);
    assert!(matches!(
        rx.pop_timeout(PATIENCE),
        Err(RecvError::Closed { .. })
    ));
    assert!(matches!(
        rx.pop_timeout(Duration::ZERO),
        Err(RecvError::Closed { .. })
    ));
}

/// Subscribers in three processes, lossless: each reads every value once
/// and in order while the producer runs a hundred laps. Each tells the
/// parent through a pipe once it has subscribed, so none starts late.
#[test]
fn subscribers_in_other_processes_read_every_value() {
    use std::io::{Read, Write};
    const N: u64 = 100_000;
    let name = unique_name("bc-procs");
    let ring = Broadcast::<u64>::create(&name, 1024).unwrap();
    let mut tx = ring.producer().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let (r, w) = nix::unistd::pipe().unwrap();
            let pid = fork_child!({
                let ring = Broadcast::<u64>::open(&name).unwrap();
                let mut rx = ring.subscriber().unwrap();
                std::fs::File::from(w.try_clone().unwrap())
                    .write_all(b"r")
                    .unwrap();
                for want in 0..N {
                    if rx.pop_timeout(PATIENCE).unwrap() != want {
                        return 1;
                    }
                }
                i32::from(rx.missed() != 0) * 2
            });
            drop(w);
            let mut byte = [0u8];
            std::fs::File::from(r).read_exact(&mut byte).unwrap();
            pid
        })
        .collect();
    for v in 0..N {
        tx.push_timeout(v, PATIENCE).unwrap();
    }
    for pid in children {
        assert_eq!(reap(pid), 0);
    }
}

/// A producer killed mid-stream is taken over: the new one goes on after
/// the last value the dead one published, even past the `tail` it
/// stored (rewound here, as a kill between a publish and that store
/// leaves it), and a lossless subscriber reads every value once, in order.
#[test]
fn a_producer_that_died_is_taken_over_where_it_stopped() {
    use std::os::unix::fs::FileExt;
    let name = unique_name("bc-takeover");
    let ring = Broadcast::<u64>::create(&name, 8).unwrap();
    let mut rx = ring.subscriber().unwrap();
    let code = reap(fork_child!({
        let ring = Broadcast::<u64>::open(&name).unwrap();
        let mut tx = ring.producer().unwrap();
        for v in 0..5 {
            tx.try_push(v).unwrap();
        }
        std::mem::forget((tx, ring));
        0
    }));
    assert_eq!(code, 0);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    file.write_at(&3u64.to_le_bytes(), shmring::header_offsets::TAIL as u64)
        .unwrap();
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.pushed(), 5, "after the last value published");
    for v in 5..8 {
        tx.try_push(v).unwrap();
    }
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
}

#[test]
fn write_chunks_publish_in_place_in_order_and_only_what_is_committed() {
    let ring = ring("bc-wchunk", 4);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring
        .subscriber_with(&SubscriberOptions::lossless().demote_after(None))
        .unwrap();
    let mut chunk = tx.try_reserve(8).unwrap();
    assert_eq!(chunk.len(), 4, "no more than a lap ahead of the subscriber");
    assert_eq!(chunk.fill_from_iter(10..), 4);
    *chunk.get_mut(1) = 11;
    chunk.commit(2);
    assert_eq!(tx.pushed(), 2);
    // Dropped uncommitted: nothing published, and the slots are lent again.
    let mut chunk = tx.try_reserve(2).unwrap();
    chunk.write(0, 99);
    drop(chunk);
    assert_eq!(tx.pushed(), 2);
    let mut chunk = tx.try_reserve(3).unwrap();
    assert_eq!(chunk.len(), 2, "two slots still hold unread values");
    chunk.write(0, 12);
    chunk.write(1, 13);
    chunk.commit_all();
    assert!(tx.try_reserve(1).is_none(), "a lap ahead again");
    assert!(tx.reserve_timeout(1, Duration::from_millis(10)).is_err());
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, [10, 11, 12, 13]);
    tx.try_push(14).unwrap();
    tx.try_push(15).unwrap();
    assert_eq!((rx.try_pop(), rx.try_pop()), (Some(14), Some(15)));
    // Room again, across the end of the slot array: slots 2, 3, then 0.
    let mut chunk = tx.reserve_timeout(3, PATIENCE).unwrap();
    assert_eq!(chunk.fill_from_iter(16..19), 3);
    chunk.commit_all();
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, [16, 17, 18]);
    // Asking for more than a ring, or everything, lends at most a ring.
    assert_eq!(tx.try_reserve(usize::MAX).unwrap().len(), 4);
    assert_eq!(tx.reserve_timeout(1 << 40, PATIENCE).unwrap().len(), 4);
}

/// A producer process dies with a chunk reserved and filled but not
/// committed (it `_exit`s, running no destructor): its successor resumes
/// after the last value committed, and none of the filled values is ever
/// delivered.
#[test]
fn a_producer_taking_over_skips_a_chunk_left_uncommitted() {
    let name = unique_name("bc-wchunk-left");
    let ring = Broadcast::<u64>::create(&name, 4).unwrap();
    let mut rx = ring.subscriber().unwrap();
    let code = reap(fork_child!({
        let ring = Broadcast::<u64>::open(&name).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        let mut chunk = tx.try_reserve(3).unwrap();
        chunk.fill_from_iter([7, 7, 7]);
        0
    }));
    assert_eq!(code, 0);
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.pushed(), 1, "marked slots are not published values");
    tx.try_push(2).unwrap();
    assert_eq!(rx.try_pop(), Some(1));
    assert_eq!(rx.try_pop(), Some(2));
    assert_eq!(rx.try_pop(), None);
}

#[test]
fn read_chunks_lend_in_place_and_release_what_they_are_told() {
    let ring = ring("bc-rchunk", 8);
    let mut tx = ring.producer().unwrap();
    let pinned = SubscriberOptions::lossless().demote_after(None);
    let mut rx = ring.subscriber_with(&pinned).unwrap();
    assert!(rx.try_read(4).is_none());
    for v in 0..5 {
        tx.try_push(v).unwrap();
    }
    let chunk = rx.try_read(3).unwrap();
    assert_eq!(chunk.len(), 3);
    assert_eq!((chunk.get(0), chunk.read(2)), (Some(&0), 2));
    assert_eq!(chunk.release(2), Ok(()));
    assert_eq!(rx.position(), 2);
    let chunk = rx.try_read(8).unwrap();
    assert_eq!(chunk.iter().collect::<Vec<_>>(), [2, 3, 4]);
    drop(chunk); // releases all
    assert_eq!(rx.position(), 5);
    assert!(matches!(
        rx.read_timeout(1, Duration::from_millis(5)),
        Err(RecvError::Timeout { .. })
    ));
    tx.close();
    assert!(matches!(
        rx.read_timeout(1, PATIENCE),
        Err(RecvError::Closed { .. })
    ));
}

#[test]
fn a_lossy_read_chunk_overwritten_while_read_says_so_and_counts_it() {
    let ring = ring("bc-rchunk-overrun", 4);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    for v in 0..4 {
        tx.try_push(v).unwrap();
    }
    let chunk = rx.try_read(4).unwrap();
    assert_eq!(chunk.len(), 4);
    assert!(
        chunk.get(0).is_none(),
        "never a reference the producer may overwrite"
    );
    // The producer laps two of the lent values while they are read.
    tx.try_push(4).unwrap();
    tx.try_push(5).unwrap();
    let overrun = chunk.release_all().unwrap_err();
    assert_eq!(overrun.whole(), 0, "the oldest lent value went first");
    // It skipped ahead, counting every position it passed over.
    assert_eq!(rx.missed(), rx.position());
    let rest: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(rest.first(), Some(&rx.missed()), "resumes at its position");
    assert_eq!(rest.len() as u64 + rx.missed(), 6);
}

/// Chunks of every size on both sides, with threads: two lossless
/// subscribers read every value once, in order; a lossy one reads an
/// in-order subsequence of whole values whose misses add up exactly.
#[test]
fn chunks_on_both_sides_deliver_every_value_to_lossless_subscribers() {
    const N: u64 = 100_000;
    let ring = ring("bc-chunks-threads", 16);
    let mut tx = ring.producer().unwrap();
    let lossless: Vec<_> = (0..2)
        .map(|k| {
            // Never made lossy: a reader descheduled for long on a busy
            // machine must not turn this test into a lossy one.
            let opts = SubscriberOptions::lossless().demote_after(None);
            let mut rx = ring.subscriber_with(&opts).unwrap();
            std::thread::spawn(move || {
                let mut want = 0u64;
                let mut n = 1 + k;
                while want < N {
                    let chunk = rx.read_timeout(n % 7 + 1, PATIENCE).unwrap();
                    for v in chunk.iter() {
                        assert_eq!(v, want);
                        want += 1;
                    }
                    chunk.release_all().unwrap();
                    n += 1;
                }
                assert_eq!(rx.missed(), 0);
            })
        })
        .collect();
    let mut lossy_rx = ring.subscriber_with(&SubscriberOptions::lossy()).unwrap();
    let lossy = std::thread::spawn(move || {
        let mut read = 0u64;
        let mut last = None;
        loop {
            let chunk = match lossy_rx.read_timeout(5, PATIENCE) {
                Ok(chunk) => chunk,
                Err(RecvError::Closed { .. }) => break,
                Err(e) => panic!("{e}"),
            };
            let first = chunk.position();
            let values: Vec<u64> = chunk.iter().collect();
            let whole = match chunk.release_all() {
                Ok(()) => values.len(),
                Err(overrun) => overrun.whole(),
            };
            for (i, &v) in values[..whole].iter().enumerate() {
                assert_eq!(v, first + i as u64, "a whole value is its position's");
                assert!(last < Some(v), "in order");
                last = Some(v);
            }
            read += whole as u64;
        }
        assert_eq!(read + lossy_rx.missed(), N, "read and missed add up");
    });
    let mut v = 0u64;
    let mut n = 0usize;
    while v < N {
        let mut chunk = tx.reserve_timeout(n % 9 + 1, PATIENCE).unwrap();
        let filled = chunk.fill_from_iter(v..N);
        chunk.commit(filled);
        v += filled as u64;
        n += 1;
    }
    for r in lossless {
        r.join().unwrap();
    }
    tx.close();
    lossy.join().unwrap();
}

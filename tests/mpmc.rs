//! The MPMC ring in one process: values once each, per-producer order, the
//! guards' drop rules, and `try_*` around a position still being written.
//! (Between processes: `mpmc_cross_process.rs`; dead holders: `liveness.rs`.)

#[macro_use]
mod common;

use common::unique_name;
use shmring::{AfterRun, MessageReceiver, Mpmc, RecvError, WaitStrategy};

fn ring(tag: &str, capacity: usize) -> Mpmc<u64> {
    Mpmc::<u64>::create(&unique_name(tag), capacity).unwrap()
}

#[test]
fn two_producers_two_consumers_deliver_every_value_once_in_producer_order() {
    let ring = ring("2p2c", 8);
    let producers = [ring.producer().unwrap(), ring.producer().unwrap()];
    let consumers = [ring.consumer().unwrap(), ring.consumer().unwrap()];
    let mut seen = Vec::new();
    let mut last = [None::<u64>; 2];
    for seq in 0..500u64 {
        for (id, tx) in producers.iter().enumerate() {
            let v = (id as u64) << 32 | seq;
            let mut pending = Some(v);
            while let Some(v) = pending {
                pending = tx.try_push(v).err().map(shmring::Full::into_inner);
                for rx in &consumers {
                    if let Some(got) = rx.try_pop() {
                        let from = (got >> 32) as usize;
                        assert!(last[from].is_none_or(|l| l < got), "out of order");
                        last[from] = Some(got);
                        seen.push(got);
                    }
                }
            }
        }
    }
    while let Some(got) = consumers[0].try_pop() {
        seen.push(got);
    }
    seen.sort_unstable();
    let expected: Vec<u64> = (0..500).flat_map(|s| [s, 1 << 32 | s]).collect();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(seen, expected, "lost or duplicated values");
    assert_eq!((ring.pushed(), ring.popped()), (1000, 1000));
}

#[test]
fn a_read_slot_is_released_when_dropped() {
    let ring = ring("rslot", 2);
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(1).unwrap();
    tx.try_push(2).unwrap();
    let slot = rx.try_read().unwrap();
    assert_eq!(*slot, 1);
    assert_eq!(
        tx.try_push(3),
        Err(shmring::Full(3)),
        "slot 0 is still lent"
    );
    drop(slot);
    tx.try_push(3).unwrap();
    assert_eq!((rx.try_pop(), rx.try_pop()), (Some(2), Some(3)));
}

#[test]
fn a_write_slot_publishes_only_when_committed() {
    let ring = ring("wslot", 4);
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut slot = tx.try_reserve().unwrap();
    *slot = 5;
    drop(slot); // written but not committed: a skip
    let mut slot = tx.try_reserve().unwrap();
    slot.write(6);
    slot.commit();
    assert_eq!(rx.try_pop(), Some(6));
    assert_eq!(rx.try_pop(), None);
    assert_eq!(ring.pushed(), 2, "both positions were used");
}

#[test]
fn try_pop_waits_for_no_one_behind_a_position_being_written() {
    // Documented on `MpmcConsumer::try_pop`.
    let ring = ring("behind", 4);
    let (a, b, rx) = (
        ring.producer().unwrap(),
        ring.producer().unwrap(),
        ring.consumer().unwrap(),
    );
    let mut slot = a.try_reserve().unwrap();
    b.try_push(2).unwrap();
    assert_eq!(rx.try_pop(), None, "position 0 is claimed, not committed");
    *slot = 1;
    slot.commit();
    assert_eq!((rx.try_pop(), rx.try_pop()), (Some(1), Some(2)));
}

/// As messages (`MessageReceiver`), an MPMC consumer keeps just the run it
/// is asked to keep and goes on with the others, and what a dead consumer
/// held comes one message per run, so that each is decided on its own.
#[test]
fn a_kept_run_does_not_stop_an_mpmc_consumer_and_taken_over_values_come_one_by_one() {
    let ring = ring("runs", 8);
    let tx = ring.producer().unwrap();
    for v in 10..13 {
        tx.try_push(v).unwrap();
    }
    let dead = ring.consumer().unwrap();
    std::mem::forget(dead.try_read().unwrap()); // position 0
    std::mem::forget(dead.try_read().unwrap()); // position 1
    drop(dead); // its record names them

    let mut rx = ring.consumer().unwrap();
    let mut lent = Vec::new();
    let released = rx
        .take_over_runs(&mut |run| {
            lent.push((run.positions(), run.iter().count()));
            match run.positions().start {
                0 => AfterRun::Keep,
                _ => AfterRun::Release,
            }
        })
        .unwrap();
    assert_eq!(
        lent,
        [(0..1, 1), (1..2, 1)],
        "one message per run, oldest first"
    );
    assert_eq!(released, 1);

    let mut got = Vec::new();
    let released = rx
        .recv_runs(8, std::time::Duration::ZERO, &mut |run| {
            let values = run
                .iter()
                .map(|m| u64::from_le_bytes(m.try_into().unwrap()));
            got.push((run.positions(), values.collect::<Vec<_>>()));
            AfterRun::Release
        })
        .unwrap();
    // Position 0 (kept) first; 1 was released; 2 is new: two runs.
    assert_eq!(got, [(0..1, vec![10]), (2..3, vec![12])]);
    assert_eq!(released, 2);
}

/// A stream handle is a producer with a count: it pushes, reserves and
/// closes like one, counting what it committed, and every handle says in
/// its `Debug` which ring it belongs to.
#[test]
fn a_stream_pushes_reserves_and_closes_like_a_producer_and_handles_name_their_ring() {
    let short = std::time::Duration::from_millis(10);
    let ring = ring("stream-calls", 4);
    let mut feed = ring.producer_stream(2).unwrap();
    feed.set_wait_strategy(WaitStrategy::Spin);
    feed.push_timeout(1, short).unwrap();
    let mut slot = feed.reserve_timeout(short).unwrap();
    *slot = 2;
    slot.commit();
    assert_eq!(feed.committed(), 2);

    let tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Sleep);
    for handle in [
        format!("{feed:?}"),
        format!("{tx:?}"),
        format!("{rx:?}"),
        format!("{:?}", tx.try_clone().unwrap()),
    ] {
        assert!(handle.contains(ring.name()), "{handle}");
    }
    assert!(format!("{feed:?}").contains("committed: 2"));
    let slot = rx.try_read().unwrap();
    assert!(format!("{slot:?}").contains("pos: 0"), "{slot:?}");
    drop(slot);

    feed.close();
    assert_eq!(rx.pop_timeout(short).unwrap(), 2);
    let end = rx.pop_timeout(short).unwrap_err();
    assert!(matches!(end, RecvError::Closed { .. }), "{end}");
}

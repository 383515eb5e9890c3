//! The SPSC ring in one process: values in order, the guards' drop rules,
//! and what the counters say. (Between processes: `spsc_cross_process.rs`.)

#[macro_use]
mod common;

use common::unique_name;
use shmring::Spsc;

fn ring(tag: &str, capacity: usize) -> Spsc<u64> {
    Spsc::<u64>::create(&unique_name(tag), capacity).unwrap()
}

#[test]
fn values_come_out_once_in_order_across_many_laps() {
    let ring = ring("order", 4);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut next = 0;
    for v in 0..1000u64 {
        if tx.try_push(v).is_err() {
            while let Some(got) = rx.try_pop() {
                assert_eq!(got, next);
                next += 1;
            }
            tx.try_push(v).unwrap();
        }
    }
    while let Some(got) = rx.try_pop() {
        assert_eq!(got, next);
        next += 1;
    }
    assert_eq!(next, 1000);
    assert_eq!((ring.pushed(), ring.popped()), (1000, 1000));
}

#[test]
fn a_full_ring_gives_the_value_back() {
    let ring = ring("full", 2);
    let mut tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    tx.try_push(2).unwrap();
    assert_eq!(tx.try_push(3), Err(shmring::Full(3)));
}

#[test]
fn a_write_chunk_dropped_uncommitted_publishes_nothing() {
    let ring = ring("wdrop", 8);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut chunk = tx.try_reserve(4).unwrap();
    assert_eq!(chunk.fill_from_iter(10..), 4);
    drop(chunk);
    assert_eq!(rx.try_pop(), None);
    let mut chunk = tx.try_reserve(4).unwrap();
    chunk.fill_from_iter(20..);
    chunk.commit(2); // only the first two
    assert_eq!(rx.try_pop(), Some(20));
    assert_eq!(rx.try_pop(), Some(21));
    assert_eq!(rx.try_pop(), None);
}

#[test]
fn chunks_that_wrap_past_the_last_slot_write_and_lend_every_value_in_order() {
    let ring = ring("wrapchunk", 8);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut next = 0u64;
    // Every start slot, every length, and fills that stop short of it.
    for start in 0..8u64 {
        for len in 1..=8usize {
            for short in [0, len / 2] {
                while ring.pushed() % 8 != start {
                    tx.try_push(u64::MAX).unwrap();
                    rx.try_pop().unwrap();
                }
                let mut chunk = tx.try_reserve(len).unwrap();
                assert_eq!(chunk.len(), len);
                let want: Vec<u64> = (next..).take(len - short).collect();
                assert_eq!(chunk.fill_from_iter(want.iter().copied()), want.len());
                chunk.commit(want.len());
                next += len as u64;
                let chunk = rx.try_read(8).unwrap();
                assert_eq!(chunk.iter().copied().collect::<Vec<_>>(), want);
                assert_eq!(
                    (0..chunk.len()).map(|i| chunk.read(i)).collect::<Vec<_>>(),
                    want
                );
            }
        }
    }
}

#[test]
fn a_read_chunk_dropped_releases_what_it_lent_and_release_n_keeps_the_rest() {
    let ring = ring("rdrop", 8);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for v in 0..6 {
        tx.try_push(v).unwrap();
    }
    let chunk = rx.try_read(2).unwrap();
    assert_eq!(chunk.iter().copied().collect::<Vec<_>>(), [0, 1]);
    drop(chunk); // released, like every read guard
    let chunk = rx.try_read(3).unwrap();
    assert_eq!(chunk.read(0), 2);
    chunk.release(1); // 3 and 4 stay in the ring
    assert_eq!(rx.try_pop(), Some(3));
    assert_eq!(rx.try_pop(), Some(4));
    assert_eq!(rx.try_pop(), Some(5));
    assert_eq!(ring.popped(), 6);
}

#[test]
fn committing_an_unwritten_slot_delivers_the_previous_laps_value() {
    // Documented on `WriteChunk::commit`: slots are not cleared.
    let ring = ring("stale", 2);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(7).unwrap();
    tx.try_push(8).unwrap();
    assert_eq!((rx.try_pop(), rx.try_pop()), (Some(7), Some(8)));
    tx.try_reserve(1).unwrap().commit(1);
    assert_eq!(rx.try_pop(), Some(7));
}

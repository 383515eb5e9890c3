//! The byte ring in one process: framing, wraparound, edge cases, grants,
//! batches, blocking, and a hostile peer writing into the segment.

#[macro_use]
mod common;

use std::fs::OpenOptions as FileOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;
use shmring::{header_offsets as off, ByteRing, Error, RecvError, SendError, Spsc};

const SHORT: Duration = Duration::from_millis(20);

fn ring(capacity: usize) -> ByteRing {
    ByteRing::create(&unique_name("bytes"), capacity).unwrap()
}

/// The bytes of message `seq`: a function of it, so a test can check them.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn recv(rx: &mut shmring::ByteConsumer) -> Vec<u8> {
    rx.try_recv().unwrap().expect("a message").to_vec()
}

/// Write `bytes` at `offset` of the data area, as a hostile peer would.
fn poke_data(name: &str, offset: u64, bytes: &[u8]) {
    let data = (off::HEADER_LEN as u64).next_multiple_of(128);
    let f = FileOptions::new().write(true).open(shm_path(name)).unwrap();
    f.write_all_at(bytes, data + offset).unwrap();
}

fn poke_header(name: &str, offset: usize, value: u64) {
    let f = FileOptions::new().write(true).open(shm_path(name)).unwrap();
    f.write_all_at(&value.to_le_bytes(), offset as u64).unwrap();
}

#[test]
fn messages_of_every_small_length_arrive_intact_and_in_order() {
    let ring = ring(1024);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // Enough traffic to wrap the 1 KiB ring many times, with padding.
    for seq in 0..2000u64 {
        let len = (seq as usize * 7) % (ring.max_message_len() + 1);
        tx.try_send(&message(seq, len)).unwrap();
        assert_eq!(recv(&mut rx), message(seq, len), "message {seq}");
    }
    assert!(rx.try_recv().unwrap().is_none());
    assert_eq!(ring.bytes_written(), ring.bytes_released());
}

#[test]
fn capacity_is_a_power_of_two_with_a_minimum_and_a_stated_maximum() {
    assert_eq!(ring(1).capacity(), 64);
    assert_eq!(ring(1000).capacity(), 1024);
    let r = ring(1024);
    assert_eq!(r.max_message_len(), 512 - 16);
    assert!(matches!(
        ByteRing::create(&unique_name("zero"), 0),
        Err(Error::ZeroCapacity)
    ));
}

#[test]
fn a_message_of_max_length_fits_wherever_the_ring_stands() {
    let ring = ring(1024);
    let max = ring.max_message_len();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // Shift the write position by every record offset, then send the
    // largest message: it must fit (with padding where needed) once the
    // consumer has caught up.
    for shift in 0..64u64 {
        tx.try_send(&message(shift, (shift as usize % 4) * 16))
            .unwrap();
        recv(&mut rx);
        tx.try_send(&message(shift, max)).unwrap();
        assert_eq!(recv(&mut rx), message(shift, max));
    }
    match tx.try_send(&vec![0; max + 1]) {
        Err(SendError::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(matches!(
        tx.send_timeout(&vec![0; 1 << 20], SHORT),
        Err(SendError::MessageTooLarge { .. })
    ));
}

#[test]
fn a_message_exactly_filling_the_tail_needs_no_padding() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // Two 112-byte messages take 128 bytes each: the second ends exactly at
    // the end of the area, and the third starts at offset 0.
    for seq in 0..3 {
        tx.try_send(&message(seq, 112)).unwrap();
        assert_eq!(recv(&mut rx), message(seq, 112));
    }
    assert_eq!(
        ring.bytes_written(),
        3 * 128,
        "no padding record was written"
    );
}

#[test]
fn a_message_that_does_not_fit_before_the_end_is_preceded_by_padding() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // Two records of 96 bytes leave 64 before the end; a 128-byte record
    // does not fit there, so 64 bytes of padding precede it at offset 0.
    for seq in 0..2 {
        tx.try_send(&message(seq, 80)).unwrap();
        assert_eq!(recv(&mut rx), message(seq, 80));
    }
    tx.try_send(&message(2, 100)).unwrap();
    assert_eq!(ring.bytes_written(), 2 * 96 + 64 + 128);
    assert_eq!(recv(&mut rx), message(2, 100));
    assert_eq!(ring.bytes_released(), ring.bytes_written());
}

#[test]
fn empty_messages_are_allowed() {
    let ring = ring(64);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for _ in 0..100 {
        tx.try_send(&[]).unwrap();
        assert!(recv(&mut rx).is_empty());
    }
}

#[test]
fn full_and_empty_are_reported_not_waited_on() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(rx.try_recv().unwrap().is_none());
    assert!(matches!(
        rx.recv_timeout(SHORT),
        Err(RecvError::Timeout { .. })
    ));
    tx.try_send(&[1; 100]).unwrap();
    tx.try_send(&[2; 100]).unwrap();
    assert!(matches!(tx.try_send(&[3; 1]), Err(SendError::Full)));
    assert!(matches!(
        tx.send_timeout(&[3; 1], SHORT),
        Err(SendError::Timeout { .. })
    ));
    assert_eq!(recv(&mut rx), vec![1; 100]);
    tx.try_send(&[3; 1]).unwrap();
}

#[test]
fn grants_write_in_place_abort_and_shrink() {
    let ring = ring(1024);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();

    let mut g = tx.try_reserve(5).unwrap();
    assert_eq!(g.len(), 5);
    assert_eq!(g.as_ptr() as usize % 16, 0, "payloads are 16-byte aligned");
    g.copy_from_slice(b"hello");
    g.commit();

    drop(tx.try_reserve(40).unwrap()); // aborted: padding, never delivered
    tx.try_reserve(8).unwrap().abort();

    let mut g = tx.try_reserve(100).unwrap();
    g[..3].copy_from_slice(b"abc");
    g.commit_len(3); // the other 97 bytes become padding

    tx.try_send(b"last").unwrap();
    assert_eq!(recv(&mut rx), b"hello");
    assert_eq!(recv(&mut rx), b"abc");
    assert_eq!(recv(&mut rx), b"last");
    assert!(rx.try_recv().unwrap().is_none());
    assert_eq!(
        ring.bytes_released(),
        ring.bytes_written(),
        "padding was released too"
    );
}

#[test]
#[should_panic(expected = "exceeds")]
fn committing_more_than_reserved_panics() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    tx.try_reserve(4).unwrap().commit_len(5);
}

#[test]
fn a_batch_lends_every_committed_message_and_releases_them_at_once() {
    let ring = ring(4096);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for seq in 0..20 {
        tx.try_send(&message(seq, seq as usize * 3)).unwrap();
    }
    drop(tx.try_reserve(10).unwrap());
    let before = ring.bytes_released();
    {
        let batch = rx.read_batch().unwrap();
        assert_eq!(batch.len(), 20);
        for (seq, msg) in batch.iter().enumerate() {
            assert_eq!(msg, message(seq as u64, seq * 3));
        }
        assert_eq!(ring.bytes_released(), before, "nothing released while lent");
    }
    assert_eq!(ring.bytes_released(), ring.bytes_written());
    assert!(rx.read_batch().unwrap().is_empty());
}

#[test]
fn many_producers_in_one_process_keep_their_own_order() {
    let ring = ring(4096);
    let mut rx = ring.consumer().unwrap();
    let per = 20_000u64;
    std::thread::scope(|s| {
        for p in 0..3u64 {
            let mut tx = ring.producer().unwrap();
            s.spawn(move || {
                for seq in 0..per {
                    let mut body = (p << 32 | seq).to_le_bytes().to_vec();
                    body.resize(8 + (seq % 50) as usize, p as u8);
                    tx.send_timeout(&body, Duration::from_secs(30)).unwrap();
                }
            });
        }
        let mut next = [0u64; 3];
        for _ in 0..3 * per {
            let msg = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            let v = u64::from_le_bytes(msg[..8].try_into().unwrap());
            let (p, seq) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert_eq!(seq, next[p], "producer {p} out of order");
            assert_eq!(msg.len(), 8 + (seq % 50) as usize);
            assert!(msg[8..].iter().all(|&b| b == p as u8));
            next[p] += 1;
        }
    });
    assert!(rx.try_recv().unwrap().is_none());
}

#[test]
fn the_consumer_role_is_exclusive_and_resumes_at_the_release_point() {
    let ring = ring(1024);
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    assert!(matches!(ring.consumer(), Err(Error::RoleTaken { .. })));
    drop(rx);
    for seq in 0..3 {
        tx.try_send(&message(seq, 10)).unwrap();
    }
    let mut rx = ring.consumer().unwrap();
    assert_eq!(recv(&mut rx), message(0, 10));
    drop(rx);
    let mut rx = ring.consumer().unwrap();
    assert_eq!(recv(&mut rx), message(1, 10));
    assert_eq!(recv(&mut rx), message(2, 10));
}

#[test]
fn an_uncommitted_grant_stalls_the_consumer_with_a_named_position() {
    let ring = ring(1024);
    let mut tx = ring.producer().unwrap();
    let mut other = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_send(b"first").unwrap();
    let held = tx.try_reserve(10).unwrap();
    other.try_send(b"behind").unwrap();
    assert_eq!(recv(&mut rx), b"first");
    let position = ring.bytes_released();
    match rx.recv_timeout(SHORT) {
        Err(RecvError::Stalled { position: p, .. }) => assert_eq!(p, position),
        other => panic!("expected Stalled, got {other:?}"),
    }
    drop(held);
    assert_eq!(recv(&mut rx), b"behind");
}

#[test]
fn blocking_calls_wake_up_across_threads() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(shmring::WaitStrategy::Sleep);
    tx.set_wait_strategy(shmring::WaitStrategy::Sleep);
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..2000u64 {
                tx.send_timeout(&message(seq, 100), Duration::from_secs(30))
                    .unwrap();
            }
        });
        for seq in 0..2000u64 {
            let msg = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(*msg, message(seq, 100));
        }
    });
}

#[test]
fn another_kind_of_segment_is_refused() {
    let name = unique_name("kind");
    let _spsc = Spsc::<u64>::create(&name, 16).unwrap();
    assert!(matches!(
        ByteRing::open(&name),
        Err(Error::KindMismatch { .. })
    ));
    let bytes = ring(64);
    assert!(matches!(
        Spsc::<u64>::open(bytes.name()),
        Err(Error::KindMismatch { .. })
    ));
}

#[test]
fn a_hostile_length_is_corrupt_not_an_overread() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_send(&[7; 20]).unwrap();
    // Length word of the record at offset 0: 2^32 - 1 bytes, a message.
    poke_data(ring.name(), 8, &((1u64 << 32) | 0xffff_ffff).to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt { .. })));
    // A length inside the ring but past the write position.
    poke_data(ring.name(), 8, &((1u64 << 32) | 100).to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt { .. })));
    assert!(matches!(rx.read_batch(), Err(RecvError::Corrupt { .. })));
    // A length inside the ring and before the write position, but longer
    // than any message may be: a reader sizing buffers by
    // `max_message_len` must never see it.
    tx.try_send(&[8; 100]).unwrap();
    assert!(ring.max_message_len() < 150);
    poke_data(ring.name(), 8, &((1u64 << 32) | 150).to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt { .. })));
    // An unknown kind.
    poke_data(ring.name(), 8, &((9u64 << 32) | 20).to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt { .. })));
    // Restored, the record reads again.
    poke_data(ring.name(), 8, &((1u64 << 32) | 20).to_le_bytes());
    assert_eq!(recv(&mut rx), vec![7; 20]);
}

#[test]
fn a_hostile_index_is_corrupt_not_an_overwrite() {
    let ring = ring(256);
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_send(&[1; 10]).unwrap();
    // The consumer's head, far from the tail: once the producer needs to
    // read it, it refuses rather than overwrite what it cannot account for.
    poke_header(ring.name(), off::HEAD, u64::MAX - 1000);
    tx.try_send(&[2; 112]).unwrap(); // still fits by the head it last read
    assert!(matches!(
        tx.try_send(&[2; 112]),
        Err(SendError::Corrupt { .. })
    ));
    poke_header(ring.name(), off::TAIL, 1 << 40);
    assert!(matches!(rx.pending(), Err(Error::Corrupt { .. })));
}

#[test]
fn an_unaligned_position_is_corrupt_not_a_misaligned_access() {
    // Found by the hostile_peer fuzz target: positions off the 16-byte grid
    // once made header words misaligned atomics.
    let ring = ring(256);
    poke_header(ring.name(), off::HEAD, 5);
    assert!(matches!(ring.consumer(), Err(Error::Corrupt { .. })));
    poke_header(ring.name(), off::HEAD, 0);
    let mut rx = ring.consumer().unwrap();
    poke_header(ring.name(), off::TAIL, 21);
    let mut tx = ring.producer().unwrap();
    assert!(matches!(tx.try_send(b"x"), Err(SendError::Corrupt { .. })));
    assert!(rx.try_recv().unwrap().is_none());
}

#[test]
fn copy_into_copies_every_length_byte_for_byte() {
    let name = unique_name("copy-into");
    let ring = ByteRing::create(&name, 4096).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = vec![0xAA; 3];
    for len in 0..40usize {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        tx.try_send(&msg).unwrap();
        rx.try_recv().unwrap().unwrap().copy_into(&mut buf);
        assert_eq!(buf, msg, "length {len}");
    }
}

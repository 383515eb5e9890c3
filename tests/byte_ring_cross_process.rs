//! The byte ring across processes: two producer processes send a million
//! messages each, of random length 1..=4096, whose every byte is a function
//! of (producer, sequence); the consumer checks every byte and each
//! producer's order.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use shmring::{ByteRing, WaitStrategy};

const PRODUCERS: usize = 2;
const PER_PRODUCER: u64 = 1_000_000;
const MAX_LEN: u64 = 4096;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Three processes share two cores: spin briefly, then sleep.
const SHARED_CORES: WaitStrategy = WaitStrategy::SpinThenSleep {
    spins: 256,
    yields: 4,
};

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Message `seq` of producer `p`: its first byte is `p`, its length and
/// every other byte follow from (p, seq).
fn fill(p: usize, seq: u64, out: &mut Vec<u8>) {
    let key = mix((p as u64) << 40 | seq);
    let len = 1 + (key % MAX_LEN) as usize;
    out.clear();
    let mut k = 0u64;
    while out.len() < len {
        out.extend_from_slice(&mix(key ^ k).to_le_bytes());
        k += 1;
    }
    out.truncate(len);
    out[0] = p as u8;
}

children!(child);

/// What this binary does when re-run as a child (see `tests/common`).
fn child(role: &str) {
    assert_eq!(role, "producer");
    let ring = ByteRing::open(&arg::<String>("RING")).unwrap();
    let p: usize = arg("ID");
    let mut tx = ring.producer().unwrap();
    tx.set_wait_strategy(SHARED_CORES);
    let mut body = Vec::with_capacity(MAX_LEN as usize);
    for seq in 0..PER_PRODUCER {
        fill(p, seq, &mut body);
        // Half the messages are written in place, half copied in.
        if seq.is_multiple_of(2) {
            let mut grant = tx.reserve_timeout(body.len(), TIMEOUT).unwrap();
            grant.copy_from_slice(&body);
            grant.commit();
        } else {
            tx.send_timeout(&body, TIMEOUT).unwrap();
        }
    }
}

#[test]
fn two_producer_processes_deliver_every_byte_in_order() {
    let ring = ByteRing::create(&unique_name("bytes-xp"), 256 * 1024).unwrap();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(SHARED_CORES);
    let children: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            spawn_child(
                "producer",
                &[("RING", ring.name().to_owned()), ("ID", p.to_string())],
            )
        })
        .collect();
    let mut next = [0u64; PRODUCERS];
    let mut expected = Vec::with_capacity(MAX_LEN as usize);
    let mut received = 0u64;
    let mut batches = 0u64;
    while received < PRODUCERS as u64 * PER_PRODUCER {
        // Alternate single receives and batches, so both paths are checked.
        let mut check = |msg: &[u8]| {
            let p = msg[0] as usize;
            assert!(p < PRODUCERS, "message from unknown producer {p}");
            assert!(next[p] < PER_PRODUCER, "producer {p} sent too much");
            fill(p, next[p], &mut expected);
            assert!(
                msg == expected.as_slice(),
                "producer {p} message {}: {} bytes, expected {}",
                next[p],
                msg.len(),
                expected.len()
            );
            next[p] += 1;
        };
        if batches.is_multiple_of(2) {
            let batch = rx.read_batch().unwrap();
            if batch.is_empty() {
                drop(batch);
                let msg = rx.recv_timeout(TIMEOUT).unwrap();
                check(&msg);
                received += 1;
            } else {
                for msg in &batch {
                    check(msg);
                }
                received += batch.len() as u64;
            }
        } else {
            let msg = rx.recv_timeout(TIMEOUT).unwrap();
            check(&msg);
            received += 1;
        }
        batches += 1;
    }
    for child in children {
        child.wait_success(TIMEOUT);
    }
    assert_eq!(next, [PER_PRODUCER; PRODUCERS]);
    assert!(rx.try_recv().unwrap().is_none(), "nothing extra arrives");
    assert_eq!(ring.bytes_released(), ring.bytes_written());
}

//! `CreateOptions::zero_after_use`: what a reader releases is zeroed in
//! shared memory, and so is the data area when the segment goes (its last
//! user leaving, or a removal of a ring nobody uses). Each test runs the
//! same steps without the option too, and finds the values there: so a
//! test that finds them gone can only pass because they were zeroed.
//!
//! The segment's bytes are read through the file (as anyone who may open
//! it could), by a descriptor opened before the name goes.

#[macro_use]
mod common;

use std::io::{Read, Seek};

use common::*;
use shmring::{header_offsets as off, ByteRing, CreateOptions, Error, Mpmc, Spsc};

/// A value no ring writes by chance; each test pushes `SECRET + i`.
const SECRET: u64 = 0x5EC2_E7C0_FFEE_0000;
const MESSAGE: &[u8] = b"a secret message, 32 bytes long!";

fn opts(zero: bool) -> CreateOptions {
    CreateOptions::new().zero_after_use(zero)
}

/// Whether `bytes` hold `needle` anywhere.
fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// How many of `SECRET .. SECRET + n` the bytes hold.
fn secrets_in(bytes: &[u8], n: u64) -> usize {
    (0..n)
        .filter(|i| holds(bytes, &(SECRET + i).to_ne_bytes()))
        .count()
}

/// The segment file's bytes now.
fn contents(file: &mut std::fs::File) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

fn open_file(name: &str) -> std::fs::File {
    std::fs::File::open(shm_path(name)).unwrap()
}

/// SPSC: values popped one at a time and values released by a read
/// chunk are zeroed; values still in the ring are not (the producer's
/// data is the consumer's until it releases it).
#[test]
fn spsc_values_are_zeroed_as_they_are_released() {
    for zero in [false, true] {
        let name = unique_name("zero-spsc");
        let ring = Spsc::<u64>::create_with(&name, 8, &opts(zero)).unwrap();
        let mut file = open_file(&name);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        // Eight values, wrapping the ring: a chunk's release covers two runs.
        for i in 0..6 {
            tx.try_push(SECRET + i).unwrap();
        }
        assert_eq!(rx.try_pop(), Some(SECRET));
        assert_eq!(rx.try_pop(), Some(SECRET + 1));
        for i in 6..8 {
            tx.try_push(SECRET + i).unwrap();
        }
        let chunk = rx.try_read(4).unwrap();
        assert_eq!(chunk.len(), 4);
        chunk.release(3); // SECRET + 2 ..= 4; 5 stays
        let bytes = contents(&mut file);
        let released = (0..5).filter(|i| holds(&bytes, &(SECRET + i).to_ne_bytes()));
        assert_eq!(released.count(), if zero { 0 } else { 5 }, "zero {zero}");
        assert_eq!(
            secrets_in(&bytes, 8) - secrets_in(&bytes, 5),
            3,
            "unread values stay"
        );
        assert_eq!(rx.try_pop(), Some(SECRET + 5), "nothing committed is lost");
    }
}

/// MPMC: values popped and values read in place are zeroed once released.
#[test]
fn mpmc_values_are_zeroed_as_they_are_released() {
    for zero in [false, true] {
        let name = unique_name("zero-mpmc");
        let ring = Mpmc::<u64>::create_with(&name, 4, &opts(zero)).unwrap();
        let mut file = open_file(&name);
        let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        for i in 0..3 {
            tx.try_push(SECRET + i).unwrap();
        }
        assert_eq!(rx.try_pop(), Some(SECRET));
        let slot = rx.try_read().unwrap();
        assert_eq!(*slot, SECRET + 1);
        drop(slot);
        let bytes = contents(&mut file);
        assert_eq!(
            secrets_in(&bytes, 2),
            if zero { 0 } else { 2 },
            "zero {zero}"
        );
        assert!(holds(&bytes, &(SECRET + 2).to_ne_bytes()), "unread stays");
    }
}

/// Byte ring: a message received and a batch released are zeroed,
/// framing included; the ring goes on working over the zeroed space.
#[test]
fn byte_messages_are_zeroed_as_they_are_released() {
    for zero in [false, true] {
        let name = unique_name("zero-bytes");
        let ring = ByteRing::create_with(&name, 256, &opts(zero)).unwrap();
        let mut file = open_file(&name);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_send(MESSAGE).unwrap();
        assert_eq!(&*rx.try_recv().unwrap().unwrap(), MESSAGE);
        tx.try_send(MESSAGE).unwrap();
        tx.try_send(MESSAGE).unwrap();
        drop(rx.read_batch().unwrap());
        assert_eq!(holds(&contents(&mut file), MESSAGE), !zero, "zero {zero}");
        // Round the ring several times over zeroed records.
        for i in 0..40u8 {
            tx.try_send(&[i; 40]).unwrap();
            assert_eq!(&*rx.try_recv().unwrap().unwrap(), &[i; 40]);
        }
        assert_eq!(rx.try_recv().unwrap().map(|m| m.len()), None);
    }
}

/// What no reader took is zeroed when the last user leaves, before the
/// name goes.
#[test]
fn what_is_left_in_the_ring_is_zeroed_when_its_last_user_leaves() {
    for zero in [false, true] {
        let name = unique_name("zero-last");
        let ring = Spsc::<u64>::create_with(&name, 8, &opts(zero)).unwrap();
        let mut file = open_file(&name);
        let mut tx = ring.producer().unwrap();
        for i in 0..4 {
            tx.try_push(SECRET + i).unwrap();
        }
        drop((tx, ring));
        assert!(!exists(&name), "the last user removed the name");
        assert_eq!(
            secrets_in(&contents(&mut file), 4),
            if zero { 0 } else { 4 }
        );
    }
}

/// A ring removed while in use is not zeroed then (its users still read
/// it: nothing committed is lost), but by its last user as it leaves.
#[test]
fn a_ring_removed_in_use_is_zeroed_by_its_last_user() {
    for zero in [false, true] {
        let name = unique_name("zero-removed");
        let ring = Spsc::<u64>::create_with(&name, 8, &opts(zero)).unwrap();
        let mut file = open_file(&name);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_push(SECRET).unwrap();
        tx.try_push(SECRET + 1).unwrap();
        shmring::remove(&name).unwrap();
        assert!(!exists(&name));
        assert_eq!(secrets_in(&contents(&mut file), 2), 2, "in use: kept");
        assert_eq!(rx.try_pop(), Some(SECRET));
        drop((tx, rx, ring));
        assert_eq!(
            secrets_in(&contents(&mut file), 2),
            if zero { 0 } else { 2 }
        );
    }
}

/// A ring whose users all died is zeroed by the removal that finds it
/// stale, and a persisted one by `remove`.
#[test]
fn a_ring_nobody_uses_is_zeroed_by_its_removal() {
    for zero in [false, true] {
        for persisted in [false, true] {
            let name = unique_name("zero-stale");
            let _cleanup = Unlink(name.clone());
            let code = reap(fork_child!({
                let ring =
                    Spsc::<u64>::create_with(&name, 8, &opts(zero).persist(persisted)).unwrap();
                let mut tx = ring.producer().unwrap();
                tx.try_push(SECRET).unwrap();
                if persisted {
                    drop((tx, ring)); // left properly; the name stays
                } else {
                    std::mem::forget((tx, ring)); // dies without leaving
                }
                0
            }));
            assert_eq!(code, 0);
            let mut file = open_file(&name);
            if persisted {
                shmring::remove(&name).unwrap();
            } else {
                assert!(
                    eventually(|| shmring::remove_if_stale(&name).unwrap()),
                    "stale"
                );
            }
            assert!(!exists(&name));
            let left = secrets_in(&contents(&mut file), 1);
            assert_eq!(
                left,
                usize::from(!zero),
                "zero {zero} persisted {persisted}"
            );
        }
    }
}

/// A ring that asks for zeroing is written as format 8, which a shmring
/// that predates the option refuses rather than ignore; one that does
/// not stays format 7. A feature this library does not know is refused
/// with a typed error naming it.
#[test]
fn a_ring_asking_for_features_says_so_and_unknown_ones_are_refused() {
    let version = |name: &str| {
        let bytes = std::fs::read(shm_path(name)).unwrap();
        u32::from_le_bytes(bytes[off::VERSION..off::VERSION + 4].try_into().unwrap())
    };
    let plain = unique_name("zero-v7");
    let _plain = Spsc::<u64>::create(&plain, 8).unwrap();
    assert_eq!(version(&plain), 7);
    assert!(!shmring::inspect(&plain).unwrap().zero_after_use);
    let name = unique_name("zero-v8");
    let ring = Spsc::<u64>::create_with(&name, 8, &opts(true)).unwrap();
    assert_eq!(version(&name), 8);
    assert!(shmring::inspect(&name).unwrap().zero_after_use);
    // An opener honours it without asking.
    let opened = Spsc::<u64>::open(&name).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), opened.consumer().unwrap());
    let mut file = open_file(&name);
    tx.try_push(SECRET).unwrap();
    assert_eq!(rx.try_pop(), Some(SECRET));
    assert_eq!(secrets_in(&contents(&mut file), 1), 0);
    // A newer library's feature bit.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &3u32.to_le_bytes(), off::FEATURES as u64).unwrap();
    match Spsc::<u64>::open(&name) {
        Err(Error::UnknownFeatures { name: n, features }) => {
            assert_eq!((n, features), (name.clone(), 2));
        }
        other => panic!("{other:?}"),
    }
}

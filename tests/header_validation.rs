//! Every way a header can be wrong, reached by writing the bad bytes into a
//! real segment and opening it.

#[macro_use]
mod common;

use std::fs::OpenOptions as FileOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;
use shmring::{header_offsets as off, Error, OpenOptions, Spsc};

/// A fresh u64 ring and its name.
fn ring() -> (Spsc<u64>, String) {
    let name = unique_name("hdr");
    (Spsc::<u64>::create(&name, 16).unwrap(), name)
}

fn poke(name: &str, offset: usize, bytes: &[u8]) {
    let f = FileOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap();
    f.write_all_at(bytes, offset as u64).unwrap();
}

fn open(name: &str) -> Result<Spsc<u64>, Error> {
    Spsc::<u64>::open_with(
        name,
        &OpenOptions::new().init_timeout(Duration::from_millis(50)),
    )
}

#[test]
fn a_valid_segment_opens() {
    let (ring, name) = ring();
    let other = open(&name).unwrap();
    assert_eq!(other.capacity(), ring.capacity());
    assert_eq!(other.creator_pid(), std::process::id());
}

#[test]
fn bad_magic() {
    let (_ring, name) = ring();
    poke(&name, off::MAGIC, b"NOTARING");
    assert!(matches!(open(&name), Err(Error::BadMagic { .. })));
}

#[test]
fn version_mismatch() {
    let (_ring, name) = ring();
    poke(&name, off::VERSION, &99u32.to_le_bytes());
    let err = open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionMismatch {
                found: 99,
                expected: 7,
                name: ref n,
            } if *n == name
        ),
        "{err}"
    );
}

#[test]
fn unknown_kind() {
    let (_ring, name) = ring();
    poke(&name, off::KIND, &7u32.to_le_bytes());
    let err = open(&name).unwrap_err();
    assert!(matches!(err, Error::KindMismatch { .. }), "{err}");
    assert!(err.to_string().contains("code 7"), "{err}");
}

#[test]
fn another_kind_of_segment() {
    let name = unique_name("kind");
    let _bytes = shmring::ByteRing::create(&name, 4096).unwrap();
    let err = open(&name).unwrap_err();
    assert!(
        matches!(err, Error::KindMismatch { ref found, .. } if found == "bytes"),
        "{err}"
    );
}

#[test]
fn type_mismatch_names_both_layouts() {
    let (_ring, name) = ring();
    let err = Spsc::<u32>::open(&name).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("size 8") && msg.contains("size 4"), "{msg}");
    // Same size and alignment, different type: the fingerprint tells.
    assert!(matches!(
        Spsc::<i64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    // A tampered fingerprint is refused too.
    poke(&name, off::FINGERPRINT, &1u64.to_le_bytes());
    assert!(matches!(open(&name), Err(Error::TypeMismatch { .. })));
}

#[test]
fn size_mismatch_when_file_grew_or_header_lies() {
    let (_ring, name) = ring();
    let f = FileOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + 4096).unwrap();
    assert!(matches!(open(&name), Err(Error::SizeMismatch { .. })));
    f.set_len(len).unwrap();
    assert!(open(&name).is_ok());
    poke(&name, off::SEGMENT_LEN, &(len * 2).to_le_bytes());
    assert!(matches!(open(&name), Err(Error::SizeMismatch { .. })));
}

#[test]
fn impossible_capacity_is_corrupt() {
    let (_ring, name) = ring();
    for bad in [0u64, 3, 32, 1 << 40, u64::MAX] {
        poke(&name, off::CAPACITY, &bad.to_le_bytes());
        let err = open(&name).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }),
            "capacity {bad}: {err}"
        );
    }
}

#[test]
fn impossible_slot_size_is_corrupt() {
    let (_ring, name) = ring();
    poke(&name, off::SLOT_SIZE, &1u64.to_le_bytes());
    assert!(matches!(open(&name), Err(Error::Corrupt { .. })));
}

#[test]
fn an_unfinished_header_times_out() {
    let (_ring, name) = ring();
    poke(&name, off::STATE, &0u32.to_le_bytes());
    let err = open(&name).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
}

#[test]
fn an_impossible_state_is_corrupt() {
    let (_ring, name) = ring();
    poke(&name, off::STATE, &77u32.to_le_bytes());
    assert!(matches!(open(&name), Err(Error::Corrupt { .. })));
}

#[test]
fn a_foreign_file_is_not_a_ring() {
    let name = unique_name("foreign");
    let _cleanup = Unlink(name.clone());
    std::fs::write(shm_path(&name), vec![0xA5u8; 16384]).unwrap();
    assert!(matches!(open(&name), Err(Error::BadMagic { .. })));
}

#[test]
fn a_file_smaller_than_a_header_is_refused() {
    let name = unique_name("tiny");
    let _cleanup = Unlink(name.clone());
    std::fs::write(shm_path(&name), b"SHMRING\0").unwrap();
    let err = open(&name).unwrap_err();
    assert!(
        matches!(err, Error::SegmentTooSmall { len: 8, .. }),
        "{err}"
    );
}

#[test]
fn an_all_zero_segment_is_still_initializing() {
    let name = unique_name("zero");
    let _cleanup = Unlink(name.clone());
    std::fs::write(shm_path(&name), vec![0u8; off::HEADER_LEN + 4096]).unwrap();
    assert!(matches!(open(&name), Err(Error::NotReady { .. })));
}

#[test]
fn a_hostile_index_is_corrupt_not_an_overread() {
    let (ring, name) = ring();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(5).unwrap();
    assert_eq!(rx.len().unwrap(), 1);
    poke(&name, off::TAIL, &(1u64 << 40).to_le_bytes());
    assert!(matches!(rx.len(), Err(Error::Corrupt { .. })));
    poke(&name, off::HEAD, &(u64::MAX / 2).to_le_bytes());
    assert!(matches!(tx.free(), Err(Error::Corrupt { .. })));
    // The slots never depended on those indices.
    assert_eq!(rx.try_pop(), Some(5));
    assert_eq!(rx.try_pop(), None);
}

//! Files planted under a segment name and rings corrupted in place, met by
//! open, inspect, list and remove_if_stale: each is refused with its own
//! typed error naming the ring, never a panic, a SIGBUS or a removal.

#[macro_use]
mod common;

use std::fs::OpenOptions as FileOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;
use shmring::{header_offsets as off, Error, Mpmc, OpenOptions, Spsc};

/// shmring's magic number, as a segment starts with it.
const MAGIC: &[u8; 8] = b"SHMRING\0";

/// Write `bytes` at `offset` into the file of segment `name`.
fn poke(name: &str, offset: usize, bytes: &[u8]) {
    let f = FileOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap();
    f.write_all_at(bytes, offset as u64).unwrap();
}

/// Plant a file of `len` bytes starting with `prefix` under a fresh name;
/// removed on drop.
fn plant(tag: &str, prefix: &[u8], len: u64) -> Unlink {
    let name = unique_name(tag);
    let f = std::fs::File::create(shm_path(&name)).unwrap();
    let planted = Unlink(name);
    f.set_len(len).unwrap();
    f.write_all_at(prefix, 0).unwrap();
    planted
}

/// A header-sized file with the magic and format `version`, and nothing else.
fn plant_version(tag: &str, version: u32) -> Unlink {
    let mut prefix = MAGIC.to_vec();
    prefix.extend_from_slice(&version.to_le_bytes());
    plant(tag, &prefix, off::HEADER_LEN as u64)
}

fn open(name: &str) -> Result<Spsc<u64>, Error> {
    Spsc::<u64>::open_with(
        name,
        &OpenOptions::new().init_timeout(Duration::from_millis(50)),
    )
}

/// A power-of-two capacity too large for any segment cannot be laid out:
/// the header lies, and nothing past it is read.
#[test]
fn a_capacity_that_cannot_be_laid_out_is_corrupt_naming_the_ring() {
    let name = unique_name("huge-cap");
    let _ring = Spsc::<u64>::create(&name, 16).unwrap();
    poke(&name, off::CAPACITY, &(1u64 << 62).to_le_bytes());
    let err = open(&name).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Corrupt { name: n, what } if *n == name && what.contains("cannot be laid out")),
        "{err:?}"
    );
    assert!(text.contains(&name) && text.contains("corrupt"), "{text}");
}

#[test]
fn inspecting_an_unknown_ring_kind_is_corrupt_naming_the_ring() {
    let name = unique_name("kind-7");
    let _ring = Spsc::<u64>::create(&name, 16).unwrap();
    poke(&name, off::KIND, &7u32.to_le_bytes());
    let err = shmring::inspect(&name).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { name: n, what } if *n == name && what.contains("unknown ring kind 7")),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
}

/// Format 4 kept liveness in pids and 99 is from the future: whether such
/// a segment is stale cannot be told, so it is never removed as stale.
#[test]
fn remove_if_stale_refuses_a_format_whose_staleness_it_cannot_tell() {
    for version in [4u32, 99] {
        let file = plant_version("v-unknown", version);
        let err = shmring::remove_if_stale(&file.0).unwrap_err();
        assert!(
            matches!(&err, Error::VersionMismatch { name, found, expected: 7 } if *name == file.0 && *found == version),
            "{err:?}"
        );
        assert!(err.to_string().contains(&file.0), "{err}");
        assert!(exists(&file.0), "a segment of format {version} was removed");
    }
}

/// Format 6 segments' users held the kernel's locks too: one that nobody
/// holds a lock on is stale, and removed.
#[test]
fn a_stale_segment_of_an_older_format_is_removed_as_stale() {
    let file = plant_version("v6", 6);
    assert!(shmring::remove_if_stale(&file.0).unwrap());
    assert!(!exists(&file.0));
}

/// Fewer bytes than a magic number: read with `pread`, never mapped.
#[test]
fn remove_if_stale_on_a_file_shorter_than_the_magic_is_segment_too_small() {
    let file = plant("tiny", b"SHMR", 4);
    let err = shmring::remove_if_stale(&file.0).unwrap_err();
    assert!(
        matches!(&err, Error::SegmentTooSmall { name, len: 4, needed } if *name == file.0 && *needed == off::HEADER_LEN as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains(&file.0), "{err}");
    assert!(exists(&file.0), "another program's file was removed");
}

/// A sparse file larger than the address space: the mapping fails with
/// an I/O error naming `mmap` and the ring, before any byte is touched.
#[test]
fn a_file_too_large_to_map_is_an_mmap_error_naming_the_ring() {
    let file = plant("sparse", MAGIC, 1 << 50);
    let err = open(&file.0).unwrap_err();
    assert!(
        matches!(&err, Error::Io { op: "mmap", name, .. } if *name == file.0),
        "{err:?}"
    );
    assert!(err.to_string().contains(&file.0), "{err}");
}

/// `list` skips what `shm_open` could never name a ring: names that are
/// not UTF-8, or have characters outside `[A-Za-z0-9._-]`.
#[test]
fn listing_skips_files_whose_names_are_not_segment_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let spaced = format!("{} x", unique_name("spaced"));
    let mut raw = unique_name("raw").into_bytes();
    raw.push(0xff);
    let raw_path = std::path::Path::new("/dev/shm").join(OsStr::from_bytes(&raw));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _spaced = Remove(std::path::PathBuf::from(shm_path(&spaced)));
    let _raw = Remove(raw_path.clone());
    let mut header = MAGIC.to_vec();
    header.resize(off::HEADER_LEN, 0);
    std::fs::write(shm_path(&spaced), &header).unwrap();
    std::fs::write(&raw_path, &header).unwrap();

    let all = shmring::list().unwrap();
    assert!(all.iter().all(|(n, _)| *n != spaced), "{spaced:?} listed");
    let raw_lossy = String::from_utf8_lossy(&raw).into_owned();
    assert!(all.iter().all(|(n, _)| *n != raw_lossy), "non-UTF-8 listed");
    assert!(matches!(
        shmring::inspect(&spaced),
        Err(Error::InvalidName { .. })
    ));
}

/// A peer may write any bytes as the schema name: they are shown as far
/// as they are UTF-8, and the ring is another type's.
#[test]
fn a_schema_name_that_is_not_utf8_is_shown_cut_and_is_a_type_mismatch() {
    let name = unique_name("schema-bytes");
    let _ring = Spsc::<u64>::create(&name, 16).unwrap();
    poke(&name, off::SCHEMA_NAME, b"u6\xff");
    let info = shmring::inspect(&name).unwrap();
    assert_eq!(info.elem.schema.name(), "u6");
    let err = open(&name).unwrap_err();
    assert!(
        matches!(&err, Error::TypeMismatch { name: n, found, .. } if *n == name && found.schema.name() == "u6"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
}

/// Every claim record taken by anonymous producers leaves none to tag for
/// a stream.
#[test]
fn a_stream_finds_no_record_when_every_one_is_held() {
    let name = unique_name("streams-full");
    let ring = Mpmc::<u64>::create(&name, 16).unwrap();
    let held: Vec<_> = std::iter::from_fn(|| ring.producer().ok()).collect();
    assert_eq!(held.len(), 32);
    let err = ring.producer_stream(1).unwrap_err();
    assert!(
        matches!(&err, Error::TooManyHandles { name: n, side: "producer", limit: 32 } if *n == name),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    drop(held);
    assert!(ring.producer_stream(1).is_ok());
}

/// What every ring kind answers about itself, and says in `Debug`.
#[test]
fn every_kind_reports_capacity_peers_and_its_name_in_debug() {
    let name = unique_name("debug");
    let ring = Mpmc::<u64>::create(&name, 5).unwrap();
    assert_eq!(ring.capacity(), 8);
    assert!(!ring.has_producer() && !ring.has_consumer());
    let _rx = ring.consumer().unwrap();
    assert!(ring.has_consumer());
    let text = format!("{ring:?}");
    assert!(
        text.contains("Mpmc") && text.contains(&name) && text.contains('8'),
        "{text}"
    );
    let spsc = Spsc::<u32>::create(&unique_name("debug-spsc"), 4).unwrap();
    assert!(format!("{spsc:?}").contains(spsc.name()));
}

/// More rings than one block of the kept-descriptor table holds (128
/// descriptors; each ring keeps two): all work, and each name goes with
/// its last user.
#[test]
fn a_process_may_keep_a_hundred_rings_and_each_name_goes_with_it() {
    let rings: Vec<_> = (0..100)
        .map(|_| Spsc::<u8>::create(&unique_name("many"), 1).unwrap())
        .collect();
    for ring in &rings {
        ring.producer().unwrap().try_push(7).unwrap();
    }
    let names: Vec<String> = rings.iter().map(|r| r.name().to_owned()).collect();
    assert!(names.iter().all(|n| exists(n)));
    drop(rings);
    assert!(names.iter().all(|n| !exists(n)));
}

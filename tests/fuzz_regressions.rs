//! Every input kept under `fuzz/seeds/<target>/` (a minimized corpus) and
//! `fuzz/regressions/<target>/` (every crash the fuzzer found, after its
//! fix) replayed through the fuzz targets' logic, on stable, as an ordinary
//! test. The fuzzing itself runs with cargo-fuzz; see `fuzz/README.md`.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: input {} fails", path.display());
            n += 1;
        }
    }
    assert!(n > 0, "{target}: no kept inputs to replay");
}

#[test]
fn open_header() {
    replay("open_header", targets::open_header);
}

#[test]
fn spsc_ops() {
    replay("spsc_ops", targets::spsc_ops);
}

#[test]
fn mpmc_ops() {
    replay("mpmc_ops", targets::mpmc_ops);
}

#[test]
fn bytes_ops() {
    replay("bytes_ops", targets::bytes_ops);
}

#[test]
fn hostile_peer() {
    replay("hostile_peer", targets::hostile_peer);
}

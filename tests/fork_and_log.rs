//! What a forked child may do with handles it inherited (nothing that is
//! the parent's), and what the library tells the application's logger
//! about takeovers and removals.
//!
//! The forked children here leave with `exit` rather than `_exit`, so that
//! what they ran is recorded like any process's (coverage tools write
//! their data at exit); they drop nothing they do not mean to.

#[macro_use]
mod common;

use std::sync::{Mutex, Once};

use common::*;
use shmring::{header_offsets as off, Error, Mpmc, Spsc};

/// Every record logged in this test binary, as text.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LOGGED
            .lock()
            .unwrap()
            .push(format!("{} {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Whether a record mentioning `name` and `words` was logged (target
/// `shmring`).
fn logged(name: &str, words: &str) -> bool {
    logged_as("shmring", name, words)
}

/// Whether a record of `target` mentioning `name` and `words` was logged.
fn logged_as(target: &str, name: &str, words: &str) -> bool {
    LOGGED
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.starts_with(&format!("{target} ")) && m.contains(name) && m.contains(words))
}

/// Fork; the child runs `$body` (an `i32` exit code) and leaves with
/// `exit` (no unwinding: nothing of the parent's is dropped but what the
/// body drops). The parent gets the child's exit code.
macro_rules! in_forked_child {
    ($body:block) => {
        // SAFETY: the child runs `$body` and exits; it takes no lock another
        // thread could have held at the fork but malloc's, which glibc
        // makes safe across fork (nothing logs in a child here).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> i32 { $body }))
                        .unwrap_or(101);
                std::process::exit(code)
            }
            nix::unistd::ForkResult::Parent { child } => reap(child),
        }
    };
}

/// The child may not take a role or a claim record through its parent's
/// handles (`Forked`, naming the ring), and dropping them releases nothing
/// of the parent's: its roles, records and the name stay.
#[test]
fn a_child_is_refused_roles_through_inherited_handles_and_drops_nothing_of_its_parents() {
    let spsc_name = unique_name("fork-spsc");
    let mpmc_name = unique_name("fork-mpmc");
    let spsc = Spsc::<u64>::create(&spsc_name, 8).unwrap();
    let mpmc = Mpmc::<u64>::create(&mpmc_name, 8).unwrap();
    let tx = spsc.producer().unwrap();
    let mtx = mpmc.producer().unwrap();
    let code = in_forked_child!({
        let forked = |r: Result<(), Error>, name: &str| {
            matches!(&r, Err(Error::Forked { name: n }) if n == name)
                && r.unwrap_err().to_string().contains(name)
        };
        let spsc_refused = forked(spsc.consumer().map(drop), &spsc_name);
        let mpmc_refused = forked(mpmc.consumer().map(drop), &mpmc_name);
        drop((tx, mtx));
        drop((spsc, mpmc));
        if spsc_refused && mpmc_refused {
            0
        } else {
            1
        }
    });
    assert_eq!(
        code, 0,
        "the child took a role through its parent's handles"
    );
    assert!(exists(&spsc_name) && exists(&mpmc_name));
    let info = shmring::inspect(&spsc_name).unwrap();
    assert_eq!(info.producer.map(|p| p.pid), Some(std::process::id()));
    assert_eq!(
        shmring::inspect(&mpmc_name).unwrap().producer_handles.len(),
        1
    );
}

/// A producer that exits holding its role is taken over by the next one,
/// which counts it and logs the ring and the dead process.
#[test]
fn a_role_left_by_an_exited_process_is_taken_over_counted_and_logged() {
    capture_logs();
    let name = unique_name("takeover");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let code = in_forked_child!({
        let ring = Spsc::<u64>::open(&name).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(42).unwrap();
        // Exits holding the role: the kernel releases its lease.
        std::process::exit(0)
    });
    assert_eq!(code, 0);
    let mut tx = ring.producer().unwrap();
    tx.try_push(43).unwrap();
    assert_eq!(shmring::inspect(&name).unwrap().producers.takeovers, 1);
    assert!(logged(&name, "took over the producer role"));
    let mut rx = ring.consumer().unwrap();
    assert_eq!((rx.try_pop(), rx.try_pop()), (Some(42), Some(43)));
}

/// A ring whose only user exited without leaving is stale: removed, and
/// the removal logged under `shmring::removal` (a command that reports
/// removals itself filters that target out).
#[test]
fn a_stale_ring_removed_is_logged_by_name() {
    capture_logs();
    let name = unique_name("stale-log");
    let _cleanup = Unlink(name.clone());
    let code = in_forked_child!({
        let ring = Spsc::<u64>::create(&name, 8).unwrap();
        std::mem::forget(ring);
        0
    });
    assert_eq!(code, 0);
    assert!(shmring::remove_if_stale(&name).unwrap());
    assert!(!exists(&name));
    assert!(logged_as(
        "shmring::removal",
        &name,
        "removed stale segment"
    ));
}

/// A stale segment of an older format (6, whose users held the kernel's
/// locks too) is removed, and the log says which format it was.
#[test]
fn a_stale_segment_of_an_older_format_removed_is_logged_with_its_version() {
    capture_logs();
    let name = unique_name("v6-log");
    let _cleanup = Unlink(name.clone());
    let mut header = b"SHMRING\0".to_vec();
    header.extend_from_slice(&6u32.to_le_bytes());
    header.resize(off::HEADER_LEN, 0);
    std::fs::write(shm_path(&name), &header).unwrap();
    assert!(shmring::remove_if_stale(&name).unwrap());
    assert!(logged_as("shmring::removal", &name, "of format version 6"));
}

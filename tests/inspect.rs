//! Inspection: the attached-process table, stale segments, replacing and
//! removing them, and listing /dev/shm.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use shmring::{ByteRing, CreateOptions, Error, Mpmc, RingKind, Spsc, WaitStrategy};

const TIMEOUT: Duration = Duration::from_secs(30);

children!(child);

/// What this binary does when re-run as a child (see `tests/common`).
fn child(role: &str) {
    let name: String = arg("RING");
    match role {
        // Create a ring, leave it in /dev/shm, and exit (or hang, to be killed).
        "create-and-exit" | "create-and-hang" => {
            let ring = Spsc::<u64>::create(&name, 8).unwrap();
            let mut tx = ring.producer().unwrap();
            tx.try_push(7).unwrap();
            if role == "create-and-hang" {
                println!("ready");
                std::thread::sleep(Duration::from_secs(600));
            }
            // Exit as a killed process does: without leaving, so the name
            // stays, stale.
            std::mem::forget((tx, ring));
        }
        "open-and-hang" => {
            let _ring = Spsc::<u64>::open(&name).unwrap();
            println!("ready");
            std::thread::sleep(Duration::from_secs(600));
        }
        // Inspect a file that another thread shrinks and grows again all
        // the while, as other programs do with their own files in
        // /dev/shm: touching it through a mapping would raise SIGBUS.
        "inspect-while-truncated" => {
            let path = shm_path(&name);
            let len = shmring::header_offsets::HEADER_LEN as u64 * 2;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let cycles = std::sync::atomic::AtomicU64::new(0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        file.set_len(0).unwrap();
                        file.set_len(len).unwrap();
                        cycles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
                // Look while it shrinks, however the threads are scheduled.
                let mut looks = 0;
                while looks < 50 || cycles.load(std::sync::atomic::Ordering::Relaxed) < 1000 {
                    let _ = shmring::inspect(&name);
                    looks += 1;
                }
                for _ in 0..5 {
                    let all = shmring::list().unwrap();
                    assert!(all.iter().all(|(n, _)| *n != name), "listed");
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
        }
        // A consumer that goes straight to the futex and sleeps there
        // until it is killed (nothing is ever pushed).
        "sleep-spsc-consumer" => {
            let ring = Spsc::<u64>::open(&name).unwrap();
            let mut rx = ring.consumer().unwrap();
            rx.set_wait_strategy(WaitStrategy::Sleep);
            let _ = rx.pop_timeout(Duration::from_secs(600));
        }
        "sleep-mpmc-consumer" => {
            let ring = Mpmc::<u64>::open(&name).unwrap();
            let mut rx = ring.consumer().unwrap();
            rx.set_wait_strategy(WaitStrategy::Sleep);
            let _ = rx.pop_timeout(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Wait until `n` processes are recorded as attached to `name`.
fn wait_attached(name: &str, n: usize) {
    let start = std::time::Instant::now();
    while shmring::inspect(name).map_or(true, |i| i.attached.len() < n) {
        assert!(start.elapsed() < TIMEOUT, "child never attached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_creator_and_openers_are_recorded_while_they_have_it_mapped() {
    let ring = Spsc::<u64>::create(&unique_name("attach"), 16).unwrap();
    let me = std::process::id();
    let info = shmring::inspect(ring.name()).unwrap();
    assert_eq!(info.attached.len(), 1);
    assert_eq!(info.attached[0].pid, me);
    assert!(info.attached[0].alive);
    assert_eq!(info.creator_pid, me);
    assert!(!info.is_stale());

    let child = spawn_child("open-and-hang", &[("RING", ring.name().to_owned())]);
    wait_attached(ring.name(), 2);
    let info = shmring::inspect(ring.name()).unwrap();
    let pid = child.id();
    assert!(info.attached.iter().any(|a| a.pid == pid && a.alive));
    child.kill();
    // Killed, it could not clear its entry: it is recorded, and dead.
    let info = shmring::inspect(ring.name()).unwrap();
    assert!(info.attached.iter().any(|a| a.pid == pid && !a.alive));
    assert!(!info.is_stale(), "the creator still has it mapped");

    // A second handle in this process takes the dead entry or another one,
    // and clears it when dropped.
    let opened = Spsc::<u64>::open(ring.name()).unwrap();
    let live = |n: &str| {
        shmring::inspect(n)
            .unwrap()
            .attached
            .iter()
            .filter(|a| a.alive)
            .count()
    };
    assert_eq!(live(ring.name()), 2);
    drop(opened);
    assert_eq!(live(ring.name()), 1);
}

#[test]
fn inspection_reports_kind_capacity_counters_and_roles() {
    let ring = Spsc::<u64>::create(&unique_name("stat"), 16).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for v in 0..5 {
        tx.try_push(v).unwrap();
    }
    rx.try_pop().unwrap();
    let info = shmring::inspect(ring.name()).unwrap();
    assert_eq!(info.kind, RingKind::Spsc);
    assert_eq!((info.capacity, info.elem.size), (16, 8));
    assert_eq!((info.written, info.read, info.fill()), (5, 1, 4));
    assert_eq!(info.producer.unwrap().pid, std::process::id());
    assert_eq!(info.consumer.unwrap().pid, std::process::id());

    let bytes = ByteRing::create(&unique_name("stat-bytes"), 1000).unwrap();
    bytes.producer().unwrap().try_send(&[1; 10]).unwrap();
    let info = shmring::inspect(bytes.name()).unwrap();
    assert_eq!((info.kind, info.capacity), (RingKind::Bytes, 1024));
    assert_eq!(info.fill(), 32, "one 10-byte message is a 32-byte record");

    let mpmc = Mpmc::<[u8; 24]>::create(&unique_name("stat-mpmc"), 4).unwrap();
    let info = shmring::inspect(mpmc.name()).unwrap();
    assert_eq!(
        (info.kind, info.elem.size, info.capacity),
        (RingKind::Mpmc, 24, 4)
    );
    assert!(info.producer.is_none() && info.consumer.is_none());
}

#[test]
fn a_segment_whose_users_all_died_is_stale_and_can_be_replaced() {
    for role in ["create-and-exit", "create-and-hang"] {
        let name = unique_name("stale");
        let _cleanup = Unlink(name.clone());
        let child = spawn_child(role, &[("RING", name.clone())]);
        if role == "create-and-exit" {
            child.wait_success(TIMEOUT);
        } else {
            let start = std::time::Instant::now();
            while shmring::inspect(&name).map_or(true, |i| i.written == 0) {
                assert!(start.elapsed() < TIMEOUT, "child never pushed");
                std::thread::sleep(Duration::from_millis(5));
            }
            // Alive, its segment is in use: neither removed nor replaced.
            assert!(!shmring::inspect(&name).unwrap().is_stale());
            assert!(!shmring::remove_if_stale(&name).unwrap());
            let replace = CreateOptions::new().replace_stale(true);
            assert!(matches!(
                Spsc::<u64>::create_with(&name, 8, &replace),
                Err(Error::AlreadyExists { .. })
            ));
            child.kill(); // SIGKILL: its entries stay, naming a dead process
        }
        assert!(
            eventually(|| shmring::inspect(&name).unwrap().is_stale()),
            "{role}: {:?}",
            shmring::inspect(&name)
        );
        assert!(matches!(
            Spsc::<u64>::create(&name, 8),
            Err(Error::AlreadyExists { .. })
        ));
        let ring =
            Spsc::<u64>::create_with(&name, 8, &CreateOptions::new().replace_stale(true)).unwrap();
        assert!(ring.is_creator());
        assert_eq!(shmring::inspect(&name).unwrap().written, 0, "a fresh ring");
    }
}

#[test]
fn remove_if_stale_removes_only_stale_segments() {
    let live = Spsc::<u64>::create(&unique_name("live"), 8).unwrap();
    assert!(!shmring::remove_if_stale(live.name()).unwrap());
    assert!(shmring::inspect(live.name()).is_ok());

    let name = unique_name("gone");
    let _cleanup = Unlink(name.clone());
    spawn_child("create-and-exit", &[("RING", name.clone())]).wait_success(TIMEOUT);
    assert!(eventually(|| shmring::remove_if_stale(&name).unwrap()));
    assert!(matches!(
        shmring::inspect(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        shmring::remove_if_stale(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn listing_finds_our_segments_and_skips_other_files() {
    let ring = Mpmc::<u64>::create(&unique_name("ls"), 8).unwrap();
    let other = unique_name("not-a-ring");
    let _cleanup = Unlink(other.clone());
    std::fs::write(shm_path(&other), vec![0x42u8; 4096]).unwrap();
    let all = shmring::list().unwrap();
    let mine = all.iter().find(|(n, _)| n == ring.name()).expect("listed");
    assert_eq!(mine.1.as_ref().unwrap().kind, RingKind::Mpmc);
    assert!(
        all.iter().all(|(n, _)| n != &other),
        "a foreign file was listed"
    );
}

/// Files in /dev/shm that are not rings: a FIFO (opening it could wait
/// for a writer) and files without shmring's magic are left out of the
/// listing, at once; one that its program truncates while we look is
/// never mapped, so looking cannot die of SIGBUS (in a child: a SIGBUS
/// would end the whole test binary).
#[test]
fn listing_leaves_out_fifos_and_foreign_files_even_while_they_shrink() {
    let fifo = unique_name("fifo");
    let _fifo = Unlink(fifo.clone());
    nix::unistd::mkfifo(
        shm_path(&fifo).as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let foreign = unique_name("foreign");
    let _foreign = Unlink(foreign.clone());
    std::fs::write(
        shm_path(&foreign),
        vec![0x5a; shmring::header_offsets::HEADER_LEN * 2],
    )
    .unwrap();
    let all = shmring::list().unwrap();
    assert!(
        all.iter().all(|(n, _)| *n != fifo && *n != foreign),
        "{all:?}"
    );
    assert!(shmring::inspect(&fifo).is_err(), "a FIFO is no ring");
    assert!(matches!(
        shmring::inspect(&foreign),
        Err(Error::BadMagic { .. })
    ));

    spawn_child("inspect-while-truncated", &[("RING", foreign.clone())]).wait_success(TIMEOUT);
}

/// Wait until inspection shows `n` consumers asleep on `name`.
fn wait_sleeping(name: &str, n: u32) {
    let start = std::time::Instant::now();
    while shmring::inspect(name).unwrap().sleeping_consumers != n {
        assert!(start.elapsed() < TIMEOUT, "never {n} asleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A consumer killed while asleep on the futex cannot count itself out of
/// the header's sleepers: what inspection reports counts live consumers
/// only (at most one per live consumer handle).
#[test]
fn a_consumer_killed_asleep_is_not_reported_sleeping() {
    // SPSC: its one consumer sleeps, is killed: nobody sleeps.
    let ring = Spsc::<u64>::create(&unique_name("sleeper-spsc"), 8).unwrap();
    let sleeper = spawn_child("sleep-spsc-consumer", &[("RING", ring.name().to_owned())]);
    wait_sleeping(ring.name(), 1);
    sleeper.kill(); // SIGKILL, reaped: its locks are gone
    let info = shmring::inspect(ring.name()).unwrap();
    assert!(!info.consumer.unwrap().alive);
    assert_eq!(
        info.sleeping_consumers, 0,
        "a dead consumer reported asleep"
    );

    // MPMC: two consumers sleep, one is killed, the other sleeps on.
    let ring = Mpmc::<u64>::create(&unique_name("sleeper-mpmc"), 8).unwrap();
    let first = spawn_child("sleep-mpmc-consumer", &[("RING", ring.name().to_owned())]);
    let _second = spawn_child("sleep-mpmc-consumer", &[("RING", ring.name().to_owned())]);
    wait_sleeping(ring.name(), 2);
    first.kill();
    for _ in 0..20 {
        let info = shmring::inspect(ring.name()).unwrap();
        let live = info.consumer_handles.iter().filter(|h| h.alive).count();
        assert_eq!(live, 1);
        assert_eq!(
            info.sleeping_consumers, 1,
            "the dead sleeper is still counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

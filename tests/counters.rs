//! The header's counters move when a ring is driven full, empty, to sleep,
//! past a timeout, and through a takeover and a repair; and those lifecycle
//! events reach an application's logger (the `log` facade).

#[macro_use]
mod common;

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use shmring::{Mpmc, Spsc, WaitStrategy};

/// Every record logged in this test binary, as "LEVEL target: message".
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOGGED.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// Install the recorder, once per process; call before the events.
fn install_logger() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Recorder).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// What was logged about ring `name`.
fn logged_about(name: &str) -> Vec<String> {
    let all = LOGGED.lock().unwrap();
    all.iter().filter(|l| l.contains(name)).cloned().collect()
}

children!(child);

fn child(role: &str) {
    assert_eq!(role, "hold-producer-then-die");
    let ring = Spsc::<u64>::open(&arg::<String>("RING")).unwrap();
    let _tx = ring.producer().unwrap();
    println!("holding");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn back_pressure_waits_sleeps_wakes_and_timeouts_are_counted() {
    let ring = Spsc::<u64>::create(&unique_name("counts"), 1).unwrap();
    let name = ring.name().to_owned();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    for _ in 0..3 {
        assert!(tx.try_push(2).is_err());
    }
    let info = shmring::inspect(&name).unwrap();
    assert_eq!(info.producers.blocked, 3, "{:?}", info.producers);
    assert_eq!(info.producers.timeouts, 0);
    tx.set_wait_strategy(WaitStrategy::Sleep);
    assert!(tx.push_timeout(2, Duration::from_millis(5)).is_err());
    let info = shmring::inspect(&name).unwrap();
    assert_eq!(info.producers.blocked, 4);
    assert_eq!(info.producers.timeouts, 1);
    assert!(info.producers.sleeps >= 1, "a Sleep wait sleeps");

    // A consumer that finds nothing and sleeps, then is woken by a push.
    assert_eq!(rx.try_pop(), Some(1));
    assert!(rx.try_pop().is_none(), "a poll");
    assert_eq!(
        shmring::inspect(&name).unwrap().consumers.blocked,
        0,
        "polls are not counted"
    );
    rx.set_wait_strategy(WaitStrategy::Sleep);
    let waiter =
        std::thread::spawn(move || rx.pop_timeout(Duration::from_secs(10)).map(|v| (v, rx)));
    assert!(eventually(|| shmring::inspect(&name)
        .unwrap()
        .sleeping_consumers
        == 1));
    tx.try_push(7).unwrap();
    let (v, mut rx) = waiter.join().unwrap().unwrap();
    assert_eq!(v, 7);
    let info = shmring::inspect(&name).unwrap();
    assert_eq!(info.consumers.blocked, 1);
    assert!(
        info.consumers.sleeps >= 1 && info.consumers.wakes >= 1,
        "{:?}",
        info.consumers
    );
    assert!(rx.pop_timeout(Duration::from_millis(2)).is_err());
    assert_eq!(shmring::inspect(&name).unwrap().consumers.timeouts, 1);
}

#[test]
fn a_takeover_is_counted_and_logged() {
    install_logger();
    let ring = Spsc::<u64>::create(&unique_name("takeover"), 8).unwrap();
    let name = ring.name().to_owned();
    let mut cmd = child_command("hold-producer-then-die");
    cmd.env("RING", &name).stdout(Stdio::piped());
    let mut holder = ChildGuard::from(cmd.spawn().unwrap());
    let pid = holder.id();
    holder.first_line();
    holder.kill(); // SIGKILL: it never releases the role
    assert!(logged_about(&name).is_empty());
    let _tx = ring.producer().unwrap();
    assert_eq!(shmring::inspect(&name).unwrap().producers.takeovers, 1);
    let events = logged_about(&name);
    assert!(
        events.iter().any(|e| e.starts_with("INFO shmring:")
            && e.contains("took over the producer role")
            && e.contains(&pid.to_string())),
        "{events:?}"
    );
}

#[test]
fn a_repair_is_counted_and_logged() {
    install_logger();
    let ring = Mpmc::<u64>::create(&unique_name("repair"), 4).unwrap();
    let name = ring.name().to_owned();
    let tx = ring.producer().unwrap();
    // A handle that is dropped while a slot it claimed is forgotten leaves
    // a dead record behind, as a killed process would.
    std::mem::forget(tx.try_reserve().unwrap());
    drop(tx);
    assert_eq!(ring.recover(), 1);
    let info = shmring::inspect(&name).unwrap();
    assert_eq!(info.repaired, 1);
    assert_eq!(info.producers.takeovers, 1, "the dead record was reclaimed");
    let events = logged_about(&name);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("WARN shmring:") && e.contains("skipped 1 position")),
        "{events:?}"
    );
    let me = std::process::id().to_string();
    assert!(
        events.iter().any(|e| e.starts_with("INFO shmring:")
            && e.contains("a producer handle of process")
            && e.contains(&me)
            && e.contains("is gone")),
        "the dead peer's detection: {events:?}"
    );
}

//! The edges of the lifecycle (issue 25): forks that share a pid with
//! their parent, helpers forked by a service that is then killed, opens
//! that fail, persisted rings, and locks held by someone else. Each test
//! failed on the code before it.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmring::{ByteRing, CreateOptions, Error, Mpmc, Role, Spsc};

const PATIENCE: Duration = Duration::from_secs(20);

children!(child);

fn child(role: &str) {
    match role {
        "pid1-parent" => pid1_parent(&arg::<String>("RING")),
        "service" => service(&arg::<String>("SPSC"), &arg::<String>("MPMC")),
        other => panic!("unknown child role {other}"),
    }
}

/// Pid 1 of a pid namespace (a container's entrypoint): makes a ring,
/// holds its producer, and forks a child into a new pid namespace, where
/// the child is pid 1 too. The child drops everything it inherited and
/// exits normally. Then nothing of the parent's may have changed.
fn pid1_parent(name: &str) {
    assert_eq!(std::process::id(), 1, "run in a new pid namespace");
    let ring = Spsc::<u64>::create(name, 16).unwrap();
    let mut tx = ring.producer().unwrap();
    let mpmc_name = format!("{name}-mpmc");
    let mpmc = Mpmc::<u64>::create(&mpmc_name, 4).unwrap();
    let mtx = mpmc.producer().unwrap();
    // SAFETY: unshare with CLONE_NEWPID takes no pointers; it changes
    // only the namespace this process's next children are born in.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWPID) }, 0);
    let pid = fork_child!({
        if std::process::id() != 1 {
            return 2;
        }
        // A fresh handle here is the child's own: taking the consumer
        // must not collide with the parent's producer's id.
        let own = Spsc::<u64>::open(name).unwrap();
        let rx = own.consumer().unwrap();
        drop((rx, own));
        drop((tx, ring, mtx, mpmc));
        0
    });
    assert_eq!(reap(pid), 0, "the child was not pid 1 of its namespace");
    assert!(exists(name), "the child unlinked the parent's name");
    assert!(
        matches!(
            ring.producer(),
            Err(Error::RoleTaken {
                role: Role::Producer,
                ..
            })
        ),
        "the child released the parent's role"
    );
    // Still one ring under the name: what the parent's producer pushes,
    // a consumer of the ring opened by name receives.
    let again = Spsc::<u64>::open_or_create(name, 16).unwrap();
    assert!(!again.is_creator(), "a second ring was made under the name");
    tx.try_push(7).unwrap();
    assert_eq!(again.consumer().unwrap().try_pop(), Some(7));
    assert!(
        Mpmc::<u64>::open(&mpmc_name).unwrap().producer().is_ok(),
        "the MPMC ring must still have room for a producer"
    );
    drop((tx, mtx));
    println!("PASS");
}

#[test]
fn a_child_with_its_parents_pid_acts_for_nothing() {
    let name = unique_name("pid1");
    let _cleanup = (Unlink(name.clone()), Unlink(format!("{name}-mpmc")));
    let mut cmd = child_in_new_pid_namespace("pid1-parent");
    cmd.env("RING", &name);
    let mut child = match cmd.spawn() {
        Ok(child) => ChildGuard::from(child),
        Err(e) => {
            println!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let mut out = String::new();
    child.stdout().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr().read_to_string(&mut err).unwrap();
    if err.contains("unshare failed") {
        println!("skipped: no pid namespaces here: {err}");
        return;
    }
    assert!(out.contains("PASS"), "stdout: {out}\nstderr: {err}");
    child.wait_success(PATIENCE);
}

/// A service: holds the SPSC producer after pushing three values, and an
/// MPMC consumer holding a value it read; forks a helper that never
/// touches a ring and sleeps; says READY with the helper's pid; waits to
/// be killed.
fn service(spsc: &str, mpmc: &str) {
    let ring = Spsc::<u64>::open(spsc).unwrap();
    let mut tx = ring.producer().unwrap();
    for v in 0..3 {
        tx.try_push(v).unwrap();
    }
    let queue = Mpmc::<u64>::open(mpmc).unwrap();
    let rx = queue.consumer().unwrap();
    let held = rx.try_read().expect("a value to hold");
    // A daemon's helper: forked without exec, it sleeps and never uses
    // the rings.
    let helper = fork_child!({
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
    println!("READY {helper}");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(held);
    drop((rx, tx));
}

/// Kills a pid when dropped (a helper whose parent was killed).
struct KillOnDrop(Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
    }
}

#[test]
fn a_helper_forked_by_a_killed_service_keeps_none_of_its_roles() {
    let spsc = unique_name("helper-spsc");
    let mpmc = unique_name("helper-mpmc");
    let _cleanup = (Unlink(spsc.clone()), Unlink(mpmc.clone()));
    let ring = Spsc::<u64>::create(&spsc, 16).unwrap();
    let queue = Mpmc::<u64>::create(&mpmc, 8).unwrap();
    queue.producer().unwrap().try_push(42).unwrap();

    let mut service = child_command("service")
        .env("SPSC", &spsc)
        .env("MPMC", &mpmc)
        .stdout(Stdio::piped())
        .spawn()
        .map(ChildGuard::from)
        .unwrap();
    let line = BufReader::new(service.stdout())
        .lines()
        .next()
        .expect("the service's READY line")
        .unwrap();
    let helper: i32 = line
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let helper = KillOnDrop(Pid::from_raw(helper));
    service.kill();

    // The restarted service, while the helper still sleeps. (The kernel
    // drops a killed process's locks a moment after it can be reaped.)
    let mut tx = None;
    assert!(
        eventually(|| {
            tx = ring.producer().ok();
            tx.is_some()
        }),
        "the dead service's role stayed taken"
    );
    assert_eq!(
        tx.unwrap().pushed(),
        3,
        "it resumes after the dead one's values"
    );
    let rx = queue.consumer().unwrap();
    let mut got = None;
    assert!(
        eventually(|| {
            got = got.or_else(|| rx.try_pop());
            got.is_some()
        }),
        "the value the dead consumer held is not delivered"
    );
    assert_eq!(got, Some(42));
    // Nor does the helper keep the rings in use: the last user out
    // removes their names.
    drop((rx, queue, ring));
    assert!(
        !exists(&spsc) && !exists(&mpmc),
        "a name outlived its users"
    );
    assert!(
        kill(helper.0, None).is_ok(),
        "the helper must still be alive for this test to mean anything"
    );
    drop(helper);
}

/// A ring of `kind` whose users all died holding `count` unread values:
/// made by a forked child that `_exit`s without dropping its handles.
fn stale_ring(kind: &str, name: &str, count: u64) {
    let pid = fork_child!({
        match kind {
            "spsc" => {
                let ring = Spsc::<u64>::create(name, 16).unwrap();
                let mut tx = ring.producer().unwrap();
                (0..count).for_each(|v| tx.try_push(v).unwrap());
                std::mem::forget((tx, ring));
            }
            "mpmc" => {
                let ring = Mpmc::<u64>::create(name, 16).unwrap();
                let tx = ring.producer().unwrap();
                (0..count).for_each(|v| tx.try_push(v).unwrap());
                std::mem::forget((tx, ring));
            }
            _ => {
                let ring = ByteRing::create(name, 4096).unwrap();
                let mut tx = ring.producer().unwrap();
                (0..count).for_each(|v| tx.try_send(&v.to_le_bytes()).unwrap());
                std::mem::forget((tx, ring));
            }
        }
        0
    });
    assert_eq!(reap(pid), 0);
    assert!(shmring::inspect(name).unwrap().is_stale());
}

/// The values still in stale ring `name` of `kind`, read by a new user.
fn unread(kind: &str, name: &str) -> Vec<u64> {
    match kind {
        "spsc" => {
            let ring = Spsc::<u64>::open(name).unwrap();
            let mut rx = ring.consumer().unwrap();
            std::iter::from_fn(|| rx.try_pop()).collect()
        }
        "mpmc" => {
            let ring = Mpmc::<u64>::open(name).unwrap();
            let rx = ring.consumer().unwrap();
            std::iter::from_fn(|| rx.try_pop()).collect()
        }
        _ => {
            let ring = ByteRing::open(name).unwrap();
            let mut rx = ring.consumer().unwrap();
            let mut out = Vec::new();
            while let Some(m) = rx.try_recv().unwrap() {
                out.push(u64::from_le_bytes(m[..8].try_into().unwrap()));
            }
            out
        }
    }
}

#[test]
fn a_mismatched_open_or_create_leaves_a_stale_ring_and_its_values() {
    for kind in ["spsc", "mpmc", "bytes"] {
        let name = unique_name(&format!("mismatch-{kind}"));
        let _cleanup = Unlink(name.clone());
        stale_ring(kind, &name, 5);
        let capacity = match kind {
            "spsc" => Spsc::<u64>::open_or_create(&name, 64).map(drop),
            "mpmc" => Mpmc::<u64>::open_or_create(&name, 64).map(drop),
            _ => ByteRing::open_or_create(&name, 1 << 16).map(drop),
        };
        assert!(
            matches!(capacity, Err(Error::CapacityMismatch { .. })),
            "{kind}: {capacity:?}"
        );
        let other_type = match kind {
            "spsc" => Spsc::<u32>::open_or_create(&name, 16).map(drop),
            "mpmc" => Mpmc::<u32>::open_or_create(&name, 16).map(drop),
            _ => Spsc::<u64>::open_or_create(&name, 16).map(drop),
        };
        assert!(
            matches!(
                other_type,
                Err(Error::TypeMismatch { .. } | Error::KindMismatch { .. })
            ),
            "{kind}: {other_type:?}"
        );
        let other_kind = match kind {
            "spsc" => Mpmc::<u64>::open_or_create(&name, 16).map(drop),
            _ => Spsc::<u64>::open_or_create(&name, 16).map(drop),
        };
        assert!(
            matches!(other_kind, Err(Error::KindMismatch { .. })),
            "{kind}: {other_kind:?}"
        );
        assert!(exists(&name), "{kind}: a failed open removed the ring");
        assert_eq!(unread(kind, &name), vec![0, 1, 2, 3, 4], "{kind}");
    }
}

#[test]
fn a_failed_open_never_counts_as_a_user() {
    // An opener that fails its checks must never hold the lock that says
    // "in use": a last user leaving meanwhile would keep the name for it,
    // and the name would stay with no user (item 4b). Made visible by
    // construction: a stale ring (no lock held), an exclusive flock held
    // by the test (an opener that joined first would wait on it, holding
    // its lock), and an opener of the wrong capacity. Until that opener
    // returns, no lock may show on the file.
    let name = unique_name("failed-open-user");
    let _cleanup = Unlink(name.clone());
    stale_ring("spsc", &name, 2);
    let file = std::fs::File::open(shm_path(&name)).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let opener = {
        let name = name.clone();
        std::thread::spawn(move || Spsc::<u64>::open_or_create(&name, 64).map(drop))
    };
    let mut seen_in_use = false;
    while !opener.is_finished() {
        seen_in_use |= shmring::inspect(&name).unwrap().in_use;
    }
    let result = opener.join().unwrap();
    drop(held);
    assert!(
        matches!(result, Err(Error::CapacityMismatch { .. })),
        "{result:?}"
    );
    assert!(!seen_in_use, "a failing opener held the segment's lock");
    assert_eq!(unread("spsc", &name), vec![0, 1]);
}

#[test]
fn a_persisted_ring_is_removed_only_by_remove() {
    let name = unique_name("persisted");
    let _cleanup = Unlink(name.clone());
    {
        let ring = Spsc::<u64>::create(&name, 16).unwrap();
        ring.persist();
        let mut tx = ring.producer().unwrap();
        (0..3).for_each(|v| tx.try_push(v).unwrap());
    }
    assert!(exists(&name));
    assert!(
        !shmring::remove_if_stale(&name).unwrap(),
        "removed as stale"
    );
    let replace = CreateOptions::new().replace_stale(true);
    assert!(matches!(
        Spsc::<u64>::create_with(&name, 16, &replace),
        Err(Error::AlreadyExists { .. })
    ));
    // The reader that came for the journal finds it whole.
    {
        let ring = Spsc::<u64>::open_or_create_with(&name, 16, &replace).unwrap();
        assert!(!ring.is_creator());
        let mut rx = ring.consumer().unwrap();
        assert_eq!(
            std::iter::from_fn(|| rx.try_pop()).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }
    assert!(exists(&name), "a persisted ring outlives its users");
    shmring::remove(&name).unwrap();
    assert!(!exists(&name));
}

/// Run `f` on a thread and wait for it a bounded time (far longer than
/// the waits under test ask for): its result, or a panic naming `what`.
fn within<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(1))
        .unwrap_or_else(|_| panic!("{what} waited past its bound"))
}

#[test]
fn a_held_flock_bounds_no_wait_beyond_the_callers() {
    let name = unique_name("flock-held");
    let _cleanup = Unlink(name.clone());
    let ring = Spsc::<u64>::create(&name, 16).unwrap();
    // Anyone who can open the file can take its flock, for as long as
    // they like.
    let file = std::fs::File::open(shm_path(&name)).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).unwrap();

    let n = name.clone();
    let opened = within("open_timeout(10 ms)", move || {
        Spsc::<u64>::open_timeout(&n, Duration::from_millis(10)).map(drop)
    });
    match &opened {
        Err(e @ Error::Busy { .. }) => {
            let text = e.to_string();
            assert!(!text.contains("stale"), "blames a stale removal: {text}");
        }
        other => panic!("{other:?}"),
    }
    // The last user's destructor does not wait seconds for the lock.
    within("dropping the last handle", move || drop(ring));
    drop(held);
}

#[test]
fn replace_stale_replaces_a_stale_ring_of_an_older_format() {
    use std::os::unix::fs::FileExt;
    let name = unique_name("old-format");
    let _cleanup = Unlink(name.clone());
    stale_ring("spsc", &name, 1);
    // What version 6 left: the same locks, an older header.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    file.write_at(&6u32.to_le_bytes(), shmring::header_offsets::VERSION as u64)
        .unwrap();
    assert!(matches!(
        Spsc::<u64>::open(&name),
        Err(Error::VersionMismatch { .. })
    ));
    let ring =
        Spsc::<u64>::create_with(&name, 8, &CreateOptions::new().replace_stale(true)).unwrap();
    assert!(ring.is_creator());
    assert_eq!(ring.pushed(), 0, "a fresh ring");
}

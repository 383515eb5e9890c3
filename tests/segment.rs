//! The segment's life: names, modes, O_EXCL, who removes a name, resource
//! errors, and roles (including taking over a dead holder's).

#[macro_use]
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shmring::{CreateOptions, Error, OpenOptions, Role, Spsc};

#[test]
fn invalid_names_are_refused() {
    for name in [
        "",
        "/",
        "a/b",
        "..",
        "has space",
        "ünïcode",
        &"x".repeat(300),
    ] {
        let err = Spsc::<u64>::create(name, 4).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        let err = Spsc::<u64>::open(name).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
    }
}

#[test]
fn a_leading_slash_names_the_same_segment() {
    let name = unique_name("slash");
    let _ring = Spsc::<u64>::create(&format!("/{name}"), 4).unwrap();
    assert!(exists(&name));
    assert!(Spsc::<u64>::open(&name).is_ok());
}

#[test]
fn a_missing_segment_is_not_found() {
    let err = Spsc::<u64>::open(&unique_name("missing")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn zero_capacity_is_an_error_and_leaves_nothing() {
    let name = unique_name("zerocap");
    assert!(matches!(
        Spsc::<u64>::create(&name, 0),
        Err(Error::ZeroCapacity)
    ));
    assert!(!exists(&name));
}

#[test]
fn default_mode_is_0600_and_a_custom_mode_is_exact() {
    let name = unique_name("mode");
    let _ring = Spsc::<u64>::create(&name, 4).unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());

    let name = unique_name("mode660");
    let _ring = Spsc::<u64>::create_with(&name, 4, &CreateOptions::new().mode(0o660)).unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "umask must not apply"
    );
}

#[test]
fn create_refuses_an_existing_name() {
    let name = unique_name("excl");
    let _ring = Spsc::<u64>::create(&name, 4).unwrap();
    let err = Spsc::<u64>::create(&name, 4).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        exists(&name),
        "the failed create must not unlink the original"
    );
}

#[test]
fn the_last_user_to_leave_removes_the_name_whoever_created_it() {
    let name = unique_name("last-out");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    assert!(ring.is_creator());
    let opener = Spsc::<u64>::open(&name).unwrap();
    assert!(!opener.is_creator());
    drop(opener);
    assert!(
        exists(&name),
        "a user left while the creator maps it, and removed it"
    );
    // Handles keep the mapping alive past the ring itself.
    let mut tx = ring.producer().unwrap();
    drop(ring);
    assert!(exists(&name));
    let opener = Spsc::<u64>::open(&name).unwrap();
    tx.try_push(1).unwrap();
    drop(tx);
    assert!(
        exists(&name),
        "the creator left first and removed it from under an opener"
    );
    assert_eq!(opener.consumer().unwrap().try_pop(), Some(1));
    drop(opener);
    assert!(!exists(&name), "the last user out left the name behind");
}

#[test]
fn a_ring_the_creating_service_left_is_kept_by_its_peer() {
    let name = unique_name("creator-exits");
    let _cleanup = Unlink(name.clone());
    let child = spawn_child("create-push-exit", &[("RING", name.clone())]);
    child.wait_success(Duration::from_secs(30));
    // The name went with the creator: nobody else used the ring.
    assert!(!exists(&name));
    let mut child: ChildGuard = child_command("create-push-wait")
        .env("RING", &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .into();
    assert_eq!(child.first_line(), "ready");
    let ring = Spsc::<u64>::open(&name).unwrap();
    child.close_stdin();
    child.wait_success(Duration::from_secs(30));
    assert!(
        exists(&name),
        "the creator exited and removed a ring in use"
    );
    assert_eq!(ring.consumer().unwrap().try_pop(), Some(42));
    drop(ring);
    assert!(!exists(&name));
}

#[test]
fn a_panicking_last_user_removes_the_name_while_unwinding() {
    let name = unique_name("panic");
    let n = name.clone();
    let result = std::panic::catch_unwind(move || {
        let _ring = Spsc::<u64>::create(&n, 4).unwrap();
        assert!(exists(&n));
        panic!("boom");
    });
    assert!(result.is_err());
    assert!(!exists(&name));
}

#[test]
fn persist_leaves_the_segment_for_later_and_remove_deletes_it() {
    let name = unique_name("persist");
    let _cleanup = Unlink(name.clone());
    {
        let ring = Spsc::<u64>::create(&name, 4).unwrap();
        ring.producer().unwrap().try_push(9).unwrap();
        assert!(!shmring::inspect(&name).unwrap().persistent);
        // Any user may ask, not only the creator.
        Spsc::<u64>::open(&name).unwrap().persist();
    }
    assert!(exists(&name));
    assert!(shmring::inspect(&name).unwrap().persistent);
    let ring = Spsc::<u64>::open(&name).unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop(), Some(9));
    drop(ring);
    assert!(exists(&name), "persistent: kept after every user left");
    shmring::remove(&name).unwrap();
    assert!(!exists(&name));
    assert!(matches!(
        shmring::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_ring_created_persistent_keeps_its_name() {
    let name = unique_name("persist-opt");
    let _cleanup = Unlink(name.clone());
    let opts = CreateOptions::new().persist(true);
    drop(Spsc::<u64>::create_with(&name, 4, &opts).unwrap());
    assert!(exists(&name));
    assert!(shmring::inspect(&name).unwrap().persistent);
}

#[test]
fn a_symlink_in_dev_shm_is_not_followed() {
    let name = unique_name("link");
    let _cleanup = Unlink(name.clone());
    std::os::unix::fs::symlink("/etc/passwd", shm_path(&name)).unwrap();
    let err = Spsc::<u64>::open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAFile {
                found: "a symbolic link",
                ..
            }
        ),
        "{err}"
    );
}

/// `remove` (`shmring rm --force`) takes a ring whoever uses it, and
/// nothing else: another program's semaphore, a file of other bytes, an
/// empty file, a FIFO, a symlink, a directory stay, each with an error
/// saying what it is.
#[test]
fn remove_takes_only_shmring_segments() {
    let planted = |tag: &str| {
        let name = unique_name(tag);
        (name.clone(), Unlink(name))
    };
    let (sem, _sem) = planted("sem"); // what sem_open leaves: 32 bytes
    std::fs::write(shm_path(&sem), [7u8; 32]).unwrap();
    let (short, _short) = planted("short");
    std::fs::write(shm_path(&short), [7u8; 4]).unwrap();
    let (foreign, _foreign) = planted("foreign");
    std::fs::write(shm_path(&foreign), vec![0x5a; 64 << 10]).unwrap();
    let (zeros, _zeros) = planted("zeros");
    std::fs::write(shm_path(&zeros), vec![0; 64 << 10]).unwrap();
    let (fifo, _fifo) = planted("fifo");
    nix::unistd::mkfifo(
        shm_path(&fifo).as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (link, _link) = planted("link");
    std::os::unix::fs::symlink("/etc/passwd", shm_path(&link)).unwrap();
    let dir = unique_name("dir");
    let _dir = RemoveDir(dir.clone());
    std::fs::create_dir(shm_path(&dir)).unwrap();

    let ring = Spsc::<u64>::create(&unique_name("in-use"), 4).unwrap();
    shmring::remove(ring.name()).unwrap();
    assert!(!exists(ring.name()), "a ring in use is removed by name");

    let refused = |name: &str| {
        let err = shmring::remove(name).unwrap_err();
        assert!(
            std::fs::symlink_metadata(shm_path(name)).is_ok(),
            "{name} was removed: {err}"
        );
        err
    };
    let err = refused(&sem);
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
    let err = refused(&short);
    assert!(
        matches!(err, Error::SegmentTooSmall { len: 4, .. }),
        "{err}"
    );
    let err = refused(&foreign);
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
    let err = refused(&zeros);
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
    let err = refused(&fifo);
    assert!(
        matches!(
            err,
            Error::NotAFile {
                found: "a FIFO",
                ..
            }
        ),
        "{err}"
    );
    let err = refused(&link);
    assert!(
        matches!(
            err,
            Error::NotAFile {
                found: "a symbolic link",
                ..
            }
        ),
        "{err}"
    );
    let err = refused(&dir);
    assert!(
        matches!(
            err,
            Error::NotAFile {
                found: "a directory",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not a shmring segment"), "{err}");
}

#[test]
fn a_segment_owned_by_another_user_is_refused_unless_allowed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: chown to another uid needs root");
        return;
    }
    let name = unique_name("squat");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    std::os::unix::fs::chown(shm_path(&name), Some(4242), None).unwrap();
    let err = Spsc::<u64>::open(&name).unwrap_err();
    assert!(
        matches!(err, Error::ForeignOwner { owner: 4242, .. }),
        "{err}"
    );
    let allowed = OpenOptions::new().allow_foreign_owner(true);
    assert!(Spsc::<u64>::open_with(&name, &allowed).is_ok());
    drop(ring);
    assert!(!exists(&name));
}

#[test]
fn more_than_dev_shm_can_hold_is_no_space_not_sigbus() {
    let st = nix::sys::statvfs::statvfs("/dev/shm").unwrap();
    let total = st.blocks() as u64 * st.fragment_size() as u64;
    let name = unique_name("huge");
    // u64 slots take 16 bytes; ask for twice the whole filesystem.
    let capacity = ((total / 16) * 2).next_power_of_two() as usize;
    let err = Spsc::<u64>::create(&name, capacity).unwrap_err();
    assert!(matches!(err, Error::NoSpace { .. }), "{err}");
    // The cause is the capacity, not a full /dev/shm: say so.
    let text = err.to_string();
    assert!(text.contains("larger than all of /dev/shm"), "{text}");
    assert!(!text.contains("is /dev/shm full"), "{text}");
    assert!(!exists(&name), "a failed create must not leave its name");
}

#[test]
fn capacity_too_large_for_memory_is_an_error() {
    let err = Spsc::<u64>::create(&unique_name("toolarge"), usize::MAX).unwrap_err();
    assert!(matches!(err, Error::CapacityTooLarge { .. }), "{err}");
}

#[test]
fn roles_are_exclusive_and_released_on_drop() {
    let name = unique_name("roles");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    let other = Spsc::<u64>::open(&name).unwrap();
    let tx = ring.producer().unwrap();
    let err = other.producer().unwrap_err();
    assert!(
        matches!(&err, Error::RoleTaken { role: Role::Producer, pid, name: n }
            if *pid == std::process::id() && *n == name),
        "{err}"
    );
    let rx = other.consumer().unwrap();
    assert!(matches!(
        ring.consumer(),
        Err(Error::RoleTaken {
            role: Role::Consumer,
            ..
        })
    ));
    drop(tx);
    drop(rx);
    assert!(other.producer().is_ok());
    assert!(ring.consumer().is_ok());
}

children!(child);

/// Entry point of children that claim a role, work, and die without
/// releasing it.
fn child(role: &str) {
    let name: String = arg("RING");
    if let Some(wait) = role.strip_prefix("create-push-") {
        // A service that creates its ring, pushes, and exits normally
        // (after its parent opened the ring and closed our stdin, if told).
        let ring = Spsc::<u64>::create(&name, 4).unwrap();
        ring.producer().unwrap().try_push(42).unwrap();
        if wait == "wait" {
            println!("ready");
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        return;
    }
    let ring = Spsc::<u64>::open(&name).unwrap();
    match role {
        "die-holding-producer" => {
            let mut tx = ring.producer().unwrap();
            for v in 0..3u64 {
                tx.try_push(v).unwrap();
            }
            // Commit two more through a chunk, then die before any drop runs.
            let mut chunk = tx.try_reserve(2).unwrap();
            chunk.fill_from_iter(3..5);
            chunk.commit_all();
            std::process::abort();
        }
        "die-holding-consumer" => {
            let mut rx = ring.consumer().unwrap();
            assert_eq!(rx.try_pop(), Some(0));
            let chunk = rx.try_read(2).unwrap();
            assert_eq!(chunk.read(1), 2);
            chunk.release_all();
            std::process::abort();
        }
        "hold-producer" => {
            let _tx = ring.producer().unwrap();
            println!("holding");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_dead_producers_role_is_taken_over_and_nothing_is_lost() {
    let name = unique_name("deadtx");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let child = spawn_child("die-holding-producer", &[("RING", name)]);
    let status_ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child.wait_success(Duration::from_secs(30))
    }));
    assert!(status_ok.is_err(), "the child should have aborted");
    let mut tx = ring.producer().expect("a dead holder's role is free");
    assert_eq!(tx.pushed(), 5, "resumes after the last committed value");
    tx.try_push(5).unwrap();
    let mut rx = ring.consumer().unwrap();
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_dead_consumers_role_is_taken_over_and_nothing_is_repeated() {
    let name = unique_name("deadrx");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let mut tx = ring.producer().unwrap();
    for v in 0..6u64 {
        tx.try_push(v).unwrap();
    }
    let child = spawn_child("die-holding-consumer", &[("RING", name)]);
    let aborted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child.wait_success(Duration::from_secs(30))
    }));
    assert!(aborted.is_err(), "the child should have aborted");
    let mut rx = ring.consumer().expect("a dead holder's role is free");
    let got: Vec<u64> = std::iter::from_fn(|| rx.try_pop()).collect();
    assert_eq!(got, vec![3, 4, 5]);
}

#[test]
fn a_live_holder_in_another_process_keeps_its_role() {
    let name = unique_name("livetx");
    let ring = Spsc::<u64>::create(&name, 8).unwrap();
    let child = spawn_child("hold-producer", &[("RING", name)]);
    // Wait until the child has claimed the role.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pid = loop {
        match ring.producer() {
            Err(Error::RoleTaken { pid, .. }) => break pid,
            Ok(tx) => drop(tx),
            Err(e) => panic!("{e}"),
        }
        assert!(std::time::Instant::now() < deadline, "child never claimed");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(pid, child.id());
    child.kill();
    assert!(ring.producer().is_ok(), "killed holder's role is free");
}

/// A directory squatting a segment name is no segment: opening it fails
/// with an I/O error that names the call and the name (the catch-all for
/// errors the library has no better name for), never a panic.
#[test]
fn a_directory_under_the_name_is_an_io_error() {
    let name = unique_name("dir");
    std::fs::create_dir(shm_path(&name)).unwrap();
    let _dir = RemoveDir(name.clone());
    let err = Spsc::<u64>::open(&name).expect_err("a directory opened as a segment");
    let text = err.to_string();
    match err {
        Error::Io { op, name: n, .. } => assert_eq!((op, n), ("shm_open", name.clone())),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(text.contains(&name), "{text}");
    assert!(matches!(
        Spsc::<u64>::create(&name, 4),
        Err(Error::AlreadyExists { .. })
    ));
}

//! Liveness comes from the kernel: a live holder is never judged dead (in
//! another pid namespace, with its main thread exited), a forked child
//! never acts for its parent, a name re-created by someone else is never
//! unlinked, and what a handle leaves held is repaired, not frozen.
//!
//! Each test here failed on the pid-plus-start-time design it replaced.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;
use shmring::{ByteRing, Error, Mpmc, OpenOptions, Role, Spsc};

const PATIENCE: Duration = Duration::from_secs(20);

children!(child);

/// Child processes started by re-running this binary.
fn child(role: &str) {
    assert_eq!(role, "hold-producer");
    // Hold the producer role until stdin closes.
    let ring = Spsc::<u64>::open(&arg::<String>("RING")).unwrap();
    let mut tx = ring.producer().unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    tx.try_push(7).unwrap();
}

fn is_role_taken(r: Result<impl Sized, Error>) -> bool {
    matches!(
        r,
        Err(Error::RoleTaken {
            role: Role::Producer,
            ..
        })
    )
}

/// A pipe whose ends are not inherited by programs other tests exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

#[test]
fn a_holder_in_another_pid_namespace_is_alive() {
    let name = unique_name("pidns");
    let ring = Spsc::<u64>::create(&name, 16).unwrap();
    let mut cmd = child_in_new_pid_namespace("hold-producer");
    cmd.env("RING", &name);
    let mut child = match cmd.spawn() {
        Ok(child) => ChildGuard::from(child),
        Err(e) => {
            println!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let mut lines = BufReader::new(child.stdout()).lines();
    if !lines.any(|l| l.is_ok_and(|l| l.trim() == "READY")) {
        let mut err = String::new();
        let _ = child.stderr().read_to_string(&mut err);
        println!("skipped: the child in a new pid namespace did not start: {err}");
        return;
    }
    // Its recorded pid means nothing here; its lease does.
    assert!(
        is_role_taken(ring.producer()),
        "a live holder in another namespace was replaced"
    );
    let info = shmring::inspect(&name).unwrap();
    assert!(info.producer.unwrap().alive);
    assert!(!info.is_stale());
    ring.persist();
    drop(ring);
    assert!(
        !shmring::remove_if_stale(&name).unwrap(),
        "a segment in use was removed"
    );
    let ring = Spsc::<u64>::open(&name).unwrap();
    let _cleanup = Unlink(name.clone());

    child.close_stdin();
    child.wait_success(PATIENCE);
    // Gone now: its role is taken over, and it delivered what it pushed.
    let _tx = ring.producer().unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop(), Some(7));
}

#[test]
fn a_process_whose_main_thread_exited_still_holds_its_role() {
    let name = unique_name("zombie-main");
    let ring = Spsc::<u64>::create(&name, 16).unwrap();
    let (stop_r, stop_w) = pipe();
    let pid = fork_child!({
        drop(stop_w);
        let ring = Spsc::<u64>::open(&name).unwrap();
        let mut tx = ring.producer().unwrap();
        std::thread::spawn(move || {
            let _ = std::fs::File::from(stop_r).read_to_end(&mut Vec::new());
            tx.try_push(9).unwrap();
            drop(tx);
            // SAFETY: ends the process; the main thread is long gone.
            unsafe { libc::_exit(0) }
        });
        // SAFETY: SYS_exit ends only the calling (main) thread.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!()
    });
    drop(stop_r);
    // The main thread has exited when the kernel shows the leader as a zombie.
    let stat = format!("/proc/{pid}/stat");
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if state == Some("Z") && is_role_taken(ring.producer()) {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "child never reached the state: {s}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        is_role_taken(ring.producer()),
        "a live worker's role was taken over"
    );
    assert!(shmring::inspect(&name).unwrap().producer.unwrap().alive);
    drop(stop_w);
    assert_eq!(reap(pid), 0);
    let _tx = ring.producer().unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop(), Some(9));
}

#[test]
fn a_forked_child_dropping_inherited_handles_leaves_the_parents_alone() {
    let name = unique_name("fork");
    let ring = Spsc::<u64>::create(&name, 16).unwrap();
    let mut tx = ring.producer().unwrap();
    let mpmc_name = unique_name("fork-mpmc");
    let mpmc = Mpmc::<u64>::create(&mpmc_name, 4).unwrap();
    let mtx = mpmc.producer().unwrap();
    let slot = mtx.try_reserve().unwrap();
    std::mem::forget(slot);
    let pid = fork_child!({
        // Everything the parent had, dropped here: none of it is ours.
        drop(tx);
        drop(ring);
        drop(mtx);
        drop(mpmc);
        0
    });
    assert_eq!(reap(pid), 0);
    assert!(
        std::path::Path::new(&shm_path(&name)).exists(),
        "the child unlinked the parent's name"
    );
    assert!(
        is_role_taken(ring.producer()),
        "the child released the parent's role"
    );
    tx.try_push(3).unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop(), Some(3));
    // The parent's MPMC record still names its claimed position: no repair.
    assert_eq!(mpmc.recover(), 0);
}

#[test]
fn a_consumer_that_holds_a_value_and_adopts_an_orphan_is_its_only_adopter() {
    let name = unique_name("adopt-holding");
    let ring = Mpmc::<u64>::create(&name, 8).unwrap();
    let tx = ring.producer().unwrap();
    tx.try_push(10).unwrap();
    tx.try_push(11).unwrap();
    // A consumer takes position 0 and dies holding it.
    let pid = fork_child!({
        let ring = Mpmc::<u64>::open(&name).unwrap();
        let rx = ring.consumer().unwrap();
        let slot = rx.try_read().unwrap();
        let code = i32::from(*slot != 10);
        // Die holding it, as a killed consumer would.
        std::mem::forget(slot);
        std::mem::forget(rx);
        std::mem::forget(ring);
        code
    });
    assert_eq!(reap(pid), 0);
    let c2 = ring.consumer().unwrap();
    let held = c2.try_read().expect("position 1");
    let adopted = c2.try_read().expect("the dead consumer's position 0");
    assert_eq!((*held, *adopted), (11, 10));
    let c3 = ring.consumer().unwrap();
    assert!(
        c3.try_read().is_none(),
        "position 0 was taken over a second time"
    );
    drop((held, adopted));
    assert_eq!(c3.try_pop(), None);
    tx.try_push(12).unwrap();
    assert_eq!(c3.try_pop(), Some(12));
}

#[test]
fn dropping_a_creator_never_unlinks_a_name_created_again_since() {
    let name = unique_name("recreated");
    let first = Spsc::<u64>::create(&name, 4).unwrap();
    shmring::remove(&name).unwrap();
    let second = Spsc::<u64>::create(&name, 8).unwrap();
    drop(first);
    let again = Spsc::<u64>::open(&name).expect("the new segment's name was unlinked");
    assert_eq!(again.capacity(), 8);
    drop((again, second));
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn a_mapping_beyond_the_attach_table_still_keeps_the_segment_in_use() {
    let name = unique_name("many-mappings");
    let creator = Spsc::<u64>::create(&name, 4).unwrap();
    creator.persist();
    let _cleanup = Unlink(name.clone());
    let mut openers: Vec<_> = (0..40).map(|_| Spsc::<u64>::open(&name).unwrap()).collect();
    assert_eq!(shmring::inspect(&name).unwrap().attached.len(), 32);
    // Everyone with a table entry leaves; the unlisted ones remain.
    drop(creator);
    let last = openers.pop().unwrap();
    drop(openers);
    let info = shmring::inspect(&name).unwrap();
    assert!(info.attached.iter().all(|a| !a.alive));
    assert!(
        !info.is_stale(),
        "a segment mapped by an unlisted process looked stale"
    );
    assert!(!shmring::remove_if_stale(&name).unwrap());
    drop(last);
    assert!(eventually(|| shmring::inspect(&name).unwrap().is_stale()));
}

#[test]
fn removing_a_stale_segment_gives_up_on_a_lock_held_too_long() {
    let name = unique_name("flock");
    let ring = Spsc::<u64>::create(&name, 4).unwrap();
    let file = std::fs::File::open(shm_path(&name)).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let n = name.clone();
    std::thread::spawn(move || done_tx.send(shmring::remove_if_stale(&n)));
    let result = done_rx
        .recv_timeout(PATIENCE)
        .expect("remove_if_stale waited without a bound");
    assert!(matches!(result, Err(Error::Busy { .. })), "{result:?}");
    drop((held, ring));
}

#[test]
fn a_segment_is_never_seen_before_its_creator_finished_it() {
    let name = unique_name("half-made");
    let n = name.clone();
    let creator = std::thread::spawn(move || Spsc::<[u64; 4]>::create(&n, 1 << 21).unwrap());
    let quick = OpenOptions::new().init_timeout(Duration::ZERO);
    let start = Instant::now();
    loop {
        match Spsc::<[u64; 4]>::open_with(&name, &quick) {
            Ok(_) => break,
            Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("saw the segment half-made: {e}"),
        }
        assert!(start.elapsed() < PATIENCE);
        std::thread::yield_now();
    }
    drop(creator.join().unwrap());
}

#[test]
fn a_creator_killed_while_filling_the_segment_leaves_no_name() {
    let name = unique_name("killed-creator");
    let (go_r, go_w) = pipe();
    let pid = fork_child!({
        drop(go_r);
        let mut go = std::fs::File::from(go_w);
        go.write_all(b"x").unwrap();
        // Large enough that the kill lands while the slots are written.
        let _ring = Spsc::<[u64; 8]>::create(&name, 1 << 23);
        0
    });
    drop(go_w);
    let mut byte = [0u8];
    std::fs::File::from(go_r).read_exact(&mut byte).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    let path = shm_path(&name);
    let left = std::path::Path::new(&path).exists();
    let _ = std::fs::remove_file(&path);
    assert!(
        !left,
        "a killed creator left a half-made segment under its name"
    );
}

#[test]
fn a_side_holds_at_most_32_handles_and_says_so() {
    let name = unique_name("too-many");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let mut handles: Vec<_> = (0..32).map(|_| ring.consumer().unwrap()).collect();
    match ring.consumer() {
        Err(Error::TooManyHandles {
            limit: 32,
            side: "consumer",
            ..
        }) => {}
        other => panic!("expected TooManyHandles, got {:?}", other.err()),
    }
    assert!(handles[0].try_clone().is_err());
    handles.pop();
    let _again = handles[0].try_clone().unwrap();
    let _producer = ring.producer().unwrap();
}

#[test]
fn positions_held_by_forgotten_guards_are_repaired_when_the_handle_drops() {
    let name = unique_name("forgotten");
    let ring = Mpmc::<u64>::create(&name, 4).unwrap();
    let lost = ring.producer().unwrap();
    std::mem::forget(lost.try_reserve().unwrap());
    drop(lost);
    let tx = ring.producer().unwrap();
    tx.try_push(5).unwrap();
    let rx = ring.consumer().unwrap();
    assert_eq!(rx.pop_timeout(Duration::from_secs(5)).unwrap(), 5);

    let gone = ring.consumer().unwrap();
    tx.try_push(6).unwrap();
    std::mem::forget(gone.try_read().unwrap());
    drop(gone);
    ring.recover();
    assert_eq!(
        rx.try_pop(),
        Some(6),
        "a forgotten read guard's value is handed on"
    );

    let bytes_name = unique_name("forgotten-grant");
    let bytes = ByteRing::create(&bytes_name, 1024).unwrap();
    let mut lost = bytes.producer().unwrap();
    std::mem::forget(lost.try_reserve(8).unwrap());
    drop(lost);
    bytes.producer().unwrap().try_send(b"after").unwrap();
    let mut brx = bytes.consumer().unwrap();
    let msg = brx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(&*msg, b"after");
}

#[test]
fn a_write_slot_dropped_uncommitted_or_while_panicking_delivers_nothing() {
    let name = unique_name("skip");
    let ring = Mpmc::<[u64; 2]>::create(&name, 4).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    drop(tx.try_reserve().unwrap());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut slot = tx.try_reserve().unwrap();
        slot[0] = 1; // half written
        panic!("writer fails");
    }));
    assert!(panicked.is_err());
    let mut slot = tx.try_reserve().unwrap();
    slot.write([2, 2]);
    drop(tx.try_reserve().unwrap()); // a second claim, dropped uncommitted
    slot.commit();
    assert_eq!(
        rx.try_pop(),
        Some([2, 2]),
        "a skipped or half-written value was delivered"
    );
    assert_eq!(rx.try_pop(), None);
}

#[test]
fn byte_rings_refuse_areas_whose_messages_overflow_the_length_word() {
    let name = unique_name("huge");
    match ByteRing::create(&name, 16 << 30) {
        Err(Error::CapacityTooLarge { .. }) => {}
        other => panic!("expected CapacityTooLarge, got {:?}", other.err()),
    }
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn inspecting_a_crafted_capacity_does_not_overflow() {
    let name = unique_name("crafted");
    let ring = ByteRing::create(&name, 1024).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let off = shmring::header_offsets::CAPACITY as u64;
    f.write_all_at(&(1u64 << 63).to_le_bytes(), off).unwrap();
    let slot = shmring::header_offsets::SLOT_SIZE as u64;
    f.write_all_at(&0u64.to_le_bytes(), slot).unwrap();
    // Slots of 0 bytes "fill" the segment when the data start at its end.
    // The data offset sits right after the slot size (pinned in header.rs).
    let len = f.metadata().unwrap().len();
    f.write_all_at(&len.to_le_bytes(), slot + 8).unwrap();
    // An error or a saturated figure; never an arithmetic panic.
    if let Ok(info) = shmring::inspect(&name) {
        assert!(info.capacity >= 1 << 63);
    }
    drop(ring);
}

/// Write a claim record as a peer could: `owner` (no lease behind it, so
/// a dead one), naming `first..=last`.
fn craft_record(name: &str, table: usize, index: usize, owner: u64, first: u64, last: u64) {
    use shmring::header_offsets as off;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .unwrap();
    let at = (table + index * off::CLAIM_RECORD_LEN) as u64;
    for (i, v) in [owner, first, last].into_iter().enumerate() {
        f.write_all_at(&v.to_le_bytes(), at + 8 * i as u64).unwrap();
    }
}

#[test]
fn a_dead_span_named_but_never_won_does_not_keep_the_owners_from_repair() {
    let name = unique_name("never-won");
    let ring = ByteRing::create(&name, 1024).unwrap();
    // The owner dies holding an uncommitted 64-byte record at 0..64.
    let mut owner = ring.producer().unwrap();
    std::mem::forget(owner.try_reserve(40).unwrap());
    drop(owner);
    // A handle that lost the same claim, and died before unnaming its span.
    craft_record(
        &name,
        shmring::header_offsets::PRODUCER_CLAIMS,
        31,
        0xdead << 22,
        0,
        31,
    );
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"hello").unwrap();
    let mut rx = ring.consumer().unwrap();
    let msg = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("stalled behind the dead spans");
    assert_eq!(&*msg, b"hello");
}

#[test]
fn hostile_records_naming_every_position_leave_a_live_claim_alone() {
    let name = unique_name("hostile-records");
    let cap = 1u64 << 16;
    let ring = Mpmc::<u64>::create(&name, cap as usize).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    let mut held = tx.try_reserve().unwrap(); // position 1, live and unpublished
    tx.try_push(3).unwrap();
    use shmring::header_offsets as off;
    for i in 1..32 {
        craft_record(&name, off::PRODUCER_CLAIMS, i, 0xbad << 22, 0, cap - 1);
        craft_record(&name, off::CONSUMER_CLAIMS, i, 0xbad << 22, 0, cap - 1);
    }
    // Bounded work, and nothing a live handle holds is touched.
    for _ in 0..3 {
        ring.recover();
    }
    assert_eq!(rx.try_pop(), Some(1));
    assert_eq!(
        rx.try_pop(),
        None,
        "the live claim at position 1 was skipped"
    );
    *held = 2;
    held.commit();
    assert_eq!(rx.try_pop(), Some(2));
    assert_eq!(rx.try_pop(), Some(3));
}

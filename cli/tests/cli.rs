//! The `shmring` command's ls, stat and rm, run as a user would run them.

#[path = "../../tests/common/mod.rs"]
#[macro_use]
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use shmring::{ByteRing, Spsc};

fn shmring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmring"))
        .args(args)
        .output()
        .expect("run shmring")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

children!(child);

/// What this binary does when re-run as a child (see `tests/common`).
fn child(role: &str) {
    let ring = Spsc::<u64>::create(&arg::<String>("RING"), 8).unwrap();
    match role {
        // Exit as a killed process does, without leaving: the name stays,
        // stale.
        "create-and-exit" => std::mem::forget(ring),
        // A service that is killed: it leaves its ring stale.
        "create-and-wait" => {
            println!("ready");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A segment made by a process that was then SIGKILLed: stale, its name
/// left behind.
fn stale_segment(name: &str) {
    let mut child: ChildGuard = child_command("create-and-wait")
        .env("RING", name)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .into();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child.kill();
    assert!(eventually(
        || shmring::inspect(name).is_ok_and(|i| i.is_stale())
    ));
}

#[test]
fn ls_lists_a_ring_with_its_kind_capacity_fill_and_pids() {
    let ring = ByteRing::create(&unique_name("cli-ls"), 4096).unwrap();
    ring.producer().unwrap().try_send(&[0; 100]).unwrap();
    let out = shmring(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with(ring.name()))
        .unwrap_or_else(|| panic!("not listed:\n{text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
    assert_eq!(fields[1], me, "the owner");
    assert_eq!(fields[2], "bytes");
    assert_eq!(fields[4], "4096");
    assert_eq!(
        fields[5], "128",
        "one 100-byte message is a 128-byte record"
    );
    assert_eq!(fields[6], "no");
    assert_eq!(fields[7], std::process::id().to_string());
}

#[test]
fn stat_prints_a_table_and_prometheus_metrics() {
    let ring = Spsc::<u64>::create(&unique_name("cli-stat"), 16).unwrap();
    let mut tx = ring.producer().unwrap();
    for v in 0..3 {
        tx.try_push(v).unwrap();
    }
    let out = shmring(&["stat", ring.name()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("written        3 values"), "{text}");
    assert!(text.contains("fill           3 values"), "{text}");

    let out = shmring(&["stat", ring.name(), "--prometheus"]);
    let text = stdout(&out);
    let labels = format!("{{ring=\"{}\",kind=\"spsc\"}}", ring.name());
    assert!(
        text.contains(&format!("shmring_written_bytes_total{labels} 24")),
        "{text}"
    );
    assert!(
        text.contains(&format!("shmring_written_messages_total{labels} 3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("shmring_capacity_bytes{labels} 128")),
        "{text}"
    );
    assert!(text.contains("# TYPE shmring_fill_bytes gauge"), "{text}");

    let out = shmring(&[
        "stat",
        ring.name(),
        "--watch",
        "--interval",
        "10",
        "--count",
        "3",
    ]);
    // Not a terminal: three stamped looks, appended.
    assert_eq!(stdout(&out).matches(" UTC ").count(), 3, "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("  attached ").count(), 3);
}

#[test]
fn rm_refuses_a_live_segment_unless_forced() {
    let ring = Spsc::<u64>::create(&unique_name("cli-rm"), 8).unwrap();
    let out = shmring(&["rm", ring.name()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is in use"), "{}", stderr(&out));
    assert!(shmring::inspect(ring.name()).is_ok());
    let out = shmring(&["rm", "--force", ring.name()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(matches!(
        shmring::inspect(ring.name()),
        Err(shmring::Error::NotFound { .. })
    ));
}

/// `rm --force` removes rings only: given another program's FIFO and
/// semaphore between two rings, it removes both rings, leaves the others
/// with a line each saying what they are, and exits non-zero.
#[test]
fn rm_force_removes_every_ring_named_and_nothing_else() {
    let (a, b) = (unique_name("cli-rm-a"), unique_name("cli-rm-b"));
    let (fifo, sem) = (unique_name("cli-rm-fifo"), unique_name("cli-rm-sem"));
    let _cleanup = [a.clone(), b.clone(), fifo.clone(), sem.clone()].map(Unlink);
    let ring_a = Spsc::<u64>::create(&a, 8).unwrap();
    let ring_b = Spsc::<u64>::create(&b, 8).unwrap();
    nix::unistd::mkfifo(
        shm_path(&fifo).as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::write(shm_path(&sem), [1u8; 32]).unwrap();

    let out = shmring(&["rm", "--force", &a, &fifo, &sem, &b]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!exists(&a) && !exists(&b), "{}", stderr(&out));
    assert!(
        exists(&fifo) && exists(&sem),
        "another program's file was removed"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{fifo:?} in /dev/shm is a FIFO")),
        "{err}"
    );
    assert!(
        err.contains(&format!("segment {sem:?} is not a shmring segment")),
        "{err}"
    );
    assert!(
        err.contains("2 segment(s) or state file(s) could not be removed"),
        "{err}"
    );
    drop((ring_a, ring_b));
}

/// `rm --stale --dry-run` names what `rm --stale` would remove and
/// removes nothing.
#[test]
fn rm_stale_dry_run_names_what_would_go_and_keeps_it() {
    let name = unique_name("cli-dry-run");
    let _cleanup = Unlink(name.clone());
    stale_segment(&name);
    let live = Spsc::<u64>::create(&format!("{name}-live"), 8).unwrap();
    let out = shmring(&["rm", "--stale", "--dry-run", "--prefix", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains(&format!("would remove {name}\n")), "{said}");
    assert!(!said.contains(live.name()), "{said}");
    assert!(
        said.contains("1 stale segment(s) would be removed"),
        "{said}"
    );
    assert!(exists(&name), "a dry run removed a segment");
}

#[test]
fn rm_keeps_a_persisted_ring_unless_forced() {
    let name = unique_name("cli-persisted");
    let _cleanup = Unlink(name.clone());
    {
        let ring = Spsc::<u64>::create(&name, 8).unwrap();
        ring.persist();
        ring.producer().unwrap().try_push(5).unwrap();
    }
    let prefix = name.trim_end_matches("cli-persisted");
    let out = shmring(&["rm", "--stale", "--prefix", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        shmring::inspect(&name).is_ok(),
        "rm --stale removed a persisted ring"
    );
    let out = shmring(&["rm", &name]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is persisted"), "{}", stderr(&out));
    let out = shmring(&["rm", "--force", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(shmring::inspect(&name).is_err());
}

#[test]
fn rm_removes_stale_segments_by_name_and_all_at_once() {
    let names: Vec<String> = (0..2).map(|_| unique_name("cli-stale")).collect();
    let _cleanup: Vec<Unlink> = names.iter().cloned().map(Unlink).collect();
    for name in &names {
        spawn_child("create-and-exit", &[("RING", name.clone())])
            .wait_success(Duration::from_secs(30));
    }
    let out = shmring(&["rm", &names[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Only this test's segments: others on the machine are not ours to remove.
    let prefix = names[1].trim_end_matches("cli-stale");
    let out = shmring(&["rm", "--stale", "--prefix", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("removed {}", names[1])));
    // Said once: the library's event is not printed beside the command's line.
    assert!(
        !stderr(&out).contains("removed stale segment"),
        "{}",
        stderr(&out)
    );
    for name in &names {
        assert!(shmring::inspect(name).is_err(), "{name} is still there");
    }
}

/// `rm --stale` acts on every stale segment and reports each: one it
/// cannot remove (here another process holds its `flock` past the
/// command's patience) makes the exit status 1, after the others were
/// removed, not instead.
#[test]
fn rm_stale_goes_on_past_a_segment_it_cannot_remove() {
    let base = unique_name("cli-stale-all");
    // Listed in name order: the one that fails comes first.
    let (held, free) = (format!("{base}-a"), format!("{base}-b"));
    let _cleanup = (Unlink(held.clone()), Unlink(free.clone()));
    stale_segment(&held);
    stale_segment(&free);
    let file = std::fs::File::open(shm_path(&held)).unwrap();
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();

    let out = shmring(&["rm", "--stale", "--prefix", &base]);
    drop(lock);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed {free}")),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!exists(&free), "the segment after the failure was left");
    assert!(exists(&held));
    assert!(
        stderr(&out).contains(&format!("{held}: not removed")),
        "{}",
        stderr(&out)
    );
}

/// Write format version `version` into segment `name`'s header, as an
/// older (or newer) shmring would have.
fn set_version(name: &str, version: u32) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .unwrap();
    file.write_at(
        &version.to_le_bytes(),
        shmring::header_offsets::VERSION as u64,
    )
    .unwrap();
}

/// A segment left by an older shmring: staleness is the kernel's word
/// (every mapping's lock, since format version 5), so `rm --stale` removes
/// a stale one and leaves one in use; one whose users this version cannot
/// tell is left, and `ls`, `stat` and `rm --stale` say that `rm --force`
/// removes it.
#[test]
fn rm_stale_removes_an_older_format_and_names_rm_force_for_the_rest() {
    let base = unique_name("cli-old-format");
    let (old, live, ancient) = (
        format!("{base}-old"),
        format!("{base}-live"),
        format!("{base}-ancient"),
    );
    let _cleanup = (
        Unlink(old.clone()),
        Unlink(live.clone()),
        Unlink(ancient.clone()),
    );
    stale_segment(&old);
    set_version(&old, 6);
    let in_use = Spsc::<u64>::create(&live, 8).unwrap();
    set_version(&live, 6);
    stale_segment(&ancient);
    set_version(&ancient, 4);

    let out = shmring(&["ls"]);
    let force = format!("`shmring rm --force {ancient}` removes it");
    assert!(stdout(&out).contains(&force), "{}", stdout(&out));
    let out = shmring(&["stat", &ancient]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("format version 4"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&force), "{}", stderr(&out));

    let out = shmring(&["rm", "--stale", "--prefix", &base]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed {old}")),
        "{}",
        stdout(&out)
    );
    assert!(!exists(&old));
    assert!(exists(&live), "a segment in use was removed");
    assert!(exists(&ancient));
    assert!(
        stderr(&out).contains(&format!("`shmring rm --force {ancient}` removes it")),
        "{}",
        stderr(&out)
    );
    let out = shmring(&["rm", "--force", &ancient]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!exists(&ancient));
    drop(in_use);
}

#[test]
fn errors_are_messages_with_a_failing_status() {
    let out = shmring(&["stat", "no/such"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid segment name"),
        "{}",
        stderr(&out)
    );
    let out = shmring(&["stat", &unique_name("missing")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no shared-memory segment"));
    let out = shmring(&["rm"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

/// The unsigned number after `"key":` in a JSON object.
fn json_u64(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key}: {json}"));
    json[at + key.len() + 3..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key}: {json}"))
}

#[test]
fn bench_measures_a_chosen_workload_as_json() {
    let out = shmring(&[
        "bench",
        "--kind",
        "mpmc",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--size",
        "64",
        "--duration",
        "0.3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    let field = |k: &str| json_u64(&json, k);
    assert!(field("messages") > 0, "{json}");
    assert_eq!(
        (field("producers"), field("consumers"), field("size")),
        (2, 2, 64)
    );
    assert!(field("p50") <= field("max"), "{json}");

    let out = shmring(&[
        "bench",
        "--kind",
        "bytes",
        "--size",
        "100",
        "--duration",
        "0.2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("messages/s"));

    // Paced: two producers at 1000 messages/s each for 0.4 s send at most
    // 2 * 401 between them (a flood sends millions), and all arrive.
    let out = shmring(&[
        "bench",
        "--kind",
        "mpmc",
        "--producers",
        "2",
        "--rate",
        "1000",
        "--duration",
        "0.4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    assert_eq!(json_u64(&json, "rate_per_producer"), 1000, "{json}");
    assert!((1..=802).contains(&json_u64(&json, "messages")), "{json}");

    // Arguments that cannot work are usage errors, as --help says: 2.
    let out = shmring(&["bench", "--kind", "spsc", "--producers", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exactly one producer"),
        "{}",
        stderr(&out)
    );
    let out = shmring(&["bench", "--kind", "spsc", "--size", "12"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Arguments that would make no sense are refused as bad usage (exit 2)
/// with a message naming them, before anything runs: `demo --count 0` printed rows of NaN, and
/// `bench --duration 0` was refused with "must be between 0 and 3600".
#[test]
fn empty_runs_are_refused_by_name() {
    for (args, says) in [
        (&["demo", "--count", "0"][..], "--count must be at least 1"),
        (&["demo", "--round-trips", "5"], "--round-trips at least 10"),
        (
            &["bench", "--kind", "spsc", "--duration", "0"],
            "--duration must be more than 0",
        ),
    ] {
        let out = shmring(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).contains("NaN"), "{}", stdout(&out));
    }
}

/// Root looks at every user's rings, read-only, with the owner shown, and
/// removes the stale ones: `ls`, `stat` and `ls --json` said "owned by uid
/// 4242, not by this process's uid 0" and nothing more, and `rm --stale`
/// passed over it.
#[test]
fn root_sees_another_users_ring_and_whose_it_is() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making another user's ring needs root");
        return;
    }
    let name = unique_name("cli-foreign");
    let _cleanup = Unlink(name.clone());
    let made = child_command("create-and-exit")
        .env("RING", &name)
        .uid(4242)
        .gid(4242)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(shmring::inspect(&name).unwrap().owner_uid, 4242);

    let out = shmring(&["ls"]);
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with(&name))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name} not listed:\n{}", stdout(&out)));
    assert!(!line.contains("unreadable"), "{line}");
    let out = shmring(&["stat", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(uid 4242), mode 0600"),
        "{}",
        stdout(&out)
    );
    let out = shmring(&["ls", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ring = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap();
    assert_eq!(
        (ring["owner_uid"].as_u64(), ring["mode"].as_str()),
        (Some(4242), Some("0600"))
    );
    // It is stale (its creator exited): root's `rm --stale` removes it,
    // where it used to skip it without a word.
    let out = shmring(&["rm", "--stale", "--prefix", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed {name}")),
        "{}",
        stdout(&out)
    );
    assert!(!exists(&name));
}

/// The demo says so when other work keeps the machine busy (here, a
/// spinning thread per CPU in this test), since its numbers then swing
/// tenfold.
#[test]
fn the_demo_warns_when_the_machine_is_busy() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let out = std::thread::scope(|s| {
        for _ in 0..cpus {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let out = shmring(&["demo", "--count", "1000", "--round-trips", "10"]);
        stop.store(true, Ordering::Relaxed);
        out
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("warning: other programs keep"),
        "{}",
        stdout(&out)
    );
}

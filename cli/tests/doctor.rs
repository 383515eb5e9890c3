//! `shmring doctor`, on conditions made for each check: a /dev/shm of
//! Docker's default size (a tmpfs mounted in a mount namespace of its
//! own), rings asked for that do not fit, and a ring's peer in another
//! mount namespace.

#[path = "../../tests/common/mod.rs"]
#[macro_use]
mod common;

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use shmring::Spsc;

children!(child);

/// A service holding a ring until its stdin closes.
fn child(role: &str) {
    assert_eq!(role, "hold-ring");
    let _ring = Spsc::<u64>::open_or_create(&arg::<String>("RING"), 8).unwrap();
    println!("ready");
    let _ = std::io::stdin().read_line(&mut String::new());
}

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmring"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run shmring doctor")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The check named `name` in `doctor --json`'s answer.
fn check<'a>(all: &'a Value, name: &str) -> &'a Value {
    all.as_array()
        .expect("an array of checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {all:#}"))
}

#[test]
fn every_check_says_what_it_found_and_rings_that_do_not_fit_fail() {
    let out = doctor(&["--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for name in [
        "memory filesystem",
        "size",
        "free space",
        "systemd RemoveIPC",
        "namespaces",
    ] {
        let c = check(&all, name);
        assert!(!c["found"].as_str().unwrap().is_empty(), "{c:#}");
        assert!(["ok", "warn", "fail"].contains(&c["verdict"].as_str().unwrap()));
    }
    assert_eq!(check(&all, "memory filesystem")["verdict"], "ok", "{all:#}");

    // More than any machine has free: the check fails, with the remedy.
    let out = doctor(&["--need", "1000000G"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("FAIL free space"), "{said}");
    assert!(said.contains("--shm-size"), "{said}");
}

/// What Docker gives a container unless told otherwise: 64 MiB. Made
/// here as a tmpfs of that size in a mount namespace of its own.
#[test]
fn a_shm_of_dockers_default_size_is_flagged_with_the_flag_that_fixes_it() {
    let dir = std::env::temp_dir().join(unique_name("doctor-64m"));
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let script = format!(
        "mount -t tmpfs -o size=64m none '{}' && exec '{}' doctor --dir '{}' --json",
        dir.display(),
        env!("CARGO_BIN_EXE_shmring"),
        dir.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let size = check(&all, "size");
    assert_eq!(size["verdict"], "warn", "{size:#}");
    assert!(
        size["found"].as_str().unwrap().starts_with("64.0 MiB"),
        "{size:#}"
    );
    assert!(
        size["advice"].as_str().unwrap().contains("--shm-size"),
        "{size:#}"
    );
}

/// A ring's peer in another mount namespace may see another /dev/shm:
/// named, with the remedy.
#[test]
fn a_peer_in_another_mount_namespace_is_named() {
    let name = unique_name("doctor-ns");
    let _cleanup = Unlink(name.clone());
    let inner = child_command("hold-ring");
    let mut peer = Command::new("unshare");
    peer.arg("--mount")
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("RING", &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut peer: ChildGuard = peer.spawn().expect("unshare").into();
    let mut ready = String::new();
    std::io::BufReader::new(peer.stdout())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    let out = doctor(&["--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ns = check(&all, "namespaces");
    assert_eq!(ns["verdict"], "warn", "{ns:#}");
    assert!(ns["found"].as_str().unwrap().contains(&name), "{ns:#}");
    assert!(ns["advice"].as_str().unwrap().contains("--ipc"), "{ns:#}");
    peer.close_stdin();
    peer.wait_success(Duration::from_secs(30));
}

/// Removes a directory (empty, or a mount point left empty) on drop.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

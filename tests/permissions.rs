//! Access between users: a segment's mode is what decides who may open it
//! (or look into it), and a segment another user created under our name
//! is refused for use but shown, with its owner, to whoever may read it.
//!
//! The other user is a child process started with a different uid (the
//! test binary re-executed through `Command::uid`, which calls `setuid` in
//! the forked child before `exec`). That needs root; as any other user the
//! tests print why they are skipped and pass.

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Output;
use std::time::Duration;

use common::*;
use shmring::{CreateOptions, Error, OpenOptions, Spsc};

/// A uid and gid no account on the machine is expected to use.
const STRANGER: u32 = 4242;

children!(child);

/// Entry point of the children, which run as another user.
fn child(role: &str) {
    let name: String = arg("RING");
    match role {
        // Print how opening went, for the parent to check: the variant is
        // the contract, so the parent matches on its name.
        "open" => report(Spsc::<u64>::open(&name).map(|_| ())),
        "inspect" => report(shmring::inspect(&name).map(|_| ())),
        // Open trusting the uid and gid given (if any), and pop.
        "open-trusting-and-pop" => {
            let mut opts = OpenOptions::new();
            if let Ok(uid) = std::env::var("TRUST_UID") {
                opts = opts.trust_owner(uid.parse().unwrap());
            }
            if let Ok(gid) = std::env::var("TRUST_GID") {
                opts = opts.trust_group(gid.parse().unwrap());
            }
            report(Spsc::<u64>::open_with(&name, &opts).and_then(|ring| {
                let value = ring.consumer()?.try_pop();
                println!("popped {value:?}");
                Ok(())
            }))
        }
        "create-for-group" => {
            let gid: u32 = arg("GROUP");
            let opts = CreateOptions::new().mode(0o660).group(gid);
            report(Spsc::<u64>::create_with(&name, 4, &opts).map(|_| ()))
        }
        "open-foreign-and-pop" => {
            let opts = OpenOptions::new().allow_foreign_owner(true);
            report(Spsc::<u64>::open_with(&name, &opts).and_then(|ring| {
                let value = ring.consumer()?.pop_timeout(Duration::from_secs(10))?;
                println!("popped {value}");
                Ok(())
            }))
        }
        "squat" => {
            let ring = Spsc::<u64>::create(&name, 4).unwrap();
            ring.persist();
            report(Ok(()));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Print the outcome as `RESULT Ok` or `RESULT <variant>: <message>`.
fn report(result: shmring::Result<()>) {
    let variant = |e: &shmring::Error| match e {
        shmring::Error::PermissionDenied { .. } => "PermissionDenied",
        shmring::Error::ForeignOwner { .. } => "ForeignOwner",
        shmring::Error::NotReadable { .. } => "NotReadable",
        _ => "Other",
    };
    match result {
        Ok(()) => println!("RESULT Ok"),
        Err(e) => println!("RESULT {}: {e}", variant(&e)),
    }
}

/// Run child `role` on segment `name` as uid `uid`, gid `gid`; `None` (with
/// the reason printed) when this process cannot change users.
fn run_as(uid: u32, gid: u32, role: &str, name: &str) -> Option<Output> {
    run_as_with(uid, gid, role, name, &[])
}

/// [`run_as`] with more variables in the child's environment.
fn run_as_with(
    uid: u32,
    gid: u32,
    role: &str,
    name: &str,
    env: &[(&str, String)],
) -> Option<Output> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running a child as another uid needs root");
        return None;
    }
    let mut cmd = child_command(role);
    cmd.env("RING", name).uid(uid).gid(gid);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        // The test binary must be reachable by the other user; a checkout
        // under a private home directory is not.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: uid {uid} cannot execute this test binary: {e}");
            return None;
        }
        Err(e) => panic!("spawn child: {e}"),
    };
    Some(out)
}

/// The `RESULT` line a child printed.
fn result_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result; status {}, stdout {stdout}, stderr {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string()
}

#[test]
fn the_default_mode_keeps_other_users_out() {
    let name = unique_name("perm-default");
    let _ring = Spsc::<u64>::create(&name, 4).unwrap();
    let Some(out) = run_as(STRANGER, STRANGER, "open", &name) else {
        return;
    };
    let result = result_of(&out);
    assert!(result.starts_with("PermissionDenied"), "{result}");
    // Nor can it look: it is told whose ring it is, with what mode.
    let out = run_as(STRANGER, STRANGER, "inspect", &name).unwrap();
    let result = result_of(&out);
    assert!(result.starts_with("NotReadable"), "{result}");
    assert!(
        result.contains(&format!(
            "belongs to uid {} with mode 0600",
            nix::unistd::geteuid()
        )),
        "{result}"
    );
}

#[test]
fn a_group_mode_lets_the_group_in_and_no_one_else() {
    let name = unique_name("perm-group");
    let ring = Spsc::<u64>::create_with(&name, 4, &CreateOptions::new().mode(0o660)).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_push(42).unwrap();
    let group = nix::unistd::getegid().as_raw();

    // In the segment's group: opening a segment another user owns must be
    // asked for explicitly, and then it works both ways round.
    let Some(out) = run_as(STRANGER, group, "open", &name) else {
        return;
    };
    let result = result_of(&out);
    assert!(result.starts_with("ForeignOwner"), "{result}");
    let out = run_as(STRANGER, group, "open-foreign-and-pop", &name).unwrap();
    assert_eq!(result_of(&out), "Ok");
    assert!(String::from_utf8_lossy(&out.stdout).contains("popped 42"));

    // Outside the group: the mode keeps it out.
    let out = run_as(STRANGER, STRANGER, "open-foreign-and-pop", &name).unwrap();
    let result = result_of(&out);
    assert!(result.starts_with("PermissionDenied"), "{result}");
}

#[test]
fn a_segment_squatted_by_another_user_is_refused() {
    let name = unique_name("perm-squat");
    let _cleanup = Unlink(name.clone());
    let Some(out) = run_as(STRANGER, STRANGER, "squat", &name) else {
        return;
    };
    assert_eq!(result_of(&out), "Ok");

    // The name is taken: creating it fails rather than reusing the
    // squatter's file, and opening it names the squatter.
    let err = Spsc::<u64>::create(&name, 4).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let err = Spsc::<u64>::open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ForeignOwner {
                owner: STRANGER,
                ..
            }
        ),
        "{err}"
    );
    // Looking is not trusting: root sees the squatter's ring, and whose it is.
    let info = shmring::inspect(&name).unwrap();
    assert_eq!((info.owner_uid, info.mode), (STRANGER, 0o600));
    assert!(shmring::list()
        .unwrap()
        .iter()
        .any(|(n, i)| *n == name && i.as_ref().is_ok_and(|i| i.owner_uid == STRANGER)));
}

/// Services under different users name whom they trust: the ring's owner
/// (`trust_owner`) or the group its creator gave it (`CreateOptions::group`
/// and `trust_group`); anyone else is still refused.
#[test]
fn a_reader_trusts_the_owner_or_group_it_names_and_no_one_else() {
    const GROUP: u32 = 4243;
    let name = unique_name("perm-trust");
    let opts = CreateOptions::new().mode(0o660).group(GROUP);
    let ring = Spsc::<u64>::create_with(&name, 4, &opts).unwrap();
    ring.producer().unwrap().try_push(7).unwrap();
    let meta = std::fs::metadata(shm_path(&name)).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o777), (GROUP, 0o660));

    let me = nix::unistd::geteuid().as_raw().to_string();
    let open = |env: &[(&str, String)]| {
        run_as_with(STRANGER, GROUP, "open-trusting-and-pop", &name, env).map(|o| result_of(&o))
    };
    let Some(result) = open(&[]) else {
        return;
    };
    assert!(result.starts_with("ForeignOwner"), "{result}");
    assert!(result.contains("trust_owner"), "{result}");
    let result = open(&[("TRUST_UID", "1234".into())]).unwrap();
    assert!(result.starts_with("ForeignOwner"), "{result}");
    assert_eq!(open(&[("TRUST_UID", me)]).unwrap(), "Ok");
    assert_eq!(open(&[("TRUST_GID", GROUP.to_string())]).unwrap(), "Ok");
    assert!(open(&[("TRUST_GID", "4244".into())])
        .unwrap()
        .starts_with("ForeignOwner"));
}

/// Only a member of a group may give a ring to it: a create for another
/// group fails, naming the cause, and leaves nothing.
#[test]
fn a_ring_cannot_be_given_to_a_group_its_creator_is_not_in() {
    let name = unique_name("perm-not-member");
    let _cleanup = Unlink(name.clone());
    let Some(out) = run_as_with(
        STRANGER,
        STRANGER,
        "create-for-group",
        &name,
        &[("GROUP", "4243".into())],
    ) else {
        return;
    };
    let result = result_of(&out);
    assert!(result.contains("is this user in it?"), "{result}");
    assert!(!exists(&name));
}

//! `shmring doctor`: what on this host (or in this container) breaks
//! shared-memory IPC, checked one by one, each with what to do about it.
//!
//! The checks, in the order they are printed:
//! - the shm directory is a memory filesystem (tmpfs), as rings assume;
//! - its size: Docker gives a container 64 MiB unless told otherwise;
//! - its free space against what the rings asked for (`--need`) and what
//!   the rings there already take;
//! - systemd-logind's `RemoveIPC`, which deletes a user's segments when
//!   their last login session ends;
//! - peers of the rings there that live in another IPC or mount
//!   namespace than this process, which may not see the same /dev/shm.
//!
//! Exit status 1 when a check fails, 0 otherwise (warnings included).

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Docker's default /dev/shm for a container.
const DOCKER_DEFAULT: u64 = 64 << 20;

/// Arguments of `shmring doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Bytes the rings about to be created need (suffixes K, M, G): the
    /// check fails if the shm directory has less free.
    #[arg(long, value_parser = parse_size)]
    pub need: Option<u64>,
    /// The shm directory to check (another mount of /dev/shm, or a
    /// container's seen from the host).
    #[arg(long, default_value = "/dev/shm")]
    pub dir: PathBuf,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('G') => (t[..t.len() - 1].to_owned(), 30),
        t if t.ends_with('M') => (t[..t.len() - 1].to_owned(), 20),
        t if t.ends_with('K') => (t[..t.len() - 1].to_owned(), 10),
        t => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (a number of bytes, or with K, M or G)"))
}

/// How a check came out.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One check: what it looked at, what it found, and what to do.
#[derive(Serialize, Debug)]
pub struct Check {
    pub check: &'static str,
    pub verdict: Verdict,
    pub found: String,
    /// Empty when there is nothing to do.
    pub advice: String,
}

fn check(check: &'static str, verdict: Verdict, found: String, advice: &str) -> Check {
    Check {
        check,
        verdict,
        found,
        advice: advice.to_owned(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Every check on `args.dir`.
pub fn checks(args: &DoctorArgs) -> Vec<Check> {
    let dir = &args.dir;
    let mut out = Vec::new();
    match nix::sys::statfs::statfs(dir) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC => out.push(check(
            "memory filesystem",
            Verdict::Ok,
            format!("{} is tmpfs", dir.display()),
            "",
        )),
        Ok(_) => out.push(check(
            "memory filesystem",
            Verdict::Warn,
            format!(
                "{} is not tmpfs: rings there are files on a disk",
                dir.display()
            ),
            "mount a tmpfs there (what /dev/shm is on Linux), or give the container its \
             host's: docker run --ipc=host, or a Kubernetes emptyDir with medium: Memory",
        )),
        Err(e) => {
            out.push(check(
                "memory filesystem",
                Verdict::Fail,
                format!("{}: {e}", dir.display()),
                "shmring needs a shm directory: mount a tmpfs at /dev/shm",
            ));
            return out;
        }
    }
    if let Ok(vfs) = nix::sys::statvfs::statvfs(dir) {
        // The block-count types are not u64 on every target.
        #[allow(clippy::unnecessary_cast)]
        let (block, blocks, available) = (
            vfs.fragment_size() as u64,
            vfs.blocks() as u64,
            vfs.blocks_available() as u64,
        );
        let (total, free) = (blocks * block, available * block);
        out.push(if total <= DOCKER_DEFAULT {
            check(
                "size",
                Verdict::Warn,
                format!("{} in all (Docker's default for a container)", mib(total)),
                "give it room for every ring at once: docker run --shm-size=1g (or --ipc=host \
                 to share the host's); in Kubernetes, mount an emptyDir with medium: Memory \
                 and a sizeLimit at /dev/shm",
            )
        } else {
            check("size", Verdict::Ok, format!("{} in all", mib(total)), "")
        });
        let rings: u64 = rings_bytes(dir);
        let found = format!(
            "{} free; the rings there take {}{}",
            mib(free),
            mib(rings),
            args.need
                .map_or(String::new(), |n| format!("; {} asked for", mib(n)))
        );
        out.push(match args.need {
            Some(need) if need > free => check(
                "free space",
                Verdict::Fail,
                found,
                "a create would fail with NoSpace: remove stale rings (shmring rm --stale), \
                 or enlarge the mount (docker run --shm-size, or the emptyDir's sizeLimit)",
            ),
            _ => check("free space", Verdict::Ok, found, ""),
        });
    }
    out.push(remove_ipc());
    out.push(namespaces(dir));
    out
}

/// Bytes taken by the regular files in `dir` (every ring, and whatever
/// else is there).
fn rings_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// systemd-logind's `RemoveIPC`: when a user's last session ends, their
/// System V and POSIX IPC objects go, /dev/shm files included. On by
/// default; system users (uid below 1000) are spared.
fn remove_ipc() -> Check {
    if !Path::new("/run/systemd/system").exists() {
        return check(
            "systemd RemoveIPC",
            Verdict::Ok,
            "not booted with systemd".into(),
            "",
        );
    }
    let mut setting = None;
    let mut files = vec![PathBuf::from("/etc/systemd/logind.conf")];
    if let Ok(d) = std::fs::read_dir("/etc/systemd/logind.conf.d") {
        let mut more: Vec<_> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            if let Some(v) = line.trim().strip_prefix("RemoveIPC=") {
                setting = Some(v.trim().to_ascii_lowercase());
            }
        }
    }
    let on = setting
        .as_deref()
        .is_none_or(|v| v == "yes" || v == "true" || v == "1");
    let uid = nix::unistd::geteuid().as_raw();
    if on && uid >= 1000 {
        check(
            "systemd RemoveIPC",
            Verdict::Warn,
            format!(
                "RemoveIPC is on ({}) and this user (uid {uid}) is not a system user",
                setting.map_or("the default".into(), |v| format!("RemoveIPC={v}"))
            ),
            "logind deletes this user's rings when their last login session ends: run the \
             services as a system user (a systemd service's User=, DynamicUser=), or set \
             RemoveIPC=no in /etc/systemd/logind.conf",
        )
    } else {
        check(
            "systemd RemoveIPC",
            Verdict::Ok,
            if on {
                format!("on, but uid {uid} is a system user: spared")
            } else {
                "off".into()
            },
            "",
        )
    }
}

/// The namespace `kind` (`ipc`, `mnt`) of process `pid`, as the kernel
/// names it (`ipc:[4026531839]`).
fn namespace(pid: &str, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Live peers of the rings in `dir` whose IPC or mount namespace is not
/// ours: a peer in another mount namespace may have another /dev/shm
/// (Docker gives each container its own unless --ipc says otherwise).
fn namespaces(dir: &Path) -> Check {
    let ours = (namespace("self", "ipc"), namespace("self", "mnt"));
    let mut others = Vec::new();
    let mut seen = 0;
    if dir == Path::new("/dev/shm") {
        for (name, info) in shmring::list().unwrap_or_default() {
            let Ok(info) = info else { continue };
            for a in info.attached.iter().filter(|a| a.alive) {
                let pid = a.pid.to_string();
                seen += 1;
                let theirs = (namespace(&pid, "ipc"), namespace(&pid, "mnt"));
                if theirs.0.is_some() && theirs != ours {
                    others.push(format!("pid {pid} on {name}"));
                }
            }
        }
    }
    if others.is_empty() {
        check(
            "namespaces",
            Verdict::Ok,
            format!("{seen} live peer(s) of the rings here, all in this IPC and mount namespace"),
            "",
        )
    } else {
        check(
            "namespaces",
            Verdict::Warn,
            format!("in another IPC or mount namespace: {}", others.join(", ")),
            "processes meant to share rings must see one /dev/shm: run their containers \
             with --ipc=host or --ipc=container:NAME, or mount one tmpfs (a Kubernetes \
             emptyDir with medium: Memory) into each",
        )
    }
}

/// `shmring doctor`: `Ok(false)` when a check failed.
pub fn run(args: &DoctorArgs) -> Res<bool> {
    let all = checks(args);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for c in &all {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            println!("{mark} {:<18} {}", c.check, c.found);
            if !c.advice.is_empty() {
                println!("     {:<18} -> {}", "", c.advice);
            }
        }
    }
    Ok(all.iter().all(|c| c.verdict != Verdict::Fail))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}

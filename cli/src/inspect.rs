//! `shmring ls`, `stat` and `rm`: looking into segments and cleaning up.

use std::fmt::Write as _;

use clap::Args;
use shmring::{Attached, SegmentInfo};

use crate::view::{self, RingView};
use crate::{metrics, watch};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Exit code when `rm` refused to remove a segment in use.
pub const IN_USE: u8 = 3;

/// Arguments of `shmring ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Print a JSON array (one object per segment) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `shmring stat`.
#[derive(Args, Debug)]
pub struct StatArgs {
    /// Segment name (as given to `create`, with or without a leading `/`).
    pub name: String,
    /// Show again every `--interval` until interrupted: in place on a
    /// terminal, with rates over the interval; appended otherwise.
    #[arg(long)]
    pub watch: bool,
    /// Time between looks with `--watch`, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub interval: u64,
    /// Stop after this many looks with `--watch` (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Print JSON: one object (with `--watch`, one per line, with rates).
    #[arg(long)]
    pub json: bool,
    /// Print in the Prometheus text format (`shmring metrics NAME`).
    #[arg(long, conflicts_with_all = ["watch", "json"])]
    pub prometheus: bool,
}

/// Arguments of `shmring rm`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["names", "stale"]))]
pub struct RmArgs {
    /// Segments to remove.
    pub names: Vec<String>,
    /// Remove every stale segment (no process holds a lock on it, also one
    /// left by an older shmring whose users hold those locks). Each is
    /// reported; the exit status is 1 if any could not be removed (one
    /// gone meanwhile is not a failure), after the others are done.
    #[arg(long, conflicts_with = "names")]
    pub stale: bool,
    /// With --stale: only segments whose names start with this.
    #[arg(long, requires = "stale", default_value = "")]
    pub prefix: String,
    /// With --stale: say which segments would go, and remove nothing.
    #[arg(long, requires = "stale")]
    pub dry_run: bool,
    /// Remove the named segments even while processes use them (they keep
    /// their mappings; only the name goes).
    #[arg(long)]
    pub force: bool,
}

fn pids(list: &[Attached]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|a| format!("{}{}", a.pid, if a.alive { "" } else { "(dead)" }))
        .collect::<Vec<_>>()
        .join(",")
}

fn role(holder: Option<Attached>) -> String {
    holder.map_or("-".into(), |a| pids(&[a]))
}

/// `shmring ls`.
pub fn ls(args: &LsArgs) -> Res<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view::list()?)?);
        return Ok(());
    }
    let all = shmring::list()?;
    if all.is_empty() {
        println!("no shmring segments in /dev/shm");
        return Ok(());
    }
    println!(
        "{:<32} {:<10} {:<6} {:>5} {:>10} {:>10} {:>5}  attached pids",
        "name", "owner", "kind", "elem", "capacity", "fill", "stale"
    );
    for (name, info) in all {
        match info {
            Ok(i) => println!(
                "{:<32} {:<10} {:<6} {:>5} {:>10} {:>10} {:>5}  {}",
                name,
                view::user_name(i.owner_uid),
                i.kind.to_string(),
                i.elem.size,
                i.capacity,
                i.fill(),
                if i.is_stale() { "yes" } else { "no" },
                pids(&i.attached)
            ),
            // The reason on a line of its own: it can be long.
            Err(e) => {
                println!("{name:<32} unreadable:\n    {e}");
                if let Some(remedy) = view::remedy(&name, &e) {
                    println!("    {remedy}");
                }
            }
        }
    }
    Ok(())
}

fn table(i: &SegmentInfo) -> String {
    let mut s = String::new();
    let unit = if i.kind == shmring::RingKind::Bytes {
        "bytes"
    } else {
        "values"
    };
    let rows: [(&str, String); 16] = [
        (
            "owner",
            format!(
                "{} (uid {}), mode {:04o}",
                view::user_name(i.owner_uid),
                i.owner_uid,
                i.mode
            ),
        ),
        ("kind", i.kind.to_string()),
        ("element", i.elem.to_string()),
        ("capacity", format!("{} {unit}", i.capacity)),
        ("segment size", format!("{} bytes", i.segment_len)),
        ("creator pid", i.creator_pid.to_string()),
        ("written", format!("{} {unit}", i.written)),
        ("read", format!("{} {unit}", i.read)),
        ("fill", format!("{} {unit}", i.fill())),
        ("producer role", role(i.producer)),
        ("consumer role", role(i.consumer)),
        (
            "sleeping",
            format!(
                "{} consumers, {} producers",
                i.sleeping_consumers, i.sleeping_producers
            ),
        ),
        ("attached pids", pids(&i.attached)),
        ("stale", if i.is_stale() { "yes" } else { "no" }.into()),
        (
            "name kept",
            if i.persistent {
                "yes (persist): until `shmring rm`"
            } else {
                "until the last user leaves"
            }
            .into(),
        ),
        (
            "zeroed",
            if i.zero_after_use {
                "after use: each value as it is released, the data when the ring goes"
            } else {
                "no (data stays in the slots until overwritten)"
            }
            .into(),
        ),
    ];
    let _ = writeln!(s, "{}", i.name);
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<14} {v}");
    }
    let view = RingView::from(i);
    for sub in &view.subscribers {
        let who = match sub.holder {
            Some(h) if h.alive => format!("pid {}", h.pid),
            Some(h) => format!("pid {} (dead)", h.pid),
            None => "nobody".into(),
        };
        let name = sub.identity.map_or_else(
            || format!("#{}", sub.entry),
            |id| format!("#{} id {id}", sub.entry),
        );
        let policy = match (sub.policy, sub.demoted) {
            (Some(_), true) => "lossy (demoted)",
            (Some(p), false) => p,
            (None, _) => "left",
        };
        // A lossless subscriber's bounds: when the producer stops waiting.
        let bounds = match (sub.policy, sub.demoted) {
            (Some("lossless"), false) => {
                let time = sub
                    .demote_after_ms
                    .map_or("never".to_owned(), |ms| format!("{ms} ms"));
                let lag = sub
                    .demote_after_lag
                    .map_or(String::new(), |n| format!(" or {n} values behind"));
                format!(", made lossy after holding the producer {time}{lag}")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:<14} {name}: {policy}, position {}, lag {}, missed {}, demoted {}x, {who}{bounds}",
            "subscriber", sub.position, sub.lag, sub.missed, sub.demotions
        );
    }
    if let Some(o) = &view.bridge_out {
        let _ = writeln!(
            s,
            "  {:<14} sent {} messages ({} bytes) as source {}, next seq {}, {} restarts (pid {})",
            "bridge out", o.sent_messages, o.sent_bytes, o.source, o.next_seq, o.restarts, o.pid
        );
    }
    if let Some(b) = view.bridge_in {
        let _ = writeln!(
            s,
            "  {:<14} delivered {}, lost {}, duplicates {}, reordered {}, dropped (ring full) {}, \
             unnumbered {}, malformed {}; {} sources, {} restarts (pid {})",
            "bridge in",
            b.delivered,
            b.lost,
            b.duplicates,
            b.reordered,
            b.dropped_full,
            b.unnumbered,
            b.malformed,
            b.sources,
            b.restarts,
            b.pid
        );
    }
    s
}

/// A request-reply service's lines under its ring's table.
fn service_table(v: &view::ServiceView) -> String {
    let mut s = String::new();
    let lanes: Vec<String> = v
        .lanes
        .iter()
        .map(|l| {
            let server = match l.server {
                Some(h) if h.alive => format!("server pid {}", h.pid),
                Some(h) => format!("server pid {} (dead)", h.pid),
                None => "no server".into(),
            };
            format!(
                "lane {} ({}): {server}, {} bytes waiting, {} requests, {} replies",
                l.lane, l.ring, l.waiting_bytes, l.requests, l.replies
            )
        })
        .collect();
    let rows = [
        (
            "service",
            format!(
                "{} servers, {} clients ({} dead), {} requests outstanding",
                v.servers, v.clients, v.dead_clients, v.outstanding
            ),
        ),
        (
            "served",
            format!(
                "{} requests, {} replies, {} unanswered; replies dropped: {} to dead clients, {} ring full",
                v.requests, v.replies, v.unanswered, v.dropped_to_dead_clients, v.dropped_full
            ),
        ),
        (
            "clients",
            format!(
                "sent {}, replies {}, late {}, sent again {} (the clients there now)",
                v.client_sent, v.client_replies, v.client_late, v.client_retried
            ),
        ),
    ];
    for (k, val) in rows {
        let _ = writeln!(s, "  {k:<14} {val}");
    }
    for lane in lanes {
        let _ = writeln!(s, "  {:<14} {lane}", "");
    }
    s
}

/// `shmring stat`.
pub fn stat(args: &StatArgs) -> Res<()> {
    if args.prometheus {
        print!(
            "{}",
            metrics::render(
                std::slice::from_ref(&args.name),
                metrics::Format::Openmetrics
            )?
        );
        return Ok(());
    }
    if !args.watch {
        let info =
            shmring::inspect(&args.name).map_err(|e| match view::remedy(&args.name, &e) {
                Some(remedy) => format!("{e}\n{remedy}").into(),
                None => Box::<dyn std::error::Error>::from(e),
            })?;
        let service = match info.kind {
            shmring::RingKind::Bytes => view::service(&args.name),
            _ => None,
        };
        if args.json {
            let mut view = RingView::from(&info);
            view.service = service;
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            print!("{}", table(&info));
            if let Some(service) = &service {
                print!("{}", service_table(service));
            }
        }
        return Ok(());
    }
    watch::run(args)
}

/// What `rm` did with one segment.
#[derive(Debug, PartialEq, Eq)]
enum Removal {
    Removed,
    /// In use (or kept for good, `persist`): left alone.
    InUse,
    /// Already gone since it was listed: nothing left to do.
    Gone,
    /// Not judged: unreadable for a reason that says nothing of its use.
    Skipped,
    /// Left, with what the operator can do about it.
    Left(String),
    /// A real failure: the error.
    Failed(String),
}

/// `rm --stale` for one segment `name`, as `list` found it.
fn remove_stale_one(name: &str, listed: &shmring::Result<SegmentInfo>) -> Removal {
    match listed {
        Ok(i) if !i.is_stale() => return Removal::InUse,
        // Another format version: the library tells staleness from the
        // kernel's locks where that version's users hold them.
        Ok(_) | Err(shmring::Error::VersionMismatch { .. }) => {}
        Err(_) => return Removal::Skipped,
    }
    match shmring::remove_if_stale(name) {
        Ok(true) => Removal::Removed,
        Ok(false) => Removal::InUse,
        Err(shmring::Error::NotFound { .. }) => Removal::Gone,
        Err(e @ shmring::Error::VersionMismatch { .. }) => Removal::Left(format!(
            "{e}; this shmring cannot tell whether processes of that version use it: once none \
             does, `shmring rm --force {name}` removes it"
        )),
        Err(e) => Removal::Failed(e.to_string()),
    }
}

/// `shmring rm`. Acts on every segment it is given (or finds, with
/// `--stale`) and reports each; `Ok(false)` if a named segment was in use,
/// an error at the end if any could not be removed. A segment that
/// vanished since `--stale` listed it is not a failure.
pub fn rm(args: &RmArgs) -> Res<bool> {
    crate::events::command_reports_removals();
    let mut failed = 0;
    if args.stale {
        let mut removed = 0;
        for (name, info) in shmring::list()? {
            if !name.starts_with(&args.prefix) {
                continue;
            }
            if args.dry_run {
                match &info {
                    Ok(i) if i.is_stale() => {
                        println!("would remove {name}");
                        retire_bridges(&name, true);
                        removed += 1;
                    }
                    Err(e @ shmring::Error::VersionMismatch { .. }) => {
                        println!("{name}: judged only when removing: {e}")
                    }
                    _ => {}
                }
                continue;
            }
            match remove_stale_one(&name, &info) {
                Removal::Removed => {
                    println!("removed {name}");
                    failed += retire_bridges(&name, false);
                    removed += 1;
                }
                Removal::Gone => println!("{name}: already gone"),
                Removal::InUse | Removal::Skipped => {}
                Removal::Left(why) => eprintln!("shmring: {name}: not removed: {why}"),
                Removal::Failed(why) => {
                    eprintln!("shmring: {name}: not removed: {why}");
                    failed += 1;
                }
            }
        }
        failed += retire_orphaned_bridges(&args.prefix, args.dry_run);
        if args.dry_run {
            println!("{removed} stale segment(s) would be removed (dry run: none was)");
            return Ok(true);
        }
        println!("{removed} stale segment(s) removed");
        return finish(failed, true);
    }
    let mut all = true;
    for name in &args.names {
        if args.force {
            match shmring::remove(name) {
                Ok(()) => {
                    println!("removed {name}");
                    failed += retire_bridges(name, false);
                }
                Err(e) => {
                    eprintln!("shmring: {name}: not removed: {e}");
                    failed += 1;
                }
            }
            continue;
        }
        match shmring::remove_if_stale(name) {
            Ok(true) => {
                println!("removed {name}");
                failed += retire_bridges(name, false);
            }
            Ok(false) => {
                let info = shmring::inspect(name).ok();
                if info.as_ref().is_some_and(|i| i.persistent && i.is_stale()) {
                    eprintln!(
                        "shmring: {name} is persisted (kept for whoever reads it next); not removed (--force removes it)"
                    );
                } else {
                    let users = info.map_or_else(
                        || "-".into(),
                        |i| {
                            pids(
                                &i.attached
                                    .into_iter()
                                    .filter(|a| a.alive)
                                    .collect::<Vec<_>>(),
                            )
                        },
                    );
                    eprintln!(
                        "shmring: {name} is in use (live pids: {users}); not removed (--force removes it anyway)"
                    );
                }
                all = false;
            }
            Err(e) => {
                eprintln!("shmring: {name}: not removed: {e}");
                if let Some(remedy) = view::remedy(name, &e) {
                    eprintln!("    {remedy}");
                }
                failed += 1;
            }
        }
    }
    finish(failed, all)
}

/// Remove (or, `dry_run`, name) the state files that retired bridges of
/// ring `name` left, where it goes: their numbering means nothing to a
/// ring made anew under the name. A bridge that still runs keeps its
/// file. Reports each; returns how many could not be removed.
fn retire_bridges(name: &str, dry_run: bool) -> usize {
    use shmring_bridge_state::Retired;
    let mut failed = 0;
    for retired in shmring_bridge_state::retire(name, dry_run) {
        match retired {
            Retired::Removed(path) if dry_run => {
                println!("would remove bridge state {}", path.display())
            }
            Retired::Removed(path) => println!("removed bridge state {}", path.display()),
            Retired::Running { path, pid } => eprintln!(
                "shmring: {name}: bridge state {} kept: its bridge (pid {pid}) still runs",
                path.display()
            ),
            Retired::Failed(e) => {
                eprintln!("shmring: {name}: bridge state not removed: {e}");
                failed += 1;
            }
            other => eprintln!("shmring: {name}: {other:?}"),
        }
    }
    failed
}

/// `rm --stale`'s last step: the bridge state files (and locators) in
/// the shm directory whose ring is gone, under names starting with
/// `prefix`.
fn retire_orphaned_bridges(prefix: &str, dry_run: bool) -> usize {
    const SUFFIXES: [&str; 4] = [
        ".bridge-out",
        ".bridge-in",
        ".bridge-out.where",
        ".bridge-in.where",
    ];
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let mut rings: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|file| {
            SUFFIXES
                .iter()
                .find_map(|s| file.strip_suffix(s).map(str::to_owned))
        })
        .filter(|ring| ring.starts_with(prefix))
        .collect();
    rings.sort();
    rings.dedup();
    rings
        .iter()
        .filter(|ring| std::fs::symlink_metadata(format!("/dev/shm/{ring}")).is_err())
        .map(|ring| retire_bridges(ring, dry_run))
        .sum()
}

/// `rm`'s result: an error if `failed` segments (or bridge state files)
/// could not be removed.
fn finish(failed: usize, all: bool) -> Res<bool> {
    if failed > 0 {
        return Err(format!(
            "{failed} segment(s) or state file(s) could not be removed (see above)"
        )
        .into());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment that `rm --stale` listed and someone else removed before
    /// it came to it is done with, not a failure.
    #[test]
    fn a_segment_gone_since_the_listing_is_not_a_failure() {
        let name = format!("shmring-test-{}-cli-unit-gone", std::process::id());
        let ring = shmring::Spsc::<u64>::create(&name, 8).unwrap();
        ring.persist();
        drop(ring);
        // Listed stale: the name stays (persist), nobody uses it.
        let listed = shmring::inspect(&name);
        let removed = shmring::remove(&name);
        assert!(listed.as_ref().is_ok_and(|i| i.is_stale()), "{listed:?}");
        // Gone between the listing and the removal.
        removed.unwrap();
        assert_eq!(remove_stale_one(&name, &listed), Removal::Gone);
        assert!(finish(0, true).unwrap());
    }
}

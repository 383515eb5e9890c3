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
    /// Remove every stale segment (no process holds a lock on it).
    #[arg(long, conflicts_with = "names")]
    pub stale: bool,
    /// With --stale: only segments whose names start with this.
    #[arg(long, requires = "stale", default_value = "")]
    pub prefix: String,
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
        "{:<32} {:<6} {:>5} {:>10} {:>10} {:>5}  attached pids",
        "name", "kind", "elem", "capacity", "fill", "stale"
    );
    for (name, info) in all {
        match info {
            Ok(i) => println!(
                "{:<32} {:<6} {:>5} {:>10} {:>10} {:>5}  {}",
                name,
                i.kind.to_string(),
                i.elem.size,
                i.capacity,
                i.fill(),
                if i.is_stale() { "yes" } else { "no" },
                pids(&i.attached)
            ),
            // The reason on a line of its own: it can be long.
            Err(e) => println!("{name:<32} unreadable:\n    {e}"),
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
    let rows: [(&str, String); 14] = [
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
    ];
    let _ = writeln!(s, "{}", i.name);
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<14} {v}");
    }
    let view = RingView::from(i);
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

/// `shmring stat`.
pub fn stat(args: &StatArgs) -> Res<()> {
    if args.prometheus {
        print!("{}", metrics::render(std::slice::from_ref(&args.name))?);
        return Ok(());
    }
    if !args.watch {
        let info = shmring::inspect(&args.name)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&RingView::from(&info))?);
        } else {
            print!("{}", table(&info));
        }
        return Ok(());
    }
    watch::run(args)
}

/// `shmring rm`. Returns whether every named segment was removed.
pub fn rm(args: &RmArgs) -> Res<bool> {
    if args.stale {
        let mut removed = 0;
        for (name, info) in shmring::list()? {
            if name.starts_with(&args.prefix)
                && info.is_ok_and(|i| i.is_stale())
                && shmring::remove_if_stale(&name)?
            {
                println!("removed {name}");
                removed += 1;
            }
        }
        println!("{removed} stale segment(s) removed");
        return Ok(true);
    }
    let mut all = true;
    for name in &args.names {
        if args.force {
            shmring::remove(name)?;
            println!("removed {name}");
        } else if shmring::remove_if_stale(name)? {
            println!("removed {name}");
        } else {
            let users = shmring::inspect(name).map_or_else(
                |_| "-".into(),
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
            all = false;
        }
    }
    Ok(all)
}

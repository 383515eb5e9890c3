//! `shmring ls`, `stat` and `rm`: looking into segments and cleaning up.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use shmring::{Attached, SegmentInfo};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Exit code when `rm` refused to remove a segment in use.
pub const IN_USE: u8 = 3;

/// Arguments of `shmring stat`.
#[derive(Args, Debug)]
pub struct StatArgs {
    /// Segment name (as given to `create`, with or without a leading `/`).
    pub name: String,
    /// Print again every `--interval` until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Time between prints with `--watch`, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval: u64,
    /// Stop after this many prints with `--watch` (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Print in the Prometheus text exposition format, for scraping.
    #[arg(long)]
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
pub fn ls() -> Res<()> {
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
            Err(e) => println!("{name:<32} cannot be read: {e}"),
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
    s
}

fn prometheus(i: &SegmentInfo) -> String {
    let labels = format!("ring=\"{}\",kind=\"{}\"", i.name, i.kind);
    let alive = i.attached.iter().filter(|a| a.alive).count();
    let metrics: [(&str, &str, &str, u64); 8] = [
        (
            "written_total",
            "counter",
            "Values (bytes for byte rings) claimed by producers.",
            i.written,
        ),
        (
            "read_total",
            "counter",
            "Values (bytes for byte rings) taken by consumers.",
            i.read,
        ),
        (
            "fill",
            "gauge",
            "Values (bytes) written and not yet read.",
            i.fill(),
        ),
        (
            "capacity",
            "gauge",
            "Capacity in values (bytes).",
            i.capacity,
        ),
        (
            "sleeping_consumers",
            "gauge",
            "Consumers asleep on the futex (one killed asleep stays counted).",
            i.sleeping_consumers.into(),
        ),
        (
            "sleeping_producers",
            "gauge",
            "Producers asleep on the futex (one killed asleep stays counted).",
            i.sleeping_producers.into(),
        ),
        (
            "attached_processes",
            "gauge",
            "Live processes with the segment mapped.",
            alive as u64,
        ),
        (
            "stale",
            "gauge",
            "1 if no process maps the segment or holds anything in it.",
            i.is_stale().into(),
        ),
    ];
    let mut s = String::new();
    for (name, kind, help, value) in metrics {
        let _ = writeln!(s, "# HELP shmring_{name} {help}");
        let _ = writeln!(s, "# TYPE shmring_{name} {kind}");
        let _ = writeln!(s, "shmring_{name}{{{labels}}} {value}");
    }
    s
}

/// `shmring stat`.
pub fn stat(args: &StatArgs) -> Res<()> {
    let mut printed = 0u64;
    loop {
        let info = shmring::inspect(&args.name)?;
        if args.prometheus {
            print!("{}", prometheus(&info));
        } else {
            print!("{}", table(&info));
        }
        printed += 1;
        if !args.watch || (args.count != 0 && printed >= args.count) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(args.interval));
        println!();
    }
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

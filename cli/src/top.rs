//! `shmring top`: every ring at once, looked at every interval, with rates
//! over the interval: what moves, what fills, who holds it and whether
//! they live. Redrawn in place on a terminal, appended (stamped) otherwise,
//! one JSON object per look with `--json`. `--pid` keeps the rings a given
//! process has mapped or holds a role in.

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::clock::{now_ms, utc};
use crate::view::{self, HolderView, Listed, RingView, SubscriberView};
use crate::watch::{rate, Rates};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Arguments of `shmring top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Milliseconds between looks.
    #[arg(long, default_value_t = 1000)]
    pub interval: u64,
    /// Order of the rows.
    #[arg(long, value_enum, default_value_t = Sort::Rate)]
    pub sort: Sort,
    /// Only the rings this process has mapped or holds something in.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Stop after this many looks (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// One JSON object per look.
    #[arg(long)]
    pub json: bool,
}

/// How `top` orders its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    /// Busiest first: bytes written per second.
    Rate,
    /// Fullest first, as a share of capacity.
    Fill,
    /// By name.
    Name,
}

/// One ring's row.
#[derive(Serialize, Debug)]
pub struct Row {
    pub name: String,
    pub owner: String,
    pub kind: String,
    /// Filled share of the capacity, 0 to 1.
    pub fill: f64,
    /// Rates since the previous look (none at the first).
    pub rates: Option<Rates>,
    pub producers: String,
    pub consumers: String,
    pub sleeping: u32,
    pub stale: bool,
    /// A broadcast ring's subscribers, each shown on a line of its own
    /// under the ring's (empty for the other kinds).
    pub subscribers: Vec<SubscriberView>,
}

/// One look at every ring.
#[derive(Serialize, Debug)]
struct Look {
    unix_ms: u64,
    rings: Vec<Row>,
    /// Segments that could not be read (another version, no access...).
    unreadable: usize,
}

fn holders(one: Option<&HolderView>, many: &[HolderView]) -> String {
    let all: Vec<String> = one
        .into_iter()
        .chain(many)
        .map(|h| format!("{}{}", h.pid, if h.alive { "" } else { "(dead)" }))
        .collect();
    if all.is_empty() {
        "-".into()
    } else {
        all.join(",")
    }
}

/// A broadcast ring's consumers column: how many subscribers, and the
/// largest lag among them.
fn subscribers(subs: &[SubscriberView]) -> String {
    let lag = subs.iter().map(|s| s.lag).max().unwrap_or(0);
    format!("{} sub(s), lag<={lag}", subs.len())
}

/// A subscriber's line under its ring's row.
fn subscriber_line(s: &SubscriberView) -> String {
    let holder = s.holder.as_ref().map_or("-".to_owned(), |h| {
        format!("{}{}", h.pid, if h.alive { "" } else { "(dead)" })
    });
    format!(
        "  subscriber {:<3} {:<9} {:<9} position {:<12} lag {:<10} missed {:<10} demotions {}\n",
        s.entry,
        s.policy.unwrap_or("-"),
        holder,
        s.position,
        s.lag,
        s.missed,
        s.demotions
    )
}

/// Whether process `pid` has ring `r` mapped or holds a role or claim in it.
fn involves(r: &RingView, pid: u32) -> bool {
    r.producer
        .iter()
        .chain(&r.consumer)
        .chain(&r.producer_handles)
        .chain(&r.consumer_handles)
        .chain(&r.attached)
        .chain(r.subscribers.iter().filter_map(|s| s.holder.as_ref()))
        .any(|h| h.pid == pid)
}

/// The rows of one look, with rates against `prev` (ring name to the
/// view and when it was taken).
pub fn rows(
    rings: &[RingView],
    prev: &HashMap<String, (Instant, RingView)>,
    now: Instant,
    sort: Sort,
) -> Vec<Row> {
    let mut rows: Vec<Row> = rings
        .iter()
        .map(|r| Row {
            name: r.name.clone(),
            owner: r.owner.clone(),
            kind: r.kind.clone(),
            fill: if r.capacity == 0 {
                0.0
            } else {
                r.fill as f64 / r.capacity as f64
            },
            rates: prev
                .get(&r.name)
                .map(|(t, p)| Rates::between(p, r, now - *t)),
            producers: holders(r.producer.as_ref(), &r.producer_handles),
            consumers: if r.subscribers.is_empty() {
                holders(r.consumer.as_ref(), &r.consumer_handles)
            } else {
                subscribers(&r.subscribers)
            },
            sleeping: r.sleeping_producers + r.sleeping_consumers,
            stale: r.stale,
            subscribers: r.subscribers.clone(),
        })
        .collect();
    let busy = |r: &Row| r.rates.map_or(0.0, |x| x.written_bytes_per_s);
    match sort {
        Sort::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
        Sort::Fill => rows.sort_by(|a, b| b.fill.total_cmp(&a.fill).then(a.name.cmp(&b.name))),
        Sort::Rate => rows.sort_by(|a, b| busy(b).total_cmp(&busy(a)).then(a.name.cmp(&b.name))),
    }
    rows
}

fn table(look: &Look) -> String {
    let mut s = format!(
        "{}  {} ring(s){}\n{:<32} {:<8} {:<6} {:>6} {:>12} {:>12} {:>10} {:<14} {:<14} {:>5}\n",
        utc(look.unix_ms),
        look.rings.len(),
        if look.unreadable > 0 {
            format!(", {} unreadable (shmring ls says why)", look.unreadable)
        } else {
            String::new()
        },
        "name",
        "owner",
        "kind",
        "fill",
        "written",
        "read",
        "blocked",
        "producers",
        "consumers",
        "stale"
    );
    for r in &look.rings {
        let (w, rd, blocked) = r.rates.map_or(("-".into(), "-".into(), "-".into()), |x| {
            (
                rate(x.written_bytes_per_s, "B"),
                rate(x.read_bytes_per_s, "B"),
                rate(x.producers_blocked_per_s, ""),
            )
        });
        s += &format!(
            "{:<32} {:<8} {:<6} {:>5.1}% {:>12} {:>12} {:>10} {:<14} {:<14} {:>5}\n",
            r.name,
            r.owner,
            r.kind,
            r.fill * 100.0,
            w,
            rd,
            blocked,
            r.producers,
            r.consumers,
            if r.stale { "yes" } else { "no" }
        );
        for sub in &r.subscribers {
            s += &subscriber_line(sub);
        }
    }
    s
}

/// `shmring top`.
pub fn run(args: &TopArgs) -> Res<()> {
    let tty = std::io::stdout().is_terminal() && !args.json;
    let interval = Duration::from_millis(args.interval.max(10));
    let mut prev: HashMap<String, (Instant, RingView)> = HashMap::new();
    let mut out = std::io::stdout();
    let mut looks = 0u64;
    loop {
        let now = Instant::now();
        let mut rings = Vec::new();
        let mut unreadable = 0;
        for listed in view::list()? {
            match listed {
                Listed::Ring(r) if args.pid.is_none_or(|pid| involves(&r, pid)) => rings.push(*r),
                Listed::Ring(_) => {}
                Listed::Unreadable(_) => unreadable += 1,
            }
        }
        let look = Look {
            unix_ms: now_ms(),
            rings: rows(&rings, &prev, now, args.sort),
            unreadable,
        };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&look)?)?;
        } else if tty {
            write!(out, "\x1b[H\x1b[2J{}", table(&look))?;
        } else {
            writeln!(out, "{}", table(&look))?;
        }
        out.flush()?;
        prev = rings
            .into_iter()
            .map(|r| (r.name.clone(), (now, r)))
            .collect();
        looks += 1;
        if args.count != 0 && looks >= args.count {
            return Ok(());
        }
        std::thread::sleep(interval.saturating_sub(now.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmring::Spsc;

    fn view(name: &str) -> RingView {
        RingView::from(&shmring::inspect(name).unwrap())
    }

    /// Rates come from two looks a known time apart; rows sort by them,
    /// by fill, or by name.
    #[test]
    fn rows_carry_rates_between_looks_and_sort_as_asked() {
        let tag = format!("shmring-test-{}-top", std::process::id());
        let (busy, full) = (
            Spsc::<u64>::create(&format!("{tag}-busy"), 64).unwrap(),
            Spsc::<u64>::create(&format!("{tag}-full"), 4).unwrap(),
        );
        let before = [view(busy.name()), view(full.name())];
        let mut tx = busy.producer().unwrap();
        for v in 0..40 {
            tx.try_push(v).unwrap();
        }
        let mut ftx = full.producer().unwrap();
        for v in 0..4 {
            ftx.try_push(v).unwrap();
        }
        let after = [view(busy.name()), view(full.name())];
        let now = Instant::now();
        let prev: HashMap<_, _> = before
            .into_iter()
            .map(|r| (r.name.clone(), (now - Duration::from_secs(2), r)))
            .collect();

        let rows = rows(&after, &prev, now, Sort::Rate);
        assert_eq!(rows[0].name, busy.name(), "busiest first");
        let rates = rows[0].rates.unwrap();
        assert_eq!(rates.written_per_s, 20.0, "40 values in 2 s");
        assert_eq!(rates.written_bytes_per_s, 160.0);
        assert_eq!(rows[1].rates.unwrap().written_per_s, 2.0);
        assert_eq!(rows[0].producers, std::process::id().to_string());

        let rows = super::rows(&after, &prev, now, Sort::Fill);
        assert_eq!((rows[0].name.as_str(), rows[0].fill), (full.name(), 1.0));
        let rows = super::rows(&after, &HashMap::new(), now, Sort::Name);
        assert!(rows[0].name < rows[1].name && rows[0].rates.is_none());
    }

    /// A broadcast ring's row counts its subscribers and their largest
    /// lag, and the table gives each a line of its own.
    #[test]
    fn a_broadcast_ring_shows_each_subscriber() {
        let name = format!("shmring-test-{}-top-bcast", std::process::id());
        let ring = shmring::Broadcast::<u64>::create(&name, 8).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut quick = ring.subscriber().unwrap();
        let _slow = ring
            .subscriber_with(&shmring::SubscriberOptions::lossy())
            .unwrap();
        for v in 0..3 {
            tx.try_push(v).unwrap();
        }
        quick.try_pop().unwrap();
        let rows = rows(&[view(&name)], &HashMap::new(), Instant::now(), Sort::Name);
        assert_eq!(rows[0].consumers, "2 sub(s), lag<=3");
        let text = table(&Look {
            unix_ms: 0,
            rings: rows,
            unreadable: 0,
        });
        assert!(
            text.contains("lossless") && text.contains("lag 2 "),
            "{text}"
        );
        assert!(text.contains("lossy") && text.contains("lag 3 "), "{text}");
    }
}

//! `shmring stat NAME --watch`: one ring, looked at every interval, with
//! rates over the interval and the time since it last moved. On a terminal
//! the view is redrawn in place; otherwise (a pipe, a log file) each look
//! is appended, stamped. A ring that goes away (its last user left) is
//! reported and waited for, not an error.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clock::utc;

use serde::Serialize;

use crate::inspect::StatArgs;
use crate::view::{CountersView, HolderView, RingView};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Changes per second between two looks at a ring.
#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct Rates {
    /// The interval the rates are over, in seconds.
    pub interval_s: f64,
    /// Values per second (typed rings) or bytes per second (byte rings).
    pub written_per_s: f64,
    pub read_per_s: f64,
    /// Bytes per second, for every kind.
    pub written_bytes_per_s: f64,
    pub read_bytes_per_s: f64,
    pub producers_blocked_per_s: f64,
    pub consumers_blocked_per_s: f64,
    pub sleeps_per_s: f64,
    pub timeouts_per_s: f64,
}

impl Rates {
    pub fn between(a: &RingView, b: &RingView, dt: Duration) -> Rates {
        let s = dt.as_secs_f64().max(1e-9);
        let per = |x: u64, y: u64| y.wrapping_sub(x) as f64 / s;
        let side = |x: &CountersView, y: &CountersView| per(x.sleeps, y.sleeps);
        Rates {
            interval_s: dt.as_secs_f64(),
            written_per_s: per(a.written, b.written),
            read_per_s: per(a.read, b.read),
            written_bytes_per_s: per(a.written_bytes, b.written_bytes),
            read_bytes_per_s: per(a.read_bytes, b.read_bytes),
            producers_blocked_per_s: per(a.producers.blocked, b.producers.blocked),
            consumers_blocked_per_s: per(a.consumers.blocked, b.consumers.blocked),
            sleeps_per_s: side(&a.producers, &b.producers) + side(&a.consumers, &b.consumers),
            timeouts_per_s: per(
                a.producers.timeouts + a.consumers.timeouts,
                b.producers.timeouts + b.consumers.timeouts,
            ),
        }
    }
}

/// One look, as `--watch --json` prints it (one object per line).
#[derive(Serialize, Debug)]
struct Look<'a> {
    unix_ms: u64,
    /// Seconds since `written` or `read` last changed, as far as this
    /// watch has seen (it sees only its own looks).
    idle_s: f64,
    rates: Option<Rates>,
    ring: Option<&'a RingView>,
    /// Set when the ring could not be read at this look.
    error: Option<String>,
}

/// `shmring stat NAME --watch`.
pub fn run(args: &StatArgs) -> Res<()> {
    let tty = std::io::stdout().is_terminal() && !args.json;
    let interval = Duration::from_millis(args.interval);
    let mut prev: Option<(Instant, RingView)> = None;
    let mut moved = Instant::now();
    let mut looks = 0u64;
    let mut out = std::io::stdout();
    loop {
        let now = Instant::now();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (view, error) = match shmring::inspect(&args.name) {
            Ok(info) => (Some(RingView::from(&info)), None),
            Err(shmring::Error::NotFound { .. }) => (
                None,
                Some("not found: no process uses the ring now (waiting for it)".to_owned()),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let rates = match (&prev, &view) {
            (Some((t, p)), Some(v)) => Some(Rates::between(p, v, now - *t)),
            _ => None,
        };
        if let (Some((_, p)), Some(v)) = (&prev, &view) {
            if p.written != v.written || p.read != v.read {
                moved = now;
            }
        }
        let look = Look {
            unix_ms,
            idle_s: now.duration_since(moved).as_secs_f64(),
            rates,
            ring: view.as_ref(),
            error,
        };
        let text = if args.json {
            format!("{}\n", serde_json::to_string(&look)?)
        } else {
            render(&args.name, &look, interval)
        };
        if tty {
            // Home and clear, then the view: redrawn in place.
            write!(out, "\x1b[H\x1b[2J{text}")?;
        } else if args.json {
            write!(out, "{text}")?;
        } else {
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        prev = view.map(|v| (now, v));
        looks += 1;
        if args.count != 0 && looks >= args.count {
            return Ok(());
        }
        std::thread::sleep(interval.saturating_sub(now.elapsed()));
    }
}

fn holder(h: Option<HolderView>) -> String {
    h.map_or("-".into(), |h| {
        format!("pid {} ({})", h.pid, if h.alive { "alive" } else { "dead" })
    })
}

fn holders(list: &[HolderView]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|h| format!("{}{}", h.pid, if h.alive { "" } else { " (dead)" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A quantity per second, short: 12.3 M/s.
pub fn rate(x: f64, unit: &str) -> String {
    let (v, prefix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    format!("{v:.1} {prefix}{unit}/s")
}

fn render(name: &str, look: &Look, interval: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{name}   {}   every {:.1} s (Ctrl-C to stop)",
        utc(look.unix_ms),
        interval.as_secs_f64()
    );
    let Some(r) = look.ring else {
        let _ = writeln!(s, "  {}", look.error.as_deref().unwrap_or("?"));
        return s;
    };
    let unit = r.unit;
    // The first look has nothing to compare with.
    let per_s = |get: fn(&Rates) -> f64, unit: &str| {
        look.rates.map_or("-".to_owned(), |r| rate(get(&r), unit))
    };
    let count_unit = if unit == "bytes" { "B" } else { "" };
    let _ = writeln!(
        s,
        "  {} ring of {} ({} bytes each), capacity {} {unit}",
        r.kind, r.element.schema, r.element.size, r.capacity
    );
    let _ = writeln!(
        s,
        "  written   {:>16} {unit}   {:>12}   {:>12}",
        r.written,
        per_s(|r| r.written_per_s, count_unit),
        per_s(|r| r.written_bytes_per_s, "B")
    );
    let _ = writeln!(
        s,
        "  read      {:>16} {unit}   {:>12}   {:>12}",
        r.read,
        per_s(|r| r.read_per_s, count_unit),
        per_s(|r| r.read_bytes_per_s, "B")
    );
    let _ = writeln!(
        s,
        "  fill      {:>16} {unit}   ({:.0}%)",
        r.fill,
        100.0 * r.fill as f64 / r.capacity.max(1) as f64
    );
    let idle = if look.idle_s < interval.as_secs_f64() {
        "moving".to_owned()
    } else {
        format!("idle for {:.1} s", look.idle_s)
    };
    let _ = writeln!(s, "  activity  {idle}");
    // Roles (SPSC; the byte ring's consumer), then claim-record holders
    // (MPMC; the byte ring's producers).
    if r.producer.is_some() || r.consumer.is_some() || r.kind == "spsc" {
        let _ = writeln!(
            s,
            "  producer  {:<22} consumer  {}",
            holder(r.producer),
            holder(r.consumer)
        );
    }
    if !r.producer_handles.is_empty() || !r.consumer_handles.is_empty() {
        let _ = writeln!(s, "  producer handles  {}", holders(&r.producer_handles));
        let _ = writeln!(s, "  consumer handles  {}", holders(&r.consumer_handles));
    }
    let _ = writeln!(s, "  attached  {}", holders(&r.attached));
    let _ = writeln!(s, "  {:<12} {:>14} {:>14}", "", "producers", "consumers");
    type Get = fn(&CountersView) -> u64;
    let rows: [(&str, Get); 5] = [
        ("blocked", |c| c.blocked),
        ("sleeps", |c| c.sleeps),
        ("wakes", |c| c.wakes),
        ("timeouts", |c| c.timeouts),
        ("takeovers", |c| c.takeovers),
    ];
    for (label, get) in rows {
        let _ = writeln!(
            s,
            "  {label:<12} {:>14} {:>14}",
            get(&r.producers),
            get(&r.consumers)
        );
    }
    let _ = writeln!(
        s,
        "  {:<12} {:>14} {:>14}",
        "asleep now", r.sleeping_producers, r.sleeping_consumers
    );
    let _ = writeln!(
        s,
        "  repaired {}   stale {}   name kept {}",
        r.repaired,
        if r.stale { "yes" } else { "no" },
        if r.persistent {
            "until `shmring rm` (persist)"
        } else {
            "until the last user leaves"
        }
    );
    s
}

//! Formatting of the demo's tables.

use std::time::Duration;

use hdrhistogram::Histogram;

/// One throughput measurement.
#[derive(Clone)]
pub struct Throughput {
    pub label: String,
    pub values: u64,
    pub elapsed: Duration,
    /// Futex system calls made by both processes, where counted.
    pub futex_calls: Option<u64>,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        self.values as f64 / self.elapsed.as_secs_f64()
    }
}

/// One run of byte messages of one size.
#[derive(Clone)]
pub struct MessageRate {
    pub size: usize,
    pub messages: u64,
    pub elapsed: Duration,
}

impl MessageRate {
    pub fn per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    pub fn bytes_per_sec(&self) -> f64 {
        self.per_sec() * self.size as f64
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} B"),
    }
}

/// Each size: the byte ring, then a socketpair carrying the same messages.
pub fn print_messages(rows: &[(MessageRate, MessageRate)]) {
    println!(
        "{:<10} {:>16} {:>10} {:>16} {:>10} {:>12}",
        "message", "shmring msg/s", "GB/s", "socket msg/s", "GB/s", "ring/socket"
    );
    for (ring, socket) in rows {
        println!(
            "{:<10} {:>16.0} {:>10.2} {:>16.0} {:>10.2} {:>11.1}x",
            size(ring.size),
            ring.per_sec(),
            ring.bytes_per_sec() / 1e9,
            socket.per_sec(),
            socket.bytes_per_sec() / 1e9,
            ring.per_sec() / socket.per_sec()
        );
    }
}

/// One round-trip latency measurement, in nanoseconds.
#[derive(Clone)]
pub struct Latency {
    pub label: String,
    pub hist: Histogram<u64>,
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

pub fn ns(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{:.1} ms", v as f64 / 1e6)
    } else if v >= 10_000 {
        format!("{:.1} us", v as f64 / 1e3)
    } else {
        format!("{v} ns")
    }
}

/// The machine, for the table's caption.
/// The share of every CPU's time that went to work (anything but idle
/// and I/O wait) over `window`, from /proc/stat: other programs' load,
/// when measured before the demo starts its own. `None` where /proc/stat
/// cannot be read.
pub fn busy_share(window: std::time::Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = cpu
            .split_whitespace()
            .map(|t| t.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal...
        let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
        Some((ticks.iter().sum(), idle))
    }
    let (total0, idle0) = sample()?;
    std::thread::sleep(window);
    let (total1, idle1) = sample()?;
    let total = total1.saturating_sub(total0);
    (total > 0).then(|| 1.0 - idle1.saturating_sub(idle0) as f64 / total as f64)
}

/// A line to print before measuring when other work keeps more than a
/// third of the machine busy: the numbers then swing tenfold.
pub fn busy_warning(share: f64) -> Option<String> {
    (share > 1.0 / 3.0).then(|| {
        format!(
            "warning: other programs keep {:.0}% of this machine's CPU time busy; \
             the figures below can swing tenfold between runs (measure on an idle machine)",
            share * 100.0
        )
    })
}

pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = shmring_bench_kit::placement::cpu_model();
    format!("{cores} cores, {model}")
}

pub fn print_throughput(rows: &[Throughput], baseline: &Throughput) {
    println!(
        "{:<40} {:>12} {:>8} {:>14} {:>16}",
        "transport", "values/s", "MB/s", "vs socketpair", "futex calls/M"
    );
    for r in rows {
        let calls = r.futex_calls.map_or("-".to_owned(), |c| {
            format!("{:.1}", c as f64 * 1e6 / r.values as f64)
        });
        println!(
            "{:<40} {:>12.0} {:>8.0} {:>13.1}x {:>16}",
            r.label,
            r.per_sec(),
            r.per_sec() * 8.0 / 1e6,
            r.per_sec() / baseline.per_sec(),
            calls
        );
    }
}

/// Each row with the floor it is compared to; `socket` for the last column.
pub fn print_latency(rows: &[(Latency, &Latency)], socket: &Latency) {
    print!("{:<40}", "transport");
    for (q, _) in QUANTILES {
        print!(" {q:>8}");
    }
    println!(" {:>8} {:>13} {:>12}", "max", "p50 / floor", "socket / it");
    let p50 = |l: &Latency| l.hist.value_at_quantile(0.5).max(1) as f64;
    for (r, floor) in rows {
        print!("{:<40}", r.label);
        for (_, q) in QUANTILES {
            print!(" {:>8}", ns(r.hist.value_at_quantile(q)));
        }
        println!(
            " {:>8} {:>12.2}x {:>11.1}x",
            ns(r.hist.max()),
            p50(r) / p50(floor),
            p50(socket) / p50(r)
        );
    }
}

//! Formatting of the demo's tables.

use std::time::Duration;

use hdrhistogram::Histogram;

/// One throughput measurement.
#[derive(Clone)]
pub struct Throughput {
    pub label: String,
    pub values: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        self.values as f64 / self.elapsed.as_secs_f64()
    }
}

/// One round-trip latency measurement, in nanoseconds.
#[derive(Clone)]
pub struct Latency {
    pub label: String,
    pub hist: Histogram<u64>,
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

fn ns(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{:.1} ms", v as f64 / 1e6)
    } else if v >= 10_000 {
        format!("{:.1} us", v as f64 / 1e3)
    } else {
        format!("{v} ns")
    }
}

/// The machine, for the table's caption.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}

pub fn print_throughput(rows: &[Throughput], baseline: &Throughput) {
    println!(
        "{:<36} {:>14} {:>10} {:>14}",
        "transport", "values/s", "MB/s", "vs socketpair"
    );
    for r in rows {
        println!(
            "{:<36} {:>14.0} {:>10.0} {:>13.2}x",
            r.label,
            r.per_sec(),
            r.per_sec() * 8.0 / 1e6,
            r.per_sec() / baseline.per_sec()
        );
    }
}

pub fn print_latency(rows: &[Latency], baseline: &Latency) {
    print!("{:<36}", "transport");
    for (q, _) in QUANTILES {
        print!(" {q:>9}");
    }
    println!(" {:>9} {:>14}", "max", "p50 vs socket");
    for r in rows {
        print!("{:<36}", r.label);
        for (_, q) in QUANTILES {
            print!(" {:>9}", ns(r.hist.value_at_quantile(q)));
        }
        let ratio = baseline.hist.value_at_quantile(0.5) as f64
            / r.hist.value_at_quantile(0.5).max(1) as f64;
        println!(" {:>9} {:>10.1}x less", ns(r.hist.max()), ratio);
    }
}

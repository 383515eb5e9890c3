//! Where a bench's threads run: pinned, one per CPU, so that a ratio
//! between two rings measures the rings and not where the scheduler put
//! their threads that time.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Pin the calling thread to `cpu`. False (and unpinned) where the machine
/// has no such CPU or the call is refused (a container's CPU set): the
/// bench still runs, its ratios are just noisier.
pub fn pin_to_cpu(cpu: usize) -> bool {
    let mut set = CpuSet::new();
    set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_ok()
}

/// The CPU model, for naming the host beside the figures it measured (the
/// demo's caption and the benches').
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

//! Ctrl-C and SIGTERM in every long-running subcommand: end the children
//! this process started, remove the segments it made (their handles'
//! cleanup does not run when the process exits from a signal handler), say
//! so, and exit 130.
//!
//! A subcommand registers what to clean as it goes ([`track_child`],
//! [`track_segments`]). Worker processes ignore the signal
//! ([`ignore_in_worker`]): a terminal's Ctrl-C reaches the whole process
//! group, and a worker that died first would make its parent fail with a
//! broken socket ("failed to fill whole buffer") before the parent's
//! handler ran; the parent ends them instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The exit status after an interrupt (128 + SIGINT), as shells report it.
pub const INTERRUPTED: u8 = 130;

static INTERRUPT: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PREFIXES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Handle SIGINT and SIGTERM for subcommand `what` from now on.
pub fn install(what: &'static str) -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(move || {
        INTERRUPT.store(true, Ordering::SeqCst);
        let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
        for pid in children {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let prefixes = PREFIXES.lock().map(|p| p.clone()).unwrap_or_default();
        let removed: usize = prefixes.iter().map(|p| remove_segments(p)).sum();
        if removed > 0 {
            eprintln!("shmring {what}: interrupted; removed its {removed} segment(s)");
        } else {
            eprintln!("shmring {what}: interrupted");
        }
        std::process::exit(INTERRUPTED.into());
    })
}

/// In a worker process: let the parent decide (see the module docs).
pub fn ignore_in_worker() {
    // A handler that does nothing: the signal no longer ends the process.
    let _ = ctrlc::set_handler(|| {});
}

/// Whether an interrupt arrived: an error seen after it is the interrupt's
/// doing (a child it ended), not a failure to report.
pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::SeqCst)
}

/// Let the handler finish: it exits the process.
pub fn wait_for_handler() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// End `pid` on interrupt.
pub fn track_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

/// No longer end `pid` (it exited and may be reused).
pub fn untrack_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&p| p != pid);
    }
}

/// Remove the segments whose names start with `prefix` on interrupt.
pub fn track_segments(prefix: &str) {
    if let Ok(mut p) = PREFIXES.lock() {
        p.push(prefix.to_owned());
    }
}

/// Remove every segment whose name starts with `prefix`; how many.
pub fn remove_segments(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with(prefix))
        .filter(|name| shmring::remove(name).is_ok())
        .count()
}

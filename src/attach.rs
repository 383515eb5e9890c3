//! Which processes have a segment mapped: a small table of packed
//! [`ProcessId`]s in the header, so that `shmring ls` can show them and a
//! segment whose every user is dead can be recognised as stale.
//!
//! Each mapping (each `create` or `open`) takes a free entry, or one whose
//! process is dead, with a compare-exchange, and clears it when it is
//! dropped. A process that dies leaves its entry behind; the liveness check
//! (pid plus start time, see `process.rs`) tells it from a live one. The
//! table is a record for humans and for cleanup, never for correctness:
//! when it is full, a mapping goes unrecorded, and a segment with an
//! unrecorded user could look stale, so `is_stale` also requires the roles
//! to be free or dead.

#![cfg_attr(loom, allow(dead_code))]

use crate::header::Header;
use crate::process::ProcessId;
use crate::sync::Ordering;

/// One recorded user of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Its process id.
    pub pid: u32,
    /// Whether that process still runs (and is not a new process that
    /// reused the pid).
    pub alive: bool,
}

/// Record this process in `header`; the entry to clear later, if one was
/// free.
pub(crate) fn register(header: &Header) -> Option<usize> {
    let me = ProcessId::current();
    for (i, entry) in header.attached.iter().enumerate() {
        let seen = entry.load(Ordering::Relaxed);
        let free = match ProcessId::from_raw(seen) {
            None => true,
            Some(holder) => !holder.is_alive(),
        };
        // Relaxed: the table orders nothing; it only names processes.
        if free
            && entry
                .compare_exchange(seen, me.raw(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(i);
        }
    }
    None
}

/// Clear the entry `register` gave us, if it still names us.
pub(crate) fn unregister(header: &Header, index: usize) {
    let me = ProcessId::current().raw();
    if let Some(entry) = header.attached.get(index) {
        let _ = entry.compare_exchange(me, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Every recorded user, live or dead.
pub(crate) fn list(header: &Header) -> Vec<Attached> {
    header
        .attached
        .iter()
        .filter_map(|e| ProcessId::from_raw(e.load(Ordering::Relaxed)))
        .map(holder)
        .collect()
}

/// The holder a claim word names, if any.
pub(crate) fn holder(id: ProcessId) -> Attached {
    Attached {
        pid: id.pid(),
        alive: id.is_alive(),
    }
}

//! Which processes have a segment mapped: a small table of [`HolderId`]s in
//! the header, so that `shmring ls` can show them.
//!
//! The table is for people, never for correctness: whether a segment is in
//! use is the kernel's word (every mapping holds a shared lease on the
//! segment file, see `lease.rs` and `platform/segment/`), so a mapping that finds
//! the table full is still counted as a user, only not listed. Each mapping
//! takes a free entry (empty, or whose lease is free: its process is gone)
//! by taking the entry's lease and then its word, and clears both when it
//! is dropped.

#![cfg_attr(shmring_loom, allow(dead_code))]

use crate::platform::lease::{self, Lease};
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::{AtomicU64, Ordering};

/// One recorded user of a segment, or the holder of a role.
///
/// ```
/// # let name = format!("shmring-doc-attached-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let _tx = ring.producer()?;
/// let info = shmring::inspect(&name)?;
/// let holder = info.producer.expect("a producer");
/// assert_eq!(holder.pid, std::process::id());
/// assert!(holder.alive); // its lock is held: the kernel says it runs
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Its process id, in its own pid namespace (from another namespace,
    /// a label rather than a process to signal).
    pub pid: u32,
    /// Whether it still holds its lease: the kernel's word that the
    /// process (any of its threads) still runs.
    pub alive: bool,
}

/// How many mappings the header lists as attached; more may attach,
/// unlisted but still counted as users by the kernel.
pub(crate) const ATTACH_SLOTS: usize = 32;

/// The attach table's words, as the header holds them: each names the
/// process that registered it (0: free).
pub(crate) type AttachTable = [AtomicU64; ATTACH_SLOTS];

/// A mapping's entry in the table.
pub(crate) struct Entry {
    index: usize,
    id: HolderId,
    lease: Lease,
}

/// Record this mapping in `table`; the entry to clear later, if one was
/// free.
pub(crate) fn register(seg: &Segment, table: &AttachTable) -> Option<Entry> {
    let id = HolderId::fresh();
    for (index, word) in table.iter().enumerate() {
        // A probe first, so that a full table costs a lock query per entry
        // rather than opening a description for each.
        let seen = word.load(Ordering::Relaxed);
        if seen != 0 && lease::holder_alive(seg, word, seen) {
            continue;
        }
        let Ok(Some(lease)) = Lease::try_take(seg, word) else {
            continue;
        };
        // Relaxed: the table orders nothing; it only names processes. With
        // the lease held, whatever the word holds is a departed user's.
        let seen = word.load(Ordering::Relaxed);
        if lease.supersedes(seen)
            && word
                .compare_exchange(seen, id.raw(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(Entry { index, id, lease });
        }
    }
    None
}

/// Clear the entry `register` gave us, if it still names us (and only in
/// the process that registered: a forked child leaves its parent's entry).
pub(crate) fn unregister(table: &AttachTable, entry: Entry) {
    if entry.lease.is_ours() {
        if let Some(word) = table.get(entry.index) {
            let _ = word.compare_exchange(entry.id.raw(), 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// Every recorded user, live or departed, as seen through `seg`.
pub(crate) fn list(seg: &Segment, table: &AttachTable) -> Vec<Attached> {
    table.iter().filter_map(|word| holder(seg, word)).collect()
}

/// The holder a word names, if any, and whether its lease is held.
pub(crate) fn holder(seg: &Segment, word: &AtomicU64) -> Option<Attached> {
    let seen = word.load(Ordering::Relaxed);
    HolderId::from_raw(seen).map(|id| Attached {
        pid: id.pid(),
        alive: lease::holder_alive(seg, word, seen),
    })
}

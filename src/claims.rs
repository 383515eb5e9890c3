//! Claim records: which handle may be working on which positions, so that
//! the positions a process held when it died can be repaired by others.
//!
//! A ring with many producers (or consumers) hands out positions with a
//! compare-exchange on a shared ticket. A process killed between taking a
//! position and finishing it (publishing a value, releasing a slot) leaves
//! that position unfinished, and everyone behind it waits. Telling a dead
//! holder from a slow one needs to know who took the position, so:
//!
//! * every handle owns a record `{owner, first, last}` in the header, taken
//!   when the handle is made (owner = its [`ProcessId`]) and freed when it
//!   drops;
//! * before its compare-exchange for position `p`, a handle stores `p` as
//!   `last` (and as `first` when it holds nothing else), and the exchange
//!   that wins `p` is Release. So whoever reads the ticket past `p` with
//!   Acquire sees a record naming `p`, and that record keeps naming `p`
//!   until the holder has finished it (Release again, so a reader that sees
//!   the record move on also sees the position finished).
//!
//! A repairer that finds a position unfinished may touch it only if no live
//! record names it: then its holder is dead (every holder's record named
//! the position before it took it). A record can name a position its
//! holder never won (its exchange failed), which only makes repair more
//! cautious. Repairers take one lock (this module's [`RepairLock`]) so that
//! two of them never act on the same position; the lock too is a
//! `ProcessId`, taken over from a dead holder.
//!
//! Handles beyond the table's size go unrecorded and are counted; while any
//! is counted, repair on that side is off, because an unrecorded live
//! holder would be invisible to it.

use crossbeam_utils::CachePadded;

use crate::process::ProcessId;
use std::cell::Cell;

use crate::sync::{AtomicU64, Ordering};

/// Records per side (producers, consumers). A loom model needs only a few.
pub(crate) const CLAIM_RECORDS: usize = if cfg!(loom) { 4 } else { 32 };

/// One handle's record. `first..=last` (wrapping) are the positions it may
/// hold; an empty record has `first == last + 1`.
#[repr(C)]
pub(crate) struct ClaimRecord {
    owner: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
}

/// The records of one side of a ring.
pub(crate) type ClaimTable = [CachePadded<ClaimRecord>; CLAIM_RECORDS];

/// Shared state of the repair protocol, written only when something dies.
#[repr(C)]
pub(crate) struct Recovery {
    /// The repairer's `ProcessId`, or 0.
    lock: AtomicU64,
    /// Non-zero when a dead consumer left a value that a consumer should
    /// take over (only a consumer can deliver it).
    pub(crate) orphaned: AtomicU64,
    /// Live handles without a record, per side; see the module docs.
    unrecorded: [AtomicU64; 2],
    /// Positions repaired so far, for statistics.
    pub(crate) repaired: AtomicU64,
}

/// Which side of a ring a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Producer = 0,
    Consumer = 1,
}

impl ClaimRecord {
    /// A free record (what a zero-filled segment holds), for loom.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        ClaimRecord {
            owner: AtomicU64::new(0),
            first: AtomicU64::new(1),
            last: AtomicU64::new(0),
        }
    }

    /// Whether the record's range holds `pos`.
    fn names(&self, pos: u64) -> bool {
        // Acquire, with the Release in `note`: a repairer that sees a live
        // record moved past `pos` also sees `pos` finished, so its skip
        // compare-exchange fails rather than overwrite what follows. loom
        // cannot catch weakening these: its read-modify-writes always see
        // the latest store in execution order, which the C++ model only
        // promises with this happens-before edge.
        let first = self.first.load(Ordering::Acquire);
        let last = self.last.load(Ordering::Acquire);
        pos.wrapping_sub(first) <= last.wrapping_sub(first) && last.wrapping_add(1) != first
    }

    /// The positions a dead holder's record names, at most one lap of
    /// `cap` (a longer range is garbage; its newest lap is what matters).
    fn range(&self, cap: u64) -> impl Iterator<Item = u64> {
        // Relaxed: read after the owner was seen dead (Acquire), which
        // orders everything the dead holder stored.
        let first = self.first.load(Ordering::Relaxed);
        let last = self.last.load(Ordering::Relaxed);
        let len = last.wrapping_sub(first).wrapping_add(1).min(cap);
        (0..len).map(move |i| last.wrapping_sub(len - 1 - i))
    }
}

impl Recovery {
    /// What a zero-filled segment holds, for loom.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Recovery {
            lock: AtomicU64::new(0),
            orphaned: AtomicU64::new(0),
            unrecorded: [AtomicU64::new(0), AtomicU64::new(0)],
            repaired: AtomicU64::new(0),
        }
    }
}

/// A handle's own record (or its absence), and a private copy of what it
/// holds: how many positions (guards not yet dropped), the first of them
/// and the last.
pub(crate) struct Recorder {
    index: Option<usize>,
    side: Side,
    held: Cell<u32>,
    first: Cell<u64>,
    last_held: Cell<u64>,
}

impl Recorder {
    /// Take a free record of `side` in `table`, or count this handle as
    /// unrecorded if none is free.
    pub(crate) fn take(table: &ClaimTable, recovery: &Recovery, side: Side) -> Recorder {
        let me = ProcessId::current().raw();
        // All Relaxed: whatever a repairer reads here before our first
        // claim can only make it more careful (a live owner with a stale
        // range), and our first claim's Release on the ticket orders all of
        // it before anything we hold.
        let index = table.iter().position(|rec| {
            rec.owner.load(Ordering::Relaxed) == 0
                && rec
                    .owner
                    .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        });
        match index {
            Some(i) => {
                table[i].first.store(1, Ordering::Relaxed);
                table[i].last.store(0, Ordering::Relaxed);
            }
            None => {
                recovery.unrecorded[side as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        Recorder {
            index,
            side,
            held: Cell::new(0),
            first: Cell::new(1),
            last_held: Cell::new(0),
        }
    }

    /// Name `pos` before trying to take it. Release: see `names`; loom
    /// cannot catch weakening these either: the execution that needs them
    /// (a consumer takes a dead one's value over, releases it and claims a
    /// refilled slot while another looks) needs a third running thread,
    /// which does not finish within loom's bounds.
    #[inline(always)]
    pub(crate) fn note(&self, table: &ClaimTable, pos: u64) {
        if let Some(rec) = self.index.and_then(|i| table.get(i)) {
            if self.held.get() == 0 {
                self.first.set(pos);
                rec.first.store(pos, Ordering::Release);
            }
            // Release, as `first` (loom cannot catch it, see above).
            rec.last.store(pos, Ordering::Release);
        }
    }

    /// Byte rings: name the span `first..=last` before trying to take it.
    /// A byte producer holds at most one span, and names a new one only
    /// after it committed the last, so its record names its uncommitted
    /// span for as long as it holds one. Release: see `names`.
    #[inline(always)]
    pub(crate) fn note_span(&self, table: &ClaimTable, first: u64, last: u64) {
        if let Some(rec) = self.index.and_then(|i| table.get(i)) {
            // loom cannot catch weakening these (see `byte_ring::recover`).
            rec.first.store(first, Ordering::Release);
            rec.last.store(last, Ordering::Release);
        }
    }

    /// Byte rings: a claim gave up; name nothing, so that a span this
    /// handle never won does not keep the real owner's from repair.
    /// Relaxed: as in `abandon`.
    #[cold]
    pub(crate) fn clear_span(&self, table: &ClaimTable) {
        if let Some(rec) = self.index.and_then(|i| table.get(i)) {
            rec.first.store(1, Ordering::Relaxed);
            rec.last.store(0, Ordering::Relaxed);
        }
    }

    /// This handle won `pos`.
    #[inline(always)]
    pub(crate) fn hold(&self, pos: u64) {
        self.held.set(self.held.get() + 1);
        self.last_held.set(pos);
    }

    /// This handle finished a position.
    #[inline(always)]
    pub(crate) fn finish(&self) {
        self.held.set(self.held.get().saturating_sub(1));
    }

    /// A claim gave up after naming positions it did not win: name only
    /// what the handle holds again, so that a stale name never keeps a
    /// dead handle's position from repair.
    #[cold]
    pub(crate) fn abandon(&self, table: &ClaimTable) {
        if let Some(rec) = self.index.and_then(|i| table.get(i)) {
            let last = if self.held.get() == 0 {
                self.first.get().wrapping_sub(1)
            } else {
                self.last_held.get()
            };
            // Relaxed: this only un-names positions never won; whatever
            // the handle finished was un-named by the `note` that moved on.
            rec.last.store(last, Ordering::Relaxed);
        }
    }

    /// Whether this handle has a record (and so may take over positions
    /// from the dead: a repairer after us must see that we hold them).
    pub(crate) fn is_recorded(&self) -> bool {
        self.index.is_some()
    }

    /// Free the record (or the unrecorded count) when the handle drops.
    pub(crate) fn release(&self, table: &ClaimTable, recovery: &Recovery) {
        match self.index {
            Some(i) => {
                let me = ProcessId::current().raw();
                // Relaxed: a free record is ignored by repairers, and its
                // next owner starts it afresh.
                if let Some(rec) = table.get(i) {
                    let _ = rec
                        .owner
                        .compare_exchange(me, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
            None => {
                // Release, with the Acquire in `held_by_the_living`: as for
                // a record that moved on (see `names`; loom cannot catch it).
                recovery.unrecorded[self.side as usize].fetch_sub(1, Ordering::Release);
            }
        }
    }
}

/// For loom models: the handle's process dies now, leaving its record
/// behind as a killed process would.
#[cfg(loom)]
impl Recorder {
    pub(crate) fn die(&mut self, table: &ClaimTable) {
        if let Some(i) = self.index {
            let dead = ProcessId::dead_for_model().raw();
            // Release: as a process's death follows everything it did.
            table[i].owner.store(dead, Ordering::Release);
            // Out of range: `release` finds no record to free.
            self.index = Some(usize::MAX);
        }
    }
}

/// Whether a live handle (or an unrecorded one, which might) holds `pos`.
pub(crate) fn held_by_the_living(
    table: &ClaimTable,
    recovery: &Recovery,
    side: Side,
    pos: u64,
) -> bool {
    if any_unrecorded(recovery, side) {
        return true;
    }
    // Relaxed: a live holder took its record before it took `pos`, and the
    // caller read the ticket past `pos` with Acquire.
    table.iter().any(|rec| {
        ProcessId::from_raw(rec.owner.load(Ordering::Relaxed))
            .is_some_and(|owner| rec.names(pos) && owner.is_alive())
    })
}

/// A dead holder's record, while the repair lock is held.
pub(crate) struct DeadRecord<'a> {
    rec: &'a ClaimRecord,
    owner: u64,
}

impl DeadRecord<'_> {
    /// The positions it may have held, oldest first.
    pub(crate) fn positions(&self, cap: u64) -> impl Iterator<Item = u64> {
        self.rec.range(cap)
    }

    /// The span it names, `first..end` (empty or garbage: `first == end`).
    pub(crate) fn span(&self) -> (u64, u64) {
        // Relaxed: ordered by the Acquire that saw the holder dead.
        let first = self.rec.first.load(Ordering::Relaxed);
        let last = self.rec.last.load(Ordering::Relaxed);
        (first, last.wrapping_add(1))
    }

    /// Every position it named is finished: free the record for new handles.
    pub(crate) fn free(self) {
        let _ =
            self.rec
                .owner
                .compare_exchange(self.owner, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Byte rings: the spans `first..end` that records name around `pos`,
/// with whether their holder lives. The holder of an uncommitted record at
/// `pos` is among them (it named the span before taking it and names it
/// until it commits); so may be handles whose claim of the same span
/// failed, until they claim again.
pub(crate) fn spans_around(table: &ClaimTable, pos: u64) -> Vec<(bool, u64, u64)> {
    table
        .iter()
        .filter_map(|rec| {
            // Acquire: as in `dead_records`, for the dead; for the living,
            // the caller read the write position past `pos` with Acquire.
            let owner = ProcessId::from_raw(rec.owner.load(Ordering::Acquire))?;
            // Acquire, with `note_span`'s Release (loom cannot catch it,
            // see `byte_ring::recover`).
            let first = rec.first.load(Ordering::Acquire);
            let end = rec.last.load(Ordering::Acquire).wrapping_add(1);
            let inside = pos.wrapping_sub(first) < end.wrapping_sub(first);
            inside.then(|| (owner.is_alive(), first, end))
        })
        .collect()
}

/// Whether handles of `side` exist that have no record (repairs that must
/// see every holder are then off).
pub(crate) fn any_unrecorded(recovery: &Recovery, side: Side) -> bool {
    // Acquire: see `Recorder::release`.
    // loom cannot catch weakening it: the models never run out of records.
    recovery.unrecorded[side as usize].load(Ordering::Acquire) != 0
}

/// Records whose owner no longer runs.
pub(crate) fn dead_records(table: &ClaimTable) -> impl Iterator<Item = DeadRecord<'_>> {
    table.iter().filter_map(|rec| {
        // Acquire: a holder's death follows everything it stored (the
        // kernel's doing for a real process; a Release store in the loom
        // model's `die`), and the repair reads those stores next.
        let owner = rec.owner.load(Ordering::Acquire);
        let id = ProcessId::from_raw(owner)?;
        (!id.is_alive()).then_some(DeadRecord { rec, owner })
    })
}

/// Held while repairing; see the module docs.
pub(crate) struct RepairLock<'a> {
    lock: &'a AtomicU64,
    me: u64,
}

impl<'a> RepairLock<'a> {
    /// Take the lock, from nobody or from a dead repairer; `None` if a live
    /// process holds it (it is repairing; there is nothing to add).
    pub(crate) fn try_acquire(recovery: &'a Recovery) -> Option<Self> {
        let me = ProcessId::current().raw();
        // Compare-exchanges, not a load first: a stale read of a holder
        // (this very process, say) must not keep a repairer out forever.
        let taken =
            match recovery
                .lock
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => true,
                // Acquire, as above, from a repairer that died holding the lock
                // (what it noted before dying). loom cannot catch weakening it:
                // the models do not kill a handle inside a repair.
                Err(seen) if !ProcessId::from_raw(seen).is_some_and(|h| h.is_alive()) => recovery
                    .lock
                    .compare_exchange(seen, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok(),
                Err(_) => false,
            };
        // Not `then_some`: that would build (and drop, so release) a guard
        // on failure too, and every thread of a process unlocks as `me`.
        if taken {
            Some(RepairLock {
                lock: &recovery.lock,
                me,
            })
        } else {
            None
        }
    }
}

impl Drop for RepairLock<'_> {
    fn drop(&mut self) {
        // Release, with the Acquire in `try_acquire`: the next repairer sees
        // the positions we took over named in our record.
        let _ = self
            .lock
            .compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

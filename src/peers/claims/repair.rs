//! What repairers read, under the repair lock: which records' holders
//! live, dead holders' records, and the lock itself.

use super::{ClaimRecord, ClaimTable, Recovery, Side, CLAIM_RECORDS};
use crate::platform::lease::{self, Lease};
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::{bump, AtomicU64, Counter, Ordering};

/// Which records' owners live, each asked of the kernel at most once per
/// repair (a hostile table cannot make a repair cost a lock probe per
/// position).
pub(crate) struct Liveness<'a> {
    seg: &'a Segment,
    table: &'a ClaimTable,
    known: [Option<bool>; CLAIM_RECORDS],
}

impl<'a> Liveness<'a> {
    pub(crate) fn new(seg: &'a Segment, table: &'a ClaimTable) -> Self {
        Liveness {
            seg,
            table,
            known: [None; CLAIM_RECORDS],
        }
    }

    fn alive(&mut self, i: usize, owner: u64) -> bool {
        let rec = &self.table[i];
        *self.known[i].get_or_insert_with(|| lease::holder_alive(self.seg, &rec.owner, owner))
    }

    /// Whether a live handle's record names `pos`. The caller looks at
    /// `pos` again afterwards: a record seen free or moved on was freed or
    /// moved (Release) after its holder finished `pos`.
    pub(crate) fn held_by_the_living(&mut self, pos: u64) -> bool {
        // Acquire, with `Recorder::release`'s Release. (A live holder took
        // its record before it took `pos`, and the caller read the ticket
        // past `pos` with Acquire, so a holder is never missed.)
        (0..CLAIM_RECORDS).any(|i| {
            let owner = self.table[i].owner.load(Ordering::Acquire);
            owner != 0 && self.table[i].names(pos) && self.alive(i, owner)
        })
    }
}

/// Records whose owner no longer runs.
pub(crate) fn dead_records<'a>(
    seg: &'a Segment,
    table: &'a ClaimTable,
) -> impl Iterator<Item = DeadRecord<'a>> {
    table.iter().filter_map(move |rec| {
        // Acquire: a holder's death follows everything it stored (the
        // kernel's doing for a real process; a Release store in the loom
        // model's `die`), and the repair reads those stores next.
        let owner = rec.owner.load(Ordering::Acquire);
        (owner != 0 && !lease::holder_alive(seg, &rec.owner, owner))
            .then_some(DeadRecord { rec, owner })
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

    /// A dead stream producer's count, settled (call before its positions
    /// are repaired): a pending count stands if `committed(first, last)`
    /// says what its record names (one MPMC position; a byte ring's span)
    /// was committed, and loses it if not. A position the dead producer claimed and did not
    /// commit is skipped only after this, so a repairer that dies in
    /// between leaves a settled count for the next.
    pub(crate) fn settle_stream(&self, committed: impl FnOnce(u64, u64) -> bool) {
        // Relaxed: read after the holder was seen dead (Acquire), written
        // under the repair lock, whose Release orders it for the next
        // repairer and the stream's next taker.
        if self.rec.stream.load(Ordering::Relaxed) == 0 {
            return;
        }
        let word = self.rec.committed.load(Ordering::Relaxed);
        if word & 1 == 0 {
            return;
        }
        let count = word >> 1;
        let (first, last) = (
            self.rec.first.load(Ordering::Relaxed),
            self.rec.last.load(Ordering::Relaxed),
        );
        let count = if committed(first, last) {
            count
        } else {
            count.saturating_sub(1)
        };
        self.rec.committed.store(count << 1, Ordering::Relaxed);
    }

    /// Whether it is a stream's record (its stream's next handle takes it).
    pub(crate) fn is_stream(&self) -> bool {
        // Relaxed: as in `settle_stream`.
        self.rec.stream.load(Ordering::Relaxed) != 0
    }

    /// The dead holder's pid (in its own namespace), for the log.
    pub(crate) fn holder_pid(&self) -> u32 {
        HolderId::from_raw(self.owner).map_or(0, HolderId::pid)
    }

    /// Every position it named is finished: free the record for new
    /// handles, log it, and count a takeover in `takeovers`.
    pub(crate) fn reclaim(self, seg: &Segment, side: Side, takeovers: &Counter) {
        log::info!(
            target: "shmring",
            "ring {:?}: a {} handle of process {} is gone (its lock was free); its claim record \
             is reclaimed",
            seg.name().as_str(),
            side.name(),
            self.holder_pid()
        );
        let _ =
            self.rec
                .owner
                .compare_exchange(self.owner, 0, Ordering::Relaxed, Ordering::Relaxed);
        bump(takeovers);
    }
}

impl Liveness<'_> {
    /// Byte rings: the spans `first..end` that records name around `pos`,
    /// with whether their holder lives. The holder of an uncommitted record
    /// at `pos` is among them (it named the span before taking it and names
    /// it until it commits); so may be handles whose claim of an
    /// overlapping span failed, until they claim again.
    pub(crate) fn spans_around(&mut self, pos: u64) -> Vec<(bool, u64, u64)> {
        (0..CLAIM_RECORDS)
            .filter_map(|i| {
                let rec = &self.table[i];
                // Acquire: as in `dead_records`, for the dead; for the
                // living, the caller read the write position past `pos`
                // with Acquire.
                let owner = rec.owner.load(Ordering::Acquire);
                if owner == 0 {
                    return None;
                }
                // Acquire, with the Release of `first` in `note_span` and
                // `clear_span`: a live record seen moved off `pos` was moved
                // after its holder committed `pos` (the caller looks at the
                // record again). Relaxed `last`: as in `names`.
                let first = rec.first.load(Ordering::Acquire);
                let end = rec.last.load(Ordering::Relaxed).wrapping_add(1);
                let inside = pos.wrapping_sub(first) < end.wrapping_sub(first);
                inside.then(|| (self.alive(i, owner), first, end))
            })
            .collect()
    }
}

/// Held while repairing; see the module docs.
pub(crate) struct RepairLock<'a> {
    lock: &'a AtomicU64,
    id: HolderId,
    lease: Option<Lease>,
}

impl<'a> RepairLock<'a> {
    /// Take the lock: its lease (`None` if a live handle, of this process
    /// or another, holds it: it is repairing, there is nothing to add),
    /// then its word, from nobody or from a repairer that died holding it.
    pub(crate) fn try_acquire(seg: &Segment, recovery: &'a Recovery) -> Option<Self> {
        let lease = Lease::try_take(seg, &recovery.lock).ok().flatten()?;
        let id = HolderId::fresh();
        let mut expected = 0;
        for _ in 0..4 {
            // Acquire, with the Release in `drop`: what the last repairer
            // noted in its records before letting go is seen (and, from a
            // repairer that died holding the lock, what it noted before
            // dying).
            match recovery.lock.compare_exchange(
                expected,
                id.raw(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(RepairLock {
                        lock: &recovery.lock,
                        id,
                        lease: Some(lease),
                    })
                }
                Err(seen) if lease.supersedes(seen) => expected = seen,
                Err(_) => return None,
            }
        }
        None
    }
}

impl<'a> RepairLock<'a> {
    /// Take the lock, retrying while live handles hold it for up to
    /// `patience` (repairs are short): for a caller that must have it, such
    /// as a stream's taker. `None` if it stayed held.
    pub(crate) fn acquire_within(
        seg: &Segment,
        recovery: &'a Recovery,
        patience: std::time::Duration,
    ) -> Option<Self> {
        #[cfg(not(shmring_loom))]
        let deadline = std::time::Instant::now() + patience;
        #[cfg(shmring_loom)]
        let (_, mut tries) = (patience, 0u32);
        loop {
            if let Some(lock) = Self::try_acquire(seg, recovery) {
                return Some(lock);
            }
            #[cfg(not(shmring_loom))]
            {
                if std::time::Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            #[cfg(shmring_loom)]
            {
                tries += 1;
                if tries > 2 {
                    return None;
                }
                crate::platform::sync::preemption_point();
            }
        }
    }
}

/// For loom models: the repairer's process dies now, holding the lock.
#[cfg(shmring_loom)]
impl RepairLock<'_> {
    pub(crate) fn die(mut self) {
        lease::mark_dead(self.lock);
        self.lease = None;
        std::mem::forget(self);
    }
}

impl Drop for RepairLock<'_> {
    fn drop(&mut self) {
        // Release, with the Acquire in `try_acquire`: the next repairer sees
        // the positions we took over named in our record.
        let _ = self
            .lock
            .compare_exchange(self.id.raw(), 0, Ordering::Release, Ordering::Relaxed);
        drop(self.lease.take());
    }
}

//! Repair of what dead MPMC handles left unfinished (see the module docs
//! of `mpmc`, "Dying peers"): the dead producers' positions skipped, the
//! dead consumers' values flagged and taken over by a live consumer.

use super::release;
use crate::format::slot::{free_stamp, full_stamp, skipped_stamp, Slot};
use crate::lifecycle::memory::RingMemory;
use crate::peers::claims::{self, Liveness, Recorder, RepairLock, Side};
use crate::platform::sync::Ordering;
use crate::wait;

/// Positions one repair looks at, at most: honest records name a handful
/// each; a hostile table that names whole laps costs each call this much
/// and no more (the rest waits for the next call).
pub(super) const REPAIR_BUDGET: u64 = 1 << 16;

/// Repair what dead handles left unfinished: positions a dead producer
/// claimed and never published are stamped skipped (consumers pass over
/// them); values a dead consumer took and never released are flagged for a
/// live consumer to take over (only a consumer can deliver them). The
/// number of positions repaired or flagged; 0 when another live handle
/// holds the repair lock.
pub(super) fn recover<T>(mem: &RingMemory<Slot<T>>) -> u64 {
    let Some(lock) = RepairLock::try_acquire(mem.segment(), &mem.header().recovery) else {
        return 0;
    };
    let repaired = repair(mem);
    unlock(mem, lock);
    repaired
}

/// Let the repair lock go, then wake the waiting consumers: one that found
/// the ring closed and empty and the lock taken waits for it to look for a
/// dead consumer's value before it reports `Closed` (see
/// `MpmcConsumer::closing`).
pub(super) fn unlock<T>(mem: &RingMemory<Slot<T>>, lock: RepairLock<'_>) {
    drop(lock);
    wait::notify(&mem.header().consumer_event);
}

/// [`recover`]'s work, with the repair lock held.
pub(super) fn repair<T>(mem: &RingMemory<Slot<T>>) -> u64 {
    let header = mem.header();
    let recovery = &header.recovery;
    let seg = mem.segment();
    let cap = mem.capacity();
    let mut repaired = 0;
    let mut budget = REPAIR_BUDGET;
    let mut living = Liveness::new(seg, &header.producer_claims);

    for dead in claims::dead_records(seg, &header.producer_claims) {
        // Before any of its positions is skipped: a stream's count says
        // whether the one it named was committed.
        dead.settle_stream(|_, pos| mem.slot(pos).stamp() != free_stamp(pos));
        // Read after the holder was seen dead: every position it took is
        // below this tail, so none of them is mistaken for unclaimed.
        let tail = header.tail.load(Ordering::Acquire);
        let mut pending = false;
        for pos in dead.positions(cap) {
            if budget == 0 {
                pending = true;
                break;
            }
            budget -= 1;
            let claimed = (1..=cap).contains(&tail.wrapping_sub(pos));
            if !claimed || mem.slot(pos).stamp() != free_stamp(pos) {
                continue;
            }
            if living.held_by_the_living(pos) {
                pending = true;
            } else if mem.slot(pos).skip(pos) {
                repaired += 1;
            }
        }
        if !pending {
            dead.reclaim(seg, Side::Producer, &header.producer_stats.takeovers);
        }
    }
    if repaired > 0 {
        recovery.repaired.fetch_add(repaired, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::warn!(
            target: "shmring",
            "ring {:?}: skipped {repaired} positions that dead producers claimed and never \
             committed (nothing committed is lost)",
            seg.name().as_str()
        );
    }

    let Scan::Found(orphans) = scan_orphans(mem, None, &mut budget) else {
        unreachable!("only a consumer adopts")
    };
    if orphans > 0 {
        // Relaxed: a hint; the consumer that acts on it takes the lock.
        recovery.orphaned.store(1, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::info!(
            target: "shmring",
            "ring {:?}: {orphans} values taken by dead consumers and never released wait for \
             a live consumer to deliver them",
            seg.name().as_str()
        );
    }
    repaired + orphans
}

/// What a scan for a dead consumer's values found.
pub(super) enum Scan {
    /// This many values wait for a consumer to take them over.
    Found(u64),
    /// The consumer handle that scanned took over this position.
    Adopted(u64),
}

/// Find the values dead consumers took and never released, that no live
/// consumer holds (call with the repair lock held). With `adopt`, the first
/// such value is taken over by that consumer handle, which delivers it, and
/// dead consumers' skipped positions are passed on on the way.
pub(super) fn scan_orphans<T>(
    mem: &RingMemory<Slot<T>>,
    adopt: Option<&Recorder>,
    budget: &mut u64,
) -> Scan {
    let header = mem.header();
    let recovery = &header.recovery;
    let seg = mem.segment();
    let cap = mem.capacity();
    let mut found = 0;
    let mut living = Liveness::new(seg, &header.consumer_claims);
    for dead in claims::dead_records(seg, &header.consumer_claims) {
        // After the holder was seen dead, as in `recover`.
        let head = header.head.load(Ordering::Acquire);
        let mut pending = false;
        for pos in dead.positions(cap) {
            if *budget == 0 {
                pending = true;
                break;
            }
            *budget -= 1;
            let claimed = (1..=cap).contains(&head.wrapping_sub(pos));
            let stamp = mem.slot(pos).stamp();
            let unreleased = stamp == full_stamp(pos) || stamp == skipped_stamp(pos);
            if !claimed || !unreleased {
                continue;
            }
            if living.held_by_the_living(pos) {
                pending = true;
                continue;
            }
            // Look again: a live consumer that took the value over, released
            // it and moved its record on may have been seen only moved on.
            // Its release comes before the move (Release), so this Acquire
            // load sees it. (A producer's skip needs no second look: its
            // compare-exchange fails on a published stamp.)
            if mem.slot(pos).stamp() != stamp {
                continue;
            }
            match adopt {
                Some(_) if stamp == skipped_stamp(pos) => release(mem, pos),
                Some(rec) => {
                    // Named in our record (with what it already holds)
                    // before the lock is let go, so the next repairer sees
                    // a live holder.
                    rec.adopt(&header.consumer_claims, pos);
                    recovery.repaired.fetch_add(1, Ordering::Relaxed);
                    return Scan::Adopted(pos);
                }
                None => {
                    pending = true;
                    found += 1;
                }
            }
        }
        if !pending {
            dead.reclaim(seg, Side::Consumer, &header.consumer_stats.takeovers);
        }
    }
    Scan::Found(found)
}

/// A consumer's way to a dead consumer's value: only when a repairer has
/// flagged one, so the empty path costs one load of a quiet line.
pub(super) fn adopt_orphan<T>(mem: &RingMemory<Slot<T>>, rec: &Recorder) -> Option<u64> {
    if mem.header().recovery.orphaned.load(Ordering::Relaxed) == 0 {
        return None;
    }
    match look_for_orphan(mem, rec) {
        Orphan::Adopted(pos) => Some(pos),
        Orphan::None | Orphan::Busy => None,
    }
}

/// What a consumer's look for a dead consumer's value found.
pub(super) enum Orphan {
    /// The consumer took over the value at this position.
    Adopted(u64),
    /// No value that a dead consumer took waits for one (it is delivered,
    /// or a live consumer holds it).
    None,
    /// Another live handle holds the repair lock; it wakes the waiting
    /// consumers when it lets go (see [`unlock`]).
    Busy,
}

/// Take over a value a dead consumer took and never released, if there is
/// one that no live consumer holds (flagged or not).
pub(super) fn look_for_orphan<T>(mem: &RingMemory<Slot<T>>, rec: &Recorder) -> Orphan {
    match RepairLock::try_acquire(mem.segment(), &mem.header().recovery) {
        Some(lock) => adopt_under(mem, rec, lock),
        None => Orphan::Busy,
    }
}

/// [`look_for_orphan`]'s work, with the repair lock taken (and let go here).
pub(super) fn adopt_under<T>(
    mem: &RingMemory<Slot<T>>,
    rec: &Recorder,
    lock: RepairLock<'_>,
) -> Orphan {
    let recovery = &mem.header().recovery;
    let mut budget = REPAIR_BUDGET;
    let found = match scan_orphans(mem, Some(rec), &mut budget) {
        Scan::Adopted(pos) => {
            log::info!(
                target: "shmring",
                "ring {:?}: a consumer took over position {pos} from a dead consumer \
                 (delivered again, out of order, rather than lost)",
                mem.segment().name().as_str()
            );
            Orphan::Adopted(pos)
        }
        Scan::Found(_) => {
            recovery.orphaned.store(0, Ordering::Relaxed);
            Orphan::None
        }
    };
    unlock(mem, lock);
    found
}

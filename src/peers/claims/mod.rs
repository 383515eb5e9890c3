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
//!   when the handle is made (owner = its [`HolderId`]) and freed when it
//!   drops (Release; repairers read owners with Acquire, so one that finds
//!   a record free also finds every position it named finished);
//! * before its compare-exchange for position `p`, a handle stores `p` as
//!   `last` (and as `first` when it holds nothing else), and the exchange
//!   that wins `p` is Release. So whoever reads the ticket past `p` with
//!   Acquire sees a record naming `p`, and that record keeps naming `p`
//!   until the holder has finished it. A record moves off a finished
//!   position only through a new `first` (Release; repairers load `first`
//!   with Acquire), so a repairer that sees it moved off also sees the
//!   position finished when it looks at the position again. `last` alone
//!   only ever names more, and is Relaxed;
//! * only repairers read other handles' records, and only while holding
//!   the repair lock; so what a repairer writes into its own record under
//!   the lock (a consumer that takes over a dead one's value widens its
//!   range) needs no ordering of its own: the lock's Release/Acquire
//!   orders it before the next repairer's reads. (Anyone may ask whether
//!   a record's holder lives, [`any_alive`], or died, [`any_dead`]: a
//!   snapshot that decides only whether to look, never what to repair.)
//!
//! A repairer that finds a position unfinished may touch it only if no live
//! record names it: then its holder is dead (every holder's record named
//! the position before it took it). A record can name a position its
//! holder never won (its exchange failed), which only makes repair more
//! cautious; so can a record that names more than its holder holds (a
//! consumer that holds a value and adopts a dead one's names the range
//! covering both).
//!
//! "Live" is the kernel's word: each record's owner holds a lease on the
//! record's owner word (`lease.rs`), and a record whose owner word is set
//! but whose lease is free belongs to a dead handle. Repairers take one
//! lock (this module's [`RepairLock`]), itself a lease plus a word, so
//! that two of them never act on the same position.
//!
//! # Streams
//!
//! A producer handle may belong to a stream the application names (a u32
//! id), so that a restarted producer learns exactly how far its stream
//! got. The stream's record keeps its `stream` tag and a `committed` count
//! for good: a handle of the stream takes it again after the last one
//! left or died, and anonymous handles never take it. Streams are tagged,
//! and their records taken, under the repair lock, so no two records name
//! one stream. A stream's handle holds one position at a time. Its count
//! moves in two steps around each commit: before the commit's stamp it
//! stores `count + 1` marked pending (the count includes the position its
//! record names), and the next `note` (or the handle's release) clears the
//! mark. Whatever instant it dies at, the record then says exactly what
//! was committed: a pending count stands if the named position was
//! committed (its stamp moved off "free" for it) and loses one otherwise;
//! a repairer settles it so (`DeadRecord::settle_stream`) before it skips
//! any of the dead handle's positions, so a skip is never taken for a
//! commit. This needs a cooperating peer: a peer that writes the count
//! misleads the stream's next handle, and nothing else.
//!
//! There is a record for every handle: when a side's records are all held
//! by live handles, making one more handle fails with `TooManyHandles`.
//! A handle dropped while it still holds positions (a guard passed to
//! `mem::forget`) leaves its record behind as a dead one's, so those
//! positions are repaired like a dead handle's.

use crossbeam_utils::CachePadded;

use crate::platform::lease::{self};
use crate::platform::segment::Segment;
use crate::platform::sync::{AtomicU64, Ordering};

mod recorder; // a handle's own record
mod repair; // liveness, dead records, the repair lock

pub(crate) use recorder::Recorder;
pub(crate) use repair::{dead_records, Liveness, RepairLock};

/// Records per side (producers, consumers). A loom model needs only a few.
pub(crate) const CLAIM_RECORDS: usize = if crate::platform::sync::MODEL { 4 } else { 32 };

/// One handle's record. `first..=last` (wrapping) are the positions it may
/// hold; an empty record has `first == last + 1`.
#[repr(C)]
pub(crate) struct ClaimRecord {
    pub(super) owner: AtomicU64,
    pub(super) first: AtomicU64,
    pub(super) last: AtomicU64,
    /// The producer stream this record belongs to (see "Streams" above):
    /// `STREAM_TAG | id`, or 0 for an anonymous handle's record.
    pub(super) stream: AtomicU64,
    /// A stream's committed count, shifted left once; the low bit is set
    /// while the count includes the position the record names, whose
    /// commit may not have happened yet.
    pub(super) committed: AtomicU64,
}

/// Marks a record's `stream` word as naming a stream (ids are u32).
pub(super) const STREAM_TAG: u64 = 1 << 32;

/// The records of one side of a ring.
pub(crate) type ClaimTable = [CachePadded<ClaimRecord>; CLAIM_RECORDS];

/// Shared state of the repair protocol, written only when something dies.
#[repr(C)]
pub(crate) struct Recovery {
    /// The repairer's `HolderId`, or 0; see [`RepairLock`].
    lock: AtomicU64,
    /// Non-zero when a dead consumer left a value that a consumer should
    /// take over (only a consumer can deliver it).
    pub(crate) orphaned: AtomicU64,
    /// Unused (was a count of unrecorded handles, before every handle had
    /// a record); kept so that the records stay where they were.
    _reserved: [AtomicU64; 2],
    /// Positions repaired so far, for statistics.
    pub(crate) repaired: AtomicU64,
}

/// Which side of a ring a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Producer = 0,
    Consumer = 1,
}

impl Side {
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::Producer => "producer",
            Side::Consumer => "consumer",
        }
    }
}

impl ClaimRecord {
    /// A free record (what a zero-filled segment holds), for loom.
    #[cfg(shmring_loom)]
    pub(crate) fn new() -> Self {
        ClaimRecord {
            owner: AtomicU64::new(0),
            first: AtomicU64::new(1),
            last: AtomicU64::new(0),
            stream: AtomicU64::new(0),
            committed: AtomicU64::new(0),
        }
    }

    /// Whether the record's range holds `pos`.
    pub(super) fn names(&self, pos: u64) -> bool {
        // Acquire, with the Release of `first` in `note` and `clear_span`:
        // a repairer that sees a live record moved past `pos` also sees
        // `pos` finished (its second look at the slot does). A record
        // moves past a position only by a new `first`, stored after the
        // holder finished everything it held.
        let first = self.first.load(Ordering::Acquire);
        // Relaxed: next to an older `first`, a newer `last` only names
        // more (no record moves off a position through `last` alone), so
        // `first` carries the edge.
        let last = self.last.load(Ordering::Relaxed);
        pos.wrapping_sub(first) <= last.wrapping_sub(first) && last.wrapping_add(1) != first
    }

    /// The positions a dead holder's record names, at most one lap of
    /// `cap` (a longer range is garbage; its newest lap is what matters).
    pub(super) fn range(&self, cap: u64) -> impl Iterator<Item = u64> {
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
    #[cfg(shmring_loom)]
    pub(crate) fn new() -> Self {
        Recovery {
            lock: AtomicU64::new(0),
            orphaned: AtomicU64::new(0),
            _reserved: [AtomicU64::new(0), AtomicU64::new(0)],
            repaired: AtomicU64::new(0),
        }
    }
}

/// Whether any record of `table` belongs to a live handle now (a snapshot:
/// for presence questions, never for repair).
pub(crate) fn any_alive(seg: &Segment, table: &ClaimTable) -> bool {
    table.iter().any(|rec| {
        // Relaxed: a snapshot of who is there; nothing is read after it.
        let owner = rec.owner.load(Ordering::Relaxed);
        owner != 0 && lease::holder_alive(seg, &rec.owner, owner)
    })
}

/// Whether a record of `table` names a holder whose lease is free: a dead
/// handle's, which a repair would look at (a snapshot, like
/// [`any_alive`], telling a waiter that a repair is worth taking the lock
/// for; the repair reads every record again under the lock).
pub(crate) fn any_dead(seg: &Segment, table: &ClaimTable) -> bool {
    table.iter().any(|rec| {
        // Relaxed: a hint; `dead_records` loads the owner again (Acquire)
        // before anything is read or repaired on its word. A holder that
        // died before the caller looked (before a close the caller saw with
        // Acquire, say) is seen: the owner word it set happened before.
        let owner = rec.owner.load(Ordering::Relaxed);
        owner != 0 && !lease::holder_alive(seg, &rec.owner, owner)
    })
}

/// The handles that hold records of `table`, live or departed (for
/// people: `stat` lists them).
#[cfg_attr(shmring_loom, allow(dead_code))]
pub(crate) fn holders(seg: &Segment, table: &ClaimTable) -> Vec<crate::peers::attach::Attached> {
    table
        .iter()
        .filter_map(|rec| crate::peers::attach::holder(seg, &rec.owner))
        .collect()
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::error::Error;
    use crate::platform::name::SegmentName;

    /// A real segment (never linked under its name) holding one claim
    /// table and the repair state, so that leases are real kernel locks.
    /// Both start after the first line: byte 0 carries every mapping's
    /// shared lock (a header's magic number sits there).
    struct Fixture {
        seg: Segment,
    }

    /// Where the table starts: a line past the mapping's shared lock.
    const TABLE: usize = 128;

    impl Fixture {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("shmring-unit-claims-{}-{n}", std::process::id());
            let len = (TABLE + size_of::<ClaimTable>() + size_of::<Recovery>()) as u64;
            let seg = Segment::create(&SegmentName::new(&name).unwrap(), len, 0o600, None, false);
            Fixture { seg: seg.unwrap() }
        }

        fn table(&self) -> &ClaimTable {
            // SAFETY: the mapping is at least a table and the repair state
            // long, page-aligned, zero-filled (a valid table of free
            // records: atomics are valid for any bits), and lives as long
            // as `self`.
            unsafe { &*self.seg.as_ptr().add(TABLE).cast::<ClaimTable>() }
        }

        fn recovery(&self) -> &Recovery {
            let at = TABLE + size_of::<ClaimTable>();
            // SAFETY: as in `table`; the state follows the table, whose
            // size is a multiple of the state's alignment.
            unsafe { &*self.seg.as_ptr().add(at).cast::<Recovery>() }
        }

        fn take(&self) -> Recorder {
            Recorder::take(&self.seg, self.table(), Side::Consumer).unwrap()
        }

        fn held(&self, pos: u64) -> bool {
            Liveness::new(&self.seg, self.table()).held_by_the_living(pos)
        }

        fn dead(&self) -> Vec<Vec<u64>> {
            dead_records(&self.seg, self.table())
                .map(|d| d.positions(8).collect())
                .collect()
        }
    }

    #[test]
    fn each_handle_gets_a_record_of_its_own_and_one_more_is_too_many() {
        let f = Fixture::new();
        let mut all: Vec<Recorder> = (0..CLAIM_RECORDS).map(|_| f.take()).collect();
        let mut indices: Vec<usize> = all.iter().map(|r| r.index).collect();
        indices.dedup();
        assert_eq!(indices.len(), CLAIM_RECORDS);
        match Recorder::take(&f.seg, f.table(), Side::Producer) {
            Err(Error::TooManyHandles { side, limit, .. }) => {
                assert_eq!((side, limit), ("producer", CLAIM_RECORDS));
            }
            other => panic!("expected TooManyHandles, got {:?}", other.err()),
        }
        all[3].release(f.table());
        let again = f.take();
        assert_eq!(again.index, 3, "a released record is taken again");
    }

    #[test]
    fn a_live_record_names_what_it_holds_and_moves_off_what_it_finished() {
        let f = Fixture::new();
        let r = f.take();
        assert!(!f.held(5));
        r.note(f.table(), 5);
        r.hold(5);
        assert!(f.held(5));
        r.finish();
        r.note(f.table(), 6);
        assert!(!f.held(5), "finished, and the record moved on");
        assert!(f.held(6));
    }

    #[test]
    fn a_claim_that_lost_stops_naming_the_position_it_did_not_win() {
        let f = Fixture::new();
        let r = f.take();
        r.note(f.table(), 7);
        assert!(f.held(7), "named before the compare-exchange");
        r.abandon(f.table());
        assert!(!f.held(7));
        r.note(f.table(), 8);
        r.hold(8);
        r.note(f.table(), 9);
        r.abandon(f.table());
        assert!(
            f.held(8) && !f.held(9),
            "keeps what it holds, drops the rest"
        );
    }

    #[test]
    fn a_handle_dropped_holding_positions_leaves_a_dead_record_to_repair() {
        let f = Fixture::new();
        let mut r = f.take();
        for pos in [3, 4] {
            r.note(f.table(), pos);
            r.hold(pos);
        }
        r.release(f.table()); // its guards were forgotten
        assert!(!f.held(3), "its holder is gone");
        assert_eq!(f.dead(), [vec![3, 4]]);
        dead_records(&f.seg, f.table())
            .for_each(|d| d.reclaim(&f.seg, Side::Producer, &Default::default()));
        assert!(f.dead().is_empty());
        assert_eq!(f.take().index, r.index, "the freed record is reused");
    }

    #[test]
    fn a_handle_released_with_nothing_held_frees_its_record() {
        let f = Fixture::new();
        let mut r = f.take();
        r.note(f.table(), 1);
        r.hold(1);
        r.finish();
        r.release(f.table());
        assert!(f.dead().is_empty());
        assert_eq!(f.table()[r.index].owner.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dead_records_range_is_cut_to_one_lap() {
        let f = Fixture::new();
        let mut r = f.take();
        r.note(f.table(), 0);
        r.hold(0);
        // A garbage range (a hostile peer, or wrapped positions).
        f.table()[r.index].last.store(1000, Ordering::Relaxed);
        r.release(f.table());
        assert_eq!(f.dead(), [(993..=1000).collect::<Vec<u64>>()]);
    }

    #[test]
    fn adopting_widens_the_range_to_cover_the_adopted_position() {
        let f = Fixture::new();
        let r = f.take();
        r.note(f.table(), 10);
        r.hold(10);
        r.adopt(f.table(), 4);
        assert!(f.held(4) && f.held(7) && f.held(10));
        assert!(!f.held(3) && !f.held(11));
    }

    #[test]
    fn a_span_is_named_until_cleared() {
        let f = Fixture::new();
        let r = f.take();
        r.note_span(f.table(), 16, 47);
        let spans = Liveness::new(&f.seg, f.table()).spans_around(20);
        assert_eq!(spans, [(true, 16, 48)]);
        assert!(Liveness::new(&f.seg, f.table()).spans_around(48).is_empty());
        r.clear_span(f.table());
        assert!(Liveness::new(&f.seg, f.table()).spans_around(20).is_empty());
    }

    #[test]
    fn the_repair_lock_has_one_holder_at_a_time() {
        let f = Fixture::new();
        let first = RepairLock::try_acquire(&f.seg, f.recovery()).expect("free");
        assert!(RepairLock::try_acquire(&f.seg, f.recovery()).is_none());
        drop(first);
        assert!(RepairLock::try_acquire(&f.seg, f.recovery()).is_some());
    }
}

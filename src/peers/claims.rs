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

use std::cell::Cell;

use crate::error::{Error, Result};
use crate::platform::lease::{self, Lease};
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::{AtomicU64, Ordering};

/// Records per side (producers, consumers). A loom model needs only a few.
pub(crate) const CLAIM_RECORDS: usize = if crate::platform::sync::MODEL { 4 } else { 32 };

/// One handle's record. `first..=last` (wrapping) are the positions it may
/// hold; an empty record has `first == last + 1`.
#[repr(C)]
pub(crate) struct ClaimRecord {
    owner: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
    /// The producer stream this record belongs to (see "Streams" above):
    /// `STREAM_TAG | id`, or 0 for an anonymous handle's record.
    stream: AtomicU64,
    /// A stream's committed count, shifted left once; the low bit is set
    /// while the count includes the position the record names, whose
    /// commit may not have happened yet.
    committed: AtomicU64,
}

/// Marks a record's `stream` word as naming a stream (ids are u32).
const STREAM_TAG: u64 = 1 << 32;

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
    fn name(self) -> &'static str {
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
    fn names(&self, pos: u64) -> bool {
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

/// A handle's own record, its lease, and a private copy of what it
/// holds: how many positions (guards not yet dropped), the first of them
/// and the last.
pub(crate) struct Recorder {
    index: usize,
    id: HolderId,
    lease: Option<Lease>,
    held: Cell<u32>,
    first: Cell<u64>,
    last_held: Cell<u64>,
    /// For a stream's record: its committed count, and whether the record
    /// says "pending" (the count includes the position it names).
    stream: Option<StreamCount>,
}

struct StreamCount {
    count: Cell<u64>,
    pending: Cell<bool>,
}

impl Recorder {
    /// Take a free record of `side` in `table`: its lease first, then its
    /// owner word from 0. `TooManyHandles` if every record is held. A
    /// stream's record is kept for its stream, never taken here.
    pub(crate) fn take(seg: &Segment, table: &ClaimTable, side: Side) -> Result<Recorder> {
        let id = HolderId::fresh();
        for (index, rec) in table.iter().enumerate() {
            // All Relaxed: whatever a repairer reads here before our first
            // claim can only make it more careful (a live owner with a
            // stale range), and our first claim's Release on the ticket
            // orders all of it before anything we hold. (Streams are tagged
            // under the repair lock, which a stream's taker holds.)
            if rec.owner.load(Ordering::Relaxed) != 0 || rec.stream.load(Ordering::Relaxed) != 0 {
                continue;
            }
            if let Some(recorder) = Self::take_at(seg, rec, index, id, None)? {
                return Ok(recorder);
            }
        }
        Err(Error::TooManyHandles {
            name: seg.name().as_str().to_owned(),
            side: side.name(),
            limit: CLAIM_RECORDS,
        })
    }

    /// Take producer stream `id`'s record (call with the repair lock held,
    /// after a repair: a dead holder's record is then freed, its count
    /// settled): the one that names the stream, or else a free one, tagged
    /// for it. `StreamTaken` while a live handle holds it.
    pub(crate) fn take_stream(seg: &Segment, table: &ClaimTable, id: u32) -> Result<Recorder> {
        let tag = STREAM_TAG | u64::from(id);
        let holder = HolderId::fresh();
        // Relaxed `stream` loads: every tagging happens under the repair
        // lock, which we hold.
        let found = table
            .iter()
            .enumerate()
            .find(|(_, rec)| rec.stream.load(Ordering::Relaxed) == tag);
        let taken = |pid| Error::StreamTaken {
            name: seg.name().as_str().to_owned(),
            stream: id,
            pid,
        };
        if let Some((index, rec)) = found {
            // Acquire, with the Release in `release`: a record its last
            // handle let go of shows the count that handle stored before.
            let owner = rec.owner.load(Ordering::Acquire);
            if owner != 0 {
                let pid = HolderId::from_raw(owner).map_or(0, HolderId::pid);
                if lease::holder_alive(seg, &rec.owner, owner) {
                    return Err(taken(pid));
                }
                return Err(Error::Busy {
                    name: seg.name().as_str().to_owned(),
                    what: "the stream's last handle died and its repair is not finished",
                });
            }
            let count = rec.committed.load(Ordering::Relaxed) >> 1;
            return Self::take_at(seg, rec, index, holder, Some(count))?.ok_or_else(|| taken(0));
        }
        for (index, rec) in table.iter().enumerate() {
            if rec.owner.load(Ordering::Relaxed) != 0 || rec.stream.load(Ordering::Relaxed) != 0 {
                continue;
            }
            if let Some(recorder) = Self::take_at(seg, rec, index, holder, Some(0))? {
                rec.committed.store(0, Ordering::Relaxed);
                rec.stream.store(tag, Ordering::Relaxed);
                return Ok(recorder);
            }
        }
        Err(Error::TooManyHandles {
            name: seg.name().as_str().to_owned(),
            side: Side::Producer.name(),
            limit: CLAIM_RECORDS,
        })
    }

    /// Take record `rec` if its lease and its owner word are free.
    fn take_at(
        seg: &Segment,
        rec: &ClaimRecord,
        index: usize,
        id: HolderId,
        stream: Option<u64>,
    ) -> Result<Option<Recorder>> {
        let Some(lease) = Lease::try_take(seg, &rec.owner)? else {
            return Ok(None);
        };
        if rec
            .owner
            .compare_exchange(0, id.raw(), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        rec.first.store(1, Ordering::Relaxed);
        rec.last.store(0, Ordering::Relaxed);
        Ok(Some(Recorder {
            index,
            id,
            lease: Some(lease),
            held: Cell::new(0),
            first: Cell::new(1),
            last_held: Cell::new(0),
            stream: stream.map(|count| StreamCount {
                count: Cell::new(count),
                pending: Cell::new(false),
            }),
        }))
    }

    /// A stream's committed count (`None` for an anonymous handle).
    pub(crate) fn committed(&self) -> Option<u64> {
        self.stream.as_ref().map(|s| s.count.get())
    }

    /// A stream's handle is about to commit the position its record names:
    /// count it, marked pending (a repairer settles a pending count by
    /// whether the commit happened). Relaxed: only a repairer reads it,
    /// after this handle died, and a death follows everything it stored.
    #[inline(always)]
    pub(crate) fn committing(&self, table: &ClaimTable) {
        if let (Some(s), Some(rec)) = (&self.stream, self.record(table)) {
            let count = s.count.get() + 1;
            rec.committed.store(count << 1 | 1, Ordering::Relaxed);
            s.count.set(count);
            s.pending.set(true);
        }
    }

    /// Settle a pending count before the record names anything else: the
    /// commit it covered happened.
    #[inline(always)]
    fn settle(&self, rec: &ClaimRecord) {
        if let Some(s) = &self.stream {
            if s.pending.get() {
                // Relaxed: as in `committing`.
                rec.committed.store(s.count.get() << 1, Ordering::Relaxed);
                s.pending.set(false);
            }
        }
    }

    fn record<'t>(&self, table: &'t ClaimTable) -> Option<&'t ClaimRecord> {
        self.lease.as_ref().and(table.get(self.index)).map(|r| &**r)
    }

    /// Name `pos` before trying to take it (the ticket's Release then
    /// publishes the name to repairers that read the ticket past `pos`).
    #[inline(always)]
    pub(crate) fn note(&self, table: &ClaimTable, pos: u64) {
        if let Some(rec) = self.record(table) {
            self.settle(rec);
            if self.held.get() == 0 {
                self.first.set(pos);
                // Release: the record moves past what this handle finished
                // (see `names`).
                rec.first.store(pos, Ordering::Release);
            }
            // Relaxed: a new `last` alone only names more.
            rec.last.store(pos, Ordering::Relaxed);
        }
    }

    /// Byte rings: name the span `first..=last` before trying to take it.
    /// A byte producer holds at most one span, and names a new one only
    /// after it committed the last, so its record names its uncommitted
    /// span for as long as it holds one. Release: see `names`.
    #[inline(always)]
    pub(crate) fn note_span(&self, table: &ClaimTable, first: u64, last: u64) {
        if let Some(rec) = self.record(table) {
            self.settle(rec);
            // Release: the record moves past the span this handle committed
            // (see `spans_around`). Relaxed `last`: as in `note`.
            rec.first.store(first, Ordering::Release);
            rec.last.store(last, Ordering::Relaxed);
        }
    }

    /// Byte rings: a claim gave up; name nothing, so that a span this
    /// handle never won does not keep the real owner's from repair.
    #[cold]
    pub(crate) fn clear_span(&self, table: &ClaimTable) {
        if let Some(rec) = self.record(table) {
            // Release, as in `note_span`: the record may have named the
            // span this handle committed last, and moves off it here.
            rec.first.store(1, Ordering::Release);
            rec.last.store(0, Ordering::Relaxed);
        }
    }

    /// This consumer took over `pos` from a dead one (under the repair
    /// lock). The record must name `pos` and everything it already names:
    /// with guards still held, widen the range to cover `pos`, so that no
    /// other consumer takes the adopted value over again and no producer
    /// refills a slot this handle still reads.
    pub(crate) fn adopt(&self, table: &ClaimTable, pos: u64) {
        if self.held.get() == 0 {
            self.note(table, pos);
        } else if let Some(rec) = self.record(table) {
            let (first, last) = (self.first.get(), self.last_held.get());
            // Relaxed: made under the repair lock, and only repairers, each
            // holding that lock, read other handles' records; the lock's
            // Release/Acquire orders these stores before their reads. (It
            // only widens the range, so it moves past nothing.)
            // Positions within a lap of each other: compare by signed distance.
            if (pos.wrapping_sub(first) as i64) < 0 {
                self.first.set(pos);
                rec.first.store(pos, Ordering::Relaxed);
            }
            if (pos.wrapping_sub(last) as i64) > 0 {
                self.last_held.set(pos);
                rec.last.store(pos, Ordering::Relaxed);
            }
            self.held.set(self.held.get() + 1);
            return;
        }
        self.hold(pos);
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
        if let Some(rec) = self.record(table) {
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

    /// Free the record when the handle drops. A handle that still holds
    /// positions (its guards were forgotten) leaves its record to repair,
    /// as a dead handle's. In a forked child that inherited the handle,
    /// nothing is touched: the record is the parent's.
    pub(crate) fn release(&mut self, table: &ClaimTable) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if lease.is_ours() {
            if let Some(rec) = table.get(self.index) {
                if self.held.get() == 0 {
                    self.settle(rec);
                    // Release, with the Acquire in `held_by_the_living`: a
                    // repairer that finds the record free also finds every
                    // position this handle finished finished (a consumer
                    // that adopted a value, released it and dropped its
                    // handle must not have the value adopted again).
                    let _ = rec.owner.compare_exchange(
                        self.id.raw(),
                        0,
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                } else {
                    lease::mark_dead(&rec.owner);
                }
            }
        }
        drop(lease);
    }
}

/// For loom models: the handle's process dies now, leaving its record
/// behind as a killed process would.
#[cfg(shmring_loom)]
impl Recorder {
    pub(crate) fn die(&mut self, table: &ClaimTable) {
        if let Some(rec) = self.record(table) {
            lease::mark_dead(&rec.owner);
        }
        self.lease = None;
    }
}

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

    /// The dead holder's pid (in its own namespace), for the log.
    pub(crate) fn holder_pid(&self) -> u32 {
        HolderId::from_raw(self.owner).map_or(0, HolderId::pid)
    }

    /// Every position it named is finished: free the record for new handles.
    pub(crate) fn free(self) {
        let _ =
            self.rec
                .owner
                .compare_exchange(self.owner, 0, Ordering::Relaxed, Ordering::Relaxed);
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

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
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
            let seg = Segment::create(&SegmentName::new(&name).unwrap(), len, &Default::default());
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
        dead_records(&f.seg, f.table()).for_each(DeadRecord::free);
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

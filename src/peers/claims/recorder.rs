//! A handle's own claim record: naming positions before taking them,
//! streams' counts, and letting the record go.

use std::cell::Cell;

use super::{ClaimRecord, ClaimTable, Side, CLAIM_RECORDS, STREAM_TAG};
use crate::error::{Error, Result};
use crate::platform::lease::{self, Lease};
use crate::platform::process::HolderId;
use crate::platform::segment::Segment;
use crate::platform::sync::Ordering;

/// A handle's own record, its lease, and a private copy of what it
/// holds: how many positions (guards not yet dropped), the first of them
/// and the last.
pub(crate) struct Recorder {
    pub(super) index: usize,
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

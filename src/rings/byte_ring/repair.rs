//! Repair of spans dead byte-ring producers left uncommitted (see the
//! module docs of `byte_ring`, "Dying peers"): padding over them.

use super::records::Records;
use crate::format::record::{Kind, ALIGN, HEADER_LEN};
use crate::peers::claims::{self, Liveness, RepairLock, Side};
use crate::platform::sync::Ordering;
use crate::wait::{self};

/// Whether records are claimed past the consumer's release point (with no
/// message ready, as when a wait came back empty): the consumer waits
/// behind an uncommitted record.
pub(super) fn stalled(rec: &Records) -> bool {
    let header = rec.header();
    let claimed = header
        .tail
        .load(Ordering::Relaxed)
        .wrapping_sub(header.head.load(Ordering::Relaxed));
    claimed > 0 && claimed <= rec.capacity()
}

/// Pad over uncommitted records whose producers died (see
/// [`ByteRing::recover`]): walk from the consumer's position over committed
/// records; at an uncommitted one, find the spans claim records name around
/// it. The producer that claimed it is among them (it named its span before
/// taking it, and names it until it commits), possibly with handles whose
/// claim of an overlapping span failed. Only if every one is dead is it
/// padded, up to the nearest end any of them names (the owner's end is no
/// nearer, so padding stays inside its span; what is left of the span is
/// padded at the next step). How many spans were repaired.
pub(super) fn recover(rec: &Records) -> u64 {
    let Some(_lock) = RepairLock::try_acquire(rec.ring().segment(), &rec.header().recovery) else {
        return 0;
    };
    repair(rec)
}

/// [`recover`]'s work, with the repair lock held.
pub(super) fn repair(rec: &Records) -> u64 {
    let header = rec.header();
    let recovery = &header.recovery;
    let seg = rec.ring().segment();
    let table = &header.producer_claims;
    let cap = rec.capacity();
    let mut repaired = 0;
    // Before any span is padded: a dead stream producer's count says
    // whether the message its record names was committed (the consumer
    // passed it, or it stands committed as a message; a span the dead
    // producer padded itself was never counted).
    for dead in claims::dead_records(seg, table) {
        dead.settle_stream(|first, _| {
            let passed = (header.head.load(Ordering::Relaxed).wrapping_sub(first) as i64) > 0;
            let mut hint = header.tail.load(Ordering::Relaxed);
            passed || matches!(rec.read(first, &mut hint), Ok(Some(r)) if r.kind == Kind::Message)
        });
    }
    // Acquire: a live producer that claimed below this tail is seen in its
    // record (its compare-exchange was Release, after it named its span),
    // and, through the chain of claims' compare-exchanges, so is every
    // claimant's read of the head: the consumer's reads of the space we
    // may pad come before.
    let tail = header.tail.load(Ordering::Acquire);
    let mut tail_hint = tail;
    // Relaxed: where the walk starts only bounds the work. An old head
    // starts it at records already read, which are committed, or were
    // rewritten a lap later, which the second look below tells apart.
    let mut pos = header.head.load(Ordering::Relaxed);
    let within = |pos: u64| (1..=cap).contains(&tail.wrapping_sub(pos));
    let mut steps = cap / ALIGN;
    // Each record's holder asked about once per call.
    let mut living = Liveness::new(seg, table);
    while within(pos) && pos.is_multiple_of(ALIGN) && steps > 0 {
        steps -= 1;
        match rec.read(pos, &mut tail_hint) {
            Ok(Some(r)) => pos = r.next,
            Ok(None) => {
                let spans = living.spans_around(pos);
                if spans.iter().any(|&(alive, _, _)| alive) {
                    break; // its producer may be among the living
                }
                // The shortest span that names it: the dead owner's span
                // covers `pos` and ends at or after that end, so padding up
                // to it stays inside the owner's, and the rest of the
                // owner's is padded on the next step. (Spans named but
                // never won, by handles that died before unnaming them,
                // may disagree with the owner's, but never cut it short.)
                let sane = |e: u64| e.is_multiple_of(ALIGN) && within(e.wrapping_sub(1));
                let Some(end) = spans
                    .iter()
                    .map(|&(_, _, e)| e)
                    .filter(|&e| sane(e))
                    .min_by_key(|&e| e.wrapping_sub(pos))
                else {
                    break; // no record names it: wait for its producer
                };
                // Look again, now that the records are read: still not
                // committed, and then the consumer not past it (so the
                // space is still this lap's, and no one but the dead
                // writes it). In that order: had a later lap's record been
                // committed here, the stamp's Acquire (in `read`) orders
                // its producer's read of a head past `pos` before our load
                // of the head, which so reads that head or a later one
                // (Relaxed suffices); read first, an old head would let us
                // pad over that record.
                if !matches!(rec.read(pos, &mut tail_hint), Ok(None)) {
                    break;
                }
                let unread = (pos.wrapping_sub(header.head.load(Ordering::Relaxed)) as i64) >= 0;
                if !unread {
                    break;
                }
                pad(rec, pos, end);
                repaired += 1;
                pos = end;
            }
            Err(_) => break, // the consumer reports it
        }
    }
    // Free dead records whose span the consumer can no longer be waiting
    // on: behind the walk, empty, or (a stream's) never won. A span that
    // starts at or past the write position was named and never taken
    // (taking it moves the write position past it), and its producer,
    // dead, never will; kept, a stream's record would refuse the stream's
    // next handle until another producer writes past it. (An anonymous
    // handle's is freed once someone does: new handles take any free
    // record.) The position is read again, after the lease found the
    // holder dead: it may have won the span after the walk's load, and
    // then died. Relaxed: that finding orders the dead's last
    // compare-exchange before the load.
    let at_or_past = |p: u64, q: u64| (p.wrapping_sub(q) as i64) >= 0;
    for dead in claims::dead_records(seg, table) {
        let (first, end) = dead.span();
        let empty = end.wrapping_sub(first) == 0 || end.wrapping_sub(first) > cap;
        let never_won = dead.is_stream()
            && at_or_past(first, tail)
            && at_or_past(first, header.tail.load(Ordering::Relaxed));
        if empty || never_won || at_or_past(pos, end) {
            dead.reclaim(seg, Side::Producer, &header.producer_stats.takeovers);
        }
    }
    if repaired > 0 {
        recovery.repaired.fetch_add(repaired, Ordering::Relaxed);
        wait::wake(&header.consumer_event);
        log::warn!(
            target: "shmring",
            "ring {:?}: padded over {repaired} spans that dead producers reserved and never \
             committed (nothing committed is lost)",
            seg.name().as_str()
        );
    }
    repaired
}

/// Publish padding over `first..end`, in records that never wrap: up to
/// the area's end, then on from 0.
pub(super) fn pad(rec: &Records, first: u64, end: u64) {
    let cap = rec.capacity();
    let mut pos = first;
    while pos != end {
        let chunk = end.wrapping_sub(pos).min(cap - rec.offset(pos));
        rec.publish(pos, Kind::Padding, chunk - HEADER_LEN);
        pos = pos.wrapping_add(chunk);
    }
}

//! Delivery accounting on the receiving side: each bridge that publishes
//! (a *source*) numbers its samples 0, 1, 2, ...; the receiver keeps, per
//! source, the next number it expects and which of the last 64 below it
//! it has seen, and classifies every arrival.
//!
//! - `next`: the expected one; delivered.
//! - above `next`: the numbers skipped are counted lost (for now: a late
//!   one that still arrives is then counted reordered and delivered, and
//!   the loss count is corrected), and this one is delivered.
//! - below `next`, inside the window and not seen: late (reordered);
//!   delivered.
//! - below `next` and seen, or older than the window: a duplicate (or
//!   too late to tell); dropped.
//!
//! So delivered + lost = sent for every source, once the last sample is
//! in, whatever the network did.

/// Samples a receiver can still place after later ones arrived.
pub const WINDOW: u64 = 64;

/// What one arrival was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next one expected.
    InOrder,
    /// Ahead of the next expected: this many before it are missing.
    Gap(u64),
    /// Behind, and not seen before: it was missing, counted lost, and now
    /// arrives; deliver it and take it off the lost count.
    Late,
    /// Seen already (or too old to tell): do not deliver it again.
    Duplicate,
}

/// One source's numbering as a receiver sees it.
///
/// ```
/// use shmring_bridge::seq::{Arrival, Tracker};
/// let mut t = Tracker::default();
/// assert_eq!(t.observe(0), Arrival::InOrder);
/// assert_eq!(t.observe(3), Arrival::Gap(2)); // 1 and 2 missing
/// assert_eq!(t.observe(1), Arrival::Late); // one of them after all
/// assert_eq!(t.observe(1), Arrival::Duplicate);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracker {
    /// The next number expected.
    next: u64,
    /// Bit `i` set: number `next - 1 - i` has arrived.
    seen: u64,
    started: bool,
}

impl Tracker {
    /// Classify sample `seq` and remember it.
    pub fn observe(&mut self, seq: u64) -> Arrival {
        if !self.started {
            // The first sample heard from this source: what came before it
            // was sent before this receiver listened (counted as a gap from
            // 0, so a receiver restarted mid-stream reports what it missed).
            self.started = true;
            self.next = seq.wrapping_add(1);
            self.seen = 1;
            return if seq == 0 {
                Arrival::InOrder
            } else {
                Arrival::Gap(seq)
            };
        }
        if seq >= self.next {
            let skipped = seq - self.next;
            // Bit i of the window is number `next - 1 - i`; moving `next`
            // up by `shift` moves every bit up by as much, and this sample
            // becomes bit 0.
            let shift = skipped + 1;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            } | 1;
            self.next = seq + 1;
            return if skipped == 0 {
                Arrival::InOrder
            } else {
                Arrival::Gap(skipped)
            };
        }
        let behind = self.next - 1 - seq;
        if behind >= WINDOW {
            return Arrival::Duplicate;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return Arrival::Duplicate;
        }
        self.seen |= bit;
        Arrival::Late
    }

    /// The source says its next number is `next` (a heartbeat): those not
    /// heard below it are lost (until one arrives late); how many that is.
    /// This is how losses at the end of a stream are counted.
    pub fn skip_to(&mut self, next: u64) -> u64 {
        if !self.started {
            self.started = true;
            self.next = next;
            return next;
        }
        if next <= self.next {
            return 0;
        }
        let skipped = next - self.next;
        self.seen = if skipped >= WINDOW {
            0
        } else {
            self.seen << skipped
        };
        self.next = next;
        skipped
    }

    /// The next number expected.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The state to keep across a restart: the next number expected, and
    /// which of the [`WINDOW`] before it arrived (bit `i`: `next - 1 - i`).
    pub fn parts(&self) -> (u64, u64) {
        (self.next, self.seen)
    }

    /// A tracker as [`parts`](Self::parts) left it.
    pub fn from_parts(next: u64, seen: u64) -> Tracker {
        Tracker {
            next,
            seen,
            started: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u64]) -> Vec<Arrival> {
        let mut t = Tracker::default();
        seqs.iter().map(|&s| t.observe(s)).collect()
    }

    #[test]
    fn in_order_gaps_late_and_duplicates() {
        use Arrival::*;
        assert_eq!(run(&[0, 1, 2]), [InOrder, InOrder, InOrder]);
        assert_eq!(
            run(&[0, 3, 1, 2, 2, 4]),
            [InOrder, Gap(2), Late, Late, Duplicate, InOrder]
        );
        assert_eq!(
            run(&[5, 6]),
            [Gap(5), InOrder],
            "a receiver that joined late"
        );
        assert_eq!(run(&[0, 0]), [InOrder, Duplicate]);
        assert_eq!(
            run(&[0, 100, 1]),
            [InOrder, Gap(99), Duplicate],
            "older than the window"
        );
        assert_eq!(
            run(&[0, 64, 1]),
            [InOrder, Gap(63), Late],
            "just inside the window"
        );
    }

    #[test]
    fn delivered_plus_lost_is_sent_whatever_the_order() {
        // A shuffled stream with duplicates and a hole: 0..200 sent, 17 and
        // 150..153 never arrive.
        let mut order: Vec<u64> = (0..200)
            .filter(|s| *s != 17 && !(150..153).contains(s))
            .collect();
        for i in (0..order.len()).step_by(7) {
            let j = (i + 5).min(order.len() - 1);
            order.swap(i, j);
        }
        order.extend([3, 40, 199]);
        let mut t = Tracker::default();
        let (mut delivered, mut lost) = (0u64, 0i64);
        for s in order {
            match t.observe(s) {
                Arrival::InOrder => delivered += 1,
                Arrival::Gap(n) => {
                    delivered += 1;
                    lost += n as i64;
                }
                Arrival::Late => {
                    delivered += 1;
                    lost -= 1;
                }
                Arrival::Duplicate => {}
            }
        }
        assert_eq!(t.next(), 200);
        assert_eq!(delivered as i64 + lost, 200);
        assert_eq!(lost, 4);
    }

    #[test]
    fn a_tracker_rebuilt_from_its_parts_goes_on_exactly() {
        let mut t = Tracker::default();
        for s in [0, 1, 4] {
            t.observe(s);
        }
        let (next, seen) = t.parts();
        let mut r = Tracker::from_parts(next, seen);
        assert_eq!(r.observe(2), Arrival::Late, "still missing");
        assert_eq!(r.observe(4), Arrival::Duplicate);
        assert_eq!(r.observe(5), Arrival::InOrder);
    }

    #[test]
    fn a_heartbeat_counts_the_lost_tail_and_a_late_one_still_counts() {
        let mut t = Tracker::default();
        t.observe(0);
        assert_eq!(t.skip_to(4), 3, "1, 2 and 3 never came");
        assert_eq!(t.skip_to(4), 0, "said twice, counted once");
        assert_eq!(t.skip_to(2), 0, "an old heartbeat");
        assert_eq!(t.observe(2), Arrival::Late);
        assert_eq!(t.observe(4), Arrival::InOrder);
        let mut fresh = Tracker::default();
        assert_eq!(fresh.skip_to(5), 5, "joined late: 0..5 missed");
        assert_eq!(fresh.observe(5), Arrival::InOrder);
    }
}

//! A slot: one element and the stamp that says which position's value it
//! holds.
//!
//! The writer of position `p` fills the value, then stores `full(p) = 4p + 1`
//! with Release; the reader of `p` checks for exactly that stamp with
//! Acquire, and then sees the value. Stamps start at `free(i) = 4i` for slot
//! `i`, and every position has its own stamps, so neither a fresh slot nor a
//! value from an earlier lap can pass for the current one. A position whose
//! writer died before publishing is stamped `skipped(p) = 4p + 3` by a
//! repairer (`peers/claims`), and readers pass over it.
//!
//! How a slot goes back to the writer is the ring's business: the SPSC
//! ring's consumer moves its own index (`rings/spsc`); the MPMC ring's consumer
//! stamps the slot `free(p + cap) = 4(p + cap)`, the stamp the writer of
//! `p + cap` waits for (`rings/mpmc`).

use crate::platform::sync::{fence, AtomicU64, Ordering, SeqValues, UnsafeCell};

/// The stamp of a slot that the writer of position `i` may fill; a fresh
/// slot `i` is created with it.
#[inline(always)]
pub(crate) const fn free_stamp(i: u64) -> u64 {
    i.wrapping_mul(4)
}

/// The stamp of a slot holding the committed value of `pos`.
#[inline(always)]
pub(crate) const fn full_stamp(pos: u64) -> u64 {
    pos.wrapping_mul(4) | 1
}

/// `full_stamp(pos + 1)`, given `full_stamp(pos)`.
#[inline(always)]
pub(crate) const fn full_stamp_after(stamp: u64) -> u64 {
    stamp.wrapping_add(4)
}

/// The stamp of a position whose writer died before publishing: there is
/// no value, and the reader of `pos` only passes the slot on.
#[inline(always)]
pub(crate) const fn skipped_stamp(pos: u64) -> u64 {
    pos.wrapping_mul(4) | 3
}

/// The stamp of a slot whose writer is writing `pos` into it (the
/// broadcast ring: a reader that finds it, before or after copying the
/// value, discards the copy).
#[inline(always)]
pub(crate) const fn busy_stamp(pos: u64) -> u64 {
    pos.wrapping_mul(4) | 2
}

/// The position a stamp is about.
#[inline(always)]
pub(crate) const fn stamp_pos(stamp: u64) -> u64 {
    stamp >> 2
}

/// The element type of a ring whose layout is known only at run time
/// (`rings/runtime.rs`): nothing, so that its `Slot` is the stamp alone;
/// the value's bytes follow it at the offset and within the stride that
/// `lifecycle/memory.rs` computes from the layout.
#[derive(Clone, Copy, Debug, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
pub struct Runtime;

/// One element of a fixed-size ring, laid out in shared memory.
#[repr(C)]
pub struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<T>,
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

// SAFETY: a slot is shared between threads (and processes); its value is only
// reached by whichever side the stamp protocol hands it to.
unsafe impl<T: Send> Sync for Slot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Slot<T> {}

impl<T> Slot<T> {
    /// Slot `pos` of a fresh ring.
    pub(crate) fn new(pos: u64, value: T) -> Self {
        Slot {
            stamp: AtomicU64::new(free_stamp(pos)),
            value: UnsafeCell::new(value),
        }
    }

    /// The current stamp. Acquire: when it says the slot holds our value,
    /// the writer's value is visible.
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::Acquire)
    }

    /// Whether this slot holds the committed value of `pos`.
    #[inline(always)]
    pub(crate) fn is_full_for(&self, pos: u64) -> bool {
        self.stamp() == full_stamp(pos)
    }

    /// Hand the value of `pos` to its reader (Release: the value is written first).
    #[inline(always)]
    pub(crate) fn publish(&self, pos: u64) {
        self.stamp.store(full_stamp(pos), Ordering::Release);
    }

    /// Publish `pos`, which we own, as having no value (Release: our
    /// writes to the slot, the zeroing at claim, happen before the next
    /// lap's writer's).
    pub(crate) fn publish_skip(&self, pos: u64) {
        self.stamp.store(skipped_stamp(pos), Ordering::Release);
    }

    /// Mark `pos`, claimed by a writer that died, as having no value, if it
    /// is still unpublished. Relaxed: nothing is handed over with it.
    pub(crate) fn skip(&self, pos: u64) -> bool {
        self.stamp
            .compare_exchange(
                free_stamp(pos),
                skipped_stamp(pos),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Hand the slot to the writer of `pos + cap` (Release: we are done
    /// reading its value).
    #[inline(always)]
    pub(crate) fn release(&self, pos: u64, cap: u64) {
        self.stamp
            .store(free_stamp(pos.wrapping_add(cap)), Ordering::Release);
    }

    /// Store a value.
    ///
    /// # Safety
    /// The caller owns the slot: the reader has released it and it is not
    /// yet published.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: exclusive by the caller's contract; the pointer is in bounds.
        self.value.with_mut(|p| unsafe { p.write(value) })
    }

    /// The current stamp, Relaxed: a seqlock reader's second look, after
    /// its Acquire fence.
    #[inline(always)]
    pub(crate) fn stamp_relaxed(&self) -> u64 {
        self.stamp.load(Ordering::Relaxed)
    }

    /// Write the value of `pos` for seqlock readers (who may be copying
    /// the value it overwrites): stamp the slot busy, then a Release
    /// fence, so that a reader whose copy saw any byte of the new value
    /// sees the busy stamp (or a later one) on its second look; then the
    /// value; then `full(pos)` (Release) as [`publish`](Self::publish).
    ///
    /// # Safety
    /// The caller is the slot's one writer (see `rings/broadcast`).
    #[inline(always)]
    pub(crate) unsafe fn write_seq(&self, pos: u64, value: T, values: &SeqValues, index: u64)
    where
        T: bytemuck::Pod,
    {
        self.stamp.store(busy_stamp(pos), Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: the caller is the one writer.
        unsafe { values.write(index, &self.value, value) };
        self.publish(pos);
    }

    /// Mark the slot as being written with `pos` (a broadcast write
    /// chunk, which marks each slot it lends, then issues the one Release
    /// fence [`write_seq`](Self::write_seq) issues per value, before any
    /// value is written). Relaxed: the fence orders it.
    #[inline(always)]
    pub(crate) fn mark_busy(&self, pos: u64) {
        self.stamp.store(busy_stamp(pos), Ordering::Relaxed);
    }

    /// Write the value of a slot marked busy (and fenced), for seqlock
    /// readers.
    ///
    /// # Safety
    /// As for [`write_seq`](Self::write_seq).
    #[inline(always)]
    pub(crate) unsafe fn write_marked(&self, value: T, values: &SeqValues, index: u64)
    where
        T: bytemuck::Pod,
    {
        // SAFETY: the caller is the one writer.
        unsafe { values.write(index, &self.value, value) };
    }

    /// A copy of the value for a seqlock reader, who checked the stamp
    /// (Acquire) before and checks it again after an Acquire fence.
    #[inline(always)]
    pub(crate) fn read_seq(&self, values: &SeqValues, index: u64) -> T
    where
        T: bytemuck::Pod,
    {
        // SAFETY: the cell is this slot's, in the mapping; the copy may be
        // torn and the caller's second look at the stamp says so.
        unsafe { values.read(index, &self.value) }
    }

    /// Overwrite the value with zeros (a ring that zeroes what its
    /// readers release).
    ///
    /// # Safety
    /// As for [`write`](Self::write): the caller owns the slot, here the
    /// reader that has not yet released it.
    #[inline]
    pub(crate) unsafe fn zero(&self) {
        // SAFETY: exclusive by the caller's contract; zeros are written
        // as bytes, so `T` need not be valid for them (every `Pod` is).
        self.value.with_mut(|p| unsafe { p.write_bytes(0, 1) })
    }

    /// Copy the value out. A volatile copy: memory a hostile peer may be
    /// writing is read once, as it is, and never assumed unchanged by the
    /// compiler (the copying calls are what the crate offers for peers it
    /// does not trust).
    ///
    /// # Safety
    /// The caller saw `is_full_for(pos)` and has not released it; `T` is valid
    /// for any bit pattern, so a hostile writer can change what it reads but
    /// not make it invalid.
    #[inline(always)]
    pub(crate) unsafe fn read(&self) -> T
    where
        T: Copy,
    {
        // SAFETY: by the caller's contract.
        self.value.with(|p| unsafe { p.read_volatile() })
    }

    /// Run `copy` as the value's writer: a ring of a run-time layout
    /// copies its value's bytes after the stamp, outside this cell, and
    /// claims the cell around the copy so that loom checks its accesses as
    /// it checks a typed value's (a no-op otherwise).
    ///
    /// # Safety
    /// As for [`write`](Self::write).
    #[inline(always)]
    pub(crate) unsafe fn writing<R>(&self, copy: impl FnOnce() -> R) -> R {
        self.value.with_mut(|_| copy())
    }

    /// Run `copy` as the value's reader (see [`writing`](Self::writing)).
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[inline(always)]
    pub(crate) unsafe fn reading<R>(&self, copy: impl FnOnce() -> R) -> R {
        self.value.with(|_| copy())
    }

    /// The value in place, for zero-copy writes.
    ///
    /// # Safety
    /// As for [`write`](Self::write), for as long as the reference lives.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn value_mut(&self) -> &mut T {
        // SAFETY: exclusive by the caller's contract.
        self.value.with_mut(|p| unsafe { &mut *p })
    }

    /// The value in place, for zero-copy reads.
    ///
    /// # Safety
    /// As for [`read`](Self::read), for as long as the reference lives.
    #[inline(always)]
    pub(crate) unsafe fn value_ref(&self) -> &T {
        // SAFETY: by the caller's contract.
        self.value.with(|p| unsafe { &*p })
    }
}

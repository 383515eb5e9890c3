//! A slot: one element and the stamp that says whose turn it is.
//!
//! A slot for position `p` (slot index `p & mask`) goes through three stamps:
//!
//! ```text
//!   free(p) = 2p      the writer of position p may fill it
//!   full(p) = 2p + 1  position p is committed; its reader may read it
//!   free(p + cap)     position p was read; the writer of p + cap may fill it
//! ```
//!
//! Free stamps are even and full stamps odd, so the two can never be
//! confused, even at capacity 1 where `p + cap` is the very next position.
//! A side learns that its slot is ready from the slot's own cache line, not
//! from the other side's index: a hand-off costs one line transfer each way,
//! the same as a bare shared-memory ping-pong.
//!
//! Synchronization is entirely Release (publish/release) paired with Acquire
//! (the readiness check): the writer's value is visible to the reader that
//! sees `full(p)`, and the reader is done with the value before the next
//! writer sees `free(p + cap)`.

use crate::sync::{AtomicU64, Ordering, UnsafeCell};

/// The stamp of a slot that the writer of `pos` may fill.
#[inline(always)]
pub(crate) const fn free_stamp(pos: u64) -> u64 {
    pos.wrapping_mul(2)
}

/// The stamp of a slot holding the committed value of `pos`.
#[inline(always)]
pub(crate) const fn full_stamp(pos: u64) -> u64 {
    pos.wrapping_mul(2) | 1
}

/// One element of a fixed-size ring, laid out in shared memory.
#[repr(C)]
pub(crate) struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: a slot is shared between threads (and processes); its value is only
// reached by whichever side the stamp protocol hands it to.
unsafe impl<T: Send> Sync for Slot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Slot<T> {}

impl<T> Slot<T> {
    /// A slot ready for the writer of position `pos`.
    pub(crate) fn new(pos: u64, value: T) -> Self {
        Slot {
            stamp: AtomicU64::new(free_stamp(pos)),
            value: UnsafeCell::new(value),
        }
    }

    /// The current stamp. Acquire: when it says the slot is ours, everything
    /// the other side did to the value before handing it over is visible.
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::Acquire)
    }

    /// Whether the writer of `pos` may fill this slot.
    #[inline(always)]
    pub(crate) fn is_free_for(&self, pos: u64) -> bool {
        self.stamp() == free_stamp(pos)
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

    /// Hand the slot to the writer of `pos + cap` (Release: we are done reading).
    #[inline(always)]
    pub(crate) fn release(&self, pos: u64, cap: u64) {
        self.stamp
            .store(free_stamp(pos.wrapping_add(cap)), Ordering::Release);
    }

    /// Store a value.
    ///
    /// # Safety
    /// The caller owns the slot: it saw `is_free_for(pos)` and has not published.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: exclusive by the caller's contract; the pointer is in bounds.
        self.value.with_mut(|p| unsafe { p.write(value) })
    }

    /// Load the value.
    ///
    /// # Safety
    /// The caller saw `is_full_for(pos)` and has not released; `T` is valid
    /// for any bit pattern, so a hostile writer can change what it reads but
    /// not make it invalid.
    #[inline(always)]
    pub(crate) unsafe fn read(&self) -> T
    where
        T: Copy,
    {
        // SAFETY: by the caller's contract.
        self.value.with(|p| unsafe { p.read() })
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

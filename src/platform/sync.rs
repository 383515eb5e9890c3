//! The one place that decides which atomics and cells the rings use.
//!
//! Under `cfg(shmring_loom)` (a name of our own, so that an application
//! model-checking its own code with `--cfg loom` still gets the real rings)
//! every atomic, cell and spin hint comes from loom, so the
//! model tests in `loom-tests/` check the code that ships, not a copy of it
//! (the same trick as tokio's `src/loom/`). The only other users of
//! `std::sync::atomic` are process-local flags and counters that no model
//! involves (`process.rs`, `futex.rs`'s call counters, `barrier.rs`'s
//! registration mode, unit tests' name counters) and the header's
//! statistics ([`Counter`]).
//!
//! The rule: what the model replaces is replaced in `platform/` only (this
//! file, and the kernel's part in `futex.rs`, `barrier.rs`, `lease.rs`,
//! `platform/segment/`, `process.rs`), so the code above runs the same
//! instructions under the model as in production. Above `platform/`,
//! `cfg(shmring_loom)` only adds instrumentation the models call and
//! production never compiles: hooks that kill a handle at a chosen point
//! (`die`, `die_adopting`, `die_naming`), a header built in ordinary memory
//! (`header::model`, and its construction in `lifecycle/memory.rs`), the header's
//! size assertions, which hold for real atomics only, and leaving out the
//! attach table (it names processes for operators; no protocol reads it,
//! and a model with it only has more states). `MODEL` sizes what a model
//! keeps small.

#[cfg(not(shmring_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(shmring_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A statistic in shared memory (`stat` and `metrics` read it): a plain
/// atomic even under the model, because it orders nothing and no protocol
/// reads it, so the models need not explore its values.
pub(crate) type Counter = std::sync::atomic::AtomicU64;

/// Count one event (Relaxed: see [`Counter`]).
#[inline(always)]
pub(crate) fn bump(counter: &Counter) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Relax the CPU inside a spin loop (a `pause` on x86; a loom yield point
/// under the model checker, so spinning threads let others make progress).
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(shmring_loom))]
    core::hint::spin_loop();
    #[cfg(shmring_loom)]
    loom::thread::yield_now();
}

/// Whether this is the model build: for sizes that a model keeps small
/// (fewer claim records), never for behaviour.
pub(crate) const MODEL: bool = cfg!(shmring_loom);

/// A wait slice of `d` for real; endless under the model, which has no
/// clock (its threads never time out, so a slice never ends; models that
/// need what a slice's end would do call it themselves).
pub(crate) const fn time_slice(d: std::time::Duration) -> std::time::Duration {
    if cfg!(shmring_loom) {
        std::time::Duration::MAX
    } else {
        d
    }
}

/// Wait a little before polling again: sleep `d` for real; a yield under
/// the model, whose threads never sleep.
#[inline]
pub(crate) fn pause(d: std::time::Duration) {
    #[cfg(not(shmring_loom))]
    std::thread::sleep(d);
    #[cfg(shmring_loom)]
    {
        let _ = d;
        loom::thread::yield_now();
    }
}

/// A point where the model may switch threads, where it otherwise would
/// not (nothing for real). Loom preempts a thread only at its atomics and
/// cells; a plain store followed by a notification can hide a
/// reordering that needs a switch in between to show.
#[inline(always)]
pub(crate) fn preemption_point() {
    #[cfg(shmring_loom)]
    loom::thread::yield_now();
}

/// Give the rest of this time slice to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(shmring_loom))]
    std::thread::yield_now();
    #[cfg(shmring_loom)]
    loom::thread::yield_now();
}

/// An `UnsafeCell` with loom's closure API, so that under the model checker
/// every read and write of a slot's value is tracked and a missing
/// happens-before edge is reported as a data race.
#[cfg(not(shmring_loom))]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(shmring_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(shmring_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Atomic words overlaid on raw shared memory: the first two u64 words of
/// every 16-byte unit of an area (a byte ring's record headers), the other
/// bytes being payload. For real the words are the memory itself; loom
/// cannot place its atomics in raw bytes, so under the model they live
/// beside the area, and each unit's payload is a tracked cell, so that
/// loom reports a payload access that no ordering protects. Every handle
/// of the model to one area (one opened by name, as the services layer
/// does) shares them, as handles share the memory for real.
pub(crate) struct UnitWords {
    #[cfg(not(shmring_loom))]
    base: *mut u8,
    #[cfg(shmring_loom)]
    units: std::sync::Arc<ModelUnits>,
}

/// The model's words and payload cells of one area.
#[cfg(shmring_loom)]
pub(crate) struct ModelUnits {
    words: Box<[(AtomicU64, AtomicU64)]>,
    cells: Box<[UnsafeCell<()>]>,
}

// SAFETY: reached only through the rings' protocol, as the area itself
// (loom tracks every access to the cells).
#[cfg(shmring_loom)]
unsafe impl Send for ModelUnits {}
// SAFETY: as above.
#[cfg(shmring_loom)]
unsafe impl Sync for ModelUnits {}

/// The model's units of the area at `base`, made by its first handle and
/// shared by the others while any lives. Not what loom explores: a
/// model's threads run one at a time, so this lock is never contended.
#[cfg(shmring_loom)]
fn model_units(base: *mut u8, units: u64) -> std::sync::Arc<ModelUnits> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    static AREAS: OnceLock<Mutex<HashMap<usize, Weak<ModelUnits>>>> = OnceLock::new();
    let mut areas = AREAS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // An area freed (its last handle gone) may be allocated again at the
    // same address: its entry is dead by then.
    areas.retain(|_, units| units.strong_count() > 0);
    if let Some(shared) = areas.get(&(base as usize)).and_then(Weak::upgrade) {
        return shared;
    }
    let fresh = Arc::new(ModelUnits {
        words: (0..units)
            .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
            .collect(),
        cells: (0..units).map(|_| UnsafeCell::new(())).collect(),
    });
    areas.insert(base as usize, Arc::downgrade(&fresh));
    fresh
}

/// The unit the words repeat at.
#[cfg(shmring_loom)]
const UNIT: u64 = 16;

impl UnitWords {
    /// The words of the `units` units of the area at `base`.
    pub(crate) fn new(base: *mut u8, units: u64) -> Self {
        #[cfg(not(shmring_loom))]
        {
            let _ = units;
            UnitWords { base }
        }
        #[cfg(shmring_loom)]
        UnitWords {
            units: model_units(base, units),
        }
    }

    /// The two words of the unit at byte offset `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 16 inside the area `new` was given, which
    /// outlives the borrow; every access to these words is atomic.
    #[inline(always)]
    pub(crate) unsafe fn words(&self, off: u64) -> (&AtomicU64, &AtomicU64) {
        #[cfg(not(shmring_loom))]
        // SAFETY: in bounds and 16-byte aligned by the caller's contract,
        // so both words are in bounds and aligned; atomics are valid for
        // any bits, and every access to them is atomic.
        unsafe {
            let word = self.base.add(off as usize).cast::<AtomicU64>();
            (&*word, &*word.add(1))
        }
        #[cfg(shmring_loom)]
        {
            let (a, b) = &self.units.words[(off / UNIT) as usize];
            (a, b)
        }
    }

    /// The model's record of a payload access of `len` bytes after the
    /// unit at `off` (nothing for real).
    #[inline(always)]
    pub(crate) fn touch(&self, off: u64, len: u64, write: bool) {
        #[cfg(not(shmring_loom))]
        let _ = (off, len, write);
        #[cfg(shmring_loom)]
        {
            let first = (off / UNIT + 1) as usize;
            for cell in &self.units.cells[first..first + len.div_ceil(UNIT) as usize] {
                if write {
                    cell.with_mut(|_| ());
                } else {
                    cell.with(|_| ());
                }
            }
        }
    }
}

/// Where a broadcast ring's values live as seen by its seqlock readers
/// (`rings/broadcast`): a reader copies a value the producer may be
/// overwriting and throws the copy away if the slot's stamp moved. For
/// real the values are the slots themselves, copied with volatile
/// accesses (any bits are a valid `Pod`; a torn copy is discarded).
/// Loom would report that race on a tracked cell, so under the model the
/// values (of at most 8 bytes) live beside the slots, one atomic word per
/// slot, and the stamps alone must tell a torn copy from a good one.
pub(crate) struct SeqValues {
    #[cfg(shmring_loom)]
    words: Box<[AtomicU64]>,
}

impl SeqValues {
    /// The values of `slots` slots.
    pub(crate) fn new(slots: u64) -> Self {
        #[cfg(not(shmring_loom))]
        {
            let _ = slots;
            SeqValues {}
        }
        #[cfg(shmring_loom)]
        SeqValues {
            words: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Write `value` as slot `index`'s, through `cell`.
    ///
    /// # Safety
    /// The caller is the slot's one writer (the producer, which marked it
    /// busy first), and `cell` lies in the mapping.
    #[inline(always)]
    pub(crate) unsafe fn write<T: bytemuck::Pod>(
        &self,
        index: u64,
        cell: &UnsafeCell<T>,
        value: T,
    ) {
        #[cfg(not(shmring_loom))]
        {
            let _ = index;
            // SAFETY: in the mapping by the caller's contract; readers copy
            // it only with volatile reads and check the stamp after.
            cell.with_mut(|p| unsafe { p.write_volatile(value) });
        }
        #[cfg(shmring_loom)]
        {
            let _ = cell;
            let mut word = 0u64;
            bytemuck::bytes_of_mut(&mut word)[..size_of::<T>()]
                .copy_from_slice(bytemuck::bytes_of(&value));
            self.words[index as usize].store(word, Ordering::Relaxed);
        }
    }

    /// Under the model, slot `index`'s value as `bytes` (a run-time
    /// ring's, of at most 8 bytes): what [`write`](Self::write) stores.
    #[cfg(shmring_loom)]
    pub(crate) fn write_bytes(&self, index: u64, bytes: &[u8]) {
        let mut word = 0u64;
        bytemuck::bytes_of_mut(&mut word)[..bytes.len()].copy_from_slice(bytes);
        self.words[index as usize].store(word, Ordering::Relaxed);
    }

    /// Under the model, copy slot `index`'s value into `out` (possibly
    /// torn, as [`read`](Self::read)).
    #[cfg(shmring_loom)]
    pub(crate) fn read_bytes(&self, index: u64, out: &mut [u8]) {
        let word = self.words[index as usize].load(Ordering::Relaxed);
        out.copy_from_slice(&bytemuck::bytes_of(&word)[..out.len()]);
    }

    /// Copy slot `index`'s value out of `cell`: possibly torn, if the
    /// producer is writing it; the caller checks the stamp after.
    ///
    /// # Safety
    /// `cell` lies in the mapping.
    #[inline(always)]
    pub(crate) unsafe fn read<T: bytemuck::Pod>(&self, index: u64, cell: &UnsafeCell<T>) -> T {
        #[cfg(not(shmring_loom))]
        {
            let _ = index;
            // SAFETY: in the mapping by the caller's contract; `T` is valid
            // for any bits, so a copy torn by a concurrent write is still a
            // `T`, and the caller discards it.
            cell.with(|p| unsafe { p.read_volatile() })
        }
        #[cfg(shmring_loom)]
        {
            let _ = cell;
            let word = self.words[index as usize].load(Ordering::Relaxed);
            bytemuck::pod_read_unaligned(&bytemuck::bytes_of(&word)[..size_of::<T>()])
        }
    }
}

//! A ring's memory: a segment holding a validated header followed by an
//! array of slots. Every ring kind builds on this; it is the one place that
//! turns the segment's raw bytes into typed references.
//!
//! A ring of a layout known only at run time (`rings/runtime.rs`) has
//! slots of `Slot<Runtime>`, the stamp alone, a stride apart that the
//! layout sets: the stride and the value's offset are the ones a
//! `#[repr(C)]` `Slot<T>` has for a `T` of that layout, so the two rings
//! have one format. Its values are reached as bytes, from the slots' base
//! (not through a slot reference, which covers the stamp only).

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytemuck::Pod;

use crate::error::{Error, RecvError, Result, TimedOut};

use crate::format::header::{offsets, Header, HeaderInfo, MAGIC, VERSION, ZERO_AFTER_USE};
use crate::format::layout::SegmentLayout;
use crate::format::legacy;
use crate::format::slot::{Runtime, Slot};
use crate::kind::{RingKind, Role, Schema, TypeLayout};
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::peers::role::RoleClaim;
use crate::platform::name::SegmentName;
use crate::platform::segment::{Look, Owner, Segment, Verdict};
use crate::platform::sync::{bump, SeqValues};
use crate::platform::watch::NameWatch;

/// A mapped, validated ring segment with slots of type `S`. (`pub` only so
/// that a ring kind can name it in `lifecycle::sealed::Kind`: its module is
/// private and every method crate-private, so no user can name or use it.)
pub struct RingMemory<S> {
    segment: Segment,
    /// The header, at the mapping's start. Kept here rather than asked of
    /// the segment on every call: through the fork-aware mapping that was
    /// an out-of-line call per `header()`, 8 of an SPSC value's 67
    /// instructions (callgrind, push then pop).
    header: NonNull<Header>,
    slots: NonNull<S>,
    info: HeaderInfo,
    mask: u64,
    /// Our entry in the header's table of attached processes.
    attached: Option<crate::peers::attach::Entry>,
    /// Whether this mapping created the segment (rather than opened it).
    created: bool,
    /// Bytes from one slot to the next: `size_of::<S>()`, except for a
    /// ring whose element layout is known only at run time, whose `S` is
    /// the stamp alone (see [`slot`](Self::slot)).
    stride: usize,
    _slots: PhantomData<S>,
}

// SAFETY: the memory is reached only through atomics and through slots whose
// own Sync impl states when sharing them is sound.
unsafe impl<S: Sync> Send for RingMemory<S> {}
// SAFETY: as above.
unsafe impl<S: Sync> Sync for RingMemory<S> {}

impl<S> RingMemory<S> {
    /// Create the segment, write every slot with `init(index)`, then publish
    /// the header.
    pub(crate) fn create(
        name: &str,
        kind: RingKind,
        elem: TypeLayout,
        capacity: u64,
        opts: &CreateOptions,
        init: impl Fn(u64) -> S,
    ) -> Result<Self> {
        Self::create_shaped(name, kind, elem, capacity, opts, Self::TYPED, |mem, i| {
            // SAFETY: `i < capacity`, so the slot lies inside the segment;
            // no one else may touch slots before the header is published.
            unsafe { mem.slot_ptr(i as usize).write(init(i)) }
        })
    }

    /// The slot size and alignment of a ring of `S`.
    const TYPED: (usize, usize) = (size_of::<S>(), align_of::<S>());

    /// [`create`](Self::create) with slots of `shape` (size, alignment),
    /// each written by `init(memory, index)`.
    fn create_shaped(
        name: &str,
        kind: RingKind,
        elem: TypeLayout,
        capacity: u64,
        opts: &CreateOptions,
        shape: (usize, usize),
        init: impl Fn(&Self, u64),
    ) -> Result<Self> {
        let name = SegmentName::new(name)?;
        crate::platform::barrier::init();
        let layout = SegmentLayout::with_table(capacity, shape.0, shape.1, kind.table_len())?;
        let segment = Segment::create(
            &name,
            layout.total_len,
            opts.mode,
            opts.group,
            opts.replace_stale,
        )?;
        let info = HeaderInfo {
            kind,
            elem,
            layout,
            creator_pid: std::process::id(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            features: if opts.zero_after_use {
                ZERO_AFTER_USE
            } else {
                0
            },
        };
        #[cfg(shmring_loom)]
        // SAFETY: the block is fresh, page-aligned and large enough; loom's
        // atomics must be constructed, not found zeroed.
        unsafe {
            segment
                .as_ptr()
                .cast::<Header>()
                .write(Header::new_zeroed())
        };
        let mut mem = Self::from_segment(segment, info);
        mem.created = true;
        for i in 0..layout.capacity {
            init(&mem, i);
        }
        // Attached before READY: whoever sees the ring ready sees its
        // creator among its users, so it never looks stale.
        mem.attach();
        if opts.persist {
            mem.header().set_persistent();
        }
        mem.header().publish(&info);
        // Only now does the segment get its name: no one ever opens it
        // half-initialized.
        mem.segment.link(|name| {
            if opts.replace_stale {
                return remove_if_stale_any(&SegmentName::new(name)?);
            }
            Ok(false)
        })?;
        Ok(mem)
    }

    /// Open an existing segment and validate its header against what the
    /// caller expects (and what `check` asks of it, such as a capacity),
    /// then join it as a user. An opener whose checks fail never joins: it is not a user,
    /// so no leaving user keeps the name for it, and it removes nothing.
    /// The open and every wait in it end within `opts.init_timeout`.
    pub(crate) fn open(
        name: &str,
        kind: RingKind,
        elem: TypeLayout,
        opts: &OpenOptions,
        check: impl Fn(&HeaderInfo) -> Result<()>,
    ) -> Result<Self> {
        Self::open_shaped(name, kind, elem, opts, Self::TYPED, check)
    }

    /// [`open`](Self::open) a ring whose slots have `shape` (size,
    /// alignment).
    fn open_shaped(
        name: &str,
        kind: RingKind,
        elem: TypeLayout,
        opts: &OpenOptions,
        shape: (usize, usize),
        check: impl Fn(&HeaderInfo) -> Result<()>,
    ) -> Result<Self> {
        let name = SegmentName::new(name)?;
        crate::platform::barrier::init();
        let deadline = Instant::now() + opts.init_timeout;
        for _ in 0..RACE_ATTEMPTS {
            let mut segment = Segment::open(&name, size_of::<Header>() as u64, opts.owner())?;
            let header = header_of(&segment);
            header.wait_ready(
                name.as_str(),
                deadline.saturating_duration_since(Instant::now()),
            )?;
            let info = header.validate(
                name.as_str(),
                kind,
                elem,
                shape.0,
                shape.1,
                segment.len() as u64,
            )?;
            check(&info)?;
            // The name went between the open and the join (its last user
            // left, or a remover came): whatever it names now is another
            // ring, opened afresh.
            if segment.join(deadline)? {
                let mut mem = Self::from_segment(segment, info);
                mem.attach();
                return Ok(mem);
            }
        }
        Err(Error::NotFound {
            name: name.as_str().to_owned(),
        })
    }

    fn attach(&mut self) {
        // Under loom every handle is one process; the table only adds states.
        #[cfg(not(shmring_loom))]
        {
            self.attached = crate::peers::attach::register(&self.segment, &self.header().attached);
        }
    }

    fn from_segment(segment: Segment, info: HeaderInfo) -> Self {
        // SAFETY: the layout (computed at create, or validated against the
        // file's size at open) puts `capacity` slots at `data_offset`, inside
        // the mapping and aligned for `S`.
        let slots = unsafe {
            NonNull::new_unchecked(
                segment
                    .as_ptr()
                    .add(info.layout.data_offset as usize)
                    .cast::<S>(),
            )
        };
        // SAFETY: a mapping's address is never null.
        let header = unsafe { NonNull::new_unchecked(segment.as_ptr().cast::<Header>()) };
        RingMemory {
            segment,
            header,
            slots,
            stride: info.layout.slot_size as usize,
            info,
            mask: info.layout.capacity - 1,
            attached: None,
            created: false,
            _slots: PhantomData,
        }
    }

    /// The header.
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the segment holds a header at offset 0 (checked at create
        // and open) for as long as `self` keeps it mapped, and a mapping
        // never moves.
        unsafe { self.header.as_ref() }
    }

    /// The slot of position `pos`. Masking makes any `pos`, even one read
    /// from a hostile peer, land inside the slot array.
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> &S {
        // SAFETY: `pos & mask < capacity`, and the slots were written at
        // create (or by the creator before it published the header).
        unsafe { &*self.slot_ptr((pos & self.mask) as usize) }
    }

    /// Slot `i` (`i < capacity`). A ring of a run-time layout has a stamp
    /// alone for `S`, and its own stride; every other ring's stride is
    /// `S`'s size, known when compiled (the test below is constant, so
    /// their address is the plain one).
    #[inline(always)]
    fn slot_ptr(&self, i: usize) -> *mut S {
        if size_of::<S>() == STAMP_ONLY {
            // SAFETY: `i < capacity` slots of `stride` bytes lie in the
            // mapping from `slots` (the layout was computed, or validated
            // against the file's length, for this stride).
            unsafe {
                self.slots
                    .as_ptr()
                    .cast::<u8>()
                    .add(i * self.stride)
                    .cast::<S>()
            }
        } else {
            // SAFETY: as above, with `stride == size_of::<S>()`.
            unsafe { self.slots.as_ptr().add(i) }
        }
    }

    /// The slots of positions `pos .. pos + n`, as the run up to the end of
    /// the array and the run wrapped to its start (empty unless the range
    /// wraps). `n` is capped at the capacity. A chunk walks these instead
    /// of calling `slot` per position, which re-derives base and mask
    /// through the handle every time because the stamp operations between
    /// calls are atomic (callgrind: 13 loads per value read in chunks of
    /// 64, down to 3).
    #[inline(always)]
    pub(crate) fn run(&self, pos: u64, n: usize) -> (&[S], &[S]) {
        // Slots are an array of `S` only where the stride is its size.
        assert!(size_of::<S>() != STAMP_ONLY || self.stride == STAMP_ONLY);
        let cap = self.capacity() as usize;
        let start = (pos & self.mask) as usize;
        let n = n.min(cap);
        let first = n.min(cap - start);
        // SAFETY: `start + first <= cap` and `n - first <= start`, so both
        // runs lie inside the `cap` slots written at create (or by the
        // creator before it published the header), mapped while `self` is.
        unsafe {
            (
                std::slice::from_raw_parts(self.slots.as_ptr().add(start), first),
                std::slice::from_raw_parts(self.slots.as_ptr(), n - first),
            )
        }
    }

    /// The kind's table between the header and the slots, as an `X`
    /// (see `RingKind::table_len`).
    ///
    /// # Panics
    /// If the layout keeps less room than an `X` there (a kind asking for
    /// a table it did not reserve).
    /// (From the cached header pointer: asking the segment for its
    /// address and length, out of line, was an eighth of a broadcast
    /// producer's time in perf.)
    #[cfg(not(shmring_loom))]
    #[inline(always)]
    pub(crate) fn table<X>(&self) -> &X {
        assert!(
            self.info.layout.data_offset >= (size_of::<Header>() + size_of::<X>()) as u64
                && size_of::<Header>().is_multiple_of(align_of::<X>()),
            "no room reserved for the table"
        );
        // SAFETY: the layout keeps room for an `X` between the header and
        // the slots (asserted), which the mapping holds (the layout was
        // validated against the segment's length at create or open); it is
        // aligned (asserted: the header's size is a multiple of `X`'s
        // alignment); it lives as long as `self`; tables are made of
        // atomics, valid for any bits a peer writes.
        unsafe { &*self.header.as_ptr().add(1).cast::<X>() }
    }

    /// The first slot, for rings that address their area by bytes.
    #[inline(always)]
    pub(crate) fn base(&self) -> *mut S {
        self.slots.as_ptr()
    }

    /// Number of slots.
    #[inline(always)]
    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    pub(crate) fn info(&self) -> &HeaderInfo {
        &self.info
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Count a call of `side` that found the ring full (producer) or had
    /// to wait on an empty one (consumer); see `SideStats`.
    #[cold]
    #[inline(never)]
    pub(crate) fn count_blocked(&self, side: Role) {
        bump(&self.header().stats(side).blocked);
    }

    /// `Stalled` for a consumer's call `op` behind `position`, counted.
    #[cold]
    pub(crate) fn stalled(&self, op: &'static str, position: u64) -> RecvError {
        bump(&self.header().consumer_stats.timeouts);
        RecvError::Stalled {
            name: self.segment.name().as_str().to_owned(),
            op,
            position,
        }
    }

    /// Take `role` (its word in the header) for a new handle; a dead
    /// holder's is taken over, counted and logged.
    pub(crate) fn claim_role(&self, role: Role) -> Result<RoleClaim> {
        let header = self.header();
        let word = match role {
            Role::Producer => &header.producer_role,
            Role::Consumer => &header.consumer_role,
        };
        let claim = crate::peers::role::claim(&self.segment, word, role)?;
        if let Some(dead) = claim.replaced() {
            bump(&header.stats(role).takeovers);
            log::info!(
                target: "shmring",
                "ring {:?}: took over the {role} role from process {} (its lock was free: it died \
                 or dropped the handle without releasing)",
                self.segment.name().as_str(),
                dead.pid()
            );
        }
        Ok(claim)
    }

    /// Whether readers zero what they release (the ring's
    /// `ZERO_AFTER_USE` feature, read once at create or open).
    #[inline(always)]
    pub(crate) fn zeroes_after_use(&self) -> bool {
        self.info.zero_after_use()
    }

    /// Where the data to zero before the segment goes starts, if the
    /// ring asks for it.
    fn zero_from(&self) -> Option<u64> {
        zero_from(&self.info)
    }

    /// Whether this mapping created the segment.
    pub(crate) fn created(&self) -> bool {
        self.created
    }

    /// The error of a wait on this ring that ended: `op` waited `waited`
    /// for a `peer`, which was attached or not when it ended.
    #[cold]
    pub(crate) fn timed_out(
        &self,
        op: &'static str,
        waited: Duration,
        peer: Role,
        peer_attached: bool,
    ) -> TimedOut {
        bump(&self.header().stats(peer.other()).timeouts);
        TimedOut {
            name: self.segment.name().as_str().to_owned(),
            op,
            waited,
            peer,
            peer_attached,
        }
    }
}

/// The last handle of a ring in this process is gone (each handle dropped
/// its role or claim lease first): this user leaves, and removes the name
/// if it was the last (see `platform/segment/`).
impl<S> std::fmt::Debug for RingMemory<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingMemory")
            .field("name", &self.segment.name().as_str())
            .finish_non_exhaustive()
    }
}

impl<S> Drop for RingMemory<S> {
    fn drop(&mut self) {
        if let Some(entry) = self.attached.take() {
            crate::peers::attach::unregister(&self.header().attached, entry);
        }
        let keep = self.header().is_persistent();
        // An error here (another process holding the `flock` past the
        // bound, or failing to zero) leaves the name: a stale one, which
        // the next `replace_stale` or `shmring rm --stale` removes (and
        // zeroes).
        if let Err(e) = self.segment.leave(keep, self.zero_from()) {
            log::warn!(target: "shmring", "leaving: {e}");
        }
    }
}

/// The size of a slot that is its stamp alone: a ring of a run-time
/// layout's `Slot<Runtime>` (and a `Slot<()>`, whose stride is the same).
const STAMP_ONLY: usize = size_of::<Slot<Runtime>>();

/// Whether `T` is the stand-in for a run-time element layout.
fn is_runtime<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<Runtime>()
}

/// The rings of `Pod` values (SPSC and MPMC) share one slot layout: create
/// and open them the same way.
impl<T: Pod> RingMemory<Slot<T>> {
    /// Create a ring of `capacity` zeroed slots of `T`, each stamped free
    /// (of `opts.elem`'s layout, for a `T` of [`Runtime`]).
    pub(crate) fn create_slots(
        name: &str,
        kind: RingKind,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self> {
        let schema = opts.schema.unwrap_or_else(Schema::of::<T>);
        if is_runtime::<T>() {
            let elem = runtime_elem(opts.elem)?;
            return Self::create_shaped(
                name,
                kind,
                elem,
                capacity as u64,
                opts,
                runtime_shape(&elem),
                |mem, i| {
                    let slot = mem.slot_ptr(i as usize);
                    // SAFETY: `i < capacity`: the slot's `stride` bytes lie
                    // in the segment, which no one else touches before the
                    // header is published; its value starts `offset` in.
                    unsafe {
                        slot.write(Slot::new(i, T::zeroed()));
                        let (offset, size) = mem.runtime_value();
                        slot.cast::<u8>().add(offset).write_bytes(0, size);
                    }
                },
            );
        }
        let elem = TypeLayout::with_schema::<T>(schema);
        Self::create(name, kind, elem, capacity as u64, opts, |i| {
            Slot::new(i, T::zeroed())
        })
    }

    /// Open a ring of `T` (of `opts.elem`'s layout, for a `T` of
    /// [`Runtime`]), validating its header against `kind`, `T` and, when
    /// given, the capacity `create` would have made for `capacity`.
    pub(crate) fn open_slots(
        name: &str,
        kind: RingKind,
        capacity: Option<usize>,
        opts: &OpenOptions,
    ) -> Result<Self> {
        let check = |info: &HeaderInfo| match capacity {
            Some(asked) => check_capacity(
                name,
                (asked as u64).next_power_of_two(),
                info.layout.capacity,
            ),
            None => Ok(()),
        };
        if is_runtime::<T>() {
            let elem = runtime_elem(opts.elem)?;
            return Self::open_shaped(name, kind, elem, opts, runtime_shape(&elem), check);
        }
        let schema = opts.schema.unwrap_or_else(Schema::of::<T>);
        let elem = TypeLayout::with_schema::<T>(schema);
        Self::open(name, kind, elem, opts, check)
    }
}

/// A ring of a layout known only at run time: its slots are a stamp each,
/// the value's bytes after it at the offset a `#[repr(C)]` struct of a
/// `u64` and the value would give them.
impl<T> RingMemory<Slot<T>> {
    /// Whether this is a ring of a run-time layout: slots of a stamp alone
    /// `stride` bytes apart (a `Slot<()>`'s stride is its size).
    #[inline(always)]
    fn is_runtime(&self) -> bool {
        size_of::<Slot<T>>() == STAMP_ONLY && self.stride != STAMP_ONLY
    }

    /// Zero the values of positions `pos .. pos + n` (a ring that zeroes
    /// what its readers release).
    ///
    /// # Safety
    /// The caller owns those slots: it read them and has not released
    /// them.
    pub(crate) unsafe fn zero_values(&self, pos: u64, n: usize) {
        if self.is_runtime() {
            for k in 0..n.min(self.capacity() as usize) {
                let at = pos.wrapping_add(k as u64);
                let zero = || {
                    // SAFETY: the value's bytes, in its slot, which the
                    // caller owns (the contract above).
                    unsafe {
                        self.runtime_value_ptr(at)
                            .write_bytes(0, self.runtime_value().1)
                    }
                };
                // SAFETY: the caller owns the slot (the contract above).
                unsafe { self.slot(at).writing(zero) };
            }
            return;
        }
        let (a, b) = self.run(pos, n);
        for slot in a.iter().chain(b) {
            // SAFETY: the caller owns these slots (the contract above).
            unsafe { slot.zero() };
        }
    }

    /// The value's offset in its slot and its size.
    #[inline(always)]
    pub(crate) fn runtime_value(&self) -> (usize, usize) {
        let elem = self.info.elem;
        (runtime_offset(&elem), elem.size as usize)
    }

    /// The first byte of the value of position `pos`: derived from the
    /// slots' base (which may reach the whole data area), not from a slot
    /// reference (which reaches its stamp only).
    #[inline(always)]
    fn runtime_value_ptr(&self, pos: u64) -> *mut u8 {
        let slot = self.slot_ptr((pos & self.mask) as usize);
        // SAFETY: the value lies inside its slot's `stride` bytes
        // (`runtime_shape`: offset + size <= stride), in the mapping.
        unsafe { slot.cast::<u8>().add(self.runtime_value().0) }
    }

    /// Write the value of position `pos` from `value` (its layout's size,
    /// or less: the rest keeps its bytes).
    ///
    /// # Safety
    /// As for `Slot::write`: the caller owns the slot.
    #[inline]
    pub(crate) unsafe fn write_runtime_value(&self, pos: u64, value: &[u8]) {
        // SAFETY: the caller owns the slot (the contract above).
        unsafe {
            self.slot(pos)
                .writing(|| self.copy_runtime_value_in(pos, value))
        }
    }

    /// [`write_runtime_value`](Self::write_runtime_value)'s copy: volatile
    /// stores, since a broadcast ring's seqlock readers may be copying the
    /// value meanwhile (and discard what they copied).
    ///
    /// # Safety
    /// The caller is the slot's one writer.
    #[inline(always)]
    unsafe fn copy_runtime_value_in(&self, pos: u64, value: &[u8]) {
        let n = value.len().min(self.runtime_value().1);
        let (src, dst) = (value.as_ptr(), self.runtime_value_ptr(pos));
        // Words, inline: a call to `memcpy` cost more than a small
        // value's copy (as `read_runtime_value`, for the alignment).
        let words = if dst.align_offset(8) == 0 { n / 8 } else { 0 };
        for i in 0..words {
            // SAFETY: word `i` lies inside the value (`i * 8 + 8 <= n`),
            // whose one writer the caller is, and is 8-aligned (checked
            // above); `value` holds `n` bytes, the caller's own (read
            // unaligned).
            unsafe {
                let w = src.add(i * 8).cast::<u64>().read_unaligned();
                dst.add(i * 8).cast::<u64>().write_volatile(w);
            }
        }
        for i in words * 8..n {
            // SAFETY: byte `i < n` of `value`, and of the value.
            unsafe { dst.add(i).write_volatile(src.add(i).read()) };
        }
    }

    /// The first byte of the value of position `pos`, lent in place to
    /// the slot's writer (a reservation: written, then published).
    ///
    /// # Safety
    /// As for `Slot::write`: the caller owns the slot until it publishes
    /// it, and writes no more than the value's bytes.
    #[inline]
    pub(crate) unsafe fn runtime_value_to_write(&self, pos: u64) -> *mut u8 {
        // SAFETY: the caller owns the slot (the contract above); under the
        // model this records the writer's access.
        unsafe { self.slot(pos).writing(|| self.runtime_value_ptr(pos)) }
    }

    /// The first byte of the value of position `pos`, lent in place to
    /// its reader (read, then released).
    ///
    /// # Safety
    /// As for `Slot::read`: the caller saw the slot full for `pos` and
    /// does not release it while it reads the value's bytes.
    #[inline]
    pub(crate) unsafe fn runtime_value_to_read(&self, pos: u64) -> *const u8 {
        // SAFETY: the caller's contract above; under the model this
        // records the reader's access.
        unsafe { self.slot(pos).reading(|| self.runtime_value_ptr(pos)) }
    }

    /// Write the value of position `pos` from `value` for a broadcast
    /// ring's seqlock readers: the caller stamped the slot busy and
    /// issued the Release fence first (`Slot::write_seq`'s order).
    ///
    /// # Safety
    /// The caller is the slot's one writer (see `rings/broadcast`).
    #[inline(always)]
    pub(crate) unsafe fn write_runtime_seq(&self, pos: u64, value: &[u8], values: &SeqValues) {
        #[cfg(not(shmring_loom))]
        {
            let _ = values;
            // SAFETY: the caller is the one writer (the contract above).
            unsafe { self.copy_runtime_value_in(pos, value) }
        }
        #[cfg(shmring_loom)]
        values.write_bytes(
            pos & self.mask,
            &value[..value.len().min(self.runtime_value().1)],
        );
    }

    /// Copy the value of position `pos` into `out` for a broadcast ring's
    /// seqlock reader, who looked at the stamp (Acquire) before and looks
    /// again after an Acquire fence: possibly torn, then discarded.
    #[inline(always)]
    pub(crate) fn read_runtime_seq(&self, pos: u64, out: &mut [u8], values: &SeqValues) {
        #[cfg(not(shmring_loom))]
        {
            let _ = values;
            // SAFETY: the value's bytes lie in the mapping; volatile reads
            // of bytes another process may be writing give some bytes, and
            // the caller's second look at the stamp says whether to keep
            // them.
            unsafe { self.copy_runtime_value(pos, out) }
        }
        #[cfg(shmring_loom)]
        {
            let n = out.len().min(self.runtime_value().1);
            values.read_bytes(pos & self.mask, &mut out[..n]);
        }
    }

    /// Copy the value of position `pos` into `out` (its layout's size, or
    /// less), as `Slot::read` copies: volatile, each byte of shared memory
    /// read once, whatever a peer writes meanwhile.
    ///
    /// # Safety
    /// As for `Slot::read`: the caller saw the slot full for `pos` and has
    /// not released it.
    #[inline]
    pub(crate) unsafe fn read_runtime_value(&self, pos: u64, out: &mut [u8]) {
        // SAFETY: the caller saw the slot full and has not released it
        // (the contract above).
        unsafe { self.slot(pos).reading(|| self.copy_runtime_value(pos, out)) }
    }

    /// [`read_runtime_value`](Self::read_runtime_value)'s copy.
    ///
    /// # Safety
    /// As for `read_runtime_value`.
    #[inline(always)]
    unsafe fn copy_runtime_value(&self, pos: u64, out: &mut [u8]) {
        let n = out.len().min(self.runtime_value().1);
        let src = self.runtime_value_ptr(pos);
        let dst = out.as_mut_ptr();
        // Words where the value is 8-aligned (always, but under loom,
        // whose larger stamp may leave a byte-aligned value after it).
        let words = if src.align_offset(8) == 0 { n / 8 } else { 0 };
        for i in 0..words {
            // SAFETY: word `i` lies inside the value (`i * 8 + 8 <= n`) and
            // is 8-aligned (checked above); `out` holds `n` bytes, its own
            // (written unaligned).
            unsafe {
                let w = src.add(i * 8).cast::<u64>().read_volatile();
                dst.add(i * 8).cast::<u64>().write_unaligned(w);
            }
        }
        for i in words * 8..n {
            // SAFETY: byte `i < n` of the value, and of `out`.
            unsafe { dst.add(i).write(src.add(i).read_volatile()) };
        }
    }
}

/// The layout a run-time ring was asked for.
fn runtime_elem(elem: Option<TypeLayout>) -> Result<TypeLayout> {
    elem.ok_or(Error::InvalidLayout {
        reason: "a ring of a run-time layout needs one",
    })
}

/// The slot size and alignment of a run-time ring of `elem`, as a
/// `#[repr(C)]` struct of the stamp and the value would have them: the
/// value at [`runtime_offset`], the size a multiple of the larger
/// alignment. (The stamp is a `u64` but for loom's, which is larger.)
fn runtime_shape(elem: &TypeLayout) -> (usize, usize) {
    let align = (elem.align as usize).max(align_of::<Slot<Runtime>>());
    let size = (runtime_offset(elem) + elem.size as usize).next_multiple_of(align);
    (size, align)
}

/// Where a run-time ring's value lies in its slot: past the stamp, at
/// the value's alignment (a power of two: `TypeLayout::new`).
fn runtime_offset(elem: &TypeLayout) -> usize {
    STAMP_ONLY.next_multiple_of(elem.align.max(1) as usize)
}

/// The header of a segment opened with room for one (`Segment::open` with
/// `size_of::<Header>()` as its minimum length), whatever its state.
pub(crate) fn header_of(segment: &Segment) -> &Header {
    assert!(
        segment.len() >= size_of::<Header>(),
        "opened without room for a header"
    );
    // SAFETY: the mapping holds at least a header (asserted; `Segment::open`
    // refuses shorter files), is page-aligned, and lives as long as the
    // borrow of `segment`; every header field is an atomic, valid for any
    // bits, so a peer's writes cannot make this reference invalid.
    unsafe { &*segment.as_ptr().cast::<Header>() }
}

/// The table after the header of `segment` (a mapping, or a copy that
/// reaches that far), as an `X`; `None` if the segment is shorter.
#[cfg(not(shmring_loom))]
pub(crate) fn table_of<X>(segment: &Segment) -> Option<&X> {
    let at = size_of::<Header>();
    if segment.len() < at + size_of::<X>() || !at.is_multiple_of(align_of::<X>()) {
        return None;
    }
    // SAFETY: the bytes from the header's end lie in the mapping (or copy)
    // (checked), aligned for `X` (checked; the header's size is a multiple
    // of 128), and live as long as the borrow of `segment`; tables are
    // made of atomics, valid for any bits a peer writes.
    Some(unsafe { &*segment.as_ptr().add(at).cast::<X>() })
}

/// Under the model a segment's tables are the ring's own (loom's atomics
/// cannot be found in raw memory): nothing to look at from outside.
#[cfg(shmring_loom)]
pub(crate) fn table_of<X>(_: &Segment) -> Option<&X> {
    None
}

/// How often `create_or_open` tries again when the name comes and goes
/// between its create and its open (another process removing it).
const RACE_ATTEMPTS: usize = 8;

/// The race every `open_or_create` runs: create the segment, and when the
/// name exists, open it. `linkat` gives a name to a fully made segment
/// only, and refuses an existing name, so of several processes starting
/// together exactly one creates and the others open a ready ring; whoever
/// finds the name gone between the two (its last user left, or a remover
/// came, in between) tries again.
pub(crate) fn create_or_open<R>(
    mut create: impl FnMut() -> Result<R>,
    mut open: impl FnMut() -> Result<R>,
) -> Result<R> {
    let mut last = None;
    for _ in 0..RACE_ATTEMPTS {
        match create() {
            Err(Error::AlreadyExists { .. }) => {}
            made => return made,
        }
        match open() {
            Err(e @ Error::NotFound { .. }) => last = Some(e),
            opened => return opened,
        }
    }
    Err(last.expect("at least one attempt"))
}

/// `CapacityMismatch` unless the ring found has the capacity asked for.
pub(crate) fn check_capacity(name: &str, requested: u64, found: u64) -> Result<()> {
    if requested == found {
        return Ok(());
    }
    Err(Error::CapacityMismatch {
        name: name.to_owned(),
        requested,
        found,
    })
}

/// Open with `open`, waiting up to `timeout` for the name to appear (a
/// consumer started before its producer): `NotFound` if it did not.
/// Every other error returns at once. `open` is given options whose
/// `init_timeout` is what is left of `timeout`, so that every wait inside
/// it ends in time too.
pub(crate) fn open_waiting<R>(
    timeout: Duration,
    mut open: impl FnMut(&OpenOptions) -> Result<R>,
) -> Result<R> {
    let start = Instant::now();
    let watch = NameWatch::new();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match open(&OpenOptions::new().init_timeout(left)) {
            Err(Error::NotFound { .. }) if start.elapsed() < timeout => {
                watch.wait(timeout.saturating_sub(start.elapsed()));
            }
            other => return other,
        }
    }
}

/// How long a look from outside (inspection, a stale check) waits for a
/// creator still writing the header.
pub(crate) const LOOK_INIT_WAIT: Duration = Duration::from_millis(20);

/// Remove segment `name` if it is stale: its header is a valid one, it is
/// not persisted, and no process holds any lock on the file (no mapping,
/// role, claim or attach entry; see `platform/lease.rs`). `Ok(false)` if it
/// is in use or persisted. The check
/// and the unlink happen under `Segment::unlink_if`'s exclusive `flock`, so
/// an opener racing with it either is seen or opens the name afresh.
pub(crate) fn remove_if_stale(name: &SegmentName) -> Result<bool> {
    let removed = Segment::unlink_if(name, size_of::<Header>() as u64, Owner::Anyone, |seg| {
        // In use (a creator still writing the header included): kept,
        // whatever the copy of the header says.
        if seg.in_use() {
            return Ok(Verdict::Keep);
        }
        let header = header_of(seg);
        header.wait_ready(seg.name().as_str(), Duration::ZERO)?;
        let info = header.describe(seg.name().as_str(), seg.file_len())?;
        // A persisted ring is kept for whoever comes to read it: only an
        // explicit `remove` takes it.
        if header.is_persistent() {
            return Ok(Verdict::Keep);
        }
        Ok(Verdict::Remove {
            zero_from: zero_from(&info),
        })
    })?;
    if removed {
        log::info!(
            target: "shmring::removal",
            "removed stale segment {:?} (no process held any lock on it)",
            name.as_str()
        );
    }
    Ok(removed)
}

/// Where a ring described by `info` starts the data it zeroes before its
/// segment goes, if it asks for that.
pub(crate) fn zero_from(info: &HeaderInfo) -> Option<u64> {
    info.zero_after_use().then_some(info.layout.data_offset)
}

/// The magic and format version at the start of `look`'s file, read with
/// `pread`: `None` if it is shorter than that.
pub(crate) fn read_prefix(look: &Look) -> Result<Option<(u64, u32)>> {
    let mut bytes = [0u8; 12];
    if look.read_at(&mut bytes, offsets::MAGIC as u64)? < bytes.len() {
        return Ok(None);
    }
    let magic = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(bytes[offsets::VERSION..].try_into().expect("4 bytes"));
    Ok(Some((magic, version)))
}

/// Whether `look`'s file is a shmring segment, from its size and its
/// magic (read with `pread`, never through a mapping): `SegmentTooSmall`
/// for less than a header, `BadMagic` for another program's bytes. A
/// magic still zero may be a creator that named its segment before
/// writing it (only where the shm directory has no `O_TMPFILE`): it is
/// waited for up to `init_wait`, then `NotReady`.
pub(crate) fn ours(look: &Look, name: &SegmentName, init_wait: Duration) -> Result<()> {
    let needed = size_of::<Header>() as u64;
    let len = look.len()?;
    if len < needed {
        return Err(Error::SegmentTooSmall {
            name: name.as_str().to_owned(),
            len,
            needed,
        });
    }
    let start = Instant::now();
    loop {
        match read_prefix(look)? {
            Some((MAGIC, _)) => return Ok(()),
            Some((0, _)) | None if start.elapsed() < init_wait => {
                std::thread::sleep(Duration::from_micros(100));
            }
            Some((0, _)) | None => {
                return Err(Error::NotReady {
                    name: name.as_str().to_owned(),
                    waited_ms: start.elapsed().as_millis() as u64,
                })
            }
            Some((found, _)) => {
                return Err(Error::BadMagic {
                    name: name.as_str().to_owned(),
                    found,
                })
            }
        }
    }
}

/// Remove segment `name` if it is stale, whatever format version of
/// shmring made it (those whose users hold the same locks; see
/// `legacy.rs`): its magic is read with `pread` first, so another
/// program's file is never mapped. What `remove_if_stale` and
/// `replace_stale` call.
pub(crate) fn remove_if_stale_any(name: &SegmentName) -> Result<bool> {
    let look = Look::open(name, Owner::Anyone)?;
    let version = match read_prefix(&look)? {
        Some((MAGIC, version)) => version,
        _ => {
            ours(&look, name, LOOK_INIT_WAIT)?;
            VERSION
        }
    };
    drop(look);
    match legacy::format(version) {
        legacy::Format::Current => remove_if_stale(name),
        _ => legacy::remove_if_stale(name, version),
    }
}

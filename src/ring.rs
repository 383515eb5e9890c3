//! A ring's memory: a segment holding a validated header followed by an
//! array of slots. Every ring kind builds on this; it is the one place that
//! turns the segment's raw bytes into typed references.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::time::{SystemTime, UNIX_EPOCH};

use bytemuck::Pod;

use crate::error::{Result, RingKind, TypeLayout};
use crate::header::{Header, HeaderInfo};
use crate::layout::SegmentLayout;
use crate::name::SegmentName;
use crate::segment::{CreateOptions, OpenOptions, Segment};
use crate::slot::Slot;

/// A mapped, validated ring segment with slots of type `S`.
pub(crate) struct RingMemory<S> {
    segment: Segment,
    slots: NonNull<S>,
    info: HeaderInfo,
    mask: u64,
    /// Our entry in the header's table of attached processes.
    attached: Option<crate::attach::Entry>,
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
        let name = SegmentName::new(name)?;
        crate::barrier::init();
        let layout = SegmentLayout::new(capacity, size_of::<S>(), align_of::<S>())?;
        let segment = Segment::create(&name, layout.total_len, opts)?;
        let info = HeaderInfo {
            kind,
            elem,
            layout,
            creator_pid: std::process::id(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
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
        for i in 0..layout.capacity {
            // SAFETY: `i < capacity`, so the slot lies inside the segment
            // (the layout was computed for this capacity); no one else may
            // touch slots before the header is published.
            unsafe { mem.slots.as_ptr().add(i as usize).write(init(i)) };
        }
        // Attached before READY: whoever sees the ring ready sees its
        // creator among its users, so it never looks stale.
        mem.attach();
        mem.header().publish(&info);
        // Only now does the segment get its name: no one ever opens it
        // half-initialized.
        mem.segment.link(|name| {
            #[cfg(not(shmring_loom))]
            if opts.replace_stale {
                return crate::inspect::remove_if_stale(name);
            }
            let _ = name;
            Ok(false)
        })?;
        Ok(mem)
    }

    /// Open an existing segment and validate its header against what the
    /// caller expects.
    pub(crate) fn open(
        name: &str,
        kind: RingKind,
        elem: TypeLayout,
        opts: &OpenOptions,
    ) -> Result<Self> {
        let name = SegmentName::new(name)?;
        crate::barrier::init();
        let segment = Segment::open(&name, size_of::<Header>() as u64, opts, true)?;
        // SAFETY: `Segment::open` checked that the mapping holds a header;
        // the mapping is page-aligned; every header field is an atomic,
        // valid for any bits.
        let header = unsafe { &*segment.as_ptr().cast::<Header>() };
        header.wait_ready(name.as_str(), opts.init_timeout)?;
        let info = header.validate(
            kind,
            elem,
            size_of::<S>(),
            align_of::<S>(),
            segment.len() as u64,
        )?;
        let mut mem = Self::from_segment(segment, info);
        mem.attach();
        Ok(mem)
    }

    fn attach(&mut self) {
        // Under loom every handle is one process; the table only adds states.
        #[cfg(not(shmring_loom))]
        {
            self.attached = crate::attach::register(&self.segment, self.header());
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
        RingMemory {
            segment,
            slots,
            info,
            mask: info.layout.capacity - 1,
            attached: None,
            _slots: PhantomData,
        }
    }

    /// The header.
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the segment holds a header at offset 0 (checked at create
        // and open) for as long as `self` keeps it mapped.
        unsafe { &*self.segment.as_ptr().cast::<Header>() }
    }

    /// The slot of position `pos`. Masking makes any `pos`, even one read
    /// from a hostile peer, land inside the slot array.
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> &S {
        // SAFETY: `pos & mask < capacity`, and the slots were written at
        // create (or by the creator before it published the header).
        unsafe { &*self.slots.as_ptr().add((pos & self.mask) as usize) }
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
}

impl<S> Drop for RingMemory<S> {
    fn drop(&mut self) {
        if let Some(entry) = self.attached.take() {
            crate::attach::unregister(self.header(), entry);
        }
    }
}

/// The rings of `Pod` values (SPSC and MPMC) share one slot layout: create
/// and open them the same way.
impl<T: Pod> RingMemory<Slot<T>> {
    /// Create a ring of `capacity` zeroed slots of `T`, each stamped free.
    pub(crate) fn create_slots(
        name: &str,
        kind: RingKind,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self> {
        let elem = TypeLayout::of::<T>();
        Self::create(name, kind, elem, capacity as u64, opts, |i| {
            Slot::new(i, T::zeroed())
        })
    }

    /// Open a ring of `T`, validating its header against `kind` and `T`.
    pub(crate) fn open_slots(name: &str, kind: RingKind, opts: &OpenOptions) -> Result<Self> {
        Self::open(name, kind, TypeLayout::of::<T>(), opts)
    }
}

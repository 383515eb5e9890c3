//! Segments under `cfg(shmring_loom)`: zeroed heap blocks with the same
//! interface, because loom's atomics can only live in memory it manages.

use super::Owner;
use crate::error::{Error, Result};
use crate::platform::name::SegmentName;
use std::alloc::{alloc_zeroed, dealloc, Layout};

/// A zeroed, page-aligned heap block standing in for a mapping.
pub(crate) struct Segment {
    ptr: *mut u8,
    layout: Layout,
    name: SegmentName,
}

// SAFETY: the block is only reached through the rings' atomics and cells,
// exactly as a shared mapping is.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: allocated in `create` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

pub(super) fn unlink(name: &SegmentName) -> Result<()> {
    Err(Error::NotFound {
        name: name.as_str().to_owned(),
    })
}

impl Segment {
    pub(crate) fn create(
        name: &SegmentName,
        len: u64,
        _: u32,
        _: Option<u32>,
        _: bool,
    ) -> Result<Self> {
        let layout = Layout::from_size_align(len as usize, 4096)
            .map_err(|_| Error::CapacityTooLarge { requested: len })?;
        // SAFETY: layout has a non-zero size (a header at least).
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "loom segment allocation failed");
        Ok(Segment {
            ptr,
            layout,
            name: name.clone(),
        })
    }

    pub(crate) fn open(name: &SegmentName, _: u64, _: Owner<'_>) -> Result<Self> {
        unlink(name).map(|_| unreachable!())
    }

    /// A model segment is never opened by name, so never joined.
    pub(crate) fn join(&mut self, _: std::time::Instant) -> Result<bool> {
        Ok(true)
    }

    /// A model segment has no name to publish.
    pub(crate) fn link(&mut self, _: impl FnOnce(&str) -> Result<bool>) -> Result<()> {
        Ok(())
    }

    /// A model segment is never found by name, so never removed by it.
    pub(crate) fn unlink_if(
        name: &SegmentName,
        _: u64,
        _: Owner<'_>,
        _: impl FnOnce(&Segment) -> Result<super::Verdict>,
    ) -> Result<bool> {
        unlink(name).map(|()| false)
    }

    /// A model segment is in use while its handles live (there are no
    /// other users to ask the kernel about).
    pub(crate) fn in_use(&self) -> bool {
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.layout.size() as u64
    }

    pub(crate) fn name(&self) -> &SegmentName {
        &self.name
    }

    /// A model segment has no name to remove.
    pub(crate) fn leave(&mut self, _keep_name: bool, _zero_from: Option<u64>) -> Result<bool> {
        Ok(false)
    }

    /// A model segment has no file to read.
    pub(crate) fn read_at(&self, _: &mut [u8], _: u64) -> Result<usize> {
        Ok(0)
    }
}

/// A model segment is never found by name, so never looked at: no
/// value of this type exists.
pub(crate) enum Look {}

impl Look {
    pub(crate) fn open(name: &SegmentName, _: Owner<'_>) -> Result<Look> {
        unlink(name).map(|_| unreachable!())
    }

    pub(crate) fn len(&self) -> Result<u64> {
        match *self {}
    }

    pub(crate) fn read_at(&self, _: &mut [u8], _: u64) -> Result<usize> {
        match *self {}
    }

    pub(crate) fn snapshot(&self, _: u64) -> Result<Segment> {
        match *self {}
    }

    pub(crate) fn owner_and_mode(&self) -> (u32, u32) {
        match *self {}
    }

    pub(crate) fn unlink(self, _: Option<u64>) -> Result<()> {
        match self {}
    }
}

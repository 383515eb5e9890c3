//! Segments under `cfg(shmring_loom)`: zeroed heap blocks with the same
//! interface, because loom's atomics can only live in memory it manages.
//! A block linked under a name can be opened by it (as the services
//! layer opens its rings by name) while any handle to it lives; the name
//! goes with the last one.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::Owner;
use crate::error::{Error, Result};
use crate::platform::name::SegmentName;

/// A zeroed, page-aligned heap block standing in for a mapping.
struct Block {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the block is only reached through the rings' atomics and cells,
// exactly as a shared mapping is.
unsafe impl Send for Block {}
// SAFETY: as above.
unsafe impl Sync for Block {}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `create` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A handle to a model segment's block.
pub(crate) struct Segment {
    block: Arc<Block>,
    name: SegmentName,
}

/// The linked blocks by name. Not part of what loom explores (a model's
/// threads run one at a time, so this lock is never contended): the
/// names of a model's segments are its own, unique to each execution.
fn linked() -> std::sync::MutexGuard<'static, HashMap<String, Weak<Block>>> {
    static LINKED: OnceLock<Mutex<HashMap<String, Weak<Block>>>> = OnceLock::new();
    LINKED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
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
            block: Arc::new(Block { ptr, layout }),
            name: name.clone(),
        })
    }

    /// The block linked under `name`, if a handle to it lives.
    pub(crate) fn open(name: &SegmentName, _: u64, _: Owner<'_>) -> Result<Self> {
        match linked().get(name.as_str()).and_then(Weak::upgrade) {
            Some(block) => Ok(Segment {
                block,
                name: name.clone(),
            }),
            None => unlink(name).map(|_| unreachable!()),
        }
    }

    /// A model segment is joined as it is opened.
    pub(crate) fn join(&mut self, _: std::time::Instant) -> Result<bool> {
        Ok(true)
    }

    /// Link the block under its name, refused (as `O_EXCL` does) while
    /// another block linked there lives.
    pub(crate) fn link(&mut self, _: impl FnOnce(&str) -> Result<bool>) -> Result<()> {
        let mut linked = linked();
        linked.retain(|_, block| block.strong_count() > 0);
        if linked.contains_key(self.name.as_str()) {
            return Err(Error::AlreadyExists {
                name: self.name.as_str().to_owned(),
            });
        }
        linked.insert(self.name.as_str().to_owned(), Arc::downgrade(&self.block));
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
        self.block.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.block.layout.size()
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.block.layout.size() as u64
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

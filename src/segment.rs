//! The platform layer: a named POSIX shared-memory segment, mapped.
//!
//! Everything that talks to the kernel about segments lives here: `shm_open`
//! with `O_EXCL | O_NOFOLLOW`, an explicit mode, `posix_fallocate` so that a
//! full /dev/shm is an error now rather than a SIGBUS on first touch, `fstat`
//! checks on open, and the guard that `shm_unlink`s a name we created. The
//! rings above see only a base pointer and a length.
//!
//! Under `cfg(loom)` a segment is a zeroed heap allocation with the same
//! interface, because loom's atomics can only live in memory it manages.

use std::time::Duration;

use crate::error::Result;
use crate::name::SegmentName;

/// How to create a segment.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub(crate) mode: u32,
    pub(crate) replace_stale: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            replace_stale: false,
        }
    }
}

impl CreateOptions {
    /// Defaults: mode 0600 (only this user can open the segment).
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits for the segment file, applied exactly (the umask is
    /// not allowed to change them). Use 0o660 to share with a group.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// If a segment of that name exists but is stale (every process that
    /// used it is dead; see [`SegmentInfo::is_stale`](crate::SegmentInfo::is_stale)),
    /// remove it and create a fresh one instead of failing with
    /// `AlreadyExists`. A segment in use is never replaced.
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }
}

/// How to open an existing segment.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) allow_foreign_owner: bool,
    pub(crate) init_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            allow_foreign_owner: false,
            init_timeout: Duration::from_secs(1),
        }
    }
}

impl OpenOptions {
    /// Defaults: refuse segments owned by another user; wait up to one second
    /// for a creator that is still writing the header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open a segment owned by another user. By default such a segment is
    /// refused, because anyone can squat a name in /dev/shm.
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// How long to wait for a creator that has not yet marked the header ready.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }
}

/// Removes a segment name. Removing a name does not affect processes that
/// have it mapped; the memory is freed when the last mapping goes.
pub fn remove(name: &str) -> Result<()> {
    let name = SegmentName::new(name)?;
    platform::unlink(&name)
}

pub(crate) use platform::Segment;

#[cfg(not(loom))]
mod platform {
    use std::fs::File;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    use memmap2::{MmapOptions, MmapRaw};
    use nix::errno::Errno;
    use nix::fcntl::OFlag;
    use nix::sys::mman::{shm_open, shm_unlink};
    use nix::sys::stat::{fchmod, fstat, Mode, SFlag};

    use super::{CreateOptions, OpenOptions};
    use crate::error::{Error, Result};
    use crate::name::SegmentName;

    /// A mapped segment. Dropping it unmaps; if this process created the
    /// name and did not `persist` it, dropping also unlinks the name.
    pub(crate) struct Segment {
        map: MmapRaw,
        name: SegmentName,
        guard: Option<UnlinkGuard>,
    }

    /// Owns a segment name this process created and `shm_unlink`s it on drop,
    /// including while unwinding from a panic.
    struct UnlinkGuard {
        name: SegmentName,
        armed: AtomicBool,
    }

    impl Drop for UnlinkGuard {
        fn drop(&mut self) {
            if self.armed.load(Ordering::Relaxed) {
                let _ = shm_unlink(self.name.os_name().as_str());
            }
        }
    }

    fn os_error(op: &'static str, name: &SegmentName, errno: Errno) -> Error {
        let name = name.as_str().to_owned();
        match errno {
            Errno::ENOENT => Error::NotFound { name },
            Errno::EEXIST => Error::AlreadyExists { name },
            Errno::EACCES | Errno::EPERM => Error::PermissionDenied { name },
            // O_NOFOLLOW on a symlink planted in /dev/shm.
            Errno::ELOOP => Error::PermissionDenied { name },
            _ => Error::Io {
                op,
                name,
                source: errno.into(),
            },
        }
    }

    pub(super) fn unlink(name: &SegmentName) -> Result<()> {
        shm_unlink(name.os_name().as_str()).map_err(|e| os_error("shm_unlink", name, e))
    }

    fn map(fd: OwnedFd, len: u64, name: &SegmentName) -> Result<MmapRaw> {
        let len = usize::try_from(len).map_err(|_| Error::CapacityTooLarge { requested: len })?;
        let file = File::from(fd);
        MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|source| Error::Io {
                op: "mmap",
                name: name.as_str().to_owned(),
                source,
            })
    }

    /// Open `name` and check it: a regular file, owned by us (unless
    /// allowed otherwise), at least `min_len` bytes. Its descriptor and size.
    fn open_checked(
        name: &SegmentName,
        min_len: u64,
        opts: &OpenOptions,
    ) -> Result<(OwnedFd, u64)> {
        let fd = shm_open(
            name.os_name().as_str(),
            OFlag::O_RDWR | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| os_error("shm_open", name, e))?;
        let st = fstat(fd.as_fd()).map_err(|e| os_error("fstat", name, e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(Error::PermissionDenied {
                name: name.as_str().to_owned(),
            });
        }
        let ours = nix::unistd::geteuid().as_raw();
        if st.st_uid != ours && !opts.allow_foreign_owner {
            return Err(Error::ForeignOwner {
                name: name.as_str().to_owned(),
                owner: st.st_uid,
                ours,
            });
        }
        let len = u64::try_from(st.st_size).unwrap_or(0);
        if len < min_len {
            return Err(Error::SegmentTooSmall {
                name: name.as_str().to_owned(),
                len,
                needed: min_len,
            });
        }
        Ok((fd, len))
    }

    impl Segment {
        /// Create a new segment of `len` bytes, zero-filled, refusing an
        /// existing name.
        pub(crate) fn create(name: &SegmentName, len: u64, opts: &CreateOptions) -> Result<Self> {
            let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW;
            let mode = Mode::from_bits_truncate(opts.mode);
            let fd = shm_open(name.os_name().as_str(), flags, mode)
                .map_err(|e| os_error("shm_open", name, e))?;
            // From here on the name is ours: any failure below unlinks it.
            let guard = UnlinkGuard {
                name: name.clone(),
                armed: AtomicBool::new(true),
            };
            // shm_open's mode is filtered by the umask; set exactly what was asked.
            fchmod(fd.as_fd(), mode).map_err(|e| os_error("fchmod", name, e))?;
            let off_len =
                i64::try_from(len).map_err(|_| Error::CapacityTooLarge { requested: len })?;
            // Reserve every page now: a later first touch of an unbacked tmpfs
            // page on a full /dev/shm would be a SIGBUS, not an error.
            nix::fcntl::posix_fallocate(fd.as_fd(), 0, off_len).map_err(|e| match e {
                Errno::ENOSPC | Errno::EFBIG | Errno::ENOMEM => Error::NoSpace {
                    name: name.as_str().to_owned(),
                    bytes: len,
                },
                e => os_error("posix_fallocate", name, e),
            })?;
            let map = map(fd, len, name)?;
            Ok(Segment {
                map,
                name: name.clone(),
                guard: Some(guard),
            })
        }

        /// Map an existing segment after checking that it is a regular file,
        /// owned by us (unless allowed otherwise), and at least `min_len`
        /// bytes long.
        pub(crate) fn open(name: &SegmentName, min_len: u64, opts: &OpenOptions) -> Result<Self> {
            let (fd, len) = open_checked(name, min_len, opts)?;
            Ok(Segment {
                map: map(fd, len, name)?,
                name: name.clone(),
                guard: None,
            })
        }

        /// Unlink the name if `decide` says so about the segment it names,
        /// holding an exclusive `flock` on the segment meanwhile and checking
        /// that the name still refers to it: two processes replacing the
        /// same stale segment cannot both unlink it, and neither can unlink
        /// a segment created in its place. `Ok(false)` if not unlinked.
        pub(crate) fn unlink_if(
            name: &SegmentName,
            min_len: u64,
            opts: &OpenOptions,
            decide: impl FnOnce(&Segment) -> Result<bool>,
        ) -> Result<bool> {
            use nix::fcntl::{Flock, FlockArg};
            let (fd, len) = open_checked(name, min_len, opts)?;
            let locked = Flock::lock(File::from(fd), FlockArg::LockExclusive)
                .map_err(|(_, e)| os_error("flock", name, e))?;
            let ours = fstat(locked.as_fd()).map_err(|e| os_error("fstat", name, e))?;
            let path = format!("/dev/shm/{}", name.as_str());
            match nix::sys::stat::lstat(path.as_str()) {
                Ok(now) if now.st_dev == ours.st_dev && now.st_ino == ours.st_ino => {}
                _ => return Ok(false),
            }
            let fd = locked
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| Error::Io {
                    op: "dup",
                    name: name.as_str().to_owned(),
                    source,
                })?;
            let segment = Segment {
                map: map(fd, len, name)?,
                name: name.clone(),
                guard: None,
            };
            if !decide(&segment)? {
                return Ok(false);
            }
            unlink(name)?;
            Ok(true)
        }

        pub(crate) fn as_ptr(&self) -> *mut u8 {
            self.map.as_mut_ptr()
        }

        pub(crate) fn len(&self) -> usize {
            self.map.len()
        }

        pub(crate) fn name(&self) -> &SegmentName {
            &self.name
        }

        /// Whether dropping this segment will unlink its name.
        pub(crate) fn owns_name(&self) -> bool {
            self.guard
                .as_ref()
                .is_some_and(|g| g.armed.load(Ordering::Relaxed))
        }

        /// Leave the name in place when this segment is dropped.
        pub(crate) fn persist(&self) {
            if let Some(guard) = &self.guard {
                guard.armed.store(false, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(loom)]
mod platform {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{CreateOptions, OpenOptions};
    use crate::error::{Error, Result};
    use crate::name::SegmentName;

    /// A zeroed, page-aligned heap block standing in for a mapping.
    pub(crate) struct Segment {
        ptr: *mut u8,
        layout: Layout,
        name: SegmentName,
        armed: AtomicBool,
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
        pub(crate) fn create(name: &SegmentName, len: u64, _: &CreateOptions) -> Result<Self> {
            let layout = Layout::from_size_align(len as usize, 4096)
                .map_err(|_| Error::CapacityTooLarge { requested: len })?;
            // SAFETY: layout has a non-zero size (a header at least).
            let ptr = unsafe { alloc_zeroed(layout) };
            assert!(!ptr.is_null(), "loom segment allocation failed");
            Ok(Segment {
                ptr,
                layout,
                name: name.clone(),
                armed: AtomicBool::new(true),
            })
        }

        pub(crate) fn open(name: &SegmentName, _: u64, _: &OpenOptions) -> Result<Self> {
            unlink(name).map(|_| unreachable!())
        }

        pub(crate) fn as_ptr(&self) -> *mut u8 {
            self.ptr
        }

        pub(crate) fn len(&self) -> usize {
            self.layout.size()
        }

        pub(crate) fn name(&self) -> &SegmentName {
            &self.name
        }

        pub(crate) fn owns_name(&self) -> bool {
            self.armed.load(Ordering::Relaxed)
        }

        pub(crate) fn persist(&self) {
            self.armed.store(false, Ordering::Relaxed);
        }
    }
}

//! Segments on Linux: `shm_open`, `O_TMPFILE` and `linkat`, `fstat`
//! checks, `mmap`, and the leases and `flock`s of the module docs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, lstat, FileStat, Mode, SFlag};

use super::{Owner, Verdict, SHM_DIR};
use crate::error::{Error, Result};
use crate::platform::fork::{KeptFd, KeptMap, Origin};
use crate::platform::name::SegmentName;
use crate::platform::ofd::{self, FlockKind};

/// Where every mapping holds a shared lease (see `lease.rs`): the
/// magic number's first byte, which no holder word uses.
const MAPPED_LEASE: u64 = 0;

/// How long a removal by name (`remove_if_stale`, `replace_stale`)
/// retries a busy `flock` before giving up with `Busy`.
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// How long a leaving user retries a busy `flock` (the other holders,
/// openers and leavers, hold it for a few system calls): a destructor
/// never waits longer; past it the name stays, stale.
const LEAVE_PATIENCE: Duration = Duration::from_millis(50);

/// A mapped segment and the descriptor it was mapped from, kept open:
/// through it this mapping holds its shared lease, and probes others'.
/// Dropping it unmaps; [`Segment::leave`] first, to remove the name as
/// its last user.
pub(crate) struct Segment {
    map: KeptMap,
    file: KeptFd,
    name: SegmentName,
    /// The file's identity, to tell whether the name still names it.
    dev: u64,
    ino: u64,
    /// The file's length when mapped (or copied: see `Look::snapshot`).
    file_len: u64,
    /// The process that mapped it: a forked child never acts for it.
    origin: Origin,
    /// Whether this mapping holds the shared lease on byte 0.
    leased: bool,
    /// Whether [`Segment::link`] has named it (or `create` had to).
    linked: bool,
    unpublished: Option<UnpublishedName>,
}

/// A name given to a segment before its header was published (only
/// where the shm directory has no `O_TMPFILE`): nobody can use what it
/// names yet, so a creator that fails before [`Segment::link`]
/// `shm_unlink`s it on drop, also while unwinding, in the creating
/// process only and while the name still refers to its file.
struct UnpublishedName {
    name: SegmentName,
    dev: u64,
    ino: u64,
    origin: Origin,
}

impl Drop for UnpublishedName {
    fn drop(&mut self) {
        if self.origin.is_here() && names_file(&self.name, self.dev, self.ino) {
            // A name removed and re-created between the check and the
            // unlink would still go: only an unlink by inode would
            // close that window, and POSIX has none.
            let _ = shm_unlink(self.name.os_name().as_str());
        }
    }
}

fn path_of(name: &SegmentName) -> String {
    format!("{SHM_DIR}/{}", name.as_str())
}

/// Whether `name` refers to the file `dev`/`ino` now.
fn names_file(name: &SegmentName, dev: u64, ino: u64) -> bool {
    lstat(path_of(name).as_str()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

pub(super) fn os_error(op: &'static str, name: &SegmentName, errno: Errno) -> Error {
    let name = name.as_str().to_owned();
    match errno {
        Errno::ENOENT => Error::NotFound { name },
        Errno::EEXIST => Error::AlreadyExists { name },
        Errno::EACCES | Errno::EPERM => Error::PermissionDenied { name },
        // O_NOFOLLOW on a symlink planted in /dev/shm.
        Errno::ELOOP => Error::NotAFile {
            name,
            found: "a symbolic link",
        },
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

fn map(file: &KeptFd, len: u64, name: &SegmentName) -> Result<KeptMap> {
    let len = usize::try_from(len).map_err(|_| Error::CapacityTooLarge { requested: len })?;
    KeptMap::map(|| MmapOptions::new().len(len).map_raw(file.as_raw_fd())).map_err(|source| {
        Error::Io {
            op: "mmap",
            name: name.as_str().to_owned(),
            source,
        }
    })
}

/// A `flock` held on a segment's description until dropped.
struct Flocked<'a>(BorrowedFd<'a>);

impl Drop for Flocked<'_> {
    fn drop(&mut self) {
        ofd::funlock(self.0);
    }
}

/// Take a `flock` of `kind` on `fd`, retrying while another
/// description holds a conflicting one until `deadline`: no wait on a
/// lock is without a bound, and the bound is the caller's.
fn flock_until<'a>(
    fd: BorrowedFd<'a>,
    kind: FlockKind,
    deadline: Instant,
    name: &SegmentName,
    op: &'static str,
) -> Result<Flocked<'a>> {
    loop {
        match ofd::try_flock(fd, kind) {
            Ok(true) => return Ok(Flocked(fd)),
            Ok(false) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(false) => {
                return Err(Error::Busy {
                    name: name.as_str().to_owned(),
                    what: op,
                })
            }
            Err(e) => return Err(os_error("flock", name, e)),
        }
    }
}

/// What a file under a segment name must be before anything reads it:
/// a regular file (a symlink, FIFO, device or directory planted under
/// the name is `NotAFile`), owned by us unless `owner` allows another
/// (`ForeignOwner`).
fn check_file(st: &FileStat, name: &SegmentName, owner: Owner<'_>) -> Result<()> {
    let found = match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => None,
        SFlag::S_IFLNK => Some("a symbolic link"),
        SFlag::S_IFIFO => Some("a FIFO"),
        SFlag::S_IFDIR => Some("a directory"),
        SFlag::S_IFSOCK => Some("a socket"),
        _ => Some("a device"),
    };
    if let Some(found) = found {
        return Err(Error::NotAFile {
            name: name.as_str().to_owned(),
            found,
        });
    }
    let ours = nix::unistd::geteuid().as_raw();
    if !owner.accepts(st.st_uid, st.st_gid, ours) {
        return Err(Error::ForeignOwner {
            name: name.as_str().to_owned(),
            owner: st.st_uid,
            ours,
        });
    }
    Ok(())
}

/// Open `name` and check it: a regular file, owned by us (unless
/// allowed otherwise), at least `min_len` bytes. The file and its stat.
fn open_checked(name: &SegmentName, min_len: u64, owner: Owner<'_>) -> Result<(KeptFd, FileStat)> {
    // O_NONBLOCK: a FIFO planted under the name must not hold the open.
    let fd = KeptFd::open(|| {
        shm_open(
            name.os_name().as_str(),
            OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    })
    .map_err(|e| os_error("shm_open", name, e))?;
    let st = fstat(fd.as_fd()).map_err(|e| os_error("fstat", name, e))?;
    check_file(&st, name, owner)?;
    let len = u64::try_from(st.st_size).unwrap_or(0);
    if len < min_len {
        return Err(Error::SegmentTooSmall {
            name: name.as_str().to_owned(),
            len,
            needed: min_len,
        });
    }
    Ok((fd, st))
}

/// A mapping that joined and did not leave lets go of its lease
/// explicitly, in the process that took it: the lease is this
/// mapping's, not that of whatever else shares its description.
impl Drop for Segment {
    fn drop(&mut self) {
        if self.leased && self.origin.is_here() {
            ofd::unlock(self.fd(), MAPPED_LEASE);
        }
    }
}

impl Segment {
    /// Make a segment of `len` bytes, zero-filled, not yet under any
    /// name: an `O_TMPFILE` in the shm directory, which [`Self::link`]
    /// later publishes, so that no one ever sees it half-initialized.
    /// Where the shm directory has no `O_TMPFILE`, the name is created
    /// at once (`O_EXCL`) and openers wait for the header instead.
    pub(crate) fn create(
        name: &SegmentName,
        len: u64,
        mode: u32,
        group: Option<u32>,
        replace_stale: bool,
    ) -> Result<Self> {
        let mode = Mode::from_bits_truncate(mode);
        // Fail early (the link below is the real test) rather than fill
        // a large segment for a name that is taken.
        if !replace_stale && lstat(path_of(name).as_str()).is_ok() {
            return Err(Error::AlreadyExists {
                name: name.as_str().to_owned(),
            });
        }
        let unnamed = KeptFd::open(|| {
            nix::fcntl::open(
                SHM_DIR,
                OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
                mode,
            )
        });
        let (file, named) = match unnamed {
            Ok(fd) => (fd, false),
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                let flags = OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_RDWR
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = KeptFd::open(|| shm_open(name.os_name().as_str(), flags, mode))
                    .map_err(|e| os_error("shm_open", name, e))?;
                (fd, true)
            }
            Err(e) => return Err(os_error("open(O_TMPFILE)", name, e)),
        };
        let st = fstat(file.as_fd()).map_err(|e| os_error("fstat", name, e))?;
        // From here on a name given early is ours: a failure unlinks it.
        let unpublished = named.then(|| UnpublishedName {
            name: name.clone(),
            dev: st.st_dev,
            ino: st.st_ino,
            origin: Origin::here(),
        });
        // The mode is filtered by the umask; set exactly what was asked.
        fchmod(file.as_fd(), mode).map_err(|e| os_error("fchmod", name, e))?;
        if let Some(gid) = group {
            nix::unistd::fchown(file.as_fd(), None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| Error::Io {
                    op: "fchown to the group asked for (is this user in it?)",
                    name: name.as_str().to_owned(),
                    source: e.into(),
                })?;
        }
        let off_len = i64::try_from(len).map_err(|_| Error::CapacityTooLarge { requested: len })?;
        // Reserve every page now: a later first touch of an unbacked tmpfs
        // page on a full /dev/shm would be a SIGBUS, not an error.
        nix::fcntl::posix_fallocate(file.as_fd(), 0, off_len).map_err(|e| match e {
            Errno::ENOSPC | Errno::EFBIG | Errno::ENOMEM => {
                // The casts: the block-count types are not u64 on
                // every target.
                #[allow(clippy::unnecessary_cast)]
                let (free, total) = nix::sys::statvfs::fstatvfs(file.as_fd())
                    .map(|st| {
                        let unit = st.fragment_size() as u64;
                        let free = (st.blocks_available() as u64).saturating_mul(unit);
                        (free, (st.blocks() as u64).saturating_mul(unit))
                    })
                    .unwrap_or((0, 0));
                Error::NoSpace {
                    name: name.as_str().to_owned(),
                    bytes: len,
                    free,
                    total,
                }
            }
            e => os_error("posix_fallocate", name, e),
        })?;
        ofd::share(file.as_fd(), MAPPED_LEASE)
            .map_err(|e| os_error("fcntl(F_OFD_SETLK)", name, e))?;
        Ok(Segment {
            map: map(&file, len, name)?,
            file,
            name: name.clone(),
            dev: st.st_dev,
            ino: st.st_ino,
            file_len: len,
            origin: Origin::here(),
            leased: true,
            linked: named,
            unpublished,
        })
    }

    /// Publish a segment made by [`Self::create`] under its name
    /// (`linkat`, which like `O_EXCL` refuses a name that exists). On
    /// `AlreadyExists`, `replace` may remove the segment in the way
    /// (returning true), and the link is tried once more.
    pub(crate) fn link(&mut self, replace: impl FnOnce(&str) -> Result<bool>) -> Result<()> {
        if self.linked {
            // Named at create; published now, so its users own the name.
            self.unpublished = None;
            return Ok(());
        }
        let from = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let to = path_of(&self.name);
        let link = || {
            nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                from.as_str(),
                nix::fcntl::AT_FDCWD,
                to.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
        };
        match link() {
            Err(Errno::EEXIST) if replace(self.name.as_str())? => link(),
            other => other,
        }
        .map_err(|e| os_error("linkat", &self.name, e))?;
        self.linked = true;
        Ok(())
    }

    /// Map an existing segment after checking that it is a regular file,
    /// owned by us (unless allowed otherwise), and at least `min_len`
    /// bytes long. The mapping does not count as a user until it
    /// [`join`](Self::join)s: an opener first validates what it mapped,
    /// and one that fails is never seen by a leaving user (which would
    /// then keep the name for it) nor leaves itself.
    pub(crate) fn open(name: &SegmentName, min_len: u64, owner: Owner<'_>) -> Result<Self> {
        let (file, st) = open_checked(name, min_len, owner)?;
        Segment::mapped(file, &st, name.clone())
    }

    /// A named file of stat `st`, mapped whole: linked, not yet a user.
    fn mapped(file: KeptFd, st: &FileStat, name: SegmentName) -> Result<Segment> {
        let file_len = u64::try_from(st.st_size).unwrap_or(0);
        Ok(Segment {
            map: map(&file, file_len, &name)?,
            file,
            name,
            dev: st.st_dev,
            ino: st.st_ino,
            file_len,
            origin: Origin::here(),
            leased: false,
            linked: true,
            unpublished: None,
        })
    }

    /// Become one of the segment's users: take the shared lease on
    /// byte 0, then check under a shared `flock` (waited for until
    /// `deadline`) that the name still names this file. A concurrent
    /// removal (a last user leaving, a stale removal) holds the `flock`
    /// exclusively, so it either sees this lease or unlinked the name
    /// first; `Ok(false)` then, and the opener starts over.
    pub(crate) fn join(&mut self, deadline: Instant) -> Result<bool> {
        ofd::share(self.fd(), MAPPED_LEASE).map_err(|e| self.os_error("fcntl(F_OFD_SETLK)", e))?;
        self.leased = true;
        let still = flock_until(
            self.fd(),
            FlockKind::Shared,
            deadline,
            &self.name,
            "another process holds a lock on the segment file (flock) for longer than this \
             open waits",
        )
        .map(|_checking| names_file(&self.name, self.dev, self.ino));
        if !matches!(still, Ok(true)) {
            self.unlease();
        }
        still
    }

    fn unlease(&mut self) {
        ofd::unlock(self.fd(), MAPPED_LEASE);
        self.leased = false;
    }

    /// Unlink the name if `decide` says so about the segment it names,
    /// holding an exclusive `flock` on the segment meanwhile and checking
    /// that the name still refers to it: two processes replacing the
    /// same stale segment cannot both unlink it, neither can unlink a
    /// segment created in its place, and an opener either is seen by
    /// `decide` or finds the name gone (see [`Self::join`]).
    /// `decide` reads a copy of the file's first `min_len` bytes
    /// ([`Look::snapshot`]), not a mapping: the file's owner may be
    /// another user, who can shrink it meanwhile. `Ok(false)` if not
    /// unlinked. A verdict to zero the file first is carried out before
    /// the unlink, unless someone holds a lock on the file (a user, who
    /// zeroes it as the last one leaves).
    pub(crate) fn unlink_if(
        name: &SegmentName,
        min_len: u64,
        owner: Owner<'_>,
        decide: impl FnOnce(&Segment) -> Result<Verdict>,
    ) -> Result<bool> {
        let look = Look::open(name, owner)?;
        let _removing = flock_until(
            look.file.as_fd(),
            FlockKind::Exclusive,
            Instant::now() + REMOVE_PATIENCE,
            name,
            "another process holds a lock on the segment file (flock) for longer than a \
             removal waits",
        )?;
        let segment = look.snapshot(min_len)?;
        if !names_file(name, segment.dev, segment.ino) {
            return Ok(false);
        }
        match decide(&segment)? {
            Verdict::Keep => return Ok(false),
            Verdict::Remove { zero_from: None } => {}
            Verdict::Remove {
                zero_from: Some(from),
            } => {
                if !segment.in_use() {
                    zero_file(&segment.file, name, from)?;
                }
            }
        }
        unlink(name)?;
        Ok(true)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.raw().as_mut_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.raw().len()
    }

    /// The file's length: the mapping's, except for a header's copy.
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    pub(crate) fn name(&self) -> &SegmentName {
        &self.name
    }

    /// The offset in the file of `field`, which lies in the mapping.
    pub(crate) fn offset_of<F>(&self, field: &F) -> u64 {
        (field as *const F as usize).wrapping_sub(self.as_ptr() as usize) as u64
    }

    /// A new open file description of this segment's file, for a lease.
    /// `Forked` in a child that inherited the segment: a lease taken
    /// there would be on the child's own description, not the ring's.
    pub(crate) fn reopen(&self) -> Result<KeptFd> {
        if !self.origin.is_here() {
            return Err(Error::Forked {
                name: self.name.as_str().to_owned(),
            });
        }
        let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        KeptFd::open(|| {
            nix::fcntl::open(
                path.as_str(),
                OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        })
        .map_err(|e| os_error("open(/proc/self/fd)", &self.name, e))
    }

    /// Whether another open file description holds a lock on
    /// `offset..offset + len` (`len` 0: any byte from `offset` on). In
    /// a forked child that inherited the segment, always: its
    /// descriptor no longer reaches the ring's file (`fork.rs`), and a
    /// holder is never judged dead on doubt.
    pub(crate) fn is_leased(&self, offset: u64, len: u64) -> bool {
        !self.origin.is_here() || ofd::probe(self.fd(), offset, len)
    }

    /// Whether any other mapping, holder or remover holds a lock on the
    /// file: the kernel's word on whether the segment is in use.
    pub(crate) fn in_use(&self) -> bool {
        self.is_leased(0, 0)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    pub(crate) fn os_error(&self, op: &'static str, errno: Errno) -> Error {
        os_error(op, &self.name, errno)
    }

    /// This mapping's user leaves (its handles have dropped their
    /// other leases): drop the lease on byte 0 and, unless `keep_name`,
    /// unlink the name if nobody else holds any lock on the file; see
    /// "Who removes a name" above. The last user zeroes the file from
    /// `zero_from` on first, when given (even if the name went
    /// meanwhile). `Ok(true)` if it unlinked. In a
    /// forked child, nothing: the lease and the name are the parent's.
    /// Waits at most [`LEAVE_PATIENCE`] for the `flock`: this runs in
    /// destructors.
    pub(crate) fn leave(&mut self, keep_name: bool, zero_from: Option<u64>) -> Result<bool> {
        if !self.origin.is_here() || !self.leased {
            return Ok(false);
        }
        self.unlease();
        if keep_name || !self.linked {
            return Ok(false);
        }
        let _removing = flock_until(
            self.fd(),
            FlockKind::Exclusive,
            Instant::now() + LEAVE_PATIENCE,
            &self.name,
            "another process holds a lock on the segment file (flock): the last user left \
             the name behind",
        )?;
        if self.in_use() {
            return Ok(false);
        }
        // The last user, whether or not the name still names the file
        // (a `remove` may have taken it while we were in it).
        if let Some(from) = zero_from {
            zero_file(&self.file, &self.name, from)?;
        }
        if !names_file(&self.name, self.dev, self.ino) {
            return Ok(false);
        }
        unlink(&self.name)?;
        log::debug!(
            target: "shmring",
            "removed the name {:?}: its last user left",
            self.name.as_str()
        );
        Ok(true)
    }
}

/// Zero `file`'s bytes from `from` to its end, through a writable
/// descriptor of its own (`file` may be a look's, opened for reading),
/// never through a mapping. The pages are handed back to the kernel by
/// punching a hole (tmpfs supports it; a read or a mapping then finds
/// zeros), or, where a hole cannot be punched, overwritten by `pwrite`.
/// The size stays, so an opener still checking a mapping of the file
/// reads zeros past the header, never a SIGBUS.
fn zero_file(file: &KeptFd, name: &SegmentName, from: u64) -> Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os_error("open(/proc/self/fd) to zero", name, e))?;
    let st = fstat(fd.as_fd()).map_err(|e| os_error("fstat", name, e))?;
    let end = u64::try_from(st.st_size).unwrap_or(0);
    if from >= end {
        return Ok(());
    }
    let at = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let hole = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    match fallocate(fd.as_fd(), hole, at(from), at(end - from)) {
        Ok(()) => return Ok(()),
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => {}
        Err(e) => return Err(os_error("fallocate(PUNCH_HOLE)", name, e)),
    }
    let zeros = vec![0u8; 64 << 10];
    let mut pos = from;
    while pos < end {
        let n = zeros.len().min((end - pos) as usize);
        match nix::sys::uio::pwrite(fd.as_fd(), &zeros[..n], at(pos)) {
            Ok(written) => pos += written as u64,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(os_error("pwrite zeros", name, e)),
        }
    }
    Ok(())
}

/// Read into `buf` at `offset` with `pread`, as much as the file holds
/// there: the count read (short at the end of the file). Unlike a
/// load from a mapping, a read past the end of a file that shrank
/// meanwhile is not a SIGBUS.
fn pread(file: &KeptFd, name: &SegmentName, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = i64::try_from(offset + done as u64).unwrap_or(i64::MAX);
        match nix::sys::uio::pread(file.as_fd(), &mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(os_error("pread", name, e)),
        }
    }
    Ok(done)
}

impl Segment {
    /// Read the file's bytes at `offset` with `pread` (see [`pread`]):
    /// a look at a segment whose layout is not this version's.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        pread(&self.file, &self.name, buf, offset)
    }
}

/// A file under a segment name, opened only to be looked at: read with
/// `pread`, never mapped ([`Look::snapshot`] copies a header). Whatever
/// lies in the shm directory may be another program's or another
/// user's, which may shrink its file at any time: touching a mapping
/// past the new end is a SIGBUS, a `pread` there just reads less. A look
/// takes no lock of any kind, so it never counts as a user.
pub(crate) struct Look {
    file: KeptFd,
    name: SegmentName,
    /// The file's owner and permission bits, from its `fstat`.
    owner: u32,
    mode: u32,
}

impl Look {
    /// Open `name` to look at it. First as a path only (`O_PATH |
    /// O_NOFOLLOW`: opening has no effect on what it names, a symlink
    /// is not followed, a FIFO does not wait for a writer), checked with
    /// `fstat`: a regular file (else `NotAFile`, as an open
    /// says), owned by us unless `owner` allows another
    /// (`ForeignOwner`). Only then is that same file opened for reading
    /// only, through `/proc/self/fd`, `O_NONBLOCK | O_CLOEXEC`; a file the
    /// kernel does not let us read is `NotReadable`, naming its owner and
    /// mode.
    pub(crate) fn open(name: &SegmentName, owner: Owner<'_>) -> Result<Look> {
        let path = nix::fcntl::open(
            path_of(name).as_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| os_error("open(O_PATH)", name, e))?;
        let st = fstat(path.as_fd()).map_err(|e| os_error("fstat", name, e))?;
        check_file(&st, name, owner)?;
        let reopen = format!("/proc/self/fd/{}", path.as_raw_fd());
        let fd = KeptFd::open(|| {
            nix::fcntl::open(
                reopen.as_str(),
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        })
        .map_err(|e| match e {
            Errno::EACCES | Errno::EPERM => Error::NotReadable {
                name: name.as_str().to_owned(),
                owner: st.st_uid,
                mode: st.st_mode & 0o7777,
            },
            e => os_error("open(/proc/self/fd)", name, e),
        })?;
        Ok(Look {
            file: fd,
            name: name.clone(),
            owner: st.st_uid,
            mode: st.st_mode & 0o7777,
        })
    }

    /// The file's owner (uid) and permission bits.
    pub(crate) fn owner_and_mode(&self) -> (u32, u32) {
        (self.owner, self.mode)
    }

    /// A copy of the file's first `header_len` bytes, read with `pread`
    /// into memory of our own, as a segment to read a header from: its
    /// owner can shrink the file while we read the copy, and nothing
    /// faults. The copy reaches only the header (`len()` is the copy's;
    /// `file_len()` the file's), and probes liveness through the file
    /// itself. `SegmentTooSmall` if the file is shorter than a header.
    pub(crate) fn snapshot(&self, header_len: u64) -> Result<Segment> {
        let st = fstat(self.file.as_fd()).map_err(|e| os_error("fstat", &self.name, e))?;
        let file_len = u64::try_from(st.st_size).unwrap_or(0);
        let too_small = |len| Error::SegmentTooSmall {
            name: self.name.as_str().to_owned(),
            len,
            needed: header_len,
        };
        if file_len < header_len {
            return Err(too_small(file_len));
        }
        let io = |op, source| Error::Io {
            op,
            name: self.name.as_str().to_owned(),
            source,
        };
        let mut copy = MmapOptions::new()
            .len(header_len as usize)
            .map_anon()
            .map_err(|e| io("mmap", e))?;
        let read = pread(&self.file, &self.name, &mut copy[..], 0)?;
        if (read as u64) < header_len {
            return Err(too_small(read as u64));
        }
        let file =
            KeptFd::open(|| self.file.as_fd().try_clone_to_owned()).map_err(|e| io("dup", e))?;
        Ok(Segment {
            map: KeptMap::map(|| Ok::<_, Error>(MmapRaw::from(copy)))?,
            file,
            name: self.name.clone(),
            dev: st.st_dev,
            ino: st.st_ino,
            file_len,
            origin: Origin::here(),
            leased: false,
            linked: true,
            unpublished: None,
        })
    }

    /// Remove the name, if it still names the file looked at: under an
    /// exclusive `flock`, as every removal by name takes it, so no
    /// shmring process opening or leaving the segment races it.
    /// `NotFound` if the name went or names another file now. With
    /// `zero_from`, a file nobody holds a lock on is zeroed from there
    /// first (see [`zero_file`]).
    pub(crate) fn unlink(self, zero_from: Option<u64>) -> Result<()> {
        let _removing = flock_until(
            self.file.as_fd(),
            FlockKind::Exclusive,
            Instant::now() + REMOVE_PATIENCE,
            &self.name,
            "another process holds a lock on the segment file (flock) for longer than a \
             removal waits",
        )?;
        let st = fstat(self.file.as_fd()).map_err(|e| os_error("fstat", &self.name, e))?;
        if !names_file(&self.name, st.st_dev, st.st_ino) {
            return Err(Error::NotFound {
                name: self.name.as_str().to_owned(),
            });
        }
        // A file in use is zeroed by its last user as it leaves.
        if let Some(from) = zero_from {
            if !ofd::probe(self.file.as_fd(), 0, 0) {
                zero_file(&self.file, &self.name, from)?;
            }
        }
        unlink(&self.name)
    }

    /// The file's size now.
    pub(crate) fn len(&self) -> Result<u64> {
        let st = fstat(self.file.as_fd()).map_err(|e| os_error("fstat", &self.name, e))?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Read at `offset` with `pread` (see [`pread`]): the count read.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        pread(&self.file, &self.name, buf, offset)
    }
}

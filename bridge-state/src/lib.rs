//! What a shmring–Zenoh bridge must remember across its own restarts, and
//! the counters operators read, in one small file per bridge.
//!
//! # Why a file, and what it holds
//!
//! A bridge that is killed and started again must go on numbering, and
//! counting, where the previous one stopped:
//!
//! - The **outbound** bridge (ring → Zenoh) is its ring's consumer. It
//!   records, *before* sending a batch, where the batch lies in the ring's
//!   byte stream and which sequence numbers it gets ([`Span`]). Restarted,
//!   it compares the ring's read position with the record: at the start, the
//!   batch was not released and is sent again with the same numbers (the
//!   receiver drops the copies it already has); at the end, the numbering
//!   goes on after it. Anything else (a lost or foreign file, a ring made
//!   anew) starts a new source, which receivers count from scratch. A ring
//!   whose consumers share one read position (MPMC) records the ring
//!   positions of the values the batch holds instead, and a restarted
//!   bridge maps each value it takes over from its predecessor to its
//!   number ([`OutState::resume_shared`], [`Span::seq_of`]).
//! - The **inbound** bridge (Zenoh → ring) records per source, after each
//!   commit into its ring, the next number it expects, which of the 64
//!   before it arrived, and its counts. Restarted, it knows what it already
//!   delivered, so the first sample it hears after the gap is counted
//!   against the right number: what the restart lost is counted.
//!
//! A process crash can land between a commit and the record of it: then
//! one message is counted lost although it was delivered (an over-count
//! of at most one per crash; never an under-count, never a duplicate).
//!
//! # Crash safety without system calls
//!
//! Every record is stored twice, in two slots, under a generation word:
//! a writer fills the slot the current generation does not point at, then
//! publishes it by bumping the generation (Release). A process killed at
//! any instruction leaves either the old record or the new one, whole: the
//! file is a shared mapping, so every store that executed is in the page
//! cache. The same generation lets another process (the `shmring`
//! command) read a record consistently while the bridge writes it: read
//! the generation, the slot, the generation again, and retry if it moved.
//! No `msync`: the record must outlive the process, not the machine (a
//! host that restarts loses the rings as well).
//!
//! One bridge writes a file at a time (an exclusive `flock`); anyone may
//! read it. The files live in /dev/shm next to their rings
//! ([`default_path`]) unless the bridge is told otherwise; then a
//! locator next to the ring says where ([`register`], [`locate`]). When
//! the ring goes, `shmring rm` removes the state files no bridge holds
//! ([`retire`]).
//!
//! # Files planted by others
//!
//! /dev/shm is writable by every local user, so what lies at a state
//! file's path may be anything. Every open, the bridge's and the
//! reader's, is `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` (a symlink is
//! refused, a FIFO does not block the open), then checked with `fstat`:
//! only a regular file owned by this process's effective uid (or, for
//! [`read_owned_by`], the uid given) is used; anything else is
//! [`Error::NotRegular`] or [`Error::ForeignOwner`], at once. Nothing is
//! read or mapped before those checks.
//!
//! ```
//! use shmring_bridge_state::{InState, Counts, SourceState};
//! # let path = std::env::temp_dir().join(format!("doc-in-state-{}", std::process::id()));
//! let mut state = InState::open(&path)?;
//! let i = state.entry_for(42);
//! let mut s = state.get(i);
//! s.next = 10;
//! s.counts.delivered = 10;
//! state.set(i, &s);
//! drop(state); // the bridge exits (or is killed)...
//! let state = InState::open(&path)?; // ...and a new one resumes
//! assert_eq!(state.sources()[0].next, 10);
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), shmring_bridge_state::Error>(())
//! ```

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut};
use nix::fcntl::{Flock, FlockArg};

/// `b"SHMRBRG1"`, little-endian: the first word of every state file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMRBRG1");
/// The layout version; a file of another version is refused, not guessed at.
pub const VERSION: u64 = 1;

/// Sources an inbound file tracks at once. When more have been heard (each
/// outbound bridge restarted without its file is a new one), the oldest
/// entry's counts are folded into [`InSnapshot::retired`] and its place
/// reused.
pub const SOURCES: usize = 255;

// Word offsets. Header: magic, version, kind, writer pid, ring identity.
const W_MAGIC: usize = 0;
const W_VERSION: usize = 1;
const W_KIND: usize = 2;
const W_PID: usize = 3;
const W_RING_ID: usize = 4;
// Outbound: source, generation, two slots of a Span, then counters.
const W_OUT_SOURCE: usize = 8;
const W_OUT_GEN: usize = 9;
const W_OUT_SLOTS: usize = 10; // 2 x 4 words
const W_OUT_SENT: usize = 18;
const W_OUT_BYTES: usize = 19;
const W_OUT_RESTARTS: usize = 20;
const OUT_WORDS: usize = 32;
// Inbound: unnumbered samples, next entry to evict; entry 0 is the retired
// totals, entries 1..=SOURCES the sources.
const W_IN_UNNUMBERED: usize = 8;
const W_IN_EVICT: usize = 9;
const W_IN_RESTARTS: usize = 10;
const W_IN_MALFORMED: usize = 11;
const IN_HEADER_WORDS: usize = 16;
const ENTRY_WORDS: usize = 16; // source, generation, 2 x 7-word slots
const SLOT_WORDS: usize = 7;
const IN_WORDS: usize = IN_HEADER_WORDS + (SOURCES + 1) * ENTRY_WORDS;

const KIND_OUT: u64 = 1;
const KIND_IN: u64 = 2;

/// What can go wrong with a state file; every variant names it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// It could not be opened, sized, mapped or read.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Another bridge writes it now (two bridges on one ring and direction?).
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// It is not a bridge state file of this version and direction.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What did not match.
        what: String,
    },
    /// What lies at the path is not a regular file (a FIFO, socket,
    /// device, directory or symlink planted there?): never opened for
    /// reading, never waited on.
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The file belongs to another user (anyone can create a file in
    /// /dev/shm under any free name): refused.
    ForeignOwner {
        /// The file.
        path: PathBuf,
        /// The uid that owns it.
        owner: u32,
        /// The uid it had to belong to.
        expected: u32,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, op, source } => {
                write!(f, "bridge state {}: {op} failed: {source}", path.display())
            }
            Error::InUse { path } => write!(
                f,
                "bridge state {} is locked by another bridge (is one already running for this ring?)",
                path.display()
            ),
            Error::Invalid { path, what } => write!(
                f,
                "bridge state {} is not usable: {what} (another version, or not a bridge's file?)",
                path.display()
            ),
            Error::NotRegular { path, what } => write!(
                f,
                "bridge state {} is a {what}, not a regular file (planted by another program?): not used",
                path.display()
            ),
            Error::ForeignOwner {
                path,
                owner,
                expected,
            } => write!(
                f,
                "bridge state {} is owned by uid {owner}, not {expected} (planted by another user?): not used",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Result` with a state [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which bridge a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Ring → Zenoh.
    Out,
    /// Zenoh → ring.
    In,
}

/// Where a bridge keeps its state by default: /dev/shm/`ring`.bridge-out
/// or .bridge-in, next to the ring itself (and, like it, gone at reboot).
///
/// ```
/// use shmring_bridge_state::{default_path, Direction};
/// assert_eq!(default_path("orders", Direction::In).to_str(), Some("/dev/shm/orders.bridge-in"));
/// ```
pub fn default_path(ring: &str, direction: Direction) -> PathBuf {
    let suffix = match direction {
        Direction::Out => "bridge-out",
        Direction::In => "bridge-in",
    };
    PathBuf::from("/dev/shm").join(format!("{ring}.{suffix}"))
}

/// Where a bridge that keeps its state elsewhere (`--state PATH`) says
/// so: a small text file next to the ring, /dev/shm/`ring`.bridge-out.where
/// (or .bridge-in.where), holding the state file's absolute path, so that
/// `shmring stat` finds the bridge and `shmring rm` retires its state
/// wherever it is.
pub fn locator_path(ring: &str, direction: Direction) -> PathBuf {
    let mut path = default_path(ring, direction).into_os_string();
    path.push(".where");
    PathBuf::from(path)
}

/// The longest path a locator may hold.
const LOCATOR_MAX: u64 = 4096;

/// Record that the bridge of `ring` in `direction` keeps its state at
/// `path` (a file it has opened, so it exists): a locator (see
/// [`locator_path`]) when that is not the default path, none when it is.
///
/// ```
/// use shmring_bridge_state::{locate, register, Direction, OutState};
/// # let ring = format!("doc-register-{}", std::process::id());
/// # let path = std::env::temp_dir().join(format!("{ring}.state"));
/// let _state = OutState::open(&path)?;
/// register(&ring, Direction::Out, &path)?;
/// assert_eq!(locate(&ring, Direction::Out)?, Some(path.canonicalize().unwrap()));
/// # std::fs::remove_file(&path).unwrap();
/// # std::fs::remove_file(shmring_bridge_state::locator_path(&ring, Direction::Out)).unwrap();
/// # Ok::<(), shmring_bridge_state::Error>(())
/// ```
pub fn register(ring: &str, direction: Direction, path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let locator = locator_path(ring, direction);
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, op, source }
    };
    let real = std::fs::canonicalize(path).map_err(io("canonicalize", path))?;
    if real == default_path(ring, direction) {
        return match std::fs::remove_file(&locator) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &locator)(e)),
            _ => Ok(()),
        };
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(0o600);
    let mut file = open_checked(&locator, &mut opts, euid())?.ok_or_else(|| Error::Io {
        path: locator.clone(),
        op: "open",
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let mut text = real.as_os_str().as_bytes().to_vec();
    text.push(b'\n');
    file.write_all(&text).map_err(io("write", &locator))
}

/// Where the state of `ring`'s bridge in `direction` is: the default
/// path if anything lies there, else the path a locator records (see
/// [`register`]); `None` if neither exists. The locator is read only if
/// it is a regular file of this process's effective uid, holding an
/// absolute path; what lies at that path is [`read`]'s to check.
pub fn locate(ring: &str, direction: Direction) -> Result<Option<PathBuf>> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let default = default_path(ring, direction);
    if std::fs::symlink_metadata(&default).is_ok() {
        return Ok(Some(default));
    }
    let locator = locator_path(ring, direction);
    let Some(file) = open_checked(&locator, std::fs::OpenOptions::new().read(true), euid())? else {
        return Ok(None);
    };
    let mut text = Vec::new();
    file.take(LOCATOR_MAX + 1)
        .read_to_end(&mut text)
        .map_err(|source| Error::Io {
            path: locator.clone(),
            op: "read",
            source,
        })?;
    let invalid = |what: &str| Error::Invalid {
        path: locator.clone(),
        what: what.to_owned(),
    };
    if text.len() as u64 > LOCATOR_MAX {
        return Err(invalid("longer than a path"));
    }
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&text));
    if !path.is_absolute() {
        return Err(invalid("does not hold an absolute path"));
    }
    Ok(Some(path))
}

/// What [`retire`] did with one bridge state file of a ring.
#[derive(Debug)]
#[non_exhaustive]
pub enum Retired {
    /// The file (and its locator, if any) was removed, or would be
    /// (a dry run).
    Removed(PathBuf),
    /// A bridge holds the file: it runs, and its state was kept.
    Running {
        /// The file.
        path: PathBuf,
        /// The last bridge process that wrote it (in its pid namespace).
        pid: u32,
    },
    /// It could not be judged or removed: kept.
    Failed(Error),
}

/// Remove the state files the bridges of `ring` left (the default ones,
/// and those a locator points to, with the locators), for `shmring rm`
/// when the ring goes: the state numbers one ring's stream and means
/// nothing to a ring made anew under its name. A file a bridge holds
/// (its exclusive `flock`) is kept: that bridge runs. A file that is not
/// a bridge state file of this user is kept too, whatever a locator
/// says. With `dry_run`, only says what it would remove.
///
/// ```
/// use shmring_bridge_state::{default_path, retire, Direction, OutState, Retired};
/// # let ring = format!("doc-retire-{}", std::process::id());
/// let path = default_path(&ring, Direction::Out);
/// let state = OutState::open(&path)?;
/// assert!(matches!(retire(&ring, false)[..], [Retired::Running { .. }])); // its bridge runs
/// drop(state); // the bridge exits
/// assert!(matches!(retire(&ring, false)[..], [Retired::Removed(_)]));
/// assert!(!path.exists());
/// # Ok::<(), shmring_bridge_state::Error>(())
/// ```
pub fn retire(ring: &str, dry_run: bool) -> Vec<Retired> {
    [Direction::Out, Direction::In]
        .into_iter()
        .filter_map(|direction| match locate(ring, direction) {
            Ok(Some(path)) => Some(retire_one(ring, direction, path, dry_run)),
            Ok(None) => None,
            Err(e) => Some(Retired::Failed(e)),
        })
        .collect()
}

fn retire_one(ring: &str, direction: Direction, path: PathBuf, dry_run: bool) -> Retired {
    let locator = locator_path(ring, direction);
    let file = match open_checked(&path, std::fs::OpenOptions::new().read(true), euid()) {
        Ok(Some(file)) => file,
        // The state went and left its locator behind.
        Ok(None) => {
            if !dry_run {
                let _ = std::fs::remove_file(&locator);
            }
            return Retired::Removed(locator);
        }
        Err(e) => return Retired::Failed(e),
    };
    let mut head = [0u8; 32];
    let is_state = std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).is_ok()
        && head[..8] == MAGIC.to_le_bytes();
    if !is_state {
        return Retired::Failed(Error::Invalid {
            path,
            what: "no bridge state magic: not removed".into(),
        });
    }
    let pid =
        u64::from_le_bytes(head[W_PID * 8..W_PID * 8 + 8].try_into().expect("8 bytes")) as u32;
    // Held while unlinking: a bridge starting now finds it held (`InUse`)
    // or opens the path afresh after the unlink.
    let _held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => held,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Retired::Running { path, pid },
        Err((_, e)) => {
            return Retired::Failed(Error::Io {
                path,
                op: "flock",
                source: e.into(),
            })
        }
    };
    if !dry_run {
        if let Err(source) = std::fs::remove_file(&path) {
            return Retired::Failed(Error::Io {
                path,
                op: "remove",
                source,
            });
        }
        let _ = std::fs::remove_file(&locator);
    }
    Retired::Removed(path)
}

/// A fresh random 64-bit id (never 0): std's randomly keyed hasher, so no
/// dependency for it.
pub fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// The words of a mapping, as atomics.
fn words(bytes: &[u8]) -> &[AtomicU64] {
    debug_assert!((bytes.as_ptr() as usize).is_multiple_of(8) && bytes.len().is_multiple_of(8));
    // SAFETY: the mapping is page-aligned and its length a multiple of 8
    // (checked at open), so it is `len / 8` properly aligned u64 cells;
    // AtomicU64 has u64's size and alignment, and atomics are the right
    // view of memory another process reads or writes at the same time.
    // The slice borrows the mapping, which stays mapped while borrowed.
    // The file is never truncated while mapped: its writer holds an
    // exclusive flock, and nobody resizes a valid state file (a process
    // that does so anyway gets SIGBUS, not a wrong answer).
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<AtomicU64>(), bytes.len() / 8) }
}

/// What a file type is called in an error.
fn type_name(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// Open `path` as `opts` says, adding `O_NOFOLLOW | O_NONBLOCK` (std adds
/// `O_CLOEXEC`): a symlink is refused and nothing planted there (a FIFO
/// without a writer) can make the open wait. Then `fstat`: only a regular
/// file owned by `owner` is returned. `Ok(None)` if nothing is there.
fn open_checked(path: &Path, opts: &mut std::fs::OpenOptions, owner: u32) -> Result<Option<File>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = match opts.custom_flags(flags.bits()).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW's answer for a symlink.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(Error::NotRegular {
                path: path.to_owned(),
                what: "symbolic link",
            })
        }
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                op: "open",
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| Error::Io {
        path: path.to_owned(),
        op: "fstat",
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegular {
            path: path.to_owned(),
            what: type_name(meta.file_type()),
        });
    }
    if meta.uid() != owner {
        return Err(Error::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            expected: owner,
        });
    }
    Ok(Some(file))
}

/// This process's effective uid: whose files it trusts.
fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A file opened for writing, locked, sized and mapped.
struct Writable {
    path: PathBuf,
    map: MmapMut,
    _lock: Flock<File>,
}

impl Writable {
    fn open(path: &Path, kind: u64, len_words: usize) -> Result<(Writable, bool)> {
        let io = |op| {
            let path = path.to_owned();
            move |source| Error::Io { path, op, source }
        };
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600);
        let file = open_checked(path, &mut opts, euid())?.ok_or_else(|| Error::Io {
            path: path.to_owned(),
            op: "open",
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                Error::InUse {
                    path: path.to_owned(),
                }
            } else {
                Error::Io {
                    path: path.to_owned(),
                    op: "flock",
                    source: e.into(),
                }
            }
        })?;
        let len = (len_words * 8) as u64;
        let have = lock.metadata().map_err(io("stat"))?.len();
        let fresh = have == 0;
        if fresh {
            lock.set_len(len).map_err(io("set_len"))?;
        } else if have != len {
            return Err(Error::Invalid {
                path: path.to_owned(),
                what: format!("{have} bytes, expected {len}"),
            });
        }
        // SAFETY: memmap2's contract is that nobody truncates or resizes the
        // file while it is mapped: we hold the exclusive flock that every
        // writer takes first, and the length was just checked or set.
        let map = unsafe { MmapMut::map_mut(&*lock) }.map_err(io("mmap"))?;
        let w = Writable {
            path: path.to_owned(),
            map,
            _lock: lock,
        };
        let ws = w.words();
        if fresh {
            ws[W_VERSION].store(VERSION, Ordering::Relaxed);
            ws[W_KIND].store(kind, Ordering::Relaxed);
            ws[W_MAGIC].store(MAGIC, Ordering::Release);
        } else {
            check_header(path, ws, Some(kind))?;
        }
        ws[W_PID].store(u64::from(std::process::id()), Ordering::Relaxed);
        Ok((w, fresh))
    }

    fn words(&self) -> &[AtomicU64] {
        words(&self.map)
    }
}

fn check_header(path: &Path, ws: &[AtomicU64], kind: Option<u64>) -> Result<u64> {
    let invalid = |what: String| Error::Invalid {
        path: path.to_owned(),
        what,
    };
    if ws.len() < IN_HEADER_WORDS || ws[W_MAGIC].load(Ordering::Acquire) != MAGIC {
        return Err(invalid("no bridge state magic".into()));
    }
    let version = ws[W_VERSION].load(Ordering::Relaxed);
    if version != VERSION {
        return Err(invalid(format!("version {version}, expected {VERSION}")));
    }
    let found = ws[W_KIND].load(Ordering::Relaxed);
    let words = match found {
        KIND_OUT => OUT_WORDS,
        KIND_IN => IN_WORDS,
        other => return Err(invalid(format!("unknown direction {other}"))),
    };
    if kind.is_some_and(|k| k != found) {
        return Err(invalid("written by a bridge of the other direction".into()));
    }
    if ws.len() != words {
        return Err(invalid(format!("{} words, expected {words}", ws.len())));
    }
    Ok(found)
}

/// Read slot `gen & 1` of a two-slot record consistently: retry while a
/// writer moves the generation under us.
fn read_slot<const N: usize>(gen: &AtomicU64, slots: &[AtomicU64]) -> [u64; N] {
    loop {
        let g = gen.load(Ordering::Acquire);
        let base = (g & 1) as usize * N;
        let v: [u64; N] = std::array::from_fn(|i| slots[base + i].load(Ordering::Relaxed));
        // Acquire fence: the slot loads above happen before the second
        // generation load, so an unmoved generation means no writer began
        // overwriting this slot while we read it.
        fence(Ordering::Acquire);
        if gen.load(Ordering::Relaxed) == g {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// Write the slot the generation does not point at, then publish it.
fn write_slot<const N: usize>(gen: &AtomicU64, slots: &[AtomicU64], v: [u64; N]) {
    let g = gen.load(Ordering::Relaxed);
    let base = ((g + 1) & 1) as usize * N;
    for (i, x) in v.into_iter().enumerate() {
        slots[base + i].store(x, Ordering::Relaxed);
    }
    // Release: a reader (or a restarted writer) that sees the new
    // generation sees the whole slot; and the compiler may not move the
    // slot's stores after it, which is what makes a kill leave one whole
    // record or the other.
    gen.store(g + 1, Ordering::Release);
}

/// Where a batch the outbound bridge sends lies in its ring, and the
/// sequence numbers it gets: `start_seq` for the first message at
/// `start_pos`; the batch ends at `end_pos`, before `end_seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// The ring's read position before the batch is released.
    pub start_pos: u64,
    /// Its first message's number.
    pub start_seq: u64,
    /// The read position once it is released.
    pub end_pos: u64,
    /// The number of the message after it.
    pub end_seq: u64,
}

impl Span {
    /// The number a message at ring position `pos` got, if the span
    /// covers it: a ring whose positions count messages (SPSC, MPMC)
    /// numbers a span's messages in position order.
    ///
    /// ```
    /// use shmring_bridge_state::Span;
    /// let span = Span { start_pos: 100, start_seq: 7, end_pos: 103, end_seq: 10 };
    /// assert_eq!((span.seq_of(102), span.seq_of(103)), (Some(9), None));
    /// ```
    pub fn seq_of(&self, pos: u64) -> Option<u64> {
        let len = self.end_pos.wrapping_sub(self.start_pos);
        let at = pos.wrapping_sub(self.start_pos);
        (at < len && len == self.end_seq.wrapping_sub(self.start_seq))
            .then(|| self.start_seq.wrapping_add(at))
    }
}

/// How a restarted outbound bridge goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The source id to send under.
    pub source: u64,
    /// The next sequence number (for the message at the read position).
    pub next_seq: u64,
    /// Whether the previous bridge's numbering goes on (else a new source
    /// starts at 0).
    pub resumed: bool,
}

/// An outbound bridge's file: its source id, the span in flight, counters.
///
/// ```
/// use shmring_bridge_state::{OutState, Span};
/// # let path = std::env::temp_dir().join(format!("doc-out-state-{}", std::process::id()));
/// let state = OutState::open(&path)?;
/// let first = state.resume(7, 0); // ring id 7, read position 0
/// assert!(!first.resumed);
/// state.begin(Span { start_pos: 0, start_seq: 0, end_pos: 96, end_seq: 3 });
/// drop(state); // killed before the ring released the batch...
/// let state = OutState::open(&path)?;
/// let again = state.resume(7, 0);
/// assert_eq!((again.source, again.next_seq), (first.source, 0)); // ...sent again, same numbers
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), shmring_bridge_state::Error>(())
/// ```
pub struct OutState {
    file: Writable,
}

impl std::fmt::Debug for OutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutState")
            .field("path", &self.file.path)
            .finish_non_exhaustive()
    }
}

impl OutState {
    /// Open (or create, mode 0600) and lock the file at `path`.
    pub fn open(path: &Path) -> Result<OutState> {
        let (file, fresh) = Writable::open(path, KIND_OUT, OUT_WORDS)?;
        if !fresh {
            file.words()[W_OUT_RESTARTS].fetch_add(1, Ordering::Relaxed);
        }
        Ok(OutState { file })
    }

    /// Decide how to go on, given the ring's identity (its creation time)
    /// and its read position now (taken with the consumer role held): at
    /// the recorded span's start, its numbers are used again; at or past
    /// its end, numbering goes on after it; anywhere else, or on another
    /// ring, a new source starts at 0.
    pub fn resume(&self, ring_id: u64, read_pos: u64) -> Resume {
        let ws = self.file.words();
        let source = ws[W_OUT_SOURCE].load(Ordering::Relaxed);
        let span = self.span();
        let same_ring = ws[W_RING_ID].load(Ordering::Relaxed) == ring_id;
        let next = if source == 0 || !same_ring {
            None
        } else if read_pos == span.start_pos {
            Some(span.start_seq)
        } else if read_pos.wrapping_sub(span.end_pos) < 1 << 62 {
            // At or past the end: released, perhaps with padding after it
            // (a consumer releases padding alone without a message to
            // send, so without a record).
            Some(span.end_seq)
        } else {
            None
        };
        let resume = match next {
            Some(next_seq) => Resume {
                source,
                next_seq,
                resumed: true,
            },
            None => return self.start_new(ring_id, read_pos),
        };
        self.begin(Span {
            start_pos: read_pos,
            start_seq: resume.next_seq,
            end_pos: read_pos,
            end_seq: resume.next_seq,
        });
        resume
    }

    /// Decide how to go on when the ring has no read position of the
    /// bridge's own (MPMC: its consumers share one): on the same ring,
    /// numbering goes on after the recorded span, and the span stays
    /// recorded, so that a value the previous bridge held (taken over from
    /// it) is sent again under its number ([`Span::seq_of`]); on another
    /// ring, or without a record, a new source starts at 0.
    ///
    /// ```
    /// use shmring_bridge_state::{OutState, Span};
    /// # let path = std::env::temp_dir().join(format!("doc-out-shared-{}", std::process::id()));
    /// let state = OutState::open(&path)?;
    /// let first = state.resume_shared(7);
    /// state.begin(Span { start_pos: 40, start_seq: 0, end_pos: 43, end_seq: 3 });
    /// drop(state); // killed holding positions 41 and 42...
    /// let state = OutState::open(&path)?;
    /// let (again, span) = (state.resume_shared(7), state.span());
    /// assert_eq!((again.source, again.next_seq), (first.source, 3));
    /// assert_eq!(span.seq_of(41), Some(1)); // ...sent again as number 1
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), shmring_bridge_state::Error>(())
    /// ```
    pub fn resume_shared(&self, ring_id: u64) -> Resume {
        let ws = self.file.words();
        let source = ws[W_OUT_SOURCE].load(Ordering::Relaxed);
        if source == 0 || ws[W_RING_ID].load(Ordering::Relaxed) != ring_id {
            return self.start_new(ring_id, 0);
        }
        Resume {
            source,
            next_seq: self.span().end_seq,
            resumed: true,
        }
    }

    /// Start a new source at 0 on ring `ring_id`, read position
    /// `read_pos` (0 for a ring without one of its own, MPMC).
    pub fn start_new(&self, ring_id: u64, read_pos: u64) -> Resume {
        let ws = self.file.words();
        let source = random_id();
        ws[W_OUT_SOURCE].store(source, Ordering::Relaxed);
        ws[W_RING_ID].store(ring_id, Ordering::Relaxed);
        self.begin(Span {
            start_pos: read_pos,
            start_seq: 0,
            end_pos: read_pos,
            end_seq: 0,
        });
        Resume {
            source,
            next_seq: 0,
            resumed: false,
        }
    }

    /// Record the batch about to be sent (before sending it).
    pub fn begin(&self, span: Span) {
        let ws = self.file.words();
        let v = [span.start_pos, span.start_seq, span.end_pos, span.end_seq];
        write_slot::<4>(&ws[W_OUT_GEN], &ws[W_OUT_SLOTS..W_OUT_SLOTS + 8], v);
    }

    /// The span last recorded.
    pub fn span(&self) -> Span {
        let ws = self.file.words();
        let [start_pos, start_seq, end_pos, end_seq] =
            read_slot::<4>(&ws[W_OUT_GEN], &ws[W_OUT_SLOTS..W_OUT_SLOTS + 8]);
        Span {
            start_pos,
            start_seq,
            end_pos,
            end_seq,
        }
    }

    /// Count `messages` handed to Zenoh, of `bytes` in all.
    pub fn count_sent(&self, messages: u64, bytes: u64) {
        let ws = self.file.words();
        ws[W_OUT_SENT].fetch_add(messages, Ordering::Relaxed);
        ws[W_OUT_BYTES].fetch_add(bytes, Ordering::Relaxed);
    }

    /// What the file says now.
    pub fn snapshot(&self) -> OutSnapshot {
        out_snapshot(self.file.words())
    }
}

/// An outbound bridge's counters, as read from its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutSnapshot {
    /// The pid of the bridge that last opened the file.
    pub pid: u32,
    /// The source id it sends under.
    pub source: u64,
    /// The next sequence number (after the span in flight).
    pub next_seq: u64,
    /// Samples handed to Zenoh, over every restart (one sent again after a
    /// restart counts twice).
    pub sent: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Times a bridge started on this file after another.
    pub restarts: u64,
}

fn out_snapshot(ws: &[AtomicU64]) -> OutSnapshot {
    let [_, _, _, end_seq] = read_slot::<4>(&ws[W_OUT_GEN], &ws[W_OUT_SLOTS..W_OUT_SLOTS + 8]);
    OutSnapshot {
        pid: ws[W_PID].load(Ordering::Relaxed) as u32,
        source: ws[W_OUT_SOURCE].load(Ordering::Relaxed),
        next_seq: end_seq,
        sent: ws[W_OUT_SENT].load(Ordering::Relaxed),
        bytes: ws[W_OUT_BYTES].load(Ordering::Relaxed),
        restarts: ws[W_OUT_RESTARTS].load(Ordering::Relaxed),
    }
}

/// What an inbound bridge counted for one source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Samples written into the ring.
    pub delivered: u64,
    /// Samples missing: numbers skipped and not filled later.
    pub lost: u64,
    /// Samples that arrived again (not delivered again).
    pub duplicates: u64,
    /// Samples that arrived after later ones (delivered).
    pub reordered: u64,
    /// Samples dropped because the ring stayed full.
    pub dropped_full: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.dropped_full += o.dropped_full;
    }
}

/// One source as an inbound bridge knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source id (0: an empty entry).
    pub source: u64,
    /// The next sequence number expected.
    pub next: u64,
    /// Bit `i`: number `next - 1 - i` arrived.
    pub seen: u64,
    /// What was counted.
    pub counts: Counts,
}

/// An inbound bridge's file: per source, where it is and what it counted.
pub struct InState {
    file: Writable,
    resumed: bool,
}

impl std::fmt::Debug for InState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InState")
            .field("path", &self.file.path)
            .finish_non_exhaustive()
    }
}

fn entry(ws: &[AtomicU64], i: usize) -> &[AtomicU64] {
    let base = IN_HEADER_WORDS + i * ENTRY_WORDS;
    &ws[base..base + ENTRY_WORDS]
}

fn read_entry(e: &[AtomicU64]) -> SourceState {
    let [next, seen, delivered, lost, duplicates, reordered, dropped_full] =
        read_slot::<SLOT_WORDS>(&e[1], &e[2..2 + 2 * SLOT_WORDS]);
    SourceState {
        source: e[0].load(Ordering::Relaxed),
        next,
        seen,
        counts: Counts {
            delivered,
            lost,
            duplicates,
            reordered,
            dropped_full,
        },
    }
}

fn write_entry(e: &[AtomicU64], s: &SourceState) {
    let c = &s.counts;
    let v = [
        s.next,
        s.seen,
        c.delivered,
        c.lost,
        c.duplicates,
        c.reordered,
        c.dropped_full,
    ];
    write_slot::<SLOT_WORDS>(&e[1], &e[2..2 + 2 * SLOT_WORDS], v);
}

impl InState {
    /// Open (or create, mode 0600) and lock the file at `path`.
    pub fn open(path: &Path) -> Result<InState> {
        let (file, fresh) = Writable::open(path, KIND_IN, IN_WORDS)?;
        if !fresh {
            file.words()[W_IN_RESTARTS].fetch_add(1, Ordering::Relaxed);
        }
        Ok(InState {
            file,
            resumed: !fresh,
        })
    }

    /// Whether the file was there before (a restart).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The entry index of `source`, taking a free one (or the oldest's,
    /// its counts folded into the retired totals) if it is new.
    pub fn entry_for(&mut self, source: u64) -> usize {
        let ws = self.file.words();
        let mut free = None;
        for i in 1..=SOURCES {
            match entry(ws, i)[0].load(Ordering::Relaxed) {
                s if s == source => return i,
                0 if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = free.unwrap_or_else(|| {
            let i = 1 + (ws[W_IN_EVICT].fetch_add(1, Ordering::Relaxed) as usize % SOURCES);
            let old = read_entry(entry(ws, i));
            let retired = entry(ws, 0);
            let mut totals = read_entry(retired);
            totals.counts.add(&old.counts);
            write_entry(retired, &totals);
            i
        });
        let e = entry(ws, i);
        write_entry(e, &SourceState::default());
        e[0].store(source, Ordering::Release);
        i
    }

    /// Entry `i`'s state.
    pub fn get(&self, i: usize) -> SourceState {
        read_entry(entry(self.file.words(), i))
    }

    /// Record entry `i`'s state (after the commit it accounts for).
    pub fn set(&self, i: usize, s: &SourceState) {
        write_entry(entry(self.file.words(), i), s)
    }

    /// Count a sample that carried no bridge numbering.
    pub fn count_unnumbered(&self) {
        self.file.words()[W_IN_UNNUMBERED].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a sample that was not a value of the ring's type.
    pub fn count_malformed(&self) {
        self.file.words()[W_IN_MALFORMED].fetch_add(1, Ordering::Relaxed);
    }

    /// Every source known.
    pub fn sources(&self) -> Vec<SourceState> {
        in_snapshot(self.file.words()).sources
    }

    /// What the file says now.
    pub fn snapshot(&self) -> InSnapshot {
        in_snapshot(self.file.words())
    }
}

/// An inbound bridge's counters, as read from its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InSnapshot {
    /// The pid of the bridge that last opened the file.
    pub pid: u32,
    /// The sources it tracks.
    pub sources: Vec<SourceState>,
    /// Counts of sources no longer tracked.
    pub retired: Counts,
    /// Samples without a bridge's numbering (delivered, not accounted).
    pub unnumbered: u64,
    /// Samples that were not a value of a typed ring's type (the wrong
    /// length): dropped.
    pub malformed: u64,
    /// Times a bridge started on this file after another.
    pub restarts: u64,
}

impl InSnapshot {
    /// Every source's counts, retired ones included.
    pub fn totals(&self) -> Counts {
        let mut t = self.retired;
        for s in &self.sources {
            t.add(&s.counts);
        }
        t
    }
}

fn in_snapshot(ws: &[AtomicU64]) -> InSnapshot {
    let sources = (1..=SOURCES)
        .filter(|&i| entry(ws, i)[0].load(Ordering::Acquire) != 0)
        .map(|i| read_entry(entry(ws, i)))
        .collect();
    InSnapshot {
        pid: ws[W_PID].load(Ordering::Relaxed) as u32,
        sources,
        retired: read_entry(entry(ws, 0)).counts,
        unnumbered: ws[W_IN_UNNUMBERED].load(Ordering::Relaxed),
        malformed: ws[W_IN_MALFORMED].load(Ordering::Relaxed),
        restarts: ws[W_IN_RESTARTS].load(Ordering::Relaxed),
    }
}

/// A state file, read without locking it (the bridge may be writing it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// An outbound bridge's.
    Out(OutSnapshot),
    /// An inbound bridge's.
    In(InSnapshot),
}

/// Read the state file at `path`: what `shmring stat` and `metrics` show.
/// `Ok(None)` if there is none. Only a regular file owned by this
/// process's effective uid is read (see "Files planted by others" above):
/// anything else is an error, returned at once.
///
/// ```
/// use shmring_bridge_state::{read, OutState, Snapshot};
/// # let path = std::env::temp_dir().join(format!("doc-read-state-{}", std::process::id()));
/// let state = OutState::open(&path)?;
/// state.resume(1, 0);
/// state.count_sent(3, 300);
/// let Some(Snapshot::Out(out)) = read(&path)? else { panic!() };
/// assert_eq!((out.sent, out.bytes), (3, 300));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), shmring_bridge_state::Error>(())
/// ```
pub fn read(path: &Path) -> Result<Option<Snapshot>> {
    read_owned_by(path, euid())
}

/// [`read`] a file that must be owned by `owner` (another user's bridge,
/// read by an operator who trusts that user).
pub fn read_owned_by(path: &Path, owner: u32) -> Result<Option<Snapshot>> {
    let io = |op| {
        let path = path.to_owned();
        move |source| Error::Io { path, op, source }
    };
    let Some(file) = open_checked(path, std::fs::OpenOptions::new().read(true), owner)? else {
        return Ok(None);
    };
    let len = file.metadata().map_err(io("stat"))?.len();
    if len == 0 || !len.is_multiple_of(8) || len > (IN_WORDS * 8) as u64 {
        return Err(Error::Invalid {
            path: path.to_owned(),
            what: format!("{len} bytes"),
        });
    }
    // SAFETY: memmap2's contract is that the file is not truncated while
    // mapped. Bridges never resize a valid state file (the length was just
    // checked and is validated again below); a process that truncates one
    // anyway makes this read fault (SIGBUS), it cannot make it wrong.
    let map = unsafe { Mmap::map(&file) }.map_err(io("mmap"))?;
    let ws = words(&map);
    Ok(Some(match check_header(path, ws, None)? {
        KIND_OUT => Snapshot::Out(out_snapshot(ws)),
        _ => Snapshot::In(in_snapshot(ws)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Temp(PathBuf);
    impl Temp {
        fn new(tag: &str) -> Temp {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            Temp(std::env::temp_dir().join(format!(
                "shmring-bridge-state-test-{}-{n}-{tag}",
                std::process::id()
            )))
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn an_outbound_restart_goes_on_from_where_the_ring_was_released() {
        let t = Temp::new("out");
        let s = OutState::open(&t.0).unwrap();
        let first = s.resume(9, 100);
        assert!(!first.resumed);
        s.begin(Span {
            start_pos: 100,
            start_seq: 0,
            end_pos: 200,
            end_seq: 5,
        });
        drop(s);
        let s = OutState::open(&t.0).unwrap();
        // Released: numbering goes on after the batch.
        let r = s.resume(9, 200);
        assert_eq!(
            r,
            Resume {
                source: first.source,
                next_seq: 5,
                resumed: true
            }
        );
        drop(s);
        // The resume recorded an empty span at 200: a restart at 200 again
        // still goes on at 5; at another position it is a new source.
        let s = OutState::open(&t.0).unwrap();
        assert_eq!(s.resume(9, 200).next_seq, 5);
        let other = s.resume(9, 7);
        assert!(!other.resumed && other.source != first.source && other.next_seq == 0);
        // A ring made anew is a new source even at a matching position.
        let s2 = s.resume(10, 7);
        assert!(!s2.resumed);
        assert_eq!(s.snapshot().restarts, 2);
    }

    #[test]
    fn one_writer_at_a_time_and_the_direction_is_checked() {
        let t = Temp::new("lock");
        let _a = OutState::open(&t.0).unwrap();
        assert!(matches!(OutState::open(&t.0), Err(Error::InUse { .. })));
        drop(_a);
        assert!(matches!(InState::open(&t.0), Err(Error::Invalid { .. })));
        std::fs::write(&t.0, b"not a state file").unwrap();
        assert!(matches!(read(&t.0), Err(Error::Invalid { .. })));
        assert!(matches!(OutState::open(&t.0), Err(Error::Invalid { .. })));
    }

    /// Whatever another user planted at a state file's path is refused at
    /// once: a FIFO (a plain open for reading would wait for a writer for
    /// ever), a symlink (the bridge would write through it), another
    /// user's file.
    #[test]
    fn a_planted_fifo_symlink_or_foreign_file_is_refused_without_waiting() {
        let fifo = Temp::new("fifo");
        nix::unistd::mkfifo(&fifo.0, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.0.clone();
        // On a thread: on failure the test reports a hang instead of hanging.
        std::thread::spawn(move || tx.send(read(&path).map(|_| ())).unwrap());
        let answer = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("read() of a FIFO returns at once");
        assert!(
            matches!(answer, Err(Error::NotRegular { what: "FIFO", .. })),
            "{answer:?}"
        );
        assert!(matches!(
            OutState::open(&fifo.0),
            Err(Error::NotRegular { what: "FIFO", .. })
        ));

        let target = Temp::new("target");
        std::fs::write(&target.0, b"").unwrap();
        let link = Temp::new("link");
        std::os::unix::fs::symlink(&target.0, &link.0).unwrap();
        assert!(matches!(
            InState::open(&link.0),
            Err(Error::NotRegular {
                what: "symbolic link",
                ..
            })
        ));
        assert!(matches!(
            read(&link.0),
            Err(Error::NotRegular {
                what: "symbolic link",
                ..
            })
        ));
        assert_eq!(
            std::fs::metadata(&target.0).unwrap().len(),
            0,
            "written through"
        );

        let real = Temp::new("owned");
        OutState::open(&real.0).unwrap().count_sent(1, 1);
        assert!(matches!(read(&real.0), Ok(Some(Snapshot::Out(_)))));
        let other = euid().wrapping_add(1);
        assert!(matches!(
            read_owned_by(&real.0, other),
            Err(Error::ForeignOwner { owner, expected, .. }) if owner == euid() && expected == other
        ));
        assert!(matches!(read_owned_by(&real.0, euid()), Ok(Some(_))));
    }

    #[test]
    fn inbound_entries_survive_reopening_and_eviction_keeps_the_totals() {
        let t = Temp::new("in");
        let mut s = InState::open(&t.0).unwrap();
        assert!(!s.resumed());
        for src in 1..=(SOURCES as u64 + 3) {
            let i = s.entry_for(src);
            let mut e = s.get(i);
            e.next = src;
            e.counts.delivered = 1;
            e.counts.lost = src;
            s.set(i, &e);
        }
        s.count_unnumbered();
        drop(s);
        let s = InState::open(&t.0).unwrap();
        assert!(s.resumed());
        let snap = s.snapshot();
        assert_eq!(snap.sources.len(), SOURCES);
        let t_all = snap.totals();
        let n = SOURCES as u64 + 3;
        assert_eq!(t_all.delivered, n);
        assert_eq!(t_all.lost, n * (n + 1) / 2);
        assert_eq!((snap.unnumbered, snap.restarts), (1, 1));
        let last = snap.sources.iter().find(|e| e.source == n).unwrap();
        assert_eq!(last.next, n);
    }

    #[test]
    fn a_reader_never_sees_half_a_record() {
        let t = Temp::new("torn");
        let mut s = InState::open(&t.0).unwrap();
        let i = s.entry_for(1);
        let path = t.0.clone();
        let reads = AtomicU64::new(0);
        std::thread::scope(|sc| {
            let reader = sc.spawn(|| {
                // Enough reads, each in a fresh mapping, to overlap many
                // writes whatever the scheduler does.
                while reads.load(Ordering::Relaxed) < 20_000 {
                    let Some(Snapshot::In(snap)) = read(&path).unwrap() else {
                        panic!("not an inbound file")
                    };
                    for e in snap.sources {
                        // The writer keeps all fields equal.
                        let c = e.counts;
                        assert!(
                            e.next == e.seen && c.delivered == e.next && c.dropped_full == e.next,
                            "torn: {e:?}"
                        );
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
            let mut k = 0u64;
            while !reader.is_finished() {
                k += 1;
                let c = Counts {
                    delivered: k,
                    lost: k,
                    duplicates: k,
                    reordered: k,
                    dropped_full: k,
                };
                let e = SourceState {
                    source: 1,
                    next: k,
                    seen: k,
                    counts: c,
                };
                s.set(i, &e);
            }
        });
    }
}

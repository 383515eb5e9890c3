//! Every way a shmring call can fail: [`Error`], the umbrella, and in
//! `ops.rs` the errors of the message path, one per group of calls whose
//! failures differ (the crate docs' "Names" table says which), each
//! converting into [`Error`].

mod ops;

pub(crate) use ops::{Corruption, TimedOut};

/// `Debug` for an error type that says what its `Display` says. What
/// `fn main() -> shmring::Result<()>` prints on failure is the error's
/// `Debug` (`Error: ...`): the message names the ring, the call and the
/// likely cause, where the derived form printed `NotFound { name: "..." }`.
macro_rules! debug_is_display {
    ($($ty:ty),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)
            }
        }
    )*};
}
pub(crate) use debug_is_display;

debug_is_display!(Error);
pub use ops::{Full, Overrun, PushTimeout, RecvError, SendError};

use std::io;
use std::time::Duration;

use crate::kind::{InvalidSchema, RingKind, Role, TypeLayout};

/// The error type of every fallible shmring call.
///
/// ```
/// use shmring::{Error, Spsc};
/// match Spsc::<u64>::open("shmring-doc-no-such-ring") {
///     Err(Error::NotFound { name }) => assert_eq!(name, "shmring-doc-no-such-ring"),
///     other => panic!("{other:?}"),
/// }
/// // Every error is a std::error::Error: it composes with `?` and Box<dyn Error>.
/// let boxed: Box<dyn std::error::Error> = Error::ZeroCapacity.into();
/// assert!(boxed.to_string().contains("capacity"));
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No segment of that name exists.
    #[error("no shared-memory segment named {name:?}")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// A schema name that a header cannot hold.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchema {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An element layout given at run time that no ring can hold.
    #[error("invalid element layout: {reason}")]
    InvalidLayout {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `open_or_create` found the ring made with another capacity (by
    /// another service, or an older version of this one).
    #[error("shared-memory segment {name:?} holds a ring of capacity {found}, not the {requested} asked for (created by another service or version with a different capacity?)")]
    CapacityMismatch {
        /// The segment name.
        name: String,
        /// The capacity this call would have created (rounded as `create` rounds it).
        requested: u64,
        /// The capacity of the ring found.
        found: u64,
    },
    /// `create` found a segment of that name already (it is never reused silently).
    #[error("a shared-memory segment named {name:?} already exists")]
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// The kernel refused access to the segment.
    #[error("permission denied on shared-memory segment {name:?}")]
    PermissionDenied {
        /// The segment name.
        name: String,
    },
    /// The name in /dev/shm is not a regular file (a symbolic link, a FIFO,
    /// a directory...), so not a shmring segment: nothing is opened through
    /// it, and `remove` leaves it.
    #[error("{name:?} in /dev/shm is {found}, not a shmring segment (another program's?)")]
    NotAFile {
        /// The segment name.
        name: String,
        /// What the name is instead: "a symbolic link", "a FIFO"...
        found: &'static str,
    },
    /// The kernel does not let this process read the segment: another
    /// user's, with a mode that leaves this one out.
    #[error("segment {name:?} belongs to uid {owner} with mode {mode:04o}, which does not let this process (uid {ours}) read it: look as that user or as root, or have it created with a mode and group that admit this user", ours = nix::unistd::geteuid())]
    NotReadable {
        /// The segment name.
        name: String,
        /// The uid that owns the segment.
        owner: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// The segment belongs to another user, which may be a squatter; refused
    /// unless [`OpenOptions::allow_foreign_owner`](crate::OpenOptions::allow_foreign_owner).
    #[error("segment {name:?} is owned by uid {owner}, not by this process's uid {ours} (if it is meant to be shared, trust that user or the file's group when opening: OpenOptions::trust_owner, trust_group)")]
    ForeignOwner {
        /// The segment name.
        name: String,
        /// The uid that owns the segment.
        owner: u32,
        /// This process's effective uid.
        ours: u32,
    },
    /// /dev/shm (or the memory limit) has no room for a segment this large.
    #[error("no space for a {bytes}-byte segment {name:?}: {}", space_cause(*.bytes, *.free, *.total))]
    NoSpace {
        /// The segment name.
        name: String,
        /// The size that was asked for.
        bytes: u64,
        /// Bytes free in the shm filesystem when it failed.
        free: u64,
        /// The shm filesystem's whole size.
        total: u64,
    },
    /// A capacity of zero was asked for.
    #[error("capacity must be at least 1")]
    ZeroCapacity,
    /// The capacity, rounded up to a power of two, does not fit in a segment.
    #[error("capacity {requested} is too large for a segment")]
    CapacityTooLarge {
        /// The capacity that was asked for.
        requested: u64,
    },
    /// The file is smaller than a header, so it cannot be a ring.
    #[error("segment {name:?} is {len} bytes, too small for a {needed}-byte header")]
    SegmentTooSmall {
        /// The segment name.
        name: String,
        /// Its size in bytes.
        len: u64,
        /// The size of a header.
        needed: u64,
    },
    /// The creator has not finished writing the header within the wait bound.
    #[error("segment {name:?} is still initializing after {waited_ms} ms (did its creator die?)")]
    NotReady {
        /// The segment name.
        name: String,
        /// How long this opener waited.
        waited_ms: u64,
    },
    /// The segment does not start with shmring's magic number.
    #[error("segment {name:?} is not a shmring segment (magic {found:#018x}; another program's file under that name?)")]
    BadMagic {
        /// The segment name.
        name: String,
        /// The first 8 bytes, read as a little-endian u64.
        found: u64,
    },
    /// The segment was written by an incompatible version of shmring.
    #[error("segment {name:?} has format version {found}, this library reads version {expected} (the services use different shmring versions: upgrade both, or give the new one another ring name)")]
    VersionMismatch {
        /// The segment name.
        name: String,
        /// The version in the header.
        found: u32,
        /// The version this library writes.
        expected: u32,
    },
    /// The ring asks its users to honour features (such as zeroing what
    /// they read) that this version of shmring does not know.
    #[error("ring {name:?} asks for features {features:#x} that this version of shmring does not implement (it was made by a newer one: upgrade this service too)")]
    UnknownFeatures {
        /// The segment name.
        name: String,
        /// The bits not known here.
        features: u32,
    },
    /// The segment holds a different kind of ring.
    #[error("segment {name:?} holds a {found} ring, not a {expected} ring (two services use one name for different rings?)")]
    KindMismatch {
        /// The segment name.
        name: String,
        /// What the header says (a raw code when unknown).
        found: String,
        /// What the caller asked for.
        expected: RingKind,
    },
    /// The segment holds elements of a different type.
    #[error("ring {name:?} holds {found}, but this handle's element type is {expected} (two builds of different message types, or an explicit schema on one side only?)")]
    TypeMismatch {
        /// The segment name.
        name: String,
        /// The layout recorded in the header (boxed: it is large, and the
        /// error is rare).
        found: Box<TypeLayout>,
        /// The layout of the caller's type.
        expected: Box<TypeLayout>,
    },
    /// The header's size does not match the file's size.
    #[error("the header of segment {name:?} says {header} bytes but the file is {actual} bytes (truncated or resized by another program?)")]
    SizeMismatch {
        /// The segment name.
        name: String,
        /// The size recorded in the header.
        header: u64,
        /// The size of the file.
        actual: u64,
    },
    /// Shared state holds values no honest peer could have written.
    #[error(fmt = ops::fmt_corrupt)]
    Corrupt {
        /// The ring's name.
        name: String,
        /// What is impossible.
        what: String,
    },
    /// Another live handle holds this role.
    #[error("the {role} role of ring {name:?} is held by live process {pid} (its pid in its own namespace); this kind of ring has one {role} at a time")]
    RoleTaken {
        /// The ring's name.
        name: String,
        /// The role that was asked for.
        role: Role,
        /// The process holding it.
        pid: u32,
    },
    /// A broadcast subscriber of this identity is held by a live handle.
    #[error("ring {name:?} already has a live subscriber named {identity} (process {pid}): one handle per identity")]
    SubscriberTaken {
        /// The segment name.
        name: String,
        /// The identity asked for.
        identity: u64,
        /// The process holding it.
        pid: u32,
    },
    /// Every claim record of one side is taken by a live handle: a ring
    /// has room for a bounded number of handles per side, each of which
    /// repair must be able to see.
    #[error("ring {name:?} already has {limit} live {side} handles, its most (drop one, or use fewer per process)")]
    TooManyHandles {
        /// The segment name.
        name: String,
        /// `"producer"` or `"consumer"`.
        side: &'static str,
        /// The most handles of that side a ring can have at once.
        limit: usize,
    },
    /// A lock on the segment stayed held for longer than the bounded retry
    /// allows (another process is working on it).
    #[error("segment {name:?} is busy: {what} (try again)")]
    Busy {
        /// The segment name.
        name: String,
        /// What holds it.
        what: &'static str,
    },
    /// A live handle (in this process or another) holds the producer
    /// stream asked for; see [`Mpmc::producer_stream`](crate::Mpmc::producer_stream).
    #[error("producer stream {stream} of ring {name:?} is held by a live handle of process {pid} (a second copy of the same service?)")]
    StreamTaken {
        /// The segment name.
        name: String,
        /// The stream's id.
        stream: u32,
        /// The holder's pid, in its own pid namespace (0 if unknown).
        pid: u32,
    },
    /// A handle inherited across `fork` was asked to take something (a
    /// role, a claim): it belongs to the parent, whose locks the child
    /// does not hold. The child opens the ring again by name.
    #[error("ring {name:?}: this handle was inherited across fork and belongs to the parent process; open the ring again in the child")]
    Forked {
        /// The segment name.
        name: String,
    },
    /// The ring had no room (a non-blocking call): [`Full<T>`] or
    /// [`SendError::Full`], converted.
    #[error("the ring is full")]
    Full,
    /// A message longer than the ring can ever hold.
    #[error("a {len}-byte message is longer than this ring's maximum of {max} bytes")]
    MessageTooLarge {
        /// The length asked for.
        len: usize,
        /// [`ByteRing::max_message_len`](crate::ByteRing::max_message_len).
        max: usize,
    },
    /// A message that is not one value of a typed ring
    /// ([`SendError::WrongLength`], converted).
    #[error("a {len}-byte message is not a value of this ring, which is {expected} bytes long")]
    WrongLength {
        /// The length given.
        len: usize,
        /// The size of the ring's element type.
        expected: usize,
    },
    /// A blocking call's timeout passed first.
    #[error(fmt = ops::fmt_timeout)]
    Timeout {
        /// The ring's name.
        name: String,
        /// The call that waited (`"pop_timeout"`, `"push_timeout"`, ...).
        op: &'static str,
        /// How long it waited.
        waited: Duration,
        /// The side it waited for: a producer to publish, or a consumer to
        /// make room.
        peer: Role,
        /// Whether a live handle of that side existed when the wait ended
        /// (the kernel's word, as `has_producer()`/`has_consumer()`).
        peer_attached: bool,
    },
    /// The producer closed the ring and everything it committed has been
    /// received: the stream ended (not a timeout).
    #[error(fmt = ops::fmt_closed)]
    Closed {
        /// The ring's name.
        name: String,
    },
    /// A blocking call timed out behind a position that a live peer
    /// claimed and has not published or released yet (a dead one's is
    /// repaired while waiting).
    #[error(fmt = ops::fmt_stalled)]
    Stalled {
        /// The ring's name.
        name: String,
        /// The call that waited.
        op: &'static str,
        /// The position everyone else is waiting behind.
        position: u64,
    },
    /// An operating-system call failed in a way none of the above describes.
    #[error("{op} failed for segment {name:?}: {source}")]
    Io {
        /// The call that failed.
        op: &'static str,
        /// The segment name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why a segment did not fit: too large for /dev/shm at all (a capacity
/// mistake), or too large for what is free now.
fn space_cause(bytes: u64, free: u64, total: u64) -> String {
    if bytes > total {
        format!(
            "larger than all of /dev/shm ({total} bytes): is the capacity what was meant, \
             or /dev/shm's size limit too low?"
        )
    } else {
        format!("only {free} of /dev/shm's {total} bytes are free (is /dev/shm full?)")
    }
}

/// `Result` with shmring's [`Error`].
///
/// ```
/// fn latest(name: &str) -> shmring::Result<Option<u64>> {
///     let ring = shmring::Spsc::<u64>::open(name)?;
///     Ok(ring.consumer()?.try_pop())
/// }
/// assert!(latest("shmring-doc-missing").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<InvalidSchema> for Error {
    fn from(e: InvalidSchema) -> Self {
        Error::InvalidSchema {
            name: e.name,
            reason: e.reason,
        }
    }
}

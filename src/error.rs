//! Every way a shmring call can fail, as one typed enum.

use std::fmt;
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
#[derive(Debug, thiserror::Error)]
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
    /// The segment belongs to another user, which may be a squatter; refused
    /// unless [`OpenOptions::allow_foreign_owner`](crate::OpenOptions::allow_foreign_owner).
    #[error("segment {name:?} is owned by uid {owner}, not by this process's uid {ours}")]
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
    #[error("ring {name:?} is corrupt: {what} (written by a faulty or hostile peer, or the name is used by another program?)")]
    Corrupt {
        /// The ring's name.
        name: String,
        /// What is impossible.
        what: String,
    },
    /// Another live handle holds this role.
    #[error("the {role} role of ring {name:?} is held by live process {pid} (its pid in its own namespace); an SPSC ring has one {role} at a time")]
    RoleTaken {
        /// The ring's name.
        name: String,
        /// The role that was asked for.
        role: Role,
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
    /// The ring has no room for this message now (a non-blocking call).
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
    /// A blocking call's timeout passed first.
    #[error("{op} on ring {name:?} timed out after {waited:?}{}", absent(*.peer, *.peer_attached))]
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
    #[error("ring {name:?} is closed: its producer called close() and every committed message was received")]
    Closed {
        /// The ring's name.
        name: String,
    },
    /// A blocking call timed out behind a position that a live peer
    /// claimed and has not published or released yet (a dead one's is
    /// repaired while waiting).
    #[error("{op} on ring {name:?} stalled at position {position}: a live peer claimed it and has not finished with it (paused in a debugger, or stuck?)")]
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

/// The likely cause of a timeout when nobody was there to end the wait.
fn absent(peer: Role, attached: bool) -> String {
    if attached {
        String::new()
    } else {
        format!(": no {peer} is attached (not started yet, exited, or died?)")
    }
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

/// A `try_push` that found the ring full; holds the value that was not
/// pushed, so nothing is lost. An error type like the others, so it
/// composes with `?`.
///
/// ```
/// # let name = format!("shmring-doc-full-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
/// let mut tx = ring.producer()?;
/// tx.try_push(1)?;
/// let full = tx.try_push(2).unwrap_err();
/// assert_eq!(full.into_inner(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ring is full (no room for the value)")
    }
}

impl<T> std::error::Error for Full<T> {}

/// A blocking push whose timeout passed first; holds the value that was not
/// pushed, and the [`Error::Timeout`] saying where and why. Converts into
/// [`Error`] (dropping the value), so `?` works in a function returning
/// [`Result`].
///
/// ```
/// use std::time::Duration;
/// # let name = format!("shmring-doc-push-timeout-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
/// let mut tx = ring.producer()?;
/// tx.try_push(1).unwrap();
/// let err = tx.push_timeout(2, Duration::from_millis(1)).unwrap_err();
/// // Names the ring and the call, and the likely cause: nobody reads.
/// assert!(err.to_string().contains("push_timeout"), "{err}");
/// assert!(err.to_string().contains("no consumer is attached"), "{err}");
/// assert_eq!(err.into_inner(), 2); // the value is not lost
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct PushTimeout<T> {
    value: T,
    cause: Error,
}

impl<T> PushTimeout<T> {
    pub(crate) fn new(value: T, cause: Error) -> Self {
        PushTimeout { value, cause }
    }

    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Why: an [`Error::Timeout`] naming the ring and the missing peer.
    pub fn cause(&self) -> &Error {
        &self.cause
    }
}

impl<T> fmt::Debug for PushTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushTimeout")
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PushTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause.fmt(f)
    }
}

// No `source`: the message is the cause's own, said once.
impl<T> std::error::Error for PushTimeout<T> {}

impl<T> From<PushTimeout<T>> for Error {
    fn from(timeout: PushTimeout<T>) -> Self {
        timeout.cause
    }
}

impl From<InvalidSchema> for Error {
    fn from(e: InvalidSchema) -> Self {
        Error::InvalidSchema {
            name: e.name,
            reason: e.reason,
        }
    }
}

//! The errors of the message path: each names only what its operations
//! can meet, and converts into [`Error`](super::Error). None allocates on
//! the hot non-blocking path (a full ring is [`Full`] or
//! [`SendError::Full`], with no name to copy).

use std::fmt;
use std::time::Duration;

use super::Error;
use crate::kind::Role;

/// A `try_push` that found the ring full; holds the value that was not
/// pushed, so nothing is lost. An error type like the others, so it
/// composes with `?` (into [`Error::Full`]).
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

impl<T> From<Full<T>> for Error {
    fn from(_: Full<T>) -> Self {
        Error::Full
    }
}

/// A broadcast read chunk whose values were overwritten while they were
/// read (a lossy subscriber, or one made lossy, that the producer
/// lapped): the first [`whole`](Self::whole) values read were whole, the
/// others may be torn; the subscriber skipped ahead from the first of
/// them, counting what it passed over as missed
/// ([`Subscriber::missed`](crate::Subscriber::missed)).
///
/// ```
/// # let name = format!("shmring-doc-overrun-{}", std::process::id());
/// let ring = shmring::Broadcast::<u64>::create(&name, 2)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.subscriber_with(&shmring::SubscriberOptions::lossy())?;
/// tx.try_push(0).unwrap();
/// tx.try_push(1).unwrap();
/// let chunk = rx.try_read(2).unwrap();
/// let first = chunk.read(0);
/// tx.try_push(2).unwrap(); // overwrites position 0 while the chunk lends it
/// let overrun = chunk.release_all().unwrap_err();
/// assert_eq!(overrun.whole(), 0); // so `first` must be thrown away
/// # let _ = first;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overrun {
    pub(crate) whole: usize,
}

impl Overrun {
    /// How many of the released values, from the first, were whole.
    pub fn whole(&self) -> usize {
        self.whole
    }
}

impl fmt::Display for Overrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the producer overwrote values of this read chunk while they were read: only the \
             first {} were whole (the subscriber skipped ahead and counted what it missed)",
            self.whole
        )
    }
}

impl std::error::Error for Overrun {}

/// A blocking push that did not push; holds the value, so nothing is lost,
/// and the [`SendError`] saying where and why (a timeout names the ring,
/// the call, and whether anyone was reading). Converts into [`Error`]
/// (dropping the value), so `?` works in a function returning
/// [`Result`](crate::Result).
///
/// ```
/// use std::time::Duration;
/// use shmring::SendError;
/// # let name = format!("shmring-doc-push-timeout-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
/// let mut tx = ring.producer()?;
/// tx.try_push(1).unwrap();
/// let err = tx.push_timeout(2, Duration::from_millis(1)).unwrap_err();
/// assert!(matches!(err.cause(), SendError::Timeout { peer_attached: false, .. }));
/// // Names the ring and the call, and the likely cause: nobody reads.
/// assert!(err.to_string().contains("push_timeout"), "{err}");
/// assert!(err.to_string().contains("no consumer is attached"), "{err}");
/// assert_eq!(err.into_inner(), 2); // the value is not lost
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct PushTimeout<T> {
    value: T,
    cause: SendError,
}

impl<T> PushTimeout<T> {
    pub(crate) fn new(value: T, cause: impl Into<SendError>) -> Self {
        PushTimeout {
            value,
            cause: cause.into(),
        }
    }

    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Why: [`SendError::Timeout`] naming the ring and the missing peer.
    pub fn cause(&self) -> &SendError {
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
        timeout.cause.into()
    }
}

/// Why a consumer got no value or message: the errors of `pop_timeout`,
/// `read_timeout`, `try_recv`, `recv_timeout` and `read_batch`, and only
/// those.
///
/// ```
/// use std::time::Duration;
/// use shmring::{RecvError, Spsc};
/// # let name = format!("shmring-doc-recv-error-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 8)?;
/// let mut rx = ring.consumer()?;
/// match rx.pop_timeout(Duration::from_millis(1)) {
///     Err(RecvError::Timeout { peer_attached, .. }) => assert!(!peer_attached),
///     other => panic!("{other:?}"),
/// }
/// ring.producer()?.close();
/// assert!(matches!(rx.pop_timeout(Duration::from_secs(1)), Err(RecvError::Closed { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing arrived before the timeout.
    #[error(fmt = fmt_timeout)]
    Timeout {
        /// The ring's name.
        name: String,
        /// The call that waited.
        op: &'static str,
        /// How long it waited.
        waited: Duration,
        /// The side it waited for (a producer).
        peer: Role,
        /// Whether a live producer existed when the wait ended (the
        /// kernel's word, as `has_producer()`).
        peer_attached: bool,
    },
    /// The producer closed the ring and everything it committed has been
    /// received: the stream ended.
    #[error(fmt = fmt_closed)]
    Closed {
        /// The ring's name.
        name: String,
    },
    /// The wait timed out behind a position a live producer claimed and
    /// has not committed (a dead one's is repaired while waiting).
    #[error(fmt = fmt_stalled)]
    Stalled {
        /// The ring's name.
        name: String,
        /// The call that waited.
        op: &'static str,
        /// The position everyone else is waiting behind.
        position: u64,
    },
    /// The ring holds what no honest producer could have written.
    #[error(fmt = fmt_corrupt)]
    Corrupt {
        /// The ring's name.
        name: String,
        /// What is impossible.
        what: String,
    },
}

impl From<RecvError> for Error {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Timeout {
                name,
                op,
                waited,
                peer,
                peer_attached,
            } => Error::Timeout {
                name,
                op,
                waited,
                peer,
                peer_attached,
            },
            RecvError::Closed { name } => Error::Closed { name },
            RecvError::Stalled { name, op, position } => Error::Stalled { name, op, position },
            RecvError::Corrupt { name, what } => Error::Corrupt { name, what },
        }
    }
}

/// Why a producer wrote nothing: the errors of the byte producer's calls
/// (`try_send`, `send_timeout`, `try_reserve`, `reserve_timeout`) and of
/// the typed producers' `reserve_timeout` and `push_timeout`.
///
/// ```
/// use shmring::{ByteRing, SendError};
/// # let name = format!("shmring-doc-send-error-{}", std::process::id());
/// let ring = ByteRing::create(&name, 64)?;
/// let mut tx = ring.producer()?;
/// let too_long = vec![0u8; ring.max_message_len() + 1];
/// assert!(matches!(tx.try_send(&too_long), Err(SendError::MessageTooLarge { .. })));
/// while tx.try_send(b"fill").is_ok() {}
/// assert!(matches!(tx.try_send(b"fill"), Err(SendError::Full)));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No room now (a non-blocking call).
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
    /// A message for a typed ring that is not one value long (through
    /// [`MessageSender`](crate::MessageSender)).
    #[error("a {len}-byte message is not a value of this ring, which is {expected} bytes long")]
    WrongLength {
        /// The length given.
        len: usize,
        /// The size of the ring's element type.
        expected: usize,
    },
    /// No room came before the timeout.
    #[error(fmt = fmt_timeout)]
    Timeout {
        /// The ring's name.
        name: String,
        /// The call that waited.
        op: &'static str,
        /// How long it waited.
        waited: Duration,
        /// The side it waited for (a consumer, to make room).
        peer: Role,
        /// Whether a live consumer existed when the wait ended.
        peer_attached: bool,
    },
    /// The ring holds what no honest peer could have written.
    #[error(fmt = fmt_corrupt)]
    Corrupt {
        /// The ring's name.
        name: String,
        /// What is impossible.
        what: String,
    },
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Full => Error::Full,
            SendError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            SendError::WrongLength { len, expected } => Error::WrongLength { len, expected },
            SendError::Timeout {
                name,
                op,
                waited,
                peer,
                peer_attached,
            } => Error::Timeout {
                name,
                op,
                waited,
                peer,
                peer_attached,
            },
            SendError::Corrupt { name, what } => Error::Corrupt { name, what },
        }
    }
}

/// A wait that ended with its timeout: made by the ring, turned into the
/// error of the operation that waited.
#[derive(Debug)]
pub(crate) struct TimedOut {
    pub(crate) name: String,
    pub(crate) op: &'static str,
    pub(crate) waited: Duration,
    pub(crate) peer: Role,
    pub(crate) peer_attached: bool,
}

impl From<TimedOut> for RecvError {
    fn from(t: TimedOut) -> Self {
        RecvError::Timeout {
            name: t.name,
            op: t.op,
            waited: t.waited,
            peer: t.peer,
            peer_attached: t.peer_attached,
        }
    }
}

impl From<TimedOut> for SendError {
    fn from(t: TimedOut) -> Self {
        SendError::Timeout {
            name: t.name,
            op: t.op,
            waited: t.waited,
            peer: t.peer,
            peer_attached: t.peer_attached,
        }
    }
}

/// Shared state no honest peer could have written, found on the message
/// path or in repair: turned into the error of whichever met it.
#[derive(Debug)]
pub(crate) struct Corruption {
    pub(crate) name: String,
    pub(crate) what: String,
}

impl From<Corruption> for RecvError {
    fn from(c: Corruption) -> Self {
        RecvError::Corrupt {
            name: c.name,
            what: c.what,
        }
    }
}

impl From<Corruption> for SendError {
    fn from(c: Corruption) -> Self {
        SendError::Corrupt {
            name: c.name,
            what: c.what,
        }
    }
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corrupt {
            name: c.name,
            what: c.what,
        }
    }
}

// The texts, said once for the umbrella and the per-operation errors
// (thiserror passes each field by reference, then the formatter).

pub(super) fn fmt_timeout(
    name: &String,
    op: &&'static str,
    waited: &Duration,
    peer: &Role,
    peer_attached: &bool,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    write!(f, "{op} on ring {name:?} timed out after {waited:?}")?;
    if !peer_attached {
        write!(
            f,
            ": no {peer} is attached (not started yet, exited, or died?)"
        )?;
    }
    Ok(())
}

pub(super) fn fmt_closed(name: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "ring {name:?} is closed: its producer called close() and every committed message was \
         received"
    )
}

pub(super) fn fmt_stalled(
    name: &String,
    op: &&'static str,
    position: &u64,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    write!(
        f,
        "{op} on ring {name:?} stalled at position {position}: a live peer claimed it and has not \
         finished with it (paused in a debugger, or stuck?)"
    )
}

pub(super) fn fmt_corrupt(name: &String, what: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "ring {name:?} is corrupt: {what} (written by a faulty or hostile peer, or the name is \
         used by another program?)"
    )
}

super::debug_is_display!(RecvError, SendError);

//! Every ring kind as a stream of messages of bytes: one interface for code
//! that moves messages without caring which kind carries them (a bridge to
//! another host, a recorder, a replayer, bindings to other languages).
//!
//! A byte ring's message is itself; a typed ring's is one value, as its
//! bytes (`bytemuck`), so a `Spsc<T>` on one side and a `ByteRing` or an
//! `Mpmc<T>` of the same `T` on the other carry the same messages.
//!
//! Writing: [`MessageSender::send_with`] reserves room for one message in
//! place, lets the caller fill it, and commits it.
//!
//! Reading: [`MessageReceiver::recv_runs`] lends committed messages in
//! place, in *runs*: messages at consecutive ring positions, with the
//! positions they cover. Positions are what a consumer that forwards
//! messages records before it sends them, so that after a crash it knows
//! what it may have sent: a byte ring counts bytes of its stream (framing
//! and padding included), a typed ring counts values. The caller says what
//! becomes of each run ([`AfterRun`]): released, or kept to be lent again
//! first by the next call. An SPSC or byte consumer has one read position,
//! so keeping a run keeps everything after it too (and the call stops); an
//! MPMC consumer keeps just that run and goes on (its positions are its
//! own, claimed from a shared sequence).
//!
//! What a consumer kept, or held when its process died, is never lost: a
//! new SPSC or byte consumer resumes at the read position
//! ([`released`](MessageReceiver::released)) and reads it again, and a new
//! MPMC consumer takes it over first with
//! [`take_over_runs`](MessageReceiver::take_over_runs).

use std::ops::Range;
use std::time::Duration;

use crate::error::{Error, RecvError, SendError};

/// How long a ring's messages are.
///
/// ```
/// use shmring::{ByteRing, MessageLen, MessageSender, Mpmc};
/// # let pid = std::process::id();
/// let typed = Mpmc::<[u32; 3]>::create(&format!("shmring-doc-len-t-{pid}"), 4)?;
/// let bytes = ByteRing::create(&format!("shmring-doc-len-b-{pid}"), 4096)?;
/// assert_eq!(typed.producer()?.message_len(), MessageLen::Exactly(12));
/// let max = bytes.max_message_len();
/// assert_eq!(bytes.producer()?.message_len(), MessageLen::AtMost(max));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageLen {
    /// A typed ring: every message is one value of this many bytes.
    Exactly(usize),
    /// A byte ring: any length up to this many bytes.
    AtMost(usize),
}

impl MessageLen {
    /// Whether a message of `len` bytes fits.
    ///
    /// ```
    /// use shmring::MessageLen;
    /// assert!(MessageLen::Exactly(8).fits(8) && !MessageLen::Exactly(8).fits(4));
    /// assert!(MessageLen::AtMost(8).fits(4) && !MessageLen::AtMost(8).fits(9));
    /// ```
    pub fn fits(self, len: usize) -> bool {
        match self {
            MessageLen::Exactly(n) => len == n,
            MessageLen::AtMost(n) => len <= n,
        }
    }

    /// A typed ring's: one value of `T`.
    pub(crate) fn of<T>() -> Self {
        MessageLen::Exactly(std::mem::size_of::<T>())
    }
}

/// `Ok` if `len` bytes are one value of `T`, else `WrongLength`. (A byte
/// ring's reserve checks its own maximum.)
pub(crate) fn check_value_len<T>(len: usize) -> Result<(), SendError> {
    let expected = std::mem::size_of::<T>();
    match len == expected {
        true => Ok(()),
        false => Err(SendError::WrongLength { len, expected }),
    }
}

/// The producer side of any ring kind, one message of bytes at a time.
///
/// ```
/// use std::time::Duration;
/// use shmring::{ByteRing, MessageLen, MessageSender, Spsc};
///
/// /// Stamps each message with its length, whatever ring carries it.
/// fn send_framed(tx: &mut dyn MessageSender, body: &[u8]) -> shmring::Result<()> {
///     let len = body.len() + 4;
///     tx.send_with(len, Duration::from_millis(10), &mut |room: &mut [u8]| {
///         room[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
///         room[4..].copy_from_slice(body);
///     })?;
///     Ok(())
/// }
///
/// # let pid = std::process::id();
/// let bytes = ByteRing::create(&format!("shmring-doc-sender-b-{pid}"), 4096)?;
/// let typed = Spsc::<[u8; 8]>::create(&format!("shmring-doc-sender-t-{pid}"), 8)?;
/// let (mut btx, mut ttx) = (bytes.producer()?, typed.producer()?);
/// assert_eq!(ttx.message_len(), MessageLen::Exactly(8));
/// send_framed(&mut btx, b"any length")?;
/// send_framed(&mut ttx, b"four")?; // 4 + 4 bytes: one [u8; 8]
/// assert!(send_framed(&mut ttx, b"five!").is_err()); // 9 bytes is not a value
/// assert_eq!(typed.consumer()?.try_pop(), Some(*b"\x04\0\0\0four"));
/// # Ok::<(), shmring::Error>(())
/// ```
pub trait MessageSender {
    /// How long this ring's messages may be.
    fn message_len(&self) -> MessageLen;

    /// Reserve room for one `len`-byte message in place, waiting up to
    /// `timeout` for it (zero: not at all), let `fill` write all of it,
    /// and commit it. A length the ring cannot carry is refused before
    /// anything is reserved ([`SendError::WrongLength`],
    /// [`SendError::MessageTooLarge`]); a full ring is
    /// [`SendError::Full`] without a wait, else [`SendError::Timeout`].
    /// If `fill` panics, nothing is published.
    fn send_with(
        &mut self,
        len: usize,
        timeout: Duration,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), SendError>;

    /// Copy `bytes` in as one message: [`send_with`](Self::send_with).
    fn send_bytes(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_with(bytes.len(), timeout, &mut |room| {
            room.copy_from_slice(bytes)
        })
    }
}

/// What becomes of a run once [`MessageReceiver::recv_runs`] lent it.
///
/// ```
/// use std::time::Duration;
/// use shmring::{AfterRun, MessageReceiver, Spsc};
/// # let name = format!("shmring-doc-after-run-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 4)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(7).unwrap();
/// // Not ready to forward it yet: keep it.
/// assert_eq!(rx.recv_runs(4, Duration::ZERO, &mut |_| AfterRun::Keep)?, 0);
/// assert_eq!(rx.released(), Some(0));
/// assert_eq!(rx.recv_runs(4, Duration::ZERO, &mut |_| AfterRun::Release)?, 1);
/// assert_eq!(rx.released(), Some(1));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterRun {
    /// Done with it: its space goes back to the producers.
    Release,
    /// Not done: it stays in the ring, lent again first by the next call.
    /// On a ring with one read position (SPSC, byte) everything after it
    /// stays too, and the call lends nothing more; an MPMC consumer keeps
    /// just this run and goes on lending the others.
    Keep,
}

/// The consumer side of any ring kind: messages lent in place, in runs of
/// consecutive positions.
///
/// ```
/// use std::time::Duration;
/// use shmring::{AfterRun, MessageReceiver, MessageSender, Mpmc};
///
/// /// Copies out up to `max` messages and the positions they came from.
/// fn drain(rx: &mut dyn MessageReceiver, max: usize) -> Vec<(u64, Vec<u8>)> {
///     let mut out = Vec::new();
///     let wait = Duration::from_millis(10);
///     let _ = rx.recv_runs(max, wait, &mut |run| {
///         let at = run.positions().start;
///         out.extend((at..).zip(run.iter().map(<[u8]>::to_vec)));
///         AfterRun::Release
///     });
///     out
/// }
///
/// # let name = format!("shmring-doc-receiver-{}", std::process::id());
/// let ring = Mpmc::<u32>::create(&name, 8)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// for v in [1u32, 2, 3] {
///     tx.send_bytes(&v.to_le_bytes(), Duration::ZERO)?;
/// }
/// let got = drain(&mut rx, 2);
/// assert_eq!(got, [(0, 1u32.to_le_bytes().to_vec()), (1, 2u32.to_le_bytes().to_vec())]);
/// assert_eq!(drain(&mut rx, 8).len(), 1);
/// # Ok::<(), shmring::Error>(())
/// ```
pub trait MessageReceiver {
    /// Where this consumer's read position is, in the ring's positions: an
    /// SPSC or byte consumer resumes here after a restart. `None` for an
    /// MPMC consumer: its consumers share one sequence, and what a dead
    /// one held is found by [`take_over_runs`](Self::take_over_runs).
    fn released(&self) -> Option<u64>;

    /// Wait up to `timeout` for a message (zero: not at all), then lend up
    /// to `max` committed messages to `each`, oldest first, in runs of
    /// consecutive positions; what `each` returns says whether a run is
    /// released or kept. How many messages were released. Errors as the
    /// kind's own blocking receive ([`RecvError`]).
    fn recv_runs(
        &mut self,
        max: usize,
        timeout: Duration,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, RecvError>;

    /// Lend to `each`, one message per run (so that each can be decided
    /// on its own), the messages a consumer of this ring took and never
    /// released before its process died, and that no live consumer holds,
    /// oldest first: a restarted forwarder delivers them before anything
    /// newer. How many were released. Only MPMC rings have such messages
    /// to hand over (`Ok(0)` from the others, whose restarted consumer
    /// reads them again from [`released`](Self::released));
    /// [`Error::Busy`] if another handle kept the repair lock past a short
    /// bound.
    fn take_over_runs(&mut self, each: &mut dyn FnMut(Run<'_>) -> AfterRun)
        -> Result<usize, Error>;
}

/// Messages at consecutive positions, lent in place by
/// [`MessageReceiver::recv_runs`].
///
/// ```
/// use std::time::Duration;
/// use shmring::{AfterRun, ByteRing, MessageReceiver};
/// # let name = format!("shmring-doc-run-{}", std::process::id());
/// let ring = ByteRing::create(&name, 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_send(b"ab")?;
/// tx.try_send(b"cde")?;
/// rx.recv_runs(8, Duration::ZERO, &mut |run| {
///     assert_eq!(run.len(), 2);
///     // A byte ring's positions count bytes, framing included.
///     assert_eq!(run.positions(), 0..ring.bytes_written());
///     let joined: Vec<u8> = run.iter().flatten().copied().collect();
///     assert_eq!(joined, b"abcde");
///     AfterRun::Release
/// })?;
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct Run<'a> {
    positions: Range<u64>,
    len: usize,
    messages: Messages<'a>,
}

/// Where a run's messages are.
#[derive(Clone, Copy)]
pub(crate) enum Messages<'a> {
    /// Framed records, walked in order from `from`: `next(pos)` is the
    /// message at or after `pos` and the position after it.
    Records {
        from: u64,
        next: &'a dyn Fn(u64) -> Option<(&'a [u8], u64)>,
    },
    /// Values, the `i`th given by the function.
    Values(&'a dyn Fn(usize) -> &'a [u8]),
}

impl<'a> Run<'a> {
    pub(crate) fn new(positions: Range<u64>, len: usize, messages: Messages<'a>) -> Self {
        Run {
            positions,
            len,
            messages,
        }
    }

    /// The ring positions the run covers: from the first message's to just
    /// past the last's.
    pub fn positions(&self) -> Range<u64> {
        self.positions.clone()
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no message (padding alone, on a byte ring).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The messages, oldest first, each in place.
    pub fn iter(&self) -> RunIter<'a> {
        RunIter {
            messages: self.messages,
            next: 0,
            len: self.len,
        }
    }
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("positions", &self.positions)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The messages of a [`Run`], oldest first, each in place.
///
/// ```
/// use std::time::Duration;
/// use shmring::{AfterRun, MessageReceiver, Spsc};
/// # let name = format!("shmring-doc-run-iter-{}", std::process::id());
/// let ring = Spsc::<u16>::create(&name, 4)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_push(0x0102).unwrap();
/// rx.recv_runs(4, Duration::ZERO, &mut |run| {
///     let mut messages = run.iter();
///     assert_eq!(messages.next(), Some(&0x0102u16.to_ne_bytes()[..])); // the value's bytes
///     assert_eq!(messages.next(), None);
///     AfterRun::Release
/// })?;
/// # Ok::<(), shmring::Error>(())
/// ```
pub struct RunIter<'a> {
    messages: Messages<'a>,
    next: usize,
    len: usize,
}

impl<'a> Iterator for RunIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next == self.len {
            return None;
        }
        self.next += 1;
        match &mut self.messages {
            Messages::Records { from, next } => {
                let (message, after) = next(*from)?;
                *from = after;
                Some(message)
            }
            Messages::Values(at) => Some(at(self.next - 1)),
        }
    }
}

impl std::fmt::Debug for RunIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunIter")
            .field("next", &self.next)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// How many of `positions`, from the first, are consecutive.
pub(crate) fn run_len(positions: &[u64]) -> usize {
    let first = positions[0];
    positions
        .iter()
        .enumerate()
        .take_while(|&(i, &p)| p == first.wrapping_add(i as u64))
        .count()
}

//! The bridge's two ends of a ring, over shmring's interface for every
//! kind ([`MessageReceiver`], [`MessageSender`]): an outbound bridge
//! forwards runs of messages with their place in the ring; an inbound
//! bridge writes one message at a time. Byte rings carry their messages;
//! `Spsc<T>` and `Mpmc<T>` carry each value as its bytes, so a typed ring
//! on one host can feed a typed ring of the same `T` (or a byte ring) on
//! another.

use std::any::Any;
use std::ops::Range;
use std::task::{Context, Poll};
use std::time::Duration;

use shmring::{AfterRun, MessageReceiver, MessageSender, RecvError, Run, SendError};
use shmring_async::{AsyncConsumer, Receive};
use shmring_bridge_state::{OutState, Resume, Span};

use crate::{Error, Result};

/// Most messages an outbound bridge takes from its ring at once.
const BATCH: usize = 256;

/// One batch [`Reader::forward`] hands on.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// Where it lies in the ring, to be recorded before it is sent; `None`
    /// for a batch that is sent again and was recorded already.
    pub(crate) positions: Option<Range<u64>>,
    /// For a batch a previous bridge recorded and sent (perhaps in part)
    /// before it died: the number of its first message, to send it again
    /// under its numbers. `None`: new numbers.
    pub(crate) resend_from: Option<u64>,
    /// How many messages.
    pub(crate) count: u64,
}

/// What a reader hands each batch to: it records the batch, sends it and
/// returns `Ok`, and only then is the batch released.
pub(crate) type Forward<'a> = dyn FnMut(Batch, &mut dyn Iterator<Item = &[u8]>) -> Result<()> + 'a;

/// A consumer of any kind, read blocking ([`Reader::forward`]) or
/// awaited ([`Reader::poll_forward`]).
trait Source: Send {
    fn released(&self) -> Option<u64>;
    fn take_over_runs(
        &mut self,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, shmring::Error>;
    fn recv_runs(
        &mut self,
        max: usize,
        timeout: Duration,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, RecvError>;
    fn poll_recv_runs(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Poll<Result<usize, RecvError>>;
}

impl<H: Receive + MessageReceiver + Send> Source for AsyncConsumer<H> {
    fn released(&self) -> Option<u64> {
        self.get_ref().released()
    }
    fn take_over_runs(
        &mut self,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, shmring::Error> {
        self.get_mut().take_over_runs(each)
    }
    fn recv_runs(
        &mut self,
        max: usize,
        timeout: Duration,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Result<usize, RecvError> {
        self.get_mut().recv_runs(max, timeout, each)
    }
    fn poll_recv_runs(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Poll<Result<usize, RecvError>> {
        AsyncConsumer::poll_recv_runs(self, cx, max, each)
    }
}

/// What one look at the ring found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// This many messages were sent and released (perhaps 0: nothing came
    /// before a blocking call's timeout).
    Sent(u64),
    /// The ring is closed and drained: its producers finished (a
    /// restarted one may come back), so the caller waits a while.
    Closed,
}

/// The ring an outbound bridge reads, as a consumer of any kind.
///
/// Each run of consecutive positions is recorded, sent and released
/// before the next is recorded, so the record always covers what the
/// bridge holds that may have been sent. A consumer with a read position
/// of its own (SPSC, byte ring) resumes there after a restart and the
/// state file says which numbers it had. MPMC consumers share one: a
/// restarted bridge first takes over what its predecessor held; the
/// values in the recorded run go again under their numbers, the others
/// (taken, never recorded, so never sent) are kept and get new ones
/// after.
pub(crate) struct Reader {
    rx: Box<dyn Source>,
    _ring: Box<dyn Any + Send>,
    /// The run the previous bridge recorded last, until what it held has
    /// been taken over.
    recorded: Option<Span>,
    /// Whether what dead consumers held is still to be taken over (on the
    /// first call).
    taking_over: bool,
}

impl Reader {
    /// Read with `rx`, a consumer of `ring` (kept open with it), through
    /// the process's waiter thread when awaited.
    pub(crate) fn new<H>(rx: AsyncConsumer<H>, ring: impl Any + Send) -> Self
    where
        H: Receive + MessageReceiver + Send + 'static,
    {
        Reader {
            rx: Box::new(rx),
            _ring: Box::new(ring),
            recorded: None,
            taking_over: true,
        }
    }

    /// How a bridge with a state file goes on, given the ring's identity.
    pub(crate) fn resume(&mut self, state: &OutState, ring_id: u64) -> Resume {
        match self.rx.released() {
            Some(position) => state.resume(ring_id, position),
            None => {
                let r = state.resume_shared(ring_id);
                self.recorded = r.resumed.then(|| state.span());
                r
            }
        }
    }

    /// Wait up to `timeout` for messages, hand what is committed to `send`
    /// run by run, and release each run once `send` returns `Ok`; how
    /// many were sent. A run `send` fails on stays in the ring.
    pub(crate) fn forward(&mut self, timeout: Duration, send: &mut Forward<'_>) -> Result<u64> {
        let got = self.forward_with(send, |rx, each| {
            Poll::Ready(rx.recv_runs(BATCH, timeout, each))
        });
        match got {
            Poll::Ready(Ok(Forwarded::Closed)) => {
                std::thread::sleep(timeout);
                Ok(0)
            }
            Poll::Ready(Ok(Forwarded::Sent(n))) => Ok(n),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => unreachable!("a blocking receive is always ready"),
        }
    }

    /// As [`forward`](Self::forward), awaited: `Pending` (the task's waker
    /// registered) while the ring has nothing.
    pub(crate) fn poll_forward(
        &mut self,
        cx: &mut Context<'_>,
        send: &mut Forward<'_>,
    ) -> Poll<Result<Forwarded>> {
        self.forward_with(send, |rx, each| rx.poll_recv_runs(cx, BATCH, each))
    }

    /// Take over what dead consumers held (the first time), then receive
    /// with `recv` and send run by run.
    fn forward_with(
        &mut self,
        send: &mut Forward<'_>,
        recv: impl FnOnce(
            &mut dyn Source,
            &mut dyn FnMut(Run<'_>) -> AfterRun,
        ) -> Poll<Result<usize, RecvError>>,
    ) -> Poll<Result<Forwarded>> {
        let mut failed: Option<Error> = None;
        let mut sent = 0;
        if self.taking_over {
            // Everything taken over is looked at before any new record is
            // made, so what was recorded last is sent again first.
            let recorded = self.recorded;
            let taken = self.rx.take_over_runs(&mut |run| {
                let seq = recorded.and_then(|span| span.seq_of(run.positions().start));
                let (Some(first), None) = (seq, &failed) else {
                    return AfterRun::Keep; // never recorded: new numbers, below
                };
                let again = Batch {
                    positions: None,
                    resend_from: Some(first),
                    count: run.len() as u64,
                };
                settle(
                    send(again, &mut run.iter()),
                    run.len(),
                    &mut sent,
                    &mut failed,
                )
            });
            if let Err(e) = taken {
                return Poll::Ready(Err(e.into()));
            }
            if let Some(e) = failed {
                return Poll::Ready(Err(e));
            }
            self.taking_over = false;
            self.recorded = None;
        }
        let received = recv(&mut *self.rx, &mut |run| {
            if failed.is_some() {
                return AfterRun::Keep;
            }
            let count = run.len() as u64;
            let batch = Batch {
                positions: Some(run.positions()),
                resend_from: None,
                count,
            };
            settle(
                send(batch, &mut run.iter()),
                run.len(),
                &mut sent,
                &mut failed,
            )
        });
        if let Some(e) = failed {
            return Poll::Ready(Err(e));
        }
        match received {
            Poll::Pending if sent == 0 => Poll::Pending,
            Poll::Pending | Poll::Ready(Ok(_)) => Poll::Ready(Ok(Forwarded::Sent(sent))),
            // Timeout: nothing now. Closed: its producers finished.
            Poll::Ready(Err(RecvError::Timeout { .. })) => Poll::Ready(Ok(Forwarded::Sent(0))),
            Poll::Ready(Err(RecvError::Closed { .. })) => Poll::Ready(Ok(Forwarded::Closed)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
        }
    }
}

/// A run sent is released; one whose sending failed is kept, and the error
/// ends the call.
fn settle(r: Result<()>, n: usize, sent: &mut u64, failed: &mut Option<Error>) -> AfterRun {
    match r {
        Ok(()) => {
            *sent += n as u64;
            AfterRun::Release
        }
        Err(e) => {
            *failed = Some(e);
            AfterRun::Keep
        }
    }
}

/// What became of one message offered to a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Committed.
    Yes,
    /// The ring stayed full (or the message can never fit it).
    Full,
    /// Not a value of the ring's type: the wrong length.
    Malformed,
}

/// The ring an inbound bridge writes, as a producer of any kind.
pub(crate) struct Writer {
    tx: Box<dyn MessageSender + Send>,
    _ring: Box<dyn Any + Send>,
}

impl Writer {
    /// Write with `tx`, a producer of `ring` (kept open with it).
    pub(crate) fn new(tx: impl MessageSender + Send + 'static, ring: impl Any + Send) -> Self {
        Writer {
            tx: Box::new(tx),
            _ring: Box::new(ring),
        }
    }

    /// Write `payload` as one message, in place (one copy from Zenoh's
    /// buffers), waiting up to `wait` for room.
    pub(crate) fn write(
        &mut self,
        payload: &zenoh::bytes::ZBytes,
        wait: Duration,
    ) -> Result<Written> {
        let written = self.tx.send_with(payload.len(), wait, &mut |room| {
            let mut at = 0;
            for slice in payload.slices() {
                room[at..at + slice.len()].copy_from_slice(slice);
                at += slice.len();
            }
        });
        match written {
            Ok(()) => Ok(Written::Yes),
            Err(SendError::WrongLength { .. }) => Ok(Written::Malformed),
            Err(
                SendError::Full | SendError::Timeout { .. } | SendError::MessageTooLarge { .. },
            ) => Ok(Written::Full),
            Err(e) => Err(e.into()),
        }
    }
}

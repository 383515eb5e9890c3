//! Every consumer kind, awaited: [`AsyncConsumer`] over a [`Receive`]
//! handle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use shmring::bytes::{Consumer as ByteConsumer, Message};
use shmring::hook::Waitable;
use shmring::{AfterRun, MessageReceiver, Pod, RecvError, Run};

use crate::reactor::{poll_look, Reactor, Waiting};

mod sealed {
    pub trait Sealed {}
}

/// A consumer handle of any ring kind, as [`AsyncConsumer`] drives it.
/// Implemented for `shmring::spsc::Consumer`, `shmring::mpmc::Consumer`,
/// `shmring::broadcast::Subscriber` and `shmring::bytes::Consumer`
/// (sealed: the hooks it relies on are the library's).
pub trait Receive: Waitable + sealed::Sealed {
    /// What one receive lends: a value, or a message in place.
    type Msg<'a>
    where
        Self: 'a;
    /// What [`AsyncConsumer::recv`] returns: the value, or the message's
    /// bytes copied out.
    type Owned;
    /// Take the next message if there is one.
    #[doc(hidden)]
    fn try_msg(&mut self) -> Result<Option<Self::Msg<'_>>, RecvError>;
    /// The ring was closed: take what is left, `Ok(None)` if a repair must
    /// come first, `Err(Closed)` once drained.
    #[doc(hidden)]
    fn msg_after_close(&mut self) -> Result<Option<Self::Msg<'_>>, RecvError>;
    /// The message, owned.
    #[doc(hidden)]
    fn own(msg: Self::Msg<'_>) -> Self::Owned;
    /// Whether a look would surely find nothing (a cheap hint: `false`
    /// when unsure), so that a look through a blocking call's timeout
    /// path (a liveness system call, a counted timeout) is not made.
    #[doc(hidden)]
    fn surely_empty(&self) -> bool {
        false
    }
}

/// A zero-timeout call's "nothing yet" (a timeout, or stalled behind a
/// repair) as `None`.
fn not_yet<M>(r: Result<M, RecvError>) -> Result<Option<M>, RecvError> {
    match r {
        Ok(m) => Ok(Some(m)),
        Err(RecvError::Timeout { .. } | RecvError::Stalled { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

macro_rules! typed_receive {
    ($($ty:ty => $empty:expr),*) => {$(
        impl<T: Pod + Send> sealed::Sealed for $ty {}
        impl<T: Pod + Send> Receive for $ty {
            type Msg<'a> = T where Self: 'a;
            type Owned = T;
            fn try_msg(&mut self) -> Result<Option<T>, RecvError> {
                Ok(self.try_pop())
            }
            fn msg_after_close(&mut self) -> Result<Option<T>, RecvError> {
                not_yet(self.pop_timeout(Duration::ZERO))
            }
            fn own(msg: T) -> T {
                msg
            }
            fn surely_empty(&self) -> bool {
                ($empty)(self)
            }
        }
    )*};
}

typed_receive!(
    shmring::spsc::Consumer<T> => shmring::spsc::Consumer::is_empty,
    shmring::mpmc::Consumer<T> => shmring::mpmc::Consumer::is_empty,
    shmring::broadcast::Subscriber<T> => |_: &shmring::broadcast::Subscriber<T>| false
);

impl sealed::Sealed for ByteConsumer {}
impl Receive for ByteConsumer {
    type Msg<'a> = Message<'a>;
    type Owned = Vec<u8>;
    fn try_msg(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        self.try_recv()
    }
    fn msg_after_close(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        not_yet(self.recv_timeout(Duration::ZERO))
    }
    fn own(msg: Message<'_>) -> Vec<u8> {
        msg.to_vec()
    }
    fn surely_empty(&self) -> bool {
        matches!(self.pending(), Ok(0))
    }
}

/// A consumer handle whose receives can be awaited, on any executor.
///
/// A receive takes a value only in the poll that returns it, so a future
/// dropped before it completes (a `select!` branch that lost, a timeout)
/// loses nothing, and leaves no waker behind. Only a task waiting on an
/// empty ring costs anything: its ring's word joins the process's waiter
/// thread (see the crate docs); a ring that has data is read at the cost of
/// a `try_pop`.
///
/// ```
/// # let name = format!("shmring-doc-async-consumer-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let mut tx = ring.producer()?;
/// let mut rx = shmring_async::AsyncConsumer::new(ring.consumer()?);
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     let waiting = tokio::spawn(async move { rx.recv().await });
///     tx.try_push(7).unwrap();
///     assert_eq!(waiting.await.unwrap()?, 7);
///     Ok::<(), shmring::RecvError>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncConsumer<H: Receive> {
    inner: H,
    wait: Waiting,
    spins: u32,
}

impl<H: Receive> std::fmt::Debug for AsyncConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.wait.fmt_as("AsyncConsumer", f)
    }
}

impl<H: Receive> AsyncConsumer<H> {
    /// Await `inner`'s receives through the process's waiter thread.
    #[cfg(not(shmring_loom))]
    pub fn new(inner: H) -> Self {
        Self::with_reactor(inner, &Reactor::global())
    }

    /// Through `reactor`'s waiter threads instead of the process's.
    pub fn with_reactor(inner: H, reactor: &Reactor) -> Self {
        AsyncConsumer {
            wait: Waiting::new(inner.wake_word(), reactor),
            inner,
            spins: 0,
        }
    }

    /// How many times a receive that finds the ring empty looks again,
    /// spinning, before its task parks (0, the default: park at once).
    /// Spinning holds the executor's thread, so it pays only where a value
    /// is due within about a microsecond (a tight request-reply loop)
    /// and the executor has a core to spare.
    ///
    /// ```
    /// # let name = format!("shmring-doc-async-spins-{}", std::process::id());
    /// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
    /// let mut rx = shmring_async::AsyncConsumer::new(ring.consumer()?);
    /// rx.set_spin_budget(1000);
    /// assert_eq!(rx.spin_budget(), 1000);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn set_spin_budget(&mut self, spins: u32) {
        self.spins = spins;
    }

    /// The spin budget (see [`set_spin_budget`](Self::set_spin_budget)).
    pub fn spin_budget(&self) -> u32 {
        self.spins
    }

    /// The handle, for its synchronous calls (in-place chunks, counters).
    pub fn get_mut(&mut self) -> &mut H {
        &mut self.inner
    }

    /// The handle.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// The handle back.
    pub fn into_inner(self) -> H {
        self.inner
    }

    /// Receive the next value (a byte ring: the next message, copied),
    /// waiting for one; `Err(Closed)` once the producer closed the ring
    /// and everything before the close was received.
    pub fn recv(&mut self) -> Recv<'_, H> {
        self.recv_with(H::own)
    }

    /// Receive the next message and give it to `f` in place (a byte ring's
    /// message is not copied), waiting for one.
    ///
    /// ```
    /// # let name = format!("shmring-doc-async-recv-with-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 256)?;
    /// ring.producer()?.try_send(b"hello")?;
    /// let mut rx = shmring_async::AsyncConsumer::new(ring.consumer()?);
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let len = rt.block_on(rx.recv_with(|msg| msg.len()))?;
    /// assert_eq!(len, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_with<R, F>(&mut self, f: F) -> RecvWith<'_, H, F>
    where
        F: FnMut(H::Msg<'_>) -> R + Unpin,
    {
        RecvWith {
            rx: self,
            f,
            waiting: false,
        }
    }

    /// Poll for the next message, handing it to `f`.
    pub fn poll_recv_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: &mut impl FnMut(H::Msg<'_>) -> R,
    ) -> Poll<Result<R, RecvError>> {
        let (inner, word) = (&mut self.inner, &self.wait.word);
        let look = || {
            match inner.try_msg() {
                Ok(Some(m)) => return Some(Ok(f(m))),
                Err(e) => return Some(Err(e)),
                Ok(None) => {}
            }
            if !word.is_closed() {
                return None;
            }
            match inner.msg_after_close() {
                Ok(Some(m)) => Some(Ok(f(m))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        };
        poll_look(
            &mut self.wait.reg,
            &self.wait.reactor,
            word,
            cx,
            self.spins,
            look,
        )
    }

    /// Poll for the next value (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<H::Owned, RecvError>> {
        self.poll_recv_with(cx, &mut H::own)
    }

    /// The waiting task is gone: its waker goes too.
    fn stop_waiting(&mut self) {
        self.wait.stop();
    }
}

impl<H: Receive + MessageReceiver> AsyncConsumer<H> {
    /// Wait for messages, then lend up to `max` committed ones to `each`
    /// in place, in runs of consecutive positions, as the blocking
    /// [`MessageReceiver::recv_runs`] does (`each` says whether a run is
    /// released or kept); how many were released. A forwarder's loop: one
    /// await per batch, whatever the ring's kind.
    ///
    /// Nothing is lent but in the poll that completes, so a dropped future
    /// takes nothing. `Err(Closed)` once the producer closed the ring and
    /// everything before the close was lent.
    ///
    /// ```
    /// use shmring::AfterRun;
    /// # let name = format!("shmring-doc-async-runs-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 256)?;
    /// let mut tx = ring.producer()?;
    /// tx.try_send(b"ab")?;
    /// tx.try_send(b"cde")?;
    /// let mut rx = shmring_async::AsyncConsumer::new(ring.consumer()?);
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let mut joined = Vec::new();
    /// let released = rt.block_on(rx.recv_runs(8, |run| {
    ///     joined.extend(run.iter().flatten());
    ///     AfterRun::Release
    /// }))?;
    /// assert_eq!((released, &joined[..]), (2, &b"abcde"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_runs<F>(&mut self, max: usize, each: F) -> RecvRuns<'_, H, F>
    where
        F: FnMut(Run<'_>) -> AfterRun + Unpin,
    {
        RecvRuns {
            rx: self,
            max,
            each,
            waiting: false,
        }
    }

    /// Poll for runs of messages (see [`recv_runs`](Self::recv_runs)).
    pub fn poll_recv_runs(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        each: &mut dyn FnMut(Run<'_>) -> AfterRun,
    ) -> Poll<Result<usize, RecvError>> {
        let (inner, word) = (&mut self.inner, &self.wait.word);
        let look = || {
            // An empty ring is not looked at through the blocking call,
            // whose timeout path asks the kernel whether a producer lives
            // and counts a timeout (a closed one is: it says Closed).
            if inner.surely_empty() && !word.is_closed() {
                return None;
            }
            // Ready once a run was lent, even if every run was kept.
            let mut lent = false;
            let r = inner.recv_runs(max, Duration::ZERO, &mut |run| {
                lent = true;
                each(run)
            });
            match r {
                Ok(0) if !lent => None,
                Err(RecvError::Timeout { .. } | RecvError::Stalled { .. }) => None,
                r => Some(r),
            }
        };
        poll_look(
            &mut self.wait.reg,
            &self.wait.reactor,
            &self.wait.word,
            cx,
            self.spins,
            look,
        )
    }
}

/// The future of [`AsyncConsumer::recv_runs`]. Dropping it before it
/// completes takes nothing from the ring and leaves no waker behind.
#[must_use = "a future does nothing unless awaited"]
pub struct RecvRuns<'a, H: Receive, F> {
    rx: &'a mut AsyncConsumer<H>,
    max: usize,
    each: F,
    waiting: bool,
}

impl<H: Receive, F> std::fmt::Debug for RecvRuns<'_, H, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRuns")
            .field("rx", &self.rx)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<H, F> Future for RecvRuns<'_, H, F>
where
    H: Receive + MessageReceiver,
    F: FnMut(Run<'_>) -> AfterRun + Unpin,
{
    type Output = Result<usize, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.rx.poll_recv_runs(cx, this.max, &mut this.each);
        this.waiting = r.is_pending();
        r
    }
}

impl<H: Receive, F> Drop for RecvRuns<'_, H, F> {
    fn drop(&mut self) {
        if self.waiting {
            self.rx.stop_waiting();
        }
    }
}

/// The future of [`AsyncConsumer::recv`].
pub type Recv<'a, H> = RecvWith<'a, H, Own<H>>;

/// What [`AsyncConsumer::recv`] does with a message: [`Receive::Owned`].
pub type Own<H> = for<'m> fn(<H as Receive>::Msg<'m>) -> <H as Receive>::Owned;

/// The future of [`AsyncConsumer::recv`] and
/// [`recv_with`](AsyncConsumer::recv_with). Dropping it before it
/// completes takes nothing from the ring and leaves no waker behind.
#[must_use = "a future does nothing unless awaited"]
pub struct RecvWith<'a, H: Receive, F> {
    rx: &'a mut AsyncConsumer<H>,
    f: F,
    waiting: bool,
}

impl<H: Receive, F> std::fmt::Debug for RecvWith<'_, H, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvWith")
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl<H: Receive, R, F: FnMut(H::Msg<'_>) -> R + Unpin> Future for RecvWith<'_, H, F> {
    type Output = Result<R, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.rx.poll_recv_with(cx, &mut this.f);
        this.waiting = r.is_pending();
        r
    }
}

impl<H: Receive, F> Drop for RecvWith<'_, H, F> {
    fn drop(&mut self) {
        if self.waiting {
            self.rx.stop_waiting();
        }
    }
}

/// Every value until the producer closes the ring (then `None`); an error
/// other than `Closed` is an item.
impl<H: Receive + Unpin> Stream for AsyncConsumer<H> {
    type Item = Result<H::Owned, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Err(RecvError::Closed { .. })) => Poll::Ready(None),
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Pending,
        }
    }
}

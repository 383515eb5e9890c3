//! Every producer kind, awaited: [`AsyncProducer`] over a [`Transmit`]
//! handle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use shmring::bytes::{Grant, Producer as ByteProducer};
use shmring::hook::Waitable;
use shmring::{Pod, SendError};

use crate::reactor::{poll_look, Reactor, Waiting};

mod sealed {
    pub trait Sealed {}
}

/// Why a send did not happen now.
#[doc(hidden)]
#[derive(Debug)]
pub enum Refused<I> {
    /// No room: the item, back.
    Full(I),
    /// Never (too long, a corrupt ring).
    Failed(SendError),
}

/// Send the item in `slot` with `send`: `None` (the item back in `slot`)
/// while there is no room.
fn offer<I>(
    slot: &mut Option<I>,
    send: impl FnOnce(I) -> Result<(), Refused<I>>,
) -> Option<Result<(), SendError>> {
    match send(slot.take()?) {
        Ok(()) => Some(Ok(())),
        Err(Refused::Full(item)) => {
            *slot = Some(item);
            None
        }
        Err(Refused::Failed(e)) => Some(Err(e)),
    }
}

/// A producer handle of any ring kind, as [`AsyncProducer`] drives it.
/// Implemented for `shmring::spsc::Producer`, `shmring::mpmc::Producer`,
/// `shmring::broadcast::Producer` (items are values) and
/// `shmring::bytes::Producer` (items are byte slices); sealed.
pub trait Transmit: Waitable + sealed::Sealed {
    /// What one send takes.
    type Item<'a>;
    /// What the [`Sink`](futures_sink::Sink) takes: the item, owned.
    type Owned;
    /// Send `item` if there is room now.
    #[doc(hidden)]
    fn try_item<'a>(&mut self, item: Self::Item<'a>) -> Result<(), Refused<Self::Item<'a>>>;
    /// Send an owned item if there is room now.
    #[doc(hidden)]
    fn try_owned(&mut self, item: Self::Owned) -> Result<(), Refused<Self::Owned>>;
}

macro_rules! typed_transmit {
    ($($ty:ty),*) => {$(
        impl<T: Pod + Send> sealed::Sealed for $ty {}
        impl<T: Pod + Send> Transmit for $ty {
            type Item<'a> = T;
            type Owned = T;
            fn try_item<'a>(&mut self, item: Self::Item<'a>) -> Result<(), Refused<Self::Item<'a>>> {
                self.try_push(item).map_err(|full| Refused::Full(full.into_inner()))
            }
            fn try_owned(&mut self, item: T) -> Result<(), Refused<T>> {
                self.try_item(item)
            }
        }
    )*};
}

typed_transmit!(
    shmring::spsc::Producer<T>,
    shmring::mpmc::Producer<T>,
    shmring::broadcast::Producer<T>
);

impl sealed::Sealed for ByteProducer {}
impl Transmit for ByteProducer {
    type Item<'a> = &'a [u8];
    type Owned = Vec<u8>;
    fn try_owned(&mut self, item: Vec<u8>) -> Result<(), Refused<Vec<u8>>> {
        match self.try_item(&item) {
            Ok(()) => Ok(()),
            Err(Refused::Full(_)) => Err(Refused::Full(item)),
            Err(Refused::Failed(e)) => Err(Refused::Failed(e)),
        }
    }
    fn try_item<'a>(&mut self, item: Self::Item<'a>) -> Result<(), Refused<Self::Item<'a>>> {
        match self.try_send(item) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => Err(Refused::Full(item)),
            Err(e) => Err(Refused::Failed(e)),
        }
    }
}

/// A producer handle whose room can be reserved in place, as
/// [`AsyncProducer::reserve_with`] awaits it: up to `n` values of an SPSC
/// or broadcast ring (a write chunk), one slot of an MPMC ring, `n` bytes
/// of a byte ring (a grant). Sealed.
pub trait Reserve: Transmit {
    /// What a reservation lends.
    type Chunk<'a>
    where
        Self: 'a;
    /// Reserve room for up to `n` items (a byte ring: exactly `n` bytes)
    /// if there is any now.
    #[doc(hidden)]
    fn try_chunk(&mut self, n: usize) -> Result<Option<Self::Chunk<'_>>, SendError>;
}

impl<T: Pod + Send> Reserve for shmring::spsc::Producer<T> {
    type Chunk<'a> = shmring::spsc::WriteChunk<'a, T>;
    fn try_chunk(&mut self, n: usize) -> Result<Option<Self::Chunk<'_>>, SendError> {
        // At least one: a reservation of none would wait for ever.
        Ok(self.try_reserve(n.max(1)))
    }
}

impl<T: Pod + Send> Reserve for shmring::broadcast::Producer<T> {
    type Chunk<'a> = shmring::broadcast::WriteChunk<'a, T>;
    fn try_chunk(&mut self, n: usize) -> Result<Option<Self::Chunk<'_>>, SendError> {
        // At least one: a reservation of none would wait for ever.
        Ok(self.try_reserve(n.max(1)))
    }
}

impl<T: Pod + Send> Reserve for shmring::mpmc::Producer<T> {
    type Chunk<'a> = shmring::mpmc::WriteSlot<'a, T>;
    fn try_chunk(&mut self, _one: usize) -> Result<Option<Self::Chunk<'_>>, SendError> {
        Ok(self.try_reserve())
    }
}

impl Reserve for ByteProducer {
    type Chunk<'a> = Grant<'a>;
    fn try_chunk(&mut self, len: usize) -> Result<Option<Grant<'_>>, SendError> {
        match self.try_reserve(len) {
            Ok(grant) => Ok(Some(grant)),
            Err(SendError::Full) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A producer handle whose sends can be awaited when the ring is full.
///
/// A send future holds its item until the poll that sends it; dropped
/// before, it sends nothing (the item is dropped with it) and leaves no
/// waker behind.
///
/// ```
/// # let name = format!("shmring-doc-async-producer-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
/// let mut tx = shmring_async::AsyncProducer::new(ring.producer()?);
/// let mut rx = ring.consumer()?;
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     tx.send(1).await?; // room: at once
///     let full = tokio::spawn(async move { tx.send(2).await }); // waits
///     tokio::task::yield_now().await;
///     assert_eq!(rx.try_pop(), Some(1)); // makes room, wakes the sender
///     full.await.unwrap()?;
///     assert_eq!(rx.try_pop(), Some(2));
///     Ok::<(), shmring::SendError>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncProducer<H: Transmit> {
    inner: H,
    wait: Waiting,
    /// The item `Sink::start_send` took and no flush has sent yet.
    buffered: Option<H::Owned>,
}

impl<H: Transmit> std::fmt::Debug for AsyncProducer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.wait.fmt_as("AsyncProducer", f)
    }
}

impl<H: Transmit> AsyncProducer<H> {
    /// Await `inner`'s sends through the process's waiter thread.
    #[cfg(not(shmring_loom))]
    pub fn new(inner: H) -> Self {
        Self::with_reactor(inner, &Reactor::global())
    }

    /// Through `reactor`'s waiter threads instead of the process's.
    pub fn with_reactor(inner: H, reactor: &Reactor) -> Self {
        AsyncProducer {
            wait: Waiting::new(inner.wake_word(), reactor),
            inner,
            buffered: None,
        }
    }

    /// The handle, for its synchronous calls.
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

    /// Send `item`, waiting for room while the ring is full.
    pub fn send<'i>(&mut self, item: H::Item<'i>) -> Sending<'_, 'i, H> {
        Sending {
            tx: self,
            item: Some(item),
            waiting: false,
        }
    }

    /// Poll to send the item in `slot` (taken from it once sent; left in
    /// it while there is no room).
    pub fn poll_send<'i>(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<H::Item<'i>>,
    ) -> Poll<Result<(), SendError>> {
        let inner = &mut self.inner;
        let look = || offer(slot, |item| inner.try_item(item));
        poll_look(
            &mut self.wait.reg,
            &self.wait.reactor,
            &self.wait.word,
            cx,
            0,
            look,
        )
    }

    /// Poll to send the buffered item of the `Sink`, if any.
    fn poll_buffered(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        if self.buffered.is_none() {
            return Poll::Ready(Ok(()));
        }
        let (inner, buffered) = (&mut self.inner, &mut self.buffered);
        let look = || offer(buffered, |item| inner.try_owned(item));
        poll_look(
            &mut self.wait.reg,
            &self.wait.reactor,
            &self.wait.word,
            cx,
            0,
            look,
        )
    }

    fn stop_waiting(&mut self) {
        self.wait.stop();
    }
}

/// The future of [`AsyncProducer::send`].
#[must_use = "a future does nothing unless awaited"]
pub struct Sending<'a, 'i, H: Transmit> {
    tx: &'a mut AsyncProducer<H>,
    item: Option<H::Item<'i>>,
    waiting: bool,
}

impl<H: Transmit> std::fmt::Debug for Sending<'_, '_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sending")
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl<H: Transmit> Unpin for Sending<'_, '_, H> {}

impl<H: Transmit> Future for Sending<'_, '_, H> {
    type Output = Result<(), SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.tx.poll_send(cx, &mut this.item);
        this.waiting = r.is_pending();
        r
    }
}

impl<H: Transmit> Drop for Sending<'_, '_, H> {
    fn drop(&mut self) {
        if self.waiting {
            self.tx.stop_waiting();
        }
    }
}

impl AsyncProducer<ByteProducer> {
    /// Reserve `len` bytes in place, waiting for room, and let `fill`
    /// write the message there before it is committed (no copy). Room is
    /// reserved only in the poll that fills and commits it, so a future
    /// dropped while it waits holds nothing.
    ///
    /// ```
    /// # let name = format!("shmring-doc-async-send-with-{}", std::process::id());
    /// let ring = shmring::ByteRing::create(&name, 256)?;
    /// let mut tx = shmring_async::AsyncProducer::new(ring.producer()?);
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(tx.send_with(5, |buf| buf.copy_from_slice(b"hello")))?;
    /// assert_eq!(&*ring.consumer()?.try_recv()?.unwrap(), b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with<F: FnOnce(&mut [u8]) + Unpin>(
        &mut self,
        len: usize,
        fill: F,
    ) -> SendWith<'_, F> {
        SendWith {
            tx: self,
            len,
            fill: Some(fill),
            waiting: false,
        }
    }

    fn poll_send_with(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        fill: &mut Option<impl FnOnce(&mut [u8])>,
    ) -> Poll<Result<(), SendError>> {
        let mut once = Some(|mut grant: Grant<'_>| {
            if let Some(fill) = fill.take() {
                fill(&mut grant);
            }
            grant.commit();
        });
        self.poll_reserve(cx, len, &mut once)
    }
}

impl<H: Reserve> AsyncProducer<H> {
    /// Reserve room in place, waiting while the ring is full, and hand it
    /// to `f` to fill and commit: up to `n` values of an SPSC or broadcast
    /// ring (a write chunk: fewer when the ring has less room, at least
    /// one), one slot
    /// of an MPMC ring, `n` bytes of a byte ring (a grant). Room is
    /// reserved only in the poll that calls `f`, so a future dropped while
    /// it waits holds nothing. What `f` leaves uncommitted is not sent.
    ///
    /// ```
    /// # let name = format!("shmring-doc-async-reserve-{}", std::process::id());
    /// let ring = shmring::Spsc::<[u64; 4]>::create(&name, 8)?;
    /// let mut tx = shmring_async::AsyncProducer::new(ring.producer()?);
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let sent = rt.block_on(tx.reserve_with(3, |mut chunk| {
    ///     for i in 0..chunk.len() {
    ///         chunk.get_mut(i)[0] = i as u64; // built in place
    ///     }
    ///     let n = chunk.len();
    ///     chunk.commit_all();
    ///     n
    /// }))?;
    /// assert_eq!(sent, 3);
    /// assert_eq!(ring.consumer()?.try_pop().map(|v| v[0]), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_with<R, F>(&mut self, n: usize, f: F) -> ReserveWith<'_, H, F>
    where
        F: FnOnce(H::Chunk<'_>) -> R + Unpin,
    {
        ReserveWith {
            tx: self,
            n,
            f: Some(f),
            waiting: false,
        }
    }

    /// Look for room for `n`, and lend it to the function in `f` (taken).
    fn poll_reserve<R>(
        &mut self,
        cx: &mut Context<'_>,
        n: usize,
        f: &mut Option<impl FnOnce(H::Chunk<'_>) -> R>,
    ) -> Poll<Result<R, SendError>> {
        let inner = &mut self.inner;
        let look = || match inner.try_chunk(n) {
            Ok(Some(chunk)) => Some(Ok(f
                .take()
                .expect("a reservation polled after it completed")(
                chunk
            ))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        poll_look(
            &mut self.wait.reg,
            &self.wait.reactor,
            &self.wait.word,
            cx,
            0,
            look,
        )
    }
}

/// The future of [`AsyncProducer::reserve_with`].
#[must_use = "a future does nothing unless awaited"]
pub struct ReserveWith<'a, H: Reserve, F> {
    tx: &'a mut AsyncProducer<H>,
    n: usize,
    f: Option<F>,
    waiting: bool,
}

impl<H: Reserve, F> std::fmt::Debug for ReserveWith<'_, H, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReserveWith")
            .field("tx", &self.tx)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<H: Reserve, R, F: FnOnce(H::Chunk<'_>) -> R + Unpin> Future for ReserveWith<'_, H, F> {
    type Output = Result<R, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.tx.poll_reserve(cx, this.n, &mut this.f);
        this.waiting = r.is_pending();
        r
    }
}

impl<H: Reserve, F> Drop for ReserveWith<'_, H, F> {
    fn drop(&mut self) {
        if self.waiting {
            self.tx.stop_waiting();
        }
    }
}

/// The future of [`AsyncProducer::send_with`].
#[must_use = "a future does nothing unless awaited"]
pub struct SendWith<'a, F> {
    tx: &'a mut AsyncProducer<ByteProducer>,
    len: usize,
    fill: Option<F>,
    waiting: bool,
}

impl<F> std::fmt::Debug for SendWith<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendWith")
            .field("tx", &self.tx)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<F: FnOnce(&mut [u8]) + Unpin> Future for SendWith<'_, F> {
    type Output = Result<(), SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.tx.poll_send_with(cx, this.len, &mut this.fill);
        this.waiting = r.is_pending();
        r
    }
}

impl<F> Drop for SendWith<'_, F> {
    fn drop(&mut self) {
        if self.waiting {
            self.tx.stop_waiting();
        }
    }
}

/// Items into the ring, one buffered: `poll_ready` waits until the last
/// one is in the ring (an MPMC ring's room can go to another producer
/// between a look and a send, so room is not promised ahead), and
/// `poll_flush` until the buffered one is. Closing flushes; the ring stays
/// open (close it through [`into_inner`](AsyncProducer::into_inner)).
///
/// ```
/// use futures_sink::Sink;
/// # let name = format!("shmring-doc-async-sink-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 4)?;
/// let mut tx = shmring_async::AsyncProducer::new(ring.producer()?);
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(std::future::poll_fn(|cx| std::pin::Pin::new(&mut tx).poll_ready(cx)))?;
/// std::pin::Pin::new(&mut tx).start_send(5)?;
/// rt.block_on(std::future::poll_fn(|cx| std::pin::Pin::new(&mut tx).poll_flush(cx)))?;
/// assert_eq!(ring.consumer()?.try_pop(), Some(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<H: Transmit + Unpin> futures_sink::Sink<H::Owned> for AsyncProducer<H>
where
    H::Owned: Unpin,
{
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_buffered(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: H::Owned) -> Result<(), SendError> {
        let this = self.get_mut();
        // Called without `poll_ready` first (a broken contract): refused,
        // rather than dropping the item buffered before it.
        if this.buffered.is_some() {
            return Err(SendError::Full);
        }
        this.buffered = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_buffered(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_buffered(cx)
    }
}

//! A request-reply client, awaited: [`AsyncClient`] over
//! `shmring::request_reply::Client`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use shmring::hook::Waitable;
use shmring::request_reply::{CallError, Client, Reply};

use crate::reactor::{poll_look, Reactor, Waiting};

/// A request-reply [`Client`] whose replies are awaited.
///
/// Its task parks on the client's reply ring, as an [`AsyncConsumer`]
/// does on any ring, and is woken by the server's reply. A server it
/// waits on that dies wakes it too: the waiter thread's looks (100 ms
/// after the task parked, then at doubling intervals up to 800 ms) ask
/// the kernel whether the servers of the lanes it waits on live, and wake
/// the task if one died. A lane with no server at all is seen at once by
/// the task's own look (a call's first poll); a server that leaves,
/// cleanly or not, while the task is parked, by the waiter's next look.
/// (Without `membarrier` the waiter makes no such looks: it wakes the
/// task every millisecond instead, and the task asks the kernel itself
/// every 5 ms, as the blocking wait does.) Then, as the blocking wait does,
/// idempotent requests go to another server and the wait goes on, and
/// any other request ends it with [`CallError::ServerGone`].
///
/// Sends do not wait: a full request ring is [`CallError::Full`] at once
/// (send through [`get_mut`](Self::get_mut) with a timeout to wait for
/// room). Bound each await with the executor's timeout, as every blocking
/// call takes one.
///
/// [`AsyncConsumer`]: crate::AsyncConsumer
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// use shmring_async::AsyncClient;
/// # let name = format!("shmring-doc-async-client-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let mut server = service.server()?;
/// let mut client = AsyncClient::new(service.client(4096)?);
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
/// let served = std::thread::spawn(move || -> Result<(), shmring::request_reply::CallError> {
///     let request = server.recv_timeout(Duration::from_secs(5))?;
///     let sum: u32 = request.payload().iter().map(|&b| u32::from(b)).sum();
///     request.reply_value_last(&sum)
/// });
/// let sum = rt.block_on(async {
///     let reply = client.call(&[1, 2, 3]).await?;
///     reply.value::<u32>()
/// })?;
/// assert_eq!(sum, 6);
/// served.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncClient {
    client: Client,
    wait: Waiting,
    spins: u32,
    /// Without `membarrier`: when the task next asks the kernel whether
    /// its servers live (set at its first look that finds nothing).
    next_check: Option<Instant>,
}

/// How often a task awaited without `membarrier` (whose waiter makes no
/// looks for dead servers) asks the kernel itself: the blocking wait's
/// slice.
const UNPAIRED_CHECK_EVERY: Duration = Duration::from_millis(5);

/// Whether it is time to ask the kernel, by `next`; the first call only
/// sets the time.
fn check_due(next: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    let due = next.is_some_and(|t| now >= t);
    if due || next.is_none() {
        *next = Some(now + UNPAIRED_CHECK_EVERY);
    }
    due
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.wait.fmt_as("AsyncClient", f)
    }
}

impl AsyncClient {
    /// Await `client`'s replies through the process's waiter thread.
    #[cfg(not(shmring_loom))]
    pub fn new(client: Client) -> Self {
        Self::with_reactor(client, &Reactor::global())
    }

    /// Through `reactor`'s waiter threads instead of the process's.
    pub fn with_reactor(client: Client, reactor: &Reactor) -> Self {
        AsyncClient {
            wait: Waiting::new(client.wake_word(), reactor),
            client,
            spins: 0,
            next_check: None,
        }
    }

    /// How many times a receive that finds no reply looks again,
    /// spinning, before its task parks (0, the default); see
    /// [`AsyncConsumer::set_spin_budget`](crate::AsyncConsumer::set_spin_budget).
    pub fn set_spin_budget(&mut self, spins: u32) {
        self.spins = spins;
    }

    /// The client, for its synchronous calls (sends with a timeout,
    /// `cancel`, counters).
    pub fn get_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The client.
    pub fn get_ref(&self) -> &Client {
        &self.client
    }

    /// The client back.
    pub fn into_inner(self) -> Client {
        self.client
    }

    /// Await the next reply to a request the client waits for, in place
    /// (as [`Client::recv_timeout`], without the timeout).
    pub fn recv(&mut self) -> RecvReply<'_> {
        RecvReply {
            client: Some(self),
            call: None,
            refused: None,
        }
    }

    /// Send `payload` (without waiting for room) and await its reply (a
    /// single one, or the first of a stream), as
    /// [`Client::call_timeout`]. A call given up (its future dropped, a
    /// gone server) is cancelled: a late reply is dropped and counted.
    pub fn call(&mut self, payload: &[u8]) -> RecvReply<'_> {
        self.call_inner(payload, false)
    }

    /// [`call`](Self::call) with an idempotent request
    /// ([`Client::send_idempotent`]): a server that dies before it
    /// answers is replaced by another, where one lives.
    pub fn call_idempotent(&mut self, payload: &[u8]) -> RecvReply<'_> {
        self.call_inner(payload, true)
    }

    fn call_inner(&mut self, payload: &[u8], idempotent: bool) -> RecvReply<'_> {
        // A call dropped while it waited leaves its time; this one counts
        // from its own first look.
        self.next_check = None;
        let sent = if self.client.outstanding() > 0 {
            // As the blocking call refuses.
            Err(CallError::Outstanding {
                service: self.client.service().to_owned(),
                outstanding: self.client.outstanding(),
            })
        } else if idempotent {
            self.client.send_idempotent(payload, Duration::ZERO)
        } else {
            self.client.send_timeout(payload, Duration::ZERO)
        };
        match sent {
            Ok(id) => RecvReply {
                client: Some(self),
                call: Some(id),
                refused: None,
            },
            Err(e) => RecvReply {
                client: None,
                call: None,
                refused: Some(e),
            },
        }
    }

    /// Poll until a reply to a request the client waits for is there
    /// (left in place: [`Client::try_recv`] lends it), or the wait ends
    /// with an error.
    pub fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        let client = &mut self.client;
        let unpaired = self.wait.reg.as_ref().is_some_and(|r| r.unpaired);
        let next_check = &mut self.next_check;
        let look = || {
            let ended = match client.has_reply() {
                Ok(true) => Some(Ok(())),
                Err(e) => Some(Err(e)),
                Ok(false) if client.take_suspicion() || (unpaired && check_due(next_check)) => {
                    client.check_servers().err().map(Err)
                }
                Ok(false) => None,
            };
            if ended.is_some() {
                // The next wait starts its own count.
                *next_check = None;
            }
            ended
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

/// The future of [`AsyncClient::recv`] and [`AsyncClient::call`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvReply<'a> {
    client: Option<&'a mut AsyncClient>,
    /// A call's request: cancelled if the call fails or is dropped.
    call: Option<u64>,
    /// A call whose send was refused.
    refused: Option<CallError>,
}

impl std::fmt::Debug for RecvReply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvReply").finish_non_exhaustive()
    }
}

impl<'a> Future for RecvReply<'a> {
    type Output = Result<Reply<'a>, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.refused.take() {
            return Poll::Ready(Err(e));
        }
        let me = self
            .client
            .take()
            .expect("RecvReply polled after it completed");
        let found = match me.poll_reply(cx) {
            Poll::Pending => {
                self.client = Some(me);
                return Poll::Pending;
            }
            Poll::Ready(found) => found,
        };
        let call = self.call;
        if let Err(e) = found {
            // Given up: a late reply is dropped, and counted.
            if let Some(id) = call {
                me.client.cancel(id);
            }
            return Poll::Ready(Err(e));
        }
        Poll::Ready(me.client.lend_found(call))
    }
}

impl Drop for RecvReply<'_> {
    fn drop(&mut self) {
        // Dropped while it waited: its waker goes too, and a call's
        // request is given up.
        if let Some(me) = self.client.take() {
            me.wait.stop();
            if let Some(id) = self.call {
                me.client.cancel(id);
            }
        }
    }
}

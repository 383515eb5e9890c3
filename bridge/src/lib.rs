//! Bridges between shmring rings and Zenoh: a ring's messages published to
//! a key expression, and a key expression's samples written into a ring.
//! Byte rings carry their messages; `Spsc<T>` and `Mpmc<T>` rings carry
//! each value as its bytes: the bridge reads and writes every kind through
//! shmring's one interface for them, [`shmring::MessageReceiver`] and
//! [`shmring::MessageSender`] (`ring.rs`). The `shmring-bridge` command runs
//! one bridge of byte rings per process.
//!
//! # Delivery
//!
//! Each outbound bridge (a *source*) attaches to every sample 16 bytes:
//! its source id and the sample's sequence number, both little-endian u64.
//! When it has had nothing to send for [`HEARTBEAT_EVERY`], it publishes
//! an empty sample whose 24-byte attachment adds the word `shmr-hb1`: a
//! heartbeat saying which number comes next.
//!
//! The inbound bridge classifies each arrival per source (`seq.rs`): in
//! order, after a gap (the skipped ones are counted lost), late (a gap
//! filled: delivered, and taken off the lost count), or duplicate
//! (dropped). A heartbeat ahead of what arrived counts the missing tail
//! lost. So:
//!
//! - With congestion control `Block`, a reliable link and no restart,
//!   every message arrives once, in order: the outbound bridge takes
//!   nothing from its ring while no subscriber matches (Zenoh accepts, then
//!   loses, a put that nobody matches) and waits while Zenoh is congested.
//! - With `Drop`, or across a restart, delivered + lost = sent once a
//!   heartbeat has arrived: counted, never silent.
//!
//! A full local ring on the receiving side is waited for up to a bound,
//! then the sample is dropped and counted: Zenoh's delivery thread, which
//! writes into the ring, is never held for ever.
//!
//! # Restarts
//!
//! With a state file (`shmring_bridge_state`, one per bridge):
//!
//! - the outbound bridge records each batch's place in the ring and its
//!   numbers before sending it, and the ring releases the batch after. A
//!   restarted bridge (a new process taking over the ring's consumer role)
//!   finds the ring's read position at the batch's start or past its end,
//!   and sends again under the same numbers, or goes on after them.
//!   Receivers drop what they already have.
//! - an MPMC ring has no read position of the bridge's own (its consumers
//!   share one), so the bridge holds its values in place and records each
//!   run of consecutive positions it holds, sends it and releases it
//!   before it records the next. A restarted bridge first takes over what
//!   the killed one held (`MessageReceiver::take_over_runs`): values inside the
//!   recorded run go again under their numbers, the rest (taken, never
//!   recorded, so never sent) get new ones, and numbering goes on after the
//!   run. So nothing it took is lost or reaches a receiver twice. With
//!   other consumers on the ring, one of them may take the killed bridge's
//!   values over first: those are delivered there instead, and those of
//!   the run in flight that had already gone out are then delivered on
//!   both sides (the ring's own rule for a dead consumer's value: at least
//!   once, never lost). Exactly once needs the bridge to be the ring's
//!   only consumer.
//! - the inbound bridge records, after each commit into its ring, each
//!   source's next number, which of the 64 before it arrived, and its
//!   counts. A restarted bridge goes on from there, so what arrived while
//!   it was down counts as lost against the right numbers.
//!
//! A crash between a commit and its record counts one delivered message as
//! lost: an over-count of at most one per crash, never an under-count or a
//! duplicate. Messages in flight inside a killed outbound bridge's Zenoh
//! (sent, released, not yet on the wire) are lost, and counted.
//!
//! The guarantees above assume cooperating peers: a publisher on the same
//! key that forges attachments can make the receiver drop messages as
//! duplicates or count phantom losses. The ring's own guarantees against
//! a hostile peer (bounds, termination) hold whatever arrives.
//!
//! # Waiting
//!
//! The outbound side awaits its ring ([`Outbound::run`],
//! [`Outbound::forward`]) through `shmring_async`: a task, parked while
//! the ring is empty and woken by the process's one waiter thread, which
//! sleeps on every awaited ring's futex word at once. A process bridging
//! many rings has no thread per ring, and none that spins. The inbound
//! side writes into its ring in Zenoh's own callbacks ([`Inbound::run`]
//! only waits for a stop or an error).
//!
//! [`Outbound::pump`] is the blocking form, for a thread of its own: it
//! sleeps on the ring's futex itself, one wakeup per message where the
//! task costs two (the waiter thread's, then the task's thread's), which
//! `shmring-bridge bench` shows in the round trip.
//!
//! ```no_run
//! use std::time::Duration;
//! use shmring_bridge::{InOptions, Inbound, Link, OutOptions, Outbound};
//! # fn main() -> shmring_bridge::Result<()> {
//! // Host A: publish ring "orders" to key "site/orders", listening for peers.
//! let a = Link { listen: vec!["tcp/0.0.0.0:7447".into()], ..Link::default() }.open()?;
//! let mut out = Outbound::new(&a, "orders", "site/orders", &OutOptions::default())?;
//! // Host B: write what arrives into its own ring "orders".
//! let b = Link { connect: vec!["tcp/10.0.0.1:7447".into()], ..Link::default() }.open()?;
//! let mut inb = Inbound::new(&b, "site/orders", "orders", &InOptions::default())?;
//! // Each side in its own process, until a stop (here: a minute).
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let stop = || tokio::time::sleep(Duration::from_secs(60));
//! rt.block_on(async { tokio::try_join!(out.run(stop()), inb.run(stop())) })?;
//! # Ok(())
//! # }
//! ```

mod ring;
pub mod seq;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmring::Pod;
use shmring_async::AsyncConsumer;
use shmring_bridge_state::{Counts, Direction, InState, OutState, SourceState, Span};
use tokio::sync::Notify;

use crate::ring::{Batch, Forwarded, Reader, Writer, Written};
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

use crate::seq::{Arrival, Tracker};

/// Errors of a bridge: the ring's, or Zenoh's (as text: its error type is
/// a boxed trait object).
#[derive(Debug)]
pub enum Error {
    /// From the ring.
    Ring(shmring::Error),
    /// From the bridge's state file.
    State(shmring_bridge_state::Error),
    /// From Zenoh.
    Zenoh(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Ring(e) => write!(f, "{e}"),
            Error::State(e) => write!(f, "{e}"),
            Error::Zenoh(e) => write!(f, "zenoh: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<shmring_bridge_state::Error> for Error {
    fn from(e: shmring_bridge_state::Error) -> Self {
        Error::State(e)
    }
}

impl From<shmring::Error> for Error {
    fn from(e: shmring::Error) -> Self {
        Error::Ring(e)
    }
}

impl From<shmring::RecvError> for Error {
    fn from(e: shmring::RecvError) -> Self {
        Error::Ring(e.into())
    }
}

impl From<shmring::SendError> for Error {
    fn from(e: shmring::SendError) -> Self {
        Error::Ring(e.into())
    }
}

fn zenoh_err(e: impl std::fmt::Display) -> Error {
    Error::Zenoh(zenoh_message(&e.to_string()))
}

/// What a Zenoh error says, for a person: the message inside a
/// configuration parser's wrapper, without the source-file locations
/// (" at /root/.cargo/registry/.../lib.rs:62.") Zenoh appends.
fn zenoh_message(raw: &str) -> String {
    // `Json5Err(Message { msg: "...", location: ... })`: the message.
    let mut text = match raw.split_once("msg: \"") {
        Some((_, rest)) => rest
            .split_once("\", location")
            .or_else(|| rest.split_once('"'))
            .map_or(rest, |(msg, _)| msg)
            .to_owned(),
        None => raw.to_owned(),
    };
    while let Some(at) = text.find(" at /") {
        let rest = &text[at..];
        let Some(rs) = rest.find(".rs:") else { break };
        let digits = rest[rs + 4..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - rs - 4);
        let mut end = at + rs + 4 + digits;
        if text[end..].starts_with('.') {
            end += 1;
        }
        text.replace_range(at..end, "");
    }
    text.trim().trim_end_matches('.').to_owned()
}

/// `Result` with a bridge [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a bridge reaches its peers.
///
/// ```
/// let link = shmring_bridge::Link {
///     connect: vec!["tcp/127.0.0.1:7447".into()],
///     ..Default::default()
/// };
/// let config = link.config()?; // peer mode, scouting off
/// # let _ = config;
/// # Ok::<(), shmring_bridge::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Client mode (connect to a router or peer) instead of peer mode.
    pub client: bool,
    /// Endpoints to listen on, such as `tcp/0.0.0.0:7447`.
    pub listen: Vec<String>,
    /// Endpoints to connect to, such as `tcp/10.0.0.2:7447`.
    pub connect: Vec<String>,
    /// Multicast scouting (off unless asked: on shared networks, peers
    /// would find strangers).
    pub multicast_scouting: bool,
    /// A Zenoh configuration file (JSON5) to start from: TLS or mTLS
    /// endpoints and their certificates, access control, authentication.
    /// With one, the fields above override it only where they say
    /// something (client mode, endpoints given, scouting on).
    pub config_file: Option<std::path::PathBuf>,
}

impl Link {
    /// The Zenoh configuration for this link.
    pub fn config(&self) -> Result<zenoh::Config> {
        let from_file = self.config_file.is_some();
        let mut c = match &self.config_file {
            Some(path) => zenoh::Config::from_file(path).map_err(|e| {
                Error::Zenoh(format!(
                    "{}: {}",
                    path.display(),
                    zenoh_message(&e.to_string())
                ))
            })?,
            None => zenoh::Config::default(),
        };
        let json = |v: &[String]| {
            let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        let mode = if self.client {
            r#""client""#
        } else {
            r#""peer""#
        };
        if !from_file || self.client {
            c.insert_json5("mode", mode).map_err(zenoh_err)?;
        }
        if !from_file || !self.listen.is_empty() {
            c.insert_json5("listen/endpoints", &json(&self.listen))
                .map_err(zenoh_err)?;
        }
        if !from_file || !self.connect.is_empty() {
            c.insert_json5("connect/endpoints", &json(&self.connect))
                .map_err(zenoh_err)?;
        }
        if !from_file || self.multicast_scouting {
            let scouting = if self.multicast_scouting {
                "true"
            } else {
                "false"
            };
            c.insert_json5("scouting/multicast/enabled", scouting)
                .map_err(zenoh_err)?;
            c.insert_json5("scouting/gossip/enabled", "false")
                .map_err(zenoh_err)?;
        }
        Ok(c)
    }

    /// Open a session on this link.
    pub fn open(&self) -> Result<Session> {
        zenoh::open(self.config()?).wait().map_err(zenoh_err)
    }
}

/// What a full network does to the reader of the local ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// Wait for the network (the ring fills, and its producers wait).
    Block,
    /// Drop what the network cannot take now; the receiver counts it lost.
    Drop,
}

/// The 16 bytes attached to each sample: source id, sequence number.
fn attachment(source: u64, seq: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&source.to_le_bytes());
    a[8..].copy_from_slice(&seq.to_le_bytes());
    a
}

/// The third word of a heartbeat's attachment.
const HEARTBEAT: u64 = u64::from_le_bytes(*b"shmr-hb1");

/// The 24 bytes of a heartbeat (an empty sample): source id, the number
/// its next message will have, [`HEARTBEAT`].
fn heartbeat(source: u64, next: u64) -> [u8; 24] {
    let mut a = [0u8; 24];
    a[..16].copy_from_slice(&attachment(source, next));
    a[16..].copy_from_slice(&HEARTBEAT.to_le_bytes());
    a
}

/// What a sample's attachment says.
enum Tag {
    /// A message: its source and number.
    Message(u64, u64),
    /// A heartbeat: its source and the number of its next message.
    Heartbeat(u64, u64),
}

fn parse_attachment(sample: &Sample) -> Option<Tag> {
    let bytes = sample.attachment()?.to_bytes();
    let b: &[u8] = &bytes;
    let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    match b.len() {
        16 => Some(Tag::Message(word(0), word(1))),
        24 if word(2) == HEARTBEAT => Some(Tag::Heartbeat(word(0), word(1))),
        _ => None,
    }
}

/// How often an idle outbound bridge says where its numbering is, so that
/// receivers count a lost tail (the last messages before a pause).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);

/// How an outbound bridge behaves.
#[derive(Clone, Debug)]
pub struct OutOptions {
    /// What a congested network does to the ring's reader.
    pub congestion: Congestion,
    /// How long to wait for the ring to exist.
    pub open_wait: Duration,
    /// Send each message at once instead of letting Zenoh batch it with
    /// the next ones: lower latency, less throughput for small messages.
    pub express: bool,
    /// How the bridge waits for the ring. The default sleeps at once (the
    /// task parks, or [`pump`](Outbound::pump)'s thread sleeps): the
    /// bridge shares the host's cores with Zenoh's own threads, and a
    /// bridge spinning on a core they need costs far more than the wake-up
    /// it saves (on a 2-core host, ten times the latency). `Spin` for a
    /// bridge with a core of its own: `pump` spins until its timeout, an
    /// awaiting bridge looks 16 384 times (tens of microseconds) before its
    /// task parks.
    pub wait: shmring::WaitStrategy,
    /// Where to keep the numbering across restarts (see
    /// `shmring_bridge_state`; the command's default is next to the ring;
    /// another path is recorded in a locator next to the ring, so that
    /// `shmring stat` and `rm` find it).
    /// `None`: in memory only; a restarted bridge is a new source, and
    /// what it sends again is not recognized as sent before.
    pub state: Option<PathBuf>,
}

impl Default for OutOptions {
    fn default() -> Self {
        OutOptions {
            congestion: Congestion::Block,
            open_wait: Duration::ZERO,
            express: false,
            wait: shmring::WaitStrategy::Sleep,
            state: None,
        }
    }
}

/// Counters of an outbound bridge since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutStats {
    /// Samples handed to Zenoh.
    pub sent: u64,
    /// Bytes of their payloads.
    pub bytes: u64,
}

/// Reads a ring and publishes each message (see the crate example): a
/// byte ring's messages in place, a typed ring's values as their bytes. It
/// holds a consumer handle of the ring (a byte or SPSC ring's consumer
/// role).
pub struct Outbound {
    matching: Arc<AtomicBool>,
    /// Signalled when a subscriber comes (a permit is kept if nobody waits).
    subscribed: Arc<Notify>,
    reader: Reader,
    out: Publishing,
    congestion: Congestion,
    resumed: bool,
    /// When it last published (a message or a heartbeat).
    last_put: Instant,
}

/// What publishes: the publisher, the numbering and its record.
struct Publishing {
    publisher: Publisher<'static>,
    source: u64,
    next_seq: u64,
    state: Option<OutState>,
    stats: OutStats,
}

/// The reader of `rx`, a consumer of `handle`, awaited through the
/// process's waiter thread; `Spin` spins a while before the task parks.
fn reader<H>(rx: H, handle: impl std::any::Any + Send, opts: &OutOptions) -> Reader
where
    H: shmring_async::Receive + shmring::MessageReceiver + Send + 'static,
{
    let mut rx = AsyncConsumer::new(rx);
    if opts.wait == shmring::WaitStrategy::Spin {
        rx.set_spin_budget(SPIN_BUDGET);
    }
    Reader::new(rx, handle)
}

/// Looks at an empty ring an awaiting bridge with `WaitStrategy::Spin`
/// makes before its task parks: some tens of microseconds.
const SPIN_BUDGET: u32 = 1 << 14;

/// How long an awaiting bridge waits before it looks at a closed ring
/// again (its producers finished; a restarted one reopens it).
const CLOSED_RETRY: Duration = Duration::from_millis(50);

impl Outbound {
    /// Bridge byte ring `ring` to key expression `key`.
    pub fn new(session: &Session, ring: &str, key: &str, opts: &OutOptions) -> Result<Self> {
        let handle = shmring::ByteRing::open_timeout(ring, opts.open_wait)?;
        // The consumer role first: the read position is ours from here on.
        let mut rx = handle.consumer()?;
        rx.set_wait_strategy(opts.wait);
        Self::with_reader(session, ring, key, opts, reader(rx, handle, opts))
    }

    /// Bridge typed ring `ring` (`Spsc<T>`) to `key`, each value as its
    /// bytes.
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::OutOptions::default();
    /// let mut out = shmring_bridge::Outbound::spsc::<[u64; 4]>(&session, "ticks", "site/ticks", &opts)?;
    /// out.pump(std::time::Duration::from_millis(10))?;
    /// # Ok(()) }
    /// ```
    pub fn spsc<T: Pod + Send>(
        session: &Session,
        ring: &str,
        key: &str,
        opts: &OutOptions,
    ) -> Result<Self> {
        let handle = shmring::Spsc::<T>::open_timeout(ring, opts.open_wait)?;
        let mut rx = handle.consumer()?;
        rx.set_wait_strategy(opts.wait);
        Self::with_reader(session, ring, key, opts, reader(rx, handle, opts))
    }

    /// Bridge typed ring `ring` (`Mpmc<T>`) to `key`, as one of its
    /// consumers, each value read in place. Its consumers share one read
    /// position, so the bridge records the ring positions of what it holds
    /// and sends; restarted with the same state file, it first takes over
    /// what the killed one held and sends it again under the numbers it had
    /// (see "Restarts" in the crate docs).
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::OutOptions {
    ///     state: Some("/dev/shm/jobs.out.state".into()),
    ///     ..Default::default()
    /// };
    /// let mut out = shmring_bridge::Outbound::mpmc::<[u64; 8]>(&session, "jobs", "site/jobs", &opts)?;
    /// out.pump(std::time::Duration::from_millis(10))?;
    /// # Ok(()) }
    /// ```
    pub fn mpmc<T: Pod + Send>(
        session: &Session,
        ring: &str,
        key: &str,
        opts: &OutOptions,
    ) -> Result<Self> {
        let handle = shmring::Mpmc::<T>::open_timeout(ring, opts.open_wait)?;
        let mut rx = handle.consumer()?;
        rx.set_wait_strategy(opts.wait);
        Self::with_reader(session, ring, key, opts, reader(rx, handle, opts))
    }

    fn with_reader(
        session: &Session,
        ring: &str,
        key: &str,
        opts: &OutOptions,
        mut reader: Reader,
    ) -> Result<Self> {
        let (source, next_seq, resumed, state) = match &opts.state {
            Some(path) => {
                let state = OutState::open(path)?;
                shmring_bridge_state::register(ring, Direction::Out, path)?;
                let ring_id = shmring::inspect(ring)?.created_unix_ns;
                let r = reader.resume(&state, ring_id);
                (r.source, r.next_seq, r.resumed, Some(state))
            }
            None => (shmring_bridge_state::random_id(), 0, false, None),
        };
        let cc = match opts.congestion {
            Congestion::Block => CongestionControl::Block,
            Congestion::Drop => CongestionControl::Drop,
        };
        let publisher = session
            .declare_publisher(key.to_owned())
            .congestion_control(cc)
            .express(opts.express)
            .wait()
            .map_err(zenoh_err)?;
        // Whether anyone subscribes, kept up to date by Zenoh (asking on
        // every pump would cost a round through its runtime each time).
        let matching = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(Notify::new());
        let (flag, notify) = (Arc::clone(&matching), Arc::clone(&subscribed));
        publisher
            .matching_listener()
            .callback(move |status| {
                flag.store(status.matching(), Ordering::Relaxed);
                if status.matching() {
                    notify.notify_one();
                }
            })
            .background()
            .wait()
            .map_err(zenoh_err)?;
        let now = publisher
            .matching_status()
            .wait()
            .map_err(zenoh_err)?
            .matching();
        matching.fetch_or(now, Ordering::Relaxed);
        Ok(Outbound {
            matching,
            subscribed,
            reader,
            out: Publishing {
                publisher,
                source,
                next_seq,
                state,
                stats: OutStats::default(),
            },
            congestion: opts.congestion,
            resumed,
            last_put: Instant::now(),
        })
    }

    /// Publish everything committed in the ring, waiting up to `timeout`
    /// for the first message; how many were published.
    ///
    /// Each batch's place in the ring and its numbers are recorded before
    /// it is sent and it is released after: a bridge killed in between
    /// sends it again, under the same numbers, and receivers drop what
    /// they already have.
    pub fn pump(&mut self, timeout: Duration) -> Result<usize> {
        // Blocking: nothing leaves the ring while no subscriber would get
        // it (a put with no one matching is accepted and lost).
        if self.waits_for_subscribers() {
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
            return Ok(0);
        }
        let out = &mut self.out;
        let n = self.reader.forward(timeout, &mut |b, m| out.send(b, m))?;
        if n > 0 {
            self.last_put = Instant::now();
        } else if self.last_put.elapsed() >= HEARTBEAT_EVERY {
            self.heartbeat()?;
        }
        Ok(n as usize)
    }

    /// Wait for messages and publish what is committed, as
    /// [`pump`](Self::pump) does, as a future: the task parks while the
    /// ring is empty (or, with congestion control `Block`, while no
    /// subscriber matches), and no thread waits on the ring for it but the
    /// process's one waiter thread (`shmring_async`). How many were
    /// published. Dropping it while it waits loses nothing.
    ///
    /// A put runs in the poll (Zenoh's `put` does not wait but for a
    /// congested link under `Block`); needs a tokio runtime with time
    /// enabled (a closed ring is looked at again every 50 ms).
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::OutOptions::default();
    /// let mut out = shmring_bridge::Outbound::new(&session, "orders", "site/orders", &opts)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// let sent = rt.block_on(out.forward())?;
    /// # let _ = sent;
    /// # Ok(()) }
    /// ```
    pub async fn forward(&mut self) -> Result<usize> {
        loop {
            if self.waits_for_subscribers() {
                self.subscribed.notified().await;
                continue;
            }
            let (reader, out) = (&mut self.reader, &mut self.out);
            let got =
                std::future::poll_fn(|cx| reader.poll_forward(cx, &mut |b, m| out.send(b, m)))
                    .await?;
            match got {
                Forwarded::Sent(n) => {
                    self.last_put = Instant::now();
                    return Ok(n as usize);
                }
                Forwarded::Closed => tokio::time::sleep(CLOSED_RETRY).await,
            }
        }
    }

    /// Forward until `stop` completes, sending a heartbeat whenever it has
    /// published nothing for [`HEARTBEAT_EVERY`]. The task of a bridge
    /// process: no thread of its own, and no CPU while the ring is idle
    /// but a heartbeat's timer.
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::OutOptions::default();
    /// let mut out = shmring_bridge::Outbound::new(&session, "orders", "site/orders", &opts)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// // Until Ctrl-C, say; here for a second.
    /// rt.block_on(out.run(tokio::time::sleep(std::time::Duration::from_secs(1))))?;
    /// # Ok(()) }
    /// ```
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let quiet_until = tokio::time::Instant::from_std(self.last_put + HEARTBEAT_EVERY);
            let forwarded = tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                r = tokio::time::timeout_at(quiet_until, self.forward()) => r,
            };
            match forwarded {
                Ok(r) => drop(r?),
                Err(_quiet) => self.heartbeat()?,
            }
        }
    }

    /// Whether it holds off for want of a subscriber.
    fn waits_for_subscribers(&self) -> bool {
        self.congestion == Congestion::Block && !self.has_subscribers()
    }

    /// Say which number comes next (see "Delivery" in the crate docs).
    fn heartbeat(&mut self) -> Result<()> {
        self.out.heartbeat()?;
        self.last_put = Instant::now();
        Ok(())
    }

    /// Whether a subscriber matches the key (as Zenoh last said).
    pub fn has_subscribers(&self) -> bool {
        self.matching.load(Ordering::Relaxed)
    }

    /// The source id its samples carry.
    pub fn source(&self) -> u64 {
        self.out.source
    }

    /// The number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.out.next_seq
    }

    /// Whether it went on with a previous bridge's numbering.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// What it has sent since it started.
    pub fn stats(&self) -> OutStats {
        self.out.stats
    }
}

impl Publishing {
    /// Publish `batch`: again under its recorded numbers, or recorded
    /// (where, and which numbers) before it is sent under new ones.
    fn send(&mut self, batch: Batch, msgs: &mut dyn Iterator<Item = &[u8]>) -> Result<()> {
        let count = batch.count;
        let first = match batch.resend_from {
            Some(first) => first,
            None => {
                if let (Some(state), Some(span)) = (&self.state, batch.positions) {
                    state.begin(Span {
                        start_pos: span.start,
                        start_seq: self.next_seq,
                        end_pos: span.end,
                        end_seq: self.next_seq + count,
                    });
                }
                let first = self.next_seq;
                self.next_seq += count;
                first
            }
        };
        let mut bytes = 0;
        for (seq, msg) in (first..).zip(msgs) {
            self.publisher
                .put(msg)
                .attachment(attachment(self.source, seq))
                .wait()
                .map_err(zenoh_err)?;
            bytes += msg.len() as u64;
        }
        self.stats.sent += count;
        self.stats.bytes += bytes;
        if let Some(state) = &self.state {
            state.count_sent(count, bytes);
        }
        Ok(())
    }

    fn heartbeat(&self) -> Result<()> {
        self.publisher
            .put(&[][..])
            .attachment(heartbeat(self.source, self.next_seq))
            .wait()
            .map_err(zenoh_err)
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("key", &self.out.publisher.key_expr().as_str())
            .field("source", &self.out.source)
            .field("next_seq", &self.out.next_seq)
            .field("stats", &self.out.stats)
            .finish_non_exhaustive()
    }
}

/// How an inbound bridge behaves.
#[derive(Clone, Debug)]
pub struct InOptions {
    /// The ring's capacity in bytes, if it has to be created (a ring that
    /// exists is used as it is).
    pub capacity: usize,
    /// How long to wait for room in a full ring before dropping a sample
    /// (and counting it).
    pub full_wait: Duration,
    /// Where to keep per-source accounting across restarts (see
    /// `shmring_bridge_state`; a path other than the default is recorded
    /// in a locator next to the ring). `None`: in memory only; a restarted bridge
    /// counts every source from the first sample it hears.
    pub state: Option<PathBuf>,
}

impl Default for InOptions {
    fn default() -> Self {
        InOptions {
            capacity: 1 << 20,
            full_wait: Duration::from_millis(100),
            state: None,
        }
    }
}

/// Counters of an inbound bridge: over its state file's life when it has
/// one (so across restarts), else since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InStats {
    /// Samples written into the ring.
    pub delivered: u64,
    /// Samples missing: skipped sequence numbers not filled later.
    pub lost: u64,
    /// Samples seen twice (dropped).
    pub duplicates: u64,
    /// Samples that arrived after later ones (delivered).
    pub reordered: u64,
    /// Samples dropped because the ring stayed full (or could never hold
    /// them: larger than its largest message).
    pub dropped_full: u64,
    /// Samples without a bridge attachment (delivered, not accounted).
    pub unnumbered: u64,
    /// Samples that were not a value of a typed ring's type (the wrong
    /// length): dropped.
    pub malformed: u64,
}

/// One source as this bridge follows it.
#[derive(Debug, Default)]
struct Source {
    tracker: Tracker,
    counts: Counts,
    /// Its entry in the state file.
    entry: Option<usize>,
}

/// Subscribes to a key expression and writes each sample into a byte ring
/// (see the crate example). It holds a producer handle of the ring.
///
/// Samples are written from Zenoh's own delivery thread, in its callback:
/// no channel and no thread of ours between the network and the ring (each
/// thread hand-off is a wake-up, tens of microseconds on a loaded host). A
/// full ring holds that thread for at most the `full_wait` of
/// [`InOptions`], then the sample is dropped and counted.
pub struct Inbound {
    receiver: Arc<Mutex<Receiver>>,
    /// Signalled when delivery stops on an error.
    stopped: Arc<Notify>,
    subscriber: Subscriber<()>,
    handled_seen: u64,
}

/// What the callback needs: the ring, and the accounting.
struct Receiver {
    writer: Writer,
    sources: HashMap<u64, Source>,
    retired: Counts,
    unnumbered: u64,
    full_wait: Duration,
    state: Option<InState>,
    /// The first error delivery met; it stops delivery, and `pump`
    /// returns it.
    failed: Option<Error>,
    /// Samples handled (any kind).
    handled: u64,
    malformed: u64,
}

fn lock(r: &Mutex<Receiver>) -> std::sync::MutexGuard<'_, Receiver> {
    // A panic in a callback leaves counters, not broken invariants.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbound {
    /// Subscribe to `key` and write into byte ring `ring` (created if it
    /// does not exist).
    pub fn new(session: &Session, key: &str, ring: &str, opts: &InOptions) -> Result<Self> {
        // A ring that exists is used whatever its capacity.
        let handle = match shmring::ByteRing::open(ring) {
            Err(shmring::Error::NotFound { .. }) => {
                shmring::ByteRing::open_or_create(ring, opts.capacity)?
            }
            other => other?,
        };
        let tx = handle.producer()?;
        Self::with_writer(session, ring, key, opts, Writer::new(tx, handle))
    }

    /// Subscribe to `key` and write each sample into typed ring `ring`
    /// (`Spsc<T>`, created with `opts.capacity` values if it does not
    /// exist). A sample that is not exactly a `T`'s size is dropped and
    /// counted [`malformed`](InStats::malformed).
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::InOptions { capacity: 4096, ..Default::default() };
    /// let mut inb = shmring_bridge::Inbound::spsc::<[u64; 4]>(&session, "site/ticks", "ticks", &opts)?;
    /// inb.pump(std::time::Duration::from_millis(10))?;
    /// # Ok(()) }
    /// ```
    pub fn spsc<T: Pod + Send>(
        session: &Session,
        key: &str,
        ring: &str,
        opts: &InOptions,
    ) -> Result<Self> {
        let handle = match shmring::Spsc::<T>::open(ring) {
            Err(shmring::Error::NotFound { .. }) => {
                shmring::Spsc::<T>::open_or_create(ring, opts.capacity)?
            }
            other => other?,
        };
        let tx = handle.producer()?;
        Self::with_writer(session, ring, key, opts, Writer::new(tx, handle))
    }

    /// As [`spsc`](Self::spsc), into an `Mpmc<T>` ring (as one of its
    /// producers).
    pub fn mpmc<T: Pod + Send>(
        session: &Session,
        key: &str,
        ring: &str,
        opts: &InOptions,
    ) -> Result<Self> {
        let handle = match shmring::Mpmc::<T>::open(ring) {
            Err(shmring::Error::NotFound { .. }) => {
                shmring::Mpmc::<T>::open_or_create(ring, opts.capacity)?
            }
            other => other?,
        };
        let tx = handle.producer()?;
        Self::with_writer(session, ring, key, opts, Writer::new(tx, handle))
    }

    fn with_writer(
        session: &Session,
        ring: &str,
        key: &str,
        opts: &InOptions,
        writer: Writer,
    ) -> Result<Self> {
        let mut sources = HashMap::new();
        let (mut retired, mut unnumbered, mut malformed) = (Counts::default(), 0, 0);
        let state = match &opts.state {
            Some(path) => {
                let state = InState::open(path)?;
                shmring_bridge_state::register(ring, Direction::In, path)?;
                let snap = state.snapshot();
                for s in &snap.sources {
                    sources.insert(
                        s.source,
                        Source {
                            tracker: Tracker::from_parts(s.next, s.seen),
                            counts: s.counts,
                            entry: None,
                        },
                    );
                }
                retired = snap.retired;
                unnumbered = snap.unnumbered;
                malformed = snap.malformed;
                Some(state)
            }
            None => None,
        };
        let receiver = Arc::new(Mutex::new(Receiver {
            writer,
            sources,
            retired,
            unnumbered,
            full_wait: opts.full_wait,
            state,
            failed: None,
            handled: 0,
            malformed,
        }));
        let (shared, stopped) = (Arc::clone(&receiver), Arc::new(Notify::new()));
        let notify = Arc::clone(&stopped);
        let subscriber = session
            .declare_subscriber(key.to_owned())
            .callback(move |sample| {
                let mut r = lock(&shared);
                if r.failed.is_none() {
                    r.handled += 1;
                    if let Err(e) = r.deliver(&sample) {
                        r.failed = Some(e);
                        notify.notify_one();
                    }
                }
            })
            .wait()
            .map_err(zenoh_err)?;
        Ok(Inbound {
            receiver,
            stopped,
            subscriber,
            handled_seen: 0,
        })
    }

    /// Let delivery run for `timeout`, then report how many samples were
    /// handled since the last call, or the error that stopped delivery
    /// (the ring found corrupt, say).
    pub fn pump(&mut self, timeout: Duration) -> Result<usize> {
        std::thread::sleep(timeout);
        let mut r = lock(&self.receiver);
        if let Some(e) = r.failed.take() {
            return Err(e);
        }
        let n = r.handled - self.handled_seen;
        self.handled_seen = r.handled;
        Ok(n as usize)
    }

    /// Deliver until `stop` completes, or return the error that stopped
    /// delivery. Delivery itself runs in Zenoh's callbacks; this only
    /// waits, without a thread or a timer of its own.
    ///
    /// ```no_run
    /// # fn main() -> shmring_bridge::Result<()> {
    /// # let session = shmring_bridge::Link::default().open()?;
    /// let opts = shmring_bridge::InOptions::default();
    /// let mut inb = shmring_bridge::Inbound::new(&session, "site/orders", "orders", &opts)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// rt.block_on(inb.run(tokio::time::sleep(std::time::Duration::from_secs(1))))?;
    /// # Ok(()) }
    /// ```
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        loop {
            if let Some(e) = lock(&self.receiver).failed.take() {
                return Err(e);
            }
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                () = self.stopped.notified() => {}
            }
        }
    }

    /// What it has delivered and counted.
    pub fn stats(&self) -> InStats {
        lock(&self.receiver).stats()
    }

    /// Whether it went on from a previous bridge's state file.
    pub fn resumed(&self) -> bool {
        lock(&self.receiver)
            .state
            .as_ref()
            .is_some_and(InState::resumed)
    }
}

impl Receiver {
    fn deliver(&mut self, sample: &Sample) -> Result<()> {
        let (id, seq) = match parse_attachment(sample) {
            Some(Tag::Message(id, seq)) => (id, seq),
            Some(Tag::Heartbeat(id, next)) => {
                let source = self.sources.entry(id).or_default();
                source.counts.lost += source.tracker.skip_to(next);
                self.record(id);
                return Ok(());
            }
            None => {
                self.unnumbered += 1;
                if let Some(state) = &self.state {
                    state.count_unnumbered();
                }
                // Delivered if there is room; not accounted either way.
                if self.writer.write(sample.payload(), self.full_wait)? == Written::Malformed {
                    self.count_malformed();
                }
                return Ok(());
            }
        };
        let source = self.sources.entry(id).or_default();
        let deliver = match source.tracker.observe(seq) {
            Arrival::InOrder => true,
            Arrival::Gap(n) => {
                source.counts.lost += n;
                true
            }
            Arrival::Late => {
                source.counts.lost -= 1;
                source.counts.reordered += 1;
                true
            }
            Arrival::Duplicate => {
                source.counts.duplicates += 1;
                false
            }
        };
        if deliver {
            // The ring first, then the record of it: a crash in between
            // over-counts one loss, and never delivers twice.
            let written = self.writer.write(sample.payload(), self.full_wait)?;
            let source = self.sources.get_mut(&id).expect("inserted above");
            match written {
                Written::Yes => source.counts.delivered += 1,
                Written::Full => source.counts.dropped_full += 1,
                // Not lost in the network: counted on its own.
                Written::Malformed => self.count_malformed(),
            }
        }
        self.record(id);
        Ok(())
    }

    /// Record source `id`'s state in the state file, if there is one.
    fn record(&mut self, id: u64) {
        if let Some(state) = &mut self.state {
            let source = self.sources.get_mut(&id).expect("a known source");
            let entry = *source.entry.get_or_insert_with(|| state.entry_for(id));
            let (next, seen) = source.tracker.parts();
            state.set(
                entry,
                &SourceState {
                    source: id,
                    next,
                    seen,
                    counts: source.counts,
                },
            );
        }
    }

    fn count_malformed(&mut self) {
        self.malformed += 1;
        if let Some(state) = &self.state {
            state.count_malformed();
        }
    }

    fn stats(&self) -> InStats {
        let mut c = self.retired;
        for s in self.sources.values() {
            c.delivered += s.counts.delivered;
            c.lost += s.counts.lost;
            c.duplicates += s.counts.duplicates;
            c.reordered += s.counts.reordered;
            c.dropped_full += s.counts.dropped_full;
        }
        InStats {
            delivered: c.delivered,
            lost: c.lost,
            duplicates: c.duplicates,
            reordered: c.reordered,
            dropped_full: c.dropped_full,
            unnumbered: self.unnumbered,
            malformed: self.malformed,
        }
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("key", &self.subscriber.key_expr().as_str())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod zenoh_message_tests {
    use super::zenoh_message;

    #[test]
    fn zenoh_errors_lose_their_source_locations() {
        assert_eq!(
            zenoh_message(
                "invalid port value at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/\
                 zenoh-link-commons-1.10.2/src/lib.rs:62."
            ),
            "invalid port value"
        );
        assert_eq!(
            zenoh_message(
                "Json5Err(Message { msg: \"Endpoints must be of the form \
                 <protocol>/<address>[?<metadata>][#<config>]: foo at /root/.cargo/registry/src/\
                 zenoh-protocol-1.10.2/src/core/endpoint.rs:615.\", location: Some(Location { \
                 line: 1, column: 1 }) }) at /root/.cargo/registry/src/zenoh-1.10.2/src/api/\
                 config.rs:86."
            ),
            "Endpoints must be of the form <protocol>/<address>[?<metadata>][#<config>]: foo"
        );
        assert_eq!(zenoh_message("no route"), "no route");
    }
}

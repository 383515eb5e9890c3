//! Bridges between shmring rings and Zenoh: a ring's messages published to
//! a key expression, and a key expression's samples written into a ring.
//!
//! # Delivery
//!
//! Each outbound bridge (a *source*) attaches to every sample 16 bytes:
//! its source id and the sample's sequence number, both little-endian u64.
//! The inbound bridge classifies each arrival per source (`seq.rs`):
//! in order, after a gap (the skipped ones are counted lost), late (a gap
//! filled: delivered, and taken off the lost count), or duplicate
//! (dropped). With congestion control `Block`, a reliable link and no
//! restart, every message arrives once, in order. With `Drop`, or across a
//! restart, delivered + lost = sent, counted, never silent.
//!
//! A full local ring on the receiving side is waited for up to a bound,
//! then the sample is dropped and counted: Zenoh's delivery thread is
//! never blocked for ever.
//!
//! ```no_run
//! use std::time::Duration;
//! use shmring_zenoh::{Congestion, Inbound, Link, Outbound};
//! # fn main() -> shmring_zenoh::Result<()> {
//! // Host A: publish ring "orders" to key "site/orders", listening for peers.
//! let a = Link { listen: vec!["tcp/0.0.0.0:7447".into()], ..Link::default() }.open()?;
//! let mut out = Outbound::new(&a, "orders", "site/orders", Congestion::Block, Duration::from_secs(5))?;
//! // Host B: write what arrives into its own ring "orders".
//! let b = Link { connect: vec!["tcp/10.0.0.1:7447".into()], ..Link::default() }.open()?;
//! let mut inb = Inbound::new(&b, "site/orders", "orders", 1 << 20, Duration::from_millis(100))?;
//! loop {
//!     out.pump(Duration::from_millis(10))?; // (each side in its own process)
//!     inb.pump(Duration::from_millis(10))?;
//! }
//! # }
//! ```

// As in the library: every public item documented and debuggable.
#![deny(missing_docs, missing_debug_implementations)]

pub mod seq;

use std::time::Duration;

use zenoh::handlers::FifoChannelHandler;
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
    /// From Zenoh.
    Zenoh(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Ring(e) => write!(f, "{e}"),
            Error::Zenoh(e) => write!(f, "zenoh: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<shmring::Error> for Error {
    fn from(e: shmring::Error) -> Self {
        Error::Ring(e)
    }
}

fn zenoh_err(e: impl std::fmt::Display) -> Error {
    Error::Zenoh(e.to_string())
}

/// `Result` with a bridge [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a bridge reaches its peers.
///
/// ```
/// let link = shmring_zenoh::Link {
///     connect: vec!["tcp/127.0.0.1:7447".into()],
///     ..Default::default()
/// };
/// let config = link.config()?; // peer mode, scouting off
/// # let _ = config;
/// # Ok::<(), shmring_zenoh::Error>(())
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
}

impl Link {
    /// The Zenoh configuration for this link.
    pub fn config(&self) -> Result<zenoh::Config> {
        let mut c = zenoh::Config::default();
        let json = |v: &[String]| {
            let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        let mode = if self.client {
            r#""client""#
        } else {
            r#""peer""#
        };
        c.insert_json5("mode", mode).map_err(zenoh_err)?;
        c.insert_json5("listen/endpoints", &json(&self.listen))
            .map_err(zenoh_err)?;
        c.insert_json5("connect/endpoints", &json(&self.connect))
            .map_err(zenoh_err)?;
        let scouting = if self.multicast_scouting {
            "true"
        } else {
            "false"
        };
        c.insert_json5("scouting/multicast/enabled", scouting)
            .map_err(zenoh_err)?;
        c.insert_json5("scouting/gossip/enabled", "false")
            .map_err(zenoh_err)?;
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

fn parse_attachment(sample: &Sample) -> Option<(u64, u64)> {
    let bytes = sample.attachment()?.to_bytes();
    let b: &[u8] = &bytes;
    if b.len() != 16 {
        return None;
    }
    let word = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
    Some((word(0..8), word(8..16)))
}

/// Counters of an outbound bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutStats {
    /// Samples handed to Zenoh.
    pub sent: u64,
    /// Bytes of their payloads.
    pub bytes: u64,
}

/// Reads a byte ring in place and publishes each message (see the crate
/// example).
pub struct Outbound {
    rx: shmring::bytes::Consumer,
    _ring: shmring::ByteRing,
    publisher: Publisher<'static>,
    congestion: Congestion,
    source: u64,
    stats: OutStats,
}

impl Outbound {
    /// Bridge ring `ring` (opened, or waited for up to `wait`) to `key`.
    pub fn new(
        session: &Session,
        ring: &str,
        key: &str,
        congestion: Congestion,
        wait: Duration,
    ) -> Result<Self> {
        let ring = shmring::ByteRing::open_timeout(ring, wait)?;
        let rx = ring.consumer()?;
        let cc = match congestion {
            Congestion::Block => CongestionControl::Block,
            Congestion::Drop => CongestionControl::Drop,
        };
        let publisher = session
            .declare_publisher(key.to_owned())
            .congestion_control(cc)
            .wait()
            .map_err(zenoh_err)?;
        Ok(Outbound {
            rx,
            _ring: ring,
            publisher,
            congestion,
            source: source_id(),
            stats: OutStats::default(),
        })
    }

    /// Publish everything committed in the ring, waiting up to `timeout`
    /// for the first message; how many were published.
    pub fn pump(&mut self, timeout: Duration) -> Result<usize> {
        // Blocking: nothing leaves the ring while no subscriber would get
        // it (a put with no one matching is accepted and lost).
        if self.congestion == Congestion::Block && !self.has_subscribers()? {
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
            return Ok(0);
        }
        let mut n = 0;
        {
            let batch = self.rx.read_batch()?;
            for msg in &batch {
                put(&self.publisher, self.source, &mut self.stats, msg)?;
                n += 1;
            }
        }
        if n == 0 {
            match self.rx.recv_timeout(timeout) {
                Ok(msg) => {
                    let (publisher, source, stats) =
                        (&self.publisher, self.source, &mut self.stats);
                    put(publisher, source, stats, &msg)?;
                    n = 1;
                }
                Err(shmring::Error::Timeout { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// Whether a subscriber matches the key now.
    pub fn has_subscribers(&self) -> Result<bool> {
        Ok(self
            .publisher
            .matching_status()
            .wait()
            .map_err(zenoh_err)?
            .matching())
    }

    /// What it has sent.
    pub fn stats(&self) -> OutStats {
        self.stats
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("key", &self.publisher.key_expr().as_str())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn put(
    publisher: &Publisher<'static>,
    source: u64,
    stats: &mut OutStats,
    msg: &[u8],
) -> Result<()> {
    publisher
        .put(msg)
        .attachment(attachment(source, stats.sent))
        .wait()
        .map_err(zenoh_err)?;
    stats.sent += 1;
    stats.bytes += msg.len() as u64;
    Ok(())
}

/// A source id for this bridge process: its pid and start time.
fn source_id() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ (u64::from(std::process::id()) << 40)
}

/// Counters of an inbound bridge.
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
    /// Samples dropped because the ring stayed full.
    pub dropped_full: u64,
    /// Samples without a bridge attachment (delivered, not accounted).
    pub unnumbered: u64,
}

/// Subscribes to a key expression and writes each sample into a byte ring
/// (see the crate example).
pub struct Inbound {
    subscriber: Subscriber<FifoChannelHandler<Sample>>,
    tx: shmring::bytes::Producer,
    _ring: shmring::ByteRing,
    sources: std::collections::HashMap<u64, Tracker>,
    full_wait: Duration,
    stats: InStats,
}

impl Inbound {
    /// Subscribe to `key` and write into ring `ring` (created with
    /// `capacity` bytes if it does not exist). A full ring is waited for up
    /// to `full_wait` per sample.
    pub fn new(
        session: &Session,
        key: &str,
        ring: &str,
        capacity: usize,
        full_wait: Duration,
    ) -> Result<Self> {
        let ring = shmring::ByteRing::open_or_create(ring, capacity)?;
        let tx = ring.producer()?;
        let subscriber = session
            .declare_subscriber(key.to_owned())
            .with(zenoh::handlers::FifoChannel::new(1024))
            .wait()
            .map_err(zenoh_err)?;
        Ok(Inbound {
            subscriber,
            tx,
            _ring: ring,
            sources: Default::default(),
            full_wait,
            stats: InStats::default(),
        })
    }

    /// Take the samples that arrived, waiting up to `timeout` for the
    /// first; how many arrived.
    pub fn pump(&mut self, timeout: Duration) -> Result<usize> {
        let mut n = 0;
        let mut wait = timeout;
        while let Some(sample) = self.subscriber.recv_timeout(wait).map_err(zenoh_err)? {
            self.deliver(&sample)?;
            n += 1;
            wait = Duration::ZERO;
        }
        Ok(n)
    }

    fn deliver(&mut self, sample: &Sample) -> Result<()> {
        let deliver = match parse_attachment(sample) {
            None => {
                self.stats.unnumbered += 1;
                true
            }
            Some((source, seq)) => match self.sources.entry(source).or_default().observe(seq) {
                Arrival::InOrder => true,
                Arrival::Gap(n) => {
                    self.stats.lost += n;
                    true
                }
                Arrival::Late => {
                    self.stats.lost -= 1;
                    self.stats.reordered += 1;
                    true
                }
                Arrival::Duplicate => {
                    self.stats.duplicates += 1;
                    false
                }
            },
        };
        if !deliver {
            return Ok(());
        }
        let payload = sample.payload().to_bytes();
        match self.tx.send_timeout(&payload, self.full_wait) {
            Ok(()) => self.stats.delivered += 1,
            Err(shmring::Error::Timeout { .. }) => self.stats.dropped_full += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// What it has delivered and counted.
    pub fn stats(&self) -> InStats {
        self.stats
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("key", &self.subscriber.key_expr().as_str())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

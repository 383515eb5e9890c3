//! Request-reply over byte rings: many clients in any processes, up to
//! 16 servers sharing the work, each reply reaching the client that asked
//! and no other, every wait bounded, dead clients and dead servers
//! handled, idempotent requests sent again to a live server.
//!
//! # Protocol
//!
//! A service `NAME` is a set of byte rings of requests, its *lanes*: lane
//! 0 is named `NAME`, lane N after it `NAME.lane-N`. Each server is the
//! consumer of one lane, the first whose consumer role is free, made (as
//! large as lane 0) when first served. Every client is a producer of every
//! lane it knows. Each client makes a byte ring of its own for replies,
//! `NAME.reply-ID` (ID: 16 hex digits drawn at random), created
//! exclusively and held as its consumer, and puts ID in every request.
//! The server writes each reply into the ring of the client that asked: a
//! reply cannot reach another client, not even one restarted with the
//! same pid, which has another ID and another ring.
//!
//! - **Which lane.** A client sends each request to a lane whose consumer
//!   word is set and is not the word of a server it found dead (one load:
//!   a server that crashed leaves its word until the next one claims the
//!   lane with a fresh word). Of those, the one with the fewest bytes
//!   waiting, looking first at the lane after the last one it used, so
//!   that idle servers take turns. With none, lane 0, where the request
//!   waits for a server started again. A client looks for lanes opened
//!   since it last looked after every 1024th request (once it is sent,
//!   off its path), when none it knows has a server, and when it finds a
//!   server dead.
//! - **Types.** A typed service
//!   ([`Service::open_or_create_typed`]) records its request type as its
//!   lanes' message type and its reply type as each client's reply
//!   ring's, as the typed rings record theirs: an opener of another type
//!   is refused with [`Error::TypeMismatch`]. A server that finds a
//!   client's ring of another reply type fails that client's requests
//!   with [`Failure::WrongType`]. An untyped open reads any service's
//!   bytes.
//! - A **request** is a 24-byte header, then its payload: `shRQ`, a flags
//!   word, the client's ID, the request's number (the client counts from
//!   1), all little-endian. Flag `TRACED` (1): a W3C `traceparent` of 55
//!   bytes comes between the header and the payload, checked on both
//!   sides ([`Client::send_traced`], [`Request::traceparent`]); a Zenoh
//!   bridge of the request ring carries it with the bytes. Flag
//!   `IDEMPOTENT` (2): the request may be acted on more than once
//!   ([`Client::send_idempotent`], [`Request::is_idempotent`]). A flag the
//!   server does not know makes the request malformed.
//! - A **reply** is an 8-byte header, then its payload: one little-endian
//!   u64, the request's number shifted left 8, ORed with `0x80` and the
//!   flags (`LAST`, 1: the request's last reply; `FAILED`, 2: the request
//!   failed, the payload is a little-endian u32 [`Failure`] code); the
//!   low byte's other bits are 0 (a reply with one set is malformed). A
//!   request gets any number of replies, the last marked `LAST`: one for a
//!   call, several for a stream. Numbers go up to 2^56 - 1, then start
//!   again at 1 (a request numbered past that, which only a forger sends,
//!   is answered with the 16-byte header below).
//! - **Older builds.** Builds before the 8-byte header wrote and read a
//!   16-byte one: `shRP`, the flags as a u32, the number as a u64. A
//!   client says it reads the 8-byte header in its ring's header (its
//!   `reply_format` word, set before its first request), and a server
//!   reads that when it opens the ring: a client of an older build (the
//!   word is 0) gets the 16-byte header. A client reads both (a server
//!   of an older build writes the 16-byte one): they differ in their
//!   first byte, `s` or one with bit 7 set. So services upgrade one side
//!   at a time. (The 8-byte header makes an 8-byte reply a 32-byte
//!   record, as the byte rings' own 8-byte messages are, instead of 48,
//!   which straddles two cache lines one time in two.)
//! - A client keeps the numbers it waits for. A reply to any other
//!   (a request it cancelled or gave up on) is dropped and counted
//!   ([`ClientStats::late`]); it took room in the client's ring only until
//!   the client's next receive.
//! - A server that lets a request go without a last reply (a handler that
//!   returned early, a panic that unwound through it) answers it
//!   `FAILED` with [`Failure::NoReply`]; one it cannot read but whose
//!   header names its client (a flag it does not know, a bad trace
//!   context) with [`Failure::Malformed`]; a reply larger than the
//!   client's ring can hold with [`Failure::ReplyTooLarge`]. Every request
//!   is answered, or failed with an error its client sees.
//! - A client's wait ends at its timeout whatever arrives (late replies
//!   do not stretch it); a call that fails in any way gives its request
//!   up, so the next call may start.
//! - **Awaited** (`shmring-async`'s `AsyncClient`): the task parks on the
//!   reply ring's word like any consumer's. The client keeps, in memory a
//!   waiter thread can read, which lanes it waits on; the waiter's looks
//!   for dead peers (100 to 800 ms apart while the task waits) also ask
//!   whether those lanes' servers live, and wake the task if one died
//!   (without `membarrier` the waiter makes no looks; it wakes the task
//!   every millisecond, and the task asks the kernel every 5 ms). A
//!   lane with no server's word at all is seen at the task's next look,
//!   without the kernel.
//!
//! # Failures
//!
//! - **A client dies** with requests outstanding: its reply ring's
//!   consumer is gone (the kernel's lock went with it). The server drops
//!   replies to it and counts them ([`ServerStats::to_dead_clients`]),
//!   and lets the ring go: its name goes with the last handle. Asking the
//!   kernel costs more than a round trip, so a server asks before it
//!   first writes to a client, then after each 256 replies more (off the
//!   last one's path), and whenever the client's ring is full: a client
//!   that died after a reply takes at most 256 more (no more than its
//!   ring holds), which nobody reads. Every 1024 requests, once the
//!   1024th is let go, a server lets go of the rings of every client that
//!   is gone.
//! - **A server dies**: a client waiting for a reply asks the kernel,
//!   once a slice of 5 ms passes without one, whether the servers of the
//!   lanes it waits on live. An idempotent request on a dead server's
//!   lane that no reply has answered yet is sent again, under a new
//!   number, to a lane with a server, and the wait goes on
//!   ([`ClientStats::retried`]); a reply to its old number, from a server
//!   started again on the dead lane, is late. Any other request there
//!   ends the wait with [`CallError::ServerGone`], which names them,
//!   within a few milliseconds, not at its timeout. A server started again takes the
//!   lane's consumer role over and serves what its predecessor had not
//!   released, the request it was answering included: at least once, for
//!   that one. A server killed while writing a reply leaves a claim in
//!   its client's ring, which the ring's wait repairs (as for a client
//!   killed while writing a request); a slice of a wait that ends behind
//!   it is a slice like another.
//! - **Back-pressure**: both rings are bounded. A request that finds no
//!   room before its timeout is [`CallError::Full`]; a reply that finds
//!   its client's ring full for the server's `reply_wait` is dropped and
//!   counted ([`ServerStats::dropped_full`]).
//! - **Limits**: a byte ring has at most 32 producer handles at once, so
//!   a service has at most 32 clients at once (each is a producer of
//!   every lane), and at most 16 servers.
//!
//! The rings' own guarantees against a hostile peer (bounds, termination)
//! hold whatever a peer writes. What the protocol adds needs cooperating
//! peers: a client that forges another's ID can make the server write
//! into that client's ring (whose client drops replies to numbers it does
//! not wait for, and counts them).
//!
//! ```
//! use std::time::Duration;
//! use shmring::request_reply::Service;
//! # let name = format!("shmring-doc-rr-{}", std::process::id());
//! let service = Service::open_or_create(&name, 64 * 1024)?;
//! let mut server = service.server()?;
//! let mut client = service.client(4096)?;
//! let wait = Duration::from_secs(1);
//! let id = client.send_timeout(b"2+2", wait)?;
//! {
//!     let request = server.recv_timeout(wait)?;
//!     assert_eq!(request.payload(), b"2+2");
//!     request.reply_last(b"4")?;
//! }
//! let reply = client.recv_timeout(wait)?;
//! assert_eq!((reply.id(), reply.payload(), reply.is_last()), (id, &b"4"[..], true));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, RecvError, SendError};
use crate::kind::TypeLayout;
use crate::lifecycle::options::{CreateOptions, OpenOptions};
use crate::rings::byte_ring::{ByteConsumer, ByteProducer, ByteRing, Message};
use crate::wait::WaitStrategy;

const REQUEST_MAGIC: [u8; 4] = *b"shRQ";
const REPLY_MAGIC: [u8; 4] = *b"shRP";
/// Bytes before a request's payload.
pub const REQUEST_HEADER: usize = 24;
/// Bytes before a reply's payload, as this build's clients ask for them
/// (16 in builds before it).
pub const REPLY_HEADER: usize = 8;
/// Bytes before a reply's payload for a client that does not say it
/// reads the 8-byte header (a client of an older build, or a plain ring
/// that speaks the protocol): `shRP`, the flags as a u32, the number as a
/// u64. This build's clients read it too.
pub const LEGACY_REPLY_HEADER: usize = 16;
/// The low byte of an 8-byte reply header: this bit, and the flags.
/// (A 16-byte header's first byte is `s`, which does not have it.)
const COMPACT: u64 = 0x80;
/// The low byte's bits that are neither `COMPACT` nor a flag: set, the
/// reply is malformed (a reader of a newer format says so in its ring).
const RESERVED: u64 = 0x7f & !((LAST | FAILED) as u64);
/// What a client stores as its reply ring's `reply_format`: it reads the
/// 8-byte reply header.
const READS_COMPACT: u64 = 1;
/// Request numbers go up to this, then start again at 1: the 8-byte reply
/// header holds 56 bits of one (at a billion requests a second, two
/// years' worth).
const LAST_NUMBER: u64 = (1 << 56) - 1;
const LAST: u32 = 1;
const FAILED: u32 = 2;
/// A request's flag: a W3C `traceparent` follows its header.
const TRACED: u32 = 1;
/// A request's flag: it may be acted on more than once (and is sent to
/// another server if its own dies before answering).
const IDEMPOTENT: u32 = 2;
/// Bytes of a W3C `traceparent` (version 00): `00-`, 32 hex digits of
/// trace id, `-`, 16 of parent id, `-`, 2 of flags.
pub const TRACEPARENT_LEN: usize = 55;

/// Whether `t` is a W3C `traceparent` of version 00, as the trace context
/// recommendation writes it: lowercase hex, neither id all zeros.
fn is_traceparent(t: &[u8]) -> bool {
    let hex = |r: std::ops::Range<usize>| {
        t[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let zero = |r: std::ops::Range<usize>| t[r].iter().all(|&c| c == b'0');
    t.len() == TRACEPARENT_LEN
        && t.starts_with(b"00-")
        && t[35] == b'-'
        && t[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && hex(53..55)
        && !zero(3..35)
        && !zero(36..52)
}

/// How often a waiting client looks whether the server still lives
/// (never under loom, whose model has no clock: a model's wait ends when
/// a reply wakes it).
const LIVENESS_SLICE: Duration = crate::platform::sync::time_slice(Duration::from_millis(5));

/// Why a request failed, as its failed reply says.
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::{CallError, Failure, Service};
/// # let name = format!("shmring-doc-rr-failure-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let (mut server, mut client) = (service.server()?, service.client(4096)?);
/// client.send_timeout(b"?", Duration::ZERO)?;
/// server.recv_timeout(Duration::ZERO)?.fail(Failure::Malformed)?;
/// match client.recv_timeout(Duration::ZERO) {
///     Err(CallError::Failed { why, .. }) => assert_eq!(why, Failure::Malformed),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The server let the request go without a last reply.
    NoReply,
    /// The server could not read the request (a flag it does not know, a
    /// bad trace context).
    Malformed,
    /// The reply was larger than the client's ring can ever hold.
    ReplyTooLarge,
    /// The client's reply ring holds replies of another type than the
    /// server's (see [`Service::open_or_create_typed`]).
    WrongType,
    /// A code this build does not know (a newer server's).
    Other(u32),
}

impl Failure {
    fn code(self) -> u32 {
        match self {
            Failure::NoReply => 1,
            Failure::Malformed => 2,
            Failure::ReplyTooLarge => 3,
            Failure::WrongType => 4,
            Failure::Other(c) => c,
        }
    }

    fn from_code(c: u32) -> Failure {
        match c {
            1 => Failure::NoReply,
            2 => Failure::Malformed,
            3 => Failure::ReplyTooLarge,
            4 => Failure::WrongType,
            c => Failure::Other(c),
        }
    }
}

/// The errors of a request-reply call, each naming the service.
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::{CallError, Service};
/// # let name = format!("shmring-doc-rr-error-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let mut client = service.client(4096)?;
/// // No server runs: the call ends at once, naming the service.
/// match client.call_timeout(b"hello", Duration::from_secs(5)) {
///     Err(e @ CallError::ServerGone { .. }) => assert!(e.to_string().contains(&name)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Nothing came before the timeout.
    #[error("service {service:?}: {op} timed out after {waited:?} ({outstanding} request(s) outstanding)")]
    Timeout {
        /// The service.
        service: String,
        /// The call that waited.
        op: &'static str,
        /// How long it waited.
        waited: Duration,
        /// Requests the client still waits for.
        outstanding: usize,
    },
    /// No server lives to answer: the request ring has no consumer (it
    /// died, or never started). The requests stranded there stay in the
    /// ring for a server started again. A receive still waits for them
    /// (until the client [cancels](Client::cancel) them); a call has
    /// given its own up (a late reply to it is dropped and counted).
    #[error(
        "service {service:?}: no server is running ({outstanding} request(s) stranded: {}); \
         a server started again serves them",
        first_ids(stranded)
    )]
    ServerGone {
        /// The service.
        service: String,
        /// How many requests wait on lanes without a server.
        outstanding: usize,
        /// Their numbers, as sending them returned (ascending): which
        /// of a pipelined client's requests to cancel or send again.
        stranded: Vec<u64>,
    },
    /// The request ring stayed full for the timeout: the server is behind.
    #[error("service {service:?}: the request ring stayed full for {waited:?}: the server is behind (back-pressure)")]
    Full {
        /// The service.
        service: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The server answered the request with a failure.
    #[error("service {service:?}: request {id} failed: {why:?}")]
    Failed {
        /// The service.
        service: String,
        /// The request's number.
        id: u64,
        /// Why.
        why: Failure,
    },
    /// A message without the protocol's header (a peer that does not
    /// speak it, or a corrupt ring).
    #[error("service {service:?}: a {what} without the request-reply header ({len} bytes)")]
    Malformed {
        /// The service.
        service: String,
        /// A request or a reply.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A payload read as a value of a type whose size it is not.
    #[error("service {service:?}: a {what} of {len} bytes read as a value of {expected}")]
    WrongSize {
        /// The service.
        service: String,
        /// A request or a reply.
        what: &'static str,
        /// Its payload's length.
        len: usize,
        /// The value's size.
        expected: usize,
    },
    /// A trace context that is not a W3C `traceparent` of version 00.
    #[error(
        "service {service:?}: {value:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
    )]
    BadTraceparent {
        /// The service.
        service: String,
        /// What was given.
        value: String,
    },
    /// `call_timeout` while other requests are outstanding (their replies
    /// would have to be set aside): receive those first.
    #[error("service {service:?}: call_timeout with {outstanding} other request(s) outstanding; use send_timeout and recv_timeout")]
    Outstanding {
        /// The service.
        service: String,
        /// Requests outstanding.
        outstanding: usize,
    },
    /// From a ring.
    #[error(transparent)]
    Ring(#[from] Error),
}

/// The first few of `ids`, for a message: a pipelined client's may be
/// thousands.
fn first_ids(ids: &[u64]) -> String {
    const SHOWN: usize = 8;
    let shown: Vec<String> = ids.iter().take(SHOWN).map(u64::to_string).collect();
    let more = if ids.len() > SHOWN { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

impl From<SendError> for CallError {
    fn from(e: SendError) -> Self {
        CallError::Ring(e.into())
    }
}

impl From<RecvError> for CallError {
    fn from(e: RecvError) -> Self {
        CallError::Ring(e.into())
    }
}

/// The name of client `id`'s reply ring in service `service`.
pub fn reply_ring_name(service: &str, id: u64) -> String {
    format!("{service}.reply-{id:016x}")
}

#[inline]
fn word32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn word64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A request's header: flags, client ID, number, where its payload
/// starts. A flag this build does not know, or a `traceparent` that is
/// not one, makes it malformed.
#[inline]
fn parse_request(b: &[u8]) -> Option<(u32, u64, u64, usize)> {
    if b.len() < REQUEST_HEADER || b[..4] != REQUEST_MAGIC {
        return None;
    }
    let flags = word32(b, 4);
    if flags & !(TRACED | IDEMPOTENT) != 0 {
        return None;
    }
    let at = if flags & TRACED != 0 {
        let end = REQUEST_HEADER + TRACEPARENT_LEN;
        (b.len() >= end && is_traceparent(&b[REQUEST_HEADER..end])).then_some(end)?
    } else {
        REQUEST_HEADER
    };
    Some((flags, word64(b, 8), word64(b, 16), at))
}

/// A reply's header, of either size: flags, number, where its payload
/// starts.
#[inline]
fn parse_reply(b: &[u8]) -> Option<(u32, u64, usize)> {
    let word = word64(b.get(..REPLY_HEADER)?, 0);
    if word & COMPACT != 0 {
        let flags = (word & 0x7f) as u32;
        return (word & RESERVED == 0).then_some((flags, word >> 8, REPLY_HEADER));
    }
    (b.len() >= LEGACY_REPLY_HEADER && b[..4] == REPLY_MAGIC)
        .then(|| (word32(b, 4), word64(b, 8), LEGACY_REPLY_HEADER))
}

/// `bytes` as a `T`, or the wrong size (naming `what` and the service).
fn read_value<T: crate::Pod>(
    bytes: &[u8],
    what: &'static str,
    service: impl FnOnce() -> String,
) -> Result<T, CallError> {
    if bytes.len() == std::mem::size_of::<T>() {
        Ok(bytemuck::pod_read_unaligned(bytes))
    } else {
        Err(CallError::WrongSize {
            service: service(),
            what,
            len: bytes.len(),
            expected: std::mem::size_of::<T>(),
        })
    }
}

/// The name of the request ring of lane `lane` of service `service`:
/// the service's own name for lane 0, `NAME.lane-N` after it.
pub fn lane_ring_name(service: &str, lane: usize) -> String {
    if lane == 0 {
        service.to_owned()
    } else {
        format!("{service}.lane-{lane}")
    }
}

/// Most servers a service has at once: one per lane.
pub const MAX_SERVERS: usize = 16;

/// A service: its request rings, to make servers and clients of.
///
/// ```
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-service-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// assert!(!service.has_server());
/// let first = service.server()?;
/// assert!(service.has_server());
/// let second = service.server()?; // shares the work, on a lane of its own
/// assert_eq!((first.lane(), second.lane()), (0, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Service {
    /// Lane 0's request ring, which names the service.
    requests: ByteRing,
    /// A typed service's request and reply types.
    types: Types,
}

/// A typed service's request and reply types (`None`: bytes).
#[derive(Clone, Copy, Debug, Default)]
struct Types {
    request: Option<TypeLayout>,
    reply: Option<TypeLayout>,
}

impl Types {
    fn of<Req: crate::Pod, Rep: crate::Pod>() -> Types {
        Types {
            request: Some(TypeLayout::of::<Req>()),
            reply: Some(TypeLayout::of::<Rep>()),
        }
    }
}

/// Open byte ring `name`, whose messages are of type `message` (any, if
/// `None`).
fn open_ring(name: &str, message: Option<TypeLayout>) -> Result<ByteRing, Error> {
    let mut opts = OpenOptions::new();
    opts.message = message;
    ByteRing::open_with(name, &opts)
}

/// Options to create a byte ring of messages of type `message`.
fn typed(message: Option<TypeLayout>) -> CreateOptions {
    let mut opts = CreateOptions::new();
    opts.message = message;
    opts
}

impl Service {
    /// Open service `name`, or create it with request rings of
    /// `capacity` bytes.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Service, Error> {
        Self::open_or_create_as(name, capacity, Types::default())
    }

    /// Open service `name`, or create it, as a typed service: requests of
    /// `Req`, replies of `Rep`, both [`Pod`](crate::Pod). Its rings record
    /// the types as the typed rings do (name, size, alignment; see
    /// [`Schema`](crate::Schema)), and an opener of other types is refused
    /// with [`Error::TypeMismatch`] naming both. A client whose reply type
    /// differs from its server's gets each request failed with
    /// [`Failure::WrongType`]. A plain [`open`](Self::open) reads a typed
    /// service's bytes (to inspect it, or bridge it); its clients' calls
    /// fail `WrongType`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::Service;
    /// # let name = format!("shmring-doc-rr-typed-{}", std::process::id());
    /// let service = Service::open_or_create_typed::<[u32; 2], u64>(&name, 4096)?;
    /// let (mut server, mut client) = (service.server()?, service.client(4096)?);
    /// client.send_value(&[6u32, 7], Duration::ZERO)?;
    /// let request = server.recv_timeout(Duration::ZERO)?;
    /// let [a, b] = request.value::<[u32; 2]>()?;
    /// request.reply_value_last(&(u64::from(a) * u64::from(b)))?;
    /// assert_eq!(client.recv_timeout(Duration::ZERO)?.value::<u64>()?, 42);
    /// // Another request type: refused, naming both.
    /// assert!(Service::open_typed::<u32, u64>(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create_typed<Req: crate::Pod, Rep: crate::Pod>(
        name: &str,
        capacity: usize,
    ) -> Result<Service, Error> {
        Self::open_or_create_as(name, capacity, Types::of::<Req, Rep>())
    }

    fn open_or_create_as(name: &str, capacity: usize, types: Types) -> Result<Service, Error> {
        Ok(Service {
            requests: ByteRing::open_or_create_with(name, capacity, &typed(types.request))?,
            types,
        })
    }

    /// Open service `name`.
    pub fn open(name: &str) -> Result<Service, Error> {
        Ok(Service {
            requests: ByteRing::open(name)?,
            types: Types::default(),
        })
    }

    /// Open typed service `name`: requests of `Req`, replies of `Rep`
    /// (see [`open_or_create_typed`](Self::open_or_create_typed)).
    pub fn open_typed<Req: crate::Pod, Rep: crate::Pod>(name: &str) -> Result<Service, Error> {
        let types = Types::of::<Req, Rep>();
        Ok(Service {
            requests: open_ring(name, types.request)?,
            types,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.requests.name()
    }

    /// Whether a server runs on any of its lanes (a request ring's
    /// consumer, as the kernel says).
    pub fn has_server(&self) -> bool {
        // Every lane: one may be gone (no handle left) while a later one
        // serves.
        self.requests.has_consumer()
            || (1..MAX_SERVERS)
                .filter_map(|lane| ByteRing::open(&lane_ring_name(self.name(), lane)).ok())
                .any(|ring| ring.has_consumer())
    }

    /// Become a server: the consumer of the first lane that has none
    /// (lane 0 first; a lane's ring is made, as large as lane 0's, when
    /// first served, of lane 0's message type). Up to [`MAX_SERVERS`]
    /// share the work; one more is refused with the last lane's error
    /// ([`Error::RoleTaken`]; or a lane left from a service of another
    /// type or size).
    pub fn server(&self) -> Result<Server, Error> {
        let mut taken = None;
        for lane in 0..MAX_SERVERS {
            let ring = if lane == 0 {
                self.requests.handle()
            } else {
                // Lane 0's message type, whoever asks: a plain open's
                // server makes a typed service's lane typed.
                let name = lane_ring_name(self.name(), lane);
                let opts = typed(self.types.request.or(self.requests.message_type()));
                match ByteRing::open_or_create_with(&name, self.requests.capacity(), &opts) {
                    Ok(ring) => ring,
                    // A lane left from a service of another type (or
                    // size): not to be served, the next may be.
                    Err(e @ (Error::TypeMismatch { .. } | Error::CapacityMismatch { .. })) => {
                        taken = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            match ring.consumer() {
                Ok(rx) => {
                    return Ok(Server {
                        rx,
                        lane,
                        replies: Replies {
                            base: published(&ring),
                            lane: ring,
                            service: self.name().to_owned(),
                            reply_type: self.types.reply,
                            open: OpenRings::default(),
                            wait: Duration::from_millis(100),
                            stats: ServerStats::default(),
                        },
                        asked: Asked::default(),
                    })
                }
                Err(e @ Error::RoleTaken { .. }) => taken = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(taken.expect("MAX_SERVERS > 0"))
    }

    /// A new client, with a reply ring of `reply_capacity` bytes of its
    /// own.
    pub fn client(&self, reply_capacity: usize) -> Result<Client, Error> {
        let (id, ring) = loop {
            let id = random_id();
            let name = reply_ring_name(self.name(), id);
            match ByteRing::create_with(&name, reply_capacity, &typed(self.types.reply)) {
                Err(Error::AlreadyExists { .. }) => continue,
                r => break (id, r?),
            }
        };
        // Relaxed: before any request names this ring, whose Release
        // commit orders it for the server that opens the ring on one.
        ring.service_counters()
            .reply_format
            .store(READS_COMPACT, Relaxed);
        let mut client = Client {
            service: self.name().to_owned(),
            id,
            rx: ring.consumer()?,
            reply_ring: ring,
            request_type: self.types.request,
            lanes: Vec::new(),
            turn: 0,
            next: 1,
            outstanding: Outstanding::default(),
            stats: ClientStats::default(),
        };
        client.add_lane(0, Lane::open(client.service.as_str(), client.request_type)?);
        client.look_for_lanes(true);
        Ok(client)
    }
}

/// A client ID: random, never 0.
fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// A client's counters.
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-client-stats-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let mut client = service.client(4096)?;
/// client.send_timeout(b"x", Duration::ZERO)?;
/// assert_eq!(client.stats().sent, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies received (failed ones included).
    pub replies: u64,
    /// Replies dropped: to a request the client no longer waited for.
    pub late: u64,
    /// Idempotent requests sent again, to another server, because the
    /// server they were sent to died.
    pub retried: u64,
}

/// One client of a service: sends requests, receives their replies from
/// a reply ring of its own (removed with the client).
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-client-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let mut server = service.server()?;
/// let mut client = service.client(4096)?;
/// // Written in place: no copy of the request.
/// let id = client.send_with(3, Duration::ZERO, |room| room.copy_from_slice(b"abc"))?;
/// server.recv_timeout(Duration::ZERO)?.reply_last(b"ok")?;
/// assert_eq!(client.recv_timeout(Duration::ZERO)?.id(), id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    service: String,
    id: u64,
    rx: ByteConsumer,
    reply_ring: ByteRing,
    /// The request rings it knows, by lane (lane 0 always).
    lanes: Vec<Option<Lane>>,
    /// A typed service's request type.
    request_type: Option<TypeLayout>,
    /// The lane the next request looks at first.
    turn: usize,
    /// The next request's number on the wire.
    next: u64,
    /// Requests it waits for, by their number on the wire.
    outstanding: Outstanding,
    stats: ClientStats,
}

/// One lane's request ring, as a client holds it.
struct Lane {
    ring: ByteRing,
    tx: ByteProducer,
    /// The consumer word of a server found dead on this lane (0: none):
    /// the lane serves again once another server's word replaces it.
    dead: u64,
}

impl Lane {
    fn open(name: &str, request_type: Option<TypeLayout>) -> Result<Lane, Error> {
        let ring = open_ring(name, request_type)?;
        Ok(Lane {
            tx: ring.producer()?,
            ring,
            dead: 0,
        })
    }

    /// Whether a server holds the lane and was not found dead: one load,
    /// no question to the kernel.
    #[inline]
    fn serving(&self) -> bool {
        let word = self.ring.consumer_word();
        word != 0 && word != self.dead
    }

    /// Whether its server lives, as the kernel says; if not, the lane is
    /// marked dead until another server comes.
    fn ask_alive(&mut self) -> bool {
        // The word first: a server that comes between the two reads is
        // alive to the kernel, and one that came before has its own word.
        let word = self.ring.consumer_word();
        let alive = self.ring.has_consumer();
        if !alive {
            self.dead = word;
        }
        alive
    }
}

/// A request a client waits for.
struct Pending {
    /// The number its sender knows it by (a request sent again goes under
    /// a new number on the wire; its replies are this one's).
    id: u64,
    /// The lane it was sent on.
    lane: usize,
    /// An idempotent request's flags and bytes after its header, to send
    /// again if its server dies (boxed: a small `Pending` moves cheaply).
    again: Option<Box<(u32, Box<[u8]>)>>,
    /// Whether a reply to it came (the first of a stream): a request
    /// partly answered is not sent again.
    answered: bool,
}

/// The requests a client waits for, by number on the wire, and how many
/// on each lane, which its [`Watch`] shows.
///
/// A request alone (a call's, the usual case) sits in `one`, so that a
/// call costs a store and a take: the deque's push and pop, with its
/// bookkeeping, were a tenth of a round trip (as a hash map's insert and
/// remove had been before it). With more than one, all sit in `entries`:
/// numbers on the wire are counted, so a new request goes last (but for
/// one numbered after the wrap to 1, which goes in its place) and the
/// entries stay sorted, a reply's request is found by binary search, and
/// the usual one to end, the oldest, leaves from the front. A request
/// that ends elsewhere leaves a hole, and holes go once they are half the
/// entries (so a request never answered does not make the rest grow).
/// The front and back entries are never holes, so `entries` is empty
/// whenever no request is outstanding, and whenever `one` holds one.
#[derive(Default)]
struct Outstanding {
    one: Option<(u64, Pending)>,
    entries: VecDeque<(u64, Option<Pending>)>,
    live: usize,
    per_lane: [u32; MAX_SERVERS],
    watch: Arc<Watch>,
}

/// Holes kept before the entries are compacted, whatever the count.
const HOLES_KEPT: usize = 32;

impl Outstanding {
    #[inline(always)]
    fn insert(&mut self, wire: u64, pending: Pending) {
        if self.live == 0 {
            // Alone (a call's, the usual case): every lane's count was 0,
            // so the watch's bits are this lane's alone. Stores only.
            let lane = pending.lane;
            self.one = Some((wire, pending));
            self.live = 1;
            self.per_lane[lane] = 1;
            self.watch.waiting.store(1 << lane, Relaxed);
        } else {
            self.insert_more(wire, pending);
        }
    }

    /// [`insert`](Self::insert) beside other requests.
    fn insert_more(&mut self, wire: u64, pending: Pending) {
        let lane = pending.lane;
        if let Some((w, p)) = self.one.take() {
            self.entries.push_back((w, Some(p)));
        }
        self.insert_entry(wire, pending);
        self.live += 1;
        self.per_lane[lane] += 1;
        if self.per_lane[lane] == 1 {
            self.watch.set_waiting(lane, true);
        }
    }

    /// Insert into `entries`, in order (replacing one under the same
    /// number, which is then uncounted).
    fn insert_entry(&mut self, wire: u64, pending: Pending) {
        match self.entries.back() {
            Some(&(last, _)) if last >= wire => match self.find(wire) {
                Ok(i) => {
                    if let Some(old) = self.entries[i].1.replace(pending) {
                        self.live -= 1;
                        self.uncount(old.lane);
                    }
                }
                Err(i) => self.entries.insert(i, (wire, Some(pending))),
            },
            _ => self.entries.push_back((wire, Some(pending))),
        }
    }

    fn find(&self, wire: u64) -> Result<usize, usize> {
        match self.entries.front() {
            Some(&(oldest, _)) if oldest == wire => Ok(0),
            _ => self.entries.binary_search_by_key(&wire, |&(w, _)| w),
        }
    }

    #[inline(always)]
    fn remove(&mut self, wire: &u64) -> Option<Pending> {
        if let Some((w, _)) = &self.one {
            if w != wire {
                return None;
            }
            let (_, p) = self.one.take()?;
            // It was the only one: every count goes back to 0.
            self.live = 0;
            self.per_lane[p.lane] = 0;
            self.watch.waiting.store(0, Relaxed);
            return Some(p);
        }
        self.remove_entry(*wire)
    }

    /// End request `wire`: [`remove`](Self::remove), but only the number
    /// its sender knows it by comes out. A reply's path: the request
    /// alone is not moved out of `one` (a move copied its padding in
    /// pieces that the loads after could not take from the stores).
    #[inline(always)]
    fn end(&mut self, wire: u64) -> Option<u64> {
        let Some((w, p)) = &self.one else {
            return self.remove_entry(wire).map(|p| p.id);
        };
        if *w != wire {
            return None;
        }
        let (id, lane) = (p.id, p.lane);
        self.one = None;
        // It was the only one: every count goes back to 0.
        self.live = 0;
        self.per_lane[lane] = 0;
        self.watch.waiting.store(0, Relaxed);
        Some(id)
    }

    /// [`remove`](Self::remove) from `entries`.
    fn remove_entry(&mut self, wire: u64) -> Option<Pending> {
        let i = self.find(wire).ok()?;
        let p = self.entries[i].1.take()?;
        self.live -= 1;
        self.uncount(p.lane);
        if i == 0 {
            while self.entries.front().is_some_and(|(_, p)| p.is_none()) {
                self.entries.pop_front();
            }
        } else if i + 1 == self.entries.len() {
            while self.entries.back().is_some_and(|(_, p)| p.is_none()) {
                self.entries.pop_back();
            }
        } else if self.entries.len() > 2 * self.live + HOLES_KEPT {
            self.entries.retain(|(_, p)| p.is_some());
        }
        Some(p)
    }

    /// Remove the request its sender knows as `id` (sent again, it is
    /// under another number on the wire).
    fn remove_id(&mut self, id: u64) {
        let wire = if self.get(&id).is_some_and(|p| p.id == id) {
            Some(id)
        } else {
            self.iter().find(|(_, p)| p.id == id).map(|(w, _)| w)
        };
        if let Some(wire) = wire {
            self.remove(&wire);
        }
    }

    #[inline]
    fn uncount(&mut self, lane: usize) {
        self.per_lane[lane] -= 1;
        if self.per_lane[lane] == 0 {
            self.watch.set_waiting(lane, false);
        }
    }

    #[inline]
    fn get(&self, wire: &u64) -> Option<&Pending> {
        if let Some((w, p)) = &self.one {
            return (w == wire).then_some(p);
        }
        self.entries[self.find(*wire).ok()?].1.as_ref()
    }

    #[inline]
    fn get_mut(&mut self, wire: &u64) -> Option<&mut Pending> {
        if self.one.is_some() {
            let one = self.one.as_mut().filter(|(w, _)| w == wire);
            return one.map(|(_, p)| p);
        }
        let i = self.find(*wire).ok()?;
        self.entries[i].1.as_mut()
    }

    #[inline]
    fn contains_key(&self, wire: &u64) -> bool {
        self.get(wire).is_some()
    }

    fn len(&self) -> usize {
        self.live
    }

    fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn values(&self) -> impl Iterator<Item = &Pending> {
        self.iter().map(|(_, p)| p)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &Pending)> {
        let one = self.one.iter().map(|(w, p)| (*w, p));
        one.chain(
            self.entries
                .iter()
                .filter_map(|(w, p)| p.as_ref().map(|p| (*w, p))),
        )
    }
}

/// What a waiter thread (`shmring-async`'s) looks at while a client's
/// task is parked, to wake it if a server it waits on died: the lanes,
/// and which of them hold requests it waits for.
#[derive(Default)]
struct Watch {
    lanes: Mutex<Vec<Option<ByteRing>>>,
    /// A bit per lane that holds requests the client waits for.
    waiting: AtomicU32,
    /// Set when the waiter found such a lane without a server (and woke
    /// the task): its next look asks the kernel.
    suspect: AtomicBool,
}

impl Watch {
    /// Note whether the client waits on `lane`. A load and a store, no
    /// read-modify-write: the client is the one writer.
    fn set_waiting(&self, lane: usize, waiting: bool) {
        let bits = self.waiting.load(Relaxed);
        let bits = if waiting {
            bits | 1 << lane
        } else {
            bits & !(1 << lane)
        };
        self.waiting.store(bits, Relaxed);
    }

    /// Whether a lane the client waits on has no live server.
    fn any_dead(&self) -> bool {
        let waiting = self.waiting.load(Relaxed);
        waiting != 0
            && self
                .lanes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .enumerate()
                .any(|(i, ring)| {
                    waiting & (1 << i) != 0 && ring.as_ref().is_some_and(|r| !r.has_consumer())
                })
    }
}

/// Every this many requests, a client looks for lanes opened since it
/// last looked (and whenever none of those it knows has a server).
const LOOK_FOR_LANES_EVERY: u64 = 1024;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service)
            .field("id", &format_args!("{:016x}", self.id))
            .field("lanes", &self.lanes.iter().flatten().count())
            .field("outstanding", &self.outstanding.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Its ID, which its requests carry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How it waits for replies (the reply ring consumer's strategy) and
    /// for room for requests.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.rx.set_wait_strategy(strategy);
        for lane in self.lanes.iter_mut().flatten() {
            lane.tx.set_wait_strategy(strategy);
        }
    }

    fn add_lane(&mut self, index: usize, lane: Lane) {
        let watch = &self.outstanding.watch;
        let mut watched = watch.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if watched.len() <= index {
            watched.resize_with(index + 1, || None);
        }
        watched[index] = Some(lane.ring.handle());
        drop(watched);
        if self.lanes.len() <= index {
            self.lanes.resize_with(index + 1, || None);
        }
        self.lanes[index] = Some(lane);
    }

    /// The lane `index` it knows: lane 0, or one `pick` or a request's
    /// record named, all opened.
    fn lane(&mut self, index: usize) -> &mut Lane {
        self.lanes[index]
            .as_mut()
            .expect("only lanes it opened are picked or recorded")
    }

    /// Open the lanes opened since it last looked: those after the last
    /// it knows, up to the first missing; with `past_gaps`, every lane up
    /// to [`MAX_SERVERS`] it does not hold (a lane whose ring went, no
    /// handle left, may hide a later one that serves).
    fn look_for_lanes(&mut self, past_gaps: bool) {
        let strategy = self.lane(0).tx.wait_strategy();
        for index in 1..MAX_SERVERS {
            if self.lanes.get(index).is_some_and(Option::is_some) {
                continue;
            }
            let name = lane_ring_name(&self.service, index);
            match Lane::open(&name, self.request_type) {
                Ok(mut lane) => {
                    lane.tx.set_wait_strategy(strategy);
                    self.add_lane(index, lane);
                }
                // Not there (or not to be had now): looked for again later.
                Err(_) if past_gaps => {}
                Err(_) if index < self.lanes.len() => {}
                Err(_) => break,
            }
        }
    }

    /// The lane for the next request: of those with a server, the one
    /// with the fewest bytes waiting, looking first at the lane after the
    /// last one used (so that idle servers take turns). `None` if no lane
    /// it knows has a server.
    #[inline(always)]
    fn pick(&mut self) -> Option<usize> {
        match self.lanes.as_slice() {
            [Some(lane)] => lane.serving().then_some(0),
            _ => self.pick_among(),
        }
    }

    /// [`pick`](Self::pick) with more than one lane, out of line.
    #[inline(never)]
    fn pick_among(&mut self) -> Option<usize> {
        let n = self.lanes.len();
        let mut best: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = (self.turn + k) % n;
            let Some(lane) = &self.lanes[i] else {
                continue;
            };
            if !lane.serving() {
                continue;
            }
            let waiting = lane
                .ring
                .bytes_written()
                .wrapping_sub(lane.ring.bytes_released());
            if best.is_none_or(|(_, fewest)| waiting < fewest) {
                best = Some((i, waiting));
            }
            if waiting == 0 {
                break;
            }
        }
        let (i, _) = best?;
        self.turn = i + 1;
        Some(i)
    }

    /// Send a request of `len` bytes written in place by `fill`, waiting
    /// up to `timeout` for room; its number.
    #[inline]
    pub fn send_with(
        &mut self,
        len: usize,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, CallError> {
        self.send_inner(len, None, false, timeout, fill)
    }

    /// Send `payload` with a W3C trace context (its `traceparent`, which
    /// the server reads with [`Request::traceparent`]), waiting up to
    /// `timeout` for room. A value that is not a `traceparent` of version
    /// 00 is refused ([`CallError::BadTraceparent`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::Service;
    /// # let name = format!("shmring-doc-rr-traced-{}", std::process::id());
    /// let service = Service::open_or_create(&name, 4096)?;
    /// let (mut server, mut client) = (service.server()?, service.client(4096)?);
    /// let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// client.send_traced(b"work", trace, Duration::ZERO)?;
    /// let request = server.recv_timeout(Duration::ZERO)?;
    /// assert_eq!((request.traceparent(), request.payload()), (Some(trace), &b"work"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_traced(
        &mut self,
        payload: &[u8],
        traceparent: &str,
        timeout: Duration,
    ) -> Result<u64, CallError> {
        if !is_traceparent(traceparent.as_bytes()) {
            return Err(CallError::BadTraceparent {
                service: self.service.clone(),
                value: traceparent.to_owned(),
            });
        }
        self.send_inner(payload.len(), Some(traceparent), false, timeout, |room| {
            room.copy_from_slice(payload)
        })
    }

    /// Send `payload` as an idempotent request (one a server may act on
    /// more than once), waiting up to `timeout` for room; its number. If
    /// its server dies before any reply to it came, it is sent again to
    /// another server, where one lives, and the wait goes on
    /// ([`ClientStats::retried`]); [`CallError::ServerGone`] only when none
    /// does. The client keeps a copy of it until its last reply.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::Service;
    /// # let name = format!("shmring-doc-rr-idempotent-{}", std::process::id());
    /// let service = Service::open_or_create(&name, 4096)?;
    /// let (first, mut second) = (service.server()?, service.server()?);
    /// let mut client = service.client(4096)?;
    /// let id = client.send_idempotent(b"price?", Duration::ZERO)?; // to lane 0
    /// drop(first); // its server goes, the request unread
    /// let answered = std::thread::scope(|s| {
    ///     s.spawn(|| second.recv_timeout(Duration::from_secs(5))?.reply_last(b"42"));
    ///     client.recv_timeout(Duration::from_secs(5)).map(|r| (r.id(), r.payload().to_vec()))
    /// })?;
    /// assert_eq!(answered, (id, b"42".to_vec()));
    /// assert_eq!(client.stats().retried, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_idempotent(&mut self, payload: &[u8], timeout: Duration) -> Result<u64, CallError> {
        self.send_inner(payload.len(), None, true, timeout, |room| {
            room.copy_from_slice(payload)
        })
    }

    #[inline(always)]
    fn send_inner(
        &mut self,
        len: usize,
        traceparent: Option<&str>,
        idempotent: bool,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, CallError> {
        let at = REQUEST_HEADER + traceparent.map_or(0, str::len);
        let mut flags = 0;
        if traceparent.is_some() {
            flags |= TRACED;
        }
        if idempotent {
            flags |= IDEMPOTENT;
        }
        let lane = self.pick().unwrap_or_else(|| {
            // None it knows has a server: one may have come on a new lane;
            // if not, lane 0 keeps the request for a server started again.
            self.look_for_lanes(true);
            self.pick().unwrap_or(0)
        });
        let wire = self.next;
        let mut grant = match self.lanes[lane]
            .as_mut()
            .expect("picked lanes are open")
            .tx
            .reserve_timeout(at + len, timeout)
        {
            Ok(g) => g,
            Err(SendError::Timeout { .. } | SendError::Full) => {
                return Err(CallError::Full {
                    service: self.service.clone(),
                    waited: timeout,
                })
            }
            Err(e) => return Err(e.into()),
        };
        write_request_header(&mut grant, flags, self.id, wire);
        if let Some(t) = traceparent {
            grant[REQUEST_HEADER..at].copy_from_slice(t.as_bytes());
        }
        fill(&mut grant[at..]);
        let again =
            idempotent.then(|| Box::new((flags, Box::<[u8]>::from(&grant[REQUEST_HEADER..]))));
        grant.commit();
        // After the commit, off the request's path: a system call or more.
        if self.next.is_multiple_of(LOOK_FOR_LANES_EVERY) {
            self.look_for_lanes(false);
        }
        self.next = next_number(wire);
        self.outstanding.insert(
            wire,
            Pending {
                id: wire,
                lane,
                again,
                answered: false,
            },
        );
        self.stats.sent += 1;
        let shared = &self.reply_ring.service_counters().client;
        shared.sent.store(self.stats.sent, Relaxed);
        shared
            .outstanding
            .store(self.outstanding.len() as u64, Relaxed);
        Ok(wire)
    }

    /// Send `value` (a [`Pod`](crate::Pod) type's bytes) as a request; its
    /// number. The server reads it with [`Request::value`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::Service;
    /// # let name = format!("shmring-doc-rr-value-{}", std::process::id());
    /// let service = Service::open_or_create(&name, 4096)?;
    /// let (mut server, mut client) = (service.server()?, service.client(4096)?);
    /// client.send_value(&[3u32, 4], Duration::ZERO)?;
    /// let request = server.recv_timeout(Duration::ZERO)?;
    /// let [a, b] = request.value::<[u32; 2]>()?;
    /// request.reply_value_last(&(a * a + b * b))?;
    /// assert_eq!(client.recv_timeout(Duration::ZERO)?.value::<u32>()?, 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_value<T: crate::Pod>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<u64, CallError> {
        self.send_timeout(bytemuck::bytes_of(value), timeout)
    }

    /// Send `payload` as a request, waiting up to `timeout` for room; its
    /// number, which its replies carry.
    #[inline]
    pub fn send_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<u64, CallError> {
        self.send_with(payload.len(), timeout, |room| room.copy_from_slice(payload))
    }

    /// Receive the next reply to a request this client waits for, in
    /// place, waiting up to `timeout`. Replies to requests it no longer
    /// waits for are dropped and counted on the way. A failed reply is
    /// [`CallError::Failed`] (and ends its request). A server that died
    /// with requests of this client ends the wait at once with
    /// [`CallError::ServerGone`], once its idempotent requests have been
    /// sent to another server where one lives.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Reply<'_>, CallError> {
        self.recv_or_give_up(timeout, None)
    }

    /// [`recv_timeout`](Self::recv_timeout); on a timeout or a gone
    /// server, stop waiting for request `give_up` (a call's).
    #[inline(always)]
    fn recv_or_give_up(
        &mut self,
        timeout: Duration,
        give_up: Option<u64>,
    ) -> Result<Reply<'_>, CallError> {
        let found = self.find_reply(timeout);
        if let (Err(_), Some(id)) = (&found, give_up) {
            // Given up (a timeout, a gone server, a bad reply): a late
            // reply is dropped, and counted, and the next call may start.
            self.cancel(id);
        } else if found.is_err() {
            publish_client(&self.reply_ring, &self.stats, self.outstanding.len());
        }
        let (flags, wire, at) = found?;
        self.lend(flags, wire, at, give_up)
    }

    /// The next reply to a request this client waits for, in place, if
    /// one is there now; replies to requests it no longer waits for are
    /// dropped and counted on the way. Never waits, and asks the kernel
    /// nothing (see [`check_servers`](Self::check_servers)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::Service;
    /// # let name = format!("shmring-doc-rr-try-recv-{}", std::process::id());
    /// let service = Service::open_or_create(&name, 4096)?;
    /// let (mut server, mut client) = (service.server()?, service.client(4096)?);
    /// let id = client.send_timeout(b"now?", Duration::ZERO)?;
    /// assert!(client.try_recv()?.is_none());
    /// server.recv_timeout(Duration::ZERO)?.reply_last(b"now")?;
    /// assert_eq!(client.try_recv()?.map(|r| r.id()), Some(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<Option<Reply<'_>>, CallError> {
        match self.look()? {
            Some((flags, wire, at)) => self.lend(flags, wire, at, None).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a reply to a request this client waits for is there now
    /// (left in place for [`try_recv`](Self::try_recv)); late ones are
    /// dropped on the way. For `shmring-async`, whose look cannot lend.
    #[doc(hidden)]
    pub fn has_reply(&mut self) -> Result<bool, CallError> {
        Ok(self.look()?.is_some())
    }

    /// Lend the reply [`has_reply`](Self::has_reply) found; on any
    /// failure, give request `give_up` (a call's) up. For `shmring-async`.
    #[doc(hidden)]
    pub fn lend_found(&mut self, give_up: Option<u64>) -> Result<Reply<'_>, CallError> {
        let found = match self.look() {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(CallError::Malformed {
                service: self.service.clone(),
                what: "reply (gone as it was lent)",
                len: 0,
            }),
            Err(e) => Err(e),
        };
        if let (Err(_), Some(id)) = (&found, give_up) {
            self.cancel(id);
        }
        let (flags, wire, at) = found?;
        self.lend(flags, wire, at, give_up)
    }

    /// Its service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Ask the kernel whether the servers of the lanes it waits on live,
    /// as a wait does after each 5 ms slice without a reply: idempotent
    /// requests on a dead server's lane, not answered yet, go to a live
    /// server; [`CallError::ServerGone`] if any other request waits on a
    /// lane without one. For a caller that waits its own way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmring::request_reply::{CallError, Service};
    /// # let name = format!("shmring-doc-rr-check-{}", std::process::id());
    /// let service = Service::open_or_create(&name, 4096)?;
    /// let mut client = service.client(4096)?;
    /// let first = client.send_timeout(b"anyone?", Duration::ZERO)?;
    /// let second = client.send_timeout(b"anyone there?", Duration::ZERO)?;
    /// match client.check_servers() {
    ///     Err(CallError::ServerGone { stranded, .. }) => assert_eq!(stranded, [first, second]),
    ///     other => panic!("{other:?}"),
    /// }
    /// let _server = service.server()?;
    /// assert!(client.check_servers().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_servers(&mut self) -> Result<(), CallError> {
        let stranded = self.mind_dead_servers(Instant::now());
        if stranded.is_empty() {
            return Ok(());
        }
        Err(CallError::ServerGone {
            service: self.service.clone(),
            outstanding: stranded.len(),
            stranded,
        })
    }

    /// Whether a server this client waits on may be gone, so that it is
    /// time to [`check_servers`](Self::check_servers): a waiter thread
    /// found one dead (and woke the task) since the last call, or a lane
    /// it waits on has no server's word (none came, or it left). Asks the
    /// kernel nothing. For `shmring-async`.
    #[doc(hidden)]
    pub fn take_suspicion(&self) -> bool {
        let watch = &self.outstanding.watch;
        let waiting = watch.waiting.load(Relaxed);
        // Relaxed: the waiter stores it before it wakes the task, and the
        // wake (waker, executor) orders the store before the task's poll.
        watch.suspect.swap(false, Relaxed)
            || self.lanes.iter().enumerate().any(|(i, lane)| {
                waiting & (1 << i) != 0 && lane.as_ref().is_some_and(|l| !l.serving())
            })
    }

    /// Drop late replies at the head of its ring; a wanted one, if there,
    /// is kept there, and its flags, number and where its payload starts
    /// returned.
    fn look(&mut self) -> Result<Option<(u32, u64, usize)>, CallError> {
        let late = self.stats.late;
        let found = loop {
            let Some(msg) = self.rx.try_recv()? else {
                break None;
            };
            match parse_reply(&msg) {
                Some((flags, wire, at)) if self.outstanding.contains_key(&wire) => {
                    msg.keep();
                    break Some((flags, wire, at));
                }
                Some(_) => self.stats.late += 1,
                None => {
                    return Err(CallError::Malformed {
                        service: self.service.clone(),
                        what: "reply",
                        len: msg.len(),
                    })
                }
            }
        };
        if self.stats.late != late {
            publish_client(&self.reply_ring, &self.stats, self.outstanding.len());
        }
        Ok(found)
    }

    /// Wait up to `timeout` for a reply to a request this client waits
    /// for, dropping (and counting) the others; it is kept at the ring's
    /// head, and its flags, number on the wire and where its payload
    /// starts returned. A returned
    /// borrow cannot come out of this loop (it would hold `self` for every
    /// iteration), so [`lend`](Self::lend) takes the kept one.
    #[inline(always)]
    fn find_reply(&mut self, timeout: Duration) -> Result<(u32, u64, usize), CallError> {
        // No clock is read unless a slice passes without a wanted reply (a
        // reply due within a slice costs none): the deadline counts from
        // the first one.
        let mut deadline: Option<Instant> = None;
        let mut slice = timeout.min(LIVENESS_SLICE);
        loop {
            match self.rx.recv_timeout(slice) {
                Ok(msg) => match parse_reply(&msg) {
                    Some((flags, wire, at)) if self.outstanding.contains_key(&wire) => {
                        msg.keep();
                        return Ok((flags, wire, at));
                    }
                    Some(_) => {
                        self.stats.late += 1;
                        let shared = &self.reply_ring.service_counters().client;
                        shared.late.store(self.stats.late, Relaxed);
                    }
                    None => {
                        return Err(CallError::Malformed {
                            service: self.service.clone(),
                            what: "reply",
                            len: msg.len(),
                        })
                    }
                },
                // A slice that ended behind a reply being written (its
                // writer, if dead, repaired by the ring's wait) is a slice
                // like another.
                Err(RecvError::Timeout { .. } | RecvError::Stalled { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            // Late replies do not stretch the wait: the deadline holds
            // whatever arrives.
            let now = Instant::now();
            let end = *deadline.get_or_insert_with(|| now + timeout.saturating_sub(slice));
            let stranded = self.mind_dead_servers(end);
            if !stranded.is_empty() {
                return Err(CallError::ServerGone {
                    service: self.service.clone(),
                    outstanding: stranded.len(),
                    stranded,
                });
            }
            // Sending again may have waited for room.
            let now = Instant::now();
            if now >= end {
                return Err(CallError::Timeout {
                    service: self.service.clone(),
                    op: "recv_timeout",
                    waited: timeout,
                    outstanding: self.outstanding.len(),
                });
            }
            slice = end.saturating_duration_since(now).min(LIVENESS_SLICE);
        }
    }

    /// Ask the kernel whether the servers of the lanes it waits on live
    /// (once per lane); send the idempotent requests of a dead one's lane,
    /// not yet answered, again to a live server, all of them waiting for
    /// room until `until` at most. The requests left on lanes without a
    /// server, by the numbers their sender knows (ascending).
    fn mind_dead_servers(&mut self, until: Instant) -> Vec<u64> {
        let mut asked = [None::<bool>; MAX_SERVERS];
        for p in self.outstanding.values() {
            if asked[p.lane].is_none() {
                asked[p.lane] = self.lanes[p.lane].as_mut().map(Lane::ask_alive);
            }
        }
        let stranded: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, p)| asked[p.lane] == Some(false))
            .map(|(wire, _)| wire)
            .collect();
        if stranded.is_empty() {
            return stranded;
        }
        self.look_for_lanes(true);
        let mut left = Vec::new();
        for wire in stranded {
            if !self.send_again(wire, until.saturating_duration_since(Instant::now())) {
                left.extend(self.outstanding.get(&wire).map(|p| p.id));
            }
        }
        left.sort_unstable();
        left
    }

    /// Send request `wire` again, under a new number, to a lane with a
    /// server, if it is idempotent and unanswered; whether it was.
    fn send_again(&mut self, wire: u64, room: Duration) -> bool {
        let Some(Pending {
            id,
            again: Some(again),
            answered: false,
            ..
        }) = self.outstanding.get(&wire)
        else {
            return false;
        };
        let (id, (flags, body)) = (*id, (**again).clone());
        let Some(lane) = self.pick() else {
            return false;
        };
        let new = self.next;
        let Ok(mut grant) = self.lanes[lane]
            .as_mut()
            .expect("picked lanes are open")
            .tx
            .reserve_timeout(REQUEST_HEADER + body.len(), room)
        else {
            return false;
        };
        write_request_header(&mut grant, flags, self.id, new);
        grant[REQUEST_HEADER..].copy_from_slice(&body);
        grant.commit();
        self.next = next_number(new);
        // The old number's replies, from a server started again on the
        // dead lane, are late now: dropped and counted.
        self.outstanding.remove(&wire);
        let again = Some(Box::new((flags, body)));
        let pending = Pending {
            id,
            lane,
            again,
            answered: false,
        };
        self.outstanding.insert(new, pending);
        self.stats.retried += 1;
        publish_client(&self.reply_ring, &self.stats, self.outstanding.len());
        true
    }

    /// Lend the reply [`find_reply`](Self::find_reply) or
    /// [`look`](Self::look) kept at the ring's head, whose header said
    /// `flags` and `wire`, its payload at `at`: read once (its header is not read again, so a
    /// peer that rewrites it after the look changes nothing here), and a
    /// call's request, `give_up`, given up if it is not there.
    #[inline(always)]
    fn lend(
        &mut self,
        flags: u32,
        wire: u64,
        at: usize,
        give_up: Option<u64>,
    ) -> Result<Reply<'_>, CallError> {
        // Fields, not methods, below: the message borrows `self.rx`.
        let Some(msg) = self.rx.take_kept() else {
            if let Some(id) = give_up {
                self.outstanding.remove_id(id);
            }
            publish_client(&self.reply_ring, &self.stats, self.outstanding.len());
            return Err(CallError::Malformed {
                service: self.service.clone(),
                what: "reply (gone as it was lent)",
                len: 0,
            });
        };
        self.stats.replies += 1;
        // A failure ends its request, marked last or not.
        let id = if flags & (LAST | FAILED) != 0 {
            self.outstanding.end(wire).unwrap_or(wire)
        } else {
            self.outstanding.get_mut(&wire).map_or(wire, |p| {
                p.answered = true;
                p.id
            })
        };
        // The two counters a reply changes (late ones are shown as they
        // are dropped).
        let shared = &self.reply_ring.service_counters().client;
        shared.replies.store(self.stats.replies, Relaxed);
        shared
            .outstanding
            .store(self.outstanding.len() as u64, Relaxed);
        if flags & FAILED != 0 {
            let code = msg.get(at..at + 4).map_or(0, |b| word32(b, 0));
            drop(msg);
            return Err(CallError::Failed {
                service: self.service.clone(),
                id,
                why: Failure::from_code(code),
            });
        }
        Ok(Reply {
            msg,
            at,
            service: &self.service,
            id,
            last: flags & LAST != 0,
        })
    }

    /// Send `payload` (waiting up to `timeout` for room) and wait up to
    /// `timeout` for its reply (a single one, or the first of a stream).
    /// Only with nothing else outstanding. A call given up (a timeout, a
    /// gone server) is cancelled: a late reply is dropped and counted.
    #[inline]
    pub fn call_timeout(
        &mut self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Reply<'_>, CallError> {
        self.call_inner(payload, false, timeout)
    }

    /// [`call_timeout`](Self::call_timeout) with an idempotent request
    /// ([`send_idempotent`](Self::send_idempotent)): a server that dies
    /// before it answers is replaced by another, where one lives.
    pub fn call_idempotent_timeout(
        &mut self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Reply<'_>, CallError> {
        self.call_inner(payload, true, timeout)
    }

    #[inline]
    fn call_inner(
        &mut self,
        payload: &[u8],
        idempotent: bool,
        timeout: Duration,
    ) -> Result<Reply<'_>, CallError> {
        if !self.outstanding.is_empty() {
            return Err(CallError::Outstanding {
                service: self.service.clone(),
                outstanding: self.outstanding.len(),
            });
        }
        let id = self.send_inner(payload.len(), None, idempotent, timeout, |room| {
            room.copy_from_slice(payload)
        })?;
        self.recv_or_give_up(timeout, Some(id))
    }

    /// Stop waiting for request `id`: its replies, if any come, are
    /// dropped and counted as late.
    pub fn cancel(&mut self, id: u64) {
        self.outstanding.remove_id(id);
        publish_client(&self.reply_ring, &self.stats, self.outstanding.len());
    }

    /// How many requests it waits for.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Its counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }
}

/// The number after `wire`: the next, or 1 after [`LAST_NUMBER`].
#[inline]
fn next_number(wire: u64) -> u64 {
    if wire >= LAST_NUMBER {
        1
    } else {
        wire + 1
    }
}

/// Write a request's header: magic, flags, client, number.
#[inline]
fn write_request_header(grant: &mut [u8], flags: u32, client: u64, wire: u64) {
    grant[..4].copy_from_slice(&REQUEST_MAGIC);
    grant[4..8].copy_from_slice(&flags.to_le_bytes());
    grant[8..16].copy_from_slice(&client.to_le_bytes());
    grant[16..24].copy_from_slice(&wire.to_le_bytes());
}

/// A client's task waits on its reply ring's word; the waiter thread's
/// looks (every 100 to 800 ms while it waits) also ask whether a server
/// it waits on died, and wake the task if one did.
impl crate::hook::Waitable for Client {
    fn wake_word(&self) -> crate::hook::WakeWord {
        let word = self.rx.wake_word();
        let watch = Arc::clone(&self.outstanding.watch);
        let woken = word.clone();
        word.repairing(move || {
            woken.repair();
            if watch.any_dead() {
                watch.suspect.store(true, Relaxed);
                woken.wake();
            }
        })
    }
}

/// A reply, in place in the client's reply ring (released when dropped).
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-reply-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let (mut server, mut client) = (service.server()?, service.client(4096)?);
/// client.send_timeout(b"two", Duration::ZERO)?;
/// let mut request = server.recv_timeout(Duration::ZERO)?;
/// request.reply(b"1")?;
/// request.reply_last(b"2")?;
/// let first = client.recv_timeout(Duration::ZERO)?;
/// assert_eq!((first.payload(), first.is_last()), (&b"1"[..], false));
/// drop(first);
/// assert!(client.recv_timeout(Duration::ZERO)?.is_last());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Reply<'a> {
    msg: Message<'a>,
    /// Where its payload starts (after a header of either size).
    at: usize,
    service: &'a str,
    id: u64,
    last: bool,
}

impl Reply<'_> {
    /// The number of the request it answers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether it is its request's last reply.
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// Its payload, in place.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // Checked long enough when it was lent.
        self.msg.get(self.at..).unwrap_or_default()
    }

    /// Its payload as a `T`, copied out; [`CallError::WrongSize`] unless
    /// it is exactly a `T`'s size.
    pub fn value<T: crate::Pod>(&self) -> Result<T, CallError> {
        read_value(self.payload(), "reply", || self.service_name())
    }

    fn service_name(&self) -> String {
        self.service.to_owned()
    }
}

/// A server's counters.
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-server-stats-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let (mut server, mut client) = (service.server()?, service.client(4096)?);
/// client.send_timeout(b"x", Duration::ZERO)?;
/// drop(server.recv_timeout(Duration::ZERO)?); // let go unanswered
/// assert_eq!((server.stats().requests, server.stats().unanswered), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests received.
    pub requests: u64,
    /// Replies written.
    pub replies: u64,
    /// Replies dropped: their client had died (or gone).
    pub to_dead_clients: u64,
    /// Replies dropped: their client's ring stayed full for `reply_wait`.
    pub dropped_full: u64,
    /// Requests let go without a last reply (answered `NoReply`).
    pub unanswered: u64,
}

/// The reply side of a server: its clients' rings, opened as needed.
#[derive(Debug)]
struct Replies {
    /// The lane it serves, whose header shows its counters.
    lane: ByteRing,
    /// What the lane's servers before it counted: its header shows the
    /// sums, which only grow.
    base: ServerStats,
    service: String,
    /// A typed service's reply type: each client's ring must hold it.
    reply_type: Option<TypeLayout>,
    open: OpenRings,
    wait: Duration,
    stats: ServerStats,
}

/// A client's reply ring, as the server holds it.
#[derive(Debug)]
struct Open {
    client: u64,
    ring: ByteRing,
    tx: ByteProducer,
    /// Replies it may still take before the kernel is asked again
    /// whether its client lives.
    trusted: u32,
    /// The type its ring holds, where it is not the server's reply type
    /// (found, expected): each request of its client is failed
    /// [`Failure::WrongType`].
    wrong_type: Option<(TypeLayout, TypeLayout)>,
    /// Whether its client reads the 8-byte reply header (as its ring's
    /// `reply_format` said when opened); if not, it gets 16 bytes.
    compact: bool,
}

/// The client reply rings a server holds: found by client ID through a
/// map to their place, and the last one used without the map (a server
/// answering one client's run of requests hashes nothing).
#[derive(Debug, Default)]
struct OpenRings {
    rings: Vec<Open>,
    index: HashMap<u64, usize, Ids>,
    last: Option<(u64, usize)>,
}

impl OpenRings {
    #[inline]
    fn find(&mut self, client: u64) -> Option<usize> {
        match self.last {
            Some((last, i)) if last == client => Some(i),
            _ => {
                let i = *self.index.get(&client)?;
                self.last = Some((client, i));
                Some(i)
            }
        }
    }

    fn insert(&mut self, open: Open) -> usize {
        let (client, i) = (open.client, self.rings.len());
        self.rings.push(open);
        self.index.insert(client, i);
        self.last = Some((client, i));
        i
    }

    fn remove(&mut self, client: u64) {
        let Some(i) = self.index.remove(&client) else {
            return;
        };
        self.rings.swap_remove(i);
        if let Some(moved) = self.rings.get(i) {
            self.index.insert(moved.client, i);
        }
        self.last = None;
    }

    fn retain(&mut self, keep: impl FnMut(&Open) -> bool) {
        self.rings.retain(keep);
        self.index.clear();
        self.index
            .extend(self.rings.iter().enumerate().map(|(i, o)| (o.client, i)));
        self.last = None;
    }

    fn len(&self) -> usize {
        self.rings.len()
    }
}

/// Most client reply rings a server keeps open before it lets go of those
/// whose client is gone.
const KEEP_OPEN: usize = 64;

/// Every this many requests, a server lets go of the reply rings of
/// clients that are gone, so that their names go too (a question to the
/// kernel per open ring: 32 µs for 64, every 1024 requests).
const SWEEP_EVERY: u64 = 1024;

/// How many replies a server writes to a client between two questions to
/// the kernel whether it lives (and before the first, and whenever its
/// ring is full). Asking is a system call, 500 ns or more, more than the
/// rest of a round trip: asked after the reply is written, so that no
/// reply waits for it; a client that died takes at most this many
/// replies nobody reads, which go with its ring.
const TRUSTED_REPLIES: u32 = 256;

impl Replies {
    /// Write a reply to client `client`'s request `id`; dropped and
    /// counted if the client is gone or its ring stays full.
    #[inline(always)]
    fn send(&mut self, client: u64, id: u64, flags: u32, payload: &[u8]) -> Result<(), CallError> {
        self.send_inner(client, id, flags, payload)
    }

    /// Show its counters in its lane's header, for operators (added to
    /// its predecessors'). The hot paths show only the one they change.
    fn publish(&self) {
        let shared = &self.lane.service_counters().server;
        let (s, b) = (&self.stats, &self.base);
        for (counter, value) in [
            // Wrapping: the base is whatever the header held.
            (&shared.requests, b.requests.wrapping_add(s.requests)),
            (&shared.replies, b.replies.wrapping_add(s.replies)),
            (
                &shared.to_dead_clients,
                b.to_dead_clients.wrapping_add(s.to_dead_clients),
            ),
            (
                &shared.dropped_full,
                b.dropped_full.wrapping_add(s.dropped_full),
            ),
            (&shared.unanswered, b.unanswered.wrapping_add(s.unanswered)),
        ] {
            counter.store(value, Relaxed);
        }
    }

    #[inline(always)]
    fn send_inner(
        &mut self,
        client: u64,
        id: u64,
        flags: u32,
        payload: &[u8],
    ) -> Result<(), CallError> {
        let wait = self.wait;
        let Some(at) = self.client(client)? else {
            self.count(client, Written::Dead);
            return Ok(());
        };
        let open = &mut self.open.rings[at];
        if let (Some((found, expected)), 0) = (open.wrong_type, flags & FAILED) {
            // Its client hears why; the server's caller too.
            let written = write_failure(open, id, Failure::WrongType, wait)?;
            self.settle(client, at, written);
            return Err(CallError::Ring(Error::TypeMismatch {
                name: reply_ring_name(&self.service, client),
                found: Box::new(found),
                expected: Box::new(expected),
            }));
        }
        let written = match write(open, flags, id, payload, wait) {
            Err(e @ SendError::MessageTooLarge { .. }) => {
                // Its client hears why, in a reply that fits.
                let open = &mut self.open.rings[at];
                let written = write_failure(open, id, Failure::ReplyTooLarge, wait)?;
                self.settle(client, at, written);
                return Err(e.into());
            }
            r => r?,
        };
        self.settle(client, at, written);
        Ok(())
    }

    /// The error for a receive that got no request.
    #[cold]
    #[inline(never)]
    fn not_received(&self, e: RecvError, timeout: Duration) -> CallError {
        match e {
            RecvError::Timeout { waited, .. } => CallError::Timeout {
                service: self.service.clone(),
                op: "recv_timeout",
                waited,
                outstanding: 0,
            },
            // Behind a request being written (its writer, if dead,
            // repaired by the ring's wait): nothing to serve yet.
            RecvError::Stalled { .. } => CallError::Timeout {
                service: self.service.clone(),
                op: "recv_timeout",
                waited: timeout,
                outstanding: 0,
            },
            e => e.into(),
        }
    }

    /// A malformed request of `len` bytes, released: fail it to its
    /// client if its header named one (`asker`: client, number).
    #[cold]
    #[inline(never)]
    fn malformed(&mut self, asker: Option<(u64, u64)>, len: usize) -> CallError {
        if let Some((client, id)) = asker {
            let code = Failure::Malformed.code().to_le_bytes();
            if let Err(e) = self.send(client, id, LAST | FAILED, &code) {
                return e;
            }
        }
        CallError::Malformed {
            service: self.service.clone(),
            what: "request",
            len,
        }
    }

    /// A request let go without its last reply: answered `NoReply`.
    #[cold]
    #[inline(never)]
    fn unanswered(&mut self, client: u64, id: u64) {
        self.stats.unanswered += 1;
        self.publish();
        let code = Failure::NoReply.code().to_le_bytes();
        // Best effort: a client that is gone or full is counted there.
        let _ = self.send(client, id, LAST | FAILED, &code);
    }

    /// Count a reply written (or not) to client `client`, whose ring was
    /// at `at`. After a written one that was the last of those trusted,
    /// ask the kernel whether the client lives (off the reply's path).
    #[inline(always)]
    fn settle(&mut self, client: u64, at: usize, written: Written) {
        let due = matches!(written, Written::Yes) && self.open.rings[at].trusted == 0;
        self.count(client, written);
        if due {
            self.ask(client, at);
        }
    }

    /// Count what became of a reply to `client`, and show it; let a dead
    /// one's ring go.
    #[inline]
    fn count(&mut self, client: u64, written: Written) {
        let shared = &self.lane.service_counters().server;
        let (s, b) = (&mut self.stats, &self.base);
        let (counter, base, local) = match written {
            Written::Yes => (&shared.replies, b.replies, &mut s.replies),
            Written::Full => (&shared.dropped_full, b.dropped_full, &mut s.dropped_full),
            Written::Dead => {
                self.open.remove(client);
                let dead = &mut s.to_dead_clients;
                (&shared.to_dead_clients, b.to_dead_clients, dead)
            }
        };
        *local += 1;
        // Wrapping: the base is whatever the header held.
        counter.store(base.wrapping_add(*local), Relaxed);
    }

    /// Let go of the rings of clients that are gone.
    fn sweep(&mut self) {
        self.open.retain(|open| open.ring.has_consumer());
    }

    /// Where client `client`'s reply ring is in `open`, opened if need
    /// be; `None` if the client is gone when its ring is opened (a ring
    /// held already is asked about by [`settle`](Self::settle)).
    #[inline(always)]
    fn client(&mut self, client: u64) -> Result<Option<usize>, CallError> {
        let Some(at) = self.open.find(client) else {
            return self.open_client(client);
        };
        let open = &mut self.open.rings[at];
        open.trusted = open.trusted.saturating_sub(1);
        Ok(Some(at))
    }

    /// Ask the kernel whether client `client` (its ring at `at`) lives:
    /// trust it for as many replies again, or let its ring go.
    #[cold]
    fn ask(&mut self, client: u64, at: usize) {
        if self.open.rings[at].ring.has_consumer() {
            self.open.rings[at].trusted = TRUSTED_REPLIES;
        } else {
            self.open.remove(client);
        }
    }

    /// Open client `client`'s reply ring (its first reply here, or its
    /// first since its ring was let go).
    #[cold]
    fn open_client(&mut self, client: u64) -> Result<Option<usize>, CallError> {
        if self.open.len() >= KEEP_OPEN {
            self.sweep();
        }
        let name = reply_ring_name(&self.service, client);
        let (ring, wrong_type) = match open_ring(&name, self.reply_type) {
            Ok(ring) => (Ok(ring), None),
            // Opened as bytes, to fail its client's requests.
            Err(Error::TypeMismatch {
                found, expected, ..
            }) => (ByteRing::open(&name), Some((*found, *expected))),
            Err(e) => (Err(e), None),
        };
        let ring = match ring {
            Ok(ring) if ring.has_consumer() => ring,
            Ok(_) | Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Relaxed: stored before the client's first request, whose commit
        // this server read with Acquire before opening the ring.
        let compact = ring.service_counters().reply_format.load(Relaxed) == READS_COMPACT;
        let open = Open {
            client,
            tx: ring.producer()?,
            ring,
            trusted: TRUSTED_REPLIES,
            wrong_type,
            compact,
        };
        Ok(Some(self.open.insert(open)))
    }
}

/// Write a reply's header, of the size its client reads (`compact`: 8
/// bytes), into `grant`, then `payload`, and commit it.
#[inline(always)]
fn fill_reply(
    mut grant: crate::rings::byte_ring::Grant<'_>,
    compact: bool,
    flags: u32,
    id: u64,
    payload: &[u8],
) {
    let at = if compact {
        let word = id << 8 | COMPACT | u64::from(flags & 0x7f);
        grant[..REPLY_HEADER].copy_from_slice(&word.to_le_bytes());
        REPLY_HEADER
    } else {
        grant[..4].copy_from_slice(&REPLY_MAGIC);
        grant[4..8].copy_from_slice(&flags.to_le_bytes());
        grant[8..16].copy_from_slice(&id.to_le_bytes());
        LEGACY_REPLY_HEADER
    };
    grant[at..].copy_from_slice(payload);
    grant.commit();
}

/// The server counters lane `ring`'s header shows.
fn published(ring: &ByteRing) -> ServerStats {
    let c = &ring.service_counters().server;
    ServerStats {
        requests: c.requests.load(Relaxed),
        replies: c.replies.load(Relaxed),
        to_dead_clients: c.to_dead_clients.load(Relaxed),
        dropped_full: c.dropped_full.load(Relaxed),
        unanswered: c.unanswered.load(Relaxed),
    }
}

/// Show a client's counters in its reply ring's header, for operators.
fn publish_client(ring: &ByteRing, s: &ClientStats, outstanding: usize) {
    let shared = &ring.service_counters().client;
    for (counter, value) in [
        (&shared.sent, s.sent),
        (&shared.replies, s.replies),
        (&shared.late, s.late),
        (&shared.retried, s.retried),
        (&shared.outstanding, outstanding as u64),
    ] {
        counter.store(value, Relaxed);
    }
}

/// Answer request `id` failed, with `why`, in `open`'s ring.
fn write_failure(
    open: &mut Open,
    id: u64,
    why: Failure,
    wait: Duration,
) -> Result<Written, SendError> {
    let code = why.code().to_le_bytes();
    write(open, LAST | FAILED, id, &code, wait)
}

/// What became of a reply.
enum Written {
    Yes,
    /// Its client's ring stayed full.
    Full,
    /// Its client died (found when its ring was full).
    Dead,
}

/// Write a reply to request `id` into `open`'s ring, waiting up to
/// `wait` for room while its client lives.
#[inline(always)]
fn write(
    open: &mut Open,
    flags: u32,
    id: u64,
    payload: &[u8],
    wait: Duration,
) -> Result<Written, SendError> {
    // A number past what the short header holds (a forged request's) is
    // answered in full.
    let compact = open.compact && id <= LAST_NUMBER;
    let header = if compact {
        REPLY_HEADER
    } else {
        LEGACY_REPLY_HEADER
    };
    let len = header + payload.len();
    match open.tx.try_reserve(len) {
        Ok(grant) => {
            fill_reply(grant, compact, flags, id, payload);
            return Ok(Written::Yes);
        }
        Err(SendError::Full) => {}
        Err(e) => return Err(e),
    }
    if !open.ring.has_consumer() {
        return Ok(Written::Dead);
    }
    match open.tx.reserve_timeout(len, wait) {
        Ok(grant) => {
            fill_reply(grant, compact, flags, id, payload);
            Ok(Written::Yes)
        }
        Err(SendError::Timeout { .. } | SendError::Full) => Ok(Written::Full),
        Err(e) => Err(e),
    }
}

/// Hashes client IDs and request numbers (u64s, random or counted) with
/// one multiply: SipHash, the default, was 3% of a round trip.
#[derive(Clone, Copy, Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Ids = std::hash::BuildHasherDefault<IdHasher>;

/// The server of a service: receives requests in place and answers each.
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-server-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let mut server = service.server()?;
/// server.set_reply_wait(Duration::from_millis(10));
/// let mut client = service.client(4096)?;
/// let reply = std::thread::scope(|s| {
///     s.spawn(|| -> Result<(), shmring::request_reply::CallError> {
///         let request = server.recv_timeout(Duration::from_secs(5))?;
///         let n = request.payload().len() as u8;
///         request.reply_last(&[n])
///     });
///     client.call_timeout(b"four", Duration::from_secs(5)).map(|r| r.payload().to_vec())
/// })?;
/// assert_eq!(reply, [4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    rx: ByteConsumer,
    lane: usize,
    replies: Replies,
    /// The request being answered, as its header said; the request itself
    /// is kept at the head of `rx` until its [`Request`] drops.
    asked: Asked,
}

/// What a request's header said, read once, and whether it was answered.
#[derive(Clone, Copy, Debug, Default)]
struct Asked {
    /// Where its payload starts.
    at: usize,
    flags: u32,
    client: u64,
    id: u64,
    /// Whether its last reply was sent.
    done: bool,
}

impl Server {
    /// The lane it serves: the request ring it reads
    /// ([`lane_ring_name`]).
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// How long a reply waits for room in a client's full ring before it
    /// is dropped (and counted); 100 ms unless set.
    pub fn set_reply_wait(&mut self, wait: Duration) {
        self.replies.wait = wait;
    }

    /// How it waits for requests (the request ring consumer's strategy).
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.rx.set_wait_strategy(strategy);
    }

    /// Receive the next request, in place, waiting up to `timeout`. A
    /// message without the request header is released and reported
    /// ([`CallError::Malformed`]).
    #[inline(always)]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Request<'_>, CallError> {
        let msg = match self.rx.recv_timeout(timeout) {
            Ok(msg) => msg,
            Err(e) => return Err(self.replies.not_received(e, timeout)),
        };
        let Some((flags, client, id, at)) = parse_request(&msg) else {
            let len = msg.len();
            // A header that names its client and number (an unknown flag,
            // a bad trace context): that client hears it failed.
            let asker = (len >= REQUEST_HEADER && msg[..4] == REQUEST_MAGIC)
                .then(|| (word64(&msg, 8), word64(&msg, 16)));
            drop(msg);
            return Err(self.replies.malformed(asker, len));
        };
        msg.keep();
        let replies = &mut self.replies;
        replies.stats.requests += 1;
        let shown = replies.base.requests.wrapping_add(replies.stats.requests);
        let shared = &replies.lane.service_counters().server;
        shared.requests.store(shown, Relaxed);
        self.asked = Asked {
            at,
            flags,
            client,
            id,
            done: false,
        };
        Ok(Request { server: self })
    }

    /// Its counters.
    pub fn stats(&self) -> ServerStats {
        self.replies.stats
    }
}

/// A request, in place in the request ring until it is dropped (which
/// releases it). Answer with [`reply`](Self::reply) (any number of times)
/// and [`reply_last`](Self::reply_last); dropped without a last reply, it
/// is answered [`Failure::NoReply`].
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-rr-request-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let (mut server, mut client) = (service.server()?, service.client(4096)?);
/// let id = client.send_timeout(b"ping", Duration::ZERO)?;
/// let request = server.recv_timeout(Duration::ZERO)?;
/// assert_eq!((request.id(), request.client(), request.payload()), (id, client.id(), &b"ping"[..]));
/// request.reply_last(b"pong")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It is one reference to its server, which holds what its header said and
/// keeps the request at the head of its ring: a request moves as a word,
/// not as the fields (which, returned and moved again, were copied through
/// memory in pieces the loads could not take from the stores in flight).
#[derive(Debug)]
pub struct Request<'a> {
    server: &'a mut Server,
}

impl Request<'_> {
    /// The request's bytes, header and all.
    #[inline]
    fn bytes(&self) -> &[u8] {
        // Kept by `recv_timeout` until this drops.
        self.server.rx.kept().unwrap_or_default()
    }

    /// Its payload, in place.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // Checked long enough when it was received.
        self.bytes().get(self.server.asked.at..).unwrap_or_default()
    }

    /// Its payload as a `T`, copied out; [`CallError::WrongSize`] unless
    /// it is exactly a `T`'s size.
    pub fn value<T: crate::Pod>(&self) -> Result<T, CallError> {
        let service = || self.server.replies.service.clone();
        read_value(self.payload(), "request", service)
    }

    /// Send `value` as the last reply; the request is released.
    pub fn reply_value_last<T: crate::Pod>(self, value: &T) -> Result<(), CallError> {
        self.reply_last(bytemuck::bytes_of(value))
    }

    /// The W3C `traceparent` it carries, if its client sent one
    /// ([`Client::send_traced`]): checked as one on arrival.
    pub fn traceparent(&self) -> Option<&str> {
        let t = self.bytes().get(REQUEST_HEADER..self.server.asked.at)?;
        // Checked ASCII by `parse_request`.
        std::str::from_utf8(t).ok().filter(|t| !t.is_empty())
    }

    /// Whether its client sent it idempotent
    /// ([`Client::send_idempotent`]): it may come again, to this server or
    /// another, if a server dies before answering it.
    pub fn is_idempotent(&self) -> bool {
        self.server.asked.flags & IDEMPOTENT != 0
    }

    /// The ID of the client that sent it.
    pub fn client(&self) -> u64 {
        self.server.asked.client
    }

    /// Its number on the wire, as its client counts (a request sent again
    /// to another server goes under a new one).
    pub fn id(&self) -> u64 {
        self.server.asked.id
    }

    /// Send one reply of a stream (not the last).
    #[inline]
    pub fn reply(&mut self, payload: &[u8]) -> Result<(), CallError> {
        self.answer(0, payload)
    }

    /// Send the last reply; the request is released.
    #[inline(always)]
    pub fn reply_last(mut self, payload: &[u8]) -> Result<(), CallError> {
        self.server.asked.done = true;
        self.answer(LAST, payload)
    }

    /// Answer it failed, with `why`; the request is released.
    pub fn fail(mut self, why: Failure) -> Result<(), CallError> {
        self.server.asked.done = true;
        self.answer(LAST | FAILED, &why.code().to_le_bytes())
    }

    #[inline(always)]
    fn answer(&mut self, flags: u32, payload: &[u8]) -> Result<(), CallError> {
        let Asked { client, id, .. } = self.server.asked;
        self.server.replies.send(client, id, flags, payload)
    }
}

impl Drop for Request<'_> {
    #[inline]
    fn drop(&mut self) {
        let Server {
            rx, replies, asked, ..
        } = &mut *self.server;
        // Released last, after its answer, and even if what comes first
        // unwinds (as when a request held its message).
        let _release = ReleaseKept(rx);
        if !asked.done {
            replies.unanswered(asked.client, asked.id);
        }
        // Now, off the path from the request to its reply.
        if replies.stats.requests.is_multiple_of(SWEEP_EVERY) {
            replies.sweep();
        }
    }
}

/// Releases the message kept at the head of a consumer when dropped.
struct ReleaseKept<'a>(&'a mut ByteConsumer);

impl Drop for ReleaseKept<'_> {
    #[inline]
    fn drop(&mut self) {
        drop(self.0.take_kept());
    }
}

#[cfg(test)]
mod tests {
    use super::{
        first_ids, next_number, parse_reply, Outstanding, Pending, COMPACT, FAILED, HOLES_KEPT,
        LAST, LAST_NUMBER, LEGACY_REPLY_HEADER, REPLY_HEADER, REPLY_MAGIC, REQUEST_MAGIC,
    };

    fn pending(id: u64, lane: usize) -> Pending {
        Pending {
            id,
            lane,
            again: None,
            answered: false,
        }
    }

    fn wires(o: &Outstanding) -> Vec<u64> {
        o.iter().map(|(w, _)| w).collect()
    }

    #[test]
    fn a_message_names_the_first_few_stranded_requests() {
        assert_eq!(first_ids(&[3, 4]), "[3, 4]");
        let many: Vec<u64> = (1..=20).collect();
        assert_eq!(first_ids(&many), "[1, 2, 3, 4, 5, 6, 7, 8, ...]");
    }

    #[test]
    fn outstanding_finds_every_request_however_they_end() {
        let mut o = Outstanding::default();
        for wire in 0..100 {
            o.insert(wire, pending(wire, (wire % 3) as usize));
        }
        // Out of order: every third from the middle, then the oldest.
        for wire in (30..90).step_by(3) {
            assert_eq!(o.remove(&wire).map(|p| p.id), Some(wire));
            assert!(o.remove(&wire).is_none(), "removed twice: {wire}");
        }
        assert_eq!(o.remove(&0).map(|p| p.id), Some(0));
        let left: Vec<u64> = (1..100)
            .filter(|w| !(30..90).contains(w) || w % 3 != 0)
            .collect();
        assert_eq!((wires(&o), o.len()), (left.clone(), left.len()));
        for &wire in &left {
            assert_eq!(o.get(&wire).map(|p| p.id), Some(wire));
        }
        assert_eq!(o.per_lane.iter().sum::<u32>() as usize, left.len());
        // A number sent again, later, goes after the rest.
        o.remove(&5);
        o.insert(500, pending(5, 1));
        o.remove_id(5);
        assert!(!o.contains_key(&500) && !o.contains_key(&5));
        // Newest first, down to nothing: the holes go with them.
        for wire in left.iter().rev().filter(|&&w| w != 5) {
            assert!(o.remove(wire).is_some(), "{wire}");
        }
        assert!(o.is_empty() && o.entries.is_empty() && o.per_lane == [0; 16]);
        assert_eq!(
            o.watch.waiting.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn a_request_alone_needs_no_deque_and_joins_it_when_another_comes() {
        let waiting = |o: &Outstanding| o.watch.waiting.load(std::sync::atomic::Ordering::Relaxed);
        let mut o = Outstanding::default();
        o.insert(7, pending(7, 2));
        assert!(o.one.is_some() && o.entries.is_empty());
        assert_eq!((o.len(), wires(&o), waiting(&o)), (1, vec![7], 1 << 2));
        assert!(o.remove(&8).is_none() && o.get(&8).is_none() && o.get_mut(&8).is_none());
        o.get_mut(&7).expect("there").answered = true;
        // Another comes: both in order in the deque, the first as it was.
        o.insert(8, pending(8, 2));
        assert!(o.one.is_none());
        assert_eq!((o.len(), wires(&o)), (2, vec![7, 8]));
        assert!(o.get(&7).is_some_and(|p| p.answered));
        assert_eq!(o.remove(&7).map(|p| p.id), Some(7));
        assert_eq!((o.end(7), o.end(8), o.end(8)), (None, Some(8), None));
        assert!(o.is_empty() && o.entries.is_empty() && o.per_lane == [0; 16]);
        assert_eq!(waiting(&o), 0);
        // Alone again: the slot again.
        o.insert(9, pending(9, 1));
        assert!(o.one.is_some() && waiting(&o) == 1 << 1);
        assert_eq!(o.remove(&9).map(|p| p.id), Some(9));
        assert!(o.is_empty() && o.one.is_none() && waiting(&o) == 0);
        // Ended alone (a call's reply): only its sender's number comes out.
        let mut sent_again = pending(3, 1);
        sent_again.again = Some(Box::new((0, Box::from(&b"body"[..]))));
        o.insert(10, sent_again);
        assert_eq!((o.end(11), o.len()), (None, 1));
        assert_eq!((o.end(10), o.end(10)), (Some(3), None));
        assert!(o.is_empty() && o.one.is_none() && o.per_lane == [0; 16] && waiting(&o) == 0);
    }

    #[test]
    fn outstanding_holes_behind_a_request_never_answered_do_not_pile_up() {
        let mut o = Outstanding::default();
        o.insert(0, pending(0, 0)); // never answered
        for wire in 1..10_000 {
            o.insert(wire, pending(wire, 0));
            o.remove(&wire);
        }
        assert_eq!(wires(&o), [0]);
        assert!(
            o.entries.len() <= 2 + HOLES_KEPT,
            "{} entries",
            o.entries.len()
        );
        // Answered out of order behind it: holes, compacted.
        for wire in 10_000..10_100 {
            o.insert(wire, pending(wire, 0));
        }
        for wire in (10_000..10_099).rev() {
            o.remove(&wire);
        }
        assert_eq!(wires(&o), [0, 10_099]);
        assert!(
            o.entries.len() <= 4 + HOLES_KEPT,
            "{} entries",
            o.entries.len()
        );
    }

    #[test]
    fn replies_of_either_header_parse_and_nothing_else_does() {
        let compact = |word: u64, payload: &[u8]| [&word.to_le_bytes()[..], payload].concat();
        let reply = compact(5 << 8 | COMPACT | u64::from(LAST), b"ok");
        assert_eq!(parse_reply(&reply), Some((LAST, 5, REPLY_HEADER)));
        let mut legacy = REPLY_MAGIC.to_vec();
        legacy.extend((LAST | FAILED).to_le_bytes());
        legacy.extend(9u64.to_le_bytes());
        assert_eq!(
            parse_reply(&legacy),
            Some((LAST | FAILED, 9, LEGACY_REPLY_HEADER))
        );
        // Too short for either, a request's header, a legacy one cut short,
        // a short one with a bit no flag of this build's.
        assert_eq!(parse_reply(&[0x81; 7]), None);
        assert_eq!(parse_reply(&compact(5 << 8 | COMPACT | 4, b"")), None);
        let mut request = REQUEST_MAGIC.to_vec();
        request.extend([0; 20]);
        assert_eq!(parse_reply(&request), None);
        assert_eq!(parse_reply(&legacy[..12]), None);
    }

    #[test]
    fn request_numbers_start_again_at_1_after_the_last_a_reply_holds() {
        assert_eq!(next_number(1), 2);
        assert_eq!(next_number(LAST_NUMBER - 1), LAST_NUMBER);
        assert_eq!(next_number(LAST_NUMBER), 1);
        let top = (LAST_NUMBER << 8 | COMPACT).to_le_bytes();
        assert_eq!(parse_reply(&top), Some((0, LAST_NUMBER, REPLY_HEADER)));
        // Outstanding across the wrap: the numbers after it go first in
        // order, each is found and ended, and nothing is left behind.
        let mut o = Outstanding::default();
        let mut wire = LAST_NUMBER - 1;
        for id in 0..4 {
            o.insert(wire, pending(id, 0));
            wire = next_number(wire);
        }
        assert_eq!(wires(&o), vec![1, 2, LAST_NUMBER - 1, LAST_NUMBER]);
        for (id, wire) in [(2, 1), (0, LAST_NUMBER - 1), (3, 2), (1, LAST_NUMBER)] {
            assert_eq!(o.get(&wire).map(|p| p.id), Some(id));
            assert_eq!(o.end(wire), Some(id));
        }
        assert!(o.is_empty() && o.entries.is_empty() && o.per_lane == [0; 16]);
    }
}

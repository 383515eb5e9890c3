//! Looking into segments without joining them: what `shmring ls`, `stat`
//! and `rm` show, and when a segment is stale.
//!
//! Inspection maps a segment and reads its header, but claims no role and
//! does not record itself as attached, so looking never changes what is
//! seen. Everything read is validated first, like any open.

use std::mem::size_of;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::header::{Event, Header, HeaderInfo, SideStats};
use crate::format::memory::{self, header_of, LOOK_INIT_WAIT};
use crate::kind::{RingKind, TypeLayout};
use crate::peers::attach::{self, Attached};
use crate::peers::claims;
use crate::platform::name::SegmentName;
use crate::platform::segment::{OpenOptions, Segment};
use crate::platform::sync::{Counter, Ordering};
use crate::rings::record;

/// What a segment's header says, and who uses it, at one moment.
///
/// ```
/// # let name = format!("shmring-doc-info-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// ring.producer()?.try_push(1).unwrap();
/// let info = shmring::inspect(&name)?; // looks without joining
/// assert_eq!(info.kind, shmring::RingKind::Spsc);
/// assert_eq!((info.capacity, info.fill()), (8, 1));
/// assert!(!info.is_stale(), "we map it");
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment name.
    pub name: String,
    /// The ring kind.
    pub kind: RingKind,
    /// The element type's layout (for a byte ring, its 16-byte unit).
    pub elem: TypeLayout,
    /// Capacity: values, or bytes for a byte ring.
    pub capacity: u64,
    /// The segment's size in bytes.
    pub segment_len: u64,
    /// The process that created it.
    pub creator_pid: u32,
    /// When it was created, in nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Values (bytes, for a byte ring) claimed by producers so far.
    pub written: u64,
    /// Values (bytes) taken by consumers so far.
    pub read: u64,
    /// The holder of the producer role, for rings that have one.
    pub producer: Option<Attached>,
    /// The holder of the consumer role, for rings that have one.
    pub consumer: Option<Attached>,
    /// Processes recorded as having the segment mapped (the first 32; more
    /// may map it, unlisted but counted in [`in_use`](Self::in_use)).
    pub attached: Vec<Attached>,
    /// Whether any process holds a lock on the segment file: maps it, holds
    /// a role or a claim record, or is removing it. The kernel's word,
    /// whatever the tables say.
    pub in_use: bool,
    /// Consumers asleep on the futex now (or about to be). One that was
    /// killed asleep stays counted: it costs its peers nothing (see
    /// `wait.rs`), but the count does not drop.
    pub sleeping_consumers: u32,
    /// Producers asleep on the futex now; as for consumers.
    pub sleeping_producers: u32,
    /// Whether the name stays after the last user leaves
    /// ([`Spsc::persist`](crate::Spsc::persist)).
    pub persistent: bool,
    /// The MPMC and byte-ring producer handles that hold a claim record
    /// (empty for SPSC, whose producer is [`producer`](Self::producer)).
    pub producer_handles: Vec<Attached>,
    /// The MPMC consumer handles that hold a claim record.
    pub consumer_handles: Vec<Attached>,
    /// The producers' counters since the ring was created.
    pub producers: SideCounters,
    /// The consumers' counters since the ring was created.
    pub consumers: SideCounters,
    /// Positions (byte ring: spans) that dead holders left unfinished and
    /// a repair skipped, padded or handed on.
    pub repaired: u64,
}

/// One side's counters, kept in the header by every process (Relaxed, off
/// the hot path): what an operator asks first in an incident.
///
/// ```
/// # let name = format!("shmring-doc-counters-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 1)?;
/// let mut tx = ring.producer()?;
/// tx.try_push(1).unwrap();
/// assert!(tx.try_push(2).is_err()); // back-pressure
/// let info = shmring::inspect(&name)?;
/// assert_eq!(info.producers.blocked, 1);
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SideCounters {
    /// Producers: calls that found the ring full (back-pressure events).
    /// Consumers: blocking calls that found it empty and had to wait (a
    /// `try_pop` that finds nothing is a poll, not counted).
    pub blocked: u64,
    /// Times a handle of this side went to sleep on the futex.
    pub sleeps: u64,
    /// Futex wakes the other side issued to this one.
    pub wakes: u64,
    /// Blocking calls that ended in `Timeout` or `Stalled`.
    pub timeouts: u64,
    /// Roles taken over from dead handles, and claim records reclaimed
    /// from them.
    pub takeovers: u64,
}

impl SegmentInfo {
    /// Values (or bytes) written and not yet read. A peer may scribble on
    /// the indices, so this is clamped to the capacity.
    pub fn fill(&self) -> u64 {
        self.written.wrapping_sub(self.read).min(self.capacity)
    }

    /// Whether no process uses the segment: no mapping, role or claim of
    /// any process (in any pid namespace) holds a lock on it. A stale
    /// segment can be removed.
    pub fn is_stale(&self) -> bool {
        !self.in_use
    }
}

fn open_options() -> OpenOptions {
    OpenOptions::new().init_timeout(LOOK_INIT_WAIT)
}

/// Read segment `name`'s header and counters, waiting at most 20 ms for a
/// creator still writing the header.
pub fn inspect(name: &str) -> Result<SegmentInfo> {
    inspect_with(name, &open_options())
}

/// [`inspect`] with options: another user's segment, another wait.
pub fn inspect_with(name: &str, opts: &OpenOptions) -> Result<SegmentInfo> {
    let name = SegmentName::new(name)?;
    // Not attached: looking does not count as using.
    let segment = Segment::open(&name, size_of::<Header>() as u64, opts)?;
    describe(&segment, opts.init_timeout)
}

fn describe(segment: &Segment, init_wait: Duration) -> Result<SegmentInfo> {
    let header = header_of(segment);
    let name = segment.name().as_str();
    header.wait_ready(name, init_wait)?;
    let info: HeaderInfo = header.describe(segment.name().as_str(), segment.len() as u64)?;
    let capacity = match info.kind {
        RingKind::Bytes => info.layout.capacity.saturating_mul(record::ALIGN),
        _ => info.layout.capacity,
    };
    let role = |word| attach::holder(segment, word);
    Ok(SegmentInfo {
        name: name.to_owned(),
        kind: info.kind,
        elem: info.elem,
        capacity,
        segment_len: info.layout.total_len,
        creator_pid: info.creator_pid,
        created_unix_ns: info.created_unix_ns,
        written: header.tail.load(Ordering::Relaxed),
        read: header.head.load(Ordering::Relaxed),
        producer: role(&header.producer_role),
        consumer: role(&header.consumer_role),
        attached: attach::list(segment, &header.attached),
        in_use: segment.in_use(),
        sleeping_consumers: header.consumer_event.sleepers.load(Ordering::Relaxed),
        sleeping_producers: header.producer_event.sleepers.load(Ordering::Relaxed),
        persistent: header.is_persistent(),
        producer_handles: claims::holders(segment, &header.producer_claims),
        consumer_handles: claims::holders(segment, &header.consumer_claims),
        producers: counters(&header.producer_stats, &header.producer_event),
        consumers: counters(&header.consumer_stats, &header.consumer_event),
        repaired: header.recovery.repaired.load(Ordering::Relaxed),
    })
}

fn counters(stats: &SideStats, event: &Event) -> SideCounters {
    let get = |c: &Counter| c.load(std::sync::atomic::Ordering::Relaxed);
    SideCounters {
        blocked: get(&stats.blocked),
        sleeps: get(&event.sleeps),
        wakes: get(&event.wakes),
        timeouts: get(&stats.timeouts),
        takeovers: get(&stats.takeovers),
    }
}

/// Every shmring segment in /dev/shm, by name, with what inspecting it
/// gave: files that are not shmring segments are left out; a segment that
/// cannot be read (another user's, another version, corrupt) is listed with
/// its error.
///
/// ```
/// # let name = format!("shmring-doc-m-list-{}", std::process::id());
/// let _ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// let all = shmring::list()?;
/// assert!(all.iter().any(|(n, info)| *n == name && info.is_ok()));
/// # Ok::<(), shmring::Error>(())
/// ```
pub fn list() -> Result<Vec<(String, Result<SegmentInfo>)>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|source| Error::Io {
        op: "read_dir",
        name: "/dev/shm".into(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if SegmentName::new(&name).is_err() || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match inspect(&name) {
            Err(Error::BadMagic { .. } | Error::SegmentTooSmall { .. }) => {}
            result => found.push((name, result)),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Remove segment `name` if it is stale (see [`SegmentInfo::is_stale`]):
/// every process that used it died without leaving. `Ok(false)` if it is
/// in use, or persisted (kept until [`remove`](crate::remove)). Safe
/// against a race with another process replacing or removing the same
/// segment.
///
/// ```
/// # let name = format!("shmring-doc-m-stale-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// assert!(!shmring::remove_if_stale(&name)?, "in use: left alone");
/// ring.persist(); // keep the name after the last user leaves...
/// drop(ring);
/// assert!(!shmring::remove_if_stale(&name)?, "persisted: not stale, kept");
/// shmring::remove(&name)?; // ...until someone removes it on purpose
/// # Ok::<(), shmring::Error>(())
/// ```
pub fn remove_if_stale(name: &str) -> Result<bool> {
    memory::remove_if_stale(&SegmentName::new(name)?, LOOK_INIT_WAIT)
}

//! Looking into segments without joining them: what `shmring ls`, `stat`
//! and `rm` show, and when a segment is stale.
//!
//! Inspection claims no role, takes no lock and does not record itself as
//! attached, so looking never changes what is seen (nor counts as using).
//! It never maps the file: it reads the first bytes with `pread`, and a
//! regular file that carries shmring's magic has its header copied the
//! same way into memory of its own (`platform::segment::Look`). A file in
//! /dev/shm may be another program's or another user's, which can shrink
//! it while we look, and touching a mapping of it would then raise
//! SIGBUS; a copy cannot fault. So looking is not trusting: any segment
//! this process may read is described, whoever owns it, with its owner
//! and mode. Everything read from a header is validated first, like any
//! open.

use std::mem::size_of;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::header::{offsets, MAGIC};
use crate::format::header::{Event, Header, HeaderInfo, SideStats};
use crate::format::record;
use crate::kind::{RingKind, TypeLayout};
use crate::lifecycle::memory::{self, header_of, ours, LOOK_INIT_WAIT};
use crate::lifecycle::options::OpenOptions;
use crate::peers::attach::{self, Attached};
use crate::peers::claims;
use crate::platform::name::SegmentName;
use crate::platform::segment::{Look, Owner, Segment};
use crate::platform::sync::{Counter, Ordering};
use crate::rings::broadcast::Policy;
use crate::services::request_reply::{
    lane_ring_name, reply_ring_name, ClientStats, ServerStats, MAX_SERVERS,
};

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
    /// The uid that owns the segment file.
    pub owner_uid: u32,
    /// The file's permission bits (0600 unless its creator asked for
    /// others).
    pub mode: u32,
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
    /// Values (bytes) taken by consumers so far; for a broadcast ring,
    /// the position of its slowest live subscriber (`written` if none).
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
    /// Consumer handles asleep on the futex now (or on their way to it or
    /// back), as the header counts them, capped at the number of consumer
    /// handles alive now ([`consumer`](Self::consumer) and
    /// [`consumer_handles`](Self::consumer_handles) whose holder runs).
    ///
    /// A consumer counts itself in before it sleeps and out when it
    /// wakes; one killed asleep cannot count itself out (which costs its
    /// peers nothing, see `wait.rs`), so the header's count can include
    /// dead sleepers. A handle sleeps in one call at a time, so live
    /// sleepers are never more than live handles, and the number is
    /// exact when no consumer died asleep, when no consumer is alive (0),
    /// and when every live consumer sleeps; otherwise it is an upper
    /// bound, too high by at most the consumers that died asleep.
    pub sleeping_consumers: u32,
    /// Producer handles asleep on the futex now, counted and capped as
    /// for consumers, by the live producer handles
    /// ([`producer`](Self::producer), [`producer_handles`](Self::producer_handles)).
    pub sleeping_producers: u32,
    /// Whether the name stays after the last user leaves
    /// ([`Spsc::persist`](crate::Spsc::persist)).
    pub persistent: bool,
    /// Whether its readers zero what they release, and its last user the
    /// data area ([`CreateOptions::zero_after_use`](crate::CreateOptions::zero_after_use)).
    pub zero_after_use: bool,
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
    /// A broadcast ring's subscribers: every entry held now, or kept for
    /// an identity (empty for the other kinds).
    pub subscribers: Vec<SubscriberInfo>,
    /// What the servers of a request-reply service's lane counted on it
    /// (zero for other rings; see [`inspect_service`]).
    pub server_counts: ServerStats,
    /// What a request-reply client counted on its reply ring (zero for
    /// other rings), and how many requests it waits for.
    pub client_counts: (ClientStats, u64),
}

/// One subscriber of a broadcast ring, as its entry says.
///
/// ```
/// use shmring::{Broadcast, Policy, SubscriberOptions};
/// # let name = format!("shmring-doc-subinfo-{}", std::process::id());
/// let ring = Broadcast::<u64>::create(&name, 4)?;
/// let mut tx = ring.producer()?;
/// let _rx = ring.subscriber_with(&SubscriberOptions::lossy().identity(9))?;
/// for v in 0..3 {
///     tx.try_push(v).unwrap();
/// }
/// let info = shmring::inspect(&name)?;
/// let s = &info.subscribers[0];
/// assert_eq!((s.identity, s.policy, s.lag), (Some(9), Some(Policy::Lossy), 3));
/// assert!(s.holder.is_some_and(|h| h.alive));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberInfo {
    /// Its entry in the table.
    pub entry: usize,
    /// The identity it resumes under, if named.
    pub identity: Option<u64>,
    /// Its policy now; `None` while it joins or after it left.
    pub policy: Option<Policy>,
    /// Whether the producer made it lossy (it was lossless).
    pub demoted: bool,
    /// The next position it reads.
    pub position: u64,
    /// Values published that it has not read.
    pub lag: u64,
    /// Values it missed (overwritten before it read them).
    pub missed: u64,
    /// Times the producer made it lossy.
    pub demotions: u64,
    /// How long a lossless subscriber may hold the producer up before it
    /// is made lossy ([`SubscriberOptions::demote_after`](crate::SubscriberOptions::demote_after));
    /// `None`: for ever.
    pub demote_after: Option<std::time::Duration>,
    /// How many values a lossless subscriber may fall behind before it
    /// is made lossy ([`SubscriberOptions::demote_after_lag`](crate::SubscriberOptions::demote_after_lag));
    /// `None`: only the capacity bounds it.
    pub demote_after_lag: Option<u64>,
    /// Its holder, live or dead; `None` for an identity's entry nobody
    /// holds.
    pub holder: Option<Attached>,
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

/// [`inspect`] with options: another wait for a creator still writing
/// the header (`init_timeout`). Looking is not trusting, so the owner
/// options do not apply: any segment this process may read is
/// described, with its owner and mode; one it may not is `NotReadable`,
/// naming them.
///
/// A file that is not a segment gives an error without being read past
/// its first bytes: not a regular file, `NotAFile`; shorter than a
/// header, `SegmentTooSmall`; without shmring's magic, `BadMagic` (all
/// zeros still after the wait, `NotReady`).
pub fn inspect_with(name: &str, opts: &OpenOptions) -> Result<SegmentInfo> {
    let name = SegmentName::new(name)?;
    let look = Look::open(&name, Owner::Anyone)?;
    ours(&look, &name, opts.init_timeout)?;
    copy_and_describe(&look, opts.init_timeout)
}

/// How much of a segment to copy: its header, and a broadcast ring's
/// subscriber table too (the kind word read with `pread` first).
fn snapshot_len(look: &Look) -> Result<u64> {
    let header = size_of::<Header>() as u64;
    let mut kind = [0u8; 4];
    let read = look.read_at(&mut kind, offsets::KIND as u64)?;
    let table = RingKind::Broadcast.table_len();
    let broadcast =
        read == 4 && RingKind::from_code(u32::from_le_bytes(kind)) == Some(RingKind::Broadcast);
    Ok(if broadcast && look.len()? >= header + table {
        header + table
    } else {
        header
    })
}

/// Read the header of a file that [`ours`] accepted, from a copy (see
/// `Look::snapshot`: its owner may shrink the file meanwhile, and a
/// mapping would then fault), copied again while its creator is still
/// writing it. Not attached, no lease: looking does not count as using.
fn copy_and_describe(look: &Look, init_wait: Duration) -> Result<SegmentInfo> {
    let start = std::time::Instant::now();
    loop {
        let segment = look.snapshot(snapshot_len(look)?)?;
        #[cfg(all(test, not(shmring_loom)))]
        tests::MAPPED.with(|m| m.borrow_mut().push(segment.name().as_str().to_owned()));
        match describe(&segment, look.owner_and_mode()) {
            Err(Error::NotReady { .. }) if start.elapsed() < init_wait => {
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(Error::NotReady { name, .. }) => {
                return Err(Error::NotReady {
                    name,
                    waited_ms: start.elapsed().as_millis() as u64,
                })
            }
            described => return described,
        }
    }
}

/// What the header copy in `segment` says, for a file of `owner_and_mode`.
fn describe(segment: &Segment, (owner_uid, mode): (u32, u32)) -> Result<SegmentInfo> {
    let header = header_of(segment);
    let name = segment.name().as_str();
    header.wait_ready(name, Duration::ZERO)?;
    let info: HeaderInfo = header.describe(segment.name().as_str(), segment.file_len())?;
    let capacity = match info.kind {
        RingKind::Bytes => info.layout.capacity.saturating_mul(record::ALIGN),
        _ => info.layout.capacity,
    };
    let role = |word| attach::holder(segment, word);
    let (producer, consumer) = (role(&header.producer_role), role(&header.consumer_role));
    let producer_handles = claims::holders(segment, &header.producer_claims);
    let consumer_handles = claims::holders(segment, &header.consumer_claims);
    let written = header.tail.load(Ordering::Relaxed);
    let subscribers = match info.kind {
        RingKind::Broadcast => subscribers(segment, written),
        _ => Vec::new(),
    };
    // A broadcast ring is read as far as its slowest live subscriber.
    let read = match info.kind {
        RingKind::Broadcast => subscribers
            .iter()
            .filter(|s| s.holder.is_some_and(|h| h.alive) && s.policy.is_some())
            .map(|s| s.position)
            .max_by_key(|&p| written.saturating_sub(p))
            .unwrap_or(written),
        _ => header.head.load(Ordering::Relaxed),
    };
    Ok(SegmentInfo {
        name: name.to_owned(),
        owner_uid,
        mode,
        kind: info.kind,
        elem: info.elem,
        capacity,
        segment_len: info.layout.total_len,
        creator_pid: info.creator_pid,
        created_unix_ns: info.created_unix_ns,
        written,
        read,
        producer,
        consumer,
        attached: attach::list(segment, &header.attached),
        in_use: segment.in_use(),
        sleeping_consumers: {
            // A broadcast ring's consumers are its subscribers.
            let holders: Vec<Attached> = subscribers.iter().filter_map(|s| s.holder).collect();
            let handles = match info.kind {
                RingKind::Broadcast => &holders,
                _ => &consumer_handles,
            };
            sleeping(&header.consumer_event, consumer, handles)
        },
        sleeping_producers: sleeping(&header.producer_event, producer, &producer_handles),
        persistent: header.is_persistent(),
        zero_after_use: info.zero_after_use(),
        producer_handles,
        consumer_handles,
        producers: counters(&header.producer_stats, &header.producer_event),
        consumers: counters(&header.consumer_stats, &header.consumer_event),
        repaired: header.recovery.repaired.load(Ordering::Relaxed),
        subscribers,
        server_counts: {
            let c = &header.consumer_stats.service.server;
            ServerStats {
                requests: get(&c.requests),
                replies: get(&c.replies),
                to_dead_clients: get(&c.to_dead_clients),
                dropped_full: get(&c.dropped_full),
                unanswered: get(&c.unanswered),
            }
        },
        client_counts: {
            let c = &header.consumer_stats.service.client;
            let counts = ClientStats {
                sent: get(&c.sent),
                replies: get(&c.replies),
                late: get(&c.late),
                retried: get(&c.retried),
            };
            (counts, get(&c.outstanding))
        },
    })
}

fn get(c: &Counter) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// The subscribers of a broadcast ring whose table `segment` holds (a
/// copy reaching past the header), given its producer's position.
fn subscribers(segment: &Segment, tail: u64) -> Vec<SubscriberInfo> {
    use crate::format::subscribers::{SubscriberTable, DEMOTED, LOSSLESS, LOSSY};
    let Some(table) = memory::table_of::<SubscriberTable>(segment) else {
        return Vec::new();
    };
    let r = Ordering::Relaxed;
    table
        .iter()
        .enumerate()
        .filter_map(|(entry, e)| {
            let holder = attach::holder(segment, &e.owner);
            let named = e.named.load(r) == 1;
            if holder.is_none() && !named {
                return None;
            }
            let policy = crate::format::subscribers::state(e.policy.load(r));
            let position = e.position.load(r);
            Some(SubscriberInfo {
                entry,
                identity: named.then(|| e.identity.load(r)),
                policy: match policy {
                    LOSSLESS => Some(Policy::Lossless),
                    LOSSY | DEMOTED => Some(Policy::Lossy),
                    _ => None,
                },
                demoted: policy == DEMOTED,
                position,
                lag: tail.saturating_sub(position),
                missed: e.missed.load(r),
                demotions: e.demotions.load(r),
                demote_after: match e.stall_ms.load(r) {
                    u64::MAX => None,
                    ms => Some(std::time::Duration::from_millis(ms)),
                },
                demote_after_lag: match e.max_lag.load(r) {
                    0 => None,
                    n => Some(n),
                },
                holder,
            })
        })
        .collect()
}

/// The sleepers `event` counts, capped by the live handles of its side
/// (see [`SegmentInfo::sleeping_consumers`]): whoever sleeps on an event
/// holds the role or a claim record of that side, one call at a time.
fn sleeping(event: &Event, role: Option<Attached>, handles: &[Attached]) -> u32 {
    let live = role.iter().chain(handles).filter(|h| h.alive).count();
    let counted = event.sleepers.load(Ordering::Relaxed);
    counted.min(u32::try_from(live).unwrap_or(u32::MAX))
}

fn counters(stats: &SideStats, event: &Event) -> SideCounters {
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
/// Not a shmring segment: anything but a regular file (never opened for
/// reading, so a FIFO cannot make the listing wait), and a file shorter
/// than a header or whose first bytes, read with `pread`, are not
/// shmring's magic (never mapped, so another program that shrinks its
/// file meanwhile cannot make the listing die of SIGBUS). A file whose
/// magic is still zero is left out without waiting: shmring names a
/// segment only once its header is written (where the shm directory has
/// no `O_TMPFILE`, a segment being created is shown by the next listing).
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
        let Ok(segment) = SegmentName::new(&name) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match listed(&segment) {
            // Not a segment: gone since the scan, replaced by something
            // else than a regular file, too short, or someone else's bytes.
            Err(
                Error::NotFound { .. }
                | Error::NotAFile { .. }
                | Error::PermissionDenied { .. }
                | Error::BadMagic { .. }
                | Error::SegmentTooSmall { .. },
            ) => {}
            result => found.push((name, result)),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// A file found by [`list`], inspected without waiting for a zero magic.
fn listed(name: &SegmentName) -> Result<SegmentInfo> {
    let look = Look::open(name, Owner::Anyone)?;
    ours(&look, name, Duration::ZERO).map_err(|e| match e {
        Error::NotReady { .. } => Error::BadMagic {
            name: name.as_str().to_owned(),
            found: 0,
        },
        e => e,
    })?;
    copy_and_describe(&look, LOOK_INIT_WAIT)
}

/// Remove segment `name`, in use or not: processes that have it mapped
/// keep their mappings, and the memory goes with the last of them; only
/// the name goes now (`shmring rm --force`). See [`remove_if_stale`] to
/// remove only what nobody uses.
///
/// Only a shmring segment is removed, of any format version: a name that
/// is not a regular file is `NotAFile`; a file that does not start with
/// shmring's magic (read with `pread`, never mapped) is `BadMagic`, or
/// `SegmentTooSmall` when shorter than the magic; one whose magic is
/// still zero after a short wait (a creator that died before writing its
/// header, or another program's empty file) is `NotReady`. The name is
/// unlinked only if it still names the file checked. A ring created with
/// [`zero_after_use`](crate::CreateOptions::zero_after_use) has its data
/// zeroed first if nobody uses it, else by its last user as it leaves.
///
/// ```
/// use shmring::Error;
/// # let name = format!("shmring-doc-m-remove-{}", std::process::id());
/// let ring = shmring::Spsc::<u64>::create(&name, 8)?;
/// ring.persist();
/// drop(ring);
/// shmring::remove(&name)?;
/// assert!(matches!(shmring::Spsc::<u64>::open(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
pub fn remove(name: &str) -> Result<()> {
    let name = SegmentName::new(name)?;
    let look = Look::open(&name, Owner::Anyone)?;
    match memory::read_prefix(&look)? {
        Some((MAGIC, _)) => {}
        Some((0, _)) => ours(&look, &name, LOOK_INIT_WAIT)?,
        Some((found, _)) => {
            return Err(Error::BadMagic {
                name: name.as_str().to_owned(),
                found,
            })
        }
        None => {
            return Err(Error::SegmentTooSmall {
                name: name.as_str().to_owned(),
                len: look.len()?,
                needed: size_of::<Header>() as u64,
            })
        }
    }
    // A ring that asks for its data to be zeroed is, when nobody uses
    // it; a header this library cannot read is removed as it is.
    let zero_from = look
        .snapshot(size_of::<Header>() as u64)
        .ok()
        .and_then(|seg| header_of(&seg).describe(name.as_str(), seg.file_len()).ok())
        .and_then(|info| memory::zero_from(&info));
    look.unlink(zero_from)
}

/// Remove segment `name` if it is stale (see [`SegmentInfo::is_stale`]):
/// every process that used it died without leaving. `Ok(false)` if it is
/// in use, or persisted (kept until [`remove`](crate::remove)). Safe
/// against a race with another process replacing or removing the same
/// segment.
///
/// The kernel's word on staleness does not depend on the header's
/// format: a segment left by an older shmring whose users also hold the
/// kernel's locks (format version 5 and later) is removed the same way,
/// unless it was marked persistent; for a format this library cannot
/// judge (older, or newer) the answer is `VersionMismatch`, and only
/// [`remove`](crate::remove) (`shmring rm --force`) removes it. A file
/// that is not a shmring segment is never mapped (see [`list`]).
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
    memory::remove_if_stale_any(&SegmentName::new(name)?)
}

#[cfg(all(test, not(shmring_loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// The names of the files whose header this thread's inspections
        /// copied (`Look::snapshot`).
        pub(super) static MAPPED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// Whether this thread's inspections mapped the file `name`.
    fn mapped(name: &str) -> bool {
        MAPPED.with(|m| m.borrow().iter().any(|n| n == name))
    }

    /// A file planted in /dev/shm, removed on drop.
    struct Planted(String);

    impl Planted {
        fn new(tag: &str, bytes: &[u8]) -> Planted {
            let name = format!("shmring-test-{}-unit-{tag}", std::process::id());
            let planted = Planted(name);
            std::fs::write(format!("/dev/shm/{}", planted.0), bytes).unwrap();
            planted
        }
    }

    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
        }
    }

    /// Another program's file can shrink at any time: inspection reads a
    /// file's first bytes with `pread`, and copies the header only of a
    /// file that carries shmring's magic (`MAPPED` records those copies).
    /// Garbage and zeros of a header's size are "not a ring" without ever
    /// being read further; a ring's header is copied.
    #[test]
    fn a_file_without_shmring_magic_is_never_mapped() {
        let len = size_of::<Header>() * 2;
        let garbage = Planted::new("garbage", &vec![0x42; len]);
        let zeros = Planted::new("zeros", &vec![0; len]);
        assert!(matches!(inspect(&garbage.0), Err(Error::BadMagic { .. })));
        assert!(matches!(inspect(&zeros.0), Err(Error::NotReady { .. })));
        assert!(
            !mapped(&garbage.0) && !mapped(&zeros.0),
            "a file without the magic was mapped"
        );
        // Listing leaves both out, and maps neither.
        let all = list().unwrap();
        assert!(all.iter().all(|(n, _)| *n != garbage.0 && *n != zeros.0));
        assert!(
            !mapped(&garbage.0) && !mapped(&zeros.0),
            "a file without the magic was mapped"
        );
        assert!(!matches!(
            remove_if_stale(&garbage.0),
            Ok(_) | Err(Error::VersionMismatch { .. })
        ));
        assert!(!mapped(&garbage.0), "a file without the magic was mapped");

        let name = format!("shmring-test-{}-unit-ring", std::process::id());
        let _ring = crate::Spsc::<u64>::create(&name, 8).unwrap();
        inspect(&name).unwrap();
        assert!(mapped(&name), "a ring is mapped");
    }
}

/// A request-reply service at one moment, as its rings' headers say: its
/// lanes with their servers' counts, and the reply rings of its clients
/// with theirs. Looked at without joining, like [`inspect`].
///
/// ```
/// use std::time::Duration;
/// use shmring::request_reply::Service;
/// # let name = format!("shmring-doc-inspect-service-{}", std::process::id());
/// let service = Service::open_or_create(&name, 4096)?;
/// let (mut server, mut client) = (service.server()?, service.client(4096)?);
/// client.send_timeout(b"a", Duration::ZERO)?;
/// client.send_timeout(b"b", Duration::ZERO)?;
/// server.recv_timeout(Duration::ZERO)?.reply_last(b"A")?;
/// let info = shmring::inspect_service(&name)?;
/// assert_eq!((info.servers(), info.clients.len(), info.dead_clients()), (1, 1, 0));
/// assert_eq!((info.server_totals().replies, info.outstanding()), (1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// The service's name (its lane 0's).
    pub name: String,
    /// Its lanes, by number, each with what its servers counted
    /// ([`SegmentInfo::server_counts`]); its server is the consumer.
    pub lanes: Vec<(usize, SegmentInfo)>,
    /// Its clients' reply rings, by client ID, each with what its client
    /// counted ([`SegmentInfo::client_counts`]); the client is the
    /// consumer. Only the clients that are there now: a client that went
    /// took its ring and its counts.
    pub clients: Vec<(u64, SegmentInfo)>,
}

impl ServiceInfo {
    /// Lanes whose server lives.
    pub fn servers(&self) -> usize {
        self.lanes.iter().filter(|(_, l)| holds(l)).count()
    }

    /// Clients whose reply ring is still there but whose process is gone
    /// (its servers let the ring go when they next write to it, or sweep).
    pub fn dead_clients(&self) -> usize {
        self.clients.iter().filter(|(_, c)| !holds(c)).count()
    }

    /// Requests that live clients wait for.
    pub fn outstanding(&self) -> u64 {
        self.clients
            .iter()
            .filter(|(_, c)| holds(c))
            .fold(0u64, |sum, (_, c)| sum.wrapping_add(c.client_counts.1))
    }

    /// What every lane's servers counted, summed.
    pub fn server_totals(&self) -> ServerStats {
        self.lanes
            .iter()
            .fold(ServerStats::default(), |mut t, (_, l)| {
                // Wrapping: whatever a header holds is summed.
                let c = &l.server_counts;
                t.requests = t.requests.wrapping_add(c.requests);
                t.replies = t.replies.wrapping_add(c.replies);
                t.to_dead_clients = t.to_dead_clients.wrapping_add(c.to_dead_clients);
                t.dropped_full = t.dropped_full.wrapping_add(c.dropped_full);
                t.unanswered = t.unanswered.wrapping_add(c.unanswered);
                t
            })
    }

    /// What the clients there now counted, summed.
    pub fn client_totals(&self) -> ClientStats {
        self.clients
            .iter()
            .fold(ClientStats::default(), |mut t, (_, c)| {
                let (c, _) = &c.client_counts;
                t.sent = t.sent.wrapping_add(c.sent);
                t.replies = t.replies.wrapping_add(c.replies);
                t.late = t.late.wrapping_add(c.late);
                t.retried = t.retried.wrapping_add(c.retried);
                t
            })
    }
}

/// Whether a live process holds `ring`'s consumer role.
fn holds(ring: &SegmentInfo) -> bool {
    ring.consumer.is_some_and(|c| c.alive)
}

/// Look at request-reply service `name`: its lanes and its clients' reply
/// rings (see [`ServiceInfo`]). [`Error::NotFound`] if it has no lane 0;
/// a lane or reply ring that cannot be read is left out.
pub fn inspect_service(name: &str) -> Result<ServiceInfo> {
    let first = inspect(name)?;
    if first.kind != RingKind::Bytes {
        return Err(Error::KindMismatch {
            name: name.to_owned(),
            found: first.kind.to_string(),
            expected: RingKind::Bytes,
        });
    }
    let mut info = ServiceInfo {
        name: name.to_owned(),
        lanes: vec![(0, first)],
        clients: Vec::new(),
    };
    let reply_prefix = reply_ring_name(name, 0);
    let reply_prefix = &reply_prefix[..reply_prefix.len() - 16];
    for (listed, seen) in list()? {
        let Ok(seen) = seen else { continue };
        if let Some(id) = listed
            .strip_prefix(reply_prefix)
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        {
            info.clients.push((id, seen));
        } else if let Some(lane) =
            (1..MAX_SERVERS).find(|&lane| listed == lane_ring_name(name, lane))
        {
            info.lanes.push((lane, seen));
        }
    }
    info.lanes.sort_by_key(|(lane, _)| *lane);
    info.clients.sort_by_key(|(id, _)| *id);
    Ok(info)
}

//! One ring as the command shows it: plain data, with units spelled out,
//! serialized as JSON by `ls --json` and `stat --json` and read by the
//! Prometheus exposition (`metrics.rs`). The library's types stay free of
//! serde; this is the command's own vocabulary for them.

use serde::Serialize;
use shmring::{Attached, RingKind, SegmentInfo, SideCounters};

/// A ring, at one moment.
#[derive(Serialize, Debug, Clone)]
pub struct RingView {
    pub name: String,
    /// The user that owns the segment file (its name, or the uid when
    /// the system knows no name for it), the uid, and the file's mode.
    pub owner: String,
    pub owner_uid: u32,
    /// Octal, as `ls -l` and `chmod` write it: "0600".
    pub mode: String,
    /// `spsc`, `mpmc` or `bytes`.
    pub kind: String,
    pub element: ElementView,
    /// What `capacity`, `written`, `read` and `fill` count: `values` for
    /// typed rings, `bytes` (framing included) for byte rings.
    pub unit: &'static str,
    pub capacity: u64,
    pub written: u64,
    pub read: u64,
    pub fill: u64,
    /// The same four in bytes, for every kind (values times the element
    /// size for typed rings), so that one unit serves every ring.
    pub capacity_bytes: u64,
    pub written_bytes: u64,
    pub read_bytes: u64,
    pub fill_bytes: u64,
    pub segment_bytes: u64,
    pub creator_pid: u32,
    pub created_unix_ns: u64,
    pub producer: Option<HolderView>,
    pub consumer: Option<HolderView>,
    /// MPMC and byte-ring handles that hold a claim record.
    pub producer_handles: Vec<HolderView>,
    pub consumer_handles: Vec<HolderView>,
    pub attached: Vec<HolderView>,
    pub in_use: bool,
    pub stale: bool,
    pub persistent: bool,
    pub zero_after_use: bool,
    pub sleeping_producers: u32,
    pub sleeping_consumers: u32,
    pub producers: CountersView,
    pub consumers: CountersView,
    pub repaired: u64,
    /// A broadcast ring's subscribers (empty for the other kinds).
    pub subscribers: Vec<SubscriberView>,
    /// The shmring-bridge forwarding this ring to Zenoh, if any (its state
    /// file at /dev/shm/NAME.bridge-out, or where its locator says).
    pub bridge_out: Option<BridgeOutView>,
    /// The shmring-bridge writing Zenoh samples into this ring, if any
    /// (/dev/shm/NAME.bridge-in, or where its locator says).
    pub bridge_in: Option<BridgeInView>,
    /// The request-reply service this ring names, if it is one (`stat`
    /// only: finding one looks at every segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceView>,
    /// Requests a request-reply server counted on this ring (a service's
    /// lane): how the metrics find services.
    #[serde(skip)]
    pub served_requests: u64,
}

/// One subscriber of a broadcast ring.
#[derive(Serialize, Debug, Clone)]
pub struct SubscriberView {
    pub entry: usize,
    pub identity: Option<u64>,
    /// "lossless", "lossy", or null while it joins or after it left.
    pub policy: Option<&'static str>,
    pub demoted: bool,
    pub position: u64,
    pub lag: u64,
    pub missed: u64,
    pub demotions: u64,
    /// Milliseconds a lossless subscriber may hold the producer up before
    /// it is made lossy; null: for ever.
    pub demote_after_ms: Option<u64>,
    /// Values a lossless subscriber may fall behind before it is made
    /// lossy; null: only the capacity bounds it.
    pub demote_after_lag: Option<u64>,
    pub holder: Option<HolderView>,
}

impl From<&shmring::SubscriberInfo> for SubscriberView {
    fn from(s: &shmring::SubscriberInfo) -> Self {
        SubscriberView {
            entry: s.entry,
            identity: s.identity,
            policy: s.policy.map(|p| match p {
                shmring::Policy::Lossless => "lossless",
                _ => "lossy",
            }),
            demoted: s.demoted,
            position: s.position,
            lag: s.lag,
            missed: s.missed,
            demotions: s.demotions,
            demote_after_ms: s.demote_after.map(|d| d.as_millis() as u64),
            demote_after_lag: s.demote_after_lag,
            holder: s.holder.map(HolderView::from),
        }
    }
}

/// An outbound bridge's counters, from its state file.
#[derive(Serialize, Debug, Clone)]
pub struct BridgeOutView {
    /// The last bridge process on the file (it may have exited).
    pub pid: u32,
    /// Hexadecimal (a u64 loses digits as a JSON number in many readers).
    pub source: String,
    pub next_seq: u64,
    pub sent_messages: u64,
    pub sent_bytes: u64,
    pub restarts: u64,
}

/// An inbound bridge's counters over every source it heard, from its
/// state file.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct BridgeInView {
    pub pid: u32,
    pub sources: usize,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub dropped_full: u64,
    pub unnumbered: u64,
    /// Samples of the wrong size for a typed ring: dropped.
    pub malformed: u64,
    pub restarts: u64,
}

/// The bridges' state files for ring `name`: at the default paths, or
/// where a bridge started with `--state` left a locator saying (see
/// `shmring_bridge_state::locate`). One that cannot be found or read is
/// left out: the ring's view does not fail for it.
fn bridges(name: &str) -> (Option<BridgeOutView>, Option<BridgeInView>) {
    use shmring_bridge_state::{locate, read, Direction, Snapshot};
    let state = |direction| match locate(name, direction) {
        Ok(Some(path)) => read(&path),
        _ => Ok(None),
    };
    let out = match state(Direction::Out) {
        Ok(Some(Snapshot::Out(o))) => Some(BridgeOutView {
            pid: o.pid,
            source: format!("{:016x}", o.source),
            next_seq: o.next_seq,
            sent_messages: o.sent,
            sent_bytes: o.bytes,
            restarts: o.restarts,
        }),
        _ => None,
    };
    let inb = match state(Direction::In) {
        Ok(Some(Snapshot::In(i))) => {
            let t = i.totals();
            Some(BridgeInView {
                pid: i.pid,
                sources: i.sources.len(),
                delivered: t.delivered,
                lost: t.lost,
                duplicates: t.duplicates,
                reordered: t.reordered,
                dropped_full: t.dropped_full,
                unnumbered: i.unnumbered,
                malformed: i.malformed,
                restarts: i.restarts,
            })
        }
        _ => None,
    };
    (out, inb)
}

/// The element type as the header records it.
#[derive(Serialize, Debug, Clone)]
pub struct ElementView {
    pub schema: String,
    pub schema_version: u32,
    pub size: u32,
    pub align: u32,
}

/// A process holding a role, a claim record or a mapping.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct HolderView {
    /// In the holder's own pid namespace.
    pub pid: u32,
    /// Whether the kernel still holds its lock: the process runs.
    pub alive: bool,
}

/// One side's counters since the ring was created.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct CountersView {
    pub blocked: u64,
    pub sleeps: u64,
    pub wakes: u64,
    pub timeouts: u64,
    pub takeovers: u64,
}

impl From<Attached> for HolderView {
    fn from(a: Attached) -> Self {
        HolderView {
            pid: a.pid,
            alive: a.alive,
        }
    }
}

impl From<SideCounters> for CountersView {
    fn from(c: SideCounters) -> Self {
        CountersView {
            blocked: c.blocked,
            sleeps: c.sleeps,
            wakes: c.wakes,
            timeouts: c.timeouts,
            takeovers: c.takeovers,
        }
    }
}

fn holders(list: &[Attached]) -> Vec<HolderView> {
    list.iter().copied().map(HolderView::from).collect()
}

impl From<&SegmentInfo> for RingView {
    fn from(i: &SegmentInfo) -> Self {
        let bytes = i.kind == RingKind::Bytes;
        // Bytes per counted unit: 1 for byte rings, the element for others.
        let per = if bytes { 1 } else { u64::from(i.elem.size) };
        let (bridge_out, bridge_in) = bridges(&i.name);
        RingView {
            name: i.name.clone(),
            owner: user_name(i.owner_uid),
            owner_uid: i.owner_uid,
            mode: format!("{:04o}", i.mode),
            kind: i.kind.to_string(),
            element: ElementView {
                schema: i.elem.schema.name().to_owned(),
                schema_version: i.elem.schema.version(),
                size: i.elem.size,
                align: i.elem.align,
            },
            unit: if bytes { "bytes" } else { "values" },
            capacity: i.capacity,
            written: i.written,
            read: i.read,
            fill: i.fill(),
            capacity_bytes: i.capacity.saturating_mul(per),
            written_bytes: i.written.wrapping_mul(per),
            read_bytes: i.read.wrapping_mul(per),
            fill_bytes: i.fill().saturating_mul(per),
            segment_bytes: i.segment_len,
            creator_pid: i.creator_pid,
            created_unix_ns: i.created_unix_ns,
            producer: i.producer.map(HolderView::from),
            consumer: i.consumer.map(HolderView::from),
            producer_handles: holders(&i.producer_handles),
            consumer_handles: holders(&i.consumer_handles),
            attached: holders(&i.attached),
            in_use: i.in_use,
            stale: i.is_stale(),
            persistent: i.persistent,
            zero_after_use: i.zero_after_use,
            sleeping_producers: i.sleeping_producers,
            sleeping_consumers: i.sleeping_consumers,
            producers: i.producers.into(),
            consumers: i.consumers.into(),
            repaired: i.repaired,
            subscribers: i.subscribers.iter().map(SubscriberView::from).collect(),
            bridge_out,
            bridge_in,
            service: None,
            served_requests: i.server_counts.requests,
        }
    }
}

/// A segment `ls --json` could not read, why, and what removes it.
#[derive(Serialize, Debug)]
pub struct Unreadable {
    pub name: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// What an operator can do about segment `name` that this command cannot
/// read because of `e`, if there is something to say: a segment of
/// another format version is removed by `rm --force` (or `rm --stale`,
/// for a version whose users the kernel's locks tell).
pub fn remedy(name: &str, e: &shmring::Error) -> Option<String> {
    match e {
        shmring::Error::VersionMismatch { .. } => Some(format!(
            "`shmring rm --force {name}` removes it (processes using it keep their mappings; \
             only the name goes); `shmring rm --stale` removes it once no process uses it, \
             unless its version is one whose users this shmring cannot tell"
        )),
        _ => None,
    }
}

/// One line of `ls --json`: a ring, or a segment that cannot be read.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Listed {
    Ring(Box<RingView>),
    Unreadable(Unreadable),
}

/// Every segment in /dev/shm, as `ls --json` lists them.
pub fn list() -> shmring::Result<Vec<Listed>> {
    Ok(shmring::list()?
        .into_iter()
        .map(|(name, info)| match info {
            Ok(i) => Listed::Ring(Box::new(RingView::from(&i))),
            Err(e) => Listed::Unreadable(Unreadable {
                remedy: remedy(&name, &e),
                name,
                error: e.to_string(),
            }),
        })
        .collect())
}

/// The name of user `uid`, or the uid itself when the system has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// A request-reply service (`shmring::request_reply`), at one moment: its
/// lanes and servers, its clients, and what each side counted.
#[derive(Serialize, Debug, Clone)]
pub struct ServiceView {
    pub name: String,
    /// Lanes whose server lives.
    pub servers: usize,
    pub lanes: Vec<LaneView>,
    /// Clients whose reply ring is there now, and of those, the ones
    /// whose process is gone (their rings go when a server next writes
    /// to them, or sweeps).
    pub clients: usize,
    pub dead_clients: usize,
    /// Requests that live clients wait for.
    pub outstanding: u64,
    /// Summed over lanes; each lane's servers count on from the last.
    pub requests: u64,
    pub replies: u64,
    pub unanswered: u64,
    pub dropped_to_dead_clients: u64,
    pub dropped_full: u64,
    /// Summed over the clients there now (a client that went took its
    /// counts).
    pub client_sent: u64,
    pub client_replies: u64,
    pub client_late: u64,
    pub client_retried: u64,
}

/// One lane of a service: its request ring's server and counts.
#[derive(Serialize, Debug, Clone)]
pub struct LaneView {
    pub lane: usize,
    pub ring: String,
    pub server: Option<HolderView>,
    /// Bytes of requests waiting.
    pub waiting_bytes: u64,
    /// What its servers counted (each counting on from the last; from
    /// zero again if the lane's ring went and was made again).
    pub requests: u64,
    pub replies: u64,
    pub unanswered: u64,
    pub dropped_to_dead_clients: u64,
    pub dropped_full: u64,
}

/// Service `name`, if it is one: a byte ring with clients, lanes after
/// it, or requests served.
pub fn service(name: &str) -> Option<ServiceView> {
    // A lane after 0, or a client's reply ring, is part of a service, not
    // one: its own table says what it holds.
    if part_of_service(name).is_some() {
        return None;
    }
    let info = shmring::inspect_service(name).ok()?;
    let servers = info.server_totals();
    if info.clients.is_empty() && info.lanes.len() < 2 && servers.requests == 0 {
        return None;
    }
    let clients = info.client_totals();
    Some(ServiceView {
        name: info.name.clone(),
        servers: info.servers(),
        lanes: info
            .lanes
            .iter()
            .map(|(lane, ring)| LaneView {
                lane: *lane,
                ring: ring.name.clone(),
                server: ring.consumer.map(HolderView::from),
                waiting_bytes: ring.fill(),
                requests: ring.server_counts.requests,
                replies: ring.server_counts.replies,
                unanswered: ring.server_counts.unanswered,
                dropped_to_dead_clients: ring.server_counts.to_dead_clients,
                dropped_full: ring.server_counts.dropped_full,
            })
            .collect(),
        clients: info.clients.len(),
        dead_clients: info.dead_clients(),
        outstanding: info.outstanding(),
        requests: servers.requests,
        replies: servers.replies,
        unanswered: servers.unanswered,
        dropped_to_dead_clients: servers.to_dead_clients,
        dropped_full: servers.dropped_full,
        client_sent: clients.sent,
        client_replies: clients.replies,
        client_late: clients.late,
        client_retried: clients.retried,
    })
}

/// The service a lane after 0 or a client's reply ring belongs to, by
/// its name (`NAME.lane-N`, `NAME.reply-<16 hex digits>`).
fn part_of_service(name: &str) -> Option<&str> {
    let reply = name
        .rsplit_once(".reply-")
        .filter(|(_, id)| id.len() == 16 && u64::from_str_radix(id, 16).is_ok());
    let lane = name
        .rsplit_once(".lane-")
        .filter(|(_, n)| n.parse::<usize>().is_ok());
    reply.or(lane).map(|(service, _)| service)
}

/// The services among `rings`: the names their lanes after lane 0 and
/// their clients' reply rings point to, and lanes 0 that served requests.
pub fn services(rings: &[RingView]) -> Vec<ServiceView> {
    let names: std::collections::BTreeSet<&str> = rings
        .iter()
        .filter(|r| r.kind == "bytes")
        .filter_map(|r| match part_of_service(&r.name) {
            Some(service) => Some(service),
            None => (r.served_requests > 0).then_some(r.name.as_str()),
        })
        .collect();
    names.into_iter().filter_map(service).collect()
}

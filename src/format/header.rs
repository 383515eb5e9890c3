//! The `#[repr(C)]` header at offset 0 of every segment, and the rules for
//! publishing it (creator) and trusting it (opener).
//!
//! Every field is an atomic, even the ones that never change after
//! creation: another process may be writing them at any time (a creator
//! still initializing, or a hostile peer), and a racing non-atomic read would
//! be undefined behaviour. The creator writes every field, then stores
//! `state = READY` with Release; an opener loads `state` with Acquire and
//! only then reads and validates the rest. Nothing read from a header is used
//! before [`Header::validate`] has checked it. Two kinds of fields change
//! after that, and no protocol reads them: `flags` (a user may mark the
//! name persistent) and the counters that operators read (`SideStats` and
//! the events' `sleeps`/`wakes`), bumped Relaxed on paths that already
//! failed or wait. One word among the counters is not a counter: a
//! request-reply client's `reply_format`, stored once before its ring is
//! used and read by servers (see `ServiceCounters`).

use std::mem::{offset_of, size_of};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::{Error, Result};
use crate::format::layout::SegmentLayout;
use crate::kind::{RingKind, Role, Schema, TypeLayout, SCHEMA_NAME_LEN};
use crate::peers::attach::AttachTable;
#[cfg(shmring_loom)]
use crate::peers::claims::ClaimRecord;
use crate::peers::claims::{ClaimTable, Recovery};
use crate::platform::sync::{AtomicU32, AtomicU64, Counter, Ordering};

/// `b"SHMRING\0"` read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMRING\0");
/// Bumped on any change to the layout or meaning of shared memory.
pub(crate) const VERSION: u32 = 7;
/// Format [`VERSION`] with a `features` word whose bits every user must
/// honour. A ring that asks for a feature is written with this version,
/// so that a peer built before features existed refuses it
/// (`VersionMismatch`) rather than silently ignoring what it asked; a
/// ring asking none is written as [`VERSION`], which such peers still
/// open. (Version 7 wrote the word as zero.)
pub(crate) const FEATURES_VERSION: u32 = 8;

/// `features` bit: each value or message is zeroed once its reader
/// releases it, and the data area before the segment goes (see
/// `CreateOptions::zero_after_use`).
pub(crate) const ZERO_AFTER_USE: u32 = 1;
/// The `features` bits this library honours.
const KNOWN_FEATURES: u32 = ZERO_AFTER_USE;

/// The zero a fresh segment is filled with: the creator is still writing.
const INITIALIZING: u32 = 0;
const READY: u32 = 1;

/// `flags` bit: the name stays when the last user leaves (see `platform/segment/`).
const PERSISTENT: u32 = 1;

/// Fields written once by the creator, before `state` turns `READY`, and
/// `flags`, which any user may set at any time.
#[repr(C)]
pub(crate) struct Meta {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    kind: AtomicU32,
    elem_size: AtomicU32,
    elem_align: AtomicU32,
    creator_pid: AtomicU32,
    type_fingerprint: AtomicU64,
    capacity: AtomicU64,
    slot_size: AtomicU64,
    data_offset: AtomicU64,
    segment_len: AtomicU64,
    created_unix_ns: AtomicU64,
    /// The element type's schema version, name length and name (plain
    /// bytes, packed little-endian into the words; see `kind::Schema`).
    schema_version: AtomicU32,
    schema_len: AtomicU32,
    schema_name: [AtomicU64; SCHEMA_WORDS],
    /// [`PERSISTENT`]; the other bits are zero.
    flags: AtomicU32,
    /// Bits such as [`ZERO_AFTER_USE`], set by the creator; zero in
    /// format [`VERSION`].
    features: AtomicU32,
}

/// Words holding a schema name.
const SCHEMA_WORDS: usize = SCHEMA_NAME_LEN / 8;

/// A futex word, a flag that someone may sleep on it, and how many do;
/// see `wait.rs`.
#[repr(C)]
pub(crate) struct Event {
    /// Bumped by the waking side; sleepers wait for it to change.
    pub(crate) seq: AtomicU32,
    /// How many waiters are between announcing themselves and waking up:
    /// for `stat` only, since a waiter that dies asleep stays counted
    /// (inspection reports it capped by the side's live handles, see
    /// `SegmentInfo::sleeping_consumers`).
    pub(crate) sleepers: AtomicU32,
    /// Set by every waiter before it may sleep, cleared by the notifier that
    /// wakes them all: what a notifier reads. A waiter that dies asleep
    /// costs the next notifier one wake, not every notifier one each.
    pub(crate) wanted: AtomicU32,
    /// Non-zero once the other side closed its end: the sleepers on this
    /// event get no more than what is already published (see `wait.rs`).
    pub(crate) closed: AtomicU32,
    /// Futex waits by this side so far. On this line because the way to
    /// sleep writes it anyway (`sleepers`, `wanted`): free to count.
    pub(crate) sleeps: Counter,
    /// Futex wakes issued to this side, on the line the waker writes.
    pub(crate) wakes: Counter,
}

/// One side's counters that its slow paths bump, on a line of their own:
/// a producer that finds the ring full again and again must not evict a
/// line the consumer reads on every pop. Relaxed; for `stat`/`metrics`.
#[repr(C)]
pub(crate) struct SideStats {
    /// Producer: calls that found the ring full (back-pressure). Consumer:
    /// blocking calls that found it empty and had to wait (a `try_pop`
    /// that finds nothing is a poll, not counted).
    pub(crate) blocked: Counter,
    /// Blocking calls that ended in `Timeout` or `Stalled`.
    pub(crate) timeouts: Counter,
    /// Roles taken over from, and claim records reclaimed from, dead
    /// handles of this side.
    pub(crate) takeovers: Counter,
    /// What a request-reply service counts on this ring, for operators
    /// (`services/request_reply.rs`); zero on other rings. In what was
    /// the line's padding (zero in every ring, ignored by builds before
    /// it): no format change.
    pub(crate) service: ServiceCounters,
}

/// A request-reply service's counters in one of its rings' consumer line:
/// a lane's server writes `server`, a reply ring's client writes `client`
/// (each its own ring's consumer: one writer, with plain stores of its
/// own counts). Relaxed; for `stat`/`metrics`. And, not a counter, the
/// reply header a client reads, which servers read to answer it.
#[repr(C)]
pub(crate) struct ServiceCounters {
    pub(crate) server: ServerCounters,
    pub(crate) client: ClientCounters,
    /// The reply header a reply ring's client reads: 0 (a build before
    /// it, zero padding) the 16-byte header only, 1 the 8-byte one too,
    /// which a server then writes. Stored once by the client before its
    /// first request; never changes.
    pub(crate) reply_format: AtomicU64,
}

/// A server's counts (as `request_reply::ServerStats` names them).
#[repr(C)]
pub(crate) struct ServerCounters {
    pub(crate) requests: Counter,
    pub(crate) replies: Counter,
    pub(crate) to_dead_clients: Counter,
    pub(crate) dropped_full: Counter,
    pub(crate) unanswered: Counter,
}

/// A client's counts (as `request_reply::ClientStats` names them), and
/// how many requests it waits for.
#[repr(C)]
pub(crate) struct ClientCounters {
    pub(crate) sent: Counter,
    pub(crate) replies: Counter,
    pub(crate) late: Counter,
    pub(crate) retried: Counter,
    pub(crate) outstanding: Counter,
}

/// The segment header. Each group of fields written by a different party
/// sits on its own 128-byte line (two 64-byte lines, because Intel's
/// adjacent-line prefetcher pulls pairs) so that no side's writes evict a
/// line the other side is reading.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) meta: CachePadded<Meta>,
    /// Claim word of the producer role (0 = free); see `role.rs`.
    pub(crate) producer_role: CachePadded<AtomicU64>,
    /// Claim word of the consumer role.
    pub(crate) consumer_role: CachePadded<AtomicU64>,
    /// Positions pushed so far. Written only by the producer, after the slot
    /// itself is published; a statistic and a recovery hint, never trusted
    /// for bounds.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Positions popped so far, written only by the consumer.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Where consumers sleep when the ring is empty.
    pub(crate) consumer_event: CachePadded<Event>,
    /// Where producers sleep when the ring is full.
    pub(crate) producer_event: CachePadded<Event>,
    /// Processes that have the segment mapped; see `attach.rs`.
    pub(crate) attached: CachePadded<AttachTable>,
    /// The repair lock and its flags; see `peers/claims`.
    pub(crate) recovery: CachePadded<Recovery>,
    /// Which producer handle may hold which positions (MPMC).
    pub(crate) producer_claims: ClaimTable,
    /// Which consumer handle may hold which positions (MPMC).
    pub(crate) consumer_claims: ClaimTable,
    /// The producers' counters.
    pub(crate) producer_stats: CachePadded<SideStats>,
    /// The consumers' counters.
    pub(crate) consumer_stats: CachePadded<SideStats>,
}

// The shared layout is a file format: pin every offset so that a change is a
// compile error here rather than silent corruption between two builds.
#[cfg(not(shmring_loom))]
mod layout_asserts {
    use super::*;
    use static_assertions::{const_assert, const_assert_eq};
    const_assert_eq!(offset_of!(Meta, magic), 0);
    const_assert_eq!(offset_of!(Meta, version), 8);
    const_assert_eq!(offset_of!(Meta, state), 12);
    const_assert_eq!(offset_of!(Meta, kind), 16);
    const_assert_eq!(offset_of!(Meta, elem_size), 20);
    const_assert_eq!(offset_of!(Meta, elem_align), 24);
    const_assert_eq!(offset_of!(Meta, creator_pid), 28);
    const_assert_eq!(offset_of!(Meta, type_fingerprint), 32);
    const_assert_eq!(offset_of!(Meta, capacity), 40);
    const_assert_eq!(offset_of!(Meta, slot_size), 48);
    const_assert_eq!(offset_of!(Meta, data_offset), 56);
    const_assert_eq!(offset_of!(Meta, segment_len), 64);
    const_assert_eq!(offset_of!(Meta, created_unix_ns), 72);
    const_assert_eq!(offset_of!(Meta, schema_version), 80);
    const_assert_eq!(offset_of!(Meta, schema_len), 84);
    const_assert_eq!(offset_of!(Meta, schema_name), 88);
    const_assert_eq!(offset_of!(Meta, flags), 120);
    const_assert_eq!(size_of::<Meta>(), 128);
    const_assert_eq!(size_of::<Event>(), 32);
    const_assert_eq!(size_of::<SideStats>(), 112);
    const_assert_eq!(offset_of!(SideStats, service), 24);
    const_assert_eq!(offset_of!(ServiceCounters, client), 40);
    const_assert_eq!(offset_of!(ServiceCounters, reply_format), 80);
    const_assert_eq!(std::mem::align_of::<Header>(), 128);
    const_assert_eq!(offset_of!(Header, meta), 0);
    const_assert_eq!(offset_of!(Header, producer_role), 128);
    const_assert_eq!(offset_of!(Header, consumer_role), 256);
    const_assert_eq!(offset_of!(Header, tail), 384);
    const_assert_eq!(offset_of!(Header, head), 512);
    const_assert_eq!(offset_of!(Header, consumer_event), 640);
    const_assert_eq!(offset_of!(Header, producer_event), 768);
    const_assert_eq!(offset_of!(Header, attached), 896);
    const_assert_eq!(offset_of!(Header, recovery), 1152);
    const_assert_eq!(offset_of!(Header, producer_claims), 1280);
    const_assert_eq!(offset_of!(Header, consumer_claims), 1280 + 4096);
    const_assert_eq!(offset_of!(Header, producer_stats), 1280 + 2 * 4096);
    const_assert_eq!(offset_of!(Header, consumer_stats), 1280 + 2 * 4096 + 128);
    const_assert_eq!(
        size_of::<Header>() as u64,
        crate::format::layout::HEADER_SIZE
    );
    // Atomics must be plain integers in memory for another process to share them.
    const_assert_eq!(size_of::<AtomicU64>(), 8);
    const_assert!(std::mem::align_of::<AtomicU64>() == 8);
}

/// What a header says about its segment, after validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    pub kind: RingKind,
    pub elem: TypeLayout,
    pub layout: SegmentLayout,
    pub creator_pid: u32,
    pub created_unix_ns: u64,
    /// Bits such as [`ZERO_AFTER_USE`].
    pub features: u32,
}

impl HeaderInfo {
    /// Whether readers zero what they release (see [`ZERO_AFTER_USE`]).
    pub(crate) fn zero_after_use(&self) -> bool {
        self.features & ZERO_AFTER_USE != 0
    }
}

impl Header {
    /// Write every field, then mark the header ready (Release), so that an
    /// opener that sees `READY` also sees everything written before it.
    pub(crate) fn publish(&self, info: &HeaderInfo) {
        let m = &self.meta;
        let r = Ordering::Relaxed;
        m.magic.store(MAGIC, r);
        let version = if info.features == 0 {
            VERSION
        } else {
            FEATURES_VERSION
        };
        m.version.store(version, r);
        m.features.store(info.features, r);
        m.kind.store(info.kind.code(), r);
        m.elem_size.store(info.elem.size, r);
        m.elem_align.store(info.elem.align, r);
        m.type_fingerprint.store(info.elem.fingerprint, r);
        let schema = &info.elem.schema;
        m.schema_version.store(schema.version(), r);
        m.schema_len.store(schema.bytes().len() as u32, r);
        let mut name = [0u8; SCHEMA_NAME_LEN];
        name[..schema.bytes().len()].copy_from_slice(schema.bytes());
        for (word, bytes) in m.schema_name.iter().zip(name.chunks_exact(8)) {
            word.store(u64::from_le_bytes(bytes.try_into().expect("8 bytes")), r);
        }
        m.creator_pid.store(info.creator_pid, r);
        m.capacity.store(info.layout.capacity, r);
        m.slot_size.store(info.layout.slot_size, r);
        m.data_offset.store(info.layout.data_offset, r);
        m.segment_len.store(info.layout.total_len, r);
        m.created_unix_ns.store(info.created_unix_ns, r);
        m.state.store(READY, Ordering::Release);
    }

    /// The counters of `side`.
    pub(crate) fn stats(&self, side: Role) -> &SideStats {
        match side {
            Role::Producer => &self.producer_stats,
            Role::Consumer => &self.consumer_stats,
        }
    }

    /// Keep the segment's name after its last user leaves. Relaxed: the
    /// flag orders nothing; a user leaving reads whatever it finds.
    pub(crate) fn set_persistent(&self) {
        self.meta.flags.fetch_or(PERSISTENT, Ordering::Relaxed);
    }

    /// Whether [`Self::set_persistent`] was called, by any user.
    pub(crate) fn is_persistent(&self) -> bool {
        self.meta.flags.load(Ordering::Relaxed) & PERSISTENT != 0
    }

    /// Wait (bounded) until the creator has published the header.
    pub(crate) fn wait_ready(&self, name: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            // Acquire pairs with the Release in `publish`.
            match self.meta.state.load(Ordering::Acquire) {
                READY => return Ok(()),
                INITIALIZING => {
                    let magic = self.meta.magic.load(Ordering::Relaxed);
                    // A creator writes MAGIC or nothing; anything else is not ours.
                    if magic != 0 && magic != MAGIC {
                        return Err(Error::BadMagic {
                            name: name.to_owned(),
                            found: magic,
                        });
                    }
                }
                other => {
                    let magic = self.meta.magic.load(Ordering::Relaxed);
                    if magic != MAGIC {
                        return Err(Error::BadMagic {
                            name: name.to_owned(),
                            found: magic,
                        });
                    }
                    return Err(Error::Corrupt {
                        name: name.to_owned(),
                        what: format!("header state is {other}"),
                    });
                }
            }
            if start.elapsed() >= timeout {
                return Err(Error::NotReady {
                    name: name.to_owned(),
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            crate::platform::sync::pause(Duration::from_micros(100));
        }
    }

    /// The element layout as recorded (whatever a peer wrote: the name is
    /// cut to 32 bytes, the fingerprint is the stored one).
    fn elem(&self) -> TypeLayout {
        let m = &self.meta;
        let r = Ordering::Relaxed;
        let mut name = [0u8; SCHEMA_NAME_LEN];
        for (bytes, word) in name.chunks_exact_mut(8).zip(&m.schema_name) {
            bytes.copy_from_slice(&word.load(r).to_le_bytes());
        }
        let len = (m.schema_len.load(r) as usize).min(SCHEMA_NAME_LEN);
        let schema = Schema::from_bytes(&name[..len], m.schema_version.load(r));
        TypeLayout {
            fingerprint: m.type_fingerprint.load(r),
            ..TypeLayout::from_parts(m.elem_size.load(r), m.elem_align.load(r), schema)
        }
    }

    /// Read every field and check it against what the caller expects and
    /// against the segment's real size. Each mismatch has its own error.
    pub(crate) fn validate(
        &self,
        name: &str,
        expected_kind: RingKind,
        expected_elem: TypeLayout,
        slot_size: usize,
        slot_align: usize,
        actual_len: u64,
    ) -> Result<HeaderInfo> {
        let m = &self.meta;
        let r = Ordering::Relaxed;
        let features = self.check_format(name)?;
        let kind_code = m.kind.load(r);
        let kind = match RingKind::from_code(kind_code) {
            Some(kind) if kind == expected_kind => kind,
            Some(kind) => {
                return Err(Error::KindMismatch {
                    name: name.to_owned(),
                    found: kind.to_string(),
                    expected: expected_kind,
                })
            }
            None => {
                return Err(Error::KindMismatch {
                    name: name.to_owned(),
                    found: format!("unknown (code {kind_code})"),
                    expected: expected_kind,
                })
            }
        };
        let elem = self.elem();
        if elem != expected_elem {
            return Err(Error::TypeMismatch {
                name: name.to_owned(),
                found: Box::new(elem),
                expected: Box::new(expected_elem),
            });
        }
        let segment_len = m.segment_len.load(r);
        if segment_len != actual_len {
            return Err(Error::SizeMismatch {
                name: name.to_owned(),
                header: segment_len,
                actual: actual_len,
            });
        }
        let capacity = m.capacity.load(r);
        if capacity == 0 || !capacity.is_power_of_two() {
            return Err(Error::Corrupt {
                name: name.to_owned(),
                what: format!("capacity {capacity} is not a power of two"),
            });
        }
        let expected = SegmentLayout::with_table(capacity, slot_size, slot_align, kind.table_len())
            .map_err(|_| Error::Corrupt {
                name: name.to_owned(),
                what: format!("capacity {capacity} cannot be laid out"),
            })?;
        let found = SegmentLayout {
            capacity,
            slot_size: m.slot_size.load(r),
            data_offset: m.data_offset.load(r),
            total_len: segment_len,
        };
        if found != expected {
            return Err(Error::Corrupt {
                name: name.to_owned(),
                what: format!("layout {found:?} does not match the element type's {expected:?}"),
            });
        }
        Ok(HeaderInfo {
            kind,
            elem,
            layout: found,
            creator_pid: m.creator_pid.load(r),
            created_unix_ns: m.created_unix_ns.load(r),
            features,
        })
    }
}

impl Header {
    /// The magic and version checked, the features the ring asks of its
    /// users: every one of them known to this library.
    fn check_format(&self, name: &str) -> Result<u32> {
        let magic = self.meta.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(Error::BadMagic {
                name: name.to_owned(),
                found: magic,
            });
        }
        match self.meta.version.load(Ordering::Relaxed) {
            VERSION => Ok(0),
            FEATURES_VERSION => match self.meta.features.load(Ordering::Relaxed) {
                f if f & !KNOWN_FEATURES == 0 => Ok(f),
                f => Err(Error::UnknownFeatures {
                    name: name.to_owned(),
                    features: f & !KNOWN_FEATURES,
                }),
            },
            found => Err(Error::VersionMismatch {
                name: name.to_owned(),
                found,
                expected: VERSION,
            }),
        }
    }

    /// Read a published header without expecting a kind or type, for
    /// inspection: the format, a known kind, and a layout that fits the
    /// file are checked.
    #[cfg_attr(shmring_loom, allow(dead_code))]
    pub(crate) fn describe(&self, name: &str, actual_len: u64) -> Result<HeaderInfo> {
        let m = &self.meta;
        let r = Ordering::Relaxed;
        let features = self.check_format(name)?;
        let code = m.kind.load(r);
        let kind = RingKind::from_code(code).ok_or_else(|| Error::Corrupt {
            name: name.to_owned(),
            what: format!("unknown ring kind {code}"),
        })?;
        let segment_len = m.segment_len.load(r);
        if segment_len != actual_len {
            return Err(Error::SizeMismatch {
                name: name.to_owned(),
                header: segment_len,
                actual: actual_len,
            });
        }
        let capacity = m.capacity.load(r);
        let slot_size = m.slot_size.load(r);
        let data_offset = m.data_offset.load(r);
        let fits = capacity
            .checked_mul(slot_size)
            .and_then(|b| b.checked_add(data_offset))
            == Some(segment_len);
        let before_data = size_of::<Header>() as u64 + kind.table_len();
        if !capacity.is_power_of_two() || data_offset < before_data || !fits {
            return Err(Error::Corrupt {
                name: name.to_owned(),
                what: format!(
                    "capacity {capacity} x {slot_size} bytes at offset {data_offset} \
                     does not fill a {segment_len}-byte segment"
                ),
            });
        }
        Ok(HeaderInfo {
            kind,
            elem: self.elem(),
            layout: SegmentLayout {
                capacity,
                slot_size,
                data_offset,
                total_len: segment_len,
            },
            creator_pid: m.creator_pid.load(r),
            created_unix_ns: m.created_unix_ns.load(r),
            features,
        })
    }
}

/// Byte offsets of header fields, for tests that corrupt a real segment.
#[doc(hidden)]
pub mod offsets {
    use super::*;
    /// Offset of the magic number.
    pub const MAGIC: usize = offset_of!(Meta, magic);
    /// Offset of the format version.
    pub const VERSION: usize = offset_of!(Meta, version);
    /// Offset of the initialization state.
    pub const STATE: usize = offset_of!(Meta, state);
    /// Offset of the ring kind.
    pub const KIND: usize = offset_of!(Meta, kind);
    /// Offset of the element size.
    pub const ELEM_SIZE: usize = offset_of!(Meta, elem_size);
    /// Offset of the type fingerprint.
    pub const FINGERPRINT: usize = offset_of!(Meta, type_fingerprint);
    /// Offset of the schema version (u32).
    pub const SCHEMA_VERSION: usize = offset_of!(Meta, schema_version);
    /// Offset of the schema name's length in bytes (u32, at most 32).
    pub const SCHEMA_LEN: usize = offset_of!(Meta, schema_len);
    /// Offset of the schema name: 32 bytes, unused ones zero.
    pub const SCHEMA_NAME: usize = offset_of!(Meta, schema_name);
    /// Offset of the flags (u32): bit 0 keeps the name after the last user
    /// leaves.
    pub const FLAGS: usize = offset_of!(Meta, flags);
    /// Offset of the features (u32) in format 8: bit 0 zeroes what
    /// readers release.
    pub const FEATURES: usize = offset_of!(Meta, features);
    /// Offset of the capacity.
    pub const CAPACITY: usize = offset_of!(Meta, capacity);
    /// Offset of the slot size.
    pub const SLOT_SIZE: usize = offset_of!(Meta, slot_size);
    /// Offset of the segment length.
    pub const SEGMENT_LEN: usize = offset_of!(Meta, segment_len);
    /// Offset of the producer's claim word.
    pub const PRODUCER_ROLE: usize = offset_of!(Header, producer_role);
    /// Offset of the tail (pushed) index.
    pub const TAIL: usize = offset_of!(Header, tail);
    /// Offset of the head (popped) index.
    pub const HEAD: usize = offset_of!(Header, head);
    /// Offset of the attached-process table.
    pub const ATTACHED: usize = offset_of!(Header, attached);
    /// Offset of the producers' claim records (MPMC, byte ring).
    pub const PRODUCER_CLAIMS: usize = offset_of!(Header, producer_claims);
    /// Offset of the consumers' claim records (MPMC).
    pub const CONSUMER_CLAIMS: usize = offset_of!(Header, consumer_claims);
    /// Bytes from one claim record to the next; each holds three u64s:
    /// owner, first and last position.
    pub const CLAIM_RECORD_LEN: usize =
        size_of::<crate::peers::claims::ClaimTable>() / crate::peers::claims::CLAIM_RECORDS;
    /// Size of the header.
    pub const HEADER_LEN: usize = size_of::<Header>();
    /// Offset of a request-reply server's five counters (u64s: requests,
    /// replies, dropped for a dead client, dropped for a full ring,
    /// unanswered), in a lane's header.
    pub const SERVICE_SERVER: usize =
        offset_of!(Header, consumer_stats) + offset_of!(SideStats, service);
    /// Offset of a request-reply client's five counters (u64s: sent,
    /// replies, late, sent again, outstanding), in its reply ring's
    /// header.
    pub const SERVICE_CLIENT: usize = SERVICE_SERVER + offset_of!(ServiceCounters, client);
    /// Offset of a request-reply client's reply format (a u64: 1 when it
    /// reads the 8-byte reply header, 0 in rings of older builds), in its
    /// reply ring's header.
    pub const SERVICE_REPLY_FORMAT: usize =
        SERVICE_SERVER + offset_of!(ServiceCounters, reply_format);
}

#[cfg(shmring_loom)]
impl Header {
    /// What a fresh (zero-filled) segment holds, constructed for loom.
    pub(crate) fn new_zeroed() -> Self {
        let u32z = || AtomicU32::new(0);
        let u64z = || AtomicU64::new(0);
        let stats = || {
            CachePadded::new(SideStats {
                blocked: Counter::new(0),
                timeouts: Counter::new(0),
                takeovers: Counter::new(0),
                service: ServiceCounters {
                    server: ServerCounters {
                        requests: Counter::new(0),
                        replies: Counter::new(0),
                        to_dead_clients: Counter::new(0),
                        dropped_full: Counter::new(0),
                        unanswered: Counter::new(0),
                    },
                    client: ClientCounters {
                        sent: Counter::new(0),
                        replies: Counter::new(0),
                        late: Counter::new(0),
                        retried: Counter::new(0),
                        outstanding: Counter::new(0),
                    },
                    reply_format: u64z(),
                },
            })
        };
        let event = || {
            CachePadded::new(Event {
                seq: u32z(),
                sleepers: u32z(),
                wanted: u32z(),
                closed: u32z(),
                sleeps: Counter::new(0),
                wakes: Counter::new(0),
            })
        };
        Header {
            meta: CachePadded::new(Meta {
                magic: u64z(),
                version: u32z(),
                state: u32z(),
                kind: u32z(),
                elem_size: u32z(),
                elem_align: u32z(),
                creator_pid: u32z(),
                type_fingerprint: u64z(),
                capacity: u64z(),
                slot_size: u64z(),
                data_offset: u64z(),
                segment_len: u64z(),
                created_unix_ns: u64z(),
                schema_version: u32z(),
                schema_len: u32z(),
                schema_name: std::array::from_fn(|_| u64z()),
                flags: u32z(),
                features: u32z(),
            }),
            producer_role: CachePadded::new(u64z()),
            consumer_role: CachePadded::new(u64z()),
            tail: CachePadded::new(u64z()),
            head: CachePadded::new(u64z()),
            consumer_event: event(),
            producer_event: event(),
            attached: CachePadded::new(std::array::from_fn(|_| u64z())),
            recovery: CachePadded::new(Recovery::new()),
            producer_claims: std::array::from_fn(|_| CachePadded::new(ClaimRecord::new())),
            consumer_claims: std::array::from_fn(|_| CachePadded::new(ClaimRecord::new())),
            producer_stats: stats(),
            consumer_stats: stats(),
        }
    }
}

/// The header's publication protocol, exposed to the loom model tests only.
#[cfg(shmring_loom)]
#[doc(hidden)]
pub mod model {
    use super::*;

    /// A header in loom-managed memory.
    pub struct ModelHeader(Header);

    impl std::fmt::Debug for ModelHeader {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ModelHeader").finish_non_exhaustive()
        }
    }

    impl Default for ModelHeader {
        fn default() -> Self {
            ModelHeader(Header::new_zeroed())
        }
    }

    fn info() -> HeaderInfo {
        let layout = SegmentLayout::with_table(4, 16, 8, 0).unwrap();
        HeaderInfo {
            kind: RingKind::Spsc,
            elem: TypeLayout::of::<u64>(),
            layout,
            creator_pid: 1,
            created_unix_ns: 2,
            features: 0,
        }
    }

    impl ModelHeader {
        /// What a creator does.
        pub fn publish(&self) {
            self.0.publish(&info());
        }

        /// What an opener does: wait for ready, then validate.
        pub fn open(&self) -> Result<()> {
            self.0.wait_ready("model", Duration::from_secs(3600))?;
            let i = info();
            let got = self
                .0
                .validate("model", i.kind, i.elem, 16, 8, i.layout.total_len)?;
            assert_eq!(got, i);
            Ok(())
        }
    }
}

//! Inspection from C: what `shmring stat` shows of a ring, read from its
//! header without joining it (no role taken, nothing written).

use std::ffi::{c_char, c_int};

use shmring::RingKind;

use crate::bytes::{name, put};
use crate::status::{guard, SHMRING_OK};

/// [`ShmringInfo::kind`] of a single-producer single-consumer ring.
pub const SHMRING_KIND_SPSC: u32 = 1;
/// [`ShmringInfo::kind`] of a multi-producer multi-consumer ring.
pub const SHMRING_KIND_MPMC: u32 = 2;
/// [`ShmringInfo::kind`] of a byte ring.
pub const SHMRING_KIND_BYTES: u32 = 3;
/// [`ShmringInfo::kind`] of a broadcast ring.
pub const SHMRING_KIND_BROADCAST: u32 = 4;

/// A ring's state, as [`shmring_inspect`] read it from its header. The
/// peers' counts are the kernel's word (locks they hold), not pids'.
/// Fields are added only with a new ABI version.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShmringInfo {
    /// `SHMRING_KIND_SPSC`, `_MPMC`, `_BYTES` or `_BROADCAST` (0: a kind
    /// newer than this ABI).
    pub kind: u32,
    /// The element type's size in bytes (a byte ring: its 16-byte unit).
    pub elem_size: u32,
    /// The element type's alignment.
    pub elem_align: u32,
    /// The schema's version.
    pub schema_version: u32,
    /// The schema's name, NUL-terminated (at most 32 bytes before it).
    pub schema: [c_char; 33],
    /// Whether the name stays after its last user leaves (0 or 1).
    pub persistent: u8,
    /// Whether readers zero what they release (0 or 1).
    pub zero_after_use: u8,
    /// Whether any process maps it or holds a role in it (0 or 1): a ring
    /// not in use can be removed.
    pub in_use: u8,
    /// The schema, size and alignment's fingerprint (as the header has it).
    pub fingerprint: u64,
    /// Capacity: values, or bytes for a byte ring.
    pub capacity: u64,
    /// Values (bytes) written so far.
    pub written: u64,
    /// Values (bytes) read so far; a broadcast ring's slowest live
    /// subscriber's position.
    pub read: u64,
    /// Written and not yet read, at most `capacity`.
    pub fill: u64,
    /// Positions that dead holders left unfinished and a repair skipped.
    pub repaired: u64,
    /// Live producer handles (an SPSC or broadcast ring: 0 or 1).
    pub producers: u32,
    /// Live consumer handles (broadcast: live subscribers).
    pub consumers: u32,
    /// Calls that found the ring full (back-pressure).
    pub producer_blocked: u64,
    /// Blocking receives that found it empty and waited.
    pub consumer_blocked: u64,
    /// Roles taken over from dead handles, producers' and consumers'.
    pub takeovers: u64,
    /// The segment's size in bytes.
    pub segment_len: u64,
    /// The uid owning the segment file.
    pub owner_uid: u32,
    /// The segment file's mode (0600 unless its creator asked).
    pub mode: u32,
}

/// Read ring `name`'s header into `*out` without joining the ring;
/// [`SHMRING_NOT_FOUND`](crate::SHMRING_NOT_FOUND) if there is none.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmring_inspect(name: *const c_char, out: *mut ShmringInfo) -> c_int {
    const F: &str = "shmring_inspect";
    guard(F, || {
        if out.is_null() {
            return Err(crate::status::Failure::invalid(F, "out is NULL"));
        }
        // SAFETY: the caller's contract above.
        let info = shmring::inspect(unsafe { self::name(name, F)? })?;
        let mut schema = [0 as c_char; 33];
        for (to, &from) in schema.iter_mut().zip(info.elem.schema.name().as_bytes()) {
            *to = from as c_char;
        }
        let live = |a: &Option<shmring::Attached>| u32::from(a.is_some_and(|a| a.alive));
        let all_live = |v: &[shmring::Attached]| v.iter().filter(|a| a.alive).count() as u32;
        let (producers, consumers) = match info.kind {
            RingKind::Spsc => (live(&info.producer), live(&info.consumer)),
            RingKind::Broadcast => {
                let held = info.subscribers.iter();
                let subscribers = held.filter(|s| s.holder.is_some_and(|h| h.alive)).count();
                (live(&info.producer), subscribers as u32)
            }
            _ => (
                all_live(&info.producer_handles),
                all_live(&info.consumer_handles) + live(&info.consumer),
            ),
        };
        let kind = match info.kind {
            RingKind::Spsc => SHMRING_KIND_SPSC,
            RingKind::Mpmc => SHMRING_KIND_MPMC,
            RingKind::Bytes => SHMRING_KIND_BYTES,
            RingKind::Broadcast => SHMRING_KIND_BROADCAST,
            _ => 0,
        };
        let made = ShmringInfo {
            kind,
            elem_size: info.elem.size,
            elem_align: info.elem.align,
            schema_version: info.elem.schema.version(),
            schema,
            persistent: info.persistent.into(),
            zero_after_use: info.zero_after_use.into(),
            in_use: info.in_use.into(),
            fingerprint: info.elem.fingerprint,
            capacity: info.capacity,
            written: info.written,
            read: info.read,
            fill: info.fill(),
            repaired: info.repaired,
            producers,
            consumers,
            producer_blocked: info.producers.blocked,
            consumer_blocked: info.consumers.blocked,
            // Saturating: a peer may have written anything there.
            takeovers: info
                .producers
                .takeovers
                .saturating_add(info.consumers.takeovers),
            segment_len: info.segment_len,
            owner_uid: info.owner_uid,
            mode: info.mode,
        };
        // SAFETY: checked non-NULL; the caller's contract makes it writable.
        unsafe { put(out, made, F)? };
        Ok(SHMRING_OK)
    })
}

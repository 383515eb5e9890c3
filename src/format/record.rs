//! Records: how variable-length messages are framed in a byte ring's data
//! area.
//!
//! # Framing
//!
//! The data area is `capacity` bytes (a power of two, at least 64), seen as
//! an endless stream of byte positions; position `p` lives at offset
//! `p & (capacity - 1)`. A record starts at a multiple of 16, so payloads
//! are 16-byte aligned, and never wraps past the end of the area:
//!
//! ```text
//!  0        8        16                        16 + round_up(len, 16)
//!  | commit | length |  payload (len bytes)  pad |
//! ```
//!
//! * `length` (u64): the payload length in the low 32 bits and the record's
//!   kind in the high 32: a message, or padding the consumer skips (the
//!   unused tail of the area before a wrap, an aborted grant, the unused
//!   end of a shrunk grant).
//! * `commit` (u64): the record's *stamp*, `mix(seed ^ p)`, stored last
//!   with Release once `length` and the payload are written. The consumer
//!   loads it with Acquire and trusts the record only if it equals the stamp
//!   of the position it expects. `seed` is a per-ring pseudo-random odd
//!   number and `mix` a bijection that spreads every bit (SplitMix64's
//!   finalizer), so no stamp is zero (a fresh ring; positions are even), a
//!   record left from an earlier lap carries another position's stamp, and
//!   whatever an earlier lap left where a header now goes (an old stamp
//!   partly overwritten by payload bytes, say) matches the expected stamp
//!   only by a 2^-64 chance. That is what lets the consumer release space
//!   with a single index store instead of zeroing what it read. (A ring
//!   created with `zero_after_use` zeroes it anyway, framing included, a
//!   word at a time as atomics, before that store: zero is no record's
//!   stamp, so zeroed space reads as uncommitted.)
//!
//!   (The stamps were first `seed + p`. The `bytes_ops` fuzz target found
//!   why that is wrong: a one-byte payload written over the low byte of an
//!   old stamp `seed + p - 128` turned it into `seed + p` one time in 256,
//!   and the consumer took an uncommitted record for a committed one.)
//!
//! Shared memory is untrusted: the byte ring's `Records::read`
//! (`rings/byte_ring/records.rs`, the one place that turns the area's bytes
//! into typed access) checks a committed record's length against the end of
//! the area and the write position, so whatever a peer writes, a reader's
//! slice stays inside the area; and a message's against the ring's longest
//! message, so no reader is handed more than `max_message_len` promised.
//! (The `hostile_peer` fuzz target found such a message: inside the area,
//! before the write position, and longer than the ring's longest.)

/// Records start on, and are padded to, this many bytes.
pub(crate) const ALIGN: u64 = 16;
/// Bytes of framing before each payload.
pub(crate) const HEADER_LEN: u64 = 16;
/// The smallest data area: room for two records with 16-byte payloads.
pub(crate) const MIN_CAPACITY: u64 = 64;
/// The largest data area: its longest message (half of it, less a header)
/// must fit the 32-bit length word. A 16 GiB area would take messages of
/// 8 GiB and store their lengths modulo 4 GiB.
pub(crate) const MAX_CAPACITY: u64 = 1 << 33;

/// What a record holds. A word wide, as a [`Record`]'s other fields are:
/// a record moved through memory (returned, kept, lent again) is then
/// stored and loaded a word at a time. With a byte, the compiler moved the
/// byte and the padding after it as one word, loaded from several smaller
/// stores, which the store buffer cannot forward: a stall on every
/// message received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Kind {
    /// A message for the consumer.
    Message = 1,
    /// Bytes to skip.
    Padding = 2,
}

/// The data area's unit: one aligned 16-byte block.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct Unit(pub(crate) [u8; 16]);

/// Bytes a record with a `len`-byte payload takes, framing included.
#[inline(always)]
pub(crate) const fn record_len(len: u64) -> u64 {
    HEADER_LEN + len.next_multiple_of(ALIGN)
}

/// A committed record, validated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub(crate) kind: Kind,
    /// Offset of the record in the area.
    pub(crate) offset: u64,
    /// Payload length.
    pub(crate) len: u64,
    /// Position of the record that follows.
    pub(crate) next: u64,
}

/// The data area `create` makes for a requested `capacity` in bytes: at
/// least the minimum, a power of two of 16-byte units (`u64::MAX` when
/// that is past any area).
pub(crate) fn rounded_capacity(capacity: usize) -> u64 {
    let units = (capacity as u64).max(MIN_CAPACITY).div_ceil(ALIGN);
    units
        .checked_next_power_of_two()
        .and_then(|u| u.checked_mul(ALIGN))
        .unwrap_or(u64::MAX)
}

/// A per-ring odd 64-bit number derived from what makes the ring unique
/// (creation time and creator), mixed (SplitMix64's finalizer) so that no
/// structured payload is likely to equal `seed + position`.
pub(crate) fn seed(created_unix_ns: u64, creator_pid: u32) -> u64 {
    mix(created_unix_ns ^ (u64::from(creator_pid) << 40) ^ 0x9e37_79b9_7f4a_7c15) | 1
}

#[inline(always)]
pub(crate) const fn stamp(seed: u64, pos: u64) -> u64 {
    mix(seed ^ pos)
}

/// SplitMix64's finalizer: a bijection on u64 that spreads every input bit
/// over every output bit. It maps 0 to 0 only.
#[inline(always)]
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_and_aligned() {
        assert_eq!(record_len(0), 16);
        assert_eq!(record_len(1), 32);
        assert_eq!(record_len(16), 32);
        assert_eq!(record_len(17), 48);
    }

    /// Payload bytes written over part of an old stamp must not make it
    /// another position's stamp: stamps of positions a few laps apart must
    /// differ in more than one byte (they differed in one with `seed + p`).
    #[test]
    fn stamps_of_nearby_positions_differ_in_many_bytes() {
        for s in [seed(1, 2), seed(123_456_789, 4242), 1] {
            for p in (0..4096).step_by(16) {
                for d in (16..4096).step_by(16) {
                    let x = stamp(s, p) ^ stamp(s, p + d);
                    let differing = x.to_le_bytes().iter().filter(|&&b| b != 0).count();
                    assert!(
                        differing >= 3,
                        "seed {s:#x}: {p} and {} share 6 bytes",
                        p + d
                    );
                }
            }
        }
    }

    #[test]
    fn seeds_are_odd_and_differ() {
        assert_eq!(seed(1, 2) & 1, 1);
        assert_ne!(seed(1, 2), seed(2, 2));
        assert_ne!(seed(1, 2), seed(1, 3));
    }
}

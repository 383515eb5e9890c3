//! Where things sit in a segment: the element type's identity and the byte
//! offsets of the slot array, computed the same way by creator and opener.

use std::mem::{align_of, size_of};

use crate::error::{Error, Result};
use crate::kind::{RingKind, Schema, TypeLayout};

/// The header's size in bytes, fixed by the format (the header's struct is
/// asserted to have exactly this size, in `header.rs`).
pub(crate) const HEADER_SIZE: u64 = 1280 + 2 * 4096 + 2 * 128;

impl TypeLayout {
    /// The layout of `T` under its default schema (see [`Schema::of`]).
    pub fn of<T>() -> Self {
        Self::with_schema::<T>(Schema::of::<T>())
    }

    /// The layout of `T` under `schema`.
    pub fn with_schema<T>(schema: Schema) -> Self {
        Self::from_parts(size_of::<T>() as u32, align_of::<T>() as u32, schema)
    }

    /// The layout of a type known only at run time (a C struct, a numpy
    /// dtype): `size` bytes aligned to `align` under `schema`, as a Rust
    /// `#[repr(C)]` type of the same size and alignment records it (so a
    /// ring of either opens as the other). `align` is a power of two up to
    /// 4096.
    ///
    /// ```
    /// use shmring::{Schema, TypeLayout};
    /// #[derive(Clone, Copy)]
    /// #[repr(C)]
    /// struct Quote { px: f64, qty: u32 }
    /// let schema = Schema::new("Quote", 0)?;
    /// assert_eq!(TypeLayout::new(schema, 16, 8)?, TypeLayout::of::<Quote>());
    /// assert!(TypeLayout::new(schema, 16, 3).is_err());
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn new(schema: Schema, size: u32, align: u32) -> crate::Result<Self> {
        if !align.is_power_of_two() || u64::from(align) > MAX_SLOT_ALIGN {
            return Err(crate::Error::InvalidLayout {
                reason: "the alignment is not a power of two up to 4096",
            });
        }
        if !size.is_multiple_of(align) {
            return Err(crate::Error::InvalidLayout {
                reason: "the size is not a multiple of the alignment",
            });
        }
        Ok(Self::from_parts(size, align, schema))
    }

    /// A layout and its fingerprint, as a header holds them.
    pub(crate) fn from_parts(size: u32, align: u32, schema: Schema) -> Self {
        // FNV-1a: small, stable across builds and languages, and good
        // enough to tell layouts apart (a guard against mistakes, not an
        // adversary).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in schema
            .bytes()
            .iter()
            .chain(&schema.version().to_le_bytes())
            .chain(&size.to_le_bytes())
            .chain(&align.to_le_bytes())
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        TypeLayout {
            size,
            align,
            schema,
            fingerprint: hash,
        }
    }
}

/// Offsets and sizes of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentLayout {
    /// Number of slots, a power of two.
    pub capacity: u64,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Offset of slot 0 from the start of the segment.
    pub data_offset: u64,
    /// Total bytes in the segment.
    pub total_len: u64,
}

/// Subscriber entries a broadcast ring's table holds (`format/subscribers.rs`).
pub(crate) const SUBSCRIBER_ENTRIES: u64 = 64;

impl RingKind {
    /// Bytes a ring of this kind keeps between its header and its slots:
    /// a broadcast ring's subscriber table (an entry per 128-byte line);
    /// nothing for the others.
    pub(crate) const fn table_len(self) -> u64 {
        match self {
            RingKind::Broadcast => SUBSCRIBER_ENTRIES * 128,
            _ => 0,
        }
    }
}

/// Largest slot alignment we lay out: a page, the alignment of the mapping.
const MAX_SLOT_ALIGN: u64 = 4096;

impl SegmentLayout {
    /// Lay out `capacity` slots (rounded up to a power of two) of
    /// `slot_size` bytes aligned to `slot_align`, after the header and
    /// `table_len` bytes of the kind's own (see [`RingKind::table_len`]).
    pub(crate) fn with_table(
        capacity: u64,
        slot_size: usize,
        slot_align: usize,
        table_len: u64,
    ) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        let too_large = Error::CapacityTooLarge {
            requested: capacity,
        };
        let slot_align = slot_align as u64;
        if slot_align > MAX_SLOT_ALIGN {
            return Err(too_large);
        }
        let capacity = capacity.checked_next_power_of_two().ok_or(too_large)?;
        let too_large = || Error::CapacityTooLarge {
            requested: capacity,
        };
        let slot_size = slot_size as u64;
        // The header is cache-line aligned; slots start on a fresh 128-byte
        // line (or their own alignment if larger) so they never share a line
        // with the indices.
        let data_align = slot_align.max(128);
        let data_offset = (HEADER_SIZE + table_len).next_multiple_of(data_align);
        let total_len = capacity
            .checked_mul(slot_size)
            .and_then(|b| b.checked_add(data_offset))
            .filter(|&len| len <= i64::MAX as u64 && usize::try_from(len).is_ok())
            .ok_or_else(too_large)?;
        Ok(SegmentLayout {
            capacity,
            slot_size,
            data_offset,
            total_len,
        })
    }
}

#[cfg(test)]
impl SegmentLayout {
    /// A layout with no table.
    pub(crate) fn new(capacity: u64, slot_size: usize, slot_align: usize) -> Result<Self> {
        Self::with_table(capacity, slot_size, slot_align, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_and_zero_is_refused() {
        assert!(matches!(
            SegmentLayout::new(0, 16, 8),
            Err(Error::ZeroCapacity)
        ));
        assert_eq!(SegmentLayout::new(1, 16, 8).unwrap().capacity, 1);
        assert_eq!(SegmentLayout::new(3, 16, 8).unwrap().capacity, 4);
        assert_eq!(SegmentLayout::new(4096, 16, 8).unwrap().capacity, 4096);
        assert!(matches!(
            SegmentLayout::new(u64::MAX, 16, 8),
            Err(Error::CapacityTooLarge { .. })
        ));
        assert!(matches!(
            SegmentLayout::new(1 << 62, 16, 8),
            Err(Error::CapacityTooLarge { .. })
        ));
    }

    #[test]
    fn slots_start_aligned_after_the_header() {
        let l = SegmentLayout::new(8, 256, 256).unwrap();
        assert_eq!(l.data_offset % 256, 0);
        assert!(l.data_offset >= HEADER_SIZE);
        assert_eq!(l.total_len, l.data_offset + 8 * 256);
    }

    #[test]
    fn a_kinds_table_sits_between_the_header_and_the_slots() {
        let len = RingKind::Broadcast.table_len();
        assert_eq!(len, 64 * 128);
        let l = SegmentLayout::with_table(8, 16, 8, len).unwrap();
        assert_eq!(l.data_offset, HEADER_SIZE + len);
        assert_eq!(RingKind::Spsc.table_len(), 0);
    }

    #[test]
    fn fingerprint_tells_equal_sized_types_apart() {
        assert_ne!(TypeLayout::of::<u64>(), TypeLayout::of::<i64>());
        assert_eq!(TypeLayout::of::<u64>(), TypeLayout::of::<u64>());
        assert_eq!(TypeLayout::of::<[u8; 3]>().size, 3);
    }
}

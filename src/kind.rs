//! What a header names and an error reports: the kind of ring, the element
//! type's layout, the roles a handle can hold. Plain values at the bottom
//! of the crate, so that every layer (and the error type) can name them.

use std::fmt;

/// Which ring a segment holds; recorded in the header so that an SPSC
/// handle never maps an MPMC segment, and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RingKind {
    /// A single-producer single-consumer ring of fixed-size values.
    Spsc,
    /// A multi-producer multi-consumer ring of fixed-size values.
    Mpmc,
    /// A ring of variable-length byte messages ([`ByteRing`](crate::ByteRing)).
    Bytes,
}

impl RingKind {
    pub(crate) const fn code(self) -> u32 {
        match self {
            RingKind::Spsc => 1,
            RingKind::Mpmc => 2,
            RingKind::Bytes => 3,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            3 => Some(RingKind::Bytes),
            _ => None,
        }
    }
}

impl fmt::Display for RingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingKind::Spsc => "spsc",
            RingKind::Mpmc => "mpmc",
            RingKind::Bytes => "bytes",
        })
    }
}

/// The layout of a ring's element type as recorded in a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeLayout {
    /// `size_of::<T>()`.
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// A hash of the type's name, size and alignment.
    pub fingerprint: u64,
}

impl fmt::Display for TypeLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {} align {} fingerprint {:#018x}",
            self.size, self.align, self.fingerprint
        )
    }
}

/// A role on a ring that at most one live handle may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The writing side.
    Producer,
    /// The reading side.
    Consumer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

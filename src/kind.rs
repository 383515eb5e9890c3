//! What a header names and an error reports: the kind of ring, the element
//! type's layout, the roles a handle can hold. Plain values at the bottom
//! of the crate, so that every layer (and the error type) can name them.

use std::fmt;

/// Which ring a segment holds; recorded in the header so that an SPSC
/// handle never maps an MPMC segment, and so on.
///
/// ```
/// use shmring::{ByteRing, Error, RingKind, Spsc};
/// # let name = format!("shmring-doc-kind-{}", std::process::id());
/// let _bytes = ByteRing::create(&name, 4096)?;
/// assert_eq!(shmring::inspect(&name)?.kind, RingKind::Bytes);
/// assert!(matches!(Spsc::<u64>::open(&name), Err(Error::KindMismatch { .. })));
/// # Ok::<(), shmring::Error>(())
/// ```
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
///
/// ```
/// use shmring::{Error, Spsc, TypeLayout};
/// # let name = format!("shmring-doc-layout-{}", std::process::id());
/// let _ring = Spsc::<u64>::create(&name, 8)?;
/// match Spsc::<u32>::open(&name) {
///     Err(Error::TypeMismatch { found, expected }) => {
///         assert_eq!(found.size, 8);
///         assert_eq!(expected, TypeLayout::of::<u32>());
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), shmring::Error>(())
/// ```
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
///
/// ```
/// use shmring::{Error, Role, Spsc};
/// # let name = format!("shmring-doc-role-{}", std::process::id());
/// let ring = Spsc::<u64>::create(&name, 8)?;
/// let _rx = ring.consumer()?;
/// match ring.consumer() {
///     Err(Error::RoleTaken { role, pid }) => {
///         assert_eq!(role, Role::Consumer);
///         assert_eq!(pid, std::process::id());
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), shmring::Error>(())
/// ```
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

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
    /// One producer, many subscribers each reading every value
    /// ([`Broadcast`](crate::Broadcast)).
    Broadcast,
}

impl RingKind {
    pub(crate) const fn code(self) -> u32 {
        match self {
            RingKind::Spsc => 1,
            RingKind::Mpmc => 2,
            RingKind::Bytes => 3,
            RingKind::Broadcast => 4,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            3 => Some(RingKind::Bytes),
            4 => Some(RingKind::Broadcast),
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
            RingKind::Broadcast => "broadcast",
        })
    }
}

/// Which element type a ring carries, as two processes (or two crates, or a
/// C peer) agree on it: a schema name and version, recorded in the header
/// in plain bytes. By default the name is the Rust type's own name without
/// its module path (`Quote` for `my_service::msgs::Quote`, `[Tick; 4]` for an
/// array of a `Tick` from anywhere) and the version 0, so the same
/// `#[repr(C)]` struct defined in a producer's crate and in a consumer's
/// crate matches. Give one explicitly with [`CreateOptions::schema`] and
/// [`OpenOptions::schema`] to pin a name across renames, or to version a
/// layout.
///
/// [`CreateOptions::schema`]: crate::CreateOptions::schema
/// [`OpenOptions::schema`]: crate::OpenOptions::schema
///
/// ```
/// use shmring::Schema;
/// mod producer { #[derive(Clone, Copy)] #[repr(C)] pub struct Quote { pub px: f64 } }
/// mod consumer { #[derive(Clone, Copy)] #[repr(C)] pub struct Quote { pub px: f64 } }
/// assert_eq!(Schema::of::<producer::Quote>(), Schema::of::<consumer::Quote>());
/// assert_eq!(Schema::of::<[producer::Quote; 2]>().name(), "[Quote; 2]");
/// let pinned = Schema::new("md.quote", 3)?;
/// assert_eq!((pinned.name(), pinned.version()), ("md.quote", 3));
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schema {
    name: [u8; SCHEMA_NAME_LEN],
    len: u8,
    version: u32,
}

/// A schema name a header cannot hold, from [`Schema::new`]. (This file is
/// below `error.rs`, which names its types, so the one error it makes is
/// its own; it converts into the crate's [`Error`](crate::Error).)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSchema {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for InvalidSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid schema name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidSchema {}

/// The longest schema name a header holds, in bytes.
pub const SCHEMA_NAME_LEN: usize = 32;

impl Schema {
    /// An explicit schema: `name` (1 to 32 bytes of printable ASCII) and a
    /// version; [`InvalidSchema`] otherwise (which `?` turns into
    /// [`Error::InvalidSchema`](crate::Error::InvalidSchema)).
    ///
    /// ```
    /// assert!(shmring::Schema::new("md.quote", 3).is_ok());
    /// let err = shmring::Schema::new("", 1).unwrap_err();
    /// assert_eq!(err.name, "");
    /// ```
    pub fn new(name: &str, version: u32) -> Result<Self, InvalidSchema> {
        let printable = name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if name.is_empty() || name.len() > SCHEMA_NAME_LEN || !printable {
            return Err(InvalidSchema {
                name: name.to_owned(),
                reason: "a schema name is 1 to 32 bytes of printable ASCII",
            });
        }
        Ok(Self::from_bytes(name.as_bytes(), version))
    }

    /// The default schema of `T`: its type name without module paths
    /// (cut to 32 bytes at a character boundary), version 0.
    pub fn of<T: ?Sized>() -> Self {
        let short = short_type_name(std::any::type_name::<T>());
        let mut end = short.len().min(SCHEMA_NAME_LEN);
        while !short.is_char_boundary(end) {
            end -= 1;
        }
        Self::from_bytes(&short.as_bytes()[..end], 0)
    }

    /// A schema from the bytes a header holds (at most 32 are kept).
    pub(crate) fn from_bytes(bytes: &[u8], version: u32) -> Self {
        let len = bytes.len().min(SCHEMA_NAME_LEN);
        let mut name = [0; SCHEMA_NAME_LEN];
        name[..len].copy_from_slice(&bytes[..len]);
        Schema {
            name,
            len: len as u8,
            version,
        }
    }

    /// The name (as far as it is UTF-8: a header written by a peer may
    /// hold anything).
    pub fn name(&self) -> &str {
        let bytes = &self.name[..usize::from(self.len)];
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The name's bytes, as the header stores them.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.name[..usize::from(self.len)]
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({:?} v{})", self.name(), self.version)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` v{}", self.name(), self.version)
    }
}

/// `a::b::Quote<c::Tick>` -> `Quote<Tick>`: every path keeps its last
/// segment only.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    // Where the identifier being copied starts in `out`.
    let mut ident_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(ident_start); // a module, not the type
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            ident_start = out.len();
        }
    }
    out
}

/// The layout of a ring's element type as recorded in a header: size,
/// alignment, schema, and a fingerprint of the three (FNV-1a over the
/// schema name's bytes, then version, size and alignment as little-endian
/// u32s), which a peer in another language computes the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeLayout {
    /// `size_of::<T>()`.
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// Which type it is, by name and version.
    pub schema: Schema,
    /// A hash of the schema, size and alignment.
    pub fingerprint: u64,
}

impl fmt::Display for TypeLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (size {}, align {})",
            self.schema, self.size, self.align
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
///     Err(Error::RoleTaken { role, pid, .. }) => {
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

impl Role {
    /// The other side.
    pub fn other(self) -> Role {
        match self {
            Role::Producer => Role::Consumer,
            Role::Consumer => Role::Producer,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

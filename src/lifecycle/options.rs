//! How a ring is created and opened: the public options of the lifecycle
//! (file mode, schema, persistence, replacing a stale ring; whose files to
//! trust, how long to wait for a creator). The platform below sees only
//! what it needs of them (a mode, an [`Owner`]).

use std::time::Duration;

use crate::kind::{Schema, TypeLayout};
use crate::platform::segment::Owner;

/// How to create a segment.
///
/// ```
/// use shmring::{CreateOptions, Spsc};
/// # let name = format!("shmring-doc-create-opts-{}", std::process::id());
/// // Readable and writable by the owner's group too (the default is 0600),
/// // replacing a segment of that name that every process has left.
/// let opts = CreateOptions::new().mode(0o660).replace_stale(true);
/// let ring = Spsc::<u64>::create_with(&name, 64, &opts)?;
/// # use std::os::unix::fs::PermissionsExt;
/// # let mode = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().permissions().mode();
/// # assert_eq!(mode & 0o777, 0o660);
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub(crate) mode: u32,
    pub(crate) group: Option<u32>,
    pub(crate) replace_stale: bool,
    pub(crate) persist: bool,
    pub(crate) zero_after_use: bool,
    pub(crate) schema: Option<Schema>,
    /// A byte ring's messages' type, recorded as its identity (a typed
    /// service's values); plain bytes when `None`.
    pub(crate) message: Option<TypeLayout>,
    /// The element layout of a ring whose type is known only at run time
    /// (`rings/runtime.rs`); `None` for every other ring.
    pub(crate) elem: Option<TypeLayout>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            group: None,
            replace_stale: false,
            persist: false,
            zero_after_use: false,
            schema: None,
            message: None,
            elem: None,
        }
    }
}

impl CreateOptions {
    /// Defaults: mode 0600 (only this user can open the segment).
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits for the segment file, applied exactly (the umask is
    /// not allowed to change them). Use 0o660 to share with a group.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Give the segment file to group `gid` (one this user belongs to;
    /// else the create fails), for a mode such as 0o660 to share it with
    /// that group's users rather than with this user's own group.
    /// `open_or_create_with` then also accepts an existing segment whose
    /// group is `gid` (see [`OpenOptions::trust_group`]).
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// If a segment of that name exists but is stale (every process that
    /// used it is dead; see [`SegmentInfo::is_stale`](crate::SegmentInfo::is_stale)),
    /// remove it and create a fresh one instead of failing with
    /// `AlreadyExists`. A segment in use is never replaced, nor is a
    /// persisted one (see [`persist`](Self::persist)).
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }

    /// Keep the name after the last process using the ring leaves (by
    /// default the last one out removes it), until [`remove`](crate::remove)
    /// or `shmring rm --force` (nothing removes it as stale): for a ring
    /// that outlives its services, such as a journal read after they exit.
    /// Set before the ring is named, so no process sees it otherwise; see
    /// also [`Ring::persist`](crate::Ring::persist).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Zero each value or message in shared memory once its reader
    /// releases it, and the whole data area when the segment goes (its
    /// last user leaving, or a removal of a ring nobody uses), so that
    /// what passed through the ring cannot be read from /dev/shm, a core
    /// dump of a peer or swapped-out pages afterwards. Every user of the
    /// ring honours it, whatever options it opened with; a peer of a
    /// shmring version that does not know it refuses the ring
    /// (`VersionMismatch`) rather than ignore it. It costs the reader a
    /// store per 8 bytes released (measured in `cargo bench --bench
    /// throughput`, group `zero_after_use`).
    ///
    /// What it cannot do: a peer that does not cooperate keeps what it
    /// copied, and a value written in place but never committed stays
    /// until its slot is reused or the segment goes. A persisted ring
    /// ([`persist`](Self::persist)) keeps its data until it is removed.
    ///
    /// ```
    /// use shmring::{CreateOptions, Spsc};
    /// # let name = format!("shmring-doc-zero-{}", std::process::id());
    /// let opts = CreateOptions::new().zero_after_use(true);
    /// let ring = Spsc::<u64>::create_with(&name, 8, &opts)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_push(0x5ec2e7).unwrap();
    /// assert_eq!(rx.try_pop(), Some(0x5ec2e7)); // its slot now holds zeros
    /// assert!(shmring::inspect(&name)?.zero_after_use);
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn zero_after_use(mut self, zero: bool) -> Self {
        self.zero_after_use = zero;
        self
    }

    /// Record `schema` as the element type's identity instead of the
    /// type's own name (see [`Schema`]); openers must give the same one.
    /// (Byte rings carry bytes and ignore it.)
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// The options an `open_or_create` opens with: the same schema.
    pub(crate) fn to_open(&self) -> OpenOptions {
        OpenOptions {
            schema: self.schema,
            message: self.message,
            elem: self.elem,
            trusted_gids: self.group.into_iter().collect(),
            ..OpenOptions::default()
        }
    }
}

/// How to open an existing segment.
///
/// ```
/// use std::time::Duration;
/// use shmring::{OpenOptions, Spsc};
/// # let name = format!("shmring-doc-open-opts-{}", std::process::id());
/// let _ring = Spsc::<u64>::create(&name, 64)?;
/// // Wait at most 50 ms for a creator that is still writing the header.
/// let opts = OpenOptions::new().init_timeout(Duration::from_millis(50));
/// let ring = Spsc::<u64>::open_with(&name, &opts)?;
/// assert_eq!(ring.capacity(), 64);
/// # Ok::<(), shmring::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) allow_foreign_owner: bool,
    pub(crate) trusted_uids: Vec<u32>,
    pub(crate) trusted_gids: Vec<u32>,
    pub(crate) init_timeout: Duration,
    pub(crate) schema: Option<Schema>,
    /// A byte ring's messages' type, checked against the one recorded;
    /// any is accepted when `None` (a reader of plain bytes).
    pub(crate) message: Option<TypeLayout>,
    /// The element layout of a ring whose type is known only at run time,
    /// checked against the one recorded (`rings/runtime.rs`).
    pub(crate) elem: Option<TypeLayout>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            allow_foreign_owner: false,
            trusted_uids: Vec::new(),
            trusted_gids: Vec::new(),
            init_timeout: Duration::from_secs(1),
            schema: None,
            message: None,
            elem: None,
        }
    }
}

impl OpenOptions {
    /// Defaults: refuse segments owned by another user; wait up to one second
    /// for a creator that is still writing the header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open a segment owned by any other user. By default such a segment
    /// is refused, because anyone can squat a name in /dev/shm; rather
    /// name whom to trust ([`trust_owner`](Self::trust_owner),
    /// [`trust_group`](Self::trust_group)).
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// Also accept a segment owned by user `uid` (a service under
    /// another account that creates the ring). Others are still refused
    /// with `ForeignOwner`.
    ///
    /// ```
    /// use shmring::{OpenOptions, Spsc};
    /// # let name = format!("shmring-doc-trust-{}", std::process::id());
    /// # let _ring = Spsc::<u64>::create(&name, 8)?;
    /// // The feed handler runs as uid 1001; trust it, and nobody else.
    /// let opts = OpenOptions::new().trust_owner(1001);
    /// let ring = Spsc::<u64>::open_with(&name, &opts)?; // ours: accepted too
    /// # Ok::<(), shmring::Error>(())
    /// ```
    pub fn trust_owner(mut self, uid: u32) -> Self {
        self.trusted_uids.push(uid);
        self
    }

    /// Also accept a segment whose file belongs to group `gid`, whoever
    /// owns it: the group its creator gave it
    /// ([`CreateOptions::group`]), which only a member of the group (or
    /// root) can give.
    pub fn trust_group(mut self, gid: u32) -> Self {
        self.trusted_gids.push(gid);
        self
    }

    /// How long to wait for a creator that has not yet marked the header ready.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Expect `schema` as the element type's identity instead of the
    /// type's own name (see [`Schema`]): the creator must have given the
    /// same one.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Whose segment files this open accepts.
    pub(crate) fn owner(&self) -> Owner<'_> {
        if self.allow_foreign_owner {
            Owner::Anyone
        } else if self.trusted_uids.is_empty() && self.trusted_gids.is_empty() {
            Owner::Ours
        } else {
            Owner::Trusted {
                uids: &self.trusted_uids,
                gids: &self.trusted_gids,
            }
        }
    }
}

//! Segments of older format versions: what this library can still tell
//! about one, and removing one that is stale.
//!
//! A segment whose header carries another [`VERSION`] cannot be read (its
//! layout may differ anywhere past the first words), but whether it is in
//! use needs no layout: since version [`KERNEL_LIVENESS_SINCE`] every
//! process that maps a segment holds a shared OFD lock on its byte 0 (see
//! `platform/segment/`), and openers take that lock before they check
//! the name under a shared `flock`, as this version's do. So a segment of
//! such a version on which no lock is held is stale, and is removed like
//! one of this version: under the exclusive `flock`, after checking that
//! the name still names the file, unless it was marked persistent. Older
//! versions kept liveness in pids, and newer ones may keep it otherwise:
//! for those nothing is decided, and only an explicit removal
//! (`shmring::remove`, `shmring rm --force`) removes them.

use crate::error::{Error, Result};
use crate::format::header::{offsets, FEATURES_VERSION, MAGIC, VERSION};
use crate::platform::name::SegmentName;
use crate::platform::segment::{Owner, Segment, Verdict};

/// The first format version whose every mapping holds the kernel's lock
/// on byte 0.
pub(crate) const KERNEL_LIVENESS_SINCE: u32 = 5;

/// The first format version with the `flags` word where this version has
/// it (`offsets::FLAGS`), bit 0 marking the segment persistent. Versions
/// before it had no persistent segments. When `VERSION` is bumped and the
/// word moves, its old place must be recorded here.
const FLAGS_SINCE: u32 = 7;

/// The bytes read from the start of a segment: magic, version, and up to
/// the flags word.
const PREFIX: usize = offsets::FLAGS + 4;

/// What this library can tell about a segment of format `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// This library's own.
    Current,
    /// An older one whose users hold the kernel's locks: its staleness can
    /// be told, and `flags` says if it was marked persistent.
    Older,
    /// Older than the kernel's locks, or newer than this library.
    Unknown,
}

/// What this library can tell about format `version`.
pub(crate) fn format(version: u32) -> Format {
    match version {
        VERSION | FEATURES_VERSION => Format::Current,
        v if (KERNEL_LIVENESS_SINCE..VERSION).contains(&v) => Format::Older,
        _ => Format::Unknown,
    }
}

/// Magic, version and persistence flag as read from a segment's first
/// bytes, or `None` where the file is too short to hold them.
fn prefix(bytes: &[u8]) -> Option<(u64, u32, bool)> {
    let word = |at: usize, n: usize| bytes.get(at..at + n);
    let magic = u64::from_le_bytes(word(offsets::MAGIC, 8)?.try_into().ok()?);
    let version = u32::from_le_bytes(word(offsets::VERSION, 4)?.try_into().ok()?);
    let flags = u32::from_le_bytes(word(offsets::FLAGS, 4)?.try_into().ok()?);
    let persistent = version >= FLAGS_SINCE && flags & 1 != 0;
    Some((magic, version, persistent))
}

/// Remove segment `name`, of the older format `version` (see
/// [`format`]), if it is stale: no process holds any lock on it, it was
/// not marked persistent, and it still carries shmring's magic and that
/// version. `Ok(false)` if it is in use or persistent; `VersionMismatch`
/// if `version` is not one whose staleness can be told.
pub(crate) fn remove_if_stale(name: &SegmentName, version: u32) -> Result<bool> {
    if format(version) != Format::Older {
        return Err(Error::VersionMismatch {
            name: name.as_str().to_owned(),
            found: version,
            expected: VERSION,
        });
    }
    let removed = Segment::unlink_if(name, PREFIX as u64, Owner::Anyone, |seg| {
        let mut bytes = [0u8; PREFIX];
        let n = seg.read_at(&mut bytes, 0)?;
        let Some((magic, found, persistent)) = prefix(&bytes[..n]) else {
            return Ok(Verdict::Keep);
        };
        // Older formats could not ask for their data to be zeroed.
        Ok(
            if magic == MAGIC && found == version && !persistent && !seg.in_use() {
                Verdict::Remove { zero_from: None }
            } else {
                Verdict::Keep
            },
        )
    })?;
    if removed {
        log::info!(
            target: "shmring::removal",
            "removed stale segment {:?} of format version {version} (no process held any lock \
             on it)",
            name.as_str()
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versions_with_kernel_liveness_are_judged() {
        assert_eq!(format(VERSION), Format::Current);
        assert_eq!(format(FEATURES_VERSION), Format::Current);
        assert_eq!(format(KERNEL_LIVENESS_SINCE - 1), Format::Unknown);
        assert_eq!(format(FEATURES_VERSION + 1), Format::Unknown);
        for v in KERNEL_LIVENESS_SINCE..VERSION {
            assert_eq!(format(v), Format::Older);
        }
    }

    #[test]
    fn the_persistent_flag_counts_only_where_the_version_has_it() {
        let mut bytes = [0u8; PREFIX];
        bytes[..8].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[offsets::FLAGS..].copy_from_slice(&1u32.to_le_bytes());
        bytes[offsets::VERSION..offsets::VERSION + 4].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(prefix(&bytes), Some((MAGIC, 6, false)));
        bytes[offsets::VERSION..offsets::VERSION + 4].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(prefix(&bytes), Some((MAGIC, 7, true)));
        assert_eq!(prefix(&bytes[..PREFIX - 1]), None);
    }
}

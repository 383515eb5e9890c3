//! The shared format: the header every process validates, where the slots
//! start, how a slot is stamped, and how the byte ring frames its records.

pub(crate) mod header; // the header's words and their validation
pub(crate) mod layout; // header size, slot area, element type identity
pub(crate) mod legacy; // older format versions: staleness, removal
pub(crate) mod record; // the byte ring's framing: stamps, bounds checks
pub(crate) mod slot; // a value and its stamp
pub(crate) mod subscribers; // the broadcast ring's table of subscribers
